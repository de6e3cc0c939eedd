// The MPI and HDF5 facades under 1, 2 and 4 ranks.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <numeric>

#include "mfrec/comm.hpp"
#include "mfrec/h5.hpp"
#include "mfrec/partition.hpp"

using namespace mfrec;

namespace {
std::string scratch(const Comm& comm, const std::string& name) {
  return comm.bcast("foundation_" + std::to_string(comm.size()) + "_" + name);
}
}  // namespace

TEST(Comm, ReductionsAndScan) {
  Comm world = Comm::world();
  EXPECT_EQ(world.sum<std::int64_t>(world.rank() + 1), std::int64_t(world.size()) * (world.size() + 1) / 2);
  EXPECT_EQ(world.max(world.rank()), world.size() - 1);
  EXPECT_EQ(world.exscan_sum<std::int64_t>(1), world.rank());
  EXPECT_EQ(world.any(world.rank() == world.size() - 1), true);
  EXPECT_EQ(world.any(false), false);
}

TEST(Comm, AllgatherRowsInRankOrder) {
  Comm world = Comm::world();
  const std::int64_t width = 3, mine = world.rank() % 2 == 0 ? 2 : 0;  // some ranks hold no rows
  std::vector<float> local(mine * width);
  for (std::int64_t i = 0; i < mine * width; ++i) local[i] = float(world.rank() * 100 + i);
  auto rows = world.allgather_counts(mine);
  std::vector<float> all(std::accumulate(rows.begin(), rows.end(), std::int64_t(0)) * width);
  world.allgatherv_rows(local.data(), mine, rows, width, all.data());
  std::size_t pos = 0;
  for (int r = 0; r < world.size(); ++r)
    for (std::int64_t i = 0; i < rows[r] * width; ++i) EXPECT_EQ(all[pos++], float(r * 100 + i));
}

TEST(Comm, AlltoallvRoutesToOwners) {
  Comm world = Comm::world();
  std::vector<std::int64_t> send, counts(world.size(), 0);
  for (int r = 0; r < world.size(); ++r) {
    counts[r] = r + 1;
    for (int i = 0; i <= r; ++i) send.push_back(world.rank() * 1000 + r);
  }
  auto recv = world.alltoallv(send, counts);
  ASSERT_EQ(recv.size(), std::size_t(world.size()) * (world.rank() + 1));
  for (std::size_t i = 0; i < recv.size(); ++i) EXPECT_EQ(recv[i] % 1000, world.rank());
}

TEST(Comm, SplitFormsGroups) {
  Comm world = Comm::world();
  Comm half = world.split(world.rank() % 2, world.rank());
  EXPECT_EQ(half.size(), world.size() / 2 + (world.size() % 2 && world.rank() % 2 == 0 ? 1 : 0));
  EXPECT_EQ(half.sum(1), half.size());
}

TEST(H5, ParallelRowWritesReadBackWithH5Types) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "rows.h5");
  if (world.is_root()) std::remove(path.c_str());  // a previous run's file
  world.barrier();
  const Index n = 10, width = 3;
  Bounds b = partition_even(n, world.size());
  {
    h5::File f = h5::File::create_atomic(path, &world);
    f.create_dataset<float>("/g/m", {n, width}, {4, 0});
    f.create_dataset<std::int64_t>("/g/v", {n}, {4, 1});
    std::vector<float> m;
    std::vector<std::int64_t> v;
    for (Index r = b[world.rank()]; r < b[world.rank() + 1]; ++r) {
      v.push_back(r * r);
      for (Index c = 0; c < width; ++c) m.push_back(float(r * 10 + c));
    }
    f.write_rows("/g/m", b[world.rank()], v.size(), m.data());
    f.write_rows("/g/v", b[world.rank()], v.size(), v.data());
    f.write_strings("/names", {"alpha", "be", "gamma-delta"});
    f.set_attr("/", "format", "test");
    f.set_attr("/g", "n", std::int64_t(n));
    EXPECT_FALSE(std::ifstream(path).good());  // not visible before commit
    f.commit();
  }
  EXPECT_TRUE(std::ifstream(path).good());
  EXPECT_FALSE(std::ifstream(path + ".partial").good());
  h5::File f = h5::File::open(path);
  EXPECT_EQ(f.shape("/g/m"), (h5::Dims{n, width}));
  auto v = f.read_all<std::int64_t>("/g/v");
  for (Index r = 0; r < n; ++r) EXPECT_EQ(v[r], std::int64_t(r * r));
  std::vector<float> row(width);
  f.read_rows("/g/m", 7, 1, row.data());
  EXPECT_EQ(row[2], 72.0f);
  EXPECT_EQ(f.read_strings("/names"), (std::vector<std::string>{"alpha", "be", "gamma-delta"}));
  EXPECT_EQ(f.attr_string("/", "format"), "test");
  EXPECT_EQ(f.attr_int("/g", "n"), std::int64_t(n));
  world.barrier();
}

TEST(H5, ErrorsNameFileAndObject) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "err.h5");
  {
    h5::File f = h5::File::create(path, &world);
    f.create_dataset<float>("/x", {4});
  }
  h5::File f = h5::File::open(path);
  try {
    f.require<std::int64_t>("/x", 1);
    FAIL() << "type mismatch not detected";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("/x"), std::string::npos);
  }
  EXPECT_THROW(f.require<float>("/x", 2), InputError);
  EXPECT_THROW(f.read_all<float>("/missing/y"), InputError);
  EXPECT_THROW(h5::File::open(path + ".nope"), InputError);
  world.barrier();
}

TEST(H5, UncommittedAtomicFileIsRemoved) {
  Comm world = Comm::world();
  const std::string path = scratch(world, "dropped.h5");
  {
    h5::File f = h5::File::create_atomic(path, &world);
    f.create_dataset<float>("/x", {4});
    f.close();
  }
  world.barrier();
  EXPECT_FALSE(std::ifstream(path).good());
  EXPECT_FALSE(std::ifstream(path + ".partial").good());
}
