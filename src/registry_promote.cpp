// Champion/challenger promotion (registry.hpp): a new version takes `production` only when it
// beats the popularity baseline and the current production holder on its selection metric, both
// evaluated on the same data set.
#include <spdlog/fmt/fmt.h>

#include <cmath>

#include "mfrec/durable.hpp"
#include "mfrec/evaluation.hpp"
#include "registry_internal.hpp"

namespace mfrec {

using namespace registry_detail;

namespace {

std::string fingerprint(const nlohmann::json& meta) {
  if (!meta.is_object()) return "";
  const auto v = meta.find("dataset_fingerprint");
  return v != meta.end() && v->is_string() ? v->get<std::string>() : "";
}

bool finite_metric(const nlohmann::json& meta, const char* group, const std::string& key, double& out) {
  return meta_metric(meta, group, key, out) && std::isfinite(out);
}

}  // namespace

PromotionDecision decide_promotion(const RegistryEntry& c, const RegistryEntry* champion) {
  PromotionDecision d;
  d.metric = selection_metric(c.meta);
  if (champion) d.champion = champion->spec();
  const std::string& m = d.metric;
  double v = 0, base = 0;
  if (!finite_metric(c.meta, "metrics", m, v)) {
    d.reason = c.spec() + " has no " + m + " in its metadata";
    return d;
  }
  if (!finite_metric(c.meta, "baseline_metrics", m, base)) {
    d.reason = c.spec() + " has no popularity-baseline " + m + " in its metadata";
    return d;
  }
  if (!metric_beats(v, base)) {
    d.reason = fmt::format("{} {:.4f} does not beat the popularity baseline's {:.4f}", m, v, base);
    return d;
  }
  if (!champion) {
    d.promote = true;
    d.reason = fmt::format("{} {:.4f} beats the popularity baseline's {:.4f}; no version held production", m, v, base);
    return d;
  }
  if (champion->spec() == c.spec()) {
    d.reason = c.spec() + " already holds production";
    return d;
  }
  const std::string fc = fingerprint(c.meta), fp = fingerprint(champion->meta);
  if (fc.empty() || fp.empty() || fc != fp) {
    d.reason = fmt::format("evaluated on another data set than production {} (fingerprint {} vs {}): the metrics "
                           "are not comparable",
                           champion->spec(), fc.empty() ? "unknown" : fc, fp.empty() ? "unknown" : fp);
    return d;
  }
  double w = 0;
  if (!finite_metric(champion->meta, "metrics", m, w)) {
    d.reason = "production " + champion->spec() + " has no " + m + " to compare with";
    return d;
  }
  if (!metric_beats(v, w)) {
    d.reason = fmt::format("{} {:.4f} does not beat production {}'s {:.4f}", m, v, champion->spec(), w);
    return d;
  }
  d.promote = true;
  d.reason = fmt::format("{} {:.4f} beats production {}'s {:.4f} and the popularity baseline's {:.4f}", m, v,
                         champion->spec(), w, base);
  return d;
}

nlohmann::ordered_json promotion_json(const PromotionDecision& d) {
  nlohmann::ordered_json j;
  j["promoted"] = d.promote;
  j["metric"] = d.metric;
  j["champion"] = d.champion.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(d.champion);
  j["reason"] = d.reason;
  return j;
}

PromotionDecision Registry::promote_if_better(const std::string& spec, RegistryEntry* entry) {
  parse_spec(spec);  // a malformed spec fails before taking the lock
  FileLock lock(dir_ + "/" + kLockFile);
  remove_stale_temps(dir_, "");
  auto entries = read_index(dir_);
  const std::size_t i = resolve(entries, spec, dir_);
  const RegistryEntry* champion = nullptr;
  for (const auto& x : entries)
    if (x.name == entries[i].name && x.has_stage("production")) champion = &x;
  const PromotionDecision d = decide_promotion(entries[i], champion);
  if (d.promote && move_stage(entries, i, "production")) write_index(dir_, entries);
  if (entry) *entry = entries[i];
  return d;
}

}  // namespace mfrec
