// Small CSR blocks for tests, built in memory (no files, no MPI).
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include <Eigen/Core>

#include "mfrec/als_kernels.hpp"
#include "mfrec/types.hpp"

namespace mfrec::testdata {

// Random CSR rows with the given non-zero counts, distinct sorted columns and integer-like
// values 1..15; with `odd_values`, some stored values are 0 or negative (p = 0).
inline CsrBlock random_csr(const std::vector<Index>& counts, Index n_cols, unsigned seed, bool odd_values = false) {
  std::mt19937 rng(seed);
  CsrBlock R;
  R.n_rows_global = static_cast<Index>(counts.size());
  R.n_cols = n_cols;
  std::vector<std::int32_t> cols(n_cols);
  std::iota(cols.begin(), cols.end(), 0);
  for (Index k : counts) {
    std::shuffle(cols.begin(), cols.end(), rng);
    std::vector<std::int32_t> pick(cols.begin(), cols.begin() + k);
    std::sort(pick.begin(), pick.end());
    for (std::int32_t c : pick) {
      R.indices.push_back(c);
      Real v = static_cast<Real>(1 + rng() % 15);
      if (odd_values && rng() % 5 == 0) v = (rng() % 2) ? 0.0f : -0.5f;
      R.data.push_back(v);
    }
    R.indptr.push_back(static_cast<std::int64_t>(R.indices.size()));
  }
  return R;
}

// Normal(0, scale) factors, seeded.
inline FactorMatrix random_factors(Index rows, Index f, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, scale);
  FactorMatrix Y(rows, f);
  for (Index i = 0; i < Y.size(); ++i) Y.data()[i] = n(rng);
  return Y;
}

using Rows = std::vector<std::vector<std::int32_t>>;

// Rows [b, e) of a 0/1 matrix with `n_cols` columns, given as each row's columns.
inline CsrBlock rows_block(const Rows& rows, Index n_cols, Index b, Index e) {
  CsrBlock m;
  m.n_rows_global = static_cast<Index>(rows.size());
  m.n_cols = n_cols;
  m.row_begin = b;
  for (Index r = b; r < e; ++r) {
    for (std::int32_t c : rows[static_cast<std::size_t>(r)]) {
      m.indices.push_back(c);
      m.data.push_back(1.0f);
    }
    m.indptr.push_back(static_cast<std::int64_t>(m.indices.size()));
  }
  return m;
}

// Y^T Y by the library's Gram kernel on one thread, as the solvers take it.
inline DenseMatrix gram(const FactorMatrix& Y) {
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(Y.cols(), Y.cols());
  gram_accumulate(Y, 0, Y.rows(), G, 1);
  return G.cast<float>();
}

inline double rel_err(const Eigen::VectorXd& x, const Eigen::VectorXd& ref) {
  return (x - ref).norm() / std::max(ref.norm(), 1e-30);
}

}  // namespace mfrec::testdata
