// mfrec_serve's metrics: request counts and latency histograms, as Prometheus text or JSON.
#include <cmath>
#include <sstream>

#include "mfrec/serve.hpp"

namespace mfrec::serve {

void Metrics::record(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[{endpoint, status}];
  if (seconds < 0) return;
  Hist& h = latency_[endpoint];
  std::size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  ++h.buckets[b];
  h.sum += seconds;
  ++h.count;
}

std::string Metrics::prometheus(const Recommender& r, double uptime) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream o;
  o << "# HELP mfrec_requests_total HTTP requests by endpoint and status.\n# TYPE mfrec_requests_total counter\n";
  for (const auto& [k, n] : counts_)
    o << "mfrec_requests_total{endpoint=\"" << k.first << "\",status=\"" << k.second << "\"} " << n << "\n";
  o << "# HELP mfrec_request_seconds Time spent in the handler.\n# TYPE mfrec_request_seconds histogram\n";
  for (const auto& [e, h] : latency_) {
    std::uint64_t cum = 0;
    for (std::size_t b = 0; b <= kBuckets.size(); ++b) {
      cum += h.buckets[b];
      o << "mfrec_request_seconds_bucket{endpoint=\"" << e << "\",le=\"";
      if (b < kBuckets.size()) o << kBuckets[b];
      else o << "+Inf";
      o << "\"} " << cum << "\n";
    }
    o << "mfrec_request_seconds_sum{endpoint=\"" << e << "\"} " << h.sum << "\n";
    o << "mfrec_request_seconds_count{endpoint=\"" << e << "\"} " << h.count << "\n";
  }
  o << "# TYPE mfrec_model_version gauge\nmfrec_model_version " << r.source().version << "\n";
  o << "# TYPE mfrec_model_reloads_total counter\nmfrec_model_reloads_total " << reloads_.load() << "\n";
  o << "# TYPE mfrec_model_reload_failures_total counter\nmfrec_model_reload_failures_total "
    << reload_failures_.load() << "\n";
  o << "# TYPE mfrec_uptime_seconds gauge\nmfrec_uptime_seconds " << uptime << "\n";
  return o.str();
}

json Metrics::to_json(const Recommender& r, double uptime) const {
  std::lock_guard<std::mutex> lock(mu_);
  json req = json::object(), lat = json::object();
  for (const auto& [k, n] : counts_) req[k.first][std::to_string(k.second)] = n;
  for (const auto& [e, h] : latency_) {
    auto quantile = [&](double q) -> json {  // upper bound of the bucket holding quantile q
      const auto target = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(h.count)));
      std::uint64_t cum = 0;
      for (std::size_t b = 0; b < kBuckets.size(); ++b) {
        cum += h.buckets[b];
        if (cum >= target) return kBuckets[b];
      }
      return "+Inf";
    };
    lat[e] = {{"count", h.count}, {"mean", h.count ? h.sum / static_cast<double>(h.count) : 0.0},
              {"p50_le", quantile(0.5)}, {"p99_le", quantile(0.99)}};
  }
  return {{"requests", req}, {"latency_seconds", lat}, {"model", r.model_json()},
          {"reloads", reloads_.load()}, {"reload_failures", reload_failures_.load()}, {"uptime_seconds", uptime}};
}

}  // namespace mfrec::serve
