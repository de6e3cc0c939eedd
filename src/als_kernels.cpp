// Implicit-feedback ALS kernels; see als_kernels.hpp for the maths and the guarantees.
#include "mfrec/als_kernels.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>

#include "als_rows.hpp"
#include "mfrec/error.hpp"

namespace mfrec {
namespace {

using namespace detail;
using Eigen::Dynamic;

// Shapes, and column indices in range (an O(nnz) scan, negligible next to a solve).
void check_inputs(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                  const FactorMatrix& X, const char* who) {
  const Index f = Y.cols();
  if (R.n_cols != Y.rows() || YtY.rows() != f || YtY.cols() != f || X.rows() != R.n_rows() ||
      X.cols() != f || R.indptr.empty() || R.indptr.front() != 0 ||
      static_cast<Index>(R.indices.size()) < R.nnz() ||
      static_cast<Index>(R.data.size()) < R.nnz())
    throw Error(std::string(who) + ": inconsistent shapes (R " + std::to_string(R.n_rows()) +
                " x " + std::to_string(R.n_cols) + ", Y " + std::to_string(Y.rows()) + " x " +
                std::to_string(f) + ", YtY " + std::to_string(YtY.rows()) + " x " +
                std::to_string(YtY.cols()) + ", X " + std::to_string(X.rows()) + " x " +
                std::to_string(X.cols()) + ")");
  const auto [lo, hi] = std::minmax_element(R.indices.begin(), R.indices.begin() + R.nnz());
  if (R.nnz() > 0 && (*lo < 0 || *hi >= R.n_cols))
    throw Error(std::string(who) + ": column index out of range [0, " +
                std::to_string(R.n_cols) + ")");
}

// M = M Q for the rows of M (n x f, row-major), Q f x f padded to ld columns: by chunks of rows, a
// row-deterministic product each (a row's result does not depend on the chunk).
void rotate_rows(FactorMatrix& M, const FloatBuf& Q, Index ld, int nt) {
  const Index n = M.rows(), f = M.cols(), chunk = 256;
  const Index n_chunks = (n + chunk - 1) / chunk;
#pragma omp parallel num_threads(nt)
  {
    FloatBuf tmp(static_cast<std::size_t>(chunk * ld));
#pragma omp for schedule(static)
    for (Index c = 0; c < n_chunks; ++c) {
      const Index r0 = c * chunk, m = std::min(chunk, n - r0);
      small_gemm(m, f, M.data() + r0 * f, f, 1, Q.data(), ld, ld, tmp.data(), ld);
      for (Index r = 0; r < m; ++r) std::copy(tmp.data() + r * ld, tmp.data() + r * ld + f, M.data() + (r0 + r) * f);
    }
  }
}


}  // namespace

// ---- public API --------------------------------------------------------------------------------

void gram_accumulate(const FactorMatrix& Y, Index begin, Index end, Eigen::MatrixXd& out,
                     int threads, Index origin) {
  using RowMatD = Eigen::Matrix<double, Dynamic, Dynamic, Eigen::RowMajor>;
  kernel_path();  // chosen here, outside the parallel region: a bad MFREC_KERNELS throws cleanly
  const Index f = Y.cols();
  if (out.size() == 0) out = Eigen::MatrixXd::Zero(f, f);
  if (out.rows() != f || out.cols() != f || origin < 0 || begin < origin || end > origin + Y.rows())
    throw Error("gram_accumulate: inconsistent shapes or row range");
  if (end <= begin || f == 0) return;
  const Index ld = round_up(f, kPad);
  const bool copy = ld != f;  // the B operand must be readable up to a multiple of kPad
  const Index groups = (f + kMr - 1) / kMr;
  // Tasks over spans and float chunk products over chunks both start at multiples of their size
  // in absolute row numbers, so the rows of a range fall into the same chunks as in any larger
  // range, except the chunks cut by the range's ends. Each task sums its chunk products in
  // double; the tasks are then added in order, whatever the thread count.
  const Index first_task = begin / kGramSpan, tasks = (end - 1) / kGramSpan + 1 - first_task;
  const int nt = resolve_threads(threads);
  // A task's row groups are split into bands of about equal work when there are too few tasks to
  // keep the threads busy (a small Y is one task). Every entry of G is computed by the same float
  // operations whatever the banding: only who computes it changes.
  const Index bands = std::clamp<Index>((4 * nt + tasks - 1) / tasks, 1, groups);
  std::vector<Index> band_start{0};
  {
    Index total = 0, acc = 0;
    for (Index g = 0; g < groups; ++g) total += round_up(std::min(f, (g + 1) * kMr), kPad);
    for (Index g = 0; g < groups; ++g) {
      if (acc * bands >= total * static_cast<Index>(band_start.size()) && g > band_start.back())
        band_start.push_back(g);
      acc += round_up(std::min(f, (g + 1) * kMr), kPad);
    }
    band_start.push_back(groups);
  }
  const Index nbands = static_cast<Index>(band_start.size()) - 1;
  std::vector<RowMatD> part(tasks * nbands);  // lower triangle
#pragma omp parallel num_threads(nt)
  {
    FloatBuf buf(copy ? kGramChunk * ld : 0, 0.0f), tile(kMr * ld);
#pragma omp for schedule(dynamic, 1)
    for (Index item = 0; item < tasks * nbands; ++item) {
      const Index task = item / nbands, band = item % nbands;
      const Index row0 = band_start[band] * kMr, row1 = std::min(f, band_start[band + 1] * kMr);
      RowMatD G = RowMatD::Zero(row1 - row0, f);  // G(i - row0, j): the band's rows
      const Index t_begin = std::max(begin, (first_task + task) * kGramSpan);
      const Index t_end = std::min(end, (first_task + task + 1) * kGramSpan);
      for (Index c0 = t_begin; c0 < t_end; c0 = (c0 / kGramChunk + 1) * kGramChunk) {
        const Index n = std::min((c0 / kGramChunk + 1) * kGramChunk, t_end) - c0;
        const float* rows = Y.data() + (c0 - origin) * f;
        bool copied = false;
        // Rows r0..r0+mr of this chunk's Y^T Y up to the diagonal: a 6 x w tile over n rows.
        for (Index g = band_start[band]; g < band_start[band + 1]; ++g) {
          const Index r0 = g * kMr, mr = std::min<Index>(kMr, f - r0), w = round_up(r0 + mr, kPad);
          const float* base = rows;
          Index ldy = f;
          if (w > f) {  // the tile reads past a row's end: a zero-padded copy of the chunk
            if (!copied) {
              for (Index i = 0; i < n; ++i)
                std::memcpy(&buf[i * ld], rows + i * f, sizeof(float) * f);
              copied = true;
            }
            base = buf.data();
            ldy = ld;
          }
          small_gemm(mr, n, base + r0, 1, ldy, base, ldy, w, tile.data(), ld);
          for (Index r = 0; r < mr; ++r)
            for (Index j = 0; j <= r0 + r; ++j) G(r0 + r - row0, j) += tile[r * ld + j];
        }
      }
      part[item] = std::move(G);
    }
  }
  // Serially, in task order for every entry (whatever the thread count): a parallel pass would
  // add a barrier, which costs more than this on a loaded machine.
  for (Index item = 0; item < tasks * nbands; ++item) {
    const RowMatD& G = part[item];
    const Index band = item % nbands, row0 = band_start[band] * kMr;
    for (Index i = row0; i < row0 + G.rows(); ++i) {
      for (Index j = 0; j < i; ++j) out(i, j) += G(i - row0, j), out(j, i) += G(i - row0, j);
      out(i, i) += G(i - row0, i);
    }
  }
}

void gram_accumulate_share(const FactorMatrix& Y, Index begin, Index end, Eigen::MatrixXd& out,
                           int threads) {
  if (begin < 0 || end < begin || end > Y.rows())
    throw Error("gram_accumulate_share: row range outside Y");
  const auto [b, e] = gram_share_rows(begin, end, Y.rows());
  gram_accumulate(Y, b, std::max(b, e), out, threads);
}

std::pair<Index, Index> gram_share_rows(Index begin, Index end, Index n_rows) {
  // Whole chunks only: a chunk belongs to the share that holds its first row.
  const Index b = std::min(round_up(begin, kGramChunk), n_rows);
  const Index e = end == n_rows ? end : std::min(round_up(end, kGramChunk), n_rows);
  return {b, e};
}

Index gram_chunk_start(Index row) { return row / kGramChunk * kGramChunk; }

void solve_rows(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                const AlsParams& p, FactorMatrix& X, int threads) {
  check_inputs(R, Y, YtY, X, "solve_rows");
  kernel_path();  // chosen here, outside the parallel region: a bad MFREC_KERNELS throws cleanly
  if (Y.cols() == 0 || R.n_rows() == 0) return;
  const int nt = resolve_threads(threads);
  if (p.solver == Solver::kConjugateGradient)
    solve_rows_cg(R, Y, YtY, p, X, nt);
  else
    solve_rows_cholesky(R, Y, YtY, p, X, nt);
}

void solve_rows_eigenbasis(const CsrBlock& R, const FactorMatrix& Y, const Eigenbasis& e,
                           const AlsParams& p, FactorMatrix& X, int threads) {
  check_inputs(R, Y, e.gram, X, "solve_rows_eigenbasis");
  if (p.solver != Solver::kConjugateGradient) throw Error("solve_rows_eigenbasis: the solver is not CG");
  for (Index i = 0; i < e.gram.rows(); ++i)
    for (Index j = 0; j < e.gram.cols(); ++j)
      if (i != j && e.gram(i, j) != 0.0f) throw Error("solve_rows_eigenbasis: the Gram matrix is not diagonal");
  if (e.vectors.rows() != Y.cols() || e.vectors.cols() != Y.cols())
    throw Error("solve_rows_eigenbasis: the rotation does not match the rows");
  kernel_path();  // chosen here, outside the parallel region: a bad MFREC_KERNELS throws cleanly
  const Index f = Y.cols(), n = R.n_rows();
  if (f == 0 || n == 0) return;
  const Index ld = round_up(f, kPad);
  const int nt = resolve_threads(threads);
  // The light rows (is_light) exactly, as the Cholesky solver's: M_u = (YtY + lambda_u I)^-1 is
  // diagonal here, so ALS-WR rows (lambda_u = lambda nnz >= lambda) are light rows too.
  std::vector<char> light(n);
  Index light_nnz = 0;
  bool defined = true;
  for (Index j = 0; j < f; ++j) defined = defined && e.gram(j, j) + p.regularization > 0.0f;
  for (Index u = 0; u < n && defined; ++u) {
    const RowNz row = row_nz(R, u);
    light[u] = is_light(row, p, f, true);
    if (light[u]) light_nnz += row.n;
  }
  if (light_nnz > 0) solve_light_rows(R, light, light_nnz, Y, e.gram, {}, p, X, nt, true, false);
  const FloatBuf Q = padded_copy(DenseMatrix(e.vectors.cast<Real>()), ld);
  solve_rows_cg(R, Y, e.gram, p, X, nt, Q.data(), light_nnz > 0 ? light.data() : nullptr);
}

std::optional<Eigenbasis> eigenbasis(const Eigen::MatrixXd& YtY) {
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(YtY);
  if (eig.info() != Eigen::Success || !eig.eigenvectors().allFinite()) return std::nullopt;  // NaN in YtY
  Eigenbasis e{eig.eigenvectors(), DenseMatrix::Zero(YtY.rows(), YtY.cols())};
  e.gram.diagonal() = eig.eigenvalues().cast<Real>();
  return e;
}

void rotate_rows(FactorMatrix& M, const Eigen::MatrixXd& Q, int threads) {
  if (M.rows() == 0) return;
  if (Q.rows() != M.cols() || Q.cols() != M.cols()) throw Error("rotate_rows: the rotation does not match the rows");
  kernel_path();  // chosen here, outside the parallel region: a bad MFREC_KERNELS throws cleanly
  const Index ld = round_up(M.cols(), kPad);
  rotate_rows(M, padded_copy(DenseMatrix(Q.cast<Real>()), ld), ld, resolve_threads(threads));
}

LossTerms loss_rows(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                    const AlsParams& p, const FactorMatrix& X, int threads) {
  check_inputs(R, Y, YtY, X, "loss_rows");
  kernel_path();  // chosen here, outside the parallel region: a bad MFREC_KERNELS throws cleanly
  const Index f = Y.cols(), ld = round_up(f, kPad);
  if (f == 0 || R.n_rows() == 0) return {};
  const FloatBuf S = padded_copy(YtY, ld);
  const std::vector<Index> blocks = make_blocks(R, kCgBlockRows, kBlockNnz);
  const Index nb = static_cast<Index>(blocks.size()) - 1;
  std::vector<LossTerms> part(nb);  // summed in block order: independent of the thread count
#pragma omp parallel num_threads(resolve_threads(threads))
  {
    FloatBuf Q(kCgBlockRows * ld);
#pragma omp for schedule(dynamic, 1)
    for (Index bi = 0; bi < nb; ++bi) {
      const Index u0 = blocks[bi], n = blocks[bi + 1] - u0;
      small_gemm(n, f, X.data() + u0 * f, f, 1, S.data(), ld, ld, Q.data(), ld);  // Q = X YtY
      LossTerms acc;
      for (Index k = 0; k < n; ++k) {
        const RowNz row = row_nz(R, u0 + k);
        const CVecMap x(X.data() + (u0 + k) * f, f);
        // sum over all i of (x.y_i)^2 = x^T YtY x; the non-zeros replace their term by c (p - s)^2.
        double d = x.dot(CVecMap(Q.data() + k * ld, f));
        for (Index t = 0; t < row.n; ++t) {
          const Conf cf = confidence(p, row.val[t]);
          const double s = x.dot(CVecMap(Y.data() + Index{row.idx[t]} * f, f));
          d += cf.c * (cf.p - s) * (cf.p - s) - s * s;
        }
        acc.data += d;
        acc.reg += static_cast<double>(row_lambda(p, row.n)) * x.squaredNorm();
      }
      part[bi] = acc;
    }
  }
  LossTerms total;
  for (const LossTerms& t : part) {
    total.data += t.data;
    total.reg += t.reg;
  }
  return total;
}

Eigen::VectorXd solve_row_dense_oracle(const CsrBlock& R, Index local_row, const FactorMatrix& Y,
                                       const AlsParams& p) {
  if (local_row < 0 || local_row >= R.n_rows() || R.n_cols != Y.rows())
    throw Error("solve_row_dense_oracle: row out of range or inconsistent shapes");
  const Index n = R.n_cols, f = Y.cols();
  const Eigen::MatrixXd Yd = Y.cast<double>();
  Eigen::MatrixXd C = Eigen::MatrixXd::Identity(n, n);  // c_ui = 1 where r_ui = 0
  Eigen::VectorXd pref = Eigen::VectorXd::Zero(n);
  const RowNz row = row_nz(R, local_row);
  for (Index t = 0; t < row.n; ++t) {
    const Conf cf = confidence(p, row.val[t]);
    C(row.idx[t], row.idx[t]) = cf.c;
    pref(row.idx[t]) = cf.p;
  }
  const Eigen::MatrixXd A = Yd.transpose() * C * Yd +
                            static_cast<double>(row_lambda(p, row.n)) *
                                Eigen::MatrixXd::Identity(f, f);
  return A.ldlt().solve(Yd.transpose() * C * pref);
}

Index eigenbasis_cold_rows(int cg_steps) {
  // One step more than cg_steps at most: on the default data (bench_als, f = 64, 128 and 200)
  // limits of 3 to 6 were timed, and cg_steps + 1 was the fastest at every f.
  return std::max(cg_steps, 0) + 1;
}

namespace {

// A light row's Woodbury solve: Y_u Z_u^T (one triangle), its G rows times b, k x k LLT and solves,
// x = Z_u^T (b - s).
double light_row_flops(double k, double f) {
  return f * k * (k + 1) + 2 * k * k + k * k * k / 3 + 2 * k * k + 2 * f * k;
}

}  // namespace

double eigenbasis_flops(const CsrBlock& R, Index rows_read, const AlsParams& p) {
  const double f = p.factors;
  // one rotation of the rows read, the eigensolver (about 9 f^3)
  double flops = 2 * f * f * static_cast<double>(rows_read) + 9 * f * f * f;
  const Index cold = eigenbasis_cold_rows(p.cg_steps);
  for (Index u = 0; u < R.n_rows(); ++u) {
    const RowNz row = row_nz(R, u);
    const Index n = row.n;
    const double k = static_cast<double>(n);
    if (n == 0) continue;
    if (is_light(row, p, p.factors, true)) {  // Woodbury against the diagonal M_u: dots weighted
      flops += light_row_flops(k, f) + f * (k * (k + 1) / 8 + 1);
      continue;
    }
    // per step: the diagonal YtY v, the sparse part, the vector operations with the preconditioner
    const double step = 4 * f * k + 13 * f;
    if (n <= cold)  // the start: b, M^-1, x, its residual, z, r.z
      flops += 6 * f * k + 5 * f + std::max<double>(p.cg_steps, k) * step;
    else  // the rotation, the start (YtY x, the residual, z, r.z), cg_steps steps
      flops += 2 * f * f + 4 * f * k + 8 * f + p.cg_steps * step;
  }
  return flops;
}

double solve_rows_flops(const CsrBlock& R, const AlsParams& p) {
  const double f = p.factors;
  double flops = 0, light_nnz = 0;
  for (Index u = 0; u < R.n_rows(); ++u) {
    const RowNz row = row_nz(R, u);
    const double k = static_cast<double>(row.n);
    if (p.solver == Solver::kConjugateGradient) {
      // per product: YtY v (block GEMM, 2 f^2), sparse part (4 f per non-zero), vector ops
      flops += (p.cg_steps + 1) * (2 * f * f + 4 * f * k) + p.cg_steps * 10 * f;
    } else if (row.n == 0) {
    } else if (is_light(row, p, p.factors)) {
      light_nnz += k;
      flops += light_row_flops(k, f);
    } else {
      // A += Y_u^T (C - I) Y_u (one triangle), b, f x f LLT, two triangular solves
      flops += k * f * (f + 1) + 2 * f * k + f * f * f / 3 + 2 * f * f;
    }
  }
  if (light_nnz > 0) {
    flops += f * f * f / 3 + 2 * f * f * f;  // M = (YtY + lambda I)^-1
    flops += 2 * f * f * std::min<double>(light_nnz, static_cast<double>(R.n_cols));  // z_i = M y_i
  }
  return flops;
}

}  // namespace mfrec
