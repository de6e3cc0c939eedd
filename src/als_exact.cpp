// The exact solver of eq. 4 (als_kernels.hpp: solve_rows with Solver::kCholesky): heavy rows factor
// their own f x f system, light rows a k x k Woodbury system (als_light.cpp).
// GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 packet code (the undefined pass-
// through operand of _mm512_extractf64x4_pd, as noted in als_simd.cpp) depending on how it inlines
// the double-precision Eigen calls below; the state must be set before the intrinsics' headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cmath>
#include <cstring>
#include <vector>

#include <Eigen/Cholesky>

#include "als_rows.hpp"

namespace mfrec::detail {
namespace {

// ---- direct solve: the f x f system of eq. 4, factored with LLT ---------------------------------
// Float throughout: against a double factorisation the relative error of x_u stays below 3e-5
// (median 1e-6) even at lambda = 0.01, alpha = 40, while double costs 1.3-1.8x the time.
struct DirectWork {
  FloatBuf A;            // A_u, f x ld row-major: the upper triangle (the rest scratch)
  FloatBuf b;            // right-hand side, then x_u
  FloatBuf G, Gw, tile;  // gathered y_i and (c_ui - 1) y_i (kGatherRows x ld); products
  DirectWork(Index f, Index ld)
      : A(f * ld, 0.0f), b(ld), G(kGatherRows * ld, 0.0f), Gw(kGatherRows * ld, 0.0f),
        tile(kMr * ld) {}
};

// Last resort for a matrix that LLT rejects (A_u indefinite: ALS-WR with an empty-ish row, or
// c < 1 under the `implicit` rule): the same system in double with a pivoted LDLT.
void direct_row_fallback(const RowNz& row, const FactorMatrix& Y, const DenseMatrix& YtY,
                         const AlsParams& prm, float* out) {
  const Index f = Y.cols();
  Eigen::MatrixXd A = YtY.cast<double>();
  A.diagonal().array() += static_cast<double>(row_lambda(prm, row.n));
  Eigen::VectorXd b = Eigen::VectorXd::Zero(f);
  for (Index t = 0; t < row.n; ++t) {
    const Conf cf = confidence(prm, row.val[t]);
    const Eigen::VectorXd y = CVecMap(Y.data() + Index{row.idx[t]} * f, f).cast<double>();
    A.noalias() += (static_cast<double>(cf.c) - 1.0) * y * y.transpose();
    b += static_cast<double>(cf.c * cf.p) * y;
  }
  VecMap(out, f) = A.ldlt().solve(b).cast<float>();
}

// S: YtY padded (f x ld).
void direct_row(const RowNz& row, const FactorMatrix& Y, const DenseMatrix& YtY, const float* S,
                const AlsParams& prm, Index ld, float* out, DirectWork& w) {
  const simd::Kernels& K = simd::kernels();
  const Index f = Y.cols();
  const float lambda = row_lambda(prm, row.n);
  // A = YtY + lambda_u I: one copy of the whole padded matrix (the lower triangle is scratch to
  // llt, and finite), cheaper than f short copies of the upper triangle's vectors.
  std::memcpy(w.A.data(), S, sizeof(float) * f * ld);
  for (Index a = 0; a < f; ++a) w.A[a * ld + a] += lambda;
  std::fill(w.b.begin(), w.b.end(), 0.0f);
  VecMap b(w.b.data(), f);
  // A += Y_u^T (C^u - I) Y_u and b = Y_u^T C^u p(u), over chunks of gathered rows; the rank-k
  // update is a product (G^T, W G) added to the upper triangle, a group of rows at a time.
  for (Index t0 = 0; t0 < row.n; t0 += kGatherRows) {
    const Index k = std::min(kGatherRows, row.n - t0);
    gather_rows(Y, row.idx + t0, k, ld, w.G.data());
    for (Index j = 0; j < k; ++j) {
      const Conf cf = confidence(prm, row.val[t0 + j]);
      const CVecMap g(w.G.data() + j * ld, f);
      VecMap(w.Gw.data() + j * ld, f) = (cf.c - 1.0f) * g;
      b += (cf.c * cf.p) * g;
    }
    // Each chunk's product is summed on its own, then added: a huge row's sum stays accurate.
    for (Index r0 = 0; r0 < f; r0 += kMr) {
      const Index mr = std::min<Index>(kMr, f - r0), j0 = r0 / kPad * kPad;
      K.gemm(Accumulate::kSet, mr, k, w.G.data() + r0, 1, ld, w.Gw.data() + j0, ld, ld - j0,
             w.tile.data(), ld);
      for (Index r = 0; r < mr; ++r)
        VecMap(&w.A[(r0 + r) * ld + j0], ld - j0) += CVecMap(&w.tile[r * ld], ld - j0);
    }
  }
  if (!K.llt(f, w.A.data(), ld)) {
    direct_row_fallback(row, Y, YtY, prm, out);
    return;
  }
  K.llt_solve(f, w.A.data(), ld, w.b.data());
  VecMap(out, f) = b;
}

}  // namespace

// Rows that take the Woodbury path (als_light.cpp): lambda > 0 (M well defined) and not ALS-WR
// unless M may differ by row, 1 <= nnz <= f / kLightDivisor, and no c_ui < 1 (W^-1 + G M G^T is
// then SPD).
bool is_light(const RowNz& row, const AlsParams& prm, Index f, bool per_row_lambda) {
  if ((prm.scale_regularization && !per_row_lambda) || !(prm.regularization > 0) || row.n == 0 ||
      row.n > f / kLightDivisor)
    return false;
  for (Index t = 0; t < row.n; ++t)
    if (confidence(prm, row.val[t]).c < 1.0f) return false;
  return true;
}

namespace {

// M = (YtY + lambda I)^-1 (symmetrised, float, f x ld padded). Empty if not positive definite.
FloatBuf woodbury_inverse(const DenseMatrix& YtY, Real lambda, Index ld) {
  const Index f = YtY.rows();
  Eigen::MatrixXd A0 = YtY.cast<double>();
  A0.diagonal().array() += static_cast<double>(lambda);
  Eigen::LLT<Eigen::MatrixXd> llt(A0);
  if (llt.info() != Eigen::Success) return {};
  Eigen::MatrixXd M = llt.solve(Eigen::MatrixXd::Identity(f, f));
  return padded_copy((0.5 * (M + M.transpose())).cast<float>(), ld);
}

}  // namespace

void solve_light_rows(const CsrBlock& R, const std::vector<char>& light, Index light_nnz,
                      const FactorMatrix& Y, const DenseMatrix& YtY, const FloatBuf& Ms,
                      const AlsParams& prm, FactorMatrix& X, int nt, bool diagonal,
                      bool direct_rest) {
  const Index f = Y.cols(), ld = round_up(f, kPad), n = R.n_rows();
  if (light_nnz == 0 && !direct_rest) return;
  const FloatBuf S = padded_copy(YtY, ld);
  // z_i = M y_i for every column, when the light rows need more of them than there are columns.
  // A diagonal M is never multiplied out (light_rows weights its dots with it).
  FloatBuf Z, gdiag;
  if (diagonal) {
    gdiag.resize(static_cast<std::size_t>(f));
    for (Index j = 0; j < f; ++j) gdiag[j] = YtY(j, j);
  }
  const bool precompute = !diagonal && light_nnz > Y.rows();
  if (precompute) {
    Z.resize(static_cast<size_t>(Y.rows() * ld));
    const Index nzb = (Y.rows() + kCgBlockRows - 1) / kCgBlockRows;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (Index b = 0; b < nzb; ++b) {
      const Index i0 = b * kCgBlockRows, rows = std::min(kCgBlockRows, Y.rows() - i0);
      small_gemm(rows, f, Y.data() + i0 * f, f, 1, Ms.data(), ld, ld, Z.data() + i0 * ld, ld);
    }
  }
  // The other rows (direct_rest) in blocks of consecutive rows; light rows in windows of
  // kLightWindow consecutive rows, each window's light rows ordered by their number of non-zeros
  // (a stable counting sort: the batches of kSpdLanes then pad little) while the window keeps the
  // reads of R and the writes of X local. Neither depends on the thread count, and a row's result
  // on neither.
  const Index max_light = std::max<Index>(1, f / kLightDivisor);
  const Index nwin = light_nnz > 0 ? (n + kLightWindow - 1) / kLightWindow : 0;
  const std::vector<Index> blocks = direct_rest ? make_blocks(R, kCholBlockRows, kBlockNnz) : std::vector<Index>{0};
  const Index nb = static_cast<Index>(blocks.size()) - 1;
#pragma omp parallel num_threads(nt)
  {
    DirectWork dw(f, ld);
#pragma omp for schedule(dynamic, 1) nowait
    for (Index bi = 0; bi < nb; ++bi) {
      for (Index u = blocks[bi]; u < blocks[bi + 1]; ++u) {
        const RowNz row = row_nz(R, u);
        float* out = X.data() + u * f;
        if (row.n == 0)
          VecMap(out, f).setZero();
        else if (!light[u])
          direct_row(row, Y, YtY, S.data(), prm, ld, out, dw);
      }
    }
    LightWork lw(f, ld, max_light, !precompute && !diagonal, diagonal);
    std::vector<Index> lrows(kLightWindow), start(max_light + 2);
    Index failed[kSpdLanes];
#pragma omp for schedule(dynamic, 1)
    for (Index wi = 0; wi < nwin; ++wi) {
      const Index u0 = wi * kLightWindow, u1 = std::min(n, u0 + kLightWindow);
      std::fill(start.begin(), start.end(), 0);
      for (Index u = u0; u < u1; ++u)
        if (light[u]) ++start[row_nz(R, u).n + 1];
      for (Index k = 1; k <= max_light + 1; ++k) start[k] += start[k - 1];
      const Index nl = start[max_light + 1];
      for (Index u = u0; u < u1; ++u)
        if (light[u]) lrows[start[row_nz(R, u).n]++] = u;
      for (Index b = 0; b < nl; b += kSpdLanes) {
        const Index nn = std::clamp<Index>(nl - b - kSpdLanes, 0, kSpdLanes);
        const Index nf = light_rows(R, lrows.data() + b, std::min(kSpdLanes, nl - b), Y,
                                    precompute ? Z.data() : nullptr, Ms.data(),
                                    diagonal ? gdiag.data() : nullptr, ld, prm, X, lw,
                                    failed, lrows.data() + b + kSpdLanes, nn);
        for (Index q = 0; q < nf; ++q)
          direct_row(row_nz(R, failed[q]), Y, YtY, S.data(), prm, ld, X.data() + failed[q] * f, dw);
      }
    }
  }
}

void solve_rows_cholesky(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                         const AlsParams& prm, FactorMatrix& X, int nt) {
  const Index f = Y.cols(), ld = round_up(f, kPad), n = R.n_rows();
  Index light_nnz = 0;
  std::vector<char> light(n);
  for (Index u = 0; u < n; ++u) {
    const RowNz row = row_nz(R, u);
    light[u] = is_light(row, prm, f);
    if (light[u]) light_nnz += row.n;
  }
  FloatBuf Ms;
  if (light_nnz > 0) Ms = woodbury_inverse(YtY, prm.regularization, ld);
  if (Ms.empty()) {  // M not defined: every row by its f x f system
    std::fill(light.begin(), light.end(), 0);
    light_nnz = 0;
  }
  solve_light_rows(R, light, light_nnz, Y, YtY, Ms, prm, X, nt, false, true);
}

}  // namespace mfrec::detail

#pragma GCC diagnostic pop
