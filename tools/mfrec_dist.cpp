// mfrec_dist: distributed implicit-feedback ALS training, evaluation and grid search.
//   mpirun -n 32 mfrec_dist --data retail_prepared.h5 --output model.h5 --report run.json
//   mpirun -n 8 mfrec_dist --alpha 1,10 --factors 16,32 --regularization 10,100 --groups 4 --registry registry
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "mfrec/affinity.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/config.hpp"
#include "mfrec/durable.hpp"
#include "mfrec/grid.hpp"
#include "mfrec/log.hpp"
#include "mfrec/model.hpp"
#include "mfrec/paths.hpp"
#include "mfrec/registry.hpp"
#include "mfrec/signals.hpp"
#include "mfrec/version.hpp"

using namespace mfrec;

namespace {

struct Options {
  std::string data = "retail_prepared.h5", output = "model.h5", report, experiment, summary_csv, registry;
  std::string model_name = "retail-als", select_metric = "map_at_k";
  // Lists, defaulting to the one table of defaults (als_kernels.hpp: defaults).
  std::string alpha = fmt::format("{}", defaults::kAlpha), factors = std::to_string(defaults::kFactors),
              regularization = fmt::format("{}", defaults::kRegularization),
              iterations = std::to_string(defaults::kIterations), solver = "cg";
  int cg_steps = defaults::kCgSteps, k = 20, threads = 0, loss_every = 0, groups = 1;
  int knn_k = kDefaultKnnK;  // the item-kNN baseline's neighbours per item; 0: none
  std::string confidence = "hu", log_level = "info", checkpoint_dir, exchange = "auto";
  int checkpoint_every = 0;
  long long eval_users = 0;  // a seeded sample of this many test users; 0: all
  double exchange_memory = TrainConfig{}.exchange_memory_mib;
  double eval_memory = RunOptions{}.eval_memory_mib;
  bool scale_regularization = false, auto_promote = true, resume = false;
  unsigned long seed = defaults::kSeed;  // unsigned: "-1" is refused by the parser
};

nlohmann::json metrics_json(const MetricSums& m) {
  nlohmann::json j;
  for (const auto& [k, v] : metric_map(m)) j[k] = v;
  for (const auto& [k, v] : metric_se_map(m)) j[k] = v;
  return j;
}

// Each metric with its standard error over the evaluated users (value ±SE).
void print_best(const PointResult& p, long long eval_users) {
  const Evaluation& e = p.evaluation;
  const bool knn = e.knn_k > 0;  // the kNN column only when it was computed
  std::printf("\n%-16s %17s %17s %17s%s\n", ("metric @" + std::to_string(e.k)).c_str(), "ALS (±SE)", "system (±SE)",
              "popular (±SE)", knn ? fmt::format(" {:>17}", fmt::format("kNN@{} (±SE)", e.knn_k)).c_str() : "");
  const MetricSums* views[] = {&e.model, &e.system, &e.baseline, &e.knn};
  const char* names[] = {"MAP@K", "MAP@K (seed AP)", "precision@K", "recall@K", "NDCG@K", "AUC"};
  for (int j = 0; j < MetricSums::kMetrics; ++j) {
    std::string line = fmt::format("{:<16}", names[j]);
    for (int v = 0; v < (knn ? 4 : 3); ++v)
      line += fmt::format(" {:>17}", fmt::format("{:.4f} ±{:.4f}", views[v]->values()[j], views[v]->se[j]));
    std::printf("%s\n", line.c_str());
  }
  std::printf("users evaluated: %lld%s, of which %lld have no training history ('system' gives them the popular list)\n\n",
              static_cast<long long>(e.model.n_users),
              eval_users > 0 ? fmt::format(" (a seeded sample: --eval-users {})", eval_users).c_str() : "",
              static_cast<long long>(e.cold_users));
}

nlohmann::json phases_json(const std::map<std::string, PhaseTimer::Stat>& phases) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, s] : phases) j[name] = {{"min", s.min}, {"mean", s.mean}, {"max", s.max}};
  return j;
}

// Bytes per rank per iteration by phase: {"exchange": {"sent": {min, mean, max}, "received": ...}}.
nlohmann::json traffic_json(const PointResult& p) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, s] : p.sent) j[name]["sent"] = {{"min", s.min}, {"mean", s.mean}, {"max", s.max}};
  for (const auto& [name, s] : p.received) j[name]["received"] = {{"min", s.min}, {"mean", s.mean}, {"max", s.max}};
  return j;
}

// Set-up: the options, the grid (expanded and validated once) and the training options.
struct Setup {
  Options o;
  std::vector<PathArg> paths;  // every file and directory this run reads or writes
  std::vector<GridRun> runs;
  GridOptions grid;
  ThreadBinding binding;   // this rank's cores and threads
  nlohmann::json bindings;  // every rank's, for the report (rank 0)
};

// False when --help, --version or --list-options was printed.
bool set_up(Comm& world, int argc, char** argv, Setup& s) {
  Options& o = s.o;
  Cli cli("mfrec_dist",
          "Distributed implicit-feedback ALS (Hu, Koren, Volinsky 2008). Trains on a prepared data set (mfrec_prep),\n"
          "evaluates on its held-out test matrix against the popularity baseline and writes the model as HDF5.\n"
          "Users and items are partitioned over the ranks. Hyperparameters take comma-separated lists: their\n"
          "product is a grid, searched by --groups groups of ranks in parallel; the best point by --select-metric\n"
          "is written to --output and, with --registry, registered.");
  cli
      .path("data", &o.data, PathRole::InputFile, "prepared data set (HDF5, from mfrec_prep)")
      .path("output,o", &o.output, PathRole::OutputFile, "model file of the best point (HDF5; empty: none)")
      .path("report", &o.report, PathRole::OutputFile, "JSON run report (rank 0; empty: none)")
      .path("experiment", &o.experiment, PathRole::OutputFile, "experiment log of every point (HDF5; empty: none)")
      .path("summary-csv", &o.summary_csv, PathRole::OutputFile, "CSV summary, one row a point, best marked (empty: none)")
      .option("alpha,a", &o.alpha, "confidence scale alpha (list)")
      .option("factors,f", &o.factors, "latent factors (list)")
      .option("regularization,l", &o.regularization, "regularisation lambda (list)")
      .option("iterations,i", &o.iterations, "ALS iterations (list; one run per other point, evaluated at each)")
      .option("solver", &o.solver, "cg (conjugate gradient, --cg-steps warm-started steps; on the side with more rows, rows with at most factors/2 non-zeros solved exactly) or cholesky (exact) (list)")
      .option("cg-steps", &o.cg_steps, "conjugate-gradient steps per solve")
      .option("confidence", &o.confidence, "hu: c = 1 + alpha r; implicit: c = alpha r (as the `implicit` library)")
      .flag("scale-regularization", &o.scale_regularization, "scale lambda by each row's non-zeros (ALS-WR, as Spark)")
      .option("seed", &o.seed, "seed of the initial factors (0 or more)")
      .option("k", &o.k, "cut-off K of the ranking metrics")
      .option("eval-users", &o.eval_users, "evaluate a seeded sample of this many test users (the same users for any rank count and group; the smallest hashes of --seed and the user) and report standard errors; 0: every test user")
      .option("eval-memory", &o.eval_memory, "the most MiB of item factors a rank gathers at once to evaluate when it does not hold them all; beyond it the items are scored in blocks (two passes, twice the gathers; the same results; 0: no limit)")
      .option("groups,g", &o.groups, "grid: split the ranks into this many groups, each training one point at a time")
      .option("knn-k", &o.knn_k, "neighbours per item of the item-kNN baseline (cosine, as implicit's CosineRecommender), reported next to popularity and stored in the model; 0: none")
      .option("select-metric", &o.select_metric, "grid: the metric that picks the best point (map_at_k, map_at_k_seed, precision_at_k, recall_at_k, ndcg_at_k, auc)")
      .path("registry", &o.registry, PathRole::OutputDir, "register the best model in this registry directory (empty: none)")
      .option("model-name", &o.model_name, "name of the model in the registry")
      .option("auto-promote", &o.auto_promote, "label the registered model 'production' if, on --select-metric, it beats the popularity baseline and the production model (same data set)")
      .path("checkpoint-dir", &o.checkpoint_dir, PathRole::OutputDir, "write checkpoints (one HDF5 file per training run) here; empty: <output>.ckpt when --checkpoint-every is set")
      .option("checkpoint-every", &o.checkpoint_every, "checkpoint every N iterations (0: only on SIGTERM/SIGUSR1 and at the end of each run, if a directory is set)")
      .flag("resume", &o.resume, "continue from the checkpoints in --checkpoint-dir (completed runs are not trained again)")
      .option("exchange", &o.exchange, "how updated rows reach the other ranks: allgather (every rank holds every row), sparse (each row only to the ranks whose data reference it; memory and traffic fall with the ranks) or auto (the fewer bytes, decided after set-up and logged)")
      .option("exchange-memory", &o.exchange_memory, "sparse exchange: the most MiB of user rows a rank holds for its item half-step; beyond it the item rows are solved in stages that keep each user row from the first stage reading it to the last (received again only when the users live at once exceed the budget; 0: no limit)")
      .option("threads", &o.threads, "OpenMP threads per rank (0: the cores the rank is bound to / the ranks of the node sharing them)")
      .option("loss-every", &o.loss_every, "log the training loss every N iterations (0: never)")
      .option("log-level", &o.log_level, "debug, info, warn or error");
  if (!cli.parse(argc, argv, world.is_root())) return false;

  GridSpace space;
  space.alpha = parse_list<double>("alpha", o.alpha);
  space.factors = parse_list<int>("factors", o.factors);
  space.regularization = parse_list<double>("regularization", o.regularization);
  space.iterations = parse_list<int>("iterations", o.iterations);
  space.solver = parse_list<std::string>("solver", o.solver);
  s.runs = expand_grid(space);  // validates the lists
  require_option(o.k >= 1, "k", "must be at least 1");
  require_option(o.eval_users >= 0, "eval-users", "must not be negative (0: every test user)");
  require_option(std::isfinite(o.exchange_memory) && o.exchange_memory >= 0, "exchange-memory",
                 "must be a non-negative number of MiB (0: no limit)");
  require_option(std::isfinite(o.eval_memory) && o.eval_memory >= 0, "eval-memory",
                 "must be a non-negative number of MiB (0: no limit)");
  require_option(o.cg_steps >= 1, "cg-steps", "must be at least 1");
  require_option(o.threads >= 0, "threads", "must not be negative (0: automatic)");
  require_option(o.loss_every >= 0, "loss-every", "must not be negative");
  require_option(o.checkpoint_every >= 0, "checkpoint-every", "must not be negative");
  require_option(o.registry.empty() || !o.output.empty(), "registry", "needs a model file (--output)");

  s.paths = cli.paths();
  if (o.checkpoint_dir.empty() && (o.checkpoint_every > 0 || o.resume)) {
    o.checkpoint_dir = (o.output.empty() ? std::string("mfrec") : o.output) + ".ckpt";
    s.paths.push_back({"checkpoint-dir", o.checkpoint_dir, PathRole::OutputDir});  // derived: checked like the others
  }

  GridOptions& go = s.grid;
  go.groups = o.groups;
  go.select_metric = o.select_metric;  // checked, with groups, by run_grid before any work
  go.knn_k = o.knn_k;
  go.base.train.als.cg_steps = o.cg_steps;
  go.base.train.als.confidence = parse_confidence(o.confidence);
  go.base.train.als.scale_regularization = o.scale_regularization;
  go.base.train.seed = o.seed;
  go.base.train.exchange = parse_exchange(o.exchange);
  go.base.train.exchange_memory_mib = o.exchange_memory;
  go.base.k = o.k;
  go.base.eval_users = o.eval_users;
  go.base.eval_memory_mib = o.eval_memory;
  go.base.loss_every = o.loss_every;
  go.checkpoint_dir = o.checkpoint_dir;
  go.base.checkpoint_every = o.checkpoint_every;
  go.base.resume = o.resume;
  init_logging(world, "mfrec_dist", o.log_level);
  s.binding = bind_threads(world, o.threads);  // logs the binding; warns if --threads oversubscribes
  s.bindings = binding_report(world, s.binding);
  go.base.train.threads = s.binding.threads;
  return true;
}

// Removes the outputs this run wrote unless dismissed: a failure after the model is written
// (e.g. the registry refuses the model name) leaves nothing half-done behind. Rank 0 removes
// them: the model file is shared, the other outputs are rank 0's.
class OutputsOnFailure {
 public:
  void add(const std::string& path) { if (!path.empty()) paths_.push_back(path); }
  void dismiss() { paths_.clear(); }
  ~OutputsOnFailure() {  // newest first: files before the directory that may hold them
    for (auto p = paths_.rbegin(); p != paths_.rend(); ++p) std::remove(p->c_str());  // a non-empty directory stays
  }

 private:
  std::vector<std::string> paths_;
};

// Register: publish the model (rank 0) as a candidate; with --auto-promote, label it production
// only when it beats the popularity baseline and the production model on the selection metric,
// on the same data set (champion/challenger: Registry::promote_if_better). One line says why.
nlohmann::json register_model(const Options& o, Registry& registry) {
  RegistryEntry e = registry.publish(o.output, o.model_name, {"candidate"});
  PromotionDecision d;
  if (o.auto_promote) {
    d = registry.promote_if_better(e.spec(), &e);
  } else {
    d.metric = selection_metric(e.meta);
    d.reason = "auto-promotion is off (--auto-promote false)";
  }
  spdlog::info("registered {} version {} in {}, {}: {}", e.name, e.version, o.registry,
               d.promote ? "promoted to production" : "kept as a candidate", d.reason);
  return {{"name", e.name}, {"version", e.version}, {"stages", e.stages}, {"file", e.file},
          {"promotion", nlohmann::json(promotion_json(d))}};
}

// Report: the metrics table on stdout.
void print_results(const GridResult& res, const Options& o) {
  const PointResult& best = res.points.at(static_cast<std::size_t>(res.best));
  const double v = metric_value(best.evaluation.model, o.select_metric);
  const double base = metric_value(best.evaluation.baseline, o.select_metric);
  if (res.points.size() > 1) std::printf("\n%s", format_grid_table(res, o.select_metric).c_str());
  print_best(best, o.eval_users);
  std::printf("ALS %s %.4f vs popularity %.4f: %s (%.2fx)\n", o.select_metric.c_str(), v, base,
              metric_beats(v, base) ? "beats the baseline" : "does NOT beat the baseline", base > 0 ? v / base : 0.0);
  if (best.evaluation.knn_k > 0) {
    const double kv = metric_value(best.evaluation.knn, o.select_metric);
    std::printf("ALS %s %.4f vs item-kNN (k=%d, computed in %.2f s) %.4f: %s (%.2fx)\n", o.select_metric.c_str(), v,
                best.evaluation.knn_k, res.knn_seconds, kv, metric_beats(v, kv) ? "beats it" : "does NOT beat it",
                kv > 0 ? v / kv : 0.0);
  }
  std::fflush(stdout);
}

// The JSON run report: configuration, ranks and threads, timings, metrics, the grid.
nlohmann::json report_json(const GridResult& res, const Setup& s, int ranks, const PhaseTimer::Stat& rss,
                           const nlohmann::json& reg) {
  const Options& o = s.o;
  const PointResult& best = res.points.at(static_cast<std::size_t>(res.best));
  const double v = metric_value(best.evaluation.model, o.select_metric);
  const double base = metric_value(best.evaluation.baseline, o.select_metric);
  nlohmann::json j;
  j["program"] = "mfrec_dist";
  j["version"] = kVersion;
  j["config"] = {{"data", o.data},           {"alpha", o.alpha},       {"factors", o.factors},
                 {"regularization", o.regularization}, {"iterations", o.iterations}, {"solver", o.solver},
                 {"cg_steps", o.cg_steps},   {"confidence", o.confidence},
                 {"scale_regularization", o.scale_regularization}, {"seed", o.seed}, {"k", o.k},
                 {"groups", o.groups},       {"select_metric", o.select_metric}, {"output", o.output},
                 {"knn_k", o.knn_k}, {"exchange", o.exchange}, {"exchange_memory", o.exchange_memory},
                 {"eval_users", o.eval_users}, {"eval_memory", o.eval_memory}};
  j["ranks"] = ranks;
  j["threads"] = s.grid.base.train.threads;
  j["binding"] = s.bindings;
  j["seconds"] = res.seconds;
  j["best"] = {{"run", best.run},       {"alpha", best.alpha},     {"factors", best.factors},
               {"regularization", best.regularization}, {"solver", best.solver}, {"iterations", best.iterations},
               {"ranks", best.ranks}};
  j["data"] = {{"users", res.n_users}, {"items", res.n_items}, {"nnz_train", res.nnz_train},
               {"nnz_test", res.nnz_test}, {"evaluated_users", best.evaluation.model.n_users},
               {"cold_users", best.evaluation.cold_users}};
  j["seconds_per_iteration"] = best.seconds_per_iteration;
  j["phases"] = phases_json(best.phases);
  j["exchange"] = exchange_name(best.exchange);  // the mode used (auto resolved)
  j["bytes_per_iteration"] = traffic_json(best);
  j["peak_rss_mib"] = {{"min", rss.min}, {"mean", rss.mean}, {"max", rss.max}};
  j["metrics"] = metrics_json(best.evaluation.model);
  j["system"] = metrics_json(best.evaluation.system);
  j["baseline"] = metrics_json(best.evaluation.baseline);
  j["beats_baseline"] = metric_beats(v, base);
  if (best.evaluation.knn_k > 0) {  // the item-kNN baseline: absent with --knn-k 0
    j["knn"] = metrics_json(best.evaluation.knn);
    j["knn"]["k"] = best.evaluation.knn_k;
    j["knn"]["seconds"] = res.knn_seconds;
    j["beats_knn"] = metric_beats(v, metric_value(best.evaluation.knn, o.select_metric));
  }
  if (!reg.is_null()) j["registry"] = reg;
  for (const auto& p : res.points)
    j["grid"].push_back({{"run", p.run}, {"alpha", p.alpha}, {"factors", p.factors},
                         {"regularization", p.regularization}, {"solver", p.solver},
                         {"iterations", p.iterations}, {"group", p.group}, {"ranks", p.ranks},
                         {"seconds", p.seconds}, {"seconds_per_iteration", p.seconds_per_iteration},
                         {"exchange", exchange_name(p.exchange)},
                         {"metrics", metrics_json(p.evaluation.model)}, {"best", p.best}});
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  return run_program("mfrec_dist", argc, argv, [&](Comm& world) {
    // Set-up.
    Setup s;
    if (!set_up(world, argc, argv, s)) return 0;
    const Options& o = s.o;

    // Check paths: no output may replace an input or another output; every directory must be
    // writable before any work starts.
    agree_on(world, [&] { check_paths(s.paths); });
    OutputsOnFailure written;
    std::unique_ptr<Registry> registry;  // rank 0 opens it; every rank learns whether it could
    agree_on(world, [&] {
      if (o.registry.empty() || !world.is_root()) return;
      if (!std::filesystem::exists(o.registry)) written.add(o.registry);  // removed on failure if still empty
      registry = std::make_unique<Registry>(o.registry);
    });

    // Load, train and evaluate: every grid point, on its group of ranks; the best model written.
    install_stop_signals();
    s.grid.base.should_stop = [] { return stop_requested(); };  // made collective by run_grid
    spdlog::info("{} ranks x {} threads, data {}", world.size(), s.grid.base.train.threads, o.data);
    GridResult res = run_grid(world, o.data, s.runs, s.grid, o.output);
    if (res.interrupted) {
      spdlog::warn("stopped by a signal; checkpoints in {}: run again with --resume to continue", o.checkpoint_dir);
      return kExitInterrupted;
    }
    if (world.is_root()) written.add(o.output);  // the model file is shared; rank 0 removes it on failure
    // Peak resident memory per rank so far (loading, training, evaluation, the model's writing),
    // to size a job's memory per rank: logged, and in the report.
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const PhaseTimer::Stat rss =
        PhaseTimer::summarize({{"rss", static_cast<double>(ru.ru_maxrss) / 1024.0}}, world).at("rss");
    if (world.is_root())  // group roots log too: once for the run
      spdlog::info("peak memory per rank: {:.0f} / {:.0f} / {:.0f} MiB (min / mean / max over {} ranks)", rss.min,
                   rss.mean, rss.max, world.size());

    // Write, register, report: rank 0's files; every rank agrees on the outcome.
    agree_on(world, [&] {
      if (!world.is_root()) return;
      print_results(res, o);
      write_experiment(o.experiment, "", res, s.grid, o.data);  // the experiment: the grid's log
      written.add(o.experiment);
      write_experiment("", o.summary_csv, res, s.grid, o.data);
      written.add(o.summary_csv);
      nlohmann::json reg;
      if (registry) reg = register_model(o, *registry);
      if (!o.report.empty()) write_file_atomic(o.report, report_json(res, s, world.size(), rss, reg).dump(2) + "\n");
    });
    written.dismiss();
    return 0;
  });
}
