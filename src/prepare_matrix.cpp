#include "mfrec/prepare_matrix.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <numeric>
#include <tuple>

#include "mfrec/comm.hpp"
#include "mfrec/error.hpp"
#include "mfrec/hash.hpp"

namespace mfrec::prepare {
namespace {

constexpr std::int64_t kRouteChunk = 1 << 20;  // records per rank per alltoallv round

}  // namespace

double split_hash(std::uint64_t seed, Index user, Index item) {
  const std::uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(user)) ^ static_cast<std::uint64_t>(item));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

void route(const Triplets& local, const Bounds& rows, Triplets& out, const Comm& comm, bool with_time) {
  const int p = comm.size();
  // Each record travels as two int64 (row; column << 32 | value bits), plus its time when asked.
  // A round's receive buffer must stay within MPI's int counts: p * chunk * width < 2^31.
  const std::int64_t width = with_time ? 3 : 2;
  const std::int64_t chunk = std::max<std::int64_t>(1, std::min<std::int64_t>(kRouteChunk, (INT_MAX / width - 1) / p));
  const std::int64_t n = static_cast<std::int64_t>(local.size());
  if (with_time && local.time.size() != local.row.size()) throw Error("prepare::route: records without times");
  const std::int64_t rounds = comm.max<std::int64_t>((n + chunk - 1) / chunk);
  std::vector<int> dest;
  std::vector<std::int64_t> counts(p), offset(p), send;
  for (std::int64_t round = 0; round < rounds; ++round) {
    const std::int64_t b = std::min(n, round * chunk), e = std::min(n, b + chunk);
    dest.resize(static_cast<std::size_t>(e - b));
    std::fill(counts.begin(), counts.end(), 0);
    for (std::int64_t i = b; i < e; ++i) {
      const int r = owner_of(rows, local.row[i]);
      if (r < 0 || r >= p) throw Error("prepare::route: row " + std::to_string(local.row[i]) + " has no owner");
      dest[i - b] = r;
      counts[r] += width;
    }
    std::int64_t total = 0;
    for (int r = 0; r < p; ++r) {
      offset[r] = total;
      total += counts[r];
    }
    send.resize(static_cast<std::size_t>(total));
    for (std::int64_t i = b; i < e; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, &local.value[i], sizeof bits);
      std::int64_t& o = offset[dest[i - b]];
      send[o++] = local.row[i];
      send[o++] = static_cast<std::int64_t>(static_cast<std::uint64_t>(static_cast<std::uint32_t>(local.col[i])) << 32 | bits);
      if (with_time) send[o++] = local.time[i];
    }
    const std::vector<std::int64_t> recv = comm.alltoallv(send, counts);
    const std::size_t w = static_cast<std::size_t>(width), got = recv.size() / w, had = out.size();
    out.row.resize(had + got);
    out.col.resize(had + got);
    out.value.resize(had + got);
    if (with_time) out.time.resize(had + got);
    for (std::size_t k = 0; k < got; ++k) {
      const auto packed = static_cast<std::uint64_t>(recv[w * k + 1]);
      const auto bits = static_cast<std::uint32_t>(packed & 0xffffffffu);
      out.row[had + k] = recv[w * k];
      out.col[had + k] = static_cast<std::int32_t>(packed >> 32);
      std::memcpy(&out.value[had + k], &bits, sizeof bits);
      if (with_time) out.time[had + k] = recv[w * k + 2];
    }
  }
}

CsrBlock to_csr(Triplets&& records, Index row_begin, Index row_end, Index n_rows_global, Index n_cols) {
  // Bucket by row (counting sort), then order each row by the key (column << 32 | value bits):
  // a total order, so duplicates are summed in the same order whatever the order they arrived
  // in, and the float result does not depend on the rank count.
  const std::size_t n_rows = static_cast<std::size_t>(row_end - row_begin), n = records.size();
  std::vector<std::int64_t> start(n_rows + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    if (records.row[i] < row_begin || records.row[i] >= row_end)
      throw Error("prepare::to_csr: row " + std::to_string(records.row[i]) + " outside this block");
    ++start[static_cast<std::size_t>(records.row[i] - row_begin) + 1];
  }
  for (std::size_t r = 0; r < n_rows; ++r) start[r + 1] += start[r];
  std::vector<std::uint64_t> keys(n);
  {
    std::vector<std::int64_t> fill(start.begin(), start.end() - 1);
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, &records.value[i], sizeof bits);
      keys[static_cast<std::size_t>(fill[static_cast<std::size_t>(records.row[i] - row_begin)]++)] =
          static_cast<std::uint64_t>(static_cast<std::uint32_t>(records.col[i])) << 32 | bits;
    }
  }
  records = Triplets{};
  CsrBlock m;
  m.n_rows_global = n_rows_global;
  m.n_cols = n_cols;
  m.row_begin = row_begin;
  m.indptr.assign(n_rows + 1, 0);
  for (std::size_t r = 0; r < n_rows; ++r) {
    const auto first = keys.begin() + start[r], last = keys.begin() + start[r + 1];
    std::sort(first, last);
    for (auto it = first; it != last;) {
      const std::uint64_t col = *it >> 32;
      double sum = 0;
      for (; it != last && (*it >> 32) == col; ++it) {
        const auto bits = static_cast<std::uint32_t>(*it & 0xffffffffu);
        float v;
        std::memcpy(&v, &bits, sizeof v);
        sum += v;
      }
      const float v = static_cast<float>(sum);
      if (v > 0) {
        m.indices.push_back(static_cast<std::int32_t>(col));
        m.data.push_back(v);
      }
    }
    m.indptr[r + 1] = static_cast<std::int64_t>(m.indices.size());
  }
  return m;
}

CsrBlock transpose(const CsrBlock& local, const Comm& comm) {
  const Bounds cols = partition_even(local.n_cols, comm.size());
  Triplets mine;
  {
    Triplets t;
    t.row.reserve(local.indices.size());
    t.col.reserve(local.indices.size());
    t.value = local.data;
    for (Index r = 0; r < local.n_rows(); ++r)
      for (std::int64_t k = local.indptr[r]; k < local.indptr[r + 1]; ++k) {
        t.row.push_back(local.indices[k]);
        t.col.push_back(static_cast<std::int32_t>(local.row_begin + r));
      }
    route(t, cols, mine, comm);
  }
  return to_csr(std::move(mine), cols[comm.rank()], cols[comm.rank() + 1], local.n_cols, local.n_rows_global);
}

void split(const CsrBlock& all, std::uint64_t seed, double fraction, CsrBlock& train, CsrBlock& test) {
  for (CsrBlock* m : {&train, &test}) {
    *m = CsrBlock{};
    m->n_rows_global = all.n_rows_global;
    m->n_cols = all.n_cols;
    m->row_begin = all.row_begin;
    m->indptr.assign(all.indptr.size(), 0);
  }
  for (Index r = 0; r < all.n_rows(); ++r) {
    for (std::int64_t k = all.indptr[r]; k < all.indptr[r + 1]; ++k) {
      CsrBlock& m = is_test(seed, all.row_begin + r, all.indices[k], fraction) ? test : train;
      m.indices.push_back(all.indices[k]);
      m.data.push_back(all.data[k]);
    }
    train.indptr[r + 1] = static_cast<std::int64_t>(train.indices.size());
    test.indptr[r + 1] = static_cast<std::int64_t>(test.indices.size());
  }
}

// ---- the time split ---------------------------------------------------------------------------

PairTimes first_times(const Triplets& records) {
  std::vector<std::size_t> order;
  order.reserve(records.size());
  for (std::size_t i = 0; i < records.size(); ++i)
    if (records.value[i] > 0) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::tie(records.row[a], records.col[a], records.time[a]) <
           std::tie(records.row[b], records.col[b], records.time[b]);
  });
  PairTimes t;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const std::size_t i = order[k];
    if (k > 0 && records.row[order[k - 1]] == records.row[i] && records.col[order[k - 1]] == records.col[i]) continue;
    t.row.push_back(records.row[i]);
    t.col.push_back(records.col[i]);
    t.time.push_back(records.time[i]);  // the pair's first: its records are sorted by time
  }
  return t;
}

std::int64_t holdout_count(std::int64_t n, std::int64_t last, double fraction) {
  if (n <= 1) return 0;
  const std::int64_t k = last > 0 ? last : static_cast<std::int64_t>(std::floor(fraction * static_cast<double>(n) + 0.5));
  return std::min(k, n - 1);
}

void split_by_time(const CsrBlock& all, const PairTimes& times, std::int64_t last, double fraction, CsrBlock& train,
                   CsrBlock& test) {
  for (CsrBlock* m : {&train, &test}) {
    *m = CsrBlock{};
    m->n_rows_global = all.n_rows_global;
    m->n_cols = all.n_cols;
    m->row_begin = all.row_begin;
    m->indptr.assign(all.indptr.size(), 0);
  }
  std::size_t at = 0;  // into `times`, which is sorted like the CSR entries (row, then item)
  std::vector<std::pair<std::int64_t, std::int32_t>> keys;  // (time, item) of a row's pairs
  std::vector<char> held;
  std::vector<std::size_t> order;  // reused across rows
  for (Index r = 0; r < all.n_rows(); ++r) {
    const Index row = all.row_begin + r;
    const std::int64_t b = all.indptr[r], e = all.indptr[r + 1];
    keys.clear();
    for (std::int64_t k = b; k < e; ++k) {
      while (at < times.row.size() && std::tie(times.row[at], times.col[at]) < std::tie(row, all.indices[k])) ++at;
      if (at == times.row.size() || times.row[at] != row || times.col[at] != all.indices[k])
        throw Error("prepare::split_by_time: no time for a pair");
      keys.emplace_back(times.time[at], all.indices[k]);
    }
    order.resize(keys.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return keys[x] < keys[y]; });
    const std::int64_t n = e - b, h = holdout_count(n, last, fraction);
    held.assign(static_cast<std::size_t>(n), 0);
    for (std::int64_t k = n - h; k < n; ++k) held[order[static_cast<std::size_t>(k)]] = 1;
    for (std::int64_t k = b; k < e; ++k) {
      CsrBlock& m = held[static_cast<std::size_t>(k - b)] ? test : train;
      m.indices.push_back(all.indices[k]);
      m.data.push_back(all.data[k]);
    }
    train.indptr[r + 1] = static_cast<std::int64_t>(train.indices.size());
    test.indptr[r + 1] = static_cast<std::int64_t>(test.indices.size());
  }
}

}  // namespace mfrec::prepare
