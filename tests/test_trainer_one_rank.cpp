// The trainer on one process (issue 13, mfrec_dist against bench_als): with one rank the
// allgather has nothing to send, so a trainer may read its own rows in place instead of a copy.
// Whatever it reads must stay current: after each half-step, and after set_local_factors (a
// resumed checkpoint), training continues exactly as an uninterrupted run, with the same loss.
#include <gtest/gtest.h>

#include <cstdio>

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
  resumed.set_local_factors(first.local_user_factors(), first.local_item_factors(), 2);
  resumed.iterate();
  resumed.iterate();

  EXPECT_EQ(resumed.iterations_done(), 4);
  EXPECT_TRUE(resumed.local_user_factors() == whole.local_user_factors());
  EXPECT_TRUE(resumed.local_item_factors() == whole.local_item_factors());
  EXPECT_EQ(resumed.loss(), whole.loss());
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(SolversAndExchanges, TrainerOneRank,
                         ::testing::Combine(::testing::Values(Solver::kConjugateGradient, Solver::kCholesky),
                                            ::testing::Values(ExchangeMode::kAuto, ExchangeMode::kAllgather,
                                                              ExchangeMode::kSparse)));
