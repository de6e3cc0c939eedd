#include "mfrec/grid.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>

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

// A point as a fixed row of doubles, so the whole table travels in one allreduce (every row has
// exactly one contributing rank; the others add zeros).
// present, group, ranks, threads, seconds, seconds_per_iteration, exchange (0 allgather, 1 sparse)
constexpr int kHead = 7;
const char* const kPhases[] = {"gram", "allreduce", "solve", "exchange", "evaluation", "loss", "basis"};
constexpr int kNumPhases = 7;
const char* const kTraffic[] = {"allreduce", "exchange"};  // bytes sent, received: min, mean, max
constexpr int kNumTraffic = 2;
constexpr int kFields = kHead + kEvaluationFields + 3 * kNumPhases + 6 * kNumTraffic;

void stats_to_row(const std::map<std::string, PhaseTimer::Stat>& m, const char* name, double* out) {
  auto it = m.find(name);
  if (it == m.end()) return;
  out[0] = it->second.min;
  out[1] = it->second.mean;
  out[2] = it->second.max;
}

}  // namespace

double metric_value(const MetricSums& m, const std::string& key) {
  check_metric_name(key);
  return metric_map(m).at(key);
}

namespace {

// Points in canonical order: by run id, then iterations. Point p of run r is row
// offset[r] + (index of its iteration count).
struct Layout {
  std::vector<const GridRun*> by_id;
  std::vector<int> offset;
  int n_points = 0;
  explicit Layout(const std::vector<GridRun>& runs) : by_id(runs.size()), offset(runs.size() + 1, 0) {
    for (const auto& r : runs) by_id.at(static_cast<std::size_t>(r.id)) = &r;
    for (std::size_t i = 0; i < runs.size(); ++i)
      offset[i + 1] = offset[i] + static_cast<int>(by_id[i]->iterations.size());
    n_points = offset.back();
  }
  int point(const GridRun& run, int iterations) const {
    const auto& its = run.iterations;
    return offset[static_cast<std::size_t>(run.id)] +
           static_cast<int>(std::find(its.begin(), its.end(), iterations) - its.begin());
  }
};

// This group's best point so far, with its factors: the global best is some group's best.
struct BestModel {
  int point = -1;
  double value = 0;
  FactorMatrix X, Y;  // this rank's rows
  RunOptions ro;
  int iterations = 0;
  Evaluation e;
};

bool better(double v, int p, double bv, int bp) { return bp < 0 || v > bv || (v == bv && p < bp); }

// The one place a point's training options are made: the base with the point's hyperparameters.
RunOptions point_options(const RunOptions& base, double alpha, int factors, double regularization,
                         const std::string& solver, std::vector<int> eval_at) {
  RunOptions ro = base;
  ro.train.als.alpha = static_cast<Real>(alpha);
  ro.train.als.factors = factors;
  ro.train.als.regularization = static_cast<Real>(regularization);
  ro.train.als.solver = parse_solver(solver);
  ro.train.iterations = eval_at.back();
  ro.eval_at = std::move(eval_at);
  return ro;
}

void fill_row(double* row, int group, int ranks, int threads, const RunResult& rr, const Evaluation& e) {
  row[0] = 1;
  row[1] = group;
  row[2] = ranks;
  row[3] = threads;
  row[4] = rr.seconds;
  row[5] = rr.seconds_per_iteration;
  row[6] = rr.exchange == ExchangeMode::kSparse ? 1 : 0;
  evaluation_to_row(e, row + kHead);
  double* ph = row + kHead + kEvaluationFields;
  for (int q = 0; q < kNumPhases; ++q) stats_to_row(rr.phases, kPhases[q], ph + 3 * q);
  double* tr = ph + 3 * kNumPhases;
  for (int q = 0; q < kNumTraffic; ++q) {
    stats_to_row(rr.sent, kTraffic[q], tr + 6 * q);
    stats_to_row(rr.received, kTraffic[q], tr + 6 * q + 3);
  }
}

struct GroupContext {
  const Comm& world;
  const Comm& gc;
  int group;
  const GroupData& data;
  const GridOptions& opt;
  std::string fingerprint;
  bool keep_best;  // a model is wanted: keep the best factors
};

// Schedule: the group takes the next run from the shared counter until none is left, and fills
// its points' rows of `table` (on the group's root). False when a signal stopped it.
bool schedule_runs(const GroupContext& g, const std::vector<GridRun>& runs, const Layout& layout,
                   std::vector<double>& table, BestModel& best, double t0) {
  // Runs are handed out through one-sided counters when every rank is on one node. Across nodes
  // one-sided MPI over TCP is often unavailable (Debian's Open MPI excludes the osc components
  // that work there) and its failure path has crashed ranks: a static schedule instead, the same
  // on every rank: runs in order (larger first) each to the group with the least cost so far.
  const bool one_node = g.world.split_shared().size() == g.world.size();
  std::optional<SharedCounter> counter, done;  // the next run to hand out; cost units done
  if (one_node) {
    counter.emplace(g.world);
    done.emplace(g.world);
  }
  double total_cost = 0;
  for (const auto& r : runs) total_cost += r.cost();
  auto cost_units = [&](const GridRun& r) { return static_cast<std::int64_t>(1e9 * r.cost() / total_cost); };
  const GridOptions& opt = g.opt;
  std::vector<std::int64_t> mine;
  std::int64_t done_here = 0;
  if (!one_node || !counter->available() || !done->available()) {
    if (g.world.is_root())
      spdlog::info("grid: {}: runs are assigned to groups statically, largest first",
                   one_node ? "one-sided MPI is unavailable" : "ranks on several nodes");
    std::vector<double> load(static_cast<std::size_t>(opt.groups), 0.0);
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const auto to = std::min_element(load.begin(), load.end()) - load.begin();
      load[static_cast<std::size_t>(to)] += runs[i].cost();
      if (to == g.group) mine.push_back(static_cast<std::int64_t>(i));
    }
    mine.push_back(static_cast<std::int64_t>(runs.size()));  // then: no more runs
  }
  std::size_t taken = 0;
  while (true) {
    std::int64_t next = 0;
    if (!mine.empty()) next = mine[std::min(taken++, mine.size() - 1)];
    else next = g.gc.is_root() ? counter->fetch_add(1) : 0;
    g.gc.bcast(&next, 1);
    if (next >= static_cast<std::int64_t>(runs.size())) return true;
    const GridRun& run = runs[static_cast<std::size_t>(next)];
    RunOptions ro = point_options(opt.base, run.alpha, run.factors, run.regularization, run.solver, run.iterations);
    if (opt.base.should_stop)  // every rank of the group stops at the same iteration
      ro.should_stop = [&gc = g.gc, local = opt.base.should_stop] { return gc.any(local()); };
    ro.label = fmt::format("[group {}, run {}] ", g.group, run.id);
    if (!opt.checkpoint_dir.empty()) {
      ro.checkpoint = opt.checkpoint_dir + "/run-" + std::to_string(run.id) + ".h5";
      ro.signature = fmt::format("data {} alpha {} factors {} lambda {} solver {} iterations {} confidence {} wr {} "
                                 "cg {} seed {} k {} knn {} eval-users {}", g.fingerprint, run.alpha, run.factors, run.regularization,
                                 run.solver, fmt::join(run.iterations, ","), confidence_name(ro.train.als.confidence),
                                 ro.train.als.scale_regularization, ro.train.als.cg_steps, ro.train.seed, ro.k, opt.knn_k,
                                 ro.eval_users);
    }
    if (g.gc.is_root())
      spdlog::info("[group {}] run {} ({}/{} handed out): alpha {}, factors {}, lambda {}, {}, iterations {}", g.group,
                   run.id, next + 1, runs.size(), run.alpha, run.factors, run.regularization, run.solver,
                   fmt::join(run.iterations, ","));
    ro.on_eval = [&](int it, const Evaluation& e, const Trainer& t) {
      const int point = layout.point(run, it);
      const double v = metric_value(e.model, opt.select_metric);
      if (g.keep_best && better(v, point, best.value, best.point)) {
        best.point = point;
        best.value = v;
        t.copy_standard_factors(best.X, best.Y);
        best.ro = ro;
        best.iterations = it;
        best.e = e;
      }
    };
    RunResult rr = run_point(g.gc, g.data, ro);
    if (rr.interrupted) return false;
    if (!g.gc.is_root()) continue;
    for (std::size_t j = 0; j < run.iterations.size(); ++j)
      fill_row(&table[static_cast<std::size_t>(layout.point(run, run.iterations[j])) * kFields], g.group, g.gc.size(),
               ro.train.threads, rr, rr.evaluations[j]);
    const std::int64_t units = cost_units(run), before = mine.empty() ? done->fetch_add(units) : done_here;
    done_here += units;  // static schedule: this group's share only
    const double frac = std::min(1.0, static_cast<double>(before + units) / 1e9), elapsed = Comm::wtime() - t0;
    spdlog::info("[group {}] run {} done in {}: {} {:.4f} at {} iterations (baseline {:.4f}); grid {:.0f}% done, "
                 "elapsed {}, ETA {}", g.group, run.id, format_seconds(rr.seconds), opt.select_metric,
                 metric_value(rr.evaluations.back().model, opt.select_metric), run.iterations.back(),
                 metric_value(rr.evaluations.back().baseline, opt.select_metric), 100 * frac,
                 format_seconds(elapsed), format_seconds(frac > 0 ? elapsed * (1 - frac) / frac : 0));
  }
}

// Collect: every group's rows summed over the world, as points in canonical order, best marked.
void collect_points(const Comm& world, const Layout& layout, std::vector<double>& table, const std::string& metric,
                    GridResult& res) {
  world.allreduce_sum(table.data(), table.size());
  for (const GridRun* run : layout.by_id) {
    for (int its : run->iterations) {
      const double* row = &table[static_cast<std::size_t>(layout.point(*run, its)) * kFields];
      if (row[0] != 1) throw Error("grid: point of run " + std::to_string(run->id) + " has no result");
      PointResult p;
      p.run = run->id;
      p.iterations = its;
      p.alpha = run->alpha;
      p.factors = run->factors;
      p.regularization = run->regularization;
      p.solver = run->solver;
      p.group = static_cast<int>(row[1]);
      p.ranks = static_cast<int>(row[2]);
      p.threads = static_cast<int>(row[3]);
      p.seconds = row[4];
      p.seconds_per_iteration = row[5];
      p.exchange = row[6] == 1 ? ExchangeMode::kSparse : ExchangeMode::kAllgather;
      p.evaluation = evaluation_from_row(row + kHead);
      const double* ph = row + kHead + kEvaluationFields;
      for (int q = 0; q < kNumPhases; ++q) p.phases[kPhases[q]] = {ph[3 * q], ph[3 * q + 1], ph[3 * q + 2]};
      const double* tr = ph + 3 * kNumPhases;
      for (int q = 0; q < kNumTraffic; ++q) {
        p.sent[kTraffic[q]] = {tr[6 * q], tr[6 * q + 1], tr[6 * q + 2]};
        p.received[kTraffic[q]] = {tr[6 * q + 3], tr[6 * q + 4], tr[6 * q + 5]};
      }
      res.points.push_back(p);
    }
  }
  for (int p = 0; p < layout.n_points; ++p) {
    const double v = metric_value(res.points[p].evaluation.model, metric);
    if (res.best < 0 || better(v, p, metric_value(res.points[res.best].evaluation.model, metric), res.best))
      res.best = p;
  }
  res.points[static_cast<std::size_t>(res.best)].best = true;
}

// Write best: the group that trained the best point writes its model (training it again when an
// earlier incarnation of the job trained it, before a resume).
void write_best_model(const GroupContext& g, const GridResult& res, BestModel& best, const std::string& data_path,
                      const std::string& model_path) {
  const PointResult& bp = res.points[static_cast<std::size_t>(res.best)];
  if (g.group != bp.group) return;
  if (best.point != res.best) {
    // Training is deterministic, so the model is the same as the first time.
    RunOptions ro = point_options(g.opt.base, bp.alpha, bp.factors, bp.regularization, bp.solver, {bp.iterations});
    ro.checkpoint.clear();
    ro.should_stop = nullptr;
    ro.label = fmt::format("[group {}, run {} again for its model] ", g.group, bp.run);
    std::unique_ptr<Trainer> t;
    RunResult rr = run_point(g.gc, g.data, ro, &t);
    best.point = res.best;
    t->copy_standard_factors(best.X, best.Y);
    best.ro = ro;
    best.iterations = bp.iterations;
    best.e = rr.evaluations.back();
  }
  h5::File src = h5::File::open(data_path, &g.gc);
  dataset::ItemTable items = dataset::read_items(src);
  src.close();
  ModelMeta meta;
  meta.als = best.ro.train.als;
  meta.iterations = best.iterations;
  meta.seed = best.ro.train.seed;
  meta.k = best.ro.k;
  meta.dataset = data_path;
  meta.dataset_fingerprint = g.fingerprint;
  meta.select_metric = g.opt.select_metric;  // the registry compares models on it
  meta.created = g.gc.bcast(utc_now_iso());
  meta.metrics = metric_map(best.e.model);
  meta.system_metrics = metric_map(best.e.system);
  meta.baseline_metrics = metric_map(best.e.baseline);
  ModelParts parts{&best.X, &best.Y, g.data.train.item_bounds[g.gc.rank()], &g.data.train.users, g.data.user_ids_local,
                   &items, &g.data.popularity, &g.data.knn,
                   g.data.knn.empty() ? std::map<std::string, double>{} : metric_map(best.e.knn)};
  write_model(model_path, g.gc, parts, meta);
  if (g.gc.is_root()) spdlog::info("best model (run {}, {} iterations) written to {}", bp.run, bp.iterations, model_path);
}

}  // namespace

void check_grid_options(const GridOptions& opt, int world_size) {
  require_option(opt.groups >= 1, "groups", "must be at least 1");
  require_option(opt.groups <= world_size, "groups",
                 std::to_string(opt.groups) + " groups need at least as many ranks (have " +
                     std::to_string(world_size) + ")");
  check_metric_name(opt.select_metric);
  require_option(opt.knn_k >= 0, "knn-k", "must not be negative (0: no kNN baseline)");
}

GridResult run_grid(const Comm& world, const std::string& data_path, const std::vector<GridRun>& runs,
                    const GridOptions& opt, const std::string& model_path) {
  check_grid_options(opt, world.size());
  if (runs.empty()) throw ConfigError("grid: no runs");
  const double t0 = Comm::wtime();
  const Layout layout(runs);

  // Set-up: contiguous blocks of ranks form the groups; each group loads the data once.
  const int group = static_cast<int>(static_cast<long long>(world.rank()) * opt.groups / world.size());
  Comm gc = world.split(group, world.rank());
  if (gc.is_root()) enable_leader_logging();
  GroupData data = read_group_data(data_path, gc);
  if (opt.knn_k > 0) {  // once per group: it depends on the data only
    const double t = Comm::wtime();
    data.knn = item_knn(gc, data.train, opt.knn_k, opt.base.train.threads);
    data.knn_seconds = gc.max(Comm::wtime() - t);
    const double t2 = Comm::wtime();
    data.knn_view = evaluate_knn(gc, data.train, data.test, data.knn, data.popularity, opt.base.k, opt.base.train.threads,
                                 EvalSample{opt.base.eval_users, opt.base.train.seed});
    const double eval_seconds = gc.max(Comm::wtime() - t2);
    if (gc.is_root())
      spdlog::info("[group {}] item-kNN baseline: {} neighbours per item, {} lists computed in {:.2f} s, evaluated in "
                   "{:.2f} s: MAP@{} {:.4f}", group, opt.knn_k, data.knn.n_items, data.knn_seconds,
                   eval_seconds, opt.base.k, data.knn_view.map);
  }
  if (world.is_root())
    spdlog::info("grid: {} runs ({} points) on {} group(s) of ~{} rank(s)", runs.size(), layout.n_points, opt.groups,
                 world.size() / opt.groups);
  GroupContext g{world, gc, group, data, opt, fmt::format("{:016x}", data.fingerprint), !model_path.empty()};
  if (!opt.checkpoint_dir.empty())
    agree_on(world, [&] {
      std::error_code ec;
      if (world.is_root()) std::filesystem::create_directories(opt.checkpoint_dir, ec);
      if (ec) throw IoError(opt.checkpoint_dir + ": cannot create the checkpoint directory: " + ec.message());
    });

  std::vector<double> table(static_cast<std::size_t>(layout.n_points) * kFields, 0.0);
  BestModel best;
  GridResult res;
  const bool finished = schedule_runs(g, runs, layout, table, best, t0);
  if (world.any(!finished)) {  // checkpoints are written; a rerun with resume continues
    res.interrupted = true;
    return res;
  }
  collect_points(world, layout, table, opt.select_metric, res);
  res.groups = opt.groups;
  res.n_users = data.train.n_users;
  res.n_items = data.train.n_items;
  res.nnz_train = data.train.nnz;
  res.nnz_test = gc.sum<Index>(data.test.nnz());
  res.knn_k = opt.knn_k;
  res.knn_seconds = world.max(data.knn_seconds);
  if (!model_path.empty()) write_best_model(g, res, best, data_path, model_path);
  world.barrier();
  res.seconds = world.max(Comm::wtime() - t0);
  return res;
}

}  // namespace mfrec
