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

// ---- conjugate gradient, a block of rows in lockstep -------------------------------------------
// Solves A_u x_u = b_u with A_u = YtY + lambda_u I + Y^T (C^u - I) Y, b_u = Y^T C^u p(u) (eq. 4),
// never forming A_u: A_u v = YtY v + lambda_u v + sum_{i in u} (c_ui - 1)(y_i.v) y_i. The YtY v
// part of the whole block is one product (block x f times f x f); the sparse part is per row.
struct CgWork {
  FloatBuf r, p, ap;  // residuals, directions, products (rows x ld, zero padding)
  FloatBuf xp;        // one x_u, padded (ld)
  FloatBuf rs;        // ||r||^2 per row
  std::vector<char> active;
  FloatBuf yg, wgt, negw, rhs;  // gathered y_i (nnz x ld), c_ui - 1, 1 - c_ui, c_ui p_ui
  std::vector<Index> yb, ye;              // each row's gathered y_i: [yb, ye)
  FloatBuf lambda, pap, rsn;    // lambda_u, and cg_steps's scratch
  // In the eigenbasis: 1 / (d_j + lambda_u) per row (rows x ld, zero padding), the steps each row
  // takes, and the warm rows' x before and after their rotation (rows x ld).
  FloatBuf minv, xw, xr;
  std::vector<int> steps;
  std::vector<Index> warm;
  CgWork(Index rows, Index ld)
      : r(rows * ld, 0.0f), p(rows * ld, 0.0f), ap(rows * ld), xp(ld, 0.0f), rs(rows),
        active(rows), yg(kGatherRows * ld, 0.0f), yb(rows), ye(rows), lambda(rows), pap(rows),
        rsn(rows), minv(rows * ld, 0.0f), xw(rows * ld), xr(rows * ld), steps(rows), warm(rows) {}
};


// AP = A YtY for the n rows of A (row stride lda); S is YtY padded (padded_copy). With a diagonal
// YtY (diag: its f entries) the product is a_j d_j: the bits of the product's chain, whose other
// terms add exact zeros.
void gram_product(Index n, Index f, const float* a, Index lda, const float* S, const float* diag, Index ld,
                  float* ap) {
  if (!diag) return small_gemm(n, f, a, lda, 1, S, ld, ld, ap, ld);
  for (Index k = 0; k < n; ++k) {
    const float* x = a + k * lda;
    float* out = ap + k * ld;
#pragma omp simd
    for (Index j = 0; j < f; ++j) out[j] = x[j] * diag[j];
    std::fill(out + f, out + ld, 0.0f);
  }
}

// In the eigenbasis (rotation: Q padded, f x ld, not null; diag, the Gram's diagonal, not null;
// solve_rows_eigenbasis): a row with at most eigenbasis_cold_rows non-zeros starts from
// x = M_u^-1 b_u (M_u = diag(d) + lambda_u I), whose residual is -sum_i (c_ui - 1)(y_i.x) y_i
// (b_u - M_u x dropped: zero but for rounding), and takes a step per non-zero (at least cg_steps)
// preconditioned by M_u; the others start from their x of the previous basis, turned by Q, and take
// cg_steps plain steps (minv = 1: the bits of no preconditioner).
void cg_block(const CsrBlock& R, Index u0, Index u1, const FactorMatrix& Y, const float* S,
              const float* diag, const float* rotation, const char* skip, Index ld,
              const AlsParams& prm, FactorMatrix& X, CgWork& w) {
  const simd::Kernels& K = simd::kernels();
  const Index f = Y.cols(), n = u1 - u0;
  if (skip && std::all_of(skip + u0, skip + u1, [](char c) { return c != 0; })) return;  // solved
  // Gather the block's y_i once, so that the 1 + cg_steps sweeps below read contiguous memory; a
  // single huge row is gathered again in chunks for every sweep instead. Same arithmetic either way.
  const Index t0 = R.indptr[u0], nnz = R.indptr[u1] - t0;
  const bool gathered = nnz * ld <= kCgGatherMaxFloats;
  if (gathered && static_cast<Index>(w.yg.size()) < nnz * ld) w.yg.resize(nnz * ld, 0.0f);
  if (gathered) gather_rows(Y, R.indices.data() + t0, nnz, ld, w.yg.data());
  if (static_cast<Index>(w.wgt.size()) < nnz) w.wgt.resize(nnz), w.negw.resize(nnz), w.rhs.resize(nnz);
  for (Index t = 0; t < nnz; ++t) {
    const Conf cf = confidence(prm, R.data[t0 + t]);
    w.wgt[t] = cf.c - 1.0f;
    w.negw[t] = 1.0f - cf.c;
    w.rhs[t] = cf.c * cf.p;
  }
  // out += sum_{t in [b, e)} (alpha_t + beta_t y_t.v) y_t
  auto sparse = [&](Index b, Index e, const float* alpha, const float* beta, const float* v,
                    float* out) {
    if (gathered)
      return K.sweep(e - b, w.yg.data() + b * ld, ld, alpha ? alpha + b : nullptr,
                     beta ? beta + b : nullptr, v, out, ld);
    for (Index c = b; c < e; c += kGatherRows) {
      const Index k = std::min(kGatherRows, e - c);
      gather_rows(Y, R.indices.data() + t0 + c, k, ld, w.yg.data());
      K.sweep(k, w.yg.data(), ld, alpha ? alpha + c : nullptr, beta ? beta + c : nullptr, v, out, ld);
    }
  };
  float* x0 = X.data() + u0 * f;
  const bool precondition = rotation != nullptr;
  const Index cold_limit = precondition ? eigenbasis_cold_rows(prm.cg_steps) : -1;
  Index n_warm = 0;
  int most_steps = prm.cg_steps;
  for (Index k = 0; k < n; ++k) {
    const Index kn = R.indptr[u0 + k + 1] - R.indptr[u0 + k];
    const bool cold = kn <= cold_limit;
    w.steps[k] = cold ? std::max(prm.cg_steps, static_cast<int>(kn)) : prm.cg_steps;
    if (skip && skip[u0 + k]) continue;
    most_steps = std::max(most_steps, w.steps[k]);
    if (precondition && !cold) {  // its x turns to this basis: the block's warm rows in one product
      std::copy(x0 + k * f, x0 + (k + 1) * f, w.xw.data() + n_warm * f);
      w.warm[n_warm++] = k;
    }
  }
  if (n_warm > 0) {
    small_gemm(n_warm, f, w.xw.data(), f, 1, rotation, ld, ld, w.xr.data(), ld);
    for (Index q = 0; q < n_warm; ++q)
      std::copy(w.xr.data() + q * ld, w.xr.data() + q * ld + f, x0 + w.warm[q] * f);
  }
  if (!precondition || n_warm > 0) gram_product(n, f, x0, f, S, diag, ld, w.ap.data());  // AP = X YtY
  bool any = false;
  for (Index k = 0; k < n; ++k) {
    const Index b = R.indptr[u0 + k] - t0, e = R.indptr[u0 + k + 1] - t0;
    float* x = x0 + k * f;
    float* r = w.r.data() + k * ld;
    float* p = w.p.data() + k * ld;
    w.yb[k] = b;
    w.ye[k] = e;
    w.lambda[k] = -1.0f;
    if (skip && skip[u0 + k]) {  // solved already
      w.active[k] = 0;
      continue;
    }
    if (e == b) {  // b_u = 0: the solution is 0
      std::fill(x, x + f, 0.0f);
      w.active[k] = 0;
      continue;
    }
    // r = b - A x = sum_i c_ui p_ui y_i - (YtY + lambda_u I) x - sum_i (c_ui - 1)(y_i.x) y_i
    const float lambda = row_lambda(prm, e - b);
    const float* ap = w.ap.data() + k * ld;
    float* m = w.minv.data() + k * ld;
    w.lambda[k] = lambda;
    if (e - b <= cold_limit) {
      if (k > 0 && w.lambda[k - 1] == lambda && w.ye[k - 1] - w.yb[k - 1] <= cold_limit)
        std::copy(m - ld, m, m);  // as the row before's
      else
        for (Index j = 0; j < f; ++j) m[j] = 1.0f / (diag[j] + lambda);
      float* xp = w.xp.data();
      std::fill(r, r + ld, 0.0f);
      sparse(b, e, w.rhs.data(), nullptr, nullptr, r);  // b_u
      for (Index j = 0; j < ld; ++j) xp[j] = r[j] * m[j];
      std::copy(xp, xp + f, x);
      std::fill(r, r + ld, 0.0f);
      sparse(b, e, nullptr, w.negw.data(), xp, r);
      for (Index j = 0; j < ld; ++j) p[j] = r[j] * m[j];
      w.rs[k] = K.dot(r, p, ld);
    } else {
      if (gathered) {
        w.rs[k] = K.cg_start(e - b, w.yg.data() + b * ld, ld, w.rhs.data() + b, w.negw.data() + b,
                             lambda, x, f, w.xp.data(), r, p, ap, ld);
      } else {  // the same arithmetic, the sweep in chunks
        K.cg_start(0, nullptr, ld, nullptr, nullptr, lambda, x, f, w.xp.data(), r, p, ap, ld);
        sparse(b, e, w.rhs.data(), w.negw.data(), w.xp.data(), r);
        std::copy(r, r + ld, p);
        w.rs[k] = K.dot(r, r, ld);
      }
      if (precondition) std::fill(m, m + f, 1.0f);  // z = r: not preconditioned, the same bits
    }
    w.active[k] = w.rs[k] > kCgTiny;
    any = any || w.active[k];
  }
  for (int step = 0; step < most_steps && any; ++step) {
    if (diag) {  // AP = P YtY, for the rows still active
      for (Index k = 0; k < n; ++k)
        if (w.active[k]) gram_product(1, f, w.p.data() + k * ld, ld, S, diag, ld, w.ap.data() + k * ld);
    } else {
      gram_product(n, f, w.p.data(), ld, S, diag, ld, w.ap.data());
    }
    // A_u p = YtY p + sum_i (c_ui - 1)(y_i.p) y_i + lambda_u p, then the step. A row stops where
    // p = 0 or A_u is not positive definite along p (c < 1), or where it converged.
    if (gathered) {
      any = K.cg_steps(n, w.yb.data(), w.ye.data(), w.yg.data(), ld, w.wgt.data(),
                       w.lambda.data(), w.rs.data(), kCgTiny, x0, f, f, w.r.data(), w.p.data(),
                       w.ap.data(), ld, w.active.data(), w.pap.data(), w.rsn.data(),
                       precondition ? w.minv.data() : nullptr);
    } else {
      any = false;  // a single huge row, its sweep in chunks: the same arithmetic
      for (Index k = 0; k < n; ++k) {
        if (!w.active[k]) continue;
        const Index b = R.indptr[u0 + k] - t0, e = R.indptr[u0 + k + 1] - t0;
        float* p = w.p.data() + k * ld;
        float* ap = w.ap.data() + k * ld;
        sparse(b, e, nullptr, w.wgt.data(), p, ap);
        w.active[k] = K.cg_step(0, nullptr, ld, nullptr, row_lambda(prm, e - b), &w.rs[k], kCgTiny,
                                x0 + k * f, f, w.r.data() + k * ld, p, ap, ld,
                                precondition ? w.minv.data() + k * ld : nullptr);
        any = any || w.active[k];
      }
    }
    if (most_steps == prm.cg_steps) continue;  // every row takes them all
    any = false;
    for (Index k = 0; k < n; ++k) {
      w.active[k] = w.active[k] && step + 1 < w.steps[k];
      any = any || w.active[k];
    }
  }
}

void solve_rows_cg(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                   const AlsParams& prm, FactorMatrix& X, int nt, const float* rotation = nullptr,
                   const char* skip = nullptr) {
  const Index f = Y.cols(), ld = round_up(f, kPad);
  const FloatBuf S = padded_copy(YtY, ld);
  bool diagonal = true;  // exactly: an Eigenbasis's Gram
  for (Index i = 0; i < f && diagonal; ++i)
    for (Index j = 0; j < f && diagonal; ++j) diagonal = i == j || YtY(i, j) == 0.0f;
  FloatBuf d(static_cast<std::size_t>(f));
  for (Index j = 0; j < f; ++j) d[j] = YtY(j, j);
  const std::vector<Index> blocks =
      make_blocks(R, kCgBlockRows, std::max<Index>(1, kCgBlockFloats / f));
  const Index nb = static_cast<Index>(blocks.size()) - 1;
#pragma omp parallel num_threads(nt)
  {
    CgWork w(kCgBlockRows, ld);
#pragma omp for schedule(dynamic, 1)
    for (Index bi = 0; bi < nb; ++bi)
      cg_block(R, blocks[bi], blocks[bi + 1], Y, S.data(), diagonal ? d.data() : nullptr,
               rotation, skip, ld, prm, X, w);
  }
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
  // The light rows (is_light) exactly, as the Cholesky solver's: M = (YtY + lambda I)^-1 is
  // diagonal here.
  std::vector<char> light(n);
  Index light_nnz = 0;
  bool defined = true;
  for (Index j = 0; j < f; ++j) defined = defined && e.gram(j, j) + p.regularization > 0.0f;
  for (Index u = 0; u < n && defined; ++u) {
    const RowNz row = row_nz(R, u);
    light[u] = is_light(row, p, f);
    if (light[u]) light_nnz += row.n;
  }
  if (light_nnz > 0) {
    DenseMatrix M = DenseMatrix::Zero(f, f);
    for (Index j = 0; j < f; ++j)
      M(j, j) = static_cast<Real>(1.0 / (static_cast<double>(e.gram(j, j)) + p.regularization));
    solve_light_rows(R, light, light_nnz, Y, e.gram, padded_copy(M, ld), p, X, nt, true, false);
  }
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
  double light_nnz = 0;
  for (Index u = 0; u < R.n_rows(); ++u) {
    const RowNz row = row_nz(R, u);
    const Index n = row.n;
    const double k = static_cast<double>(n);
    if (n == 0) continue;
    if (is_light(row, p, p.factors)) {  // Woodbury against the diagonal M
      light_nnz += k;
      flops += light_row_flops(k, f);
      continue;
    }
    // per step: the diagonal YtY v, the sparse part, the vector operations with the preconditioner
    const double step = 4 * f * k + 13 * f;
    if (n <= cold)  // the start: b, M^-1, x, its residual, z, r.z
      flops += 6 * f * k + 5 * f + std::max<double>(p.cg_steps, k) * step;
    else  // the rotation, the start (YtY x, the residual, z, r.z), cg_steps steps
      flops += 2 * f * f + 4 * f * k + 8 * f + p.cg_steps * step;
  }
  // z_i = M y_i elementwise: of every column while they fit the caches, else per row's non-zero
  const double cols = static_cast<double>(R.n_cols);
  const bool held = light_nnz > cols && R.n_cols * round_up(p.factors, kPad) <= kLightZMaxFloats;
  flops += f * (held ? cols : light_nnz);
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
