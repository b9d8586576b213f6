// kexue/attention.hpp - scaled dot-product attention on the CPU in O(N) extra
// memory (FlashAttention-2's online softmax and recomputing backward, spec
// B1-B6): checked entry points.
//
// q [B,H,N,D], k [B,Hkv,M,D], v [B,Hkv,M,Dv], H a multiple of Hkv (query head
// h reads kv head h / (H/Hkv): grouped- and multi-query attention without
// copies); float32 or float64, all the same. Positions: key j at j, query i
// at i' = i + M - N (end-aligned). Query i may see key j iff every mask given
// allows it: causal (j <= i'), window w (|i' - j| < w), segment_ids (UniLM:
// c = cumsum(s), c_j <= c_i), a bool mask (true = may attend) or a float mask
// (additive bias in q's dtype; -inf = may not). The logit is
//   s_ij = scale_i * (R_i' q_i).(R_j k_j) + bias_ij - slope_h |i' - j|
// with R the RoPE rotation (when rope), scale_i = scale (default 1/sqrt(D))
// times log(n_i)/log(logn) when logn is given (n_i = keys query i may see:
// the entropy-invariant scale, spec B3). out_i = softmax(s_i) v, lse_i =
// logsumexp(s_i); a query that may see no key gets out 0 and lse -inf.
// Outputs are allocated by the caller; results do not depend on the thread
// count.
#pragma once
#include <cstdint>
#include <optional>

#include "kexue/core/view.hpp"

namespace kexue {
namespace attention {

struct Options {
  bool causal = false;
  /// bool or float (q's dtype), 4-D [B|1, H|1, N|1, M|1]: an axis of size 1
  /// broadcasts.
  std::optional<Array> mask;
  /// int32/int64 [B,N] of 0 (source) and 1 (target); needs N == M.
  std::optional<Array> segment_ids;
  std::int64_t window = 0;  ///< 0: no window; else w >= 1
  std::optional<double> scale;
  std::optional<double> logn;  ///< n0 > 1
  std::optional<Array> alibi_slopes;  ///< float64 [H]
  bool rope = false;
  double rope_base = 10000.0;
  bool rope_interleaved = false;
};

/// out [B,H,N,Dv]; lse [B,H,N] (nullable) in q's dtype.
KX_API void sdpa(const Array& q, const Array& k, const Array& v, const Options& opt,
                 const Array& out, const Array* lse);

/// Gradients of sum(out * dout) w.r.t. q, k, v (unrotated q and k; the float
/// mask and logn's factor are constants), from the forward's out and lse.
/// FlashAttention-2's recomputation: O(N) extra memory.
KX_API void sdpa_backward(const Array& q, const Array& k, const Array& v, const Array& out,
                          const Array& lse, const Array& dout, const Options& opt,
                          const Array& dq, const Array& dk, const Array& dv);

struct DecodeOptions {
  std::optional<double> scale;
  std::optional<double> logn;
  std::int64_t window = 0;
  std::optional<Array> alibi_slopes;  ///< float64 [H]
};

/// One query per sequence against a KV cache: q [B,H,D], k_cache [B,Hkv,Mmax,D],
/// v_cache [B,Hkv,Mmax,Dv], lengths int32/int64 [B] in [0, Mmax]. Query b sits
/// at position lengths[b]-1 and sees keys [0, lengths[b]) (within the
/// window). out [B,H,Dv], lse [B,H] (nullable). Parallel over the cache
/// (split-K), so one long sequence uses every thread.
KX_API void decode(const Array& q, const Array& k_cache, const Array& v_cache,
                   const Array& lengths, const DecodeOptions& opt, const Array& out,
                   const Array* lse);

/// Rotary position embedding of x [R,N,D] (D even) at float64 positions
/// [1,N] or [R,N]: angle p * base^(-2r/D) in float64; out like x.
KX_API void rope(const Array& x, const Array& positions, double base, bool interleaved,
                 const Array& out);

}  // namespace attention
}  // namespace kexue
