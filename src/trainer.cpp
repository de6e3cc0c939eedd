#include "mfrec/trainer.hpp"

#include <omp.h>

#include <algorithm>

#include "mfrec/error.hpp"
#include "mfrec/hash.hpp"

namespace mfrec {

void init_factor_row(std::uint64_t seed, int side, Index row, Real scale, Real* out, int f) {
  std::uint64_t state = splitmix64(splitmix64(seed) ^ splitmix64(static_cast<std::uint64_t>(side) << 56 ^ static_cast<std::uint64_t>(row)));
  for (int k = 0; k < f; ++k) {
    state = splitmix64(state);
    out[k] = scale * static_cast<Real>(static_cast<double>(state >> 11) * 0x1.0p-53);
  }
}

Trainer::Trainer(const Comm& comm, const TrainData& data, const TrainConfig& cfg)
    : comm_(comm), data_(data), cfg_(cfg) {
  Eigen::setNbThreads(cfg_.threads);  // Eigen's own products (the Gram matrix) use the rank's threads
  const int f = cfg_.als.factors;
  X_.resize(data.n_users, f);
  Y_.resize(data.n_items, f);
  // Every rank initialises every row the same way: the result is independent of the partition.
#pragma omp parallel for num_threads(cfg_.threads) schedule(static)
  for (Index u = 0; u < data.n_users; ++u) init_factor_row(cfg_.seed, 0, u, cfg_.init_scale, X_.row(u).data(), f);
#pragma omp parallel for num_threads(cfg_.threads) schedule(static)
  for (Index i = 0; i < data.n_items; ++i) init_factor_row(cfg_.seed, 1, i, cfg_.init_scale, Y_.row(i).data(), f);
}

DenseMatrix Trainer::gram(const FactorMatrix& M, const Bounds& bounds) const {
  // The kernel bench_als times (als_kernels): this rank's share of whole aligned chunks, so every
  // chunk's float products are the same for any partition; the allreduce adds them in double.
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(cfg_.als.factors, cfg_.als.factors);
  {
    auto t = timer_.scope("gram");
    gram_accumulate_share(M, bounds[comm_.rank()], bounds[comm_.rank() + 1], G, cfg_.threads);
  }
  {
    auto t = timer_.scope("allreduce");
    comm_.allreduce_sum(G.data(), static_cast<std::size_t>(G.size()));
  }
  return G.cast<Real>();
}

void Trainer::half_step(const CsrBlock& R, const Bounds& bounds, const FactorMatrix& other, const Bounds& other_bounds,
                        FactorMatrix& mine) {
  const int f = cfg_.als.factors;
  DenseMatrix G = gram(other, other_bounds);
  const Index begin = bounds[comm_.rank()], n = bounds[comm_.rank() + 1] - begin;
  FactorMatrix local = mine.middleRows(begin, n);
  {
    auto t = timer_.scope("solve");
    solve_rows(R, other, G, cfg_.als, local, cfg_.threads);
  }
  {
    auto t = timer_.scope("allgather");
    std::vector<std::int64_t> rows = part_sizes(bounds);
    comm_.allgatherv_rows(local.data(), n, rows, f, mine.data());
  }
}

void Trainer::iterate() {
  half_step(data_.users, data_.user_bounds, Y_, data_.item_bounds, X_);
  half_step(data_.items, data_.item_bounds, X_, data_.user_bounds, Y_);
  ++done_;
}

double Trainer::loss() const {
  DenseMatrix YtY = gram(Y_, data_.item_bounds);
  const Index ub = data_.user_bounds[comm_.rank()], nu = data_.user_bounds[comm_.rank() + 1] - ub;
  FactorMatrix Xl = X_.middleRows(ub, nu);
  LossTerms lu = loss_rows(data_.users, Y_, YtY, cfg_.als, Xl, cfg_.threads);
  // The item side's regulariser: lambda_i ||y_i||^2 over the local items.
  double reg_items = 0;
  const Index ib = data_.item_bounds[comm_.rank()], ni = data_.item_bounds[comm_.rank() + 1] - ib;
  for (Index i = 0; i < ni; ++i) {
    double lam = cfg_.als.regularization;
    if (cfg_.als.scale_regularization) lam *= static_cast<double>(data_.items.indptr[i + 1] - data_.items.indptr[i]);
    reg_items += lam * static_cast<double>(Y_.row(ib + i).squaredNorm());
  }
  double terms[3] = {lu.data, lu.reg, reg_items};
  comm_.allreduce_sum(terms, 3);
  return terms[0] + terms[1] + terms[2];
}

FactorMatrix Trainer::local_user_factors() const {
  const Index ub = data_.user_bounds[comm_.rank()], nu = data_.user_bounds[comm_.rank() + 1] - ub;
  return X_.middleRows(ub, nu);
}

void Trainer::set_factors(FactorMatrix X, FactorMatrix Y, int iterations_done) {
  if (X.rows() != X_.rows() || X.cols() != X_.cols() || Y.rows() != Y_.rows() || Y.cols() != Y_.cols())
    throw InputError("checkpoint factors have the wrong shape");
  X_ = std::move(X);
  Y_ = std::move(Y);
  done_ = iterations_done;
}

}  // namespace mfrec
