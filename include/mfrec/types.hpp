// Basic numeric types shared by every module.
#pragma once
#include <cstdint>
#include <vector>

#include <Eigen/Core>

namespace mfrec {

using Real = float;          // factor precision (float32, as `implicit`)
using Index = std::int64_t;  // global row / non-zero index

// Row-major dense matrix: one row per user or item, so a rank's rows are contiguous in memory
// and map onto an HDF5 row range or an MPI allgather without copies.
using FactorMatrix = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using DenseMatrix = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>;  // column-major, small
using Vector = Eigen::Matrix<Real, Eigen::Dynamic, 1>;

// A block of consecutive rows of a sparse matrix in compressed-sparse-row form.
// Rows [row_begin, row_begin + n_rows()) of a global n_rows_global x n_cols matrix;
// indptr has n_rows()+1 entries and starts at 0 (local offsets).
struct CsrBlock {
  Index n_rows_global = 0;
  Index n_cols = 0;
  Index row_begin = 0;
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<Real> data;

  Index n_rows() const { return static_cast<Index>(indptr.size()) - 1; }
  Index nnz() const { return indptr.empty() ? 0 : indptr.back(); }

  // Its local rows [b, e) as a block of their own.
  CsrBlock row_range(Index b, Index e) const {
    CsrBlock out;
    out.n_rows_global = n_rows_global;
    out.n_cols = n_cols;
    out.row_begin = row_begin + b;
    const auto nz0 = indptr[static_cast<std::size_t>(b)], nz1 = indptr[static_cast<std::size_t>(e)];
    out.indptr.assign(indptr.begin() + b, indptr.begin() + e + 1);
    for (auto& k : out.indptr) k -= nz0;
    out.indices.assign(indices.begin() + nz0, indices.begin() + nz1);
    out.data.assign(data.begin() + nz0, data.begin() + nz1);
    return out;
  }
};

}  // namespace mfrec
