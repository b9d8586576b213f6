// kexue/memm.hpp - the maximum-entropy Markov model (Su's formulation).
//
// p(y_0 | x) = softmax(h_0), p(y_t | y_{t-1}, x) = softmax_k(alpha (h_t[k] + G[y_{t-1}, k])).
// G is given dense ([K,K] `transitions`) or low-rank (`left` L, `right` R,
// [K,d] each, G = L R^T): exactly one of the two. Masks and `allowed` as in
// kexue/crf.hpp: a forbidden transition or start is -inf inside the local
// softmax (renormalised over the allowed tags); a forbidden end makes the
// path impossible. Bidirectional (Bi-MEMM) = the mean of the left-to-right
// model and the right-to-left model with G^T.
#pragma once
#include <cstdint>
#include <optional>

#include "kexue/core/view.hpp"

namespace kexue {
namespace memm {

struct Options {
  std::optional<Array> transitions;    ///< [K,K] float (dense G)
  std::optional<Array> left;           ///< [K,d] float (low-rank G = left right^T)
  std::optional<Array> right;          ///< [K,d] float
  std::optional<Array> mask;           ///< [B,T] bool
  std::optional<Array> allowed;        ///< [K,K] bool
  std::optional<Array> allowed_start;  ///< [K] bool
  std::optional<Array> allowed_end;    ///< [K] bool
  double alpha = 1.0;                  ///< > 0; 0.5 reproduces bert4keras
  bool bidirectional = false;          ///< training only
};

/// log p(tags) per row (sum over valid steps): out [B].
KX_API void log_likelihood(const Array& emissions, const Array& tags, const Options& opt,
                           const Array& out);

/// loss [B] = -log p(tags), and the gradients of loss.sum(): d_emissions
/// [B,T,K]; d_transitions [K,K] for dense G, or d_left/d_right [K,d] for
/// low-rank G (pass empty Arrays for the other form). O(B T K d) for low-rank.
KX_API void nll_grad(const Array& emissions, const Array& tags, const Options& opt,
                     const Array& loss, const Array& d_emissions, const Array& d_transitions,
                     const Array& d_left, const Array& d_right);

/// MAP decoding under the left-to-right model (crf_style=false): scores are
/// log p(path); or CRF-style Viterbi on h + G (crf_style=true, bert4keras).
KX_API void viterbi(const Array& emissions, const Options& opt, bool crf_style,
                    const Array& paths, const Array& scores);

/// The k most probable paths under the left-to-right model, best first.
KX_API void nbest(const Array& emissions, std::int64_t k, const Options& opt, const Array& paths,
                  const Array& scores);

/// Posterior tag marginals of the left-to-right model [B,T,K] (conditioned on
/// an allowed end when allowed_end is given); 0 on masked steps.
KX_API void marginals(const Array& emissions, const Options& opt, const Array& out);

}  // namespace memm
}  // namespace kexue
