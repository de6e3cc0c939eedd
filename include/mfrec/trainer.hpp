// The distributed ALS trainer: users and items are partitioned over the ranks of a Comm
// (balanced by non-zeros). Each rank keeps its own rows of both sides plus the opposite rows its
// blocks read (exchange.hpp); each half-step solves the local rows against those, then sends
// every updated row to the ranks that read it. An item block that reads more users than
// --exchange-memory allows is solved in stages: each user row arrives with the first stage that
// reads it and is kept until the last (exchange.hpp, Stage).
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>

#include "mfrec/als_kernels.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/exchange.hpp"
#include "mfrec/log.hpp"
#include "mfrec/metrics.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/types.hpp"

namespace mfrec {

struct TrainConfig {
  AlsParams als;
  int iterations = defaults::kIterations;
  std::uint64_t seed = defaults::kSeed;
  int threads = 1;          // OpenMP threads per rank
  Real init_scale = 0.01f;  // initial factors uniform in [0, init_scale), as `implicit`
  // auto: sparse when its bytes per iteration (max over ranks, known after set-up) are fewer
  // than the allgather's, else allgather.
  ExchangeMode exchange = ExchangeMode::kAuto;
  // Sparse exchange: the most MiB of user rows a rank holds for its item half-step; beyond it the
  // item block is solved in stages, and a user row is held only from the first stage that reads
  // it to the last (exchange.hpp, Stage): the same bytes as one stage, unless the users live at
  // once exceed the budget (then some are evicted and received again). 0: no limit (one stage).
  double exchange_memory_mib = 128;
};

class Trainer {
 public:
  // Collective: partitions nothing (data is already partitioned), plans the exchange and
  // initialises the factors from (seed, side, global row) alone, so any partition and either
  // exchange give the same factors.
  Trainer(const Comm& comm, const TrainData& data, const TrainConfig& cfg);

  // One iteration: the user half-step, then the item half-step. Collective. With CG in the
  // eigenbasis (als_kernels.hpp) both sides' rows are left in the working basis of that half-step:
  // own rows = standard rows x basis(), for every rank alike. Scores, the loss and the evaluation
  // do not depend on it; model files and anything compared across rank counts want
  // to_standard_basis() (run_point calls it after the last iteration).
  void iterate();
  int iterations_done() const { return done_; }

  // Training loss (Hu et al. eq. 3) over all ranks: data term + regularisers. Collective.
  double loss() const;

  // This rank's rows, in the working basis: users [user_bounds[r], user_bounds[r+1]), items likewise.
  const FactorMatrix& local_user_factors() const { return users_.own; }
  const FactorMatrix& local_item_factors() const { return items_.own; }
  // The working basis (orthogonal, f x f, the same on every rank; the identity when standard).
  const Eigen::MatrixXd& basis() const { return basis_; }
  // Rotates every row this rank keeps back to the standard basis, in place (no communication).
  void to_standard_basis();
  // Copies of this rank's rows in the standard basis, what a model file holds, into X and Y (their
  // storage reused when the shapes match).
  void copy_standard_factors(FactorMatrix& X, FactorMatrix& Y) const;
  // Collective: every item's (user's) factors in the standard basis, in global order. A full copy,
  // for tests (nothing in the programs needs one: evaluation_items, model files by hyperslab).
  FactorMatrix gather_item_factors() const;
  // Collective: every item's factors for evaluation. When every rank already holds every item row
  // for its user half-step (the allgather; the sparse exchange once a rank reads 90 % of the
  // items; one rank), that copy, read in place; else gathered from the ranks that own them
  // (gather_item_rows), in blocks of at most `block_items` items (0: all at once). Valid while
  // the trainer lives and its factors do not change.
  ItemFactors evaluation_items(Index block_items) const;
  // Collective: items [begin, end)'s factors, gathered from the ranks that own them.
  void gather_item_rows(Index begin, Index end, FactorMatrix& out) const;
  FactorMatrix gather_user_factors() const;
  // Collective: replace this rank's rows (e.g. from a checkpoint), given in `basis` (empty: the
  // standard one), and refresh the rows it reads.
  void set_local_factors(FactorMatrix X, FactorMatrix Y, int iterations_done, const Eigen::MatrixXd& basis = {});

  ExchangeMode exchange() const { return mode_; }  // allgather or sparse (auto is resolved)
  int item_stages() const { return static_cast<int>(std::max<std::size_t>(1, items_.stages.size())); }
  // This rank's traffic in iterate() so far, by phase ("allreduce", "exchange").
  const std::map<std::string, Comm::Traffic>& traffic() const { return traffic_; }
  PhaseTimer& timer() { return timer_; }
  const PhaseTimer& timer() const { return timer_; }

 private:
  struct Side {
    const Bounds* bounds = nullptr;
    const CsrBlock* block = nullptr;  // this rank's rows; columns index the other side's `held`
    CsrBlock remapped;                // sparse: the block with its columns remapped
    FactorMatrix own;                 // this rank's rows
    FactorMatrix held;                // the rows of this side this rank reads (exchange.hpp); empty when aliased
    RowExchange ex;
    std::vector<Stage> stages;        // sparse, held rows over budget: this block solved in stages
  };
  // The rows of a side this rank reads, at their held positions: `held`, or `own` itself when
  // aliased (one rank, allgather: every row is its own).
  const FactorMatrix& reads(const Side& s) const { return alias_ ? s.own : s.held; }
  void plan(ExchangeMode mode, const TrainData& data);
  void half_step(Side& mine, Side& other);
  // Collective: root's eigenbasis of G for every rank (their rows meet in the other half-step, so
  // they must agree on it to the bit); nullopt on every rank when root's eigensolver fails.
  std::optional<Eigenbasis> agreed_eigenbasis(const Eigen::MatrixXd& G) const;
  void to_standard(FactorMatrix& rows) const;
  // Collective: the Gram matrix of a side from each rank's whole aligned chunks (als_kernels).
  Eigen::MatrixXd gram(const Side& s, bool metered) const;  // metered: counted in traffic()
  // Runs f() timed as `phase` and, when `metered`, counts its traffic under that phase.
  template <class F> void phase(const char* name, bool metered, F&& f) const;

  const Comm& comm_;
  TrainConfig cfg_;
  ExchangeMode mode_ = ExchangeMode::kAllgather;
  bool alias_ = false;  // reads() is `own`: no held copy, no exchange
  Side users_, items_;
  Eigen::MatrixXd basis_;  // the working basis (basis())
  bool standard_ = true;   // basis_ is the identity
  FactorMatrix stage_held_;  // the other side's rows of the stage being solved
  int done_ = 0;
  mutable PhaseTimer timer_;  // also times the const loss()
  mutable std::map<std::string, Comm::Traffic> traffic_;
};

// Initial factor row `row` of a side (0 users, 1 items): uniform [0, scale) from a stream seeded
// by (seed, side, row) alone, so any partition gives the same factors.
void init_factor_row(std::uint64_t seed, int side, Index row, Real scale, Real* out, int f);

}  // namespace mfrec
