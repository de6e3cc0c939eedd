// The inner kernels of the ALS solvers, compiled once per instruction set (als_simd.cpp) and chosen
// at run time (als_kernels.hpp: kernel_path), so that a build without -march still runs them with
// the best instructions the CPU has. Row-major operands; every "padded" length is a multiple of
// kSimdPad floats, readable and writable, and finite (zeros where unused).
#pragma once
#include "mfrec/types.hpp"

namespace mfrec::simd {

constexpr Index kSimdPad = 16;  // the widest vector: every leading dimension is a multiple of it
constexpr Index kLltBlock = 16;  // panel width of the blocked Cholesky factorisation
constexpr Index kSpdLanes = 8;   // small SPD systems solved side by side (spd_lanes)

enum class Accumulate { kSet, kAdd, kSub };

struct Kernels {
  const char* name;
  // C[r][0:width) (=, +=, -=) sum_{k<depth} A(r,k) B[k][0:width) with A(r,k) = a[r*a_rs + k*a_ks],
  // width a multiple of kSimdPad. Every element of C is one multiply-add chain in k order, whatever
  // micro-tile it falls in: a row of C never depends on the other rows (blocking, threads).
  void (*gemm)(Accumulate mode, Index rows, Index depth, const float* a, Index a_rs, Index a_ks,
               const float* b, Index ldb, Index width, float* c, Index ldc);
  // out[0:n) += sum_{t<k} (alpha[t] + beta[t] * (y_t . v)) y_t, y_t = y + t * ldy; n padded,
  // alpha may be null (zero); beta null: out += sum_t alpha[t] y_t (v unread, no dots). The sparse
  // part of A_u v in CG, its residual, and b_u.
  void (*sweep)(Index k, const float* y, Index ldy, const float* alpha, const float* beta,
                const float* v, float* out, Index n);
  // In-place Cholesky U^T U of the upper triangle of the f x f matrix a (leading dimension lda,
  // padded); the lower triangle is scratch (finite). False if a pivot is not positive (not
  // positive definite, or NaN).
  bool (*llt)(Index f, float* a, Index lda);
  // b <- (U^T U)^-1 b for the factor of llt; b padded (lda, finite).
  void (*llt_solve)(Index f, const float* u, Index lda, float* b);
  // a[0:n) . b[0:n) and out[0:n) += x in[0:n), any n.
  float (*dot)(const float* a, const float* b, Index n);
  void (*axpy)(float x, const float* in, float* out, Index n);
  // out[j] = y . z[j] for j < nz over n floats (any n); out[0:n) += sum_j coef[j] z[j] (n padded).
  void (*multi_dot)(const float* y, const float* const* z, Index nz, Index n, float* out);
  void (*multi_axpy)(const float* coef, const float* const* z, Index nz, float* out, Index n);
  // out[0:f) = sum_{t<k} coef[t] z[t][0:f), in order of t, times m[0:f) elementwise where m is not
  // null (no padding needed on z[t], m or out).
  void (*combine)(const float* coef, const float* const* z, Index k, const float* m, float* out,
                  Index f);
  // out[t * ldo + c] = (y[t] (.) m) . z[c] for c <= t < k, over n floats (any n; m: n floats, or
  // null for y[t] . z[c]): a lower triangle.
  void (*tri_dots)(const float* const* y, const float* m, const float* const* z, Index k, Index n,
                   float* out, Index ldo);
  // kSpdLanes independent k x k SPD systems C x = s, lane l the l-th of each group of kSpdLanes
  // doubles: C(i, j) = c[(i ldc + j) kSpdLanes + l] (lower triangle, overwritten by its Cholesky
  // factor), s_i = s[i kSpdLanes + l] (overwritten by x); inv: scratch, k kSpdLanes doubles.
  // Every lane runs the same operations, so a lane's result depends on its own system only, and a
  // system padded with identity rows (and zeros in s) solves to the same values, bit for bit.
  // ok[l] = 0 where a pivot was not positive (that lane's x is then meaningless).
  void (*spd_lanes)(Index k, Index ldc, double* c, double* s, double* inv, char* ok);
  // The start of CG for a row (x: length f; xp, r, p, ap: padded, length n; ap = YtY x on entry,
  // xp's padding zero): xp = x, r = -ap - lambda x + sum_{t<k} (alpha[t] + beta[t] (y_t.x)) y_t,
  // p = r; returns r.r (computed as dot(r, r, n) is).
  float (*cg_start)(Index k, const float* y, Index ldy, const float* alpha, const float* beta,
                    float lambda, const float* x, Index f, float* xp, float* r, float* p,
                    const float* ap, Index n);
  // One CG step for a row (x: length f; r, p, ap: padded, length n; ap = YtY p on entry): adds the
  // sweep sum_{t<k} beta[t] (y_t.p) y_t and lambda p to ap (A_u p), then x += alpha p,
  // r -= alpha ap, z = r, p = z + beta p, rs = r.z, with alpha = rs / p.ap. Preconditioned where
  // minv is not null (padded, length n, zero padding): z = minv (.) r, the inverse of a diagonal
  // preconditioner. False where the row stops (p.ap not positive: x, r unchanged) or converges
  // (r.z <= tiny: p unchanged).
  bool (*cg_step)(Index k, const float* y, Index ldy, const float* beta, float lambda, float* rs,
                  float tiny, float* x, Index f, float* r, float* p, float* ap, Index n,
                  const float* minv);
  // cg_step for the active rows of a block (row k: x + k ldx; r, p, ap, minv + k n; its y_t the
  // rows [yb[k], ye[k]) of y, weights beta[t], lambda[k]), with the same operations on each row,
  // in passes over the rows that overlap their dependency chains. Clears active[k] where a row
  // stops or converges; returns whether any row is still active. pap, rsn: scratch, a float per
  // row.
  bool (*cg_steps)(Index rows, const Index* yb, const Index* ye, const float* y, Index ldy,
                   const float* beta, const float* lambda, float* rs, float tiny, float* x,
                   Index ldx, Index f, float* r, float* p, float* ap, Index n, char* active,
                   float* pap, float* rsn, const float* minv);
};

// The kernels of the current path (kernel_path()).
const Kernels& kernels();

}  // namespace mfrec::simd
