// The hyperparameter grid search over communicator splits: the world is split into G groups;
// each group trains one point at a time on its own ranks, taking the next point (larger first)
// from a shared counter as soon as it is free. Points that differ only in iterations share one
// training run, evaluated at each requested iteration count.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "mfrec/training_run.hpp"

namespace mfrec {

struct GridSpace {
  std::vector<double> alpha{defaults::kAlpha};
  std::vector<int> factors{defaults::kFactors};
  std::vector<double> regularization{defaults::kRegularization};
  std::vector<int> iterations{defaults::kIterations};
  std::vector<std::string> solver{"cg"};
};

// One training run: a point of the grid without its iteration count, and the iteration counts
// at which it is evaluated.
struct GridRun {
  int id = 0;  // position in the space's canonical order (alpha, factors, regularization, solver)
  double alpha = 1, regularization = 0;
  int factors = 1;
  std::string solver = "cg";
  std::vector<int> iterations;  // sorted, unique
  double cost() const;          // relative cost estimate, for scheduling larger runs first
};

// Validates the lists (ConfigError naming the option) and merges points that differ only in
// iterations. Runs come back in scheduling order: larger first, ties by id.
std::vector<GridRun> expand_grid(const GridSpace& space);

// The result of one point (run x iteration count).
struct PointResult {
  int run = 0, iterations = 0, group = 0, ranks = 0, threads = 0;
  double alpha = 0, regularization = 0, seconds = 0, seconds_per_iteration = 0;
  int factors = 0;
  std::string solver;
  Evaluation evaluation;
  std::map<std::string, PhaseTimer::Stat> phases;  // of the run, over its group's ranks
  ExchangeMode exchange = ExchangeMode::kAllgather;
  std::map<std::string, PhaseTimer::Stat> sent, received;  // bytes per rank per iteration (RunResult)
  bool best = false;
};

// The metrics a grid reports and selects by: the one table of evaluation.hpp.
inline constexpr const auto& kGridMetricKeys = kMetricKeys;

// The value of a metric by report key (map_at_k, map_at_k_seed, precision_at_k, recall_at_k,
// ndcg_at_k, auc); ConfigError for an unknown key (check_metric_name, evaluation.hpp).
double metric_value(const MetricSums& m, const std::string& key);

struct GridOptions {
  int groups = 1;
  std::string select_metric = "map_at_k";
  RunOptions base;  // solver details, k, threads, seed, loss; hyperparameters come from the grid
  int knn_k = kDefaultKnnK;  // neighbours per item of the item-kNN baseline (knn.hpp); 0: none
  // Checkpoints: one file per training run in this directory (empty: none); base.checkpoint_every,
  // base.resume and base.should_stop apply to every run.
  std::string checkpoint_dir;
};

struct GridResult {
  std::vector<PointResult> points;  // ordered by (run id, iterations)
  int best = -1;                    // index into points
  double seconds = 0;
  int groups = 1;
  Index n_users = 0, n_items = 0, nnz_train = 0, nnz_test = 0;
  int knn_k = 0;             // the kNN baseline's neighbours per item (0: none)
  double knn_seconds = 0;    // time to compute its neighbour lists (once per group; max over groups)
  bool interrupted = false;  // stopped (checkpointed) before every run was done; no points, no model
};

// ConfigError naming the option: groups outside [1, world_size], an unknown select_metric, a
// negative knn_k.
void check_grid_options(const GridOptions& opt, int world_size);

// Collective over world: checks `opt` (check_grid_options), splits the world into the groups,
// reads the prepared data once per group, trains and evaluates every run of `runs` (from
// expand_grid), and collects the points. When `model_path` is not empty, the best point's model
// is written there (by the group that trained it).
GridResult run_grid(const Comm& world, const std::string& data_path, const std::vector<GridRun>& runs,
                    const GridOptions& opt, const std::string& model_path);

// The experiment (the grid's log): one HDF5 file and a CSV summary (one row a point, best
// marked); an empty path skips that file. Written by the caller's rank (serial files, atomically).
void write_experiment(const std::string& h5_path, const std::string& csv_path, const GridResult& r,
                      const GridOptions& opt, const std::string& data_path);

// A readable table of the points, best marked, and the comparison with the baseline.
std::string format_grid_table(const GridResult& r, const std::string& metric);

}  // namespace mfrec
