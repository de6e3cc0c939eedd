// Helpers shared by the pure per-user metrics (metrics.cpp) and the block evaluation
// (metrics_eval.cpp). Internal: not part of include/mfrec/metrics.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "mfrec/metrics.hpp"

namespace mfrec::detail {

// NaN ranks as -inf. The routines below take sanitized scores (no NaN), so that every
// comparison is a strict weak ordering and the SIMD counts agree with the sort order.
void sanitize(const Real* in, Real* out, Index n);

// "a ranks before b": higher score, then smaller item index.
struct RanksBefore {
  const Real* scores;
  bool operator()(std::int32_t a, std::int32_t b) const {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  }
};

// Top-k of the items i in [0, n_items) with excluded(i) false, best first, from sanitized
// scores. A bounded heap whose front is the worst kept item; items are scanned by increasing
// index, so once the heap is full an item enters only with a score strictly above the worst
// kept one (an equal score ranks after it): one float comparison for most items.
template <class Excluded>
void top_k_impl(const Real* s, Index n_items, int k, Excluded excluded,
                std::vector<std::int32_t>& out) {
  out.clear();
  const RanksBefore before{s};
  const std::size_t kk = static_cast<std::size_t>(k);
  Index i = 0;
  for (; i < n_items && out.size() < kk; ++i) {
    if (excluded(i)) continue;
    out.push_back(static_cast<std::int32_t>(i));
    std::push_heap(out.begin(), out.end(), before);
  }
  if (out.size() == kk) {
    Real worst = s[out.front()];
    for (; i < n_items; ++i) {
      if (!(s[i] > worst) || excluded(i)) continue;
      std::pop_heap(out.begin(), out.end(), before);
      out.back() = static_cast<std::int32_t>(i);
      std::push_heap(out.begin(), out.end(), before);
      worst = s[out.front()];
    }
  }
  std::sort_heap(out.begin(), out.end(), before);
}

struct RankStats {
  double ap = 0, ap_seed = 0, precision = 0, recall = 0, ndcg = 0;
};

inline double discount(std::size_t rank1) {
  return 1.0 / std::log2(static_cast<double>(rank1) + 1.0);
}

// Metrics of a ranked list (already cut to at most k entries). is_hit(item) is called once per
// position, in order, and says whether the item is relevant and not counted before.
template <class IsHit>
RankStats rank_stats(const std::int32_t* ranked, std::size_t n_ranked, std::size_t n_relevant,
                     int k, IsHit is_hit) {
  RankStats r;
  if (n_relevant == 0) return r;
  std::size_t hits = 0;
  double prec_sum = 0, dcg = 0;
  for (std::size_t pos = 0; pos < n_ranked; ++pos) {
    if (!is_hit(ranked[pos])) continue;
    ++hits;
    prec_sum += static_cast<double>(hits) / static_cast<double>(pos + 1);
    dcg += discount(pos + 1);
  }
  const std::size_t ideal = std::min(static_cast<std::size_t>(k), n_relevant);
  double idcg = 0;
  for (std::size_t pos = 0; pos < ideal; ++pos) idcg += discount(pos + 1);
  r.ap = prec_sum / static_cast<double>(ideal);
  r.ap_seed = hits > 0 ? prec_sum / static_cast<double>(hits) : 0.0;
  r.precision = static_cast<double>(hits) / static_cast<double>(k);
  r.recall = static_cast<double>(hits) / static_cast<double>(n_relevant);
  r.ndcg = dcg / idcg;
  return r;
}

// Per-thread scratch of the per-user routine.
struct Workspace {
  explicit Workspace(Index n_items) : mark(static_cast<std::size_t>(n_items), 0) {}
  std::vector<std::uint8_t> mark;  // kTrain | kTest per item; all 0 between users
  std::vector<std::int32_t> pos;   // distinct test items
  std::vector<std::int32_t> excl;  // distinct train-or-test items (the non-negatives)
  std::vector<std::int32_t> top;
  std::vector<Real> sorted_all, sorted_excl;
};

constexpr std::uint8_t kTrain = 1, kTest = 2;

// Marks a user's items and lists the distinct positives and non-negatives.
void mark_user(Workspace& w, const std::int32_t* tr, Index n_tr, const std::int32_t* te,
               Index n_te);
void unmark_user(Workspace& w);

// Exact AUC from sanitized scores and the marked user (mark_user); 0.5 without positives or
// negatives.
double auc_user(const Real* s, Index n_items, Workspace& w);

// InputError unless every item is in [0, n_items) / the block is a well-formed CSR block of
// n_items columns; `what` names the caller.
void check_items(const std::int32_t* items, Index n, Index n_items, const char* what);
void check_block(const CsrBlock& b, Index n_items, const char* what);

// The unfused per-user routine on one full row of sanitized scores (metrics_eval.cpp): user row r
// of train/test; out = {ap, ap_seed, precision, recall, ndcg, auc}.
void evaluate_user_row(const Real* scores, Index n_items, const CsrBlock& train, const CsrBlock& test, Index r, int k,
                       Workspace& w, double* out);

// The fused score-and-rank pass of evaluate_rows (metrics_fused.cpp): per block of users, the
// scores of one tile of items at a time (a GEMM), each tile consumed at once by a streaming
// top K and the AUC counts; no user's full score row is ever stored. `sub_block`: the users per
// GEMM of the unfused evaluation; blocks given to the worker start at multiples of it.
constexpr Index kFusedUsers = 256;  // users per fused block (rounded down to sub_block multiples)

// What a user's evaluation keeps from one block of items to the next (the blocked pass).
struct FusedUserState {
  std::vector<Real> excl_s, pos_s;               // scores of the user's training-or-test items, positives' sorted
  std::vector<std::pair<Real, std::int32_t>> top;  // the top K so far, best first
  std::int64_t c2 = 0;                           // 2 #(s_i < s_p) + #(s_i == s_p) over items i, positives p
};

class FusedWorker {
 public:
  FusedWorker(const FactorMatrix& X, Index n_items, const CsrBlock& train, const CsrBlock& test, int k,
              Index sub_block);
  FusedWorker(FusedWorker&&) noexcept;
  ~FusedWorker();
  // Items per tile at f factors: the blocks of the blocked pass are whole tiles.
  static Index tile_items(Index f);
  // Every item's factors in Y: the per-user values (6 each, as evaluate_user_row) of the users at
  // local rows rows[0..nb).
  void run(const FactorMatrix& Y, const Index* rows, int nb, double* out);
  // The blocked pass, for the items in blocks Y = items [begin, begin + Y.rows()): blocks start at
  // tile multiples and end at one (the last at n_items, with more than a tile when there are
  // several). `state` holds one entry per user of rows[0..nb). First own_scores for every block,
  // then positives once, then rank for every block, then finish.
  void own_scores(const FactorMatrix& Y, Index begin, const Index* rows, int nb, FusedUserState* state);
  void positives(const Index* rows, int nb, FusedUserState* state);
  void rank(const FactorMatrix& Y, Index begin, const Index* rows, int nb, FusedUserState* state);
  void finish(const Index* rows, int nb, FusedUserState* state, double* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mfrec::detail
