// kexue/attention/math.hpp - the per-element math of attention (spec B1-B6),
// shared by the CPU kernels and (later) the CUDA ones: KX_HD, no allocation,
// no throw, no threads.
//
// Positions: key j sits at position j; query i of N against M keys sits at
// i' = i + (M - N), so the last query is aligned with the last key (N = 1
// against a cache is one decoding step; N == M gives i' = i).
#pragma once
#include <cstdint>

#include "kexue/core/macros.hpp"

namespace kexue {
namespace attention {

/// The structural part of the mask (causal and/or a window of w >= 1; w = 0:
/// no window): may the query at position qp see the key at position j?
KX_HD inline bool visible(std::int64_t qp, std::int64_t j, bool causal, std::int64_t window) {
  if (causal && j > qp) return false;
  if (window > 0) {
    const std::int64_t d = qp - j;
    if (d >= window || -d >= window) return false;
  }
  return true;
}

/// Keys [lo, hi) a query at position qp may see by the structural mask alone,
/// clipped to [0, M).
KX_HD inline void visible_range(std::int64_t qp, std::int64_t M, bool causal,
                                std::int64_t window, std::int64_t* lo, std::int64_t* hi) {
  std::int64_t a = 0, b = M;
  if (causal && qp + 1 < b) b = qp + 1;
  if (window > 0) {
    if (qp - window + 1 > a) a = qp - window + 1;
    if (qp + window < b) b = qp + window;
  }
  if (b < a) b = a;
  if (a > M) a = b = M;
  *lo = a;
  *hi = b < 0 ? 0 : b;
  if (*lo > *hi) *lo = *hi;
}

/// ALiBi (FlashAttention's definition): -slope * |qp - j|.
KX_HD inline double alibi_bias(double slope, std::int64_t qp, std::int64_t j) {
  const std::int64_t d = qp - j;
  return -slope * static_cast<double>(d < 0 ? -d : d);
}

/// The pair of features RoPE rotates together for frequency r (0 <= r < D/2):
/// adjacent (2r, 2r+1) when interleaved (RoFormer, bert4keras), else
/// (r, r + D/2) (rotate-half: GPT-NeoX, LLaMA).
KX_HD inline void rope_pair(std::int64_t r, std::int64_t half, bool interleaved,
                            std::int64_t* a, std::int64_t* b) {
  *a = interleaved ? 2 * r : r;
  *b = interleaved ? 2 * r + 1 : r + half;
}

/// Rotate (xa, xb) by the angle with cosine c and sine s.
KX_HD inline void rope_rotate(double xa, double xb, double c, double s, double* ya, double* yb) {
  *ya = xa * c - xb * s;
  *yb = xb * c + xa * s;
}

/// The transpose (inverse) rotation: the gradient of rope_rotate.
KX_HD inline void rope_unrotate(double ga, double gb, double c, double s, double* xa, double* xb) {
  *xa = ga * c + gb * s;
  *xb = gb * c - ga * s;
}

}  // namespace attention
}  // namespace kexue
