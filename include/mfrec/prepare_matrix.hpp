// The distributed building blocks of mfrec_prep: routing records to the rank that owns their
// row, summing them into CSR rows, the transpose, and the train/test splits (seeded, or by
// time). Results do not depend on the number of ranks.
#pragma once
#include <cstdint>
#include <vector>

#include "mfrec/dataset.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/types.hpp"

namespace mfrec {
class Comm;
}

namespace mfrec::prepare {

// (row, col, value[, time]) records; the row is global.
struct Triplets {
  std::vector<std::int64_t> row;
  std::vector<std::int32_t> col;
  std::vector<float> value;
  std::vector<std::int64_t> time;  // the records' timestamps, or empty (only --split time reads them)
  std::size_t size() const { return row.size(); }
  void clear() { row.clear(); col.clear(); value.clear(); time.clear(); }
};

// Sends each record to the rank that owns its row under `rows` (one bound per rank) and appends
// what this rank receives to `out`; with `with_time` (the same on every rank) the times travel
// too. Collective.
void route(const Triplets& local, const Bounds& rows, Triplets& out, const Comm& comm, bool with_time = false);
// Sums the records of this rank's rows [rows[rank], rows[rank+1]) into a CSR block, summing
// duplicates in a fixed order (by value, in double) and dropping pairs whose sum is zero.
// Local; `records` is consumed.
CsrBlock to_csr(Triplets&& records, Index row_begin, Index row_end, Index n_rows_global, Index n_cols);
// The transpose of a distributed CSR matrix, partitioned evenly over its columns. Collective.
CsrBlock transpose(const CsrBlock& local, const Comm& comm);

// The held-out test: a pure function of (seed, user, item), so it never depends on the ranks.
double split_hash(std::uint64_t seed, Index user, Index item);  // uniform in [0, 1)
inline bool is_test(std::uint64_t seed, Index user, Index item, double fraction) {
  return split_hash(seed, user, item) < fraction;
}
// Splits a block into (train, test) by is_test. Local.
void split(const CsrBlock& all, std::uint64_t seed, double fraction, CsrBlock& train, CsrBlock& test);

// ---- the time split (--split time) ----
// Each (row, col) pair's time: the earliest time among its records with a positive value, sorted
// by (row, col). Local; a pure function of the records, whatever order they arrived in.
struct PairTimes {
  std::vector<std::int64_t> row, time;
  std::vector<std::int32_t> col;
};
PairTimes first_times(const Triplets& records);
// How many of a user's n pairs are held out: `last` when > 0, else round(fraction * n) (halves
// up); always at most n - 1, so every user keeps a training pair.
std::int64_t holdout_count(std::int64_t n, std::int64_t last, double fraction);
// Each row's pairs ordered by (time, item index); the last holdout_count(...) go to test, the
// rest to train. `times` must cover every pair of `all`. Local.
void split_by_time(const CsrBlock& all, const PairTimes& times, std::int64_t last, double fraction, CsrBlock& train,
                   CsrBlock& test);

}  // namespace mfrec::prepare
