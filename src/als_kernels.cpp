// Implicit-feedback ALS kernels; see als_kernels.hpp for the maths and the guarantees.
#include "mfrec/als_kernels.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <Eigen/Cholesky>

#include "als_simd_internal.hpp"
#include "mfrec/error.hpp"

namespace mfrec {
namespace {

using Eigen::Dynamic;
using VecMap = Eigen::Map<Vector>;
using CVecMap = Eigen::Map<const Vector>;

// ---- tuning (measured on AVX2, f = 64..200; see bench/bench_als.cpp) ----------------------------
constexpr Index kCgBlockRows = 128;     // rows advanced in lockstep by CG
constexpr Index kCgBlockFloats = 1 << 17;  // ... whose gathered y_i (nnz x f) stay in L2
constexpr Index kCgGatherMaxFloats = 1 << 22;  // a larger (single-row) block: gathered per sweep
constexpr Index kCholBlockRows = 32;    // rows per scheduling unit of the direct solver
constexpr Index kBlockNnz = 16384;      // ... or this many non-zeros (also loss_rows blocks)
constexpr Index kGramChunk = 256;       // rows per float partial Gram (then summed in double)
constexpr Index kGramSpan = 4096;       // rows per Gram task (a multiple of kGramChunk)
constexpr Index kGatherRows = 256;      // gathered rows per rank-k update of the direct solver
constexpr Index kLightDivisor = 4;      // rows with nnz <= f / kLightDivisor use Woodbury
constexpr float kCgTiny = 1e-20f;       // residual norm^2 below which a CG row has converged

Index round_up(Index n, Index m) { return (n + m - 1) / m * m; }
int resolve_threads(int t) { return t > 0 ? t : omp_get_max_threads(); }

// ---- the inner kernels: als_simd.inc, for the instruction set chosen at run time ---------------
using simd::Accumulate;
constexpr Index kPad = simd::kSimdPad;  // row padding (floats) of every padded operand
constexpr int kMr = 6;                  // rows per Gram tile (the products' own tiles are inside)

// C = A B, row-deterministic (als_simd_internal.hpp).
void small_gemm(Index rows, Index depth, const float* a, Index a_rs, Index a_ks, const float* b,
                Index ldb, Index width, float* c, Index ldc) {
  simd::kernels().gemm(Accumulate::kSet, rows, depth, a, a_rs, a_ks, b, ldb, width, c, ldc);
}

// f x ld row-major copy of a symmetric f x f matrix, zero-padded to ld = round_up(f, kPad)
// columns so that it can be the B operand of small_gemm.
std::vector<float> padded_copy(const DenseMatrix& S, Index ld) {
  const Index f = S.rows();
  std::vector<float> out(static_cast<size_t>(f * ld), 0.0f);
  for (Index k = 0; k < f; ++k)
    for (Index j = 0; j < f; ++j) out[k * ld + j] = S(k, j);
  return out;
}

// ---- rows, confidences, preferences ------------------------------------------------------------
struct RowNz {
  const std::int32_t* idx;
  const Real* val;
  Index n;
};
RowNz row_nz(const CsrBlock& R, Index u) {
  const Index b = R.indptr[u], e = R.indptr[u + 1];
  return {R.indices.data() + b, R.data.data() + b, e - b};
}

struct Conf {
  float c;  // confidence c_ui
  float p;  // preference p_ui
};
inline Conf confidence(const AlsParams& prm, float r) {
  const float c = prm.confidence == ConfidenceRule::kHu ? 1.0f + prm.alpha * r : prm.alpha * r;
  return {c, r > 0 ? 1.0f : 0.0f};
}
inline float row_lambda(const AlsParams& prm, Index nnz) {
  return prm.scale_regularization ? prm.regularization * static_cast<float>(nnz)
                                  : prm.regularization;
}

// Rows of Y are fetched in data-dependent order: prefetch a few ahead so that the misses overlap.
constexpr Index kPrefetchAhead = 24;
inline void prefetch_row(const float* y, Index f) {
  for (Index o = 0; o < f; o += 64 / static_cast<Index>(sizeof(float))) __builtin_prefetch(y + o);
}

// Consecutive rows, at most max_rows of them and (unless a single row is larger) max_nnz
// non-zeros. Depends on R only, never on the thread count.
std::vector<Index> make_blocks(const CsrBlock& R, Index max_rows, Index max_nnz) {
  std::vector<Index> starts{0};
  const Index n = R.n_rows();
  Index rows = 0, nnz = 0;
  for (Index u = 0; u < n; ++u) {
    const Index k = R.indptr[u + 1] - R.indptr[u];
    if (rows > 0 && (rows == max_rows || nnz + k > max_nnz)) {
      starts.push_back(u);
      rows = nnz = 0;
    }
    ++rows;
    nnz += k;
  }
  starts.push_back(n);
  return starts;
}

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
  std::vector<float> r, p, ap;  // residuals, directions, products (rows x ld, zero padding)
  std::vector<float> xp;        // one x_u, padded (ld)
  std::vector<float> rs;        // ||r||^2 per row
  std::vector<char> active;
  std::vector<float> yg, wgt, negw, rhs;  // gathered y_i (nnz x ld), c_ui - 1, 1 - c_ui, c_ui p_ui
  CgWork(Index rows, Index ld)
      : r(rows * ld, 0.0f), p(rows * ld, 0.0f), ap(rows * ld), xp(ld, 0.0f), rs(rows),
        active(rows), yg(kGatherRows * ld, 0.0f) {}
};

// Copies y_i (f floats) of the columns idx[0:n) into g (n x ld; the padding stays zero).
void gather_rows(const FactorMatrix& Y, const std::int32_t* idx, Index n, Index ld, float* g) {
  const Index f = Y.cols();
  for (Index t = 0; t < n; ++t) {
    if (t + kPrefetchAhead < n) prefetch_row(Y.data() + Index{idx[t + kPrefetchAhead]} * f, f);
    std::memcpy(g + t * ld, Y.data() + Index{idx[t]} * f, sizeof(float) * f);
  }
}

void cg_block(const CsrBlock& R, Index u0, Index u1, const FactorMatrix& Y, const float* S,
              Index ld, const AlsParams& prm, FactorMatrix& X, CgWork& w) {
  const simd::Kernels& K = simd::kernels();
  const Index f = Y.cols(), n = u1 - u0;
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
    if (gathered) return K.sweep(e - b, w.yg.data() + b * ld, ld, alpha ? alpha + b : nullptr,
                                 beta + b, v, out, ld);
    for (Index c = b; c < e; c += kGatherRows) {
      const Index k = std::min(kGatherRows, e - c);
      gather_rows(Y, R.indices.data() + t0 + c, k, ld, w.yg.data());
      K.sweep(k, w.yg.data(), ld, alpha ? alpha + c : nullptr, beta + c, v, out, ld);
    }
  };
  float* x0 = X.data() + u0 * f;
  small_gemm(n, f, x0, f, 1, S, ld, ld, w.ap.data(), ld);  // AP = X YtY
  bool any = false;
  for (Index k = 0; k < n; ++k) {
    const Index b = R.indptr[u0 + k] - t0, e = R.indptr[u0 + k + 1] - t0;
    VecMap x(x0 + k * f, f), r(w.r.data() + k * ld, f), p(w.p.data() + k * ld, f);
    if (e == b) {  // b_u = 0: the solution is 0
      x.setZero();
      w.active[k] = 0;
      continue;
    }
    // r = b - A x = sum_i c_ui p_ui y_i - (YtY + lambda_u I) x - sum_i (c_ui - 1)(y_i.x) y_i
    r = -CVecMap(w.ap.data() + k * ld, f) - row_lambda(prm, e - b) * x;
    VecMap(w.xp.data(), f) = x;
    sparse(b, e, w.rhs.data(), w.negw.data(), w.xp.data(), w.r.data() + k * ld);
    p = r;
    w.rs[k] = r.squaredNorm();
    w.active[k] = w.rs[k] > kCgTiny;
    any = any || w.active[k];
  }
  for (int step = 0; step < prm.cg_steps && any; ++step) {
    small_gemm(n, f, w.p.data(), ld, 1, S, ld, ld, w.ap.data(), ld);  // AP = P YtY
    any = false;
    for (Index k = 0; k < n; ++k) {
      if (!w.active[k]) continue;
      const Index b = R.indptr[u0 + k] - t0, e = R.indptr[u0 + k + 1] - t0;
      VecMap x(x0 + k * f, f), r(w.r.data() + k * ld, f), p(w.p.data() + k * ld, f);
      VecMap ap(w.ap.data() + k * ld, f);
      ap += row_lambda(prm, e - b) * p;  // A_u p = YtY p + lambda_u p + sum_i (c_ui - 1)(y_i.p) y_i
      sparse(b, e, nullptr, w.wgt.data(), p.data(), ap.data());
      const float pap = p.dot(ap);
      if (!(pap > 0.0f)) {  // p = 0, or A_u not positive definite along p (c < 1): stop the row
        w.active[k] = 0;
        continue;
      }
      const float alpha = w.rs[k] / pap;
      x += alpha * p;
      r -= alpha * ap;
      const float rs_new = r.squaredNorm();
      if (!(rs_new > kCgTiny)) {  // converged
        w.active[k] = 0;
        continue;
      }
      p = r + (rs_new / w.rs[k]) * p;
      w.rs[k] = rs_new;
      any = true;
    }
  }
}

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
  for (Index a = 0; a < f; ++a) {  // A = YtY + lambda_u I, the vectors that hold the upper triangle
    const Index j0 = a / kPad * kPad;
    std::memcpy(&w.A[a * ld + j0], S + a * ld + j0, sizeof(float) * (ld - j0));
    w.A[a * ld + a] += lambda;
  }
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
  std::vector<double> C, s;             // the k x k capacitance matrix (lower), its solution
  std::vector<const float*> yg, zg, zb;  // y_i, z_i of the rows in G (w_i > 0); z_i with b_i != 0
  LightWork(Index f, Index ld, Index max_k)
      : m(ld), ybuf(max_k * f), zbuf(max_k * ld), q(max_k + 1), bc(max_k), sf(max_k),
        C(max_k * max_k), s(max_k), yg(max_k), zg(max_k + 1), zb(max_k) {}
};

// Rows that take the Woodbury path: lambda > 0 and not ALS-WR (M is shared and well defined),
// 1 <= nnz <= f / kLightDivisor, and no c_ui < 1 (W^-1 + G M G^T is then SPD).
bool is_light(const RowNz& row, const AlsParams& prm, Index f) {
  if (prm.scale_regularization || !(prm.regularization > 0) || row.n == 0 ||
      row.n > f / kLightDivisor)
    return false;
  for (Index t = 0; t < row.n; ++t)
    if (confidence(prm, row.val[t]).c < 1.0f) return false;
  return true;
}

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
    for (Index j = 0; j < k; ++j) {  // C = L L^T in place, then L L^T s = G m
      double d = C[j * k + j];
      for (Index c = 0; c < j; ++c) d -= C[j * k + c] * C[j * k + c];
      if (!(d > 0.0)) return false;
      d = std::sqrt(d);
      C[j * k + j] = d;
      for (Index i = j + 1; i < k; ++i) {
        double v = C[i * k + j];
        for (Index c = 0; c < j; ++c) v -= C[i * k + c] * C[j * k + c];
        C[i * k + j] = v / d;
      }
    }
    for (Index i = 0; i < k; ++i) {
      double v = w.s[i];
      for (Index c = 0; c < i; ++c) v -= C[i * k + c] * w.s[c];
      w.s[i] = v / C[i * k + i];
    }
    for (Index i = k - 1; i >= 0; --i) {
      double v = w.s[i];
      for (Index c = i + 1; c < k; ++c) v -= C[c * k + i] * w.s[c];
      w.s[i] = v / C[i * k + i];
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

void solve_rows_cg(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                   const AlsParams& prm, FactorMatrix& X, int nt) {
  const Index f = Y.cols(), ld = round_up(f, kPad);
  const std::vector<float> S = padded_copy(YtY, ld);
  const std::vector<Index> blocks =
      make_blocks(R, kCgBlockRows, std::max<Index>(1, kCgBlockFloats / f));
  const Index nb = static_cast<Index>(blocks.size()) - 1;
#pragma omp parallel num_threads(nt)
  {
    CgWork w(kCgBlockRows, ld);
#pragma omp for schedule(dynamic, 1)
    for (Index bi = 0; bi < nb; ++bi)
      cg_block(R, blocks[bi], blocks[bi + 1], Y, S.data(), ld, prm, X, w);
  }
}

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
  std::vector<RowMatD> part(tasks);
#pragma omp parallel num_threads(resolve_threads(threads))
  {
    std::vector<float> buf(copy ? kGramChunk * ld : 0, 0.0f), tile(kMr * ld);
#pragma omp for schedule(dynamic, 1)
    for (Index task = 0; task < tasks; ++task) {
      RowMatD G = RowMatD::Zero(f, f);  // lower triangle
      const Index t_begin = std::max(begin, (first_task + task) * kGramSpan);
      const Index t_end = std::min(end, (first_task + task + 1) * kGramSpan);
      for (Index c0 = t_begin; c0 < t_end; c0 = (c0 / kGramChunk + 1) * kGramChunk) {
        const Index n = std::min((c0 / kGramChunk + 1) * kGramChunk, t_end) - c0;
        const float* base = Y.data() + (c0 - origin) * f;
        Index ldy = f;
        if (copy) {
          for (Index i = 0; i < n; ++i) std::memcpy(&buf[i * ld], base + i * f, sizeof(float) * f);
          base = buf.data();
          ldy = ld;
        }
        // Rows r0..r0+mr of this chunk's Y^T Y up to the diagonal: a 6 x w tile over n rows.
        for (Index g = 0; g < groups; ++g) {
          const Index r0 = g * kMr, mr = std::min<Index>(kMr, f - r0);
          small_gemm(mr, n, base + r0, 1, ldy, base, ldy, round_up(r0 + mr, kPad), tile.data(),
                     ld);
          for (Index r = 0; r < mr; ++r)
            for (Index j = 0; j <= r0 + r; ++j) G(r0 + r, j) += tile[r * ld + j];
        }
      }
      part[task] = std::move(G);
    }
  }
  for (const RowMatD& G : part)
    for (Index i = 0; i < f; ++i)
      for (Index j = 0; j < f; ++j) out(i, j) += j <= i ? G(i, j) : G(j, i);
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

LossTerms loss_rows(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                    const AlsParams& p, const FactorMatrix& X, int threads) {
  check_inputs(R, Y, YtY, X, "loss_rows");
  kernel_path();  // chosen here, outside the parallel region: a bad MFREC_KERNELS throws cleanly
  const Index f = Y.cols(), ld = round_up(f, kPad);
  if (f == 0 || R.n_rows() == 0) return {};
  const std::vector<float> S = padded_copy(YtY, ld);
  const std::vector<Index> blocks = make_blocks(R, kCgBlockRows, kBlockNnz);
  const Index nb = static_cast<Index>(blocks.size()) - 1;
  std::vector<LossTerms> part(nb);  // summed in block order: independent of the thread count
#pragma omp parallel num_threads(resolve_threads(threads))
  {
    std::vector<float> Q(kCgBlockRows * ld);
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
      // m, G m, G M G^T (one triangle), k x k LLT and solve, x = m - Z s
      flops += 2 * f * k + 2 * f * k + f * k * (k + 1) + k * k * k / 3 + 2 * k * k + 2 * f * k;
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
