// kexue/losses/multilabel.hpp - the multi-label "softmax + cross-entropy"
// (ZLPR) for one row of C classes (kexue.fm/archives/7359, 9064).
//
//   loss = log(1 + sum_i wn_i e^{s_i}) + log(1 + sum_i wp_i e^{-s_i})
//
// with wn = 1 - t, wp = t: t in {0, 1} is the hard loss, t in [0, 1] the
// soft one. A class is excluded (in neither sum, gradient 0) when its mask
// is false or its logit is -inf. Both sums are shifted by m = max(0, max of
// the eligible exponents), so the "1 +" and every term stay in range; the
// gradient wn_i e^{s_i}/Zn - wp_i e^{-s_i}/Zp reuses the exponentials.
// Three passes over the row (max, exp+sum, gradient) read it from cache after
// the first; no allocation, no throw.
#pragma once
#include <cstdint>
#include <cstring>

#include "kexue/core/math.hpp"

namespace kexue {
inline namespace KEXUE_ISA_NS {
namespace losses {

/// Loss of one row. s [C] logits, t [C] targets in [0,1] (as doubles), keep
/// [C] the mask (all true when there is none); x, kd, en, ep [C] scratch;
/// grad [C] (nullable) receives the gradient. Hard: t is 0/1, so each class
/// needs one exponential, not two. The first pass widens the row to doubles
/// (x) and folds mask and -inf into a 0/1 weight (kd), so the passes after
/// it are pure double arithmetic that vectorises.
template <bool Hard, class F, class G>
KX_HD inline double zlpr_row(std::int64_t C, const F* s, const double* t, const bool* keep,
                             double* KX_RESTRICT x, double* KX_RESTRICT kd,
                             double* KX_RESTRICT en, double* KX_RESTRICT ep, G* grad) {
  for (std::int64_t i = 0; i < C; ++i) x[i] = static_cast<double>(s[i]);
  // bool as bytes through int: the conversion vectorises (bool -> double does not)
  const std::uint8_t* kb = reinterpret_cast<const std::uint8_t*>(keep);
  for (std::int64_t i = 0; i < C; ++i) kd[i] = static_cast<double>(static_cast<std::int32_t>(kb[i]));
  for (std::int64_t i = 0; i < C; ++i) {
    const double si = x[i];
    kd[i] = si == -math::kInf ? 0.0 : kd[i];
    en[i] = (kd[i] != 0.0 && t[i] < 1.0) ? si : -math::kInf;
    ep[i] = (kd[i] != 0.0 && t[i] > 0.0) ? -si : -math::kInf;
  }
  // NaN logits are skipped by the maxima and propagate through the sums.
  double mn = math::max_of(en, C), mp = math::max_of(ep, C);
  mn = mn > 0.0 ? mn : 0.0;
  mp = mp > 0.0 ? mp : 0.0;
  for (std::int64_t i = 0; i < C; ++i) {
    const double si = x[i];
    const double ok = kd[i];
    if (Hard) {
      const double neg = t[i] < 0.5 ? 1.0 : 0.0;
      const double e = math::exp(neg != 0.0 ? si - mn : -si - mp);
      en[i] = (ok * neg) != 0.0 ? e : 0.0;
      ep[i] = (ok * (1.0 - neg)) != 0.0 ? e : 0.0;
    } else {
      const double wn = 1.0 - t[i], wp = t[i];
      // a weight of 0 removes the term even where its exponential overflows
      const double xn = math::exp(si - mn), xp = math::exp(-si - mp);
      en[i] = (ok * wn) != 0.0 ? wn * xn : 0.0;
      ep[i] = (ok * wp) != 0.0 ? wp * xp : 0.0;
      en[i] = (ok != 0.0 && si != si) ? si : en[i];  // NaN in, NaN out (unless masked)
    }
  }
  const double Zn = math::exp(-mn) + math::sum_of(en, C);
  const double Zp = math::exp(-mp) + math::sum_of(ep, C);
  const double loss = (mn + math::log(Zn)) + (mp + math::log(Zp));
  if (grad != nullptr) {
    const double rn = 1.0 / Zn, rp = 1.0 / Zp;
    for (std::int64_t i = 0; i < C; ++i) grad[i] = static_cast<G>(en[i] * rn - ep[i] * rp);
  }
  return loss;
}

/// max over n floats, in fixed lanes (as math::max_of); -inf for n == 0.
KX_HD inline float max_of_f(const float* KX_RESTRICT a, std::int64_t n) {
  constexpr std::int64_t W = 16;
  float m[W];
  std::int64_t i = 0;
#if defined(__GNUC__) && !defined(__CUDACC__)
  // The lanes as one vector (as math::max_of): written as an array of lanes,
  // gcc turns each lane's compare-select into a scalar maxss.
  typedef float v16f __attribute__((vector_size(64)));
  v16f mv = v16f{} - static_cast<float>(math::kInf);
  for (; i + W <= n; i += W) {
    v16f x;
    std::memcpy(&x, a + i, sizeof x);
    mv = x > mv ? x : mv;
  }
  std::memcpy(m, &mv, sizeof m);
#else
  for (std::int64_t q = 0; q < W; ++q) m[q] = -static_cast<float>(math::kInf);
  for (; i + W <= n; i += W)
    for (std::int64_t q = 0; q < W; ++q) m[q] = a[i + q] > m[q] ? a[i + q] : m[q];
#endif
  for (; i < n; ++i) m[0] = a[i] > m[0] ? a[i] : m[0];
  float r = m[0];
  for (std::int64_t q = 1; q < W; ++q) r = m[q] > r ? m[q] : r;
  return r;
}

/// sum of n floats accumulated in double, in fixed lanes.
KX_HD inline double sum_of_f(const float* KX_RESTRICT a, std::int64_t n) {
  constexpr std::int64_t W = 16;
  double s[W];
  for (std::int64_t q = 0; q < W; ++q) s[q] = 0.0;
  std::int64_t i = 0;
  for (; i + W <= n; i += W)
    for (std::int64_t q = 0; q < W; ++q) s[q] += static_cast<double>(a[i + q]);
  for (; i < n; ++i) s[0] += static_cast<double>(a[i]);
  double r = 0.0;
  for (std::int64_t q = 0; q < W; ++q) r += s[q];
  return r;
}

/// zlpr_row for float32 logits: the exponentials in single precision (16
/// lanes a vector, math::expf), the sums and the loss in double. Its
/// results match the float64 computation to float32 rounding (the
/// exponents s - m are exact or nearly so in float; each exponential is
/// good to about one float ulp). kd, en, ep [C] float scratch.
template <bool Hard>
KX_HD inline double zlpr_row_f32(std::int64_t C, const float* s, const float* t, const bool* keep,
                                 float* KX_RESTRICT kd, float* KX_RESTRICT en,
                                 float* KX_RESTRICT ep, float* grad) {
  const float ninf = -static_cast<float>(math::kInf);
  const std::uint8_t* kb = reinterpret_cast<const std::uint8_t*>(keep);
  for (std::int64_t i = 0; i < C; ++i) kd[i] = static_cast<float>(static_cast<std::int32_t>(kb[i]));
  for (std::int64_t i = 0; i < C; ++i) {
    const float si = s[i];
    kd[i] = si == ninf ? 0.0f : kd[i];
    // two selects, no && (a short-circuit would become a branch per vector)
    const float vn = t[i] < 1.0f ? si : ninf;
    const float vp = t[i] > 0.0f ? -si : ninf;
    en[i] = kd[i] != 0.0f ? vn : ninf;
    ep[i] = kd[i] != 0.0f ? vp : ninf;
  }
  float mn = max_of_f(en, C), mp = max_of_f(ep, C);
  mn = mn > 0.0f ? mn : 0.0f;
  mp = mp > 0.0f ? mp : 0.0f;
  for (std::int64_t i = 0; i < C; ++i) {
    const float si = s[i];
    const float ok = kd[i];
    if (Hard) {
      const float neg = t[i] < 0.5f ? 1.0f : 0.0f;
      const float e = math::expf(neg != 0.0f ? si - mn : -si - mp);
      en[i] = (ok * neg) != 0.0f ? e : 0.0f;
      ep[i] = (ok * (1.0f - neg)) != 0.0f ? e : 0.0f;
    } else {
      const float wn = 1.0f - t[i], wp = t[i];
      const float xn = math::expf(si - mn), xp = math::expf(-si - mp);
      en[i] = (ok * wn) != 0.0f ? wn * xn : 0.0f;
      ep[i] = (ok * wp) != 0.0f ? wp * xp : 0.0f;
      en[i] = (ok != 0.0f && si != si) ? si : en[i];  // NaN in, NaN out (unless masked)
    }
  }
  const double Zn = math::exp(-static_cast<double>(mn)) + sum_of_f(en, C);
  const double Zp = math::exp(-static_cast<double>(mp)) + sum_of_f(ep, C);
  const double loss = (static_cast<double>(mn) + math::log(Zn)) +
                      (static_cast<double>(mp) + math::log(Zp));
  if (grad != nullptr) {
    const float rn = static_cast<float>(1.0 / Zn), rp = static_cast<float>(1.0 / Zp);
    for (std::int64_t i = 0; i < C; ++i) grad[i] = en[i] * rn - ep[i] * rp;
  }
  return loss;
}

}  // namespace losses
}  // namespace KEXUE_ISA_NS
}  // namespace kexue
