// The default threads under 1, 2 and 4 ranks, from the masks the ranks really have and from
// masks the test binds them to: at least 1, never more than the rank's mask, and ranks sharing
// a mask never run more threads than it has cores (unless ranks alone outnumber them).
#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "mfrec/affinity.hpp"
#include "mfrec/comm.hpp"

using namespace mfrec;

namespace {

// Binds the calling thread to `cpus` for the scope; restores the old mask after.
class BoundTo {
 public:
  explicit BoundTo(const CpuList& cpus) {
    sched_getaffinity(0, sizeof saved_, &saved_);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) CPU_SET(c, &set);
    ok_ = sched_setaffinity(0, sizeof set, &set) == 0;
  }
  ~BoundTo() { sched_setaffinity(0, sizeof saved_, &saved_); }
  bool ok() const { return ok_; }

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

}  // namespace

TEST(MpiAffinity, DefaultIsWithinTheMask) {
  Comm world = Comm::world();
  const CpuList mine = process_cpus();
  const int t = default_threads(world);
  EXPECT_GE(t, 1);
  EXPECT_LE(t, static_cast<int>(mine.size()));
  const ThreadBinding b = bind_threads(world, 0);
  EXPECT_EQ(b.threads, t);
  EXPECT_FALSE(b.requested);
  EXPECT_EQ(b.cores, mine);
  // Ranks sharing this mask together stay within it, unless there are more of them than cores.
  EXPECT_LE(b.threads * b.sharing, std::max(static_cast<int>(mine.size()), b.sharing));
}

TEST(MpiAffinity, RequestedThreadsAreKept) {
  Comm world = Comm::world();
  const ThreadBinding b = bind_threads(world, 3);
  EXPECT_EQ(b.threads, 3);
  EXPECT_TRUE(b.requested);
}

// Every rank bound to one CPU of its own (round robin over the CPUs it may use): one thread
// each, shared only by the ranks that landed on the same CPU.
TEST(MpiAffinity, RanksBoundToSingleCpus) {
  Comm world = Comm::world();
  const CpuList all = process_cpus();
  const int cpu = all[static_cast<std::size_t>(world.rank()) % all.size()];
  BoundTo bound({cpu});
  ASSERT_TRUE(bound.ok());
  const ThreadBinding b = bind_threads(world, 0);
  EXPECT_EQ(b.cores, CpuList{cpu});
  EXPECT_EQ(b.threads, 1);
  Comm node = world.split_shared();
  const std::vector<std::int64_t> cpus = node.allgather_counts(cpu);
  EXPECT_EQ(b.sharing, static_cast<int>(std::count(cpus.begin(), cpus.end(), cpu)));
}

TEST(MpiAffinity, ReportListsEveryRank) {
  Comm world = Comm::world();
  const ThreadBinding b = bind_threads(world, 0);
  const nlohmann::json j = binding_report(world, b);
  if (!world.is_root()) {
    EXPECT_TRUE(j.is_null());
    return;
  }
  ASSERT_EQ(j.at("ranks").size(), static_cast<std::size_t>(world.size()));
  EXPECT_EQ(j.at("ranks")[0].at("cores"), format_cpu_list(b.cores));
  EXPECT_EQ(j.at("ranks")[0].at("threads"), b.threads);
  for (const auto& r : j.at("ranks")) {
    EXPECT_GE(r.at("threads").get<int>(), 1);
    EXPECT_GE(r.at("n_cores").get<int>(), 1);
    EXPECT_FALSE(r.at("host").get<std::string>().empty());
  }
  EXPECT_LE(j.at("threads").at("min").get<int>(), j.at("threads").at("max").get<int>());
  EXPECT_FALSE(j.at("requested").get<bool>());
}
