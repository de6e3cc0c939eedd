// Tests of the ranking metrics (src/metrics.cpp): hand values, the seed's AP worked examples,
// brute-force references for AUC, top-K and block evaluation, thread invariance, popularity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "mfrec/error.hpp"
#include "mfrec/metrics.hpp"

namespace mfrec {
namespace {

using Items = std::vector<std::int32_t>;

const Items kRel16 = {1, 2, 3, 4, 5, 6};

// ---- the seed's worked examples and the standard AP --------------------------------------

TEST(Metrics, SeedAveragePrecisionWorkedExamples) {
  EXPECT_NEAR(average_precision_seed({1, 2, 7, 8, 9, 10}, kRel16, 6), 1.0, 1e-12);
  EXPECT_NEAR(average_precision_seed({7, 8, 3, 4, 1, 9}, kRel16, 6), 0.47778, 1e-5);
  EXPECT_NEAR(average_precision_seed({7, 8, 9, 0, 5, 6}, kRel16, 6), 0.2667, 1e-4);
  EXPECT_EQ(average_precision_seed({7, 8, 9, 0, 10, 11}, kRel16, 6), 0.0);
  // Exact values: (1/3 + 2/4 + 3/5) / 3 and (1/5 + 2/6) / 2.
  EXPECT_NEAR(average_precision_seed({7, 8, 3, 4, 1, 9}, kRel16, 6), (1.0 / 3 + 0.5 + 0.6) / 3,
              1e-12);
  EXPECT_NEAR(average_precision_seed({7, 8, 9, 0, 5, 6}, kRel16, 6), (0.2 + 1.0 / 3) / 2, 1e-12);
}

TEST(Metrics, StandardAveragePrecisionSameLists) {
  // Divisor min(K, |relevant|) = 6.
  EXPECT_NEAR(average_precision_at_k({1, 2, 7, 8, 9, 10}, kRel16, 6), 2.0 / 6, 1e-12);
  EXPECT_NEAR(average_precision_at_k({7, 8, 3, 4, 1, 9}, kRel16, 6), 0.2388888888888889, 1e-12);
  EXPECT_NEAR(average_precision_at_k({7, 8, 9, 0, 5, 6}, kRel16, 6), 0.0888888888888889, 1e-12);
  EXPECT_EQ(average_precision_at_k({7, 8, 9, 0, 10, 11}, kRel16, 6), 0.0);
  EXPECT_NEAR(average_precision_at_k({1, 2, 3, 4, 5, 6}, kRel16, 6), 1.0, 1e-12);
}

TEST(Metrics, FewerRelevantThanK) {
  const Items ranked = {3, 9, 50, 1}, rel = {50, 3};
  // Hits at ranks 1 and 3: sum of precisions 1 + 2/3; divisor min(4, 2) = 2 = hits.
  EXPECT_NEAR(average_precision_at_k(ranked, rel, 4), (1 + 2.0 / 3) / 2, 1e-12);
  EXPECT_NEAR(average_precision_seed(ranked, rel, 4), (1 + 2.0 / 3) / 2, 1e-12);
  EXPECT_NEAR(precision_at_k(ranked, rel, 4), 0.5, 1e-12);
  EXPECT_NEAR(recall_at_k(ranked, rel, 4), 1.0, 1e-12);
  EXPECT_NEAR(ndcg_at_k(ranked, rel, 4), 0.9197207891481876, 1e-12);  // (1 + 1/2) / (1 + 1/log2 3)
}

TEST(Metrics, PrecisionRecallNdcgHandValues) {
  EXPECT_NEAR(precision_at_k({7, 8, 3, 4, 1, 9}, kRel16, 6), 0.5, 1e-12);
  EXPECT_NEAR(recall_at_k({7, 8, 3, 4, 1, 9}, kRel16, 6), 0.5, 1e-12);
  // (1/log2 4 + 1/log2 5 + 1/log2 6) / sum_{r=1..6} 1/log2(r+1)
  EXPECT_NEAR(ndcg_at_k({7, 8, 3, 4, 1, 9}, kRel16, 6), 0.3986875657977409, 1e-12);
  EXPECT_NEAR(ndcg_at_k({7, 8, 9, 0, 5, 6}, kRel16, 6), 0.22485174766247445, 1e-12);
  EXPECT_NEAR(ndcg_at_k({1, 2, 7, 8, 9, 10}, kRel16, 6), 0.4935232796777481, 1e-12);
  EXPECT_NEAR(ndcg_at_k({6, 5, 4, 3, 2, 1}, kRel16, 6), 1.0, 1e-12);
  EXPECT_EQ(ndcg_at_k({7, 8, 9, 0, 10, 11}, kRel16, 6), 0.0);
  // Precision divides by K even when the list is shorter; recall by |relevant|.
  EXPECT_NEAR(precision_at_k({1, 2}, kRel16, 10), 0.2, 1e-12);
  EXPECT_NEAR(recall_at_k({1, 2}, kRel16, 10), 2.0 / 6, 1e-12);
}

TEST(Metrics, ListTruncationDuplicatesAndEdgeCases) {
  // Only the first k entries count.
  EXPECT_NEAR(precision_at_k({7, 1, 2, 3}, kRel16, 2), 0.5, 1e-12);
  EXPECT_NEAR(average_precision_seed({7, 1, 2, 3}, kRel16, 2), 0.5, 1e-12);
  // A repeated item counts once; duplicated relevant items are one item.
  EXPECT_NEAR(precision_at_k({1, 1, 1}, {1, 1, 2}, 3), 1.0 / 3, 1e-12);
  EXPECT_NEAR(recall_at_k({1, 1, 1}, {1, 1, 2}, 3), 0.5, 1e-12);
  // Empty relevant set or empty list: 0.
  EXPECT_EQ(average_precision_at_k({1, 2}, {}, 2), 0.0);
  EXPECT_EQ(ndcg_at_k({1, 2}, {}, 2), 0.0);
  EXPECT_EQ(average_precision_seed({}, {1}, 2), 0.0);
  EXPECT_THROW(average_precision_at_k({1}, {1}, 0), ConfigError);
  EXPECT_THROW(ndcg_at_k({1}, {1}, -1), ConfigError);
}

TEST(Metrics, MetricSumsAddAndMean) {
  MetricSums a;
  a.map = 1;
  a.map_seed = 2;
  a.precision = 3;
  a.recall = 4;
  a.ndcg = 5;
  a.auc = 6;
  a.n_users = 2;
  MetricSums b = a;
  b += a;
  EXPECT_EQ(b.n_users, 4);
  const MetricSums m = b.mean();
  EXPECT_EQ(m.n_users, 4);
  EXPECT_DOUBLE_EQ(m.map, 0.5);
  EXPECT_DOUBLE_EQ(m.map_seed, 1.0);
  EXPECT_DOUBLE_EQ(m.precision, 1.5);
  EXPECT_DOUBLE_EQ(m.recall, 2.0);
  EXPECT_DOUBLE_EQ(m.ndcg, 2.5);
  EXPECT_DOUBLE_EQ(m.auc, 3.0);
  const MetricSums z = MetricSums{}.mean();
  EXPECT_EQ(z.n_users, 0);
  EXPECT_EQ(z.map, 0.0);
  EXPECT_EQ(z.auc, 0.0);
}

// ---- AUC ----------------------------------------------------------------------------------

double brute_auc(const std::vector<Real>& s, const Items& train, const Items& test) {
  const std::set<std::int32_t> tr(train.begin(), train.end()), te(test.begin(), test.end());
  double num = 0, den = 0;
  for (const std::int32_t p : te) {
    for (std::int32_t n = 0; n < static_cast<std::int32_t>(s.size()); ++n) {
      if (tr.count(n) || te.count(n)) continue;
      den += 1;
      if (s[p] > s[n])
        num += 1;
      else if (s[p] == s[n])
        num += 0.5;
    }
  }
  return den > 0 ? num / den : 0.5;
}

TEST(Metrics, AucHandValues) {
  const std::vector<Real> s = {0.9f, 0.5f, 0.5f, 0.1f, 0.7f};
  // Positives {1}; train {4}; negatives {0, 2, 3}: 1 > 3, 1 == 2, 1 < 0 -> (1 + 0.5) / 3.
  const Items tr = {4}, te = {1};
  EXPECT_NEAR(auc_exact(s.data(), 5, tr.data(), 1, te.data(), 1), 0.5, 1e-12);
  const Items te2 = {0, 0};  // duplicates: one positive, beats all 3 negatives
  EXPECT_NEAR(auc_exact(s.data(), 5, tr.data(), 1, te2.data(), 2), 1.0, 1e-12);
  // No negatives or no positives: 0.5.
  const Items all = {0, 2, 3, 4};
  EXPECT_EQ(auc_exact(s.data(), 5, all.data(), 4, te.data(), 1), 0.5);
  EXPECT_EQ(auc_exact(s.data(), 5, tr.data(), 1, nullptr, 0), 0.5);
  const Items bad = {5};
  EXPECT_THROW(auc_exact(s.data(), 5, bad.data(), 1, te.data(), 1), InputError);
}

TEST(Metrics, AucMatchesBrutePairCountWithTies) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    // Every 5th trial: over 64 distinct positives (the sort path), else few (the SIMD path).
    const bool many = trial % 5 == 0;
    const int n = many ? 140 + static_cast<int>(rng() % 100) : 1 + static_cast<int>(rng() % 120);
    const int levels = 1 + static_cast<int>(rng() % 6);  // few levels: many ties
    std::vector<Real> s(n);
    for (auto& v : s) v = static_cast<Real>(static_cast<int>(rng() % levels)) * 0.25f;
    Items tr, te;
    const int n_tr = static_cast<int>(rng() % (n / 2 + 1));
    for (int j = 0; j < n_tr; ++j) tr.push_back(static_cast<std::int32_t>(rng() % n));
    if (many) {
      Items perm(n);
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      te.assign(perm.begin(), perm.begin() + 65 + static_cast<int>(rng() % 40));
      te.push_back(te.front());  // a duplicate
    } else {
      const int n_te = static_cast<int>(rng() % (n / 3 + 2));
      for (int j = 0; j < n_te; ++j) te.push_back(static_cast<std::int32_t>(rng() % n));
    }
    const double got = auc_exact(s.data(), n, tr.data(), static_cast<Index>(tr.size()), te.data(),
                                 static_cast<Index>(te.size()));
    EXPECT_NEAR(got, brute_auc(s, tr, te), 1e-12) << "trial " << trial;
  }
}

TEST(Metrics, AucNanRanksLowest) {
  const Real nan = std::numeric_limits<Real>::quiet_NaN();
  const std::vector<Real> s = {nan, 0.f, -1e30f, nan};
  const Items te = {1};
  // Positive 1 (0.0) beats 2 (-1e30) and both NaNs.
  EXPECT_NEAR(auc_exact(s.data(), 4, nullptr, 0, te.data(), 1), 1.0, 1e-12);
  const Items te0 = {0};  // NaN positive: ties NaN item 3, loses to 1 and 2
  EXPECT_NEAR(auc_exact(s.data(), 4, nullptr, 0, te0.data(), 1), 0.5 / 3, 1e-12);
}

// ---- top-K --------------------------------------------------------------------------------

Items brute_top_k(const std::vector<Real>& s, const Items& exclude, int k) {
  const std::set<std::int32_t> ex(exclude.begin(), exclude.end());
  Items c;
  for (std::int32_t i = 0; i < static_cast<std::int32_t>(s.size()); ++i)
    if (!ex.count(i)) c.push_back(i);
  std::stable_sort(c.begin(), c.end(), [&](std::int32_t a, std::int32_t b) { return s[a] > s[b]; });
  if (static_cast<int>(c.size()) > k) c.resize(k);
  return c;
}

TEST(Metrics, TopKMatchesBruteForceSort) {
  std::mt19937 rng(11);
  Items out;
  for (int trial = 0; trial < 300; ++trial) {
    const int n = static_cast<int>(rng() % 200);
    const int k = 1 + static_cast<int>(rng() % 30);
    std::vector<Real> s(n);
    const int levels = 1 + static_cast<int>(rng() % 50);
    for (auto& v : s) v = static_cast<Real>(static_cast<int>(rng() % levels)) - 10.f;
    Items ex;
    const int n_ex = n > 0 ? static_cast<int>(rng() % (n + 1)) : 0;
    for (int j = 0; j < n_ex; ++j) ex.push_back(static_cast<std::int32_t>(rng() % n));
    top_k_excluding(s.data(), n, ex.data(), static_cast<Index>(ex.size()), k, out);
    EXPECT_EQ(out, brute_top_k(s, ex, k)) << "trial " << trial;
  }
}

TEST(Metrics, TopKTiesEdgesAndErrors) {
  const std::vector<Real> s = {1.f, 3.f, 3.f, 2.f, 3.f};
  Items out;
  top_k_excluding(s.data(), 5, nullptr, 0, 3, out);
  EXPECT_EQ(out, (Items{1, 2, 4}));
  const Items ex = {2};
  top_k_excluding(s.data(), 5, ex.data(), 1, 3, out);
  EXPECT_EQ(out, (Items{1, 4, 3}));
  top_k_excluding(s.data(), 5, ex.data(), 1, 10, out);  // fewer candidates than k
  EXPECT_EQ(out, (Items{1, 4, 3, 0}));
  const Items all = {4, 3, 2, 1, 0};
  top_k_excluding(s.data(), 5, all.data(), 5, 3, out);
  EXPECT_TRUE(out.empty());
  const Real nan = std::numeric_limits<Real>::quiet_NaN();
  const std::vector<Real> sn = {nan, -1.f, nan, 0.f};
  top_k_excluding(sn.data(), 4, nullptr, 0, 4, out);
  EXPECT_EQ(out, (Items{3, 1, 0, 2}));
  EXPECT_THROW(top_k_excluding(s.data(), 5, nullptr, 0, 0, out), ConfigError);
  const Items bad = {-1};
  EXPECT_THROW(top_k_excluding(s.data(), 5, bad.data(), 1, 2, out), InputError);
}

// ---- block evaluation ---------------------------------------------------------------------

CsrBlock make_block(const std::vector<Items>& rows, Index n_cols, Index row_begin) {
  CsrBlock b;
  b.n_rows_global = row_begin + static_cast<Index>(rows.size()) + 3;
  b.n_cols = n_cols;
  b.row_begin = row_begin;
  b.indptr.assign(1, 0);
  for (const auto& r : rows) {
    for (const auto i : r) {
      b.indices.push_back(i);
      b.data.push_back(1.f);
    }
    b.indptr.push_back(static_cast<std::int64_t>(b.indices.size()));
  }
  return b;
}

struct RandomData {
  FactorMatrix X, Y;
  std::vector<Items> train, test;
};

// integer_factors: small integer factor values, so every score is exact in float whatever the
// summation order, and ties are frequent.
RandomData random_data(int n_users, int n_items, int f, bool integer_factors, unsigned seed) {
  std::mt19937 rng(seed);
  RandomData d;
  d.X.resize(n_users, f);
  d.Y.resize(n_items, f);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto fill = [&](FactorMatrix& M) {
    for (Index i = 0; i < M.rows(); ++i)
      for (Index j = 0; j < M.cols(); ++j)
        M(i, j) = integer_factors ? static_cast<Real>(static_cast<int>(rng() % 5) - 2) : u(rng);
  };
  fill(d.X);
  fill(d.Y);
  d.train.resize(n_users);
  d.test.resize(n_users);
  for (int r = 0; r < n_users; ++r) {
    const int n_tr = static_cast<int>(rng() % (n_items / 3 + 1));
    const int n_te = (r % 4 == 1) ? 0 : static_cast<int>(rng() % (n_items / 5 + 1));  // some empty
    for (int j = 0; j < n_tr; ++j) d.train[r].push_back(static_cast<std::int32_t>(rng() % n_items));
    for (int j = 0; j < n_te; ++j) d.test[r].push_back(static_cast<std::int32_t>(rng() % n_items));
    std::sort(d.train[r].begin(), d.train[r].end());
    d.train[r].erase(std::unique(d.train[r].begin(), d.train[r].end()), d.train[r].end());
    // Test items disjoint from train (as after a split); duplicates left in.
    d.test[r].erase(std::remove_if(d.test[r].begin(), d.test[r].end(),
                                   [&](std::int32_t i) {
                                     return std::binary_search(d.train[r].begin(), d.train[r].end(),
                                                               i);
                                   }),
                    d.test[r].end());
  }
  return d;
}

MetricSums brute_evaluate(const std::vector<std::vector<Real>>& scores,
                          const std::vector<Items>& train, const std::vector<Items>& test, int k) {
  MetricSums s;
  for (std::size_t r = 0; r < scores.size(); ++r) {
    if (test[r].empty()) continue;
    const Items top = brute_top_k(scores[r], train[r], k);
    s.map += average_precision_at_k(top, test[r], k);
    s.map_seed += average_precision_seed(top, test[r], k);
    s.precision += precision_at_k(top, test[r], k);
    s.recall += recall_at_k(top, test[r], k);
    s.ndcg += ndcg_at_k(top, test[r], k);
    s.auc += brute_auc(scores[r], train[r], test[r]);
    s.n_users += 1;
  }
  return s;
}

void expect_sums_near(const MetricSums& a, const MetricSums& b, double tol) {
  EXPECT_EQ(a.n_users, b.n_users);
  EXPECT_NEAR(a.map, b.map, tol);
  EXPECT_NEAR(a.map_seed, b.map_seed, tol);
  EXPECT_NEAR(a.precision, b.precision, tol);
  EXPECT_NEAR(a.recall, b.recall, tol);
  EXPECT_NEAR(a.ndcg, b.ndcg, tol);
  EXPECT_NEAR(a.auc, b.auc, tol);
}

void expect_sums_equal(const MetricSums& a, const MetricSums& b) {
  EXPECT_EQ(a.n_users, b.n_users);
  EXPECT_EQ(a.map, b.map);
  EXPECT_EQ(a.map_seed, b.map_seed);
  EXPECT_EQ(a.precision, b.precision);
  EXPECT_EQ(a.recall, b.recall);
  EXPECT_EQ(a.ndcg, b.ndcg);
  EXPECT_EQ(a.auc, b.auc);
}

TEST(Metrics, EvaluateRowsMatchesBruteForce) {
  const int n_users = 150, n_items = 90, f = 5;
  const RandomData d = random_data(n_users, n_items, f, /*integer_factors=*/true, 3);
  std::vector<std::vector<Real>> dense(n_users, std::vector<Real>(n_items));
  for (int u = 0; u < n_users; ++u)
    for (int i = 0; i < n_items; ++i) {
      double acc = 0;
      for (int c = 0; c < f; ++c) acc += static_cast<double>(d.X(u, c)) * d.Y(i, c);
      dense[u][i] = static_cast<Real>(acc);
    }
  const CsrBlock tr = make_block(d.train, n_items, 40), te = make_block(d.test, n_items, 40);
  for (const int k : {1, 5, 20, 200}) {
    const MetricSums got = evaluate_rows(d.X, d.Y, tr, te, k, 2);
    const MetricSums want = brute_evaluate(dense, d.train, d.test, k);
    EXPECT_GT(want.n_users, 0);
    expect_sums_near(got, want, 1e-9);
  }
}

TEST(Metrics, EvaluateRowsIndependentOfThreads) {
  const int n_users = 700, n_items = 300, f = 16;  // 700 users: many 32-user blocks
  const RandomData d = random_data(n_users, n_items, f, /*integer_factors=*/false, 5);
  const CsrBlock tr = make_block(d.train, n_items, 0), te = make_block(d.test, n_items, 0);
  const MetricSums one = evaluate_rows(d.X, d.Y, tr, te, 20, 1);
  EXPECT_GT(one.n_users, 0);
  for (const int t : {2, 3}) expect_sums_equal(evaluate_rows(d.X, d.Y, tr, te, 20, t), one);
}

TEST(Metrics, UsersWithoutTestItemsAreSkipped) {
  const RandomData d = random_data(10, 20, 3, true, 9);
  const std::vector<Items> none(10);
  const CsrBlock tr = make_block(d.train, 20, 0), te = make_block(none, 20, 0);
  const MetricSums s = evaluate_rows(d.X, d.Y, tr, te, 5, 2);
  EXPECT_EQ(s.n_users, 0);
  EXPECT_EQ(s.map, 0.0);
  EXPECT_EQ(s.auc, 0.0);
  EXPECT_EQ(s.mean().map, 0.0);
  // One user with a test item: exactly one evaluated.
  std::vector<Items> one(10);
  one[7] = {3};
  std::vector<Items> no_train(10);
  const MetricSums s1 =
      evaluate_rows(d.X, d.Y, make_block(no_train, 20, 0), make_block(one, 20, 0), 5, 3);
  EXPECT_EQ(s1.n_users, 1);
}

TEST(Metrics, FixedScoresMatchBruteForceAndRows) {
  const int n_users = 120, n_items = 60;
  const RandomData d = random_data(n_users, n_items, 2, true, 13);
  const CsrBlock tr = make_block(d.train, n_items, 0), te = make_block(d.test, n_items, 0);
  const std::vector<Real> pop = popularity_scores(item_user_counts(tr, n_items));
  const std::vector<std::vector<Real>> dense(n_users, pop);
  const MetricSums got = evaluate_fixed_scores(pop, tr, te, 10, 2);
  expect_sums_near(got, brute_evaluate(dense, d.train, d.test, 10), 1e-9);
  // The same scores through evaluate_rows (f = 1, user factors 1): identical sums.
  FactorMatrix X = FactorMatrix::Ones(n_users, 1), Y(n_items, 1);
  for (int i = 0; i < n_items; ++i) Y(i, 0) = pop[i];
  expect_sums_equal(evaluate_rows(X, Y, tr, te, 10, 1), got);
  for (const int t : {1, 3}) expect_sums_equal(evaluate_fixed_scores(pop, tr, te, 10, t), got);
}

TEST(Metrics, EvaluateRejectsBadInput) {
  const RandomData d = random_data(6, 10, 3, true, 17);
  const CsrBlock tr = make_block(d.train, 10, 0), te = make_block(d.test, 10, 0);
  EXPECT_THROW(evaluate_rows(d.X, d.Y, tr, te, 0, 1), ConfigError);
  EXPECT_THROW(evaluate_rows(d.X, d.Y, tr, te, 5, 0), ConfigError);
  const CsrBlock te_shift = make_block(d.test, 10, 1);
  EXPECT_THROW(evaluate_rows(d.X, d.Y, tr, te_shift, 5, 1), InputError);
  const FactorMatrix X5 = d.X.topRows(5);
  EXPECT_THROW(evaluate_rows(X5, d.Y, tr, te, 5, 1), InputError);
  const FactorMatrix Y9 = d.Y.topRows(9);
  EXPECT_THROW(evaluate_rows(d.X, Y9, tr, te, 5, 1), InputError);
  CsrBlock bad = te;
  bad.indices.push_back(10);
  bad.data.push_back(1.f);
  bad.indptr.back() += 1;
  EXPECT_THROW(evaluate_rows(d.X, d.Y, tr, bad, 5, 1), InputError);
  EXPECT_THROW(evaluate_fixed_scores(std::vector<Real>(9, 0.f), tr, te, 5, 1), InputError);
}

// ---- popularity ---------------------------------------------------------------------------

TEST(Metrics, ItemUserCountsDistinctNonZero) {
  CsrBlock b = make_block({{0, 2, 2}, {2, 3}, {}, {3, 1}}, 5, 10);
  b.data[4] = 0.f;  // row 1, item 3: explicit zero, not counted
  const std::vector<Index> c = item_user_counts(b, 5);
  EXPECT_EQ(c, (std::vector<Index>{1, 1, 2, 1, 0}));
  EXPECT_THROW(item_user_counts(b, 3), InputError);
}

TEST(Metrics, PopularityRankingTies) {
  const std::vector<Index> counts = {3, 5, 3, 0, 5, 1};
  const Items want = {1, 4, 0, 2, 5, 3};
  EXPECT_EQ(popularity_ranking(counts), want);
  // popularity_scores + top_k_excluding give the same order.
  const std::vector<Real> s = popularity_scores(counts);
  Items out;
  top_k_excluding(s.data(), 6, nullptr, 0, 6, out);
  EXPECT_EQ(out, want);
  EXPECT_TRUE(popularity_ranking({}).empty());
}

}  // namespace
}  // namespace mfrec
