// kexue/core/math.hpp - scalar math written so that loops over it vectorise.
//
// libm's exp/log are opaque calls that stop auto-vectorisation; the hot loops
// of kexue (the CRF forward-backward, softmaxes) call exp/log K times per
// step, so these are branch-free versions that gcc/clang turn into SIMD code
// when called in a unit-stride loop. Both are accurate to about 1 ulp over the
// double range that matters here; exp flushes results below ~1e-308 to 0
// (never a subnormal), which only drops terms that are negligible against the
// max-shifted sums they are used in.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>

#include "kexue/core/macros.hpp"

namespace kexue {
inline namespace KEXUE_ISA_NS {
namespace math {

KX_HD inline std::uint64_t as_bits(double x) {
#if defined(__CUDACC__)
  std::uint64_t u;
  memcpy(&u, &x, sizeof u);
  return u;
#else
  return __builtin_bit_cast(std::uint64_t, x);
#endif
}
KX_HD inline double from_bits(std::uint64_t u) {
#if defined(__CUDACC__)
  double x;
  memcpy(&x, &u, sizeof x);
  return x;
#else
  return __builtin_bit_cast(double, u);
#endif
}

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

#if defined(__GNUC__) && !defined(__CUDACC__)
#define KEXUE_HAS_V8D 1
// Passing a 64-byte vector by value has a different ABI with and without
// AVX-512; these inline helpers never cross a translation unit (each ISA
// build has its own namespace), so the note is irrelevant here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
/// Eight doubles in one GCC vector: the "lanes" of the batched kernels. GCC
/// lowers it to whatever the translation unit's ISA has (one zmm, two ymm or
/// four xmm registers); every operation is lane-wise IEEE arithmetic, so the
/// results are the same bits whatever the lowering.
typedef double v8d __attribute__((vector_size(64)));
typedef unsigned long long v8u __attribute__((vector_size(64)));
inline v8u as_bits(v8d x) {
  v8u u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
inline v8d from_bits(v8u u) {
  v8d x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
#endif

/// A value of type V (double or v8d) with every lane equal to d.
template <class V>
KX_HD inline V splat(double d) {
  return V{} + d;
}

/// exp(x) for V = double or v8d: Cody-Waite reduction x = k ln2 + r,
/// |r| <= ln2/2, a degree-13 Taylor polynomial (truncation < 1e-17), and 2^k
/// built in the exponent bits. exp(-inf) = 0, exp(+inf) = inf, NaN propagates.
template <class V>
KX_HD inline V exp_t(V x) {
  const V xc = x < -708.0 ? splat<V>(-708.0)
                          : (x > 709.782712893384 ? splat<V>(709.782712893384) : x);
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52: adds round to int
  V kd = xc * 1.4426950408889634 + shifter;
  const auto ki = as_bits(kd);
  kd -= shifter;
  const V r = (xc - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
  V p = splat<V>(1.0 / 6227020800.0);  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // The low bits of ki hold k in [-1021, 1024] (two's complement);
  // (k - 1 + 1023) << 52 is 2^(k-1), a normal number for every such k.
  const V scale = from_bits((ki + 1022u) << 52);
  V y = (p + p) * scale;
  y = x < -708.0 ? splat<V>(0.0) : y;
  y = x > 709.782712893384 ? splat<V>(kInf) : y;
  return y;
}

/// log(x) for V = double or v8d: x = m 2^e with m in [sqrt(1/2), sqrt(2)),
/// log m = 2 atanh(f), f = (m-1)/(m+1), by its odd series to f^23.
/// With kSpecials: log(0) = -inf, log(x<0) = NaN, log(inf) = inf, NaN
/// propagates, subnormals are scaled first. Without, x must be positive,
/// normal and finite (the same bits there, fewer instructions).
template <class V, bool kSpecials>
KX_HD inline V log_impl(V x) {
  const auto tiny = x < 2.2250738585072014e-308;
  V xs = x;
  if constexpr (kSpecials) xs = tiny ? x * 18014398509481984.0 : x;  // * 2^54: subnormals
  const auto bits = as_bits(xs);
  const auto ebits = bits >> 52;  // sign is 0 for the inputs that matter
  V m = from_bits((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
  V e = from_bits(ebits | 0x4330000000000000ULL) - (4503599627370496.0 + 1023.0);
  if constexpr (kSpecials) e = tiny ? e - 54.0 : e;
  const auto big = m > 1.4142135623730951;
  m = big ? m * 0.5 : m;
  e = big ? e + 1.0 : e;
  const V f = (m - 1.0) / (m + 1.0);
  const V f2 = f * f;
  V p = splat<V>(1.0 / 23.0);
  p = p * f2 + 1.0 / 21.0;
  p = p * f2 + 1.0 / 19.0;
  p = p * f2 + 1.0 / 17.0;
  p = p * f2 + 1.0 / 15.0;
  p = p * f2 + 1.0 / 13.0;
  p = p * f2 + 1.0 / 11.0;
  p = p * f2 + 1.0 / 9.0;
  p = p * f2 + 1.0 / 7.0;
  p = p * f2 + 1.0 / 5.0;
  p = p * f2 + 1.0 / 3.0;
  p = p * f2 + 1.0;
  V y = e * 6.93147180369123816490e-01 + (2.0 * f * p + e * 1.90821492927058770002e-10);
  if constexpr (kSpecials) {
    y = x == 0.0 ? splat<V>(-kInf) : y;
    y = x == kInf ? splat<V>(kInf) : y;
    y = x < 0.0 ? splat<V>(kNaN) : y;
    y = x != x ? x : y;
  }
  return y;
}

/// log(x) for V = double or v8d (every x; see log_impl).
template <class V>
KX_HD inline V log_t(V x) {
  return log_impl<V, true>(x);
}

/// log(x) for a positive, normal, finite x only: log_t's bits there.
template <class V>
KX_HD inline V log_normal_t(V x) {
  return log_impl<V, false>(x);
}

#if defined(KEXUE_HAS_V8D)
#pragma GCC diagnostic pop
#endif

/// exp(x) in single precision: the same reduction with float constants and
/// a degree-6 Taylor polynomial (truncation ~1e-7, about one float ulp),
/// written like exp so that loops over it vectorise 16 floats a vector.
/// Used by the float32 loss kernels. Results below e^-86 (~4e-38) flush to 0.
KX_HD inline float expf(float x) {
  const float xc = x < -86.0f ? -86.0f : (x > 88.7f ? 88.7f : x);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adds round to int
  float kf = xc * 1.44269504f + shifter;
#if defined(__CUDACC__)
  std::uint32_t kb;
  memcpy(&kb, &kf, sizeof kb);
#else
  const std::uint32_t kb = __builtin_bit_cast(std::uint32_t, kf);
#endif
  kf -= shifter;
  const float r = (xc - kf * 0.693145751953125f) - kf * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // the low bits of kb hold k in [-125, 128]: (k - 1 + 127) << 23 is 2^(k-1),
  // a normal float for every such k
#if defined(__CUDACC__)
  float scale;
  std::uint32_t sb = (kb + 126u) << 23;
  memcpy(&scale, &sb, sizeof scale);
#else
  const float scale = __builtin_bit_cast(float, (kb + 126u) << 23);  // 2^(k-1)
#endif
  float y = (p + p) * scale;
  y = x < -86.0f ? 0.0f : y;
  y = x > 88.7f ? static_cast<float>(kInf) : y;
  return y;
}

/// log(x) in single precision (x = m 2^e, log m = 2 atanh f to f^9; about
/// one float ulp), written to vectorise like log. For positive normal x;
/// log(0) = -inf, NaN propagates (callers never pass negatives).
KX_HD inline float logf(float x) {
#if defined(__CUDACC__)
  std::uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
#else
  const std::uint32_t bits = __builtin_bit_cast(std::uint32_t, x);
#endif
  const std::uint32_t mb = (bits & 0x007fffffu) | 0x3f800000u;
#if defined(__CUDACC__)
  float m;
  memcpy(&m, &mb, sizeof m);
#else
  float m = __builtin_bit_cast(float, mb);
#endif
  float e = static_cast<float>(static_cast<std::int32_t>(bits >> 23) - 127);
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1.0f : e;
  const float f = (m - 1.0f) / (m + 1.0f);
  const float f2 = f * f;
  float p = 1.0f / 9.0f;
  p = p * f2 + 1.0f / 7.0f;
  p = p * f2 + 1.0f / 5.0f;
  p = p * f2 + 1.0f / 3.0f;
  p = p * f2 + 1.0f;
  float y = e * 0.693147182f + 2.0f * f * p;
  y = x == 0.0f ? -static_cast<float>(kInf) : y;
  y = x != x ? x : y;
  return y;
}

KX_HD inline double exp(double x) { return exp_t<double>(x); }
KX_HD inline double log(double x) { return log_t<double>(x); }

/// Lanes of the blocked reductions below. Each lane accumulates a fixed
/// subsequence and the lanes are combined in a fixed order, so the result
/// does not depend on the vector width the compiler picks (scalar, AVX2 and
/// AVX-512 builds agree bitwise) while the lane loop still vectorises.
constexpr std::int64_t kLanes = 8;

/// max over n values; -inf for n == 0. NaN is skipped (callers see NaN
/// through the sums that follow).
KX_HD inline double max_of(const double* KX_RESTRICT a, std::int64_t n) {
  double m[kLanes];
  std::int64_t i = 0;
#if defined(KEXUE_HAS_V8D)
  // The lanes as one vector: written as an array of lanes, gcc turns each
  // lane's compare-select into a scalar maxsd and never packs them.
  static_assert(kLanes == 8, "v8d holds the lanes");
  v8d mv = v8d{} - kInf;
  for (; i + kLanes <= n; i += kLanes) {
    v8d x;
    std::memcpy(&x, a + i, sizeof x);
    mv = x > mv ? x : mv;
  }
  std::memcpy(m, &mv, sizeof m);
#else
  for (std::int64_t q = 0; q < kLanes; ++q) m[q] = -kInf;
  for (; i + kLanes <= n; i += kLanes)
    for (std::int64_t q = 0; q < kLanes; ++q) m[q] = a[i + q] > m[q] ? a[i + q] : m[q];
#endif
  for (; i < n; ++i) m[0] = a[i] > m[0] ? a[i] : m[0];
  double r = m[0];
  for (std::int64_t q = 1; q < kLanes; ++q) r = m[q] > r ? m[q] : r;
  return r;
}

/// sum of n values in kLanes interleaved partial sums (see kLanes).
KX_HD inline double sum_of(const double* KX_RESTRICT a, std::int64_t n) {
  double s[kLanes];
  for (std::int64_t q = 0; q < kLanes; ++q) s[q] = 0.0;
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::int64_t q = 0; q < kLanes; ++q) s[q] += a[i + q];
  for (; i < n; ++i) s[0] += a[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/// sum of a[i] * b[i] (same lane scheme as sum_of).
KX_HD inline double dot(const double* KX_RESTRICT a, const double* KX_RESTRICT b, std::int64_t n) {
  double s[kLanes];
  for (std::int64_t q = 0; q < kLanes; ++q) s[q] = 0.0;
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::int64_t q = 0; q < kLanes; ++q) s[q] += a[i + q] * b[i + q];
  for (; i < n; ++i) s[0] += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/// log(sum(exp(a))) with the max shift, using `tmp` [n] as scratch; -inf
/// when every entry is -inf, NaN when any entry is NaN.
KX_HD inline double logsumexp(const double* KX_RESTRICT a, std::int64_t n, double* KX_RESTRICT tmp) {
  const double m = max_of(a, n);
  if (m == -kInf) {
    for (std::int64_t i = 0; i < n; ++i)
      if (a[i] != a[i]) return a[i];
    return -kInf;
  }
  if (m == kInf) return kInf;
  for (std::int64_t i = 0; i < n; ++i) tmp[i] = math::exp(a[i] - m);
  return m + math::log(sum_of(tmp, n));
}

}  // namespace math
}  // namespace KEXUE_ISA_NS
}  // namespace kexue
