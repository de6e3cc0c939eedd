// Pure partitioning functions: which rows each of `parts` ranks owns.
// A partition is a vector of parts+1 boundaries; part k owns rows [b[k], b[k+1]).
#pragma once
#include <cstdint>
#include <vector>

#include "mfrec/types.hpp"

namespace mfrec {

using Bounds = std::vector<Index>;

// n rows in `parts` nearly equal consecutive ranges (the first n % parts get one extra row).
Bounds partition_even(Index n, int parts);

// Consecutive ranges balanced by cost, where row r costs (indptr[r+1] - indptr[r]) + row_cost:
// the non-zeros plus a fixed per-row share (a row with no non-zeros still costs a solve).
// `indptr` is the global CSR row pointer (n+1 entries).
Bounds partition_by_nnz(const std::vector<std::int64_t>& indptr, int parts, double row_cost = 1.0);

// The part that owns `row` (binary search in the bounds).
int owner_of(const Bounds& b, Index row);

// Row counts of every part (b[k+1] - b[k]).
std::vector<std::int64_t> part_sizes(const Bounds& b);

}  // namespace mfrec
