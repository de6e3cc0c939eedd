// The exact solver's light rows (als_exact.cpp): nnz <= f / kLightDivisor, solved through a k x k
// Sherman-Morrison-Woodbury system, kSpdLanes rows side by side.
//
// With A0 = YtY + lambda I, M = A0^-1, z_i = M y_i, the row's non-zeros t with c_t = c_ui, b_t =
// c_t p_t, and G the rows y_i with w_i = c_i - 1 > 0 (W = diag(w_i)), eq. 4 is
//   x = (A0 + G^T W G)^-1 sum_t b_t y_t = sum_t b_t z_t - M G^T s,
//   (W^-1 + G M G^T) s = G M sum_t b_t y_t,
// and with P(t, c) = y_t . z_c (symmetric: y_t^T M y_c), the system is W^-1 + P(G, G) with right-
// hand side P(G, :) b, and x = sum_t (b_t - s_t) z_t (s_t = 0 off G): one pass over the z_t, with
// the cancellation between b_t and s_t done in double on the coefficients. Per row: the lower
// triangle of P (k (k + 1) / 2 dots of length f), the k x k system (spd_lanes, in double: it may
// be less well conditioned), one k-term axpy. A row's arithmetic depends on that row only (which
// lane, which batch, which thread: none changes it). Where YtY is diagonal (CG in its
// eigenbasis), so is M, and it may differ by row (ALS-WR's lambda_u): M_u is never multiplied
// out, P(t, c) = (y_t (.) m) . y_c and x = m (.) sum_t (b_t - s_t) y_t, m = 1 / (d + lambda_u).
#include <cstring>
#include <vector>

#include "als_rows.hpp"

namespace mfrec::detail {

LightWork::LightWork(Index f, Index ld, Index max_k, bool own_z, bool diagonal)
    : kmax(max_k),
      yp(kSpdLanes * max_k),
      zp(kSpdLanes * max_k),
      P(kSpdLanes * max_k * max_k),
      bc(kSpdLanes * max_k),
      coef(max_k),
      gi(kSpdLanes * max_k),
      ga(kSpdLanes * max_k),
      kn(kSpdLanes),
      kg(kSpdLanes),
      winv(kSpdLanes * max_k),
      C(kSpdLanes * max_k * max_k),
      s(kSpdLanes * max_k),
      inv(kSpdLanes * max_k),
      ok(kSpdLanes),
      ybuf(own_z ? max_k * f : 0),
      zbuf(own_z ? kSpdLanes * max_k * ld : 0),
      m(diagonal ? kSpdLanes * f : 0),
      mlambda(diagonal ? kSpdLanes : 0, -1.0f) {}

Index light_rows(const CsrBlock& R, const Index* rows, Index n, const FactorMatrix& Y,
                 const float* Z, const float* Ms, const float* gdiag, Index ld, const AlsParams& prm,
                 FactorMatrix& X, LightWork& w, Index* failed, const Index* next, Index nn) {
  constexpr Index L = kSpdLanes;
  const simd::Kernels& K = simd::kernels();
  const Index f = Y.cols(), km = w.kmax;
  // The next batch's y_t, z_t and x (to be written): fetched while this batch computes. Its
  // rows lie anywhere in the window, and the lines of x would otherwise be read for ownership
  // when x is stored, one row at a time.
  for (Index q = 0; q < nn; ++q) {
    const RowNz row = row_nz(R, next[q]);
    for (Index t = 0; t < row.n; ++t) {
      prefetch_row(Y.data() + Index{row.idx[t]} * f, f);
      if (Z != nullptr) prefetch_row(Z + Index{row.idx[t]} * ld, f);
    }
    float* x = X.data() + next[q] * f;
    for (Index o = 0; o < f; o += 64 / static_cast<Index>(sizeof(float)))
      __builtin_prefetch(x + o, 1, 3);
  }
  Index kmax_g = 0;
  // Phase 1, row by row: the z_t (unless precomputed), confidences, the lower triangle of P.
  for (Index l = 0; l < n; ++l) {
    const RowNz row = row_nz(R, rows[l]);
    const float** yp = w.yp.data() + l * km;
    const float** zp = w.zp.data() + l * km;
    for (Index t = 0; t < row.n; ++t) yp[t] = Y.data() + Index{row.idx[t]} * f;
    const float* mdiag = nullptr;
    if (gdiag != nullptr) {  // M_u diagonal: z_t = M_u y_t is never formed (P weights its dots)
      const float lambda = row_lambda(prm, row.n);
      float* m = w.m.data() + l * f;
      if (w.mlambda[l] != lambda) {  // this lane's M_u, unless the lane's last row had its lambda
        for (Index j = 0; j < f; ++j)
          m[j] = static_cast<float>(1.0 / (static_cast<double>(gdiag[j]) + lambda));
        w.mlambda[l] = lambda;
      }
      mdiag = m;
      for (Index t = 0; t < row.n; ++t) zp[t] = yp[t];
    } else if (Z == nullptr) {  // z_t = M y_t for this row's columns only (bitwise as precomputed)
      float* zl = w.zbuf.data() + l * km * ld;
      for (Index t = 0; t < row.n; ++t)
        std::memcpy(w.ybuf.data() + t * f, yp[t], sizeof(float) * f);
      small_gemm(row.n, f, w.ybuf.data(), f, 1, Ms, ld, ld, zl, ld);
      for (Index t = 0; t < row.n; ++t) zp[t] = zl + t * ld;
    } else {
      for (Index t = 0; t < row.n; ++t) zp[t] = Z + Index{row.idx[t]} * ld;
    }
    Index kg = 0;
    for (Index t = 0; t < row.n; ++t) {
      const Conf cf = confidence(prm, row.val[t]);
      w.bc[l * km + t] = cf.c * cf.p;
      w.ga[l * km + t] = -1;
      if (cf.c > 1.0f) {  // w_t = 0 adds nothing to A
        w.ga[l * km + t] = kg;
        w.gi[l * km + kg] = t;
        w.winv[l * km + kg++] = 1.0 / (static_cast<double>(cf.c) - 1.0);
      }
    }
    w.kn[l] = row.n;
    w.kg[l] = kg;
    kmax_g = std::max(kmax_g, kg);
    const float* P = w.P.data() + l * km * km;
    K.tri_dots(yp, mdiag, zp, row.n, f, w.P.data() + l * km * km, km);
    // The lane's system: C(a, b) = P(g_a, g_b) + W^-1 (g increasing: P's lower triangle), and
    // s_a = sum_t b_t P(g_a, t) in order of t.
    const Index* gi = w.gi.data() + l * km;
    const float* bc = w.bc.data() + l * km;
    double* C = w.C.data() + l;
    for (Index a = 0; a < kg; ++a) {
      const float* pa = P + gi[a] * km;
      for (Index b = 0; b <= a; ++b) C[(a * km + b) * L] = pa[gi[b]];
      C[(a * km + a) * L] += w.winv[l * km + a];
      double v = 0.0;
      for (Index t = 0; t <= gi[a]; ++t) v += static_cast<double>(bc[t]) * pa[t];
      for (Index t = gi[a] + 1; t < row.n; ++t) v += static_cast<double>(bc[t]) * P[t * km + gi[a]];
      w.s[a * L + l] = v;
    }
  }
  // Phase 2: the lanes' systems, padded to the largest (identity rows, zero right-hand side: the
  // same solution bit for bit), and solved together.
  const Index k = kmax_g;
  if (k > 0) {
    for (Index l = 0; l < L; ++l) {
      for (Index a = l < n ? w.kg[l] : 0; a < k; ++a) {
        for (Index b = 0; b <= a; ++b) w.C[(a * km + b) * L + l] = a == b ? 1.0 : 0.0;
        w.s[a * L + l] = 0.0;
      }
    }
    K.spd_lanes(k, km, w.C.data(), w.s.data(), w.inv.data(), w.ok.data());
  }
  // Phase 3, row by row: x = sum_t (b_t - s_t) z_t.
  Index nfail = 0;
  for (Index l = 0; l < n; ++l) {
    if (k > 0 && w.kg[l] > 0 && !w.ok[l]) {
      failed[nfail++] = rows[l];
      continue;
    }
    const Index kl = w.kn[l];
    for (Index t = 0; t < kl; ++t) {
      const Index a = w.ga[l * km + t];
      const double v = static_cast<double>(w.bc[l * km + t]) - (a >= 0 ? w.s[a * L + l] : 0.0);
      w.coef[t] = static_cast<float>(v);
    }
    // x = sum_t coef_t z_t, or M_u sum_t coef_t y_t where M_u is diagonal
    K.combine(w.coef.data(), w.zp.data() + l * km, kl, gdiag ? w.m.data() + l * f : nullptr,
              X.data() + rows[l] * f, f);
  }
  return nfail;
}

}  // namespace mfrec::detail
