// The item-kNN baseline (knn.hpp) on a hand-computed case and on a random matrix, under 1, 2 and
// 4 ranks: the neighbour lists, the scores (as `implicit`'s CosineRecommender) and the
// evaluation view; the result does not depend on the rank count.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "mfrec/evaluation.hpp"
#include "mfrec/hash.hpp"
#include "mfrec/knn.hpp"
#include "mfrec/partition.hpp"

using namespace mfrec;

namespace {

using Dense = std::vector<std::vector<float>>;  // [row][col], 0 = no entry

// Rows [b, e) of a dense matrix as CSR.
CsrBlock slice(const Dense& m, Index b, Index e) {
  CsrBlock c;
  c.n_rows_global = static_cast<Index>(m.size());
  c.n_cols = m.empty() ? 0 : static_cast<Index>(m[0].size());
  c.row_begin = b;
  for (Index r = b; r < e; ++r) {
    for (std::size_t j = 0; j < m[static_cast<std::size_t>(r)].size(); ++j)
      if (m[static_cast<std::size_t>(r)][j] != 0) {
        c.indices.push_back(static_cast<std::int32_t>(j));
        c.data.push_back(m[static_cast<std::size_t>(r)][j]);
      }
    c.indptr.push_back(static_cast<std::int64_t>(c.indices.size()));
  }
  return c;
}

Dense transpose(const Dense& m) {
  Dense t(m[0].size(), std::vector<float>(m.size(), 0));
  for (std::size_t r = 0; r < m.size(); ++r)
    for (std::size_t j = 0; j < m[r].size(); ++j) t[j][r] = m[r][j];
  return t;
}

// This rank's TrainData of a user x item matrix (even partitions of both sides).
TrainData make_data(const Comm& comm, const Dense& ui) {
  TrainData d;
  d.n_users = static_cast<Index>(ui.size());
  d.n_items = static_cast<Index>(ui[0].size());
  d.user_bounds = partition_even(d.n_users, comm.size());
  d.item_bounds = partition_even(d.n_items, comm.size());
  const auto r = static_cast<std::size_t>(comm.rank());
  d.users = slice(ui, d.user_bounds[r], d.user_bounds[r + 1]);
  d.items = slice(transpose(ui), d.item_bounds[r], d.item_bounds[r + 1]);
  d.nnz = comm.sum<Index>(d.users.nnz());
  return d;
}

// 4 users x 4 items. Item columns: i0 = (1, 1, 0, 0), |i0| = sqrt 2; i1 = (1, 1, 1, 0), sqrt 3;
// i2 = (0, 1, 2, 0), sqrt 5; i3 = (0, 0, 0, 1), 1. Cosines: (0,1) = 2/sqrt 6 = 0.8165,
// (0,2) = 1/sqrt 10 = 0.3162, (1,2) = 3/sqrt 15 = 0.7746, with i3 none. With k = 2 (itself
// first, as `implicit`): i0 -> 0, 1; i1 -> 1, 0; i2 -> 2, 1; i3 -> 3.
const Dense kTrain = {{1, 1, 0, 0}, {1, 1, 1, 0}, {0, 1, 2, 0}, {0, 0, 0, 1}};

TEST(ItemKnn, HandComputedNeighbourLists) {
  Comm world = Comm::world();
  const TrainData d = make_data(world, kTrain);
  const ItemNeighbours nb = item_knn(world, d, 2, 1);
  EXPECT_EQ(nb.n_items, 4);
  EXPECT_EQ(nb.k, 2);
  EXPECT_EQ(nb.indptr, (std::vector<std::int64_t>{0, 2, 4, 6, 7}));
  EXPECT_EQ(nb.indices, (std::vector<std::int32_t>{0, 1, 1, 0, 2, 1, 3}));
  const std::vector<double> want = {1, 2 / std::sqrt(6.0), 1, 2 / std::sqrt(6.0), 1, 3 / std::sqrt(15.0), 1};
  ASSERT_EQ(nb.data.size(), want.size());
  for (std::size_t q = 0; q < want.size(); ++q) EXPECT_NEAR(nb.data[q], want[q], 1e-6) << q;
}

TEST(ItemKnn, ScoresSumHistoryTimesSimilarityAndPadWithPopularity) {
  Comm world = Comm::world();
  const ItemNeighbours nb = item_knn(world, make_data(world, kTrain), 2, 1);
  // User 2's history {i1: 1, i2: 2}: s0 = 1 * 0.8165 (from i1's list), s1 = 1 + 2 * 0.7746,
  // s2 = 2 * 1 (i0 is not in i2's top 2); i3 unscored: pad - 1.
  const std::vector<std::int32_t> items = {1, 2};
  const std::vector<Real> values = {1, 2};
  const std::vector<Real> pad = popularity_pad({2, 3, 2, 1});  // counts / (3 + 1)
  std::vector<Real> s(4);
  knn_scores(nb, items.data(), values.data(), 2, pad, s.data());
  EXPECT_NEAR(s[0], 2 / std::sqrt(6.0), 1e-6);
  EXPECT_NEAR(s[1], 1 + 2 * 3 / std::sqrt(15.0), 1e-6);
  EXPECT_NEAR(s[2], 2, 1e-6);
  EXPECT_NEAR(s[3], 0.25 - 1, 1e-7);
  // No history: the popular order (every score below 0).
  knn_scores(nb, nullptr, nullptr, 0, pad, s.data());
  EXPECT_GT(s[1], s[0]);
  EXPECT_EQ(s[0], s[2]);  // a tie: the smaller index wins in the top K
  EXPECT_GT(s[2], s[3]);
  EXPECT_LT(s[1], 0);
}

TEST(ItemKnn, HandComputedEvaluation) {
  Comm world = Comm::world();
  const TrainData d = make_data(world, kTrain);
  const ItemNeighbours nb = item_knn(world, d, 2, 1);
  // Test items: u0 {2}, u1 none, u2 {0}, u3 {0}. Popularity: 2, 3, 2, 1.
  //   u0 (train 0, 1): 0 and 1 scored, both left out; 2, 3 padded: 2 first -> hit at 1.
  //   u2 (train 1, 2): 0 scored 0.8165, the rest left out or padded -> hit at 1.
  //   u3 (train 3): only 3 scored (left out); padded 1, 0, 2 -> miss at 1, hit at 2.
  const Dense test = {{0, 0, 1, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {1, 0, 0, 0}};
  const auto r = static_cast<std::size_t>(world.rank());
  const CsrBlock t = slice(test, d.user_bounds[r], d.user_bounds[r + 1]);
  const std::vector<Index> pop = popularity_counts(world, d);
  ASSERT_EQ(pop, (std::vector<Index>{2, 3, 2, 1}));
  const MetricSums k1 = evaluate_knn(world, d, t, nb, pop, 1, 1);
  EXPECT_EQ(k1.n_users, 3);
  EXPECT_NEAR(k1.map, 2.0 / 3, 1e-12);
  EXPECT_NEAR(k1.precision, 2.0 / 3, 1e-12);
  const MetricSums k2 = evaluate_knn(world, d, t, nb, pop, 2, 2);
  EXPECT_NEAR(k2.map, (1 + 1 + 0.5) / 3, 1e-12);
  // The full evaluation carries the view and its k; without lists there is none.
  FactorMatrix X = FactorMatrix::Zero(d.users.n_rows(), 1), Y = FactorMatrix::Ones(4, 1);
  const Evaluation e = evaluate(world, d, t, X, Y, pop, 1, 1, &nb);
  EXPECT_EQ(e.knn_k, 2);
  EXPECT_NEAR(e.knn.map, 2.0 / 3, 1e-12);
  const Evaluation none = evaluate(world, d, t, X, Y, pop, 1, 1);
  EXPECT_EQ(none.knn_k, 0);
  EXPECT_EQ(none.knn.n_users, 0);
  // The row form keeps the kNN view.
  std::vector<double> row(kEvaluationFields);
  evaluation_to_row(e, row.data());
  const Evaluation back = evaluation_from_row(row.data());
  EXPECT_EQ(back.knn_k, 2);
  EXPECT_EQ(back.knn.map, e.knn.map);
  EXPECT_EQ(back.baseline.map, e.baseline.map);
}

TEST(ItemKnn, DistributedEqualsOneCallOnTheWholeMatrix) {
  Comm world = Comm::world();
  // 60 users x 40 items, ~15% filled with values 1..5, some users and items empty.
  Dense m(60, std::vector<float>(40, 0));
  std::uint64_t s = 7;
  for (std::size_t u = 0; u < 60; ++u)
    for (std::size_t j = 0; j < 40; ++j) {
      s = splitmix64(s);
      if (u % 17 != 3 && j % 13 != 5 && s % 100 < 15) m[u][j] = static_cast<float>(1 + (s >> 32) % 5);
    }
  const TrainData d = make_data(world, m);
  for (int k : {1, 5, 50}) {
    const ItemNeighbours got = item_knn(world, d, k, 2);
    // The reference: one call with every item and every user, computed on this rank alone.
    const Dense t = transpose(m);
    std::vector<double> norm(40, 0);
    for (std::size_t j = 0; j < 40; ++j) {
      for (float v : t[j]) norm[j] += static_cast<double>(v) * v;
      norm[j] = std::sqrt(norm[j]);
    }
    std::vector<Index> users(60);
    for (Index u = 0; u < 60; ++u) users[static_cast<std::size_t>(u)] = u;
    const ItemNeighbours want = item_neighbours_rows(slice(t, 0, 40), slice(m, 0, 60), users, norm, k, 1);
    EXPECT_EQ(got.indptr, want.indptr) << "k " << k;
    EXPECT_EQ(got.indices, want.indices) << "k " << k;
    EXPECT_EQ(got.data, want.data) << "k " << k;  // bitwise: the same sums in the same order
    for (std::int64_t r = 0; r + 1 < static_cast<std::int64_t>(got.indptr.size()); ++r)
      EXPECT_LE(got.indptr[r + 1] - got.indptr[r], k);
  }
  EXPECT_THROW(item_knn(world, d, 0, 1), ConfigError);
}

TEST(ItemKnn, CheckRefusesABrokenNeighbourMatrix) {
  Comm world = Comm::world();
  const ItemNeighbours good = item_knn(world, make_data(world, kTrain), 2, 1);
  EXPECT_NO_THROW(check_item_neighbours(good, "m.h5"));
  ItemNeighbours bad = good;
  bad.indices[1] = 4;  // outside [0, 4)
  EXPECT_THROW(check_item_neighbours(bad, "m.h5"), InputError);
  bad = good;
  bad.data[0] = std::nanf("");
  EXPECT_THROW(check_item_neighbours(bad, "m.h5"), InputError);
  bad = good;
  bad.indptr.pop_back();
  EXPECT_THROW(check_item_neighbours(bad, "m.h5"), InputError);
}

}  // namespace
