// The item half-step in stages (exchange.hpp, Stage): where the stages end, which slot of the
// shared buffer each user row takes, and when a row is evicted to be received again.
#include <algorithm>
#include <numeric>
#include <queue>

#include "mfrec/error.hpp"
#include "mfrec/exchange.hpp"

namespace mfrec {

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

}  // namespace mfrec
