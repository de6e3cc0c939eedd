// One training run from start to its evaluations: train for the largest requested iteration
// count, evaluating on the test matrix at each requested count on the way. (A grid search is
// made of training runs, one per grid point without its iteration count; its log, --experiment,
// is the "experiment": grid.hpp.)
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mfrec/evaluation.hpp"
#include "mfrec/trainer.hpp"

namespace mfrec {

struct RunOptions {
  TrainConfig train;
  std::vector<int> eval_at;  // iteration counts to evaluate at (sorted, unique; the last = iterations)
  int k = 20;
  Index eval_users = 0;      // evaluate a seeded sample of this many test users (train.seed); 0: all
  // The most MiB of item factors a rank gathers at once for an evaluation when it does not hold
  // them all: beyond it they come in blocks (the same results; twice the gathers); 0: no limit.
  double eval_memory_mib = 128;
  int loss_every = 0;        // 0: never
  bool progress = true;      // per-iteration progress on rank 0
  std::string label;         // prefix for progress lines
  // Called on every rank after each evaluation (collective context: it may write files).
  std::function<void(int iteration, const Evaluation&, const Trainer&)> on_eval;
  // Checkpointing: when `checkpoint` is set, the factors and the evaluations so far are written
  // there (atomically, collectively) every `checkpoint_every` iterations, at the end, and when
  // `should_stop` (collective; e.g. a signal) says so. With `resume`, an existing checkpoint of
  // the same run (`signature`) is continued instead of starting over.
  std::string checkpoint, signature;
  int checkpoint_every = 0;
  bool resume = false;
  std::function<bool()> should_stop;
};

struct RunResult {
  std::vector<int> eval_at;
  std::vector<Evaluation> evaluations;  // one per eval_at
  std::vector<std::pair<int, double>> losses;  // (iteration, loss)
  double seconds = 0;                   // wall time of the whole run (max over ranks)
  double seconds_per_iteration = 0;     // training only, mean over iterations
  std::map<std::string, PhaseTimer::Stat> phases;  // over the run's ranks
  ExchangeMode exchange = ExchangeMode::kAllgather;  // the row exchange used (auto resolved)
  // Bytes per rank per training iteration, by phase ("allreduce", "exchange"), sent to and
  // received from other ranks: min/mean/max over the run's ranks (Comm::Traffic).
  std::map<std::string, PhaseTimer::Stat> sent, received;
  int ranks = 1, threads = 1;
  bool interrupted = false;     // stopped by should_stop before the last iteration
  int resumed_from = 0;         // iterations taken from a checkpoint
};

// The data one group of ranks trains on: its partition of the training matrix, its users' test
// rows, the popularity counts and (when computed) the item-kNN baseline's neighbour lists.
struct GroupData {
  TrainData train;
  CsrBlock test;
  std::vector<Index> popularity;
  ItemNeighbours knn;       // empty: no kNN baseline (every rank holds every list)
  double knn_seconds = 0;   // time to compute knn (max over the ranks)
  MetricSums knn_view;      // its evaluation (evaluate_knn at RunOptions::k): the same for every
                            // point, so computed once and copied into each Evaluation
  std::vector<std::string> user_ids_local;
  std::uint64_t fingerprint = 0;
};
// Collective over comm. Failures are agreed (AgreedError on every rank, naming file and dataset).
GroupData load_group_data(const h5::File& f, const Comm& comm);
// The same from a path: opens the file, reads and closes it (also when the read fails).
GroupData read_group_data(const std::string& path, const Comm& comm);

// Collective over comm. `trainer_out`, when given, receives the trained factors.
RunResult run_point(const Comm& comm, const GroupData& data, const RunOptions& opt,
                    std::unique_ptr<Trainer>* trainer_out = nullptr);

}  // namespace mfrec
