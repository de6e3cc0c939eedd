// Ranking metrics for implicit-feedback recommendation: AP@K (standard and the seed's
// variant), precision@K, recall@K, NDCG@K, exact per-user AUC, and the popularity baseline.
// Definitions: docs/metrics.md. Pure code (std + Eigen + OpenMP); the distributed layer
// allreduces MetricSums (plain sums) over ranks and then calls mean().
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "mfrec/types.hpp"

namespace mfrec {

// Sums over evaluated users; divide by n_users (mean()) for the reported means.
struct MetricSums {
  double map = 0;        // sum of AP@K, divisor min(K, |relevant|) (Spark, `implicit`)
  double map_seed = 0;   // sum of the seed's AP@K, divisor = number of hits in the top K
  double precision = 0;  // sum of hits / K
  double recall = 0;     // sum of hits / |relevant|
  double ndcg = 0;       // sum of NDCG@K (binary gain)
  double auc = 0;        // sum of exact per-user AUC
  Index n_users = 0;     // users with >= 1 test item that were evaluated
  // Per metric, in the order above (map ... auc): in a sum, the sum of the squared per-user
  // values; after mean(), the standard error of the mean (the per-user values' sample standard
  // deviation / sqrt(n_users); 0 below 2 users).
  static constexpr int kMetrics = 6;
  std::array<double, kMetrics> se{};

  MetricSums& operator+=(const MetricSums& o);
  // As a flat array (map, map_seed, precision, recall, ndcg, auc, n_users, then se[0..5]), e.g.
  // to reduce over ranks or to store in a table, and back.
  static constexpr int kFields = 7 + kMetrics;
  std::array<double, kFields> to_array() const {
    return {map,   map_seed, precision, recall, ndcg,  auc,  static_cast<double>(n_users),
            se[0], se[1],    se[2],     se[3],  se[4], se[5]};
  }
  static MetricSums from_array(const double* v) {
    MetricSums m;
    m.map = v[0], m.map_seed = v[1], m.precision = v[2], m.recall = v[3], m.ndcg = v[4], m.auc = v[5];
    m.n_users = static_cast<Index>(v[6]);
    for (int j = 0; j < kMetrics; ++j) m.se[j] = v[7 + j];
    return m;
  }
  // The six metrics in the order of `se`.
  std::array<double, kMetrics> values() const { return {map, map_seed, precision, recall, ndcg, auc}; }
  // Adds one user's six values (the order of `se`).
  void add_user(const double* v);
  // Every metric divided by n_users and `se` made standard errors (n_users kept); all fields 0
  // when n_users == 0.
  MetricSums mean() const;
};

// ---- Pure per-user metrics -------------------------------------------------------------
// `ranked`: the recommended list, best first (only its first k entries are used; an item
// repeated in it counts at its first position only). `relevant`: the user's test items, in any
// order (duplicates ignored). k >= 1, else ConfigError. All return 0 when `relevant` is empty.
double average_precision_at_k(const std::vector<std::int32_t>& ranked,
                              const std::vector<std::int32_t>& relevant, int k);
double average_precision_seed(const std::vector<std::int32_t>& ranked,
                              const std::vector<std::int32_t>& relevant, int k);
double precision_at_k(const std::vector<std::int32_t>& ranked,
                      const std::vector<std::int32_t>& relevant, int k);
double recall_at_k(const std::vector<std::int32_t>& ranked,
                   const std::vector<std::int32_t>& relevant, int k);
double ndcg_at_k(const std::vector<std::int32_t>& ranked, const std::vector<std::int32_t>& relevant,
                 int k);

// Exact AUC of one user from the full score vector: over all pairs (positive = a distinct test
// item, negative = an item in neither train nor test), the fraction where the positive scores
// higher; ties count 1/2; NaN scores rank as -inf. 0.5 when there is no positive or no
// negative. Item indices outside [0, n_items) raise InputError.
double auc_exact(const Real* scores, Index n_items, const std::int32_t* train_items, Index n_train,
                 const std::int32_t* test_items, Index n_test);

// The top-k item indices by score, best first, leaving out `exclude` (any order, duplicates
// allowed). Ties go to the smaller item index; NaN scores rank as -inf. `out` gets
// min(k, number of candidates) items. k >= 1, else ConfigError; bad indices: InputError.
void top_k_excluding(const Real* scores, Index n_items, const std::int32_t* exclude,
                     Index n_exclude, int k, std::vector<std::int32_t>& out);

// ---- Block evaluation ------------------------------------------------------------------
// Evaluates the users of a block of rows. X_local: these users' factors (one row per local
// row); Y: all item factors; train/test: the same users' rows (same row_begin and n_rows,
// n_cols == Y.rows()). Users with no test item are skipped. Training items (the sparsity
// pattern of `train`) are excluded from the top K and from the AUC negatives. Scores are
// computed by a GEMM per block of users and tile of items, each tile consumed at once by a
// streaming top K and the AUC counts (docs/metrics.md); blocks run in parallel over `threads`
// (>= 1) OpenMP threads. The sums are summed in row order: they do not depend on `threads`.
// Shape mismatches and bad indices: InputError; k < 1 or threads < 1: ConfigError.
MetricSums evaluate_rows(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                         const CsrBlock& test, int k, int threads);

// The item factors of an evaluation: every item in memory, or blocks fetched in turn (the
// distributed evaluation gathers them from the ranks that own them when they are not all held).
struct ItemFactors {
  const FactorMatrix* all = nullptr;  // every item's factors, used in place; else the fields below
  Index n_items = 0;
  Index factors = 0;
  // Items per fetch at most, rounded down to whole tiles of the fused pass (at least one; the last
  // block also takes a last partial tile: item_block_bounds). 0, or a budget that makes one block:
  // one fetch of every item.
  Index block_items = 0;
  // Rows [begin, end) of the item factors into `out` (resized). Every rank is called for the same
  // blocks in the same order (twice each when blocked), also without users to evaluate: it may be
  // collective.
  std::function<void(Index begin, Index end, FactorMatrix& out)> fetch;
  // Every item's factors in Y, used in place.
  static ItemFactors in_memory(const FactorMatrix& Y) {
    ItemFactors items;
    items.all = &Y;
    return items;
  }
};

// The item blocks of an evaluation in blocks, as bounds (first 0, last n_items): whole tiles of the
// fused pass of at most block_items items (at least one tile), a last partial tile joining the
// block before.
std::vector<Index> item_block_bounds(Index n_items, Index factors, Index block_items);

// Sums split by history: the evaluated users with training items, and those without.
struct HistorySums {
  MetricSums warm, cold;
};

// evaluate_rows on ItemFactors, the sums split by history. In blocks, every user keeps its top K,
// AUC counts and its own items' scores from one block to the next (about 8 bytes per training or
// test item and 8 per K), and the results are the unblocked pass's, bit for bit.
HistorySums evaluate_rows_by_history(const FactorMatrix& X_local, const ItemFactors& items, const CsrBlock& train,
                                     const CsrBlock& test, int k, int threads);

// The same evaluation as it was before the fused pass: a full row of scores per user, then the
// per-user routine. Identical results; kept as the reference of the tests and bench_eval.
MetricSums evaluate_rows_unfused(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                                 const CsrBlock& test, int k, int threads);

// The same evaluation with one score vector for every user (the popularity baseline:
// item_scores = popularity_scores(counts)). item_scores.size() must equal train.n_cols.
MetricSums evaluate_fixed_scores(const std::vector<Real>& item_scores, const CsrBlock& train,
                                 const CsrBlock& test, int k, int threads);

// The same, the sums split by history.
HistorySums evaluate_fixed_scores_by_history(const std::vector<Real>& item_scores, const CsrBlock& train,
                                             const CsrBlock& test, int k, int threads);

// The same evaluation with a score vector per user: score(local_row, out) writes the n_items
// scores of the block's row `local_row` (called concurrently from the threads; e.g. the kNN
// baseline's scores from the user's training row).
using RowScoreFn = std::function<void(Index local_row, Real* out)>;
MetricSums evaluate_scored_rows(const RowScoreFn& score, const CsrBlock& train, const CsrBlock& test,
                                int k, int threads);

// ---- Popularity ------------------------------------------------------------------------
// Per item, the number of distinct users (rows of this block) with a non-zero entry; the
// caller allreduces (sums) the vectors over ranks. Indices outside [0, n_items): InputError.
std::vector<Index> item_user_counts(const CsrBlock& train, Index n_items);
// Item indices by descending count, ties by ascending item index.
std::vector<std::int32_t> popularity_ranking(const std::vector<Index>& counts);
// The counts as scores for evaluate_fixed_scores (exact up to 2^24 users per item; together
// with the index tie-break of top_k_excluding this ranks items exactly as popularity_ranking).
std::vector<Real> popularity_scores(const std::vector<Index>& counts);

}  // namespace mfrec
