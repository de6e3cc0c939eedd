// huge_pages.hpp: factor matrices resized with resize_huge get 2 MiB pages where the system's
// transparent huge pages are on ("always" or "madvise"); in "madvise" mode (Debian's default)
// only with the advice.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "mfrec/huge_pages.hpp"

namespace mfrec {
namespace {

std::string thp_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  const auto b = line.find('['), e = line.find(']');
  return b == std::string::npos || e == std::string::npos ? "" : line.substr(b + 1, e - b - 1);
}

// AnonHugePages (kB) of the mapping of /proc/self/smaps that contains `p`; -1 if none does.
long anon_huge_kb(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    std::uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = lo <= a && a < hi;
    } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
      return std::stol(line.substr(14));
    }
  }
  return -1;
}

TEST(HugePages, AdvisedFactorMatricesGetThem) {
  const std::string mode = thp_mode();
  if (mode != "always" && mode != "madvise") GTEST_SKIP() << "transparent huge pages are off here: '" << mode << "'";
  FactorMatrix m;
  resize_huge(m, Index(1) << 16, 64);  // 16 MiB
  m.setConstant(1.0f);
  EXPECT_GT(anon_huge_kb(m.data() + m.size() / 2), 0) << "THP mode " << mode;
}

TEST(HugePages, WithoutTheAdviceMadviseModeGivesNone) {
  if (thp_mode() != "madvise") GTEST_SKIP() << "only in madvise mode: here '" << thp_mode() << "'";
  FactorMatrix m(Index(1) << 16, 64);
  m.setConstant(1.0f);
  EXPECT_EQ(anon_huge_kb(m.data() + m.size() / 2), 0);
}

TEST(HugePages, SmallOrEmptyRangesAreHarmless) {
  FactorMatrix m;
  resize_huge(m, 0, 64);
  resize_huge(m, 3, 5);
  m.setConstant(2.0f);
  advise_huge_pages(m.data(), 1);
  EXPECT_EQ(m.sum(), 30.0f);
}

}  // namespace
}  // namespace mfrec
