// How the rows of one side (users or items) reach the ranks that read them after each half-step.
// Every rank owns a consecutive range of the side's rows (Bounds) and, besides them, holds the
// rows its block of the OPPOSITE side references (plus the few rows that complete its last Gram
// chunk): the "held" rows. Two ways to refresh them:
//   allgather: every rank holds every row (position = global id); one MPI_Allgatherv. Cheapest
//              for small data and few ranks, and memory grows with the whole side.
//   sparse:    every rank holds only the rows it reads (positions in sorted id order); each
//              updated row goes only to the ranks that read it (MPI_Alltoallv with lists made
//              once, at set-up), block to block as Spark MLlib's ALS does.
// Held rows are grouped by owner in rank order (ids are sorted and owners own consecutive
// ranges), so they are received in place: no unpacking.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mfrec/comm.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/types.hpp"

namespace mfrec {

enum class ExchangeMode { kAuto, kAllgather, kSparse };
std::string exchange_name(ExchangeMode m);              // "auto" | "allgather" | "sparse"
ExchangeMode parse_exchange(const std::string& name);  // ConfigError naming --exchange otherwise

class RowExchange {
 public:
  RowExchange() = default;
  // Collective: every rank holds every row of a side of n rows partitioned by `bounds`.
  static RowExchange allgather(const Comm& comm, const Bounds& bounds);
  // Collective: this rank holds the rows `wanted` (global ids, sorted, unique) of `width` values;
  // one alltoallv of ids tells each owner who wants which of its rows. Rows then travel in as
  // many alltoallv rounds as keep each rank's packing buffers (what it sends, and what it
  // receives in a run with slots) under `buffer_budget` bytes.
  static RowExchange sparse(const Comm& comm, const Bounds& bounds, std::vector<Index> wanted, int width,
                            double buffer_budget = 16.0 * 1024 * 1024);

  bool full() const { return full_; }
  Index held() const { return full_ ? n_ : static_cast<Index>(ids_.size()); }
  // Position of global row `id` among the held rows (it must be held).
  Index position(Index id) const;
  // Global id of the held row at `pos`.
  Index id(Index pos) const { return full_ ? pos : ids_[static_cast<std::size_t>(pos)]; }

  // Collective: refresh the held rows from every rank's `own` rows (its range of bounds): held
  // row j into row j of `held` (which may have more rows, left as they are), or, given `slots`
  // (one per held row; sparse only), into row slots[j].
  void run(const Comm& comm, const FactorMatrix& own, FactorMatrix& held, int threads,
           const std::vector<std::int32_t>* slots = nullptr) const;

  // Per run(), rows this rank sends to / receives from other ranks.
  Index rows_sent() const { return rows_sent_; }
  Index rows_received() const { return rows_received_; }
  int rounds() const { return rounds_; }

 private:
  bool full_ = false;
  Index n_ = 0;
  Bounds bounds_;
  // int32 (the data files' index type: fewer than 2^31 rows a side) halves the plans' memory.
  std::vector<std::int32_t> ids_;                             // sparse: held ids, sorted
  std::vector<int> send_counts_, send_displs_, recv_counts_, recv_displs_;  // in rows
  std::vector<std::int32_t> send_rows_;                       // own row (local) of each row sent
  Index self_first_ = 0, self_count_ = 0;                     // held rows this rank owns (copied)
  int rounds_ = 1;                                            // alltoallv rounds per run (bounded buffer)
  Index rows_sent_ = 0, rows_received_ = 0;
};

// A block of rows solved in stages, to bound the rows of the other side held at once (the item
// half-step streams the users this way; planned in src/exchange_stages.cpp). Each stage is a range of the block's rows. Every
// other-side row the block references is received once, by the first stage that reads it, into
// a slot of one buffer shared by the stages, and stays there until the last stage that reads it
// is solved; its slot is then reused. So the stages together move exactly the bytes of one
// stage, and the buffer holds only the rows live at once. When even those exceed the budget, the
// buffer evicts the row read again farthest ahead, which a later stage receives again.
struct Stage {
  Index begin = 0, end = 0;          // the block's local rows
  Index buffer_rows = 0;             // the shared buffer's rows: the most live at once
  std::vector<std::int32_t> cols;    // the slot each non-zero of rows [begin, end) reads
  RowExchange ex;                    // the rows this stage is the first to read
  std::vector<std::int32_t> slots;   // the slot of each row `ex` holds, in its held order
  // Rows [begin, end) of `block` (the block the stage was planned from) with their columns
  // replaced by slots: made when the stage is solved (only the slots are kept, not a copy of
  // the values).
  CsrBlock rows_of(const CsrBlock& block) const;
};
// Collective: splits `block` into consecutive stages against a buffer of at most `max_held` rows
// of the other side (partitioned by `other`): when the rows live across any one row of the block
// fit, stages that each keep their live rows within it (no row received twice); else stages of at
// most max_held / 2 distinct rows (a row referencing more is a stage of its own, and the buffer
// grows to it), with evictions. The fewest such stages, then as equal as that count allows; every
// rank gets as many stages as the rank that needs most (empty ones at its end). Empty when one
// stage would do on every rank.
std::vector<Stage> plan_stages(const Comm& comm, const CsrBlock& block, const Bounds& other, Index max_held, int width);

// The columns a CSR block references, sorted and unique.
std::vector<Index> referenced_columns(const CsrBlock& block);

// The ids this rank must hold of a side partitioned by `bounds` (n rows): the rows
// `opposite` (this rank's block of the other side) references, and the rows past its own range
// that its Gram share reads (gram_share_rows); or every row when that is at least 90 % of them
// (a slightly larger copy, but the block then reads the rows at their ids and needs no
// renumbered copy: at 16 ranks a user block reads 99.9 % of the items).
std::vector<Index> wanted_rows(const Bounds& bounds, int rank, const CsrBlock& opposite);
// Only the rows past its own range that this rank's Gram share reads (at most 255).
std::vector<Index> gram_tail_rows(const Bounds& bounds, int rank);

// `block` with its column indices replaced by their positions among the rows `ex` holds (a
// sparse exchange: an allgather one holds every row at its id).
CsrBlock remap_columns(const CsrBlock& block, const RowExchange& ex);

}  // namespace mfrec
