// The block evaluation (see include/mfrec/metrics.hpp, docs/metrics.md): users in blocks,
// scored by a GEMM, a fixed score vector or a per-user function, then the per-user metrics.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "mfrec/error.hpp"
#include "mfrec/metrics.hpp"
#include "metrics_internal.hpp"

namespace mfrec {
namespace {

using namespace detail;

// Users per score GEMM: 128, fewer when a block of scores would exceed 4M floats (16 MiB per
// thread). Depends on n_items only, so the blocks (and every score) do not depend on threads.
constexpr Index kMaxUsersPerBlock = 128;
constexpr Index kMaxScoresPerBlock = Index(1) << 22;
Index users_per_block(Index n_items) {
  const Index by_memory = kMaxScoresPerBlock / std::max<Index>(1, n_items);
  return std::max<Index>(1, std::min<Index>(kMaxUsersPerBlock, by_memory));
}

// The one per-user routine, from sanitized scores: out = {ap, ap_seed, precision, recall,
// ndcg, auc}.
void evaluate_user(const Real* s, Index n_items, const std::int32_t* tr, Index n_tr,
                   const std::int32_t* te, Index n_te, int k, Workspace& w, double* out) {
  mark_user(w, tr, n_tr, te, n_te);
  const std::uint8_t* mark = w.mark.data();
  top_k_impl(
      s, n_items, k, [mark](Index i) { return (mark[i] & kTrain) != 0; }, w.top);
  const RankStats r = rank_stats(w.top.data(), w.top.size(), w.pos.size(), k,
                                 [mark](std::int32_t item) { return (mark[item] & kTest) != 0; });
  out[0] = r.ap;
  out[1] = r.ap_seed;
  out[2] = r.precision;
  out[3] = r.recall;
  out[4] = r.ndcg;
  out[5] = auc_user(s, n_items, w);
  unmark_user(w);
}

// Scores from a GEMM of a block of user factors with the item factors.
class GemmScorer {
 public:
  GemmScorer(const FactorMatrix& X, const FactorMatrix& Y) : X_(X), Y_(Y) {}
  void compute(const Index* rows, int nb) {
    lhs_.resize(nb, X_.cols());
    for (int j = 0; j < nb; ++j) lhs_.row(j) = X_.row(rows[j]);
    scores_.resize(nb, Y_.rows());
    scores_.noalias() = lhs_ * Y_.transpose();
    sanitize(scores_.data(), scores_.data(), scores_.size());
  }
  const Real* row(int j) const { return scores_.data() + static_cast<Index>(j) * scores_.cols(); }

 private:
  const FactorMatrix& X_;
  const FactorMatrix& Y_;
  FactorMatrix lhs_;
  FactorMatrix scores_;  // one row of scores per user of the block
};

// The same (sanitized, shared read-only) score vector for every user.
class FixedScorer {
 public:
  explicit FixedScorer(const Real* s) : s_(s) {}
  void compute(const Index*, int) {}
  const Real* row(int) const { return s_; }

 private:
  const Real* s_;
};

// Scores from a per-user function, one row of the block at a time.
class FnScorer {
 public:
  FnScorer(const RowScoreFn& f, Index n_items) : f_(f), n_items_(n_items) {}
  void compute(const Index* rows, int nb) {
    scores_.resize(static_cast<std::size_t>(nb) * static_cast<std::size_t>(n_items_));
    for (int j = 0; j < nb; ++j) f_(rows[j], scores_.data() + static_cast<Index>(j) * n_items_);
    sanitize(scores_.data(), scores_.data(), static_cast<Index>(scores_.size()));
  }
  const Real* row(int j) const { return scores_.data() + static_cast<Index>(j) * n_items_; }

 private:
  const RowScoreFn& f_;
  Index n_items_;
  std::vector<Real> scores_;
};

void check_common(const CsrBlock& train, const CsrBlock& test, Index n_items, int k, int threads) {
  if (k < 1) throw ConfigError("evaluation: k must be >= 1, got " + std::to_string(k));
  if (threads < 1)
    throw ConfigError("evaluation: threads must be >= 1, got " + std::to_string(threads));
  check_block(train, n_items, "evaluation train block");
  check_block(test, n_items, "evaluation test block");
  if (train.row_begin != test.row_begin || train.n_rows() != test.n_rows())
    throw InputError("evaluation: train rows [" + std::to_string(train.row_begin) + ", +" +
                     std::to_string(train.n_rows()) + ") and test rows [" +
                     std::to_string(test.row_begin) + ", +" + std::to_string(test.n_rows()) +
                     ") differ");
}

// Shared driver: users with test items, in blocks of `block`, parallel over blocks; a worker
// (one per thread, made by make_worker) writes each block's per-user values into a per-user
// array, summed afterwards in row order, so the sums do not depend on the thread count.
template <class MakeWorker>
MetricSums evaluate_blocks(const CsrBlock& test, Index block, int threads, MakeWorker make_worker) {
  std::vector<Index> users;
  for (Index r = 0; r < test.n_rows(); ++r)
    if (test.indptr[r + 1] > test.indptr[r]) users.push_back(r);
  const Index n_eval = static_cast<Index>(users.size());
  const Index n_blocks = (n_eval + block - 1) / block;
  std::vector<double> per_user(static_cast<std::size_t>(n_eval) * 6, 0.0);
  std::exception_ptr error;
  bool failed = false;

  // No exception may leave an OpenMP construct: every failure is caught where it happens,
  // recorded, and rethrown after the parallel region; the other blocks are then skipped.
  auto record = [&]() {
#pragma omp critical(mfrec_metrics_error)
    if (!error) error = std::current_exception();
#pragma omp atomic write
    failed = true;
  };
#pragma omp parallel num_threads(threads)
  {
    // This thread's nested regions get one thread: Eigen's GEMM, which opens its own OpenMP
    // team when called from a team of one (threads == 1), stays serial. The setting is local
    // to this thread's task and ends with the region.
    omp_set_num_threads(1);
    using Worker = decltype(make_worker());
    std::optional<Worker> worker;
    try {
      worker.emplace(make_worker());
    } catch (...) {
      record();
    }
#pragma omp for schedule(dynamic, 1)
    for (Index b = 0; b < n_blocks; ++b) {
      bool stop;
#pragma omp atomic read
      stop = failed;
      if (stop) continue;
      try {
        const Index u0 = b * block;
        const int nb = static_cast<int>(std::min<Index>(block, n_eval - u0));
        worker->run(users.data() + u0, nb, per_user.data() + static_cast<std::size_t>(u0) * 6);
      } catch (...) {
        record();
      }
    }
  }
  if (error) std::rethrow_exception(error);

  MetricSums s;
  for (Index u = 0; u < n_eval; ++u) s.add_user(per_user.data() + static_cast<std::size_t>(u) * 6);
  return s;
}

// A worker of the shared driver for a scorer: the block's scores, then the per-user routine.
template <class Scorer>
class ScoredWorker {
 public:
  ScoredWorker(Scorer scorer, const CsrBlock& train, const CsrBlock& test, Index n_items, int k)
      : scorer_(std::move(scorer)), train_(train), test_(test), n_items_(n_items), k_(k), w_(n_items) {}
  void run(const Index* rows, int nb, double* out) {
    scorer_.compute(rows, nb);
    for (int j = 0; j < nb; ++j) {
      const Index r = rows[j];
      const auto tb = train_.indptr[r], tn = train_.indptr[r + 1] - tb;
      const auto sb = test_.indptr[r], sn = test_.indptr[r + 1] - sb;
      evaluate_user(scorer_.row(j), n_items_, train_.indices.data() + tb, tn, test_.indices.data() + sb, sn, k_, w_,
                    out + static_cast<std::size_t>(j) * 6);
    }
  }

 private:
  Scorer scorer_;
  const CsrBlock& train_;
  const CsrBlock& test_;
  Index n_items_;
  int k_;
  Workspace w_;
};

}  // namespace

namespace detail {

Index users_per_score_block(Index n_items) { return users_per_block(n_items); }

void evaluate_user_row(const Real* scores, Index n_items, const CsrBlock& train, const CsrBlock& test, Index r, int k,
                       Workspace& w, double* out) {
  const auto tb = train.indptr[r], tn = train.indptr[r + 1] - tb;
  const auto sb = test.indptr[r], sn = test.indptr[r + 1] - sb;
  evaluate_user(scores, n_items, train.indices.data() + tb, tn, test.indices.data() + sb, sn, k, w, out);
}

}  // namespace detail

namespace {

MetricSums evaluate_rows_unfused_impl(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                                      const CsrBlock& test, int k, int threads) {
  const Index n_items = Y.rows();
  return evaluate_blocks(test, users_per_block(n_items), threads,
                         [&]() { return ScoredWorker<GemmScorer>(GemmScorer(X_local, Y), train, test, n_items, k); });
}

void check_rows_args(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train, const CsrBlock& test,
                     int k, int threads) {
  check_common(train, test, Y.rows(), k, threads);
  if (X_local.rows() != train.n_rows())
    throw InputError("evaluate_rows: " + std::to_string(X_local.rows()) + " user factor rows for " +
                     std::to_string(train.n_rows()) + " matrix rows");
  if (X_local.cols() != Y.cols())
    throw InputError("evaluate_rows: user factors have " + std::to_string(X_local.cols()) +
                     " columns, item factors " + std::to_string(Y.cols()));
}

}  // namespace

MetricSums evaluate_rows(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                         const CsrBlock& test, int k, int threads) {
  check_rows_args(X_local, Y, train, test, k, threads);
  const Index old_block = users_per_block(Y.rows());
  if (old_block < 2) return evaluate_rows_unfused_impl(X_local, Y, train, test, k, threads);
  // Fused blocks are whole multiples of the unfused blocks, so that the scores that depend on a
  // user's place in its GEMM (Eigen's edge items) are computed in the same place (metrics_fused.cpp).
  const Index fused_block = old_block * std::max<Index>(1, kFusedUsers / old_block);
  return evaluate_blocks(test, fused_block, threads,
                         [&]() { return FusedWorker(X_local, Y, train, test, k, old_block); });
}

MetricSums evaluate_rows_unfused(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                                 const CsrBlock& test, int k, int threads) {
  check_rows_args(X_local, Y, train, test, k, threads);
  return evaluate_rows_unfused_impl(X_local, Y, train, test, k, threads);
}

MetricSums evaluate_fixed_scores(const std::vector<Real>& item_scores, const CsrBlock& train,
                                 const CsrBlock& test, int k, int threads) {
  const Index n_items = static_cast<Index>(item_scores.size());
  check_common(train, test, n_items, k, threads);
  std::vector<Real> s(item_scores.size());
  sanitize(item_scores.data(), s.data(), n_items);
  return evaluate_blocks(test, users_per_block(n_items), threads, [&]() {
    return ScoredWorker<FixedScorer>(FixedScorer(s.data()), train, test, n_items, k);
  });
}

MetricSums evaluate_scored_rows(const RowScoreFn& score, const CsrBlock& train, const CsrBlock& test, int k,
                                int threads) {
  const Index n_items = train.n_cols;
  check_common(train, test, n_items, k, threads);
  return evaluate_blocks(test, users_per_block(n_items), threads, [&]() {
    return ScoredWorker<FnScorer>(FnScorer(score, n_items), train, test, n_items, k);
  });
}

}  // namespace mfrec
