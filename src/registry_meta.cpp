// A model's metadata as the registry stores it, the "beats the baseline" rule, checksums and
// the registry as a table.
#include <boost/crc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "mfrec/durable.hpp"
#include "mfrec/evaluation.hpp"
#include "registry_internal.hpp"

namespace mfrec {

namespace {

// Tidy a float parameter for JSON: the shortest decimal that reads back as the same float.
double tidy(float v) {
  if (!std::isfinite(v)) return v;
  char buf[32];
  for (int prec = 6; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return std::strtod(buf, nullptr);
}

nlohmann::json metrics_json(const std::map<std::string, double>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;  // NaN is written as null
  return j;
}

std::string metric_text(const nlohmann::json& meta, const char* group) {
  const auto g = meta.find(group);
  if (g == meta.end() || !g->is_object()) return "-";
  const auto v = g->find("map_at_k");
  if (v == g->end() || !v->is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v->get<double>());
  return buf;
}

}  // namespace

nlohmann::json model_meta_json(const ModelMeta& m) {
  nlohmann::json j;
  j["parameters"] = {{"factors", m.als.factors},
                     {"regularization", tidy(m.als.regularization)},
                     {"alpha", tidy(m.als.alpha)},
                     {"confidence", confidence_name(m.als.confidence)},
                     {"scale_regularization", m.als.scale_regularization},
                     {"solver", solver_name(m.als.solver)},
                     {"cg_steps", m.als.cg_steps},
                     {"iterations", m.iterations},
                     {"seed", m.seed},
                     {"k", m.k}};
  j["metrics"] = metrics_json(m.metrics);
  j["baseline_metrics"] = metrics_json(m.baseline_metrics);
  j["system_metrics"] = metrics_json(m.system_metrics);
  j["select_metric"] = m.select_metric;
  j["dataset"] = m.dataset;
  j["dataset_fingerprint"] = m.dataset_fingerprint;
  j["program_version"] = m.program_version;
  j["created"] = m.created;
  return j;
}

std::string selection_metric(const nlohmann::json& meta) {
  if (meta.is_object()) {
    const auto v = meta.find("select_metric");
    if (v != meta.end() && v->is_string()) return v->get<std::string>();
  }
  return "map_at_k";  // entries of models written before the metric was stored
}

bool beats_baseline(const ModelMeta& meta) {
  const auto a = meta.metrics.find(meta.select_metric);
  const auto b = meta.baseline_metrics.find(meta.select_metric);
  if (a == meta.metrics.end() || b == meta.baseline_metrics.end()) return false;
  return metric_beats(a->second, b->second);
}

bool beats_baseline(const nlohmann::json& meta) {
  const std::string metric = selection_metric(meta);
  double a = 0, b = 0;
  return registry_detail::meta_metric(meta, "metrics", metric, a) &&
         registry_detail::meta_metric(meta, "baseline_metrics", metric, b) && metric_beats(a, b);
}

namespace registry_detail {

bool meta_metric(const nlohmann::json& meta, const char* group, const std::string& key, double& out) {
  if (!meta.is_object()) return false;
  const auto g = meta.find(group);
  if (g == meta.end() || !g->is_object()) return false;
  const auto v = g->find(key);
  if (v == g->end() || !v->is_number()) return false;  // NaN is stored as null
  out = v->get<double>();
  return true;
}

}  // namespace registry_detail

std::string file_checksum(const std::string& path) {
  boost::crc_32_type crc;
  read_file_blocks(path, [&](const char* data, std::size_t n) { crc.process_bytes(data, n); });
  return registry_detail::format_crc(crc.checksum());
}

std::string format_registry_table(const std::vector<RegistryEntry>& entries, bool markdown) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "VERSION", "STAGES", "MAP@K", "BASELINE-MAP@K", "CREATED", "FILE"});
  if (markdown) rows[0] = {"name", "version", "stages", "MAP@K", "baseline MAP@K", "created", "file"};
  for (const auto& e : entries) {
    std::string stages;
    for (const auto& s : e.stages) stages += (stages.empty() ? "" : ",") + s;
    rows.push_back({e.name, std::to_string(e.version), stages.empty() ? "-" : stages, metric_text(e.meta, "metrics"),
                    metric_text(e.meta, "baseline_metrics"), e.created, e.file});
  }
  std::ostringstream out;
  if (markdown) {
    for (std::size_t r = 0; r < rows.size(); ++r) {
      out << "|";
      for (const auto& c : rows[r]) out << " " << c << " |";
      out << "\n";
      if (r == 0) {
        out << "|";
        for (std::size_t c = 0; c < rows[0].size(); ++c) out << (c == 1 || c == 3 || c == 4 ? "---:|" : "---|");
        out << "\n";
      }
    }
    return out.str();
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t c = 0; c < r.size(); ++c) {
      const bool right = c == 1 || c == 3 || c == 4;
      const std::string pad(width[c] - r[c].size(), ' ');
      line += right ? pad + r[c] : r[c] + (c + 1 < r.size() ? pad : "");
      if (c + 1 < r.size()) line += "  ";
    }
    out << line << "\n";
  }
  return out.str();
}

}  // namespace mfrec
