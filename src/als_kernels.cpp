// Implicit-feedback ALS kernels; see als_kernels.hpp for the maths and the guarantees.
#include "mfrec/als_kernels.hpp"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <Eigen/Cholesky>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__AVX2__)
#include <immintrin.h>
#endif

#include "mfrec/error.hpp"

namespace mfrec {
namespace {

using Eigen::Dynamic;
using Eigen::Lower;
using VecMap = Eigen::Map<Vector>;
using CVecMap = Eigen::Map<const Vector>;

// ---- tuning (measured on AVX2, f = 64..200; see bench/bench_als.cpp) ----------------------------
constexpr Index kCgBlockRows = 128;     // rows advanced in lockstep by CG
constexpr Index kCgBlockFloats = 1 << 17;  // ... whose gathered y_i (nnz x f) stay in L2
constexpr Index kCgGatherMaxFloats = 1 << 22;  // a larger (single-row) block reads Y in place
constexpr Index kCholBlockRows = 32;    // rows per scheduling unit of the direct solver
constexpr Index kBlockNnz = 16384;      // ... or this many non-zeros (also loss_rows blocks)
constexpr Index kGramChunk = 256;       // rows per float partial Gram (then summed in double)
constexpr Index kGramSpan = 4096;       // rows per Gram task (a multiple of kGramChunk)
constexpr Index kGatherRows = 256;      // gathered rows per rank-k update of the direct solver
constexpr Index kLightDivisor = 4;      // rows with nnz <= f / kLightDivisor use Woodbury
constexpr float kCgTiny = 1e-20f;       // residual norm^2 below which a CG row has converged

Index round_up(Index n, Index m) { return (n + m - 1) / m * m; }
int resolve_threads(int t) { return t > 0 ? t : omp_get_max_threads(); }

// ---- a row-deterministic small GEMM ------------------------------------------------------------
// C[r][0:w) = sum_{k<depth} A(r,k) B[k][0:w) with A(r,k) = a[r*a_rs + k*a_ks]. Every element of C
// is one multiply-add chain in k order, whichever micro-tile it falls in, so a row of C does not
// depend on the other rows: results are independent of blocking and of the thread count.
// B must be readable up to column w, a multiple of kPad. The micro-tile is 6 rows x 2 registers
// (12 accumulators), FMA-bound on AVX2 with B (YtY, M or a gathered chunk) resident in L1/L2.
using Packet = Eigen::internal::packet_traits<float>::type;
constexpr Index kLanes = Eigen::internal::packet_traits<float>::size;
constexpr Index kPad = kLanes > 8 ? kLanes : 8;  // row padding (floats) of every B operand
constexpr int kMr = 6;
constexpr int kNp = 2;

template <int MR, int NP>
inline void micro_tile(Index depth, const float* a, Index a_rs, Index a_ks, const float* b,
                       Index ldb, float* c, Index ldc) {
  using namespace Eigen::internal;
  Packet acc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) acc[r][q] = pset1<Packet>(0.0f);
  for (Index k = 0; k < depth; ++k) {
    Packet bk[NP];
    for (int q = 0; q < NP; ++q) bk[q] = ploadu<Packet>(b + k * ldb + q * kLanes);
    for (int r = 0; r < MR; ++r) {
      const Packet ar = pset1<Packet>(a[r * a_rs + k * a_ks]);
      for (int q = 0; q < NP; ++q) acc[r][q] = pmadd(ar, bk[q], acc[r][q]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) pstoreu(c + r * ldc + q * kLanes, acc[r][q]);
}

template <int NP>
void tile(int mr, Index depth, const float* a, Index a_rs, Index a_ks, const float* b, Index ldb,
          float* c, Index ldc) {
  switch (mr) {
    case 6: micro_tile<6, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    case 5: micro_tile<5, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    case 4: micro_tile<4, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    case 3: micro_tile<3, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    case 2: micro_tile<2, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    default: micro_tile<1, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
  }
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__AVX2__)
// A baseline x86-64 build (SSE2 packets, no FMA) still runs this product, the bulk of the flops,
// with AVX2 + FMA when the CPU has them: the same micro-tile with 8-float registers, chosen once
// at run time. Rows then match a -march=x86-64-v3 build of the kernel, not the SSE path.
#define MFREC_AVX2_DISPATCH 1
#define MFREC_TARGET_AVX2 __attribute__((target("avx2,fma")))

template <int MR, int NP>
MFREC_TARGET_AVX2 inline void micro_tile_avx2(Index depth, const float* a, Index a_rs, Index a_ks,
                                              const float* b, Index ldb, float* c, Index ldc) {
  __m256 acc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) acc[r][q] = _mm256_setzero_ps();
  for (Index k = 0; k < depth; ++k) {
    __m256 bk[NP];
    for (int q = 0; q < NP; ++q) bk[q] = _mm256_loadu_ps(b + k * ldb + q * 8);
    for (int r = 0; r < MR; ++r) {
      const __m256 ar = _mm256_set1_ps(a[r * a_rs + k * a_ks]);
      for (int q = 0; q < NP; ++q) acc[r][q] = _mm256_fmadd_ps(ar, bk[q], acc[r][q]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) _mm256_storeu_ps(c + r * ldc + q * 8, acc[r][q]);
}

template <int NP>
MFREC_TARGET_AVX2 void tile_avx2(int mr, Index depth, const float* a, Index a_rs, Index a_ks,
                                 const float* b, Index ldb, float* c, Index ldc) {
  switch (mr) {
    case 6: micro_tile_avx2<6, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    case 5: micro_tile_avx2<5, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    case 4: micro_tile_avx2<4, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    case 3: micro_tile_avx2<3, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    case 2: micro_tile_avx2<2, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
    default: micro_tile_avx2<1, NP>(depth, a, a_rs, a_ks, b, ldb, c, ldc); break;
  }
}

MFREC_TARGET_AVX2 void small_gemm_avx2(Index rows, Index depth, const float* a, Index a_rs,
                                       Index a_ks, const float* b, Index ldb, Index width,
                                       float* c, Index ldc) {
  for (Index r0 = 0; r0 < rows; r0 += kMr) {
    const int mr = static_cast<int>(std::min<Index>(kMr, rows - r0));
    Index j = 0;
    for (; j + 16 <= width; j += 16)
      tile_avx2<2>(mr, depth, a + r0 * a_rs, a_rs, a_ks, b + j, ldb, c + r0 * ldc + j, ldc);
    for (; j < width; j += 8)
      tile_avx2<1>(mr, depth, a + r0 * a_rs, a_rs, a_ks, b + j, ldb, c + r0 * ldc + j, ldc);
  }
}

bool cpu_has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

void small_gemm(Index rows, Index depth, const float* a, Index a_rs, Index a_ks, const float* b,
                Index ldb, Index width, float* c, Index ldc) {
#ifdef MFREC_AVX2_DISPATCH
  if (cpu_has_avx2()) return small_gemm_avx2(rows, depth, a, a_rs, a_ks, b, ldb, width, c, ldc);
#endif
  for (Index r0 = 0; r0 < rows; r0 += kMr) {
    const int mr = static_cast<int>(std::min<Index>(kMr, rows - r0));
    const float* ar = a + r0 * a_rs;
    float* cr = c + r0 * ldc;
    Index j = 0;
    for (; j + kNp * kLanes <= width; j += kNp * kLanes)
      tile<kNp>(mr, depth, ar, a_rs, a_ks, b + j, ldb, cr + j, ldc);
    for (; j < width; j += kLanes) tile<1>(mr, depth, ar, a_rs, a_ks, b + j, ldb, cr + j, ldc);
  }
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
constexpr Index kPrefetchAhead = 8;
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
  std::vector<float> r, p, ap;  // residuals, directions (rows x f), products (rows x ld)
  std::vector<float> rs;        // ||r||^2 per row
  std::vector<char> active;
  std::vector<float> yg, wgt, rhs;  // gathered y_i (nnz x f), c_ui - 1, c_ui p_ui
  std::vector<const float*> y;      // where each y_i is read: yg, or Y itself for huge rows
  CgWork(Index rows, Index f, Index ld)
      : r(rows * f), p(rows * f), ap(rows * ld), rs(rows), active(rows) {}
};

void cg_block(const CsrBlock& R, Index u0, Index u1, const FactorMatrix& Y, const float* S,
              Index ld, const AlsParams& prm, FactorMatrix& X, CgWork& w) {
  const Index f = Y.cols(), n = u1 - u0;
  // Gather the block's y_i once (prefetching ahead), so that the 1 + cg_steps sweeps below read
  // contiguous memory; a single huge row is read in place instead. Same arithmetic either way.
  const Index t0 = R.indptr[u0], nnz = R.indptr[u1] - t0;
  const bool gathered = nnz * f <= kCgGatherMaxFloats;
  if (gathered && static_cast<Index>(w.yg.size()) < nnz * f) w.yg.resize(nnz * f);
  if (static_cast<Index>(w.wgt.size()) < nnz) w.wgt.resize(nnz), w.rhs.resize(nnz), w.y.resize(nnz);
  for (Index t = 0; t < nnz; ++t) {
    const float* yi = Y.data() + Index{R.indices[t0 + t]} * f;
    if (gathered) {
      if (t + kPrefetchAhead < nnz)
        prefetch_row(Y.data() + Index{R.indices[t0 + t + kPrefetchAhead]} * f, f);
      std::memcpy(w.yg.data() + t * f, yi, sizeof(float) * f);
      yi = w.yg.data() + t * f;
    }
    w.y[t] = yi;
    const Conf cf = confidence(prm, R.data[t0 + t]);
    w.wgt[t] = cf.c - 1.0f;
    w.rhs[t] = cf.c * cf.p;
  }
  float* x0 = X.data() + u0 * f;
  small_gemm(n, f, x0, f, 1, S, ld, ld, w.ap.data(), ld);  // AP = X YtY
  bool any = false;
  for (Index k = 0; k < n; ++k) {
    const Index b = R.indptr[u0 + k] - t0, e = R.indptr[u0 + k + 1] - t0;
    VecMap x(x0 + k * f, f), r(w.r.data() + k * f, f), p(w.p.data() + k * f, f);
    if (e == b) {  // b_u = 0: the solution is 0
      x.setZero();
      w.active[k] = 0;
      continue;
    }
    // r = b - A x = sum_i c_ui p_ui y_i - (YtY + lambda_u I) x - sum_i (c_ui - 1)(y_i.x) y_i
    r = -CVecMap(w.ap.data() + k * ld, f) - row_lambda(prm, e - b) * x;
    for (Index t = b; t < e; ++t) {
      if (!gathered && t + kPrefetchAhead < e) prefetch_row(w.y[t + kPrefetchAhead], f);
      const CVecMap y(w.y[t], f);
      r += (w.rhs[t] - w.wgt[t] * y.dot(x)) * y;
    }
    p = r;
    w.rs[k] = r.squaredNorm();
    w.active[k] = w.rs[k] > kCgTiny;
    any = any || w.active[k];
  }
  for (int step = 0; step < prm.cg_steps && any; ++step) {
    small_gemm(n, f, w.p.data(), f, 1, S, ld, ld, w.ap.data(), ld);  // AP = P YtY
    any = false;
    for (Index k = 0; k < n; ++k) {
      if (!w.active[k]) continue;
      const Index b = R.indptr[u0 + k] - t0, e = R.indptr[u0 + k + 1] - t0;
      VecMap x(x0 + k * f, f), r(w.r.data() + k * f, f), p(w.p.data() + k * f, f);
      VecMap ap(w.ap.data() + k * ld, f);
      ap += row_lambda(prm, e - b) * p;  // A_u p = YtY p + lambda_u p + sum_i (c_ui - 1)(y_i.p) y_i
      for (Index t = b; t < e; ++t) {
        if (!gathered && t + kPrefetchAhead < e) prefetch_row(w.y[t + kPrefetchAhead], f);
        const CVecMap y(w.y[t], f);
        ap += (w.wgt[t] * y.dot(p)) * y;
      }
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
  DenseMatrix A;                   // lower triangle of A_u
  Vector b;
  std::vector<float> G, Gw, tile;  // gathered y_i and (c_ui - 1) y_i (kGatherRows x ld)
  DirectWork(Index f, Index ld)
      : A(f, f), b(f), G(kGatherRows * ld, 0.0f), Gw(kGatherRows * ld, 0.0f), tile(kMr * ld) {}
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

void direct_row(const RowNz& row, const FactorMatrix& Y, const DenseMatrix& YtY,
                const AlsParams& prm, Index ld, float* out, DirectWork& w) {
  const Index f = Y.cols();
  auto& A = w.A;
  A.triangularView<Lower>() = YtY;
  A.diagonal().array() += row_lambda(prm, row.n);
  w.b.setZero();
  // A += Y_u^T (C^u - I) Y_u and b = Y_u^T C^u p(u), over chunks of gathered rows; the rank-k
  // update is the Gram kernel on (G, W G), lower triangle only.
  for (Index t0 = 0; t0 < row.n; t0 += kGatherRows) {
    const Index k = std::min(kGatherRows, row.n - t0);
    for (Index j = 0; j < k; ++j) {
      if (t0 + j + kPrefetchAhead < row.n)
        prefetch_row(Y.data() + Index{row.idx[t0 + j + kPrefetchAhead]} * f, f);
      const Conf cf = confidence(prm, row.val[t0 + j]);
      VecMap g(w.G.data() + j * ld, f);
      g = CVecMap(Y.data() + Index{row.idx[t0 + j]} * f, f);
      VecMap(w.Gw.data() + j * ld, f) = (cf.c - 1.0f) * g;
      w.b += (cf.c * cf.p) * g;
    }
    // Rows a = r0..r0+mr of G^T W G from column j0 <= a on: column a of the lower triangle.
    for (Index r0 = 0; r0 < f; r0 += kMr) {
      const Index mr = std::min<Index>(kMr, f - r0), j0 = r0 / kPad * kPad;
      small_gemm(mr, k, w.G.data() + r0, 1, ld, w.Gw.data() + j0, ld, ld - j0, w.tile.data(), ld);
      for (Index r = 0; r < mr; ++r) {
        const Index a = r0 + r;
        A.col(a).tail(f - a) += CVecMap(w.tile.data() + r * ld + (a - j0), f - a);
      }
    }
  }
  Eigen::LLT<Eigen::Ref<DenseMatrix>> llt(A);  // in place
  if (llt.info() != Eigen::Success) {
    direct_row_fallback(row, Y, YtY, prm, out);
    return;
  }
  llt.solveInPlace(w.b);
  VecMap(out, f) = w.b;
}

// ---- direct solve of a light row: Sherman-Morrison-Woodbury ------------------------------------
// With A0 = YtY + lambda I, M = A0^-1, G the rows y_i of u with w_i = c_ui - 1 > 0, W = diag(w_i)
// and b = sum_i c_ui p_ui y_i (eq. 4):
//   x = (A0 + G^T W G)^-1 b = m - M G^T s,   m = M b,   (W^-1 + G M G^T) s = G m.
// The capacitance matrix W^-1 + G M G^T is k x k and SPD; z_i = M y_i are either precomputed for
// all columns or computed per row by the same row-deterministic product (bitwise identical).
// Cost O(k^2 f + k^3) per row against O(k f^2 + f^3 / 3) for the f x f factorisation.
struct LightWork {
  using RowMatD = Eigen::Matrix<double, Dynamic, Dynamic, Eigen::RowMajor>;
  Eigen::MatrixXd C;
  RowMatD Yg, Zg;  // y_i and z_i of the rows in G, in double
  Eigen::VectorXd m, q, winv;
  std::vector<float> ybuf, zbuf;
  LightWork(Index f, Index ld, Index max_k)
      : C(max_k, max_k), Yg(max_k, f), Zg(max_k, f), m(f), q(max_k), winv(max_k),
        ybuf(max_k * f), zbuf(max_k * ld) {}
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

bool light_row(const RowNz& row, const FactorMatrix& Y, const float* Z, const float* Ms, Index ld,
               const AlsParams& prm, float* out, LightWork& w) {
  const Index f = Y.cols();
  if (Z == nullptr) {  // z_i = M y_i for this row's columns only
    for (Index t = 0; t < row.n; ++t)
      std::memcpy(w.ybuf.data() + t * f, Y.data() + Index{row.idx[t]} * f, sizeof(float) * f);
    small_gemm(row.n, f, w.ybuf.data(), f, 1, Ms, ld, ld, w.zbuf.data(), ld);
  }
  auto z = [&](Index t) {
    return CVecMap(Z ? Z + Index{row.idx[t]} * ld : w.zbuf.data() + t * ld, f);
  };
  w.m.setZero();  // m = M b = sum_i c_ui p_ui z_i
  Index k = 0;
  for (Index t = 0; t < row.n; ++t) {
    const Conf cf = confidence(prm, row.val[t]);
    if (cf.c * cf.p != 0.0f) w.m += static_cast<double>(cf.c * cf.p) * z(t).cast<double>();
    if (cf.c > 1.0f) {  // w_i = 0 adds nothing to A
      w.Yg.row(k) = CVecMap(Y.data() + Index{row.idx[t]} * f, f).cast<double>().transpose();
      w.Zg.row(k) = z(t).cast<double>().transpose();
      w.winv(k++) = 1.0 / (static_cast<double>(cf.c) - 1.0);
    }
  }
  if (k > 0) {
    for (Index a = 0; a < k; ++a) {  // lower triangle of W^-1 + G M G^T, and G m
      w.q(a) = w.Yg.row(a).dot(w.m.transpose());
      for (Index c = 0; c <= a; ++c) w.C(a, c) = w.Yg.row(a).dot(w.Zg.row(c));
      w.C(a, a) += w.winv(a);
    }
    Eigen::Ref<Eigen::MatrixXd> Ck(w.C.topLeftCorner(k, k));
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(Ck);
    if (llt.info() != Eigen::Success) return false;
    Eigen::Ref<Eigen::VectorXd> s(w.q.head(k));
    llt.solveInPlace(s);
    w.m.noalias() -= w.Zg.topRows(k).transpose() * s;  // x = m - M G^T s
  }
  VecMap(out, f) = w.m.cast<float>();
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
    CgWork w(kCgBlockRows, f, ld);
#pragma omp for schedule(dynamic, 1)
    for (Index bi = 0; bi < nb; ++bi)
      cg_block(R, blocks[bi], blocks[bi + 1], Y, S.data(), ld, prm, X, w);
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
          direct_row(row, Y, YtY, prm, ld, out, dw);
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
