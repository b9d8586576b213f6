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
  for (std::int64_t i = 0; i < C; ++i) kd[i] = keep[i] ? 1.0 : 0.0;
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

}  // namespace losses
}  // namespace KEXUE_ISA_NS
}  // namespace kexue
