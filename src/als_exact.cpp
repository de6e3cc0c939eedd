// The exact solver of eq. 4 (als_kernels.hpp: solve_rows with Solver::kCholesky): heavy rows factor
// their own f x f system, light rows solve a k x k Woodbury system.
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
  std::vector<float> A;            // A_u, f x ld row-major: the upper triangle (the rest scratch)
  std::vector<float> b;            // right-hand side, then x_u
  std::vector<float> G, Gw, tile;  // gathered y_i and (c_ui - 1) y_i (kGatherRows x ld); products
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

// ---- direct solve of a light row: Sherman-Morrison-Woodbury ------------------------------------
// With A0 = YtY + lambda I, M = A0^-1, G the rows y_i of u with w_i = c_ui - 1 > 0, W = diag(w_i)
// and b = sum_i c_ui p_ui y_i (eq. 4):
//   x = (A0 + G^T W G)^-1 b = m - M G^T s,   m = M b,   (W^-1 + G M G^T) s = G m.
// The capacitance matrix W^-1 + G M G^T is k x k and SPD; z_i = M y_i are either precomputed for
// all columns or computed per row by the same row-deterministic product (bitwise identical).
// Cost O(k^2 f + k^3) per row against O(k f^2 + f^3 / 3) for the f x f factorisation.
struct LightWork {
  std::vector<float> m, ybuf, zbuf, q;  // m (ld); gathered y_i (k x f), z_i (k x ld); dots
  std::vector<float> bc, sf;            // c_ui p_ui of the rows with one, -s (float)
  std::vector<double> C, s, inv;        // the k x k capacitance matrix (lower), its solution,
                                        // the reciprocals of its factor's diagonal
  std::vector<const float*> yg, zg, zb;  // y_i, z_i of the rows in G (w_i > 0); z_i with b_i != 0
  LightWork(Index f, Index ld, Index max_k)
      : m(ld), ybuf(max_k * f), zbuf(max_k * ld), q(max_k + 1), bc(max_k), sf(max_k),
        C(max_k * max_k), s(max_k), inv(max_k), yg(max_k), zg(max_k + 1), zb(max_k) {}
};

// Rows that take the Woodbury path: lambda > 0 and not ALS-WR (M is shared and well defined),
// 1 <= nnz <= f / kLightDivisor, and no c_ui < 1 (W^-1 + G M G^T is then SPD).
}  // namespace

bool is_light(const RowNz& row, const AlsParams& prm, Index f) {
  if (prm.scale_regularization || !(prm.regularization > 0) || row.n == 0 ||
      row.n > f / kLightDivisor)
    return false;
  for (Index t = 0; t < row.n; ++t)
    if (confidence(prm, row.val[t]).c < 1.0f) return false;
  return true;
}

namespace {

// The dots and axpys run in float with the SIMD kernels (z_i is float already); the k x k system,
// small and possibly less well conditioned, is factored in double.
bool light_row(const RowNz& row, const FactorMatrix& Y, const float* Z, const float* Ms, Index ld,
               const AlsParams& prm, float* out, LightWork& w) {
  const simd::Kernels& K = simd::kernels();
  const Index f = Y.cols();
  if (Z == nullptr) {  // z_i = M y_i for this row's columns only
    for (Index t = 0; t < row.n; ++t)
      std::memcpy(w.ybuf.data() + t * f, Y.data() + Index{row.idx[t]} * f, sizeof(float) * f);
    small_gemm(row.n, f, w.ybuf.data(), f, 1, Ms, ld, ld, w.zbuf.data(), ld);
  }
  Index k = 0, nb = 0;
  for (Index t = 0; t < row.n; ++t) {
    const Conf cf = confidence(prm, row.val[t]);
    const float* z = Z ? Z + Index{row.idx[t]} * ld : w.zbuf.data() + t * ld;
    if (cf.c * cf.p != 0.0f) w.bc[nb] = cf.c * cf.p, w.zb[nb++] = z;
    if (cf.c > 1.0f) {  // w_i = 0 adds nothing to A
      w.yg[k] = Y.data() + Index{row.idx[t]} * f;
      w.zg[k] = z;
      w.s[k++] = 1.0 / (static_cast<double>(cf.c) - 1.0);  // W^-1, for now
    }
  }
  std::fill(w.m.begin(), w.m.end(), 0.0f);  // m = M b = sum_i c_ui p_ui z_i
  K.multi_axpy(w.bc.data(), w.zb.data(), nb, w.m.data(), ld);
  if (k > 0) {
    double* C = w.C.data();
    w.zg[k] = w.m.data();
    for (Index a = 0; a < k; ++a) {  // lower triangle of W^-1 + G M G^T, and G m
      std::swap(w.zg[a + 1], w.zg[k]);  // row a: y_a against z_0..z_a and m
      K.multi_dot(w.yg[a], w.zg.data(), a + 2, f, w.q.data());
      std::swap(w.zg[a + 1], w.zg[k]);
      for (Index c = 0; c <= a; ++c) C[a * k + c] = w.q[c];
      C[a * k + a] += w.s[a];
      w.s[a] = w.q[a + 1];  // G m (W^-1 is in C now)
    }
    // C = L L^T in place, then L L^T s = G m; one division per pivot (its reciprocal), and the
    // back substitution's chains end with the newest unknown, so that they run ahead of it.
    double* inv = w.inv.data();
    for (Index j = 0; j < k; ++j) {
      double d = C[j * k + j];
      for (Index c = 0; c < j; ++c) d -= C[j * k + c] * C[j * k + c];
      if (!(d > 0.0)) return false;
      d = std::sqrt(d);
      C[j * k + j] = d;
      inv[j] = 1.0 / d;
      for (Index i = j + 1; i < k; ++i) {
        double v = C[i * k + j];
        for (Index c = 0; c < j; ++c) v -= C[i * k + c] * C[j * k + c];
        C[i * k + j] = v * inv[j];
      }
    }
    for (Index i = 0; i < k; ++i) {
      double v = w.s[i];
      for (Index c = 0; c < i; ++c) v -= C[i * k + c] * w.s[c];
      w.s[i] = v * inv[i];
    }
    for (Index i = k - 1; i >= 0; --i) {
      double v = w.s[i];
      for (Index c = k - 1; c > i; --c) v -= C[c * k + i] * w.s[c];
      w.s[i] = v * inv[i];
      w.sf[i] = -static_cast<float>(w.s[i]);
    }
    K.multi_axpy(w.sf.data(), w.zg.data(), k, w.m.data(), ld);  // x = m - M G^T s
  }
  std::memcpy(out, w.m.data(), sizeof(float) * f);
  return true;
}

// M = (YtY + lambda I)^-1 (symmetrised, float, f x ld padded). Empty if not positive definite.
std::vector<float> woodbury_inverse(const DenseMatrix& YtY, Real lambda, Index ld) {
  const Index f = YtY.rows();
  Eigen::MatrixXd A0 = YtY.cast<double>();
  A0.diagonal().array() += static_cast<double>(lambda);
  Eigen::LLT<Eigen::MatrixXd> llt(A0);
  if (llt.info() != Eigen::Success) return {};
  Eigen::MatrixXd M = llt.solve(Eigen::MatrixXd::Identity(f, f));
  return padded_copy((0.5 * (M + M.transpose())).cast<float>(), ld);
}

}  // namespace

void solve_rows_cholesky(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                         const AlsParams& prm, FactorMatrix& X, int nt) {
  const Index f = Y.cols(), ld = round_up(f, kPad), n = R.n_rows();
  const std::vector<float> S = padded_copy(YtY, ld);
  Index light_nnz = 0;
  std::vector<char> light(n);
  for (Index u = 0; u < n; ++u) {
    const RowNz row = row_nz(R, u);
    light[u] = is_light(row, prm, f);
    if (light[u]) light_nnz += row.n;
  }
  std::vector<float> Ms, Z;
  if (light_nnz > 0) Ms = woodbury_inverse(YtY, prm.regularization, ld);
  if (Ms.empty()) std::fill(light.begin(), light.end(), 0);
  // z_i = M y_i for every column, when the light rows need more of them than there are columns.
  const bool precompute = !Ms.empty() && light_nnz > Y.rows();
  if (precompute) {
    Z.resize(static_cast<size_t>(Y.rows() * ld));
    const Index nzb = (Y.rows() + kCgBlockRows - 1) / kCgBlockRows;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (Index b = 0; b < nzb; ++b) {
      const Index i0 = b * kCgBlockRows, rows = std::min(kCgBlockRows, Y.rows() - i0);
      small_gemm(rows, f, Y.data() + i0 * f, f, 1, Ms.data(), ld, ld, Z.data() + i0 * ld, ld);
    }
  }
  const std::vector<Index> blocks = make_blocks(R, kCholBlockRows, kBlockNnz);
  const Index nb = static_cast<Index>(blocks.size()) - 1;
  const Index max_light = std::max<Index>(1, f / kLightDivisor);
#pragma omp parallel num_threads(nt)
  {
    DirectWork dw(f, ld);
    LightWork lw(f, ld, max_light);
#pragma omp for schedule(dynamic, 1)
    for (Index bi = 0; bi < nb; ++bi) {
      for (Index u = blocks[bi]; u < blocks[bi + 1]; ++u) {
        const RowNz row = row_nz(R, u);
        float* out = X.data() + u * f;
        if (row.n == 0) {
          VecMap(out, f).setZero();
        } else if (!light[u] || !light_row(row, Y, precompute ? Z.data() : nullptr, Ms.data(),
                                           ld, prm, out, lw)) {
          direct_row(row, Y, YtY, S.data(), prm, ld, out, dw);
        }
      }
    }
  }
}

}  // namespace mfrec::detail
