// kexue/global_pointer.hpp - GlobalPointer and Efficient GlobalPointer span
// scores (kexue.fm/archives/8373, 8877): checked entry points.
//
// scores: q, k [B,T,E,D] -> s [B,E,T,T], s[b,e,i,j] = (R_i q_i).(R_j k_j)/sqrt(D)
// with RoPE R_p at absolute positions (adjacent-pair layout, bert4keras, or
// rotate-half), cells touching a masked position and (tril_mask) cells with
// i > j set to -inf. Efficient GlobalPointer: h [B,T,2d] holds q (even
// channels) and k (odd channels) shared by the types, plus per-type biases
// c = h W + bias [B,T,2E]: s[b,e,i,j] = q~_i.k~_j/sqrt(d) + (c[i,2e+1] + c[j,2e])/2.
// Backward functions give the gradients of sum(d_scores * s) over the finite
// cells. Outputs are allocated by the caller in the inputs' dtype.
// O(B E T^2 D), parallel over (b, e).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "kexue/core/view.hpp"

namespace kexue {
namespace global_pointer {

struct Options {
  std::optional<Array> mask;  ///< [B,T] bool
  bool rope = true;
  double rope_base = 10000.0;
  bool interleaved = true;  ///< adjacent pairs (bert4keras); false: rotate-half
  bool tril_mask = true;
};

KX_API void scores(const Array& q, const Array& k, const Options& opt, const Array& out);
KX_API void scores_backward(const Array& q, const Array& k, const Array& d_scores,
                            const Options& opt, const Array& dq, const Array& dk);
/// bias: [2E] or nullopt. opt.interleaved is ignored (EGP is bert4keras' layout).
KX_API void efficient_scores(const Array& h, const Array& W, const std::optional<Array>& bias,
                             const Options& opt, const Array& out);
KX_API void efficient_scores_backward(const Array& h, const Array& W, const Array& d_scores,
                                      const std::optional<Array>& bias, const Options& opt,
                                      const Array& dh, const Array& dW, const Array& dbias);

/// A decoded span: (batch, type, start, end).
using Span = std::array<std::int64_t, 4>;

/// Spans whose score is above `threshold` (compared in float64; NaN and -inf
/// never decode), from scores [B,E,T,T] (float32 or float64) and an optional
/// mask [B,T] (bool: spans touching a False token are dropped), in
/// lexicographic order. flat: per batch row, keep spans greedily by
/// descending score (ties in (type, start, end) order) and drop any that
/// overlaps a kept span of any type. Parallel over batch rows.
KX_API std::vector<Span> decode(const Array& scores, double threshold,
                                const std::optional<Array>& mask, bool flat);

/// The sparse ZLPR loss of each (batch, type) over its T*T span cells:
/// scores [B,E,T,T] (float32/float64), gold spans [n,4] int32/int64 rows
/// (batch, type, start, end; duplicates count once; a span on a -inf cell is
/// ignored); loss [B,E] and, when grad is given, d loss.sum() / d scores
/// [B,E,T,T], both in the scores' dtype. Equals
/// losses::sparse_multilabel_crossentropy on the [B*E, T*T] view.
KX_API void loss(const Array& scores, const Array& spans, const Array& loss, const Array* grad);

/// Entity-level counts of predicted vs gold spans, each [n,4] int32/int64
/// rows (batch, type, start, end) counted as sets (duplicates once): the
/// distinct predicted rows, the distinct gold rows and the rows in both.
struct F1Counts {
  std::int64_t pred = 0, gold = 0, tp = 0;
};
KX_API F1Counts f1_counts(const Array& pred_spans, const Array& gold_spans);

}  // namespace global_pointer
}  // namespace kexue
