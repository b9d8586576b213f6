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

/// log N(x; mu, L L^T) with L lower-triangular [D,D] (row-major); x, z [D];
/// half_logdet = sum_i log L_ii (precomputed in double).
template <class V>
inline V gaussian_logp(const V* x, const double* mu, const double* L, std::int64_t D,
                       double half_logdet, V* z) {
  V q = V{} + 0.0;
  for (std::int64_t i = 0; i < D; ++i) {
    V r = x[i] - mu[i];
    for (std::int64_t k = 0; k < i; ++k) r -= L[i * D + k] * z[k];
    z[i] = r / L[i * D + i];
    q += z[i] * z[i];
  }
  return (-0.5 * q - half_logdet) - 0.5 * static_cast<double>(D) * 1.8378770664093453;
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

}  // namespace samplers
}  // namespace kexue
