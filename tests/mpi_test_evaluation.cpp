// The distributed evaluation on a hand-computed case, under 1, 2 and 4 ranks: the ALS model, the
// system (cold users get the popular list) and the popularity baseline, with cold users counted.
#include <gtest/gtest.h>

#include <vector>

#include "mfrec/evaluation.hpp"
#include "mfrec/partition.hpp"
#include "test_csr.hpp"

using namespace mfrec;

namespace {

using testdata::Rows;
const auto slice = testdata::rows_block;


// 4 users, 3 items, one factor: score(u, i) = x_u y_i with y = (3, 2, 1).
//   user  train   test  x    model ranking (train left out)   popular (counts 2, 1, 0)
//   0     {0}     {1}   1    1, 2      -> hit at 1            1, 2 -> hit at 1
//   1     {1}     {2}   1    0, 2      -> miss at 1           0, 2 -> miss at 1
//   2     {}      {0}  -1    2, 1, 0   -> miss at 1 (cold)    0, ... -> hit at 1
//   3     {0}     {}    1    not evaluated (no test items)
// With K = 1 over the 3 evaluated users: model MAP = precision = recall = 1/3; system and
// baseline 2/3. AUC (negatives: items in neither train nor test): model u0 1, u1 0, u2 0;
// popularity u0 1, u1 0, u2 1.
const Rows kTrain = {{0}, {1}, {}, {0}};
const Rows kTest = {{1}, {2}, {0}, {}};

struct Case {
  TrainData data;
  CsrBlock test;
  FactorMatrix X_local, Y;
};

Case make_case(const Comm& comm) {
  Case c;
  const Bounds ub = partition_even(4, comm.size()), ib = partition_even(3, comm.size());
  const Index b = ub[comm.rank()], e = ub[comm.rank() + 1];
  c.data.n_users = 4;
  c.data.n_items = 3;
  c.data.nnz = 3;
  c.data.user_bounds = ub;
  c.data.item_bounds = ib;
  c.data.users = slice(kTrain, 3, b, e);
  c.test = slice(kTest, 3, b, e);
  const float x[4] = {1, 1, -1, 1};
  c.X_local.resize(e - b, 1);
  for (Index u = b; u < e; ++u) c.X_local(u - b, 0) = x[u];
  c.Y.resize(3, 1);
  c.Y << 3, 2, 1;
  return c;
}

}  // namespace

TEST(Evaluation, PopularityCountsDistinctTrainingUsersOverAllRanks) {
  Comm world = Comm::world();
  Case c = make_case(world);
  EXPECT_EQ(popularity_counts(world, c.data), (std::vector<Index>{2, 1, 0}));
}

TEST(Evaluation, HandComputedModelSystemAndBaseline) {
  Comm world = Comm::world();
  Case c = make_case(world);
  const std::vector<Index> pop = popularity_counts(world, c.data);
  const Evaluation e = evaluate(world, c.data, c.test, c.X_local, c.Y, pop, 1, 1);
  EXPECT_EQ(e.k, 1);
  EXPECT_EQ(e.cold_users, 1);
  for (const MetricSums* m : {&e.model, &e.system, &e.baseline}) EXPECT_EQ(m->n_users, 3);
  EXPECT_NEAR(e.model.map, 1.0 / 3, 1e-12);
  EXPECT_NEAR(e.model.precision, 1.0 / 3, 1e-12);
  EXPECT_NEAR(e.model.recall, 1.0 / 3, 1e-12);
  EXPECT_NEAR(e.model.ndcg, 1.0 / 3, 1e-12);
  EXPECT_NEAR(e.model.auc, 1.0 / 3, 1e-12);
  EXPECT_NEAR(e.system.map, 2.0 / 3, 1e-12);
  EXPECT_NEAR(e.system.precision, 2.0 / 3, 1e-12);
  EXPECT_NEAR(e.system.auc, 2.0 / 3, 1e-12);
  EXPECT_NEAR(e.baseline.map, 2.0 / 3, 1e-12);
  EXPECT_NEAR(e.baseline.recall, 2.0 / 3, 1e-12);
  EXPECT_NEAR(e.baseline.auc, 2.0 / 3, 1e-12);
}

TEST(Evaluation, TestRowsMustMatchTheTrainingRows) {
  Comm world = Comm::world();
  Case c = make_case(world);
  c.test = slice(kTest, 3, 0, 4);  // every row, on every rank
  if (world.size() > 1)
    EXPECT_THROW(evaluate(world, c.data, c.test, c.X_local, c.Y, {2, 1, 0}, 1, 1), Error);
}

TEST(Evaluation, RowRoundTrip) {
  Evaluation e;
  e.k = 7;
  e.cold_users = 3;
  e.model.map = 0.25;
  e.system.auc = 0.75;
  e.baseline.n_users = 11;
  std::vector<double> row(kEvaluationFields);
  evaluation_to_row(e, row.data());
  const Evaluation back = evaluation_from_row(row.data());
  EXPECT_EQ(back.k, 7);
  EXPECT_EQ(back.cold_users, 3);
  EXPECT_EQ(back.model.map, 0.25);
  EXPECT_EQ(back.system.auc, 0.75);
  EXPECT_EQ(back.baseline.n_users, 11);
  EXPECT_EQ(metric_map(back.model).at("map_at_k"), 0.25);
}
