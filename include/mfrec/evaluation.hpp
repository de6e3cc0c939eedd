// Distributed evaluation on the held-out test matrix: each rank scores its own users against
// all item factors; the per-user metric sums are reduced over ranks.
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"
#include "mfrec/metrics.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/knn.hpp"

namespace mfrec {

struct Evaluation {
  int k = 20;
  MetricSums model;     // the ALS model alone, every user with test items
  MetricSums system;    // as the seed ran it: users without training history get the popular list
  MetricSums baseline;  // the most-popular-items list for everybody
  MetricSums knn;       // the item-kNN baseline (knn.hpp), padded with the popular list; when knn_k > 0
  int knn_k = 0;        // neighbours per item of the kNN baseline; 0: not evaluated
  Index cold_users = 0;  // evaluated users with no training non-zeros
};

// An evaluation as a flat row of doubles (k, cold_users, knn_k, then the four views' metric
// arrays), to store in a table or a checkpoint, and back.
inline constexpr int kEvaluationFields = 3 + 4 * MetricSums::kFields;
void evaluation_to_row(const Evaluation& e, double* row);
Evaluation evaluation_from_row(const double* row);

// Items' popularity: the number of distinct training users per item, over all ranks. Collective.
std::vector<Index> popularity_counts(const Comm& comm, const TrainData& data);

// Which test users are evaluated (mfrec_dist --eval-users): `users` 0 = every user with test
// items; N > 0 = the N of them with the smallest splitmix64 hashes of (seed, global user id), so
// the same users for any rank count and any grid group (all of them when fewer exist).
struct EvalSample {
  Index users = 0;
  std::uint64_t seed = 0;
};

// Collective: `test` with the rows of the users outside the sample emptied (a copy; the same
// block when the sample is everybody). The threshold hash is found by a bisection over the hash
// range with one allreduce of a count per step: no rank gathers the others' users.
CsrBlock sample_test_rows(const Comm& comm, const CsrBlock& test, const EvalSample& sample);

// Collective: `test` holds this rank's user rows of /matrix/test (same rows as data.users);
// X_local the same users' factors, `items` all item factors (in memory, or fetched in blocks:
// metrics.hpp); `knn` every item's neighbours (null or empty: no kNN view); `sample` the users to
// evaluate. Returns means over evaluated users, with standard errors.
Evaluation evaluate(const Comm& comm, const TrainData& data, const CsrBlock& test, const FactorMatrix& X_local,
                    const ItemFactors& items, const std::vector<Index>& popularity, int k, int threads,
                    const ItemNeighbours* knn = nullptr, const EvalSample& sample = {});
// The same with every item's factors Y in memory.
Evaluation evaluate(const Comm& comm, const TrainData& data, const CsrBlock& test, const FactorMatrix& X_local,
                    const FactorMatrix& Y, const std::vector<Index>& popularity, int k, int threads,
                    const ItemNeighbours* knn = nullptr, const EvalSample& sample = {});

// Collective: the kNN view alone (every sampled user with test items; users without history get
// the popular list, which is what the kNN scores padded with popularity give them).
MetricSums evaluate_knn(const Comm& comm, const TrainData& data, const CsrBlock& test, const ItemNeighbours& knn,
                        const std::vector<Index>& popularity, int k, int threads, const EvalSample& sample = {});

// The metrics as name -> value, with the report's keys (map_at_k, map_at_k_seed, precision_at_k,
// recall_at_k, ndcg_at_k, auc, users).
std::map<std::string, double> metric_map(const MetricSums& mean);
// Their standard errors, keyed KEY_se (map_at_k_se, ...).
std::map<std::string, double> metric_se_map(const MetricSums& mean);

// ---- Metric names and the "beats" rule: one table and one rule for the grid's --select-metric,
// mfrec_dist's report, the model file's select_metric and the registry's promotion. ----

// The metrics a run reports and may select by, with their report keys.
inline constexpr const char* kMetricKeys[] = {"map_at_k",    "map_at_k_seed", "precision_at_k",
                                              "recall_at_k", "ndcg_at_k",     "auc"};
inline constexpr const char* kMetricKeyList = "map_at_k, map_at_k_seed, precision_at_k, recall_at_k, ndcg_at_k, auc";

inline bool is_metric_name(const std::string& key) {
  for (const char* k : kMetricKeys)
    if (key == k) return true;
  return false;
}

// ConfigError "option --select-metric: unknown metric 'KEY' (...)" for a name not in the table.
inline void check_metric_name(const std::string& key) {
  if (!is_metric_name(key))
    throw ConfigError("option --select-metric: unknown metric '" + key + "' (" + kMetricKeyList + ")");
}

// The one "beats" rule: strictly above, both finite (a tie, a NaN or a missing value never beats).
// Used for "beats the popularity baseline" and "beats the production model" alike.
inline bool metric_beats(double value, double other) {
  return std::isfinite(value) && std::isfinite(other) && value > other;
}

}  // namespace mfrec
