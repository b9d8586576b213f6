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

/// Loss of one row. s [C] logits, t [C] targets in [0,1] (as doubles),
/// keep [C] (nullable) the mask; en/ep [C] scratch; grad [C] (nullable)
/// receives the gradient. Returns the loss.
template <class F, class G>
KX_HD inline double zlpr_row(std::int64_t C, const F* s, const double* t, const bool* keep,
                             double* KX_RESTRICT en, double* KX_RESTRICT ep, G* grad) {
  double mn = 0.0, mp = 0.0;
  for (std::int64_t i = 0; i < C; ++i) {
    const double si = static_cast<double>(s[i]);
    const bool ex = (keep != nullptr && !keep[i]) || si == -math::kInf;
    const double vn = (!ex && t[i] < 1.0) ? si : -math::kInf;
    const double vp = (!ex && t[i] > 0.0) ? -si : -math::kInf;
    mn = vn > mn ? vn : mn;
    mp = vp > mp ? vp : mp;
    en[i] = ex ? 0.0 : 1.0;  // remember exclusion for the next pass
  }
  // NaN logits: the comparisons above skip them; the sums below propagate.
  for (std::int64_t i = 0; i < C; ++i) {
    const double si = static_cast<double>(s[i]);
    const double keepi = en[i];
    const double wn = (1.0 - t[i]) * keepi, wp = t[i] * keepi;
    // exp of an excluded class's exponent may be inf (s = -inf): select 0.
    const double xn = math::exp(si - mn), xp = math::exp(-si - mp);
    en[i] = keepi != 0.0 && wn != 0.0 ? wn * xn : 0.0;
    ep[i] = keepi != 0.0 && wp != 0.0 ? wp * xp : 0.0;
    // A NaN logit must poison the sums even where its weight is 0.
    en[i] = si != si ? si : en[i];
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
