// kexue/samplers/targets.hpp - log densities of the built-in targets of
// kexue.samplers.metropolis (constants included), in one fixed arithmetic
// order that the numpy twin repeats. V is double or math::v8d (eight chains
// in the lanes of one vector, the Metropolis kernels' layout); exp and log are
// kexue's own (core/math.hpp), so every lane rounds the same in every build.
#pragma once
#include <cmath>
#include <cstdint>

#include "kexue/core/macros.hpp"
#include "kexue/core/math.hpp"

namespace kexue {
namespace samplers {
// The per-ISA kernels instantiate these templates on v8d, whose code and
// calling convention differ between ISA builds: each build gets its own names.
inline namespace KEXUE_ISA_NS {

template <class V>
inline V vmax(V a, V b) {
  return a > b ? a : b;
}
template <class V>
inline V vabs(V a) {
  return a < 0.0 ? -a : a;
}
/// log(1 + x) for x >= 0 with the rounding of 1 + x corrected.
template <class V>
inline V log1p_t(V x) {
  const V u = x + 1.0;
  const V d = u - 1.0;
  const V corr = d == 0.0 ? V{} + 0.0 : (x - d) / u;
  return math::log_t<V>(u) + corr;
}

/// log N(x; mu, L L^T) of G independent points at once: point g is x + g D
/// (scratch z + g D), its value goes to out[g]. L lower-triangular [D,D]
/// (row-major); half_logdet = sum_i log L_ii (precomputed in double).
/// z_i = (x_i - mu_i - sum_{k<i} L_ik z_k) * (1 / L_ii), the sum subtracted
/// term by term in k order; q = sum_i z_i^2 in i order. The
/// points' substitutions are interleaved statement by statement, so one
/// point's chain of dependent subtractions and divisions overlaps the
/// others'; each point's arithmetic is the same whatever G.
template <class V, int G>
inline void gaussian_logp_n(const V* x, const double* mu, const double* L, std::int64_t D,
                            double half_logdet, V* z, V* out, const double* rdiag = nullptr) {
  V q[G];
  for (int g = 0; g < G; ++g) q[g] = V{} + 0.0;
  for (std::int64_t i = 0; i < D; ++i) {
    V r[G];
    for (int g = 0; g < G; ++g) r[g] = x[g * D + i] - mu[i];
    for (std::int64_t k = 0; k < i; ++k) {
      const double l = L[i * D + k];
      for (int g = 0; g < G; ++g) r[g] -= l * z[g * D + k];
    }
    // a multiply per lane, not a division; rdiag [D] (optional): the 1 / L_ii
    const double rd = rdiag != nullptr ? rdiag[i] : 1.0 / L[i * D + i];
    for (int g = 0; g < G; ++g) {
      z[g * D + i] = r[g] * rd;
      q[g] += z[g * D + i] * z[g * D + i];
    }
  }
  for (int g = 0; g < G; ++g)
    out[g] = (-0.5 * q[g] - half_logdet) - 0.5 * static_cast<double>(D) * 1.8378770664093453;
}

/// log N(x; mu, L L^T) of one point x [D] (z [D] scratch).
template <class V>
inline V gaussian_logp(const V* x, const double* mu, const double* L, std::int64_t D,
                       double half_logdet, V* z) {
  V out[1];
  gaussian_logp_n<V, 1>(x, mu, L, D, half_logdet, z, out);
  return out[0];
}

template <class V>
inline V rosenbrock_logp(const V* x, std::int64_t D, double a, double b) {
  V s = V{} + 0.0;
  for (std::int64_t i = 0; i + 1 < D; ++i) {
    const V u = a - x[i], v = x[i + 1] - x[i] * x[i];
    s += u * u + b * v * v;
  }
  return -s;
}

/// logsumexp_k(log w_k + log N(x; mu_k, L_k L_k^T)); logw, half_logdet [K],
/// mu [K,D], L [K,D,D]; z [D], lk [K] scratch.
template <class V>
inline V mixture_logp(const V* x, const double* logw, const double* mu, const double* L,
                      const double* half_logdet, std::int64_t K, std::int64_t D, V* z, V* lk) {
  V m = V{} - HUGE_VAL;
  for (std::int64_t k = 0; k < K; ++k) {
    lk[k] = logw[k] + gaussian_logp<V>(x, mu + k * D, L + k * D * D, D, half_logdet[k], z);
    m = vmax<V>(lk[k], m);
  }
  const V ms = m == -HUGE_VAL ? V{} + 0.0 : m;
  V s = V{} + 0.0;
  for (std::int64_t k = 0; k < K; ++k) s += math::exp_t<V>(lk[k] - ms);
  const V out = ms + math::log_t<V>(s);
  return m == -HUGE_VAL ? m : out;
}

/// Bayesian logistic regression: X [n,D], y [n] of 0/1, N(0, s^2) prior.
template <class V>
inline V logistic_logp(const V* w, const double* X, const double* y, std::int64_t n,
                       std::int64_t D, double prior_scale) {
  V ll = V{} + 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    V eta = V{} + 0.0;
    for (std::int64_t d = 0; d < D; ++d) eta += X[i * D + d] * w[d];
    const V sp = log1p_t<V>(math::exp_t<V>(-vabs<V>(eta)));
    ll -= y[i] != 0.0 ? sp + vmax<V>(-eta, V{} + 0.0) : sp + vmax<V>(eta, V{} + 0.0);
  }
  V pr = V{} + 0.0;
  for (std::int64_t d = 0; d < D; ++d) pr += w[d] * w[d];
  return ll - 0.5 * pr / (prior_scale * prior_scale);
}

/// Neal's funnel: x = [v, x_1 .. x_{D-1}], v ~ N(0, 9), x_i | v ~ N(0, e^v).
template <class V>
inline V funnel_logp(const V* x, std::int64_t D) {
  const V v = x[0], ev = math::exp_t<V>(-v);
  V s = -v * v / 18.0;
  for (std::int64_t i = 1; i < D; ++i) s -= 0.5 * x[i] * x[i] * ev + 0.5 * v;
  return s;
}

}  // namespace KEXUE_ISA_NS
}  // namespace samplers
}  // namespace kexue
