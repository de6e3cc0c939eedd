#include "mfrec/partition.hpp"

#include <algorithm>
#include <cmath>

#include "mfrec/error.hpp"

namespace mfrec {

Bounds partition_even(Index n, int parts) {
  if (parts < 1) throw Error("partition_even: parts < 1");
  Bounds b(static_cast<std::size_t>(parts) + 1, 0);
  const Index base = n / parts, extra = n % parts;
  for (int k = 0; k < parts; ++k) b[k + 1] = b[k] + base + (k < extra ? 1 : 0);
  return b;
}

Bounds partition_by_nnz(const std::vector<std::int64_t>& indptr, int parts, double row_cost) {
  if (parts < 1) throw Error("partition_by_nnz: parts < 1");
  if (indptr.empty()) throw Error("partition_by_nnz: empty indptr");
  const Index n = static_cast<Index>(indptr.size()) - 1;
  auto cost = [&](Index r) { return static_cast<double>(indptr[r] - indptr[0]) + row_cost * static_cast<double>(r); };
  const double total = cost(n);
  Bounds b(static_cast<std::size_t>(parts) + 1, 0);
  b[parts] = n;
  Index lo = 0;
  for (int k = 1; k < parts; ++k) {
    const double target = total * k / parts;
    // First row boundary whose cumulative cost reaches the target (binary search: cost is monotone).
    Index a = lo, z = n;
    while (a < z) {
      Index mid = a + (z - a) / 2;
      if (cost(mid) < target) a = mid + 1;
      else z = mid;
    }
    // Take the nearer of the two candidate boundaries.
    if (a > lo && std::abs(cost(a - 1) - target) < std::abs(cost(a) - target)) --a;
    b[k] = lo = std::max(a, lo);
  }
  return b;
}

int owner_of(const Bounds& b, Index row) {
  auto it = std::upper_bound(b.begin(), b.end(), row);
  return static_cast<int>(std::distance(b.begin(), it)) - 1;
}

std::vector<std::int64_t> part_sizes(const Bounds& b) {
  std::vector<std::int64_t> out(b.size() - 1);
  for (std::size_t k = 0; k + 1 < b.size(); ++k) out[k] = b[k + 1] - b[k];
  return out;
}

}  // namespace mfrec
