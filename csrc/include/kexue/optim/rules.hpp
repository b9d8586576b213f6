// kexue/optim/rules.hpp - the per-element update rules of kexue.optim.
//
// Each function updates one element in the working precision W (float for
// float32 parameters, double for float64: torch's "opmath" choice), with the
// operations in the order torch.optim uses where torch has the optimizer
// (so the results agree to rounding; Adam's one reciprocal is noted below). No allocation, no throw, KX_HD: the
// CPU kernels (csrc/cpu/simd/optim_kernels.inc) call these in vectorised
// loops and a CUDA kernel can call them per thread. Formulas: spec C1-C7.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kexue/core/macros.hpp"

namespace kexue {
namespace KEXUE_ISA_NS {
namespace optim {

// ----------------------------------------------------------------- bfloat16

/// bfloat16 bits -> float32 (exact).
KX_HD inline float bf16_decode(std::uint16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// float32 -> bfloat16 bits with stochastic rounding: add 16 random bits
/// r in [0, 65536) below the kept mantissa and truncate, so x rounds up with
/// probability equal to its distance from the lower neighbour (unbiased).
/// NaN stays NaN (quiet bit set); values near the top round to inf as
/// round-to-nearest would.
KX_HD inline std::uint16_t bf16_round(float x, std::uint32_t r) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const std::uint32_t rounded = (u + r) >> 16;
  const std::uint32_t nan = (u >> 16) | 0x40u;
  return static_cast<std::uint16_t>(x != x ? nan : rounded);
}

// ----------------------------------------------------------------- SGD (C1)

template <class W>
struct SgdCoef {
  W gs, wd, mu, damp1, neg_lr;  // damp1 = 1 - dampening
};

/// The coefficients (CPU kernels and CUDA launchers alike).
template <class W>
inline SgdCoef<W> sgd_coef(double lr, double momentum, double dampening, double wd, double gs) {
  return SgdCoef<W>{static_cast<W>(gs), static_cast<W>(wd), static_cast<W>(momentum),
                    static_cast<W>(1.0 - dampening), static_cast<W>(-lr)};
}

/// torch.optim.SGD: d = g + wd p; buf = first ? d : mu buf + (1 - dampening) d;
/// d = nesterov ? d + mu buf : buf; p += -lr d.
template <class W, bool kDecay, bool kMomentum, bool kNesterov>
KX_HD inline void sgd_elem(W& p, W g, W* buf, bool first, const SgdCoef<W>& c) {
  W d = g * c.gs;
  if (kDecay) d = d + c.wd * p;
  if (kMomentum) {
    const W b = first ? d : *buf * c.mu + c.damp1 * d;
    *buf = b;
    d = kNesterov ? d + c.mu * b : b;
  }
  p = p + c.neg_lr * d;
}

// ----------------------------------------------------------- Adam/AdamW (C2)

template <class W>
struct AdamCoef {
  W gs, wd;        // L2 decay (Adam); 0 for AdamW
  W decay;         // 1 - lr wd (AdamW); 1 for Adam
  W lerp_w, lerp_small;  // exp_avg.lerp_(d, 1 - beta1), torch's two forms
  W b2, w2;        // beta2, 1 - beta2
  W inv_bc2s, eps, neg_step;  // 1 / sqrt(1 - beta2^t), eps, -lr / (1 - beta1^t)
};

/// The coefficients of step `step` (1-based) in the working precision W: the
/// CPU kernels and the CUDA launchers build them here, so both round alike.
template <class W>
inline AdamCoef<W> adam_coef(double lr, double beta1, double beta2, double eps, double wd,
                             bool decoupled, std::int64_t step, double grad_scale) {
  const double t = static_cast<double>(step);
  const double w = 1.0 - beta1;
  AdamCoef<W> c;
  c.gs = static_cast<W>(grad_scale);
  c.wd = static_cast<W>(decoupled ? 0.0 : wd);
  c.decay = static_cast<W>(decoupled ? 1.0 - lr * wd : 1.0);
  c.lerp_w = static_cast<W>(w);
  c.lerp_small = static_cast<W>(w < 0.5 ? 1 : 0);
  c.b2 = static_cast<W>(beta2);
  c.w2 = static_cast<W>(1.0 - beta2);
  c.inv_bc2s = static_cast<W>(1.0 / std::sqrt(1.0 - std::pow(beta2, t)));
  c.eps = static_cast<W>(eps);
  c.neg_step = static_cast<W>(-(lr / (1.0 - std::pow(beta1, t))));
  return c;
}

/// torch's lerp(m, d, w): m + w (d - m) when w < 0.5, else d - (d - m)(1 - w).
template <class W>
KX_HD inline W lerp(W m, W d, W w, bool small) {
  return small ? m + w * (d - m) : d - (d - m) * (W(1) - w);
}

/// New moments of Adam/AdamW from the old ones (both dtypes and bf16 state).
template <class W, bool kL2>
KX_HD inline void adam_moments(W p, W g, W& m, W& v, const AdamCoef<W>& c) {
  W d = g * c.gs;
  if (kL2) d = d + c.wd * p;
  m = lerp(m, d, c.lerp_w, c.lerp_small != W(0));
  v = v * c.b2 + (c.w2 * d) * d;
}

/// The parameter update from the new moments (vv: v, or max(vmax, v) with amsgrad).
/// torch divides sqrt(v) by sqrt(1 - beta2^t); multiplying by the reciprocal
/// differs by an ulp of the denominator and saves a division per element
/// (the divider, not memory, limits the bfloat16-state step).
template <class W>
KX_HD inline W adam_param(W p, W m, W vv, const AdamCoef<W>& c) {
  const W denom = std::sqrt(vv) * c.inv_bc2s + c.eps;
  return p * c.decay + (c.neg_step * m) / denom;
}

/// max with NaN propagation (torch.maximum).
template <class W>
KX_HD inline W nan_max(W a, W b) {
  return (b != b || b > a) ? b : a;
}

// ------------------------------------------------------------------ AdaX (C3)

template <class W>
struct AdaxCoef {
  W gs, decay, b1, w1, c2, b2, inv_bc, eps, neg_lr;  // c2 = 1 + beta2; inv_bc = 1/((1+beta2)^t - 1)
};

/// The coefficients of step `step` (CPU kernels and CUDA launchers alike).
template <class W>
inline AdaxCoef<W> adax_coef(double lr, double beta1, double beta2, double eps, double wd,
                             std::int64_t step, double gs) {
  AdaxCoef<W> c;
  c.gs = static_cast<W>(gs);
  c.decay = static_cast<W>(1.0 - lr * wd);
  c.b1 = static_cast<W>(beta1);
  c.w1 = static_cast<W>(1.0 - beta1);
  c.c2 = static_cast<W>(1.0 + beta2);
  c.b2 = static_cast<W>(beta2);
  c.inv_bc = static_cast<W>(1.0 / std::expm1(static_cast<double>(step) * std::log1p(beta2)));
  c.eps = static_cast<W>(eps);
  c.neg_lr = static_cast<W>(-lr);
  return c;
}

template <class W>
KX_HD inline void adax_moments(W g, W& m, W& v, const AdaxCoef<W>& c) {
  const W d = g * c.gs;
  m = c.b1 * m + c.w1 * d;
  v = c.c2 * v + (c.b2 * d) * d;
}

template <class W>
KX_HD inline W adax_param(W p, W m, W v, const AdaxCoef<W>& c) {
  const W denom = std::sqrt(v * c.inv_bc) + c.eps;
  return p * c.decay + (c.neg_lr * m) / denom;
}

// ------------------------------------------------------------------ Lion (C6)

struct LionCoef {
  double gs, b1, w1;  // c = b1 m + w1 g in float64 (the sign must not depend on W)
  double b2, w2;      // m = b2 m + w2 g
};

inline LionCoef lion_coef(double beta1, double beta2, double gs) {
  return LionCoef{gs, beta1, 1.0 - beta1, beta2, 1.0 - beta2};
}

/// sign(beta1 m + (1 - beta1) g), computed in float64 for either dtype.
KX_HD inline double lion_sign(double m, double g, const LionCoef& c) {
  const double u = c.b1 * m + c.w1 * g;
  return u > 0.0 ? 1.0 : (u < 0.0 ? -1.0 : 0.0);
}

template <class W>
KX_HD inline W lion_param(W p, double sgn, W lr, W wd) {
  return p - lr * (static_cast<W>(sgn) + wd * p);
}

// ------------------------------------------------------------------ LAMB (C5)

template <class W>
struct LambCoef {
  W gs, b1, w1, b2, w2, inv_bc1, inv_bc2, eps, wd;
};

template <class W>
KX_HD inline void lamb_moments(W g, W& m, W& v, const LambCoef<W>& c) {
  const W d = g * c.gs;
  m = c.b1 * m + c.w1 * d;
  v = c.b2 * v + (c.w2 * d) * d;
}

/// r = mhat / (sqrt(vhat) + eps) + wd p; the update is p - lr tau r.
template <class W>
KX_HD inline W lamb_direction(W p, W m, W v, const LambCoef<W>& c) {
  return (m * c.inv_bc1) / (std::sqrt(v * c.inv_bc2) + c.eps) + c.wd * p;
}

// ----------------------------------------------------------------- Amos (C7)

template <class W>
struct AmosCoef {
  W gs, beta, w, bc, eps, zsx, sqfr, xi2, a0, zsa0, fr;  // zsx = zeta sqrt(xi), zsa0 = zeta sqrt(a0)
};

/// Elementwise Amos: v, b per element; c and d use the old b.
template <class W>
KX_HD inline void amos_elem(W& p, W g, W& v, W& b, const AmosCoef<W>& k) {
  const W gg = g * k.gs;
  const W g2 = gg * gg;
  const W vn = k.beta * v + k.w * g2;
  const W r = k.bc / (vn > k.eps ? vn : k.eps);
  const W c = W(1) / std::sqrt(W(1) + k.zsx * b);
  const W gamma = k.sqfr * c * k.xi2 * r * g2;
  const W dd = W(1) / (W(1) + k.zsa0 * b);
  p = p + k.fr * dd * (-k.a0 * std::sqrt(r) * gg - W(0.5) * gamma * p);
  b = b + gamma * (k.fr + b);
  v = vn;
}

}  // namespace optim
}  // namespace KEXUE_ISA_NS
}  // namespace kexue
