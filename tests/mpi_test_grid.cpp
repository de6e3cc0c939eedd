// The grid search over communicator splits: the best point and every point's metrics must not
// depend on the number of groups or ranks.
#include <gtest/gtest.h>

#include <fstream>

#include "mfrec/grid.hpp"
#include "mfrec/model.hpp"
#include "test_data.hpp"

using namespace mfrec;

namespace {
std::string scratch(const Comm& comm, const std::string& name) {
  return comm.bcast("grid_" + std::to_string(comm.size()) + "_" + name);
}

GridSpace small_space() {
  GridSpace s;
  s.alpha = {1, 10};
  s.factors = {4, 8};
  s.regularization = {0.1, 5};
  s.iterations = {2, 5};
  return s;
}

GridOptions grid_options(int groups) {
  GridOptions o;
  o.groups = groups;
  o.base.train.threads = 1;
  o.base.k = 5;
  o.base.progress = false;
  return o;
}
}  // namespace

TEST(Grid, ExpandMergesIterationsAndOrdersLargerFirst) {
  GridSpace s = small_space();
  s.iterations = {5, 2, 5};
  auto runs = expand_grid(s);
  ASSERT_EQ(runs.size(), 8u);  // 2 x 2 x 2, iterations merged
  for (const auto& r : runs) EXPECT_EQ(r.iterations, (std::vector<int>{2, 5}));
  for (std::size_t i = 1; i < runs.size(); ++i) EXPECT_GE(runs[i - 1].cost(), runs[i].cost());
  EXPECT_EQ(runs.front().factors, 8);
}

TEST(Grid, BadListsAreConfigErrors) {
  GridSpace s = small_space();
  s.factors = {};
  EXPECT_THROW(expand_grid(s), ConfigError);
  s = small_space();
  s.regularization = {-1};
  EXPECT_THROW(expand_grid(s), ConfigError);
  s = small_space();
  s.solver = {"lu"};
  EXPECT_THROW(expand_grid(s), ConfigError);
  EXPECT_THROW(check_metric_name("accuracy"), ConfigError);
}

TEST(Grid, BestPointAndMetricsDoNotDependOnGroups) {
  Comm world = Comm::world();
  const std::string data = scratch(world, "data.h5");
  testdata::write_random_prepared(data, world, 140, 36, 9, 5, {7});
  // A single rank is the reference for every rank count.
  GridResult one;
  {
    Comm self = world.split(world.rank(), 0);
    if (world.rank() == 0) one = run_grid(self, data, expand_grid(small_space()), grid_options(1), "");
  }
  world.barrier();
  GridResult ref = run_grid(world, data, expand_grid(small_space()), grid_options(1), scratch(world, "m1.h5"));
  ASSERT_EQ(ref.points.size(), 16u);
  if (world.rank() == 0) {
    EXPECT_EQ(one.best, ref.best);
    for (std::size_t i = 0; i < ref.points.size(); ++i)
      EXPECT_NEAR(one.points[i].evaluation.model.map, ref.points[i].evaluation.model.map, 1e-6);
  }
  for (int g = 2; g <= world.size(); g *= 2) {
    const std::string model = scratch(world, "m" + std::to_string(g) + ".h5");  // collective: outside rank-0 blocks
    GridResult r = run_grid(world, data, expand_grid(small_space()), grid_options(g), model);
    EXPECT_EQ(r.best, ref.best) << g << " groups";
    std::set<int> groups_used;
    for (std::size_t i = 0; i < r.points.size(); ++i) {
      EXPECT_NEAR(r.points[i].evaluation.model.map, ref.points[i].evaluation.model.map, 1e-6);
      EXPECT_NEAR(r.points[i].evaluation.model.auc, ref.points[i].evaluation.model.auc, 1e-6);
      EXPECT_EQ(r.points[i].ranks, world.size() / g);
      groups_used.insert(r.points[i].group);
    }
    EXPECT_EQ(static_cast<int>(groups_used.size()), g);  // every group got work
    if (world.rank() == 0) {
      ModelMeta m = read_model_meta(model);
      const PointResult& b = r.points[static_cast<std::size_t>(r.best)];
      EXPECT_EQ(m.iterations, b.iterations);
      EXPECT_EQ(m.als.factors, b.factors);
      EXPECT_NEAR(m.metrics.at("map_at_k"), b.evaluation.model.map, 1e-12);
    }
  }
  // The best is the maximum of the selection metric.
  for (const auto& p : ref.points) EXPECT_LE(p.evaluation.model.map, ref.points[ref.best].evaluation.model.map);
  world.barrier();
}

TEST(Grid, MoreGroupsThanRanksIsAConfigError) {
  Comm world = Comm::world();
  EXPECT_THROW(run_grid(world, "unused.h5", expand_grid(small_space()), grid_options(world.size() + 1), ""), ConfigError);
}

TEST(Grid, ExperimentLogAndCsv) {
  Comm world = Comm::world();
  const std::string data = scratch(world, "log.h5");
  testdata::write_random_prepared(data, world, 60, 20);
  GridSpace s = small_space();
  s.alpha = {1};
  GridResult r = run_grid(world, data, expand_grid(s), grid_options(1), "");
  const std::string h5p = scratch(world, "exp.h5"), csv = scratch(world, "exp.csv");
  if (world.rank() == 0) {
    write_experiment(h5p, csv, r, grid_options(1), data);
    h5::File f = h5::File::open(h5p);
    EXPECT_EQ(f.read_all<std::int64_t>("/points/iterations").size(), r.points.size());
    auto best = f.read_all<std::int64_t>("/points/best");
    EXPECT_EQ(std::count(best.begin(), best.end(), 1), 1);
    std::ifstream in(csv);
    std::string line;
    int lines = 0, starred = 0;
    while (std::getline(in, line)) {
      ++lines;
      starred += line.rfind("*,", 0) == 0;
    }
    EXPECT_EQ(lines, static_cast<int>(r.points.size()) + 1);
    EXPECT_EQ(starred, 1);
    EXPECT_NE(format_grid_table(r, "map_at_k").find("best"), std::string::npos);
  }
  world.barrier();
}
