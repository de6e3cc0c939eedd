// The trainer on one process (issue 13, mfrec_dist against bench_als): with one rank the
// allgather has nothing to send, so a trainer may read its own rows in place instead of a copy.
// Whatever it reads must stay current: after each half-step, and after set_local_factors (a
// resumed checkpoint), training continues exactly as an uninterrupted run, with the same loss.
// CG's working basis (Trainer::basis) is standard ALS rotated, and rotates back to it.
#include <gtest/gtest.h>

#include <cstdio>

#include "mfrec/als_kernels.hpp"
#include "mfrec/trainer.hpp"
#include "test_data.hpp"

using namespace mfrec;

namespace {

TrainConfig config(Solver solver, ExchangeMode exchange) {
  TrainConfig cfg;
  cfg.als.factors = 8;
  cfg.als.solver = solver;
  cfg.threads = 2;
  cfg.exchange = exchange;
  return cfg;
}

}  // namespace

class TrainerOneRank : public ::testing::TestWithParam<std::tuple<Solver, ExchangeMode>> {};

TEST_P(TrainerOneRank, ResumedTrainingContinuesExactly) {
  Comm world = Comm::world();
  ASSERT_EQ(world.size(), 1);
  const std::string path = "trainer_one_rank.h5";
  testdata::write_random_prepared(path, world, 600, 50, 8, 17, {3, 100, 257});  // cold users: not every row is read
  h5::File f = h5::File::open(path, &world);
  const TrainData d = load_train_data(f, world);
  f.close();
  const TrainConfig cfg = config(std::get<0>(GetParam()), std::get<1>(GetParam()));

  Trainer whole(world, d, cfg);
  for (int it = 0; it < 4; ++it) whole.iterate();

  Trainer first(world, d, cfg);
  first.iterate();
  first.iterate();
  Trainer resumed(world, d, cfg);  // starts from its own initial factors: set_local_factors must replace what it reads
  resumed.set_local_factors(first.local_user_factors(), first.local_item_factors(), 2, first.basis());
  resumed.iterate();
  resumed.iterate();

  EXPECT_EQ(resumed.iterations_done(), 4);
  EXPECT_TRUE(resumed.local_user_factors() == whole.local_user_factors());
  EXPECT_TRUE(resumed.local_item_factors() == whole.local_item_factors());
  EXPECT_EQ(resumed.loss(), whole.loss());
  EXPECT_TRUE(resumed.basis() == whole.basis());  // the checkpoint carries it: model files rotate alike
  std::remove(path.c_str());
}

// CG in the eigenbasis leaves the factors in a working basis (Trainer::iterate): rotated back, they
// are those of ALS solved in the standard basis, up to rounding, and so are the scores before.
TEST(TrainerOneRank, WorkingBasisIsTheStandardSolutionRotated) {
  Comm world = Comm::world();
  const std::string path = "trainer_one_rank_basis.h5";
  testdata::write_random_prepared(path, world, 600, 50, 8, 19);
  h5::File f = h5::File::open(path, &world);
  const TrainData d = load_train_data(f, world);
  f.close();
  TrainConfig cfg = config(Solver::kConjugateGradient, ExchangeMode::kAuto);
  // Converged: 3 float CG steps on these systems turn the bases' rounding apart (1e-7) into 1e-3.
  cfg.als.cg_steps = 30;
  const int k = cfg.als.factors;
  ASSERT_TRUE(use_eigenbasis(cfg.als, d.users.n_rows(), d.items.n_rows()));

  FactorMatrix X(d.users.n_rows(), k), Y(d.items.n_rows(), k);  // the standard basis, by hand
  for (Index u = 0; u < X.rows(); ++u) init_factor_row(cfg.seed, 0, u, cfg.init_scale, X.row(u).data(), k);
  for (Index i = 0; i < Y.rows(); ++i) init_factor_row(cfg.seed, 1, i, cfg.init_scale, Y.row(i).data(), k);
  auto half_step = [&](const CsrBlock& R, const FactorMatrix& other, FactorMatrix& mine) {
    Eigen::MatrixXd G;
    gram_accumulate(other, 0, other.rows(), G, 1);
    solve_rows(R, other, G.cast<Real>(), cfg.als, mine, 1);
  };
  Trainer t(world, d, cfg);
  for (int it = 0; it < 4; ++it) {
    half_step(d.users, Y, X);
    half_step(d.items, X, Y);
    t.iterate();
  }
  const Eigen::MatrixXd& B = t.basis();
  EXPECT_GT((B - Eigen::MatrixXd::Identity(k, k)).norm(), 0.1);  // it did rotate
  EXPECT_LT((B.transpose() * B - Eigen::MatrixXd::Identity(k, k)).norm(), 1e-12);
  auto rel = [](const auto& a, const auto& b) { return (a - b).norm() / b.norm(); };
  const Eigen::MatrixXf scores = X * Y.transpose();
  const Eigen::MatrixXf working = t.local_user_factors() * t.local_item_factors().transpose();
  EXPECT_LT(rel(working, scores), 1e-4);
  FactorMatrix Xs, Ys;
  t.copy_standard_factors(Xs, Ys);
  EXPECT_LT(rel(Eigen::MatrixXf(Xs * Ys.transpose()), working), 1e-6);  // the same scores in either basis
  EXPECT_LT(rel(Xs, X), 1e-4);
  EXPECT_LT(rel(Ys, Y), 1e-4);
  t.to_standard_basis();
  EXPECT_TRUE(t.basis().isIdentity(0));
  EXPECT_TRUE(t.local_user_factors() == Xs);  // the same rotation, in place
  EXPECT_TRUE(t.local_item_factors() == Ys);
  t.iterate();  // and training goes on from the standard basis
  half_step(d.users, Y, X);
  half_step(d.items, X, Y);
  t.copy_standard_factors(Xs, Ys);
  EXPECT_LT(rel(Xs, X), 1e-4);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(SolversAndExchanges, TrainerOneRank,
                         ::testing::Combine(::testing::Values(Solver::kConjugateGradient, Solver::kCholesky),
                                            ::testing::Values(ExchangeMode::kAuto, ExchangeMode::kAllgather,
                                                              ExchangeMode::kSparse)));
