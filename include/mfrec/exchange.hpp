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
  // many alltoallv rounds as keep each rank's packing buffer under `send_budget` bytes.
  static RowExchange sparse(const Comm& comm, const Bounds& bounds, std::vector<Index> wanted, int width,
                            double send_budget = 16.0 * 1024 * 1024);

  bool full() const { return full_; }
  Index held() const { return full_ ? n_ : static_cast<Index>(ids_.size()); }
  // Position of global row `id` among the held rows (it must be held).
  Index position(Index id) const;
  // Global id of the held row at `pos`.
  Index id(Index pos) const { return full_ ? pos : ids_[static_cast<std::size_t>(pos)]; }

  // Collective: refresh the first held() rows of `held` (it may have more, left as they are)
  // from every rank's `own` rows (its range of bounds).
  void run(const Comm& comm, const FactorMatrix& own, FactorMatrix& held, int threads) const;

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

// A block of rows solved in stages, to bound the rows of the other side held at once: each stage
// is a range of the block's rows, and the other side's rows it references are received just
// before it is solved (the item half-step streams the users this way).
struct Stage {
  Index begin = 0, end = 0;  // the block's local rows
  CsrBlock block;            // rows [begin, end), columns remapped to the rows `ex` holds;
                             // n_cols: the largest stage's held rows (the shared buffer's)
  RowExchange ex;
};
// Collective: splits `block` into consecutive stages each referencing at most `max_held` rows of
// the other side (partitioned by `other`; a row referencing more is a stage of its own); every
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
