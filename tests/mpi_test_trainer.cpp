// The distributed trainer, evaluation and model file under 1, 2 and 4 ranks: results must not
// depend on the rank count.
#include <gtest/gtest.h>

#include <cstdio>

#include "mfrec/training_run.hpp"
#include "mfrec/model.hpp"
#include "test_data.hpp"
#include "test_model.hpp"

using namespace mfrec;

namespace {

std::string scratch(const Comm& comm, const std::string& name) {
  return comm.bcast("trainer_" + std::to_string(comm.size()) + "_" + name);
}

RunOptions options(Solver solver, int iterations = 6) { return testdata::quick_run_options(solver, iterations, 6); }

struct Outcome {
  FactorMatrix X, Y;
  Evaluation e;
};

Outcome train_on(const Comm& comm, const std::string& path, const RunOptions& o) {
  h5::File f = h5::File::open(path, &comm);
  GroupData d = load_group_data(f, comm);
  std::unique_ptr<Trainer> t;
  RunResult r = run_point(comm, d, o, &t);
  return {t->gather_user_factors(), t->gather_item_factors(), r.evaluations.back()};
}

double rel_diff(const FactorMatrix& a, const FactorMatrix& b) { return (a - b).norm() / std::max(1e-30f, b.norm()); }

}  // namespace

class TrainerInvariance : public ::testing::TestWithParam<Solver> {};

// Trains on every rank of world and on rank 0 alone: factors and metrics must agree. Returns the
// distributed run's cold-user count (on rank 0).
static Index expect_rank_count_invariant(const Comm& world, const std::string& path, const RunOptions& o) {
  Outcome dist = train_on(world, path, o);
  Comm self = world.split(world.rank(), 0);
  if (world.rank() == 0) {
    Outcome one = train_on(self, path, o);
    EXPECT_LE(rel_diff(dist.X, one.X), 1e-5);
    EXPECT_LE(rel_diff(dist.Y, one.Y), 1e-5);
    EXPECT_NEAR(dist.e.model.map, one.e.model.map, 1e-6);
    EXPECT_NEAR(dist.e.model.auc, one.e.model.auc, 1e-6);
    EXPECT_NEAR(dist.e.baseline.map, one.e.baseline.map, 1e-12);
    EXPECT_EQ(dist.e.model.n_users, one.e.model.n_users);
  }
  world.barrier();
  return dist.e.cold_users;
}

TEST_P(TrainerInvariance, FactorsAndMetricsDoNotDependOnRankCount) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "inv.h5");
  testdata::write_random_prepared(path, world, 157, 41, 9, 11, {3, 100});
  const Index cold = expect_rank_count_invariant(world, path, options(GetParam()));
  if (world.rank() == 0) EXPECT_EQ(cold, 2);
}

// Enough users that the ranks' parts cut through the Gram kernel's 256-row chunks.
TEST(Trainer, InvariantWhenRanksSplitGramChunks) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "inv_big.h5");
  testdata::write_random_prepared(path, world, 1500, 60, 6, 13);
  expect_rank_count_invariant(world, path, options(Solver::kConjugateGradient));
}

INSTANTIATE_TEST_SUITE_P(Solvers, TrainerInvariance,
                         ::testing::Values(Solver::kConjugateGradient, Solver::kCholesky));

// Stopped after 3 of 6 iterations (a checkpoint in the working basis of CG's user half-step) and
// resumed: the same model and evaluation as a run never stopped. A checkpoint without its basis
// would rotate the model away.
TEST(Trainer, CheckpointInTheWorkingBasisResumesExactly) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "resume.h5"), ckpt = scratch(world, "resume_ckpt.h5");
  testdata::write_random_prepared(path, world, 300, 40, 6, 21);
  if (world.is_root()) std::remove(ckpt.c_str());  // left by a failed run, it would be resumed
  world.barrier();
  RunOptions o = options(Solver::kConjugateGradient);
  const Outcome whole = train_on(world, path, o);
  o.checkpoint = ckpt;
  o.resume = true;
  o.signature = "test";
  int calls = 0;
  o.should_stop = [&] { return ++calls == 3; };
  h5::File f = h5::File::open(path, &world);
  GroupData d = load_group_data(f, world);
  f.close();
  ASSERT_TRUE(run_point(world, d, o).interrupted);
  {
    h5::File c = h5::File::open(ckpt, &world);
    const std::vector<double> basis = c.read_all<double>("/basis");
    ASSERT_EQ(basis.size(), 36u);
    EXPECT_FALSE(Eigen::Map<const Eigen::MatrixXd>(basis.data(), 6, 6).isIdentity(0));  // stopped in a rotated basis
  }
  std::unique_ptr<Trainer> t;
  const RunResult r = run_point(world, d, o, &t);
  EXPECT_EQ(r.resumed_from, 3);
  EXPECT_TRUE(t->gather_user_factors() == whole.X);
  EXPECT_TRUE(t->gather_item_factors() == whole.Y);
  EXPECT_EQ(r.evaluations.back().model.map, whole.e.model.map);
  if (world.is_root()) std::remove(ckpt.c_str());
}

TEST(Trainer, ExactSolverNeverIncreasesTheLoss) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "loss.h5");
  testdata::write_random_prepared(path, world, 120, 30);
  h5::File f = h5::File::open(path, &world);
  GroupData d = load_group_data(f, world);
  RunOptions o = options(Solver::kCholesky, 8);
  o.loss_every = 1;
  RunResult r = run_point(world, d, o);
  ASSERT_EQ(r.losses.size(), 8u);
  for (std::size_t i = 1; i < r.losses.size(); ++i) EXPECT_LE(r.losses[i].second, r.losses[i - 1].second * (1 + 1e-5));
  // It learns the structure: users of a group like the same quarter of the items.
  EXPECT_GT(r.evaluations.back().model.auc, 0.7);
}

TEST(Trainer, RanksWithoutRowsStillWork) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "tiny.h5");
  testdata::write_random_prepared(path, world, 2, 3, 3);
  h5::File f = h5::File::open(path, &world);
  GroupData d = load_group_data(f, world);
  RunResult r = run_point(world, d, options(Solver::kConjugateGradient, 3));
  EXPECT_EQ(r.evaluations.size(), 1u);
}

TEST(Model, WrittenCollectivelyAndReadBack) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "m.h5"), model = scratch(world, "model.h5");
  testdata::write_random_prepared(path, world, 90, 20);
  h5::File f = h5::File::open(path, &world);
  GroupData d = load_group_data(f, world);
  dataset::ItemTable items = dataset::read_items(f);
  std::unique_ptr<Trainer> t;
  RunOptions o = options(Solver::kConjugateGradient, 2);
  RunResult r = run_point(world, d, o, &t);
  ModelMeta meta;
  meta.als = o.train.als;
  meta.iterations = 2;
  meta.dataset = path;
  meta.metrics = metric_map(r.evaluations.back().model);
  ModelParts parts{&t->local_user_factors(), &t->local_item_factors(), d.train.item_bounds[world.rank()], &d.train.users,
                   d.user_ids_local, &items, &d.popularity};
  const FactorMatrix X = t->gather_user_factors(), Y = t->gather_item_factors();
  write_model(model, world, parts, meta);
  if (world.rank() == 0) {
    Model m = read_model(model);
    EXPECT_EQ(m.user_factors.rows(), 90);
    EXPECT_EQ(m.item_factors.cols(), 6);
    EXPECT_LE(rel_diff(m.user_factors, X), 0.0);
    EXPECT_LE(rel_diff(m.item_factors, Y), 0.0);
    EXPECT_EQ(m.user_ids[89], "u89");
    EXPECT_EQ(m.items.name[3], "Item 3");
    EXPECT_EQ(m.seen.nnz(), d.train.nnz);
    EXPECT_EQ(m.meta.als.factors, 6);
    EXPECT_DOUBLE_EQ(m.meta.metrics.at("map_at_k"), r.evaluations.back().model.map);
    EXPECT_EQ(m.popular.size(), 20u);
    EXPECT_GE(m.popularity[m.popular[0]], m.popularity[m.popular[19]]);
  }
  world.barrier();
}

TEST(Trainer, MissingMatricesAreAnAgreedErrorOnEveryRank) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "empty.h5");
  {
    h5::File f = h5::File::create(path, &world);
    f.write_strings("/users/id", {"a"});
  }
  h5::File f = h5::File::open(path, &world);
  EXPECT_THROW(load_group_data(f, world), AgreedError);
}

// A bad entry in the last rank's rows only, and a train_by_item that is not the transpose: every
// rank throws the same AgreedError (no rank is left waiting in the next collective read).
TEST(Trainer, BadDataIsAgreedOnEveryRank) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "bad.h5");
  testdata::write_random_prepared(path, world, 120, 30, 5, 3);
  {
    h5::File f = h5::File::open(path, &world, true);
    const auto nnz = static_cast<Index>(f.attr_int("/matrix/train", "nnz"));
    const std::int32_t bad = 1000;  // outside [0, 30), in the last row's entries
    f.write_rows("/matrix/train/indices", nnz - 1, world.is_root() ? 1 : 0, &bad);
  }
  {
    h5::File f = h5::File::open(path, &world);
    try {
      load_group_data(f, world);
      ADD_FAILURE() << "no error";
    } catch (const AgreedError& e) {
      EXPECT_NE(std::string(e.what()).find("/matrix/train/indices"), std::string::npos) << e.what();
    }
  }
  testdata::write_random_prepared(path, world, 120, 30, 5, 3);
  {
    h5::File f = h5::File::open(path, &world, true);
    const float v = 7.5f;  // one value changed in train_by_item only: same shape, not the transpose
    f.write_rows("/matrix/train_by_item/data", 0, world.is_root() ? 1 : 0, &v);
  }
  h5::File f = h5::File::open(path, &world);
  try {
    load_group_data(f, world);
    ADD_FAILURE() << "no error";
  } catch (const AgreedError& e) {
    EXPECT_NE(std::string(e.what()).find("is not the transpose"), std::string::npos) << e.what();
  }
}
