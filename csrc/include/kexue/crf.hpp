// kexue/crf.hpp - the linear-chain CRF: checked entry points.
//
// Conventions (the same in Python):
//   emissions [B,T,K] float32|float64, tags [B,T] int32|int64,
//   transitions [K,K] (transitions[i,j] scores tag i followed by tag j),
//   start [K], end [K] optional (absent = zero), mask [B,T] bool optional
//   (absent = every step valid). Any mask is allowed: masked steps are
//   removed and the valid steps on either side are joined by one transition.
//   A row with no valid step has log Z = 0, log-likelihood 0, path all -1.
//   allowed [K,K], allowed_start [K], allowed_end [K] bool optional: forbidden
//   transitions/starts/ends score -inf in training and decoding alike.
// Every output is allocated by the caller (C-contiguous); floats have the
// emissions' dtype, paths are int64. Work is O(B T K^2), parallel over B.
// Errors: kexue::Error (ErrorKind Value/Type/Index) before any output byte is
// written.
#pragma once
#include <cstdint>
#include <optional>

#include "kexue/core/view.hpp"

namespace kexue {
namespace crf {

/// The optional inputs shared by every CRF entry point.
struct Options {
  std::optional<Array> mask;           ///< [B,T] bool
  std::optional<Array> start;          ///< [K] float, emissions' dtype
  std::optional<Array> end;            ///< [K] float, emissions' dtype
  std::optional<Array> allowed;        ///< [K,K] bool
  std::optional<Array> allowed_start;  ///< [K] bool
  std::optional<Array> allowed_end;    ///< [K] bool
};

/// log Z per row: out [B].
KX_API void log_partition(const Array& emissions, const Array& transitions, const Options& opt,
                          const Array& out);

/// log p(tags) = score(tags) - log Z per row: out [B]. -inf for a forbidden path.
KX_API void log_likelihood(const Array& emissions, const Array& tags, const Array& transitions,
                           const Options& opt, const Array& out);

/// Fused forward-backward: loss [B] = -log p(tags) and the gradients of
/// loss.sum(): d_emissions [B,T,K] (0 on masked steps), d_transitions [K,K],
/// d_start [K], d_end [K]. Rows whose loss is +inf contribute no gradient.
KX_API void nll_grad(const Array& emissions, const Array& tags, const Array& transitions,
                     const Options& opt, const Array& loss, const Array& d_emissions,
                     const Array& d_transitions, const Array& d_start, const Array& d_end);

/// Posterior tag marginals out [B,T,K]; 0 on masked steps and on rows whose
/// every path is forbidden.
KX_API void marginals(const Array& emissions, const Array& transitions, const Options& opt,
                      const Array& out);

/// Best path per row: paths [B,T] int64 (-1 at masked steps), scores [B]
/// (unnormalised). Ties go to the lowest tag index. A row whose every path
/// is forbidden gets path -1 and score -inf.
KX_API void viterbi(const Array& emissions, const Array& transitions, const Options& opt,
                    const Array& paths, const Array& scores);

/// The k best paths per row, best first: paths [B,k,T] int64, scores [B,k].
/// Fewer than k allowed paths: the rest have path -1 and score -inf.
KX_API void nbest(const Array& emissions, const Array& transitions, std::int64_t k,
                  const Options& opt, const Array& paths, const Array& scores);

}  // namespace crf
}  // namespace kexue
