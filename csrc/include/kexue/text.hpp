// kexue/text.hpp - text by search and sampling (spec kernels §A1, §A4-§A6):
// an interpolated Kneser-Ney n-gram model over token ids and the CGMH-style
// Metropolis-Hastings sampler over sentences that keep their keywords.
//
// Token ids: the model's own tokens are 0..V-1; end of sentence is V, the
// begin-of-sentence context is V + 1 (never predicted). A sentence is passed
// without either; the model adds them.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kexue/core/macros.hpp"

namespace kexue {
namespace text {

struct NGramImpl;

/// Interpolated Kneser-Ney with one discount per order, D_m = n1 / (n1 + 2 n2)
/// (0.5 when no n-gram of order m occurs once); the highest order and the
/// n-grams starting with BOS use raw counts, the others continuation counts;
/// the unigrams interpolate with the uniform distribution over the V + 1
/// outputs, so every conditional sums to 1 over tokens and end of sentence.
class KX_API NGramModel {
 public:
  /// Count `n_sent` sentences: sentence s is tokens[offsets[s] .. offsets[s+1]).
  /// order in [2, 5]; vocab_size V > every id (ids in [0, V)).
  static NGramModel fit(const std::int64_t* tokens, const std::int64_t* offsets,
                        std::int64_t n_sent, int order, std::int64_t vocab_size);
  /// The binary file written by save(); refuses a corrupt, truncated or foreign file.
  static NGramModel load(const std::string& path);
  void save(const std::string& path) const;

  int order() const;
  std::int64_t vocab_size() const;  ///< V (EOS = V, BOS = V + 1)
  std::int64_t n_contexts() const;
  std::int64_t n_ngrams() const;    ///< distinct (context, token) entries
  std::vector<double> discounts() const;

  /// log p(x_t | history) for t = 0..n (t = n: end of sentence) into out[0..n].
  void position_logprobs(const std::int64_t* x, std::int64_t n, double* out) const;
  /// The sentence's log probability: the sequential sum of position_logprobs.
  double logprob(const std::int64_t* x, std::int64_t n) const;
  /// log p(w | prefix) for w = 0..V into out[0..V].
  void next_logprobs(const std::int64_t* prefix, std::int64_t n, double* out) const;
  /// The first min(k, V) tokens w < V by (log p(w | prefix) desc, id asc).
  void topk(const std::int64_t* prefix, std::int64_t n, std::int64_t k,
            std::vector<std::int32_t>& out) const;

  const NGramImpl& impl() const { return *impl_; }

 private:
  explicit NGramModel(std::shared_ptr<const NGramImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const NGramImpl> impl_;
};

/// A sentence scorer the sampler calls back, batched over chains.
class KX_API Scorer {
 public:
  virtual ~Scorer() = default;
  virtual std::int64_t vocab_size() const = 0;  ///< insertable tokens are 0..vocab_size-1
  virtual bool has_next_logprobs() const = 0;
  /// The log probability of each complete sentence into out[i].
  virtual void logprob(const std::vector<std::vector<std::int64_t>>& seqs, double* out) = 0;
  /// For each prefix, the candidate tokens ordered by (log p desc, id asc),
  /// at most k of them, only tokens with a finite log p.
  virtual void topk(const std::vector<std::vector<std::int64_t>>& prefixes, std::int64_t k,
                    std::vector<std::vector<std::int32_t>>& out) = 0;
};

struct GenerateOptions {
  std::int64_t n_steps = 200, chains = 8, topk = 64, max_len = 40, chain_offset = 0;
  double gamma = 1.0;
  double moves[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};  ///< replace, insert, delete
  std::uint64_t seed = 0;
  bool exact = true;
  std::vector<double> temperatures;  ///< [n_steps]; empty: all 1
  std::function<void(std::int64_t, std::int64_t)> progress;
};

struct ChainResult {
  std::vector<std::int64_t> best, final_tokens;
  double best_score = 0.0, final_score = 0.0;
  /// Accepted states: entry a is the state after step traj_steps[a] (0: the start),
  /// tokens traj_tokens[traj_offsets[a] .. traj_offsets[a+1]).
  std::vector<std::int64_t> traj_steps, traj_tokens, traj_offsets{0};
  std::vector<double> traj_scores;
};

struct GenerateResult {
  std::vector<ChainResult> chains;
  std::int64_t proposed[3] = {0, 0, 0}, accepted[3] = {0, 0, 0};
};

/// CGMH-style MH (spec §A6) over C chains that always keep `keywords` in order:
/// the built-in model, chains in parallel, candidates re-scored incrementally.
KX_API GenerateResult generate(const NGramModel& lm,
                               const std::vector<std::vector<std::int64_t>>& keywords,
                               const GenerateOptions& opt);
/// The same chains with any scorer (called once or twice per step for all chains).
KX_API GenerateResult generate(Scorer& scorer,
                               const std::vector<std::vector<std::int64_t>>& keywords,
                               const GenerateOptions& opt);

/// MLM-style Gibbs (spec §A4): tokens [C*L] (in: start, out: last state); each
/// step every chain resamples one position from fn(seqs [C,L], pos [C],
/// logits [C,S]) at `temperature`; samples [C, n_steps / record_every, L].
KX_API void gibbs_resample(
    const std::function<std::int64_t(const std::int64_t*, const std::int64_t*, std::vector<double>&)>& fn,
    std::int64_t* tokens, std::int64_t C, std::int64_t L, const std::int64_t* positions,
    std::int64_t P, std::int64_t n_steps, double temperature, std::uint64_t seed,
    std::int64_t chain_offset, std::int64_t record_every, std::int64_t* samples);

}  // namespace text
}  // namespace kexue
