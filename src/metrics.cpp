// Ranking metrics and the popularity baseline (see include/mfrec/metrics.hpp, docs/metrics.md):
// the pure per-user metrics, exact AUC and top-k. The block evaluation is in metrics_eval.cpp.
#include "mfrec/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "mfrec/error.hpp"
#include "metrics_internal.hpp"

namespace mfrec {

MetricSums& MetricSums::operator+=(const MetricSums& o) {
  map += o.map;
  map_seed += o.map_seed;
  precision += o.precision;
  recall += o.recall;
  ndcg += o.ndcg;
  auc += o.auc;
  n_users += o.n_users;
  for (int j = 0; j < kMetrics; ++j) se[j] += o.se[j];
  return *this;
}

void MetricSums::add_user(const double* v) {
  map += v[0];
  map_seed += v[1];
  precision += v[2];
  recall += v[3];
  ndcg += v[4];
  auc += v[5];
  ++n_users;
  for (int j = 0; j < kMetrics; ++j) se[j] += v[j] * v[j];
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
  // Sample variance from the sums: (sum of squares - sum^2 / n) / (n - 1), clamped at 0 (the
  // values are in [0, 1], so double keeps many digits of it at any realistic n).
  const auto sums = values();
  for (int j = 0; j < kMetrics; ++j) {
    if (n_users < 2) break;
    const double var = std::max(0.0, (se[j] - sums[j] * sums[j] / n) / (n - 1));
    m.se[j] = std::sqrt(var / n);
  }
  return m;
}

namespace detail {

constexpr std::size_t kAucLinearMaxPositives = 64;  // above: sort the scores once

void sanitize(const Real* in, Real* out, Index n) {
  const Real minus_inf = -std::numeric_limits<Real>::infinity();
  for (Index i = 0; i < n; ++i) out[i] = std::isnan(in[i]) ? minus_inf : in[i];
}

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

}  // namespace detail

using namespace detail;

namespace {

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
