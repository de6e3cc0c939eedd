// Two registry versions side by side (registry.hpp: compare_json, format_comparison; the
// `mfrec_registry compare` command).
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <sstream>

#include "mfrec/evaluation.hpp"
#include "registry_internal.hpp"

namespace mfrec {

using ojson = nlohmann::ordered_json;
using namespace registry_detail;

namespace {

struct Row {
  std::string field;
  ojson a, b;
  bool metric = false;  // printed with 4 decimals
};

ojson member(const nlohmann::json& obj, const std::string& key) {
  if (!obj.is_object()) return ojson();
  const auto v = obj.find(key);
  return v == obj.end() ? ojson() : ojson::parse(v->dump());
}

std::vector<std::string> keys_of(const nlohmann::json& a, const nlohmann::json& b) {
  std::vector<std::string> keys;
  for (const nlohmann::json* o : {&a, &b})
    if (o->is_object())
      for (const auto& [k, v] : o->items())
        if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  return keys;
}

std::vector<Row> rows_of(const RegistryEntry& a, const RegistryEntry& b) {
  std::vector<Row> rows;
  auto add = [&](const std::string& field, ojson va, ojson vb, bool metric = false) {
    rows.push_back({field, std::move(va), std::move(vb), metric});
  };
  add("version", a.spec(), b.spec());
  add("stages", a.stages, b.stages);
  add("registered", a.created, b.created);
  add("model created", member(a.meta, "created"), member(b.meta, "created"));
  const nlohmann::json none;
  const auto& pa = a.meta.is_object() && a.meta.contains("parameters") ? a.meta["parameters"] : none;
  const auto& pb = b.meta.is_object() && b.meta.contains("parameters") ? b.meta["parameters"] : none;
  for (const auto& k : keys_of(pa, pb)) add(k, member(pa, k), member(pb, k));
  add("select_metric", selection_metric(a.meta), selection_metric(b.meta));
  for (const char* group : {"metrics", "baseline_metrics"}) {
    const std::string prefix = group[0] == 'm' ? "" : "baseline ";
    for (const char* k : kMetricKeys) {
      double va = 0, vb = 0;
      const bool ha = meta_metric(a.meta, group, k, va), hb = meta_metric(b.meta, group, k, vb);
      if (!ha && !hb) continue;
      add(prefix + k, ha ? ojson(va) : ojson(), hb ? ojson(vb) : ojson(), true);
    }
  }
  auto users = [&](const RegistryEntry& e) {  // a count, stored as a double metric
    const ojson u = member(member(e.meta, "metrics"), "users");
    return u.is_number() ? ojson(static_cast<std::int64_t>(std::llround(u.get<double>()))) : u;
  };
  const ojson users_a = users(a), users_b = users(b);
  if (!users_a.is_null() || !users_b.is_null()) add("evaluated users", users_a, users_b);
  add("dataset", member(a.meta, "dataset"), member(b.meta, "dataset"));
  add("dataset_fingerprint", member(a.meta, "dataset_fingerprint"), member(b.meta, "dataset_fingerprint"));
  add("bytes", a.bytes, b.bytes);
  add("checksum", a.checksum, b.checksum);
  add("program_version", member(a.meta, "program_version"), member(b.meta, "program_version"));
  add("file", a.file, b.file);
  return rows;
}

std::string text_of(const ojson& v, bool metric) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (metric && v.is_number()) return fmt::format("{:.4f}", v.get<double>());
  if (v.is_array()) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + text_of(x, false);
    return s.empty() ? "-" : s;
  }
  return v.dump();
}

// Which of the two is better on a's selection metric, and a one-line verdict.
struct Verdict {
  std::string metric, better, line;
  bool same_dataset = false;
};
Verdict verdict_of(const RegistryEntry& a, const RegistryEntry& b) {
  Verdict v;
  v.metric = selection_metric(a.meta);
  const ojson fa = member(a.meta, "dataset_fingerprint"), fb = member(b.meta, "dataset_fingerprint");
  v.same_dataset = fa.is_string() && !fa.get<std::string>().empty() && fa == fb;
  if (!v.same_dataset) {
    v.line = "evaluated on different data sets (dataset_fingerprint differs): the metrics are not comparable";
    return v;
  }
  double ma = 0, mb = 0;
  const bool ha = meta_metric(a.meta, "metrics", v.metric, ma) && std::isfinite(ma);
  const bool hb = meta_metric(b.meta, "metrics", v.metric, mb) && std::isfinite(mb);
  if (!ha || !hb) {
    v.line = (ha ? b : a).spec() + " has no " + v.metric + ": no verdict";
    return v;
  }
  if (metric_beats(ma, mb)) v.better = a.spec();
  if (metric_beats(mb, ma)) v.better = b.spec();
  v.line = fmt::format("same data set; on {}: {} {:.4f}, {} {:.4f}: {}", v.metric, a.spec(), ma, b.spec(), mb,
                       v.better.empty() ? std::string("a tie") : v.better + " is better");
  return v;
}

}  // namespace

ojson compare_json(const RegistryEntry& a, const RegistryEntry& b) {
  const Verdict v = verdict_of(a, b);
  ojson j;
  j["a"] = a.spec();
  j["b"] = b.spec();
  j["rows"] = ojson::array();
  for (const auto& r : rows_of(a, b))
    j["rows"].push_back({{"field", r.field}, {"a", r.a}, {"b", r.b}, {"differs", r.a != r.b}});
  j["metric"] = v.metric;
  j["same_dataset"] = v.same_dataset;
  j["better"] = v.better.empty() ? ojson() : ojson(v.better);
  j["verdict"] = v.line;
  return j;
}

std::string format_comparison(const RegistryEntry& a, const RegistryEntry& b) {
  std::vector<std::array<std::string, 4>> lines;
  for (const auto& r : rows_of(a, b))
    lines.push_back({r.field, text_of(r.a, r.metric), text_of(r.b, r.metric), r.a != r.b ? "*" : ""});
  std::size_t w0 = 0, w1 = 0, w2 = 0;
  for (const auto& l : lines) {
    w0 = std::max(w0, l[0].size());
    w1 = std::max(w1, l[1].size());
    w2 = std::max(w2, l[2].size());
  }
  std::ostringstream out;
  for (const auto& l : lines) {
    std::string line = fmt::format("{:<{}}  {:<{}}  {:<{}}  {}", l[0], w0, l[1], w1, l[2], w2, l[3]);
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << "\n";
  }
  out << "(* differs)\n" << verdict_of(a, b).line << "\n";
  return out.str();
}

}  // namespace mfrec
