// Threads from the CPU affinity mask: the pure rule (a rank's mask and its node peers' masks ->
// threads), the cpu-list text, and reading this process's mask.
#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <numeric>

#include "mfrec/affinity.hpp"

using namespace mfrec;

namespace {

CpuList range(int first, int last) {  // first..last inclusive
  CpuList c(static_cast<std::size_t>(last - first + 1));
  std::iota(c.begin(), c.end(), first);
  return c;
}

}  // namespace

TEST(Affinity, FormatsCpuLists) {
  EXPECT_EQ(format_cpu_list({}), "");
  EXPECT_EQ(format_cpu_list({0}), "0");
  EXPECT_EQ(format_cpu_list({0, 1}), "0-1");
  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8}), "0-3,8");
  EXPECT_EQ(format_cpu_list({0, 2, 4}), "0,2,4");
  EXPECT_EQ(format_cpu_list({1, 2, 10, 11, 12, 64}), "1-2,10-12,64");
}

// `mpirun -n 1` binds the rank to one core by default: one thread, not two sharing that core
// (the old default, the node's cores / the node's ranks, gave 2 on a 2-core node).
TEST(Affinity, OneRankBoundToOneCoreGetsOneThread) {
  EXPECT_EQ(threads_for_mask({0}, {{0}}), 1);
}

TEST(Affinity, UnboundRankGetsItsWholeMask) {
  EXPECT_EQ(threads_for_mask(range(0, 1), {range(0, 1)}), 2);
  EXPECT_EQ(threads_for_mask(range(0, 63), {range(0, 63)}), 64);
}

// --bind-to none: every rank's mask is the whole node; they divide it.
TEST(Affinity, RanksSharingOneMaskDivideIt) {
  const std::vector<CpuList> four(4, range(0, 7));
  EXPECT_EQ(ranks_sharing(range(0, 7), four), 4);
  EXPECT_EQ(threads_for_mask(range(0, 7), four), 2);
  // More ranks than cores: still one thread each.
  EXPECT_EQ(threads_for_mask(range(0, 1), std::vector<CpuList>(4, range(0, 1))), 1);
}

// Ranks bound to disjoint cores (Open MPI's per-core or per-socket binding, srun
// --cpus-per-task) each get their own mask's count.
TEST(Affinity, DisjointMasksAreNotDivided) {
  EXPECT_EQ(threads_for_mask({0}, {{0}, {1}}), 1);
  EXPECT_EQ(threads_for_mask(range(2, 3), {range(0, 1), range(2, 3)}), 2);
  // Two sockets of 32 cores, 16 ranks bound to each socket: 2 threads a rank.
  std::vector<CpuList> node(16, range(0, 31));
  node.insert(node.end(), 16, range(32, 63));
  EXPECT_EQ(threads_for_mask(range(0, 31), node), 2);
  EXPECT_EQ(threads_for_mask(range(32, 63), node), 2);
}

// A mask overlapping several others is divided by every rank it overlaps (no core is promised
// to two ranks' threads).
TEST(Affinity, PartialOverlapCountsEveryOverlappingRank) {
  const std::vector<CpuList> node = {range(0, 3), range(0, 1), range(2, 3)};
  EXPECT_EQ(ranks_sharing(range(0, 3), node), 3);
  EXPECT_EQ(threads_for_mask(range(0, 3), node), 1);
  EXPECT_EQ(ranks_sharing(range(0, 1), node), 2);
  EXPECT_EQ(threads_for_mask(range(0, 1), node), 1);
}

TEST(Affinity, EmptyMaskStillGetsOneThread) {
  EXPECT_EQ(threads_for_mask({}, {{}}), 1);
}

TEST(Affinity, BitRowsRoundTrip) {
  const CpuList cpus = {0, 5, 63, 64, 130};
  const auto bits = cpu_bits(cpus, 3);
  ASSERT_EQ(bits.size(), 3u);
  EXPECT_EQ(bits[0], (std::uint64_t{1} << 0) | (std::uint64_t{1} << 5) | (std::uint64_t{1} << 63));
  EXPECT_EQ(bits[1], std::uint64_t{1});
  EXPECT_EQ(cpus_from_bits(bits.data(), bits.size()), cpus);
}

// The mask is read from the kernel: binding this thread to one CPU is seen at once.
TEST(Affinity, ReadsTheProcessMask) {
  const CpuList all = process_cpus();
  ASSERT_FALSE(all.empty());
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(static_cast<int>(all.size()), CPU_COUNT(&saved));

  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(all.back(), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const CpuList bound = process_cpus();
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(bound, CpuList{all.back()});
  EXPECT_EQ(threads_for_mask(bound, {bound}), 1);
}
