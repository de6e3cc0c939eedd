#include "mfrec/exchange.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "mfrec/als_kernels.hpp"
#include "mfrec/config.hpp"
#include "mfrec/error.hpp"

namespace mfrec {

std::string exchange_name(ExchangeMode m) {
  switch (m) {
    case ExchangeMode::kAllgather: return "allgather";
    case ExchangeMode::kSparse: return "sparse";
    default: return "auto";
  }
}

ExchangeMode parse_exchange(const std::string& name) {
  if (name == "auto") return ExchangeMode::kAuto;
  if (name == "allgather") return ExchangeMode::kAllgather;
  if (name == "sparse") return ExchangeMode::kSparse;
  require_option(false, "exchange", "'" + name + "' is not one of auto, allgather, sparse");
  return ExchangeMode::kAuto;
}

RowExchange RowExchange::allgather(const Comm& comm, const Bounds& bounds) {
  RowExchange ex;
  ex.full_ = true;
  ex.bounds_ = bounds;
  ex.n_ = bounds.back();
  const Index own = bounds[comm.rank() + 1] - bounds[comm.rank()];
  ex.rows_sent_ = own * (comm.size() - 1);
  ex.rows_received_ = ex.n_ - own;
  return ex;
}

RowExchange RowExchange::sparse(const Comm& comm, const Bounds& bounds, std::vector<Index> wanted, int width,
                                double buffer_budget) {
  const int P = comm.size(), me = comm.rank();
  RowExchange ex;
  ex.bounds_ = bounds;
  ex.n_ = bounds.back();
  if (!wanted.empty() && (wanted.front() < 0 || wanted.back() >= ex.n_))
    throw Error("RowExchange: wanted row outside the side's rows");
  ex.ids_.assign(wanted.begin(), wanted.end());
  wanted = {};
  // Held ids are sorted, owners own consecutive ranges: the ids from rank r are consecutive.
  ex.recv_counts_.assign(P, 0);
  ex.recv_displs_.assign(P, 0);
  std::vector<std::int64_t> ask_counts(P, 0);
  for (int r = 0; r < P; ++r) {
    const auto lo = std::lower_bound(ex.ids_.begin(), ex.ids_.end(), bounds[r]);
    const auto hi = std::lower_bound(lo, ex.ids_.end(), bounds[r + 1]);
    ex.recv_displs_[r] = static_cast<int>(lo - ex.ids_.begin());
    ex.recv_counts_[r] = static_cast<int>(hi - lo);
    ask_counts[r] = hi - lo;
  }
  // Each owner learns which of its rows each rank wants: those it will send it, in that order.
  std::vector<std::int64_t> give_counts;
  const std::vector<std::int64_t> asked(ex.ids_.begin(), ex.ids_.end());
  const std::vector<std::int64_t> give = comm.alltoallv(asked, ask_counts, &give_counts);
  // Rows a rank holds of its own are copied, not sent to itself: the send buffer holds only
  // what goes to other ranks.
  ex.self_first_ = ex.recv_displs_[me];
  ex.self_count_ = ex.recv_counts_[me];
  ex.recv_counts_[me] = 0;
  ex.send_counts_.assign(P, 0);
  ex.send_displs_.assign(P, 0);
  int offset = 0;
  std::size_t k = 0;
  for (int r = 0; r < P; ++r) {
    ex.send_displs_[r] = offset;
    for (std::int64_t j = 0; j < give_counts[r]; ++j, ++k)
      if (r != me) ex.send_rows_.push_back(static_cast<std::int32_t>(give[k] - bounds[me]));
    if (r != me) ex.send_counts_[r] = static_cast<int>(give_counts[r]);
    offset += ex.send_counts_[r];
    ex.rows_sent_ += ex.send_counts_[r];
    ex.rows_received_ += ex.recv_counts_[r];
  }
  // The rows travel in rounds that keep the send buffer, and the receive buffer of a run with
  // slots, under buffer_budget bytes (the same round count on every rank, so the slices of each
  // pair's list agree on both sides).
  const double bytes = static_cast<double>(std::max<Index>(ex.rows_sent_, ex.rows_received_)) * width * sizeof(Real);
  ex.rounds_ = std::max<int>(1, comm.max(static_cast<int>(std::ceil(bytes / std::max(1.0, buffer_budget)))));
  return ex;
}

Index RowExchange::position(Index id) const {
  if (full_) return id;
  return static_cast<Index>(std::lower_bound(ids_.begin(), ids_.end(), id) - ids_.begin());
}

void RowExchange::run(const Comm& comm, const FactorMatrix& own, FactorMatrix& held, int threads,
                      const std::vector<std::int32_t>* slots) const {
  const Index f = own.cols();
  if (held.cols() != f || (slots ? static_cast<Index>(slots->size()) != this->held() : held.rows() < this->held()))
    throw Error("RowExchange: held matrix of the wrong shape");
  if (full_) {
    if (slots) throw Error("RowExchange: an allgather exchange holds rows at their global ids");
    comm.allgatherv_rows(own.data(), own.rows(), part_sizes(bounds_), f, held.data());
    return;
  }
  // Held row j goes to row dest(j) of `held`: j itself, or its slot.
  auto dest = [&](Index j) { return slots ? Index{(*slots)[static_cast<std::size_t>(j)]} : j; };
  const Index first = bounds_[comm.rank()];
#pragma omp parallel for num_threads(threads) schedule(static)
  for (Index j = self_first_; j < self_first_ + self_count_; ++j)
    std::memcpy(held.row(dest(j)).data(), own.row(ids_[static_cast<std::size_t>(j)] - first).data(), sizeof(Real) * f);
  // Round k sends, of each pair's list of n rows, the slice [k q, min(n, (k+1) q)), q = ceil(n / rounds).
  auto slice = [this](std::int64_t n, int k) {
    const std::int64_t q = (n + rounds_ - 1) / rounds_, b = std::min(n, k * q);
    return std::pair<std::int64_t, std::int64_t>{b, std::min(n, b + q) - b};
  };
  const int P = comm.size();
  std::vector<int> sc(P), sd(P), rc(P), rd(P);
  // Allocated per run, not kept: a rank may hold many exchanges (stages), each up to the budget.
  // With slots, rows are received into recv_buf and then copied to their slots.
  FactorMatrix send_buf, recv_buf;
  for (int k = 0; k < rounds_; ++k) {
    int packed = 0, received = 0;
    for (int r = 0; r < P; ++r) {
      const auto [b, n] = slice(send_counts_[r], k);
      sc[r] = static_cast<int>(n);
      sd[r] = packed;
      packed += sc[r];
      const auto [rb, rn] = slice(recv_counts_[r], k);
      rc[r] = static_cast<int>(rn);
      rd[r] = slots ? received : recv_displs_[r] + static_cast<int>(rb);
      received += rc[r];
    }
    if (send_buf.rows() < packed) send_buf.resize(packed, f);
    if (slots && recv_buf.rows() < received) recv_buf.resize(received, f);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < P; ++r) {
      const std::int64_t b = slice(send_counts_[r], k).first;
      for (int j = 0; j < sc[r]; ++j)
        std::memcpy(send_buf.row(sd[r] + j).data(), own.row(send_rows_[static_cast<std::size_t>(send_displs_[r] + b + j)]).data(),
                    sizeof(Real) * f);
    }
    comm.alltoallv_rows(send_buf.data(), sc, sd, slots ? recv_buf.data() : held.data(), rc, rd, f);
    if (!slots) continue;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int r = 0; r < P; ++r) {
      const Index b = recv_displs_[r] + slice(recv_counts_[r], k).first;
      for (int j = 0; j < rc[r]; ++j)
        std::memcpy(held.row(dest(b + j)).data(), recv_buf.row(rd[r] + j).data(), sizeof(Real) * f);
    }
  }
}

std::vector<Index> referenced_columns(const CsrBlock& block) {
  // A mark per column, not a sorted copy of every index: n_cols bits against 8 bytes a non-zero.
  std::vector<bool> seen(static_cast<std::size_t>(block.n_cols), false);
  for (const std::int32_t c : block.indices) seen[static_cast<std::size_t>(c)] = true;
  std::vector<Index> cols;
  for (Index c = 0; c < block.n_cols; ++c)
    if (seen[static_cast<std::size_t>(c)]) cols.push_back(c);
  return cols;
}

std::vector<Index> gram_tail_rows(const Bounds& bounds, int rank) {
  const Index end = bounds[rank + 1];
  const auto [first, last] = gram_share_rows(bounds[rank], end, bounds.back());
  std::vector<Index> ids;
  for (Index r = std::max(first, end); r < last; ++r) ids.push_back(r);
  return ids;
}

std::vector<Index> wanted_rows(const Bounds& bounds, int rank, const CsrBlock& opposite) {
  std::vector<Index> ids = referenced_columns(opposite);
  for (Index r : gram_tail_rows(bounds, rank)) ids.push_back(r);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const Index n = bounds.back();
  if (static_cast<double>(ids.size()) >= 0.9 * static_cast<double>(n)) {
    ids.resize(static_cast<std::size_t>(n));
    std::iota(ids.begin(), ids.end(), Index{0});
  }
  return ids;
}

CsrBlock remap_columns(const CsrBlock& block, const RowExchange& ex) {
  if (ex.full()) throw Error("remap_columns: an allgather exchange holds rows at their global ids");
  CsrBlock out = block;
  out.n_cols = ex.held();
  for (auto& c : out.indices) c = static_cast<std::int32_t>(ex.position(c));
  return out;
}

}  // namespace mfrec
