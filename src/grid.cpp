#include "mfrec/grid.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "mfrec/config.hpp"
#include "mfrec/error.hpp"
#include "mfrec/model.hpp"

namespace mfrec {

double GridRun::cost() const {
  const double f = factors;
  const double per_iter = solver == "cholesky" ? f * f * f / 3 + 20 * f * f : 6 * f * f;
  return per_iter * (iterations.empty() ? 1 : iterations.back());
}

std::vector<GridRun> expand_grid(const GridSpace& s) {
  auto nonempty = [](bool ok, const char* name) { require_option(ok, name, "empty list"); };
  nonempty(!s.alpha.empty(), "alpha");
  nonempty(!s.factors.empty(), "factors");
  nonempty(!s.regularization.empty(), "regularization");
  nonempty(!s.iterations.empty(), "iterations");
  nonempty(!s.solver.empty(), "solver");
  for (double a : s.alpha) require_option(a >= 0, "alpha", "must not be negative");
  for (int f : s.factors) require_option(f >= 1, "factors", "must be at least 1");
  for (double l : s.regularization) require_option(l >= 0, "regularization", "must not be negative");
  for (int i : s.iterations) require_option(i >= 1, "iterations", "must be at least 1");
  for (const auto& v : s.solver) parse_solver(v);
  std::set<int> its(s.iterations.begin(), s.iterations.end());
  std::vector<GridRun> runs;
  for (double a : s.alpha)
    for (int f : s.factors)
      for (double l : s.regularization)
        for (const auto& sv : s.solver) {
          GridRun r;
          r.id = static_cast<int>(runs.size());
          r.alpha = a;
          r.factors = f;
          r.regularization = l;
          r.solver = sv;
          r.iterations.assign(its.begin(), its.end());
          runs.push_back(r);
        }
  std::stable_sort(runs.begin(), runs.end(), [](const GridRun& x, const GridRun& y) {
    return x.cost() != y.cost() ? x.cost() > y.cost() : x.id < y.id;
  });
  return runs;
}

namespace {

const char* const kMetricKeys[] = {"map_at_k", "map_at_k_seed", "precision_at_k", "recall_at_k", "ndcg_at_k", "auc"};

// A point as a fixed row of doubles, so the whole table travels in one allreduce (every row has
// exactly one contributing rank; the others add zeros).
constexpr int kHead = 6;  // present, group, ranks, threads, seconds, seconds_per_iteration
const char* const kPhases[] = {"gram", "allreduce", "solve", "allgather", "evaluation", "loss"};
constexpr int kNumPhases = 6;
constexpr int kFields = kHead + kEvaluationFields + 3 * kNumPhases;

}  // namespace

void check_metric_name(const std::string& key) {
  for (const char* k : kMetricKeys)
    if (key == k) return;
  throw ConfigError("option --select-metric: unknown metric '" + key +
                    "' (map_at_k, map_at_k_seed, precision_at_k, recall_at_k, ndcg_at_k, auc)");
}

double metric_value(const MetricSums& m, const std::string& key) {
  check_metric_name(key);
  return metric_map(m).at(key);
}

GridResult run_grid(const Comm& world, const std::string& data_path, const GridSpace& space, const GridOptions& opt,
                    const std::string& model_path) {
  require_option(opt.groups >= 1, "groups", "must be at least 1");
  require_option(opt.groups <= world.size(), "groups",
                 std::to_string(opt.groups) + " groups need at least as many ranks (have " +
                     std::to_string(world.size()) + ")");
  check_metric_name(opt.select_metric);
  const std::vector<GridRun> runs = expand_grid(space);
  const double t0 = Comm::wtime();

  // Point rows in canonical order: by run id, then iterations.
  std::vector<int> run_offset(runs.size() + 1, 0);
  std::vector<const GridRun*> by_id(runs.size());
  for (const auto& r : runs) by_id[static_cast<std::size_t>(r.id)] = &r;
  for (std::size_t i = 0; i < runs.size(); ++i)
    run_offset[i + 1] = run_offset[i] + static_cast<int>(by_id[i]->iterations.size());
  const int n_points = run_offset.back();

  // Contiguous blocks of ranks form the groups.
  const int group = static_cast<int>(static_cast<long long>(world.rank()) * opt.groups / world.size());
  Comm gc = world.split(group, world.rank());
  if (gc.is_root()) enable_leader_logging();
  GroupData data;
  {
    h5::File f = h5::File::open(data_path, &gc);
    data = load_group_data(f, gc);
  }
  if (world.is_root())
    spdlog::info("grid: {} runs ({} points) on {} group(s) of ~{} rank(s)", runs.size(), n_points, opt.groups,
                 world.size() / opt.groups);

  std::vector<double> table(static_cast<std::size_t>(n_points) * kFields, 0.0);
  // This group's best point so far, with its factors: the global best is some group's best.
  struct Best {
    int point = -1;
    double value = 0;
    FactorMatrix X, Y;
    RunOptions ro;
    int iterations = 0;
    Evaluation e;
  } best;
  auto better = [](double v, int p, double bv, int bp) { return bp < 0 || v > bv || (v == bv && p < bp); };

  char fingerprint[24];
  std::snprintf(fingerprint, sizeof fingerprint, "%016llx", static_cast<unsigned long long>(data.fingerprint));
  if (!opt.checkpoint_dir.empty() && world.is_root()) {
    std::error_code ec;
    std::filesystem::create_directories(opt.checkpoint_dir, ec);
    if (ec) throw IoError(opt.checkpoint_dir + ": cannot create the checkpoint directory: " + ec.message());
  }
  world.barrier();

  SharedCounter counter(world);  // the next run to hand out
  SharedCounter done(world);     // cost units of the runs done, for progress and ETA
  double total_cost = 0;
  for (const auto& r : runs) total_cost += r.cost();
  auto cost_units = [&](const GridRun& r) { return static_cast<std::int64_t>(1e9 * r.cost() / total_cost); };
  bool interrupted = false;
  while (true) {
    std::int64_t next = gc.is_root() ? counter.fetch_add(1) : 0;
    gc.bcast(&next, 1);
    if (next >= static_cast<std::int64_t>(runs.size())) break;
    const GridRun& run = runs[static_cast<std::size_t>(next)];
    RunOptions ro = opt.base;
    if (opt.base.should_stop) {  // every rank of the group stops at the same iteration
      ro.should_stop = [&gc, local = opt.base.should_stop] { return gc.any(local()); };
    }
    ro.train.als.alpha = static_cast<Real>(run.alpha);
    ro.train.als.factors = run.factors;
    ro.train.als.regularization = static_cast<Real>(run.regularization);
    ro.train.als.solver = parse_solver(run.solver);
    ro.train.iterations = run.iterations.back();
    ro.eval_at = run.iterations;
    ro.label = fmt::format("[group {}, run {}] ", group, run.id);
    if (!opt.checkpoint_dir.empty()) {
      ro.checkpoint = opt.checkpoint_dir + "/run-" + std::to_string(run.id) + ".h5";
      ro.signature = fmt::format("data {} alpha {} factors {} lambda {} solver {} iterations {} confidence {} wr {} "
                                 "cg {} seed {} k {}", fingerprint, run.alpha, run.factors, run.regularization,
                                 run.solver, fmt::join(run.iterations, ","), confidence_name(ro.train.als.confidence),
                                 ro.train.als.scale_regularization, ro.train.als.cg_steps, ro.train.seed, ro.k);
    }
    if (gc.is_root())
      spdlog::info("[group {}] run {} ({}/{} handed out): alpha {}, factors {}, lambda {}, {}, iterations {}", group,
                   run.id, next + 1, runs.size(), run.alpha, run.factors, run.regularization, run.solver,
                   fmt::join(run.iterations, ","));
    ro.on_eval = [&](int it, const Evaluation& e, const Trainer& t) {
      const int point = run_offset[static_cast<std::size_t>(run.id)] +
                        static_cast<int>(std::find(run.iterations.begin(), run.iterations.end(), it) - run.iterations.begin());
      const double v = metric_value(e.model, opt.select_metric);
      if (!model_path.empty() && better(v, point, best.value, best.point)) {
        best.point = point;
        best.value = v;
        best.X = t.user_factors();
        best.Y = t.item_factors();
        best.ro = ro;
        best.iterations = it;
        best.e = e;
      }
    };
    RunResult rr = run_point(gc, data, ro);
    if (rr.interrupted) {
      interrupted = true;
      break;
    }
    if (gc.is_root()) {
      for (std::size_t j = 0; j < run.iterations.size(); ++j) {
        double* row = &table[static_cast<std::size_t>(run_offset[run.id] + static_cast<int>(j)) * kFields];
        const Evaluation& e = rr.evaluations[j];
        row[0] = 1;
        row[1] = group;
        row[2] = gc.size();
        row[3] = ro.train.threads;
        row[4] = rr.seconds;
        row[5] = rr.seconds_per_iteration;
        evaluation_to_row(e, row + kHead);
        double* ph = row + kHead + kEvaluationFields;
        for (int q = 0; q < kNumPhases; ++q) {
          auto it = rr.phases.find(kPhases[q]);
          if (it == rr.phases.end()) continue;
          ph[3 * q] = it->second.min;
          ph[3 * q + 1] = it->second.mean;
          ph[3 * q + 2] = it->second.max;
        }
      }
      const std::int64_t mine = cost_units(run), before = done.fetch_add(mine);
      const double frac = std::min(1.0, static_cast<double>(before + mine) / 1e9), elapsed = Comm::wtime() - t0;
      spdlog::info("[group {}] run {} done in {}: {} {:.4f} at {} iterations (baseline {:.4f}); grid {:.0f}% done, "
                   "elapsed {}, ETA {}", group, run.id, format_seconds(rr.seconds), opt.select_metric,
                   metric_value(rr.evaluations.back().model, opt.select_metric), run.iterations.back(),
                   metric_value(rr.evaluations.back().baseline, opt.select_metric), 100 * frac,
                   format_seconds(elapsed), format_seconds(frac > 0 ? elapsed * (1 - frac) / frac : 0));
    }
  }
  GridResult res;
  if (world.any(interrupted)) {  // checkpoints are written; a rerun with resume continues
    res.interrupted = true;
    return res;
  }
  world.allreduce_sum(table.data(), table.size());

  res.groups = opt.groups;
  res.n_users = data.train.n_users;
  res.n_items = data.train.n_items;
  res.nnz_train = data.train.nnz;
  res.nnz_test = gc.sum<Index>(data.test.nnz());
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const GridRun& run = *by_id[i];
    for (std::size_t j = 0; j < run.iterations.size(); ++j) {
      const double* row = &table[static_cast<std::size_t>(run_offset[i] + static_cast<int>(j)) * kFields];
      if (row[0] != 1) throw Error("grid: point of run " + std::to_string(run.id) + " has no result");
      PointResult p;
      p.run = run.id;
      p.iterations = run.iterations[j];
      p.alpha = run.alpha;
      p.factors = run.factors;
      p.regularization = run.regularization;
      p.solver = run.solver;
      p.group = static_cast<int>(row[1]);
      p.ranks = static_cast<int>(row[2]);
      p.threads = static_cast<int>(row[3]);
      p.seconds = row[4];
      p.seconds_per_iteration = row[5];
      p.evaluation = evaluation_from_row(row + kHead);
      const double* ph = row + kHead + kEvaluationFields;
      for (int q = 0; q < kNumPhases; ++q) p.phases[kPhases[q]] = {ph[3 * q], ph[3 * q + 1], ph[3 * q + 2]};
      res.points.push_back(p);
    }
  }
  for (int p = 0; p < n_points; ++p) {
    const double v = metric_value(res.points[p].evaluation.model, opt.select_metric);
    if (res.best < 0 || better(v, p, metric_value(res.points[res.best].evaluation.model, opt.select_metric), res.best))
      res.best = p;
  }
  res.points[static_cast<std::size_t>(res.best)].best = true;

  if (!model_path.empty()) {
    const PointResult& bp = res.points[static_cast<std::size_t>(res.best)];
    if (group == bp.group) {
      if (best.point != res.best) {
        // The best point was trained by an earlier incarnation of this job (resumed from its
        // checkpoint): train it again. Training is deterministic, so the model is the same.
        RunOptions ro = opt.base;
        ro.train.als.alpha = static_cast<Real>(bp.alpha);
        ro.train.als.factors = bp.factors;
        ro.train.als.regularization = static_cast<Real>(bp.regularization);
        ro.train.als.solver = parse_solver(bp.solver);
        ro.train.iterations = bp.iterations;
        ro.eval_at = {bp.iterations};
        ro.checkpoint.clear();
        ro.should_stop = nullptr;
        ro.label = fmt::format("[group {}, run {} again for its model] ", group, bp.run);
        std::unique_ptr<Trainer> t;
        RunResult rr = run_point(gc, data, ro, &t);
        best.point = res.best;
        best.X = t->user_factors();
        best.Y = t->item_factors();
        best.ro = ro;
        best.iterations = bp.iterations;
        best.e = rr.evaluations.back();
      }
      h5::File src = h5::File::open(data_path, &gc);
      dataset::ItemTable items = dataset::read_items(src);
      src.close();
      ModelMeta meta;
      meta.als = best.ro.train.als;
      meta.iterations = best.iterations;
      meta.seed = best.ro.train.seed;
      meta.k = best.ro.k;
      meta.dataset = data_path;
      meta.dataset_fingerprint = fingerprint;
      meta.created = gc.bcast(utc_now_iso());
      meta.metrics = metric_map(best.e.model);
      meta.system_metrics = metric_map(best.e.system);
      meta.baseline_metrics = metric_map(best.e.baseline);
      ModelParts parts{&best.X, &best.Y, &data.train.users, data.user_ids_local, &items, &data.popularity};
      write_model(model_path, gc, parts, meta);
      if (gc.is_root()) spdlog::info("best model (run {}, {} iterations) written to {}", bp.run, bp.iterations, model_path);
    }
  }
  world.barrier();
  res.seconds = world.max(Comm::wtime() - t0);
  return res;
}

std::string format_grid_table(const GridResult& r, const std::string& metric) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-4s %4s %8s %7s %10s %8s %5s %9s %9s %9s %8s %6s\n", "", "run", "alpha",
                "factors", "lambda", "solver", "iters", "MAP@K", "NDCG@K", "AUC", "s/iter", "group");
  os << line;
  for (const auto& p : r.points) {
    const auto& m = p.evaluation.model;
    std::snprintf(line, sizeof line, "%-4s %4d %8g %7d %10g %8s %5d %9.4f %9.4f %9.4f %8.3f %6d\n",
                  p.best ? "best" : "", p.run, p.alpha, p.factors, p.regularization, p.solver.c_str(), p.iterations, m.map,
                  m.ndcg, m.auc, p.seconds_per_iteration, p.group);
    os << line;
  }
  const PointResult& b = r.points.at(static_cast<std::size_t>(r.best));
  const double v = metric_value(b.evaluation.model, metric), base = metric_value(b.evaluation.baseline, metric);
  std::snprintf(line, sizeof line, "best by %s: run %d at %d iterations, %.4f against the popularity baseline's %.4f (%s, %.2fx)\n",
                metric.c_str(), b.run, b.iterations, v, base, v > base ? "beats it" : "DOES NOT beat it",
                base > 0 ? v / base : 0.0);
  os << line;
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
    for (const char* view : {"metrics", "system", "baseline"}) {
      for (const char* key : kMetricKeys)
        col_d(std::string(view) + "/" + key, [&](const PointResult& p) {
          const Evaluation& e = p.evaluation;
          return metric_value(view[0] == 'm' ? e.model : view[0] == 's' ? e.system : e.baseline, key);
        });
    }
    f.set_attr("/", "format", "mfrec-experiment");
    f.set_attr("/", "format_version", std::int64_t(1));
    f.set_attr("/", "data", data_path);
    f.set_attr("/", "select_metric", opt.select_metric);
    f.set_attr("/", "groups", r.groups);
    f.set_attr("/", "k", opt.base.k);
    f.set_attr("/", "best", r.best);
    f.set_attr("/", "seconds", r.seconds);
    f.set_attr("/", "created", utc_now_iso());
    f.commit();
  }
  if (!csv_path.empty()) {
    const std::string tmp = csv_path + ".partial";
    std::ofstream out(tmp);
    out << "best,run,alpha,factors,regularization,solver,iterations";
    for (const char* k : kMetricKeys) out << ',' << k;
    for (const char* k : kMetricKeys) out << ",baseline_" << k;
    out << ",seconds,seconds_per_iteration,group,ranks\n";
    for (const auto& p : r.points) {
      out << (p.best ? "*" : "") << ',' << p.run << ',' << p.alpha << ',' << p.factors << ',' << p.regularization << ','
          << p.solver << ',' << p.iterations;
      for (const char* k : kMetricKeys) out << ',' << metric_value(p.evaluation.model, k);
      for (const char* k : kMetricKeys) out << ',' << metric_value(p.evaluation.baseline, k);
      out << ',' << p.seconds << ',' << p.seconds_per_iteration << ',' << p.group << ',' << p.ranks << '\n';
    }
    out.close();
    if (!out || std::rename(tmp.c_str(), csv_path.c_str()) != 0) throw IoError(csv_path + ": cannot write");
  }
}

}  // namespace mfrec
