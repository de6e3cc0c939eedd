// Internals shared by the ALS solvers (als_kernels.cpp: CG, Gram, loss; als_exact.cpp: the exact
// solver): tuning constants, rows and confidences, gathers of factor rows. Not installed.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "als_simd_internal.hpp"
#include "mfrec/als_kernels.hpp"

namespace mfrec::detail {

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
#ifndef MFREC_LIGHT_DIVISOR  // (a build may set it, to measure another threshold)
#define MFREC_LIGHT_DIVISOR 2
#endif
// Rows with nnz <= f / kLightDivisor use Woodbury (batched, f / 2 beats f / 4 in time at every f:
// docs/benchmarks.md, "Cholesky light rows batched").
constexpr Index kLightDivisor = MFREC_LIGHT_DIVISOR;
constexpr Index kLightWindow = 256;     // light rows: kSpdLanes at a time, windows of this many
constexpr float kCgTiny = 1e-20f;       // residual norm^2 below which a CG row has converged

inline Index round_up(Index n, Index m) { return (n + m - 1) / m * m; }

// Scratch vectors on 64-byte boundaries: a padded row then starts a cache line, and no vector load
// or store of the kernels splits one (with the heap's 16-byte alignment, whether they did depended
// on what was allocated before: the direct solver's rows ran 10-20% slower or faster for it).
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};
using FloatBuf = std::vector<float, Aligned64<float>>;
inline int resolve_threads(int t) { return t > 0 ? t : omp_get_max_threads(); }

// ---- the inner kernels: als_simd.inc, for the instruction set chosen at run time ---------------
using simd::Accumulate;
constexpr Index kPad = simd::kSimdPad;  // row padding (floats) of every padded operand
using simd::kSpdLanes;
constexpr int kMr = 6;                  // rows per Gram tile (the products' own tiles are inside)

// C = A B, row-deterministic (als_simd_internal.hpp).
inline void small_gemm(Index rows, Index depth, const float* a, Index a_rs, Index a_ks, const float* b,
                Index ldb, Index width, float* c, Index ldc) {
  simd::kernels().gemm(Accumulate::kSet, rows, depth, a, a_rs, a_ks, b, ldb, width, c, ldc);
}

// f x ld row-major copy of a symmetric f x f matrix, zero-padded to ld = round_up(f, kPad)
// columns so that it can be the B operand of small_gemm.
inline FloatBuf padded_copy(const DenseMatrix& S, Index ld) {
  const Index f = S.rows();
  FloatBuf out(static_cast<size_t>(f * ld), 0.0f);
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
inline RowNz row_nz(const CsrBlock& R, Index u) {
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
// Into L2 only (locality 1): the gathered copy is what stays in L1, and the item half-step's
// gather from a large X ran 15-20% faster than with prefetches into L1 (f = 64, bench_als data).
constexpr Index kPrefetchAhead = 24;
inline void prefetch_row(const float* y, Index f) {
  for (Index o = 0; o < f; o += 64 / static_cast<Index>(sizeof(float)))
    __builtin_prefetch(y + o, 0, 1);
}

// Consecutive rows, at most max_rows of them and (unless a single row is larger) max_nnz
// non-zeros. Depends on R only, never on the thread count.
inline std::vector<Index> make_blocks(const CsrBlock& R, Index max_rows, Index max_nnz) {
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

// Copies y_i (f floats) of the columns idx[0:n) into g (n x ld; the padding stays zero).
inline void gather_rows(const FactorMatrix& Y, const std::int32_t* idx, Index n, Index ld,
                        float* g) {
  const Index f = Y.cols();
  for (Index t = 0; t < n; ++t) {
    if (t + kPrefetchAhead < n) prefetch_row(Y.data() + Index{idx[t + kPrefetchAhead]} * f, f);
    const float* y = Y.data() + Index{idx[t]} * f;
    float* out = g + t * ld;
    for (Index j = 0; j < f; ++j) out[j] = y[j];  // inline: a libc call per 256-800 bytes costs
  }
}

// The exact solver (als_exact.cpp). Rows it solves through a k x k Woodbury system; per_row_lambda:
// M may differ by row (a diagonal M, the eigenbasis), so ALS-WR rows qualify too.
bool is_light(const RowNz& row, const AlsParams& prm, Index f, bool per_row_lambda = false);

// Its light rows (als_light.cpp): scratch for up to kSpdLanes rows of at most max_k non-zeros;
// own_z: room for the z_t of rows solved with neither a precomputed Z nor a diagonal M.
struct LightWork {
  Index kmax;
  std::vector<const float*> yp, zp;  // per lane: y_t, z_t of the row's non-zeros
  std::vector<float> P, bc, coef;    // per lane: y_t . z_c (lower triangle), c_t p_t; x's terms
  std::vector<Index> gi, ga;         // per lane: G's non-zeros, and each non-zero's place in G
  std::vector<Index> kn, kg;         // per lane: non-zeros, and how many in G
  std::vector<double> winv, C, s, inv;  // W^-1 per lane; the systems, as spd_lanes lays them out
  std::vector<char> ok;
  std::vector<float> ybuf, zbuf;     // gathered y_t, and the lanes' own z_t
  std::vector<float> m, mlambda;     // a diagonal M per lane, and the lambda_u it was made for
  LightWork(Index f, Index ld, Index max_k, bool own_z, bool diagonal);
};
// Solves the light rows rows[0:n), n <= kSpdLanes, into X. Where YtY is diagonal, gdiag is its
// diagonal d (f floats) and each row's M_u = diag(1 / (d + lambda_u)) (ALS-WR: lambda_u by row;
// neither Z nor Ms is read); else M = (YtY + lambda I)^-1 is shared, and Z holds z_i = M y_i of
// every column (ld apart), or is null (computed per row from Ms = M, f x ld). Rows whose system is not positive definite are
// left alone and listed in failed (their number returned). next[0:nn): the rows of the next
// batch, whose data it prefetches.
Index light_rows(const CsrBlock& R, const Index* rows, Index n, const FactorMatrix& Y,
                 const float* Z, const float* Ms, const float* gdiag, Index ld, const AlsParams& prm,
                 FactorMatrix& X, LightWork& w, Index* failed, const Index* next, Index nn);
// The rows u of R with light[u] (is_light; light_nnz: their non-zeros), solved exactly through
// light_rows against Ms = (YtY + lambda I)^-1 (f x ld; not read when light_nnz is 0), or, where
// diagonal (YtY is), against each row's diagonal M_u (Ms not read); a row whose k x k system fails
// is solved by its f x f one. direct_rest: the other rows too, by their f x f systems, in the same
// parallel region (the exact solver); else they are not touched.
void solve_light_rows(const CsrBlock& R, const std::vector<char>& light, Index light_nnz,
                      const FactorMatrix& Y, const DenseMatrix& YtY, const FloatBuf& Ms,
                      const AlsParams& prm, FactorMatrix& X, int nt, bool diagonal,
                      bool direct_rest);
void solve_rows_cholesky(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                         const AlsParams& prm, FactorMatrix& X, int nt);

// The CG solver (als_cg.cpp), cg_steps steps in lockstep over blocks of rows from X as the warm
// start. In the eigenbasis (solve_rows_eigenbasis): rotation is Q (f x ld, padded), the rows'
// previous basis to YtY's (YtY then diagonal); rows that start there with x = M_u^-1 b_u are
// solved exactly (eigenbasis_cold_rows), the others warm from x Q. skip: rows already solved
// (null: none), left untouched.
void solve_rows_cg(const CsrBlock& R, const FactorMatrix& Y, const DenseMatrix& YtY,
                   const AlsParams& prm, FactorMatrix& X, int nt, const float* rotation = nullptr,
                   const char* skip = nullptr);

}  // namespace mfrec::detail
