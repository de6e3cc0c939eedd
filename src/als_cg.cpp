// The conjugate-gradient solver (als_kernels.hpp: solve_rows with Solver::kConjugateGradient, and
// solve_rows_eigenbasis's CG rows).
#include <algorithm>
#include <vector>

#include "als_rows.hpp"

namespace mfrec::detail {
namespace {

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

}  // namespace

void solve_rows_cg(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                   const AlsParams& prm, FactorMatrix& X, int nt, const float* rotation,
                   const char* skip) {
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

}  // namespace mfrec::detail
