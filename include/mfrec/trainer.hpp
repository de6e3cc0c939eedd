// The distributed ALS trainer: users and items are partitioned over the ranks of a Comm
// (balanced by non-zeros); each half-step solves the local rows against the full opposite
// factors, then allgathers the updated rows so every rank again holds both sides in full.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "mfrec/als_kernels.hpp"
#include "mfrec/comm.hpp"
#include "mfrec/dataset.hpp"
#include "mfrec/log.hpp"
#include "mfrec/partition.hpp"
#include "mfrec/types.hpp"

namespace mfrec {

struct TrainConfig {
  AlsParams als;
  int iterations = defaults::kIterations;
  std::uint64_t seed = defaults::kSeed;
  int threads = 1;          // OpenMP threads per rank
  Real init_scale = 0.01f;  // initial factors uniform in [0, init_scale), as `implicit`
};

// The factors of one training run. Every rank holds both sides in full after each half-step.
class Trainer {
 public:
  Trainer(const Comm& comm, const TrainData& data, const TrainConfig& cfg);

  // One iteration: the user half-step, then the item half-step. Collective.
  void iterate();
  int iterations_done() const { return done_; }

  // Training loss (Hu et al. eq. 3) over all ranks: data term + regularisers. Collective.
  double loss() const;

  const FactorMatrix& user_factors() const { return X_; }  // all users
  const FactorMatrix& item_factors() const { return Y_; }  // all items
  // This rank's user rows (a copy of the corresponding rows of user_factors()).
  FactorMatrix local_user_factors() const;
  PhaseTimer& timer() { return timer_; }
  const PhaseTimer& timer() const { return timer_; }
  // Replace the factors (both full), e.g. from a checkpoint.
  void set_factors(FactorMatrix X, FactorMatrix Y, int iterations_done);

 private:
  // Solve the rows of R (this rank's part of `bounds`) into `mine`, against the opposite side
  // `other` (partitioned by `other_bounds` for its Gram matrix), then allgather `mine`.
  void half_step(const CsrBlock& R, const Bounds& bounds, const FactorMatrix& other, const Bounds& other_bounds,
                 FactorMatrix& mine);
  DenseMatrix gram(const FactorMatrix& M, const Bounds& bounds) const;  // collective

  const Comm& comm_;
  const TrainData& data_;
  TrainConfig cfg_;
  FactorMatrix X_, Y_;
  int done_ = 0;
  mutable PhaseTimer timer_;  // also times the const loss()
};

// Initial factor row `row` of a side (0 users, 1 items): uniform [0, scale) from a stream seeded
// by (seed, side, row) alone, so any partition gives the same factors.
void init_factor_row(std::uint64_t seed, int side, Index row, Real scale, Real* out, int f);

}  // namespace mfrec
