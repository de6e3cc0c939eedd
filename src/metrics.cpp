// Ranking metrics and the popularity baseline (see include/mfrec/metrics.hpp, docs/metrics.md).
#include "mfrec/metrics.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "mfrec/error.hpp"

namespace mfrec {

MetricSums& MetricSums::operator+=(const MetricSums& o) {
  map += o.map;
  map_seed += o.map_seed;
  precision += o.precision;
  recall += o.recall;
  ndcg += o.ndcg;
  auc += o.auc;
  n_users += o.n_users;
  return *this;
}

MetricSums MetricSums::mean() const {
  MetricSums m;
  m.n_users = n_users;
  if (n_users <= 0) return m;
  const double n = static_cast<double>(n_users);
  m.map = map / n;
  m.map_seed = map_seed / n;
  m.precision = precision / n;
  m.recall = recall / n;
  m.ndcg = ndcg / n;
  m.auc = auc / n;
  return m;
}

namespace {

// Users per score GEMM: 128, fewer when a block of scores would exceed 4M floats (16 MiB per
// thread). Depends on n_items only, so the blocks (and every score) do not depend on threads.
constexpr Index kMaxUsersPerBlock = 128;
constexpr Index kMaxScoresPerBlock = Index(1) << 22;
Index users_per_block(Index n_items) {
  const Index by_memory = kMaxScoresPerBlock / std::max<Index>(1, n_items);
  return std::max<Index>(1, std::min<Index>(kMaxUsersPerBlock, by_memory));
}
constexpr std::size_t kAucLinearMaxPositives = 64;  // above: sort the scores once

// NaN ranks as -inf. The routines below take sanitized scores (no NaN), so that every
// comparison is a strict weak ordering and the SIMD counts agree with the sort order.
void sanitize(const Real* in, Real* out, Index n) {
  const Real minus_inf = -std::numeric_limits<Real>::infinity();
  for (Index i = 0; i < n; ++i) out[i] = std::isnan(in[i]) ? minus_inf : in[i];
}

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

// The pure metrics: the relevant set sorted and deduplicated, a repeated ranked item counted once.
RankStats rank_stats_vectors(const std::vector<std::int32_t>& ranked,
                             const std::vector<std::int32_t>& relevant, int k) {
  if (k < 1) throw ConfigError("ranking metrics: k must be >= 1, got " + std::to_string(k));
  std::vector<std::int32_t> rel(relevant);
  std::sort(rel.begin(), rel.end());
  rel.erase(std::unique(rel.begin(), rel.end()), rel.end());
  std::vector<char> counted(rel.size(), 0);
  const std::size_t n = std::min(ranked.size(), static_cast<std::size_t>(k));
  return rank_stats(ranked.data(), n, rel.size(), k, [&](std::int32_t item) {
    const auto it = std::lower_bound(rel.begin(), rel.end(), item);
    if (it == rel.end() || *it != item) return false;
    char& c = counted[static_cast<std::size_t>(it - rel.begin())];
    if (c) return false;
    c = 1;
    return true;
  });
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
               Index n_te) {
  std::uint8_t* mark = w.mark.data();
  w.pos.clear();
  w.excl.clear();
  for (Index j = 0; j < n_tr; ++j) {
    if (mark[tr[j]] == 0) w.excl.push_back(tr[j]);
    mark[tr[j]] |= kTrain;
  }
  for (Index j = 0; j < n_te; ++j) {
    if (mark[te[j]] & kTest) continue;
    if (mark[te[j]] == 0) w.excl.push_back(te[j]);
    mark[te[j]] |= kTest;
    w.pos.push_back(te[j]);
  }
}

void unmark_user(Workspace& w) {
  for (const std::int32_t i : w.excl) w.mark[static_cast<std::size_t>(i)] = 0;
}

// Exact AUC from sanitized scores and the marked user (mark_user): pairs (positive p,
// negative n) counted as s_p > s_n (less) or s_p == s_n (equal); AUC = (less + equal/2) /
// (|P| |N|). Counts over all items minus the counts over the non-negatives: with few
// positives a branch-free SIMD pass per positive, with many a sort of all scores once.
double auc_user(const Real* s, Index n_items, Workspace& w) {
  const Index n_neg = n_items - static_cast<Index>(w.excl.size());
  if (w.pos.empty() || n_neg <= 0) return 0.5;
  std::int64_t less = 0, equal = 0;
  if (w.pos.size() <= kAucLinearMaxPositives) {
    for (const std::int32_t p : w.pos) {
      const Real sp = s[p];
      std::int64_t l = 0, e = 0;
#pragma omp simd reduction(+ : l, e)
      for (Index i = 0; i < n_items; ++i) {
        l += s[i] < sp ? 1 : 0;
        e += s[i] == sp ? 1 : 0;
      }
      for (const std::int32_t x : w.excl) {
        l -= s[x] < sp ? 1 : 0;
        e -= s[x] == sp ? 1 : 0;
      }
      less += l;
      equal += e;
    }
  } else {
    w.sorted_all.assign(s, s + n_items);
    std::sort(w.sorted_all.begin(), w.sorted_all.end());
    w.sorted_excl.clear();
    for (const std::int32_t x : w.excl) w.sorted_excl.push_back(s[x]);
    std::sort(w.sorted_excl.begin(), w.sorted_excl.end());
    auto count = [](const std::vector<Real>& v, Real sp, std::int64_t& l, std::int64_t& e) {
      const auto lo = std::lower_bound(v.begin(), v.end(), sp);
      const auto hi = std::upper_bound(lo, v.end(), sp);
      l = lo - v.begin();
      e = hi - lo;
    };
    for (const std::int32_t p : w.pos) {
      std::int64_t la, ea, lx, ex;
      count(w.sorted_all, s[p], la, ea);
      count(w.sorted_excl, s[p], lx, ex);
      less += la - lx;
      equal += ea - ex;
    }
  }
  return (static_cast<double>(less) + 0.5 * static_cast<double>(equal)) /
         (static_cast<double>(w.pos.size()) * static_cast<double>(n_neg));
}

void check_items(const std::int32_t* items, Index n, Index n_items, const char* what) {
  for (Index j = 0; j < n; ++j) {
    if (items[j] < 0 || items[j] >= n_items)
      throw InputError(std::string(what) + ": item index " + std::to_string(items[j]) +
                       " outside [0, " + std::to_string(n_items) + ")");
  }
}

void check_block(const CsrBlock& b, Index n_items, const char* what) {
  const std::string w(what);
  if (b.indptr.empty() || b.indptr.front() != 0) throw InputError(w + ": indptr must start with 0");
  for (std::size_t r = 1; r < b.indptr.size(); ++r)
    if (b.indptr[r] < b.indptr[r - 1]) throw InputError(w + ": indptr is decreasing");
  if (static_cast<std::size_t>(b.indptr.back()) != b.indices.size())
    throw InputError(w + ": indptr.back() != number of indices");
  if (b.n_cols != n_items)
    throw InputError(w + ": " + std::to_string(b.n_cols) + " columns, expected " +
                     std::to_string(n_items) + " items");
  check_items(b.indices.data(), static_cast<Index>(b.indices.size()), n_items, what);
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

// Shared driver: users with test items, in blocks of users_per_block(n_items), parallel over
// blocks; per-user values go to a per-user array, summed afterwards in row order.
template <class MakeScorer>
MetricSums evaluate_impl(const CsrBlock& train, const CsrBlock& test, Index n_items, int k,
                         int threads, MakeScorer make_scorer) {
  std::vector<Index> users;
  for (Index r = 0; r < test.n_rows(); ++r)
    if (test.indptr[r + 1] > test.indptr[r]) users.push_back(r);
  const Index n_eval = static_cast<Index>(users.size());
  const Index block = users_per_block(n_items);
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
    using Scorer = decltype(make_scorer());
    std::optional<Scorer> scorer;
    std::optional<Workspace> w;
    try {
      scorer.emplace(make_scorer());
      w.emplace(n_items);
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
        scorer->compute(users.data() + u0, nb);
        for (int j = 0; j < nb; ++j) {
          const Index r = users[static_cast<std::size_t>(u0 + j)];
          const auto tb = train.indptr[r], tn = train.indptr[r + 1] - tb;
          const auto sb = test.indptr[r], sn = test.indptr[r + 1] - sb;
          evaluate_user(scorer->row(j), n_items, train.indices.data() + tb, tn,
                        test.indices.data() + sb, sn, k, *w,
                        per_user.data() + static_cast<std::size_t>(u0 + j) * 6);
        }
      } catch (...) {
        record();
      }
    }
  }
  if (error) std::rethrow_exception(error);

  MetricSums s;
  for (Index u = 0; u < n_eval; ++u) {
    const double* v = per_user.data() + static_cast<std::size_t>(u) * 6;
    s.map += v[0];
    s.map_seed += v[1];
    s.precision += v[2];
    s.recall += v[3];
    s.ndcg += v[4];
    s.auc += v[5];
  }
  s.n_users = n_eval;
  return s;
}

}  // namespace

double average_precision_at_k(const std::vector<std::int32_t>& ranked,
                              const std::vector<std::int32_t>& relevant, int k) {
  return rank_stats_vectors(ranked, relevant, k).ap;
}

double average_precision_seed(const std::vector<std::int32_t>& ranked,
                              const std::vector<std::int32_t>& relevant, int k) {
  return rank_stats_vectors(ranked, relevant, k).ap_seed;
}

double precision_at_k(const std::vector<std::int32_t>& ranked,
                      const std::vector<std::int32_t>& relevant, int k) {
  return rank_stats_vectors(ranked, relevant, k).precision;
}

double recall_at_k(const std::vector<std::int32_t>& ranked,
                   const std::vector<std::int32_t>& relevant, int k) {
  return rank_stats_vectors(ranked, relevant, k).recall;
}

double ndcg_at_k(const std::vector<std::int32_t>& ranked, const std::vector<std::int32_t>& relevant,
                 int k) {
  return rank_stats_vectors(ranked, relevant, k).ndcg;
}

double auc_exact(const Real* scores, Index n_items, const std::int32_t* train_items, Index n_train,
                 const std::int32_t* test_items, Index n_test) {
  check_items(train_items, n_train, n_items, "auc_exact train items");
  check_items(test_items, n_test, n_items, "auc_exact test items");
  std::vector<Real> s(static_cast<std::size_t>(n_items));
  sanitize(scores, s.data(), n_items);
  Workspace w(n_items);
  mark_user(w, train_items, n_train, test_items, n_test);
  return auc_user(s.data(), n_items, w);
}

void top_k_excluding(const Real* scores, Index n_items, const std::int32_t* exclude,
                     Index n_exclude, int k, std::vector<std::int32_t>& out) {
  if (k < 1) throw ConfigError("top_k_excluding: k must be >= 1, got " + std::to_string(k));
  check_items(exclude, n_exclude, n_items, "top_k_excluding");
  std::vector<Real> s(static_cast<std::size_t>(n_items));
  sanitize(scores, s.data(), n_items);
  std::vector<std::uint8_t> excluded(static_cast<std::size_t>(n_items), 0);
  for (Index j = 0; j < n_exclude; ++j) excluded[static_cast<std::size_t>(exclude[j])] = 1;
  top_k_impl(
      s.data(), n_items, k, [&excluded](Index i) { return excluded[i] != 0; }, out);
}

MetricSums evaluate_rows(const FactorMatrix& X_local, const FactorMatrix& Y, const CsrBlock& train,
                         const CsrBlock& test, int k, int threads) {
  check_common(train, test, Y.rows(), k, threads);
  if (X_local.rows() != train.n_rows())
    throw InputError("evaluate_rows: " + std::to_string(X_local.rows()) + " user factor rows for " +
                     std::to_string(train.n_rows()) + " matrix rows");
  if (X_local.cols() != Y.cols())
    throw InputError("evaluate_rows: user factors have " + std::to_string(X_local.cols()) +
                     " columns, item factors " + std::to_string(Y.cols()));
  return evaluate_impl(train, test, Y.rows(), k, threads, [&]() { return GemmScorer(X_local, Y); });
}

MetricSums evaluate_fixed_scores(const std::vector<Real>& item_scores, const CsrBlock& train,
                                 const CsrBlock& test, int k, int threads) {
  const Index n_items = static_cast<Index>(item_scores.size());
  check_common(train, test, n_items, k, threads);
  std::vector<Real> s(item_scores.size());
  sanitize(item_scores.data(), s.data(), n_items);
  return evaluate_impl(train, test, n_items, k, threads, [&]() { return FixedScorer(s.data()); });
}

MetricSums evaluate_scored_rows(const RowScoreFn& score, const CsrBlock& train, const CsrBlock& test, int k,
                                int threads) {
  const Index n_items = train.n_cols;
  check_common(train, test, n_items, k, threads);
  return evaluate_impl(train, test, n_items, k, threads, [&]() { return FnScorer(score, n_items); });
}

std::vector<Index> item_user_counts(const CsrBlock& train, Index n_items) {
  check_block(train, n_items, "item_user_counts");
  if (train.data.size() != train.indices.size())
    throw InputError("item_user_counts: data and indices differ in length");
  std::vector<Index> counts(static_cast<std::size_t>(n_items), 0);
  std::vector<Index> last_row(static_cast<std::size_t>(n_items), -1);  // counts each user once
  for (Index r = 0; r < train.n_rows(); ++r) {
    for (auto j = train.indptr[r]; j < train.indptr[r + 1]; ++j) {
      const auto item = static_cast<std::size_t>(train.indices[j]);
      if (train.data[j] == Real(0) || last_row[item] == r) continue;
      last_row[item] = r;
      ++counts[item];
    }
  }
  return counts;
}

std::vector<std::int32_t> popularity_ranking(const std::vector<Index>& counts) {
  std::vector<std::int32_t> order(counts.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&counts](std::int32_t a, std::int32_t b) {
    return counts[a] > counts[b] || (counts[a] == counts[b] && a < b);
  });
  return order;
}

std::vector<Real> popularity_scores(const std::vector<Index>& counts) {
  std::vector<Real> s(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i) s[i] = static_cast<Real>(counts[i]);
  return s;
}

}  // namespace mfrec
