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
inline V vset1(float x) { return _mm512_set1_ps(x); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V vfnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
inline float vhsum(V x) {  // through memory: GCC 12's 512-to-256 casts warn (-Wuninitialized)
  alignas(64) float t[16];
  _mm512_store_ps(t, x);
  return avx2::vhsum(_mm256_add_ps(_mm256_load_ps(t), _mm256_load_ps(t + 8)));
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
