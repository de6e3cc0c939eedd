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
// thread), but at least 2 (a block of one user is a GEMV, far slower, and the fused pass follows
// these blocks: metrics_fused.cpp). Depends on n_items only, so the blocks (and every score) do
// not depend on threads.
constexpr Index kMaxUsersPerBlock = 128;
constexpr Index kMaxScoresPerBlock = Index(1) << 22;
Index users_per_block(Index n_items) {
  const Index by_memory = kMaxScoresPerBlock / std::max<Index>(1, n_items);
  return std::max<Index>(2, std::min<Index>(kMaxUsersPerBlock, by_memory));
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

// The users evaluated: the rows of `test` with test items.
std::vector<Index> evaluated_rows(const CsrBlock& test) {
  std::vector<Index> users;
  for (Index r = 0; r < test.n_rows(); ++r)
    if (test.indptr[r + 1] > test.indptr[r]) users.push_back(r);
  return users;
}

// fn(worker, u0, nb) for the blocks [u0, u0 + nb) of n users, `block` at a time, in parallel over
// `threads` with one worker per thread (make_worker()).
template <class MakeWorker, class Fn>
void parallel_blocks(Index n, Index block, int threads, MakeWorker make_worker, Fn fn) {
  const Index n_blocks = (n + block - 1) / block;
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
        fn(*worker, u0, static_cast<int>(std::min<Index>(block, n - u0)));
      } catch (...) {
        record();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// The evaluated users' values (6 each, in row order), written by the workers per block.
struct PerUser {
  std::vector<Index> rows;
  std::vector<double> values;
  explicit PerUser(const CsrBlock& test) : rows(evaluated_rows(test)), values(rows.size() * 6, 0.0) {}
  Index size() const { return static_cast<Index>(rows.size()); }
  double* at(Index u) { return values.data() + static_cast<std::size_t>(u) * 6; }
  // Summed in row order: the sums do not depend on the thread count.
  MetricSums sum() const {
    MetricSums s;
    for (std::size_t u = 0; u < rows.size(); ++u) s.add_user(values.data() + u * 6);
    return s;
  }
  HistorySums sum_by_history(const CsrBlock& train) const {
    HistorySums s;
    for (std::size_t u = 0; u < rows.size(); ++u) {
      const Index r = rows[u];
      (train.indptr[r + 1] > train.indptr[r] ? s.warm : s.cold).add_user(values.data() + u * 6);
    }
    return s;
  }
};

// Shared driver: users with test items, in blocks of `block`, parallel over blocks; a worker
// (one per thread, made by make_worker) writes each block's per-user values.
template <class MakeWorker>
PerUser evaluate_blocks(const CsrBlock& test, Index block, int threads, MakeWorker make_worker) {
  PerUser p(test);
  parallel_blocks(p.size(), block, threads, make_worker,
                  [&](auto& worker, Index u0, int nb) { worker.run(p.rows.data() + u0, nb, p.at(u0)); });
  return p;
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

void evaluate_user_row(const Real* scores, Index n_items, const CsrBlock& train, const CsrBlock& test, Index r, int k,
                       Workspace& w, double* out) {
  const auto tb = train.indptr[r], tn = train.indptr[r + 1] - tb;
  const auto sb = test.indptr[r], sn = test.indptr[r + 1] - sb;
  evaluate_user(scores, n_items, train.indices.data() + tb, tn, test.indices.data() + sb, sn, k, w, out);
}

}  // namespace detail

namespace {

PerUser evaluate_rows_unfused_impl(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                                   const CsrBlock& test, int k, int threads) {
  const Index n_items = Y.rows();
  return evaluate_blocks(test, users_per_block(n_items), threads,
                         [&]() { return ScoredWorker<GemmScorer>(GemmScorer(X_local, Y), train, test, n_items, k); });
}

void check_rows_args(const FactorMatrix& X_local, Index n_items, Index factors, const CsrBlock& train,
                     const CsrBlock& test, int k, int threads) {
  check_common(train, test, n_items, k, threads);
  if (X_local.rows() != train.n_rows())
    throw InputError("evaluate_rows: " + std::to_string(X_local.rows()) + " user factor rows for " +
                     std::to_string(train.n_rows()) + " matrix rows");
  if (X_local.cols() != factors)
    throw InputError("evaluate_rows: user factors have " + std::to_string(X_local.cols()) +
                     " columns, item factors " + std::to_string(factors));
}

// Fused blocks of users are whole multiples of the unfused blocks (sub_block), so that the scores
// that depend on a user's place in its GEMM (Eigen's edge items) are computed in the same place
// (metrics_fused.cpp).
Index fused_users_per_block(Index sub_block) { return sub_block * std::max<Index>(1, kFusedUsers / sub_block); }

PerUser evaluate_rows_impl(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                           const CsrBlock& test, int k, int threads) {
  const Index sub_block = users_per_block(Y.rows());
  PerUser p(test);
  parallel_blocks(
      p.size(), fused_users_per_block(sub_block), threads,
      [&]() { return FusedWorker(X_local, Y.rows(), train, test, k, sub_block); },
      [&](FusedWorker& w, Index u0, int nb) { w.run(Y, p.rows.data() + u0, nb, p.at(u0)); });
  return p;
}

// The fused pass over item blocks fetched in turn: every block once for the users' scores of their
// own items, then every block again for the top K and the AUC counts; each user's state
// (FusedUserState) is kept from one block to the next. The same bits as the unblocked pass.
PerUser evaluate_rows_blocked(const FactorMatrix& X_local, const ItemFactors& items, const CsrBlock& train,
                              const CsrBlock& test, int k, int threads) {
  const Index n_items = items.n_items, sub_block = users_per_block(n_items);
  const Index user_block = fused_users_per_block(sub_block);
  const std::vector<Index> bounds = item_block_bounds(n_items, items.factors, items.block_items);
  PerUser p(test);
  std::vector<FusedUserState> state(p.rows.size());
  auto each_block = [&](auto&& fn) {
    parallel_blocks(
        p.size(), user_block, threads, [&]() { return FusedWorker(X_local, n_items, train, test, k, sub_block); },
        [&](FusedWorker& w, Index u0, int nb) { fn(w, p.rows.data() + u0, nb, state.data() + u0, p.at(u0)); });
  };
  FactorMatrix Y;
  for (const bool ranking : {false, true}) {
    for (std::size_t b = 0; b + 1 < bounds.size(); ++b) {
      const Index begin = bounds[b], end = bounds[b + 1];
      items.fetch(begin, end, Y);
      if (Y.rows() != end - begin || Y.cols() != items.factors)
        throw Error("evaluate_rows: item block [" + std::to_string(begin) + ", " + std::to_string(end) + ") came as " +
                    std::to_string(Y.rows()) + " x " + std::to_string(Y.cols()));
      each_block([&](FusedWorker& w, const Index* rows, int nb, FusedUserState* st, double*) {
        if (ranking) w.rank(Y, begin, rows, nb, st);
        else w.own_scores(Y, begin, rows, nb, st);
      });
    }
    if (!ranking)
      each_block([](FusedWorker& w, const Index* rows, int nb, FusedUserState* st, double*) { w.positives(rows, nb, st); });
  }
  each_block([](FusedWorker& w, const Index* rows, int nb, FusedUserState* st, double* out) {
    w.finish(rows, nb, st, out);
  });
  return p;
}

PerUser evaluate_fixed_scores_impl(const std::vector<Real>& item_scores, const CsrBlock& train, const CsrBlock& test,
                                   int k, int threads) {
  const Index n_items = static_cast<Index>(item_scores.size());
  check_common(train, test, n_items, k, threads);
  std::vector<Real> s(item_scores.size());
  sanitize(item_scores.data(), s.data(), n_items);
  return evaluate_blocks(test, users_per_block(n_items), threads, [&]() {
    return ScoredWorker<FixedScorer>(FixedScorer(s.data()), train, test, n_items, k);
  });
}

}  // namespace

std::vector<Index> item_block_bounds(Index n_items, Index factors, Index block_items) {
  const Index tile = FusedWorker::tile_items(factors);
  const Index block = std::max(tile, block_items / tile * tile);
  std::vector<Index> b;
  for (Index i = 0; i < n_items; i += block) b.push_back(i);
  // A last block under a tile joins the one before: a lone user's GEMV over it then gives the
  // bits of the GEMV over every item (FusedWorker::Impl::alone_scores).
  if (b.size() > 1 && n_items - b.back() < tile) b.pop_back();
  b.push_back(n_items);
  return b;
}

MetricSums evaluate_rows(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                         const CsrBlock& test, int k, int threads) {
  check_rows_args(X_local, Y.rows(), Y.cols(), train, test, k, threads);
  return evaluate_rows_impl(X_local, Y, train, test, k, threads).sum();
}

HistorySums evaluate_rows_by_history(const FactorMatrix& X_local, const ItemFactors& items, const CsrBlock& train,
                                     const CsrBlock& test, int k, int threads) {
  if (items.all) {
    check_rows_args(X_local, items.all->rows(), items.all->cols(), train, test, k, threads);
    return evaluate_rows_impl(X_local, *items.all, train, test, k, threads).sum_by_history(train);
  }
  check_rows_args(X_local, items.n_items, items.factors, train, test, k, threads);
  if (!items.fetch) throw Error("evaluate_rows: item factors neither in memory nor fetched");
  if (items.block_items <= 0 || item_block_bounds(items.n_items, items.factors, items.block_items).size() == 2) {
    // one block: one fetch, and the unblocked pass
    FactorMatrix Y;
    items.fetch(0, items.n_items, Y);
    return evaluate_rows_by_history(X_local, ItemFactors::in_memory(Y), train, test, k, threads);
  }
  return evaluate_rows_blocked(X_local, items, train, test, k, threads).sum_by_history(train);
}

MetricSums evaluate_rows_unfused(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                                 const CsrBlock& test, int k, int threads) {
  check_rows_args(X_local, Y.rows(), Y.cols(), train, test, k, threads);
  return evaluate_rows_unfused_impl(X_local, Y, train, test, k, threads).sum();
}

MetricSums evaluate_fixed_scores(const std::vector<Real>& item_scores, const CsrBlock& train,
                                 const CsrBlock& test, int k, int threads) {
  return evaluate_fixed_scores_impl(item_scores, train, test, k, threads).sum();
}

HistorySums evaluate_fixed_scores_by_history(const std::vector<Real>& item_scores, const CsrBlock& train,
                                             const CsrBlock& test, int k, int threads) {
  return evaluate_fixed_scores_impl(item_scores, train, test, k, threads).sum_by_history(train);
}

MetricSums evaluate_scored_rows(const RowScoreFn& score, const CsrBlock& train, const CsrBlock& test, int k,
                                int threads) {
  const Index n_items = train.n_cols;
  check_common(train, test, n_items, k, threads);
  return evaluate_blocks(test, users_per_block(n_items), threads, [&]() {
           return ScoredWorker<FnScorer>(FnScorer(score, n_items), train, test, n_items, k);
         }).sum();
}

}  // namespace mfrec
