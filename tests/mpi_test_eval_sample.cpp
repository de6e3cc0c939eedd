// --eval-users: the seeded sample of test users is the same set for any rank count and any group
// of ranks, its metrics are those of the same users evaluated on one rank, a sample at least as
// large as the test users is everybody, and each metric's standard error is the per-user values'
// sample standard deviation / sqrt(n).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "mfrec/evaluation.hpp"
#include "mfrec/hash.hpp"
#include "mfrec/partition.hpp"
#include "test_csr.hpp"

using namespace mfrec;

namespace {

constexpr Index kUsers = 157, kItems = 41;
constexpr int kF = 3, kK = 5;

// A deterministic random case: user u has about 6 training and 2 test items (a few have none of
// either), factors from splitmix64.
struct Data {
  std::vector<std::vector<std::int32_t>> train, test;
  FactorMatrix X, Y;
};

float unit(std::uint64_t& s) { return static_cast<float>((splitmix64(s++) >> 40) * (1.0 / (1 << 24))) - 0.5f; }

Data make_data() {
  Data d;
  std::uint64_t s = 7;
  d.train.resize(kUsers);
  d.test.resize(kUsers);
  for (Index u = 0; u < kUsers; ++u) {
    for (Index i = 0; i < kItems; ++i) {
      const std::uint64_t h = splitmix64(1000 + static_cast<std::uint64_t>(u * kItems + i)) % 100;
      if (u % 11 != 3 && h < 15) d.train[u].push_back(static_cast<std::int32_t>(i));
      else if (u % 13 != 5 && h >= 95) d.test[u].push_back(static_cast<std::int32_t>(i));
    }
  }
  d.X.resize(kUsers, kF);
  d.Y.resize(kItems, kF);
  for (Index j = 0; j < d.X.size(); ++j) d.X.data()[j] = unit(s);
  for (Index j = 0; j < d.Y.size(); ++j) d.Y.data()[j] = unit(s);
  return d;
}


struct Local {
  TrainData data;
  CsrBlock test;
  FactorMatrix X_local;
};

Local local_part(const Data& d, const Comm& comm) {
  Local l;
  const Bounds ub = partition_even(kUsers, comm.size()), ib = partition_even(kItems, comm.size());
  const Index b = ub[comm.rank()], e = ub[comm.rank() + 1];
  l.data.n_users = kUsers;
  l.data.n_items = kItems;
  l.data.user_bounds = ub;
  l.data.item_bounds = ib;
  l.data.users = testdata::rows_block(d.train, kItems, b, e);
  l.data.nnz = comm.sum(l.data.users.nnz());
  l.test = testdata::rows_block(d.test, kItems, b, e);
  l.X_local = d.X.middleRows(b, e - b);
  return l;
}

// Every rank's sampled users (those with a non-empty row in the sampled block), as a 0/1 mask
// over all users.
std::vector<int> sampled_mask(const Comm& comm, const CsrBlock& sampled) {
  std::vector<int> mask(kUsers, 0);
  for (Index r = 0; r < sampled.n_rows(); ++r)
    if (sampled.indptr[r + 1] > sampled.indptr[r]) mask[static_cast<std::size_t>(sampled.row_begin + r)] = 1;
  comm.allreduce_sum(mask.data(), mask.size());
  return mask;
}

// The sample as documented, computed on one rank from scratch: the n test users with the smallest
// splitmix64(splitmix64(seed) ^ user).
std::vector<int> expected_mask(const Data& d, Index n, std::uint64_t seed) {
  std::vector<std::pair<std::uint64_t, Index>> keys;
  for (Index u = 0; u < kUsers; ++u)
    if (!d.test[u].empty()) keys.emplace_back(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(u)), u);
  std::sort(keys.begin(), keys.end());
  std::vector<int> mask(kUsers, 0);
  for (Index j = 0; j < std::min<Index>(n, static_cast<Index>(keys.size())); ++j) mask[keys[j].second] = 1;
  return mask;
}

void expect_near(const MetricSums& a, const MetricSums& b, const char* what) {
  EXPECT_EQ(a.n_users, b.n_users) << what;
  const auto va = a.values(), vb = b.values();
  for (int j = 0; j < MetricSums::kMetrics; ++j) {
    // the same per-user values; the sum over ranks may round differently in the last bits
    EXPECT_NEAR(va[j], vb[j], 1e-12) << what << " metric " << j;
    EXPECT_NEAR(a.se[j], b.se[j], 1e-12) << what << " standard error " << j;
  }
}

}  // namespace

TEST(EvalSample, SameUsersForAnyRankCountAndGroup) {
  Comm world = Comm::world();
  const Data d = make_data();
  for (std::uint64_t seed : {0ULL, 42ULL}) {
    for (Index n : {1, 17, 60}) {
      const Local l = local_part(d, world);
      const auto mask = sampled_mask(world, sample_test_rows(world, l.test, {n, seed}));
      EXPECT_EQ(mask, expected_mask(d, n, seed)) << "n " << n << " seed " << seed;
      int count = 0;
      for (int m : mask) count += m;
      EXPECT_EQ(count, n);
    }
  }
  // Grid groups: the world split in two (or one group on one rank) draws the same users.
  Comm group = world.split(world.rank() % 2, world.rank());
  const Local l = local_part(d, group);
  EXPECT_EQ(sampled_mask(group, sample_test_rows(group, l.test, {25, 42})), expected_mask(d, 25, 42));
}

TEST(EvalSample, MetricsAreThoseOfTheSampledUsersOnOneRank) {
  Comm world = Comm::world();
  const Data d = make_data();
  const Local l = local_part(d, world);
  const std::vector<Index> pop = popularity_counts(world, l.data);
  const EvalSample sample{40, 42};
  const Evaluation e = evaluate(world, l.data, l.test, l.X_local, d.Y, pop, kK, 1, nullptr, sample);
  EXPECT_EQ(e.model.n_users, 40);

  // One rank, all users, with the test rows of the users outside the sample emptied.
  Comm self = world.split(world.rank(), 0);
  const Local one = local_part(d, self);
  auto test_rows = d.test;
  const auto mask = expected_mask(d, 40, 42);
  for (Index u = 0; u < kUsers; ++u)
    if (!mask[u]) test_rows[u].clear();
  const CsrBlock test1 = testdata::rows_block(test_rows, kItems, 0, kUsers);
  const Evaluation ref = evaluate(self, one.data, test1, one.X_local, d.Y, pop, kK, 1);
  expect_near(e.model, ref.model, "model");
  expect_near(e.system, ref.system, "system");
  expect_near(e.baseline, ref.baseline, "baseline");
  EXPECT_EQ(e.cold_users, ref.cold_users);
}

TEST(EvalSample, LargerThanTheTestUsersIsEverybody) {
  Comm world = Comm::world();
  const Data d = make_data();
  const Local l = local_part(d, world);
  const std::vector<Index> pop = popularity_counts(world, l.data);
  const Evaluation all = evaluate(world, l.data, l.test, l.X_local, d.Y, pop, kK, 1);
  const Evaluation big = evaluate(world, l.data, l.test, l.X_local, d.Y, pop, kK, 1, nullptr, {1000000, 42});
  std::vector<double> a(kEvaluationFields), b(kEvaluationFields);
  evaluation_to_row(all, a.data());
  evaluation_to_row(big, b.data());
  EXPECT_EQ(a, b);
  Index with_test = 0;
  for (const auto& t : d.test) with_test += t.empty() ? 0 : 1;
  EXPECT_EQ(all.model.n_users, with_test);
  EXPECT_THROW(sample_test_rows(world, l.test, {-1, 42}), ConfigError);
}

// Standard errors against a direct two-pass computation over the per-user values (the pure
// metric functions, one user at a time): sample standard deviation / sqrt(n).
TEST(EvalSample, StandardErrorIsTheSampleStdevOverSqrtN) {
  Comm world = Comm::world();
  const Data d = make_data();
  const Local l = local_part(d, world);
  const std::vector<Index> pop = popularity_counts(world, l.data);
  const Evaluation e = evaluate(world, l.data, l.test, l.X_local, d.Y, pop, kK, 1);
  std::vector<double> ap, auc;
  for (Index u = 0; u < kUsers; ++u) {
    if (d.test[u].empty()) continue;
    std::vector<Real> s(kItems);
    for (Index i = 0; i < kItems; ++i) s[i] = d.X.row(u).dot(d.Y.row(i));
    std::vector<std::int32_t> top;
    top_k_excluding(s.data(), kItems, d.train[u].data(), static_cast<Index>(d.train[u].size()), kK, top);
    ap.push_back(average_precision_at_k(top, d.test[u], kK));
    auc.push_back(auc_exact(s.data(), kItems, d.train[u].data(), static_cast<Index>(d.train[u].size()),
                            d.test[u].data(), static_cast<Index>(d.test[u].size())));
  }
  auto se = [](const std::vector<double>& v) {
    double mean = 0, ss = 0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    for (double x : v) ss += (x - mean) * (x - mean);
    return std::sqrt(ss / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()));
  };
  ASSERT_EQ(e.model.n_users, static_cast<Index>(ap.size()));
  EXPECT_NEAR(e.model.se[0], se(ap), 1e-9);
  EXPECT_NEAR(e.model.se[5], se(auc), 1e-6);  // scores by dot() here, by a GEMM there: ties may differ
  EXPECT_GT(e.model.se[0], 0.0);
}

// The hand case of numpy: per-user values {1, 0, 0, 1, 0.5}:
//   np.std([1, 0, 0, 1, .5], ddof=1) / np.sqrt(5) = 0.22360679774997896
TEST(EvalSample, StandardErrorMatchesNumpyOnAHandCase) {
  MetricSums s;
  for (double v : {1.0, 0.0, 0.0, 1.0, 0.5}) {
    const double row[6] = {v, v, v, v, v, v};
    s.add_user(row);
  }
  const MetricSums m = s.mean();
  EXPECT_DOUBLE_EQ(m.map, 0.5);
  for (int j = 0; j < MetricSums::kMetrics; ++j) EXPECT_NEAR(m.se[j], 0.22360679774997896, 1e-15);
  MetricSums one;
  const double row[6] = {1, 1, 1, 1, 1, 1};
  one.add_user(row);
  EXPECT_EQ(one.mean().se[0], 0.0);  // one user: no spread to estimate
  // Sums reduce as arrays (over ranks) and still give the same standard error.
  auto a = s.to_array();
  EXPECT_NEAR(MetricSums::from_array(a.data()).mean().se[2], 0.22360679774997896, 1e-15);
}
