#include "mfrec/exchange.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <queue>

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

namespace {

// Where consecutive stages of a block end when each grows row by row while the rows live in it
// stay within `cap` (a row with more is a stage of its own). A column is live from the stage of
// the first row that references it to the stage of the last, so the rows [b, e) hold
// arrived[e] - departed[b] columns: those first referenced before e, less those last referenced
// before b. The fewest stages for that cap, as that count only grows with the range.
std::vector<Index> live_ends(const std::vector<Index>& arrived, const std::vector<Index>& departed, Index cap) {
  const Index rows = static_cast<Index>(arrived.size()) - 1;
  std::vector<Index> ends;
  for (Index i = 0, b = 0; i < rows; ++i)
    if (i > b && arrived[i + 1] - departed[b] > cap) ends.push_back(b = i);
  ends.push_back(rows);
  return ends;
}

// Where consecutive stages of `block` end when each grows row by row while its distinct columns
// stay within `cap` (a row with more is a stage of its own). `pos`: each non-zero's column as its
// position among the `n` referenced columns.
std::vector<Index> distinct_ends(const CsrBlock& block, const std::vector<std::int32_t>& pos, std::size_t n, Index cap) {
  std::vector<std::int32_t> counted(n, -1);  // the stage that last counted each column
  std::vector<Index> ends;
  Index distinct = 0;
  for (Index i = 0, b = 0; i < block.n_rows(); ++i) {
    const auto first = pos.begin() + block.indptr[static_cast<std::size_t>(i)];
    const auto last = pos.begin() + block.indptr[static_cast<std::size_t>(i) + 1];
    auto stage = static_cast<std::int32_t>(ends.size());
    const auto fresh = std::count_if(first, last, [&](std::int32_t p) { return counted[static_cast<std::size_t>(p)] != stage; });
    if (i > b && distinct + fresh > cap) {
      ends.push_back(b = i);
      distinct = 0;
      ++stage;
    }
    for (auto p = first; p != last; ++p)
      if (counted[static_cast<std::size_t>(*p)] != stage) counted[static_cast<std::size_t>(*p)] = stage, ++distinct;
  }
  ends.push_back(block.n_rows());
  return ends;
}

// A stage's packing buffers (sent rows, received rows before they go to their slots): kept small,
// as they come on top of the stage buffer itself.
constexpr double kStageBufferBytes = 4.0 * 1024 * 1024;

}  // namespace

std::vector<Stage> plan_stages(const Comm& comm, const CsrBlock& block, const Bounds& other, Index max_held, int width) {
  const std::vector<Index> cols = referenced_columns(block);
  const std::size_t n = cols.size();
  const Index rows = block.n_rows();
  // Each non-zero's column as its position among the referenced columns, and the first and last
  // row that references each.
  std::vector<std::int32_t> pos(block.indices.size()), first(n, -1), last(n, -1);
  for (Index i = 0; i < rows; ++i)
    for (auto k = block.indptr[static_cast<std::size_t>(i)]; k < block.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
      const auto p = static_cast<std::size_t>(std::lower_bound(cols.begin(), cols.end(), block.indices[k]) - cols.begin());
      pos[k] = static_cast<std::int32_t>(p);
      if (first[p] < 0) first[p] = static_cast<std::int32_t>(i);
      last[p] = static_cast<std::int32_t>(i);
    }
  // arrived[e]: columns first referenced before row e; departed[b]: last referenced before row b.
  std::vector<Index> arrived(rows + 1, 0), departed(rows + 1, 0);
  for (std::size_t p = 0; p < n; ++p) ++arrived[first[p] + 1], ++departed[last[p] + 1];
  std::partial_sum(arrived.begin(), arrived.end(), arrived.begin());
  std::partial_sum(departed.begin(), departed.end(), departed.begin());
  first = last = {};
  // Stages that keep every column from its first stage to its last hold, somewhere, at least the
  // columns live across one row (the floor). When that fits the budget, they are cut by the
  // columns live in them. When it does not (a block spanning much of the other side), stages
  // are cut to half the budget's distinct columns, and columns are evicted from the buffer
  // below, to be received again by a later stage that reads them.
  Index floor = 0, widest = 0;
  for (Index i = 0; i < rows; ++i) {
    floor = std::max(floor, arrived[i + 1] - departed[i]);
    widest = std::max<Index>(widest, block.indptr[static_cast<std::size_t>(i) + 1] - block.indptr[static_cast<std::size_t>(i)]);
  }
  const bool keep_all = floor <= max_held;
  const Index cap = keep_all ? max_held : std::max<Index>(1, max_held / 2);
  auto ends_for = [&](Index c) { return keep_all ? live_ends(arrived, departed, c) : distinct_ends(block, pos, n, c); };
  // The fewest stages within the cap, then the smallest cap that still needs no more of them:
  // stages of about equal size, so the rows held at once are as few as they can be.
  std::vector<Index> ends = ends_for(cap);
  for (Index lo = 1, hi = cap; ends.size() > 1 && lo < hi;) {
    const Index mid = lo + (hi - lo) / 2;
    if (ends_for(mid).size() <= ends.size()) hi = mid;
    else lo = mid + 1;
    if (lo == hi) ends = ends_for(lo);
  }
  arrived = departed = {};
  const auto stages = static_cast<std::size_t>(comm.max(static_cast<std::int64_t>(ends.size())));
  if (stages <= 1) return {};
  ends.resize(stages, rows);
  // Each stage's distinct columns (sorted), and each column's stages (in order).
  std::vector<std::int64_t> su_ptr(stages + 1, 0), use_ptr(n + 1, 0);
  std::vector<std::int32_t> su, stamp(n, -1);
  for (std::size_t k = 0; k < stages; ++k) {
    const auto nz0 = block.indptr[static_cast<std::size_t>(k == 0 ? 0 : ends[k - 1])], nz1 = block.indptr[static_cast<std::size_t>(ends[k])];
    const auto from = su.size();
    for (auto j = nz0; j < nz1; ++j)
      if (stamp[pos[j]] != static_cast<std::int32_t>(k)) stamp[pos[j]] = static_cast<std::int32_t>(k), su.push_back(pos[j]), ++use_ptr[pos[j] + 1];
    std::sort(su.begin() + static_cast<std::ptrdiff_t>(from), su.end());
    su_ptr[k + 1] = static_cast<std::int64_t>(su.size());
  }
  stamp = {};
  std::partial_sum(use_ptr.begin(), use_ptr.end(), use_ptr.begin());
  std::vector<std::int32_t> use(su.size());
  std::vector<std::int64_t> next(use_ptr.begin(), use_ptr.end() - 1);  // each column's next use, in `use`
  for (std::size_t k = 0; k < stages; ++k)
    for (auto j = su_ptr[k]; j < su_ptr[k + 1]; ++j) use[next[su[j]]++] = static_cast<std::int32_t>(k);
  std::copy(use_ptr.begin(), use_ptr.end() - 1, next.begin());
  // Slots. A column gets one when a stage that reads it finds it absent, and gives it back after
  // its last stage. With no slot free and the buffer at capacity, the column held whose next
  // stage is farthest away gives up its slot (Belady's rule: the fewest rows received again).
  // Keeping every column, the buffer ends at the most live at once and nothing is evicted.
  const Index capacity = keep_all ? max_held : std::max(max_held, widest);
  std::vector<std::int32_t> slot(n, -1), free;
  std::priority_queue<std::pair<std::int32_t, std::int32_t>> farthest;  // (next stage, column)
  std::int32_t slots = 0;
  std::vector<Stage> out(stages);
  for (std::size_t k = 0; k < stages; ++k) {
    Stage& st = out[k];
    st.begin = k == 0 ? 0 : ends[k - 1];
    st.end = ends[k];
    std::vector<Index> ids;
    for (auto j = su_ptr[k]; j < su_ptr[k + 1]; ++j) {  // in column order: ids sorted
      const std::int32_t p = su[j];
      if (slot[p] >= 0) continue;
      if (!free.empty()) {
        slot[p] = free.back();
        free.pop_back();
      } else if (slots < capacity) {
        slot[p] = slots++;
      } else {
        for (;;) {  // entries whose column has since been used or evicted are stale
          const auto [stage, q] = farthest.top();
          farthest.pop();
          if (slot[q] < 0 || use[next[q]] != stage) continue;
          if (stage == static_cast<std::int32_t>(k)) throw Error("plan_stages: a stage reads more rows than the buffer holds");
          slot[p] = slot[q];
          slot[q] = -1;
          break;
        }
      }
      ids.push_back(cols[static_cast<std::size_t>(p)]);
      st.slots.push_back(slot[p]);
    }
    st.ex = RowExchange::sparse(comm, other, std::move(ids), width, kStageBufferBytes);
    const auto nz0 = block.indptr[static_cast<std::size_t>(st.begin)], nz1 = block.indptr[static_cast<std::size_t>(st.end)];
    for (auto j = nz0; j < nz1; ++j) st.cols.push_back(slot[pos[j]]);
    for (auto j = su_ptr[k]; j < su_ptr[k + 1]; ++j) {
      const std::int32_t p = su[j];
      if (++next[p] == use_ptr[p + 1]) {
        free.push_back(slot[p]);
        slot[p] = -1;
      } else {
        farthest.emplace(use[next[p]], p);
      }
    }
  }
  // Every stage is solved against one buffer of `slots` rows (allocated once per half-step).
  for (Stage& st : out) st.buffer_rows = slots;
  return out;
}

CsrBlock Stage::rows_of(const CsrBlock& block) const {
  CsrBlock out;
  out.n_rows_global = block.n_rows_global;
  out.n_cols = buffer_rows;
  out.row_begin = block.row_begin + begin;
  const auto nz0 = block.indptr[static_cast<std::size_t>(begin)], nz1 = block.indptr[static_cast<std::size_t>(end)];
  if (nz1 - nz0 != static_cast<std::int64_t>(cols.size())) throw Error("Stage: not the block it was planned from");
  out.indptr.assign(block.indptr.begin() + begin, block.indptr.begin() + end + 1);
  for (auto& k : out.indptr) k -= nz0;
  out.indices = cols;
  out.data.assign(block.data.begin() + nz0, block.data.begin() + nz1);
  return out;
}

CsrBlock remap_columns(const CsrBlock& block, const RowExchange& ex) {
  if (ex.full()) throw Error("remap_columns: an allgather exchange holds rows at their global ids");
  CsrBlock out = block;
  out.n_cols = ex.held();
  for (auto& c : out.indices) c = static_cast<std::int32_t>(ex.position(c));
  return out;
}

}  // namespace mfrec
