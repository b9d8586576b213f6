// kexue/samplers/discrete.hpp - the per-draw math of the discrete samplers
// (gibbs_mrf, lda): categorical draws from logits or from unnormalised
// weights, written once for every backend and mirrored by the numpy twin
// (kexue/reference/samplers_discrete.py). No allocation, no throw, no threads.
//
// A categorical draw with a uniform u in [0, 1) from weights p[0..n) >= 0:
// c[a] = p[0] + ... + p[a] (float64, one running sum, a ascending: numpy's
// cumsum), Z = c[n-1]; the draw is the smallest a with u * Z < c[a]. When
// rounding leaves no such a (u * Z == Z), it is the largest a with
// c[a] > c[a-1].
#pragma once
#include <cmath>
#include <cstdint>

#include "kexue/core/macros.hpp"

namespace kexue {
namespace samplers {

/// In place, weights p[0..n) -> cumulative weights c[0..n) (one running sum).
KX_HD inline void cumulate(double* KX_RESTRICT c, std::int64_t n) {
  for (std::int64_t k = 1; k < n; ++k) c[k] = c[k - 1] + c[k];
}

/// The draw from cumulative weights c[0..n) (non-decreasing, c[n-1] > 0) with
/// u in [0, 1): the smallest a with u * c[n-1] < c[a] (found as the count of
/// a with c[a] <= u * c[n-1]: a compare per weight, no branches), else the
/// largest a with c[a] > c[a-1] (c[-1] = 0).
KX_HD inline std::int64_t draw_cumulative(const double* KX_RESTRICT c, std::int64_t n, double u) {
  const double t = u * c[n - 1];
  double cnt = 0.0;  // a float count vectorises with plain SSE2 (exact: small integers)
  for (std::int64_t k = 0; k < n; ++k) cnt += c[k] <= t ? 1.0 : 0.0;
  const std::int64_t a = static_cast<std::int64_t>(cnt);
  if (a < n) return a;
  std::int64_t b = n - 1;
  while (b > 0 && !(c[b] > c[b - 1])) --b;
  return b;
}

/// Heat-bath draw from logits l[0..n) (finite): m = max_a l_a,
/// p_a = exp(l_a - m), cumulate, draw_cumulative. `l` is overwritten with
/// the cumulative weights.
KX_HD inline std::int64_t draw_logits(double* l, std::int64_t n, double u) {
  double m = l[0];
  for (std::int64_t a = 1; a < n; ++a) m = l[a] > m ? l[a] : m;
  for (std::int64_t a = 0; a < n; ++a) l[a] = std::exp(l[a] - m);
  cumulate(l, n);
  return draw_cumulative(l, n, u);
}

/// floor(u * n) for u in [0, 1), clamped to n - 1 (the random initial states).
KX_HD inline std::int64_t uniform_index(double u, std::int64_t n) {
  const std::int64_t k = static_cast<std::int64_t>(u * static_cast<double>(n));
  return k < n - 1 ? k : n - 1;
}

/// The collapsed-Gibbs weights of one LDA token (its own assignment removed
/// from the counts): p_k = ((ndk_k + alpha) * (nwk_k + eta)) * inv_k with
/// inv_k = 1 / (n_k + V eta), then cumulated into c.
KX_HD inline void lda_cumulative(const std::int32_t* KX_RESTRICT ndk,
                                 const std::int32_t* KX_RESTRICT nwk,
                                 const double* KX_RESTRICT inv, double alpha, double eta,
                                 std::int64_t K, double* KX_RESTRICT c) {
  for (std::int64_t k = 0; k < K; ++k)
    c[k] = ((static_cast<double>(ndk[k]) + alpha) * (static_cast<double>(nwk[k]) + eta)) * inv[k];
  cumulate(c, K);
}

/// lgamma(x) for x > 2^20 by Stirling's series (exact to double rounding
/// there: the next term is below 1e-27 of the value).
KX_HD inline double lgamma_large(double x) {
  return (x - 0.5) * std::log(x) - x + 0.91893853320467274178 + 1.0 / (12.0 * x);
}

}  // namespace samplers
}  // namespace kexue
