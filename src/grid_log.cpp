// The grid's log (the "experiment", --experiment and --summary-csv) and its readable table.
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "mfrec/csv.hpp"
#include "mfrec/durable.hpp"
#include "mfrec/grid.hpp"
#include "mfrec/model.hpp"

namespace mfrec {

namespace {

// A number as the summary has always written it (ostream's default: 6 significant digits).
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

void write_summary_csv(const std::string& path, const GridResult& r) {
  auto line = [](std::ostream& out, const std::vector<std::string>& fields) {
    for (std::size_t i = 0; i < fields.size(); ++i) out << (i ? "," : "") << csv::quote(fields[i]);
    out << '\n';
  };
  AtomicFile file(path);
  std::vector<std::string> head = {"best", "run", "alpha", "factors", "regularization", "solver", "iterations"};
  for (const char* k : kGridMetricKeys) head.emplace_back(k);
  for (const char* k : kGridMetricKeys) head.push_back(std::string("baseline_") + k);
  for (const char* k : kGridMetricKeys) head.push_back(std::string("knn_") + k);  // empty with --knn-k 0
  for (const char* k : {"seconds", "seconds_per_iteration", "group", "ranks"}) head.emplace_back(k);
  line(file.stream(), head);
  for (const auto& p : r.points) {
    std::vector<std::string> row = {p.best ? "*" : "", std::to_string(p.run), num(p.alpha), std::to_string(p.factors),
                                    num(p.regularization), p.solver, std::to_string(p.iterations)};
    for (const char* k : kGridMetricKeys) row.push_back(num(metric_value(p.evaluation.model, k)));
    for (const char* k : kGridMetricKeys) row.push_back(num(metric_value(p.evaluation.baseline, k)));
    for (const char* k : kGridMetricKeys)
      row.push_back(p.evaluation.knn_k > 0 ? num(metric_value(p.evaluation.knn, k)) : std::string());
    for (double v : {p.seconds, p.seconds_per_iteration}) row.push_back(num(v));
    row.push_back(std::to_string(p.group));
    row.push_back(std::to_string(p.ranks));
    line(file.stream(), row);
  }
  file.commit();
}

}  // namespace

std::string format_grid_table(const GridResult& r, const std::string& metric) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-4s %4s %8s %7s %10s %8s %5s %9s %8s %9s %9s %8s %6s\n", "", "run", "alpha",
                "factors", "lambda", "solver", "iters", "MAP@K", "(SE)", "NDCG@K", "AUC", "s/iter", "group");
  os << line;
  for (const auto& p : r.points) {
    const auto& m = p.evaluation.model;
    std::snprintf(line, sizeof line, "%-4s %4d %8g %7d %10g %8s %5d %9.4f %8.4f %9.4f %9.4f %8.3f %6d\n",
                  p.best ? "best" : "", p.run, p.alpha, p.factors, p.regularization, p.solver.c_str(), p.iterations, m.map,
                  m.se[0], m.ndcg, m.auc, p.seconds_per_iteration, p.group);
    os << line;
  }
  const PointResult& b = r.points.at(static_cast<std::size_t>(r.best));
  const double v = metric_value(b.evaluation.model, metric), base = metric_value(b.evaluation.baseline, metric);
  std::snprintf(line, sizeof line, "best by %s: run %d at %d iterations, %.4f against the popularity baseline's %.4f (%s, %.2fx)\n",
                metric.c_str(), b.run, b.iterations, v, base, metric_beats(v, base) ? "beats it" : "DOES NOT beat it",
                base > 0 ? v / base : 0.0);
  os << line;
  if (b.evaluation.knn_k > 0) {
    const double kv = metric_value(b.evaluation.knn, metric);
    std::snprintf(line, sizeof line, "item-kNN baseline (k=%d): %s %.4f (%s, %.2fx)\n", b.evaluation.knn_k,
                  metric.c_str(), kv, metric_beats(v, kv) ? "the best point beats it" : "the best point DOES NOT beat it",
                  kv > 0 ? v / kv : 0.0);
    os << line;
  }
  return os.str();
}

void write_experiment(const std::string& h5_path, const std::string& csv_path, const GridResult& r,
                      const GridOptions& opt, const std::string& data_path) {
  if (!h5_path.empty()) {
    h5::File f = h5::File::create_atomic(h5_path);
    const std::size_t n = r.points.size();
    auto col_i = [&](const char* name, auto get) {
      std::vector<std::int64_t> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::int64_t>(get(r.points[i]));
      f.write_vector(std::string("/points/") + name, v);
    };
    auto col_d = [&](const std::string& name, auto get) {
      std::vector<double> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = get(r.points[i]);
      f.write_vector("/points/" + name, v);
    };
    col_i("run", [](const PointResult& p) { return p.run; });
    col_i("iterations", [](const PointResult& p) { return p.iterations; });
    col_i("factors", [](const PointResult& p) { return p.factors; });
    col_i("group", [](const PointResult& p) { return p.group; });
    col_i("ranks", [](const PointResult& p) { return p.ranks; });
    col_i("threads", [](const PointResult& p) { return p.threads; });
    col_i("best", [](const PointResult& p) { return p.best ? 1 : 0; });
    col_d("alpha", [](const PointResult& p) { return p.alpha; });
    col_d("regularization", [](const PointResult& p) { return p.regularization; });
    col_d("seconds", [](const PointResult& p) { return p.seconds; });
    col_d("seconds_per_iteration", [](const PointResult& p) { return p.seconds_per_iteration; });
    std::vector<std::string> solvers;
    for (const auto& p : r.points) solvers.push_back(p.solver);
    f.write_strings("/points/solver", solvers);
    const bool knn = r.knn_k > 0;
    for (const char* view : {"metrics", "system", "baseline", "knn"}) {
      if (view[0] == 'k' && !knn) continue;  // --knn-k 0: no kNN view
      for (const char* key : kGridMetricKeys)
        col_d(std::string(view) + "/" + key, [&](const PointResult& p) {
          const Evaluation& e = p.evaluation;
          return metric_value(view[0] == 'm' ? e.model : view[0] == 's' ? e.system : view[0] == 'b' ? e.baseline : e.knn,
                              key);
        });
      for (const char* key : kGridMetricKeys)  // standard errors over the evaluated users (--eval-users)
        col_d(std::string(view) + "/" + key + "_se", [&](const PointResult& p) {
          const Evaluation& e = p.evaluation;
          return metric_se_map(view[0] == 'm' ? e.model : view[0] == 's' ? e.system : view[0] == 'b' ? e.baseline
                                                                                                      : e.knn)
              .at(std::string(key) + "_se");
        });
    }
    if (knn) {
      f.set_attr("/", "knn_k", r.knn_k);
      f.set_attr("/", "knn_seconds", r.knn_seconds);
    }
    f.set_attr("/", "format", "mfrec-experiment");
    f.set_attr("/", "format_version", std::int64_t(1));
    f.set_attr("/", "data", data_path);
    f.set_attr("/", "select_metric", opt.select_metric);
    f.set_attr("/", "groups", r.groups);
    f.set_attr("/", "k", opt.base.k);
    f.set_attr("/", "eval_users", static_cast<std::int64_t>(opt.base.eval_users));
    f.set_attr("/", "best", r.best);
    f.set_attr("/", "seconds", r.seconds);
    f.set_attr("/", "created", utc_now_iso());
    f.commit();
  }
  if (!csv_path.empty()) write_summary_csv(csv_path, r);
}

}  // namespace mfrec
