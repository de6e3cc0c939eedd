// The solver kernels (als_simd.inc) for each instruction set, and the run-time choice among them.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "als_simd_internal.hpp"
#include "mfrec/als_kernels.hpp"
#include "mfrec/error.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MFREC_SIMD_X86 1
#endif

namespace mfrec::simd {

// Portable C++: eight-float "vectors" that the compiler vectorises as far as the build flags let it.
namespace scalar {
constexpr const char* kName = "scalar";
constexpr Index W = 8;
constexpr int MR = 4, NP = 2;
struct V {
  float v[W];
};
inline V vzero() { return V{}; }
inline V vload(const float* p) {
  V r;
  std::memcpy(r.v, p, sizeof r.v);
  return r;
}
inline void vstore(float* p, const V& x) { std::memcpy(p, x.v, sizeof x.v); }
inline V vload_part(const float* p, Index n) {  // n < W floats, the rest zero
  V r{};
  std::memcpy(r.v, p, sizeof(float) * static_cast<std::size_t>(n));
  return r;
}
inline V vset1(float x) {
  V r;
  for (Index i = 0; i < W; ++i) r.v[i] = x;
  return r;
}
inline V vfma(const V& a, const V& b, const V& c) {
  V r;
  for (Index i = 0; i < W; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
  return r;
}
inline V vfnma(const V& a, const V& b, const V& c) {
  V r;
  for (Index i = 0; i < W; ++i) r.v[i] = c.v[i] - a.v[i] * b.v[i];
  return r;
}
inline V vmul(const V& a, const V& b) {
  V r;
  for (Index i = 0; i < W; ++i) r.v[i] = a.v[i] * b.v[i];
  return r;
}
inline float vhsum(const V& x) {
  float s = 0;
  for (Index i = 0; i < W; ++i) s += x.v[i];
  return s;
}
inline void vhsum4(const V& a, const V& b, const V& c, const V& d, float* out) {
  out[0] = vhsum(a), out[1] = vhsum(b), out[2] = vhsum(c), out[3] = vhsum(d);
}
#include "als_simd.inc"
}  // namespace scalar

#ifdef MFREC_SIMD_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
constexpr const char* kName = "avx2";
constexpr Index W = 8;
constexpr int MR = 6, NP = 2;  // 12 accumulators of the 16 registers
using V = __m256;
inline V vzero() { return _mm256_setzero_ps(); }
inline V vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, V x) { _mm256_storeu_ps(p, x); }
inline V vload_part(const float* p, Index n) {  // n < W floats, the rest zero (and never read)
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane));
}
inline V vset1(float x) { return _mm256_set1_ps(x); }
inline V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V vfnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
inline V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
inline float vhsum(V x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// out[q] = the sum of the q-th vector's elements: the four reductions share their shuffles.
inline void vhsum4(V a, V b, V c, V d, float* out) {
  const V y = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1)));
}
#include "als_simd.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace avx512 {
constexpr const char* kName = "avx512";
constexpr Index W = 16;
constexpr int MR = 6, NP = 4;  // 24 accumulators of the 32 registers
using V = __m512;
inline V vzero() { return _mm512_setzero_ps(); }
inline V vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, V x) { _mm512_storeu_ps(p, x); }
inline V vload_part(const float* p, Index n) {  // n < W floats, the rest zero (and never read)
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p);
}
inline V vset1(float x) { return _mm512_set1_ps(x); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V vfnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
// Reductions with GCC's generic shuffles: GCC 12's 512-bit extract and shuffle intrinsics warn
// (-Wmaybe-uninitialized on their undefined pass-through operand).
using I16 = int __attribute__((vector_size(64)));
inline float vhsum(V x) {  // the avx2 path's order of additions
  x += __builtin_shuffle(x, I16{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
  x += __builtin_shuffle(x, I16{4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
  x += __builtin_shuffle(x, I16{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
  x += __builtin_shuffle(x, I16{1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
  return x[0];
}
// out[q] = the sum of the q-th vector's elements: the four reductions share their shuffles.
inline void vhsum4(V a, V b, V c, V d, float* out) {
  constexpr I16 lo{0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29};
  constexpr I16 hi{2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31};
  const V ab = __builtin_shuffle(a, b, lo) + __builtin_shuffle(a, b, hi);  // a0+a2, b0+b2, ...
  const V cd = __builtin_shuffle(c, d, lo) + __builtin_shuffle(c, d, hi);
  constexpr I16 lo2{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  constexpr I16 hi2{2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
  V y = __builtin_shuffle(ab, cd, lo2) + __builtin_shuffle(ab, cd, hi2);  // a, b, c, d per lane
  y += __builtin_shuffle(y, I16{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
  y += __builtin_shuffle(y, I16{4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
  for (int q = 0; q < 4; ++q) out[q] = y[q];
}
#include "als_simd.inc"
}  // namespace avx512
#pragma GCC pop_options
#endif

namespace {

bool supported(KernelPath p) {
  switch (p) {
    case KernelPath::kScalar: return true;
#ifdef MFREC_SIMD_X86
    case KernelPath::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KernelPath::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
             __builtin_cpu_supports("fma");
#endif
    default: return false;
  }
}

const Kernels& table_of(KernelPath p) {
  switch (p) {
#ifdef MFREC_SIMD_X86
    case KernelPath::kAvx512: return avx512::table;
    case KernelPath::kAvx2: return avx2::table;
#endif
    default: return scalar::table;
  }
}

// The best path the CPU has, or MFREC_KERNELS's.
KernelPath initial_path() {
  const char* env = std::getenv("MFREC_KERNELS");
  if (env != nullptr && *env != '\0') {
    const std::string v = env;
    const KernelPath p = v == "scalar" ? KernelPath::kScalar
                         : v == "avx2" ? KernelPath::kAvx2
                         : v == "avx512" ? KernelPath::kAvx512
                         : throw Error("MFREC_KERNELS: expected scalar, avx2 or avx512, got '" +
                                       v + "'");
    if (!supported(p)) throw Error("MFREC_KERNELS=" + v + ": this CPU does not support it");
    return p;
  }
  for (KernelPath p : {KernelPath::kAvx512, KernelPath::kAvx2})
    if (supported(p)) return p;
  return KernelPath::kScalar;
}

std::atomic<int>& current() {
  static std::atomic<int> path{static_cast<int>(initial_path())};
  return path;
}

}  // namespace

const Kernels& kernels() { return table_of(static_cast<KernelPath>(current().load())); }

}  // namespace mfrec::simd

namespace mfrec {

KernelPath kernel_path() { return static_cast<KernelPath>(simd::current().load()); }
const char* kernel_path_name() { return simd::kernels().name; }
bool kernel_path_supported(KernelPath path) { return simd::supported(path); }
bool set_kernel_path(KernelPath path) {
  if (!simd::supported(path)) return false;
  simd::current().store(static_cast<int>(path));
  return true;
}

}  // namespace mfrec
