// csrc/cpu/samplers_discrete.hpp - the CPU backend of the discrete samplers
// (gibbs_mrf, lda): plans filled by csrc/api/samplers_discrete.cpp after
// every check (internal).
#pragma once
#include <cstdint>

#include "kexue/samplers.hpp"

namespace kexue {
namespace cpu {

struct MrfPlan {
  const samplers::MrfOptions* opt = nullptr;
  std::int64_t N = 0, S = 0, E = 0, C = 0, R = 0;
  const double* unary = nullptr;        ///< [N,S]
  const std::int64_t* edges = nullptr;  ///< [E,2], checked: in range, no self-loop
  const double* pairwise = nullptr;     ///< [S,S] (shared) or [E,S,S]
  bool shared = true;
  std::int32_t* states = nullptr;   ///< [C,N] in (when init_given) and out
  std::int32_t* samples = nullptr;  ///< [C,R,N]
  std::int64_t* counts = nullptr;   ///< [N,S]
};

struct LdaPlan {
  const samplers::LdaOptions* opt = nullptr;
  std::int64_t D = 0, T = 0, K = 0, V = 0;
  const std::int64_t* indptr = nullptr;  ///< [D+1]
  const std::int32_t* words = nullptr;   ///< [T], checked: in [0, V)
  std::int32_t* topics = nullptr;        ///< [T]
  std::int32_t* doc_topic = nullptr;     ///< [D,K]
  std::int32_t* topic_word = nullptr;    ///< [K,V]
  double* loglik = nullptr;              ///< [n_iter]
};

/// Simulated annealing of an MRF's energy (samplers::anneal_mrf); mrf's
/// structure fields (N, S, E, unary, edges, pairwise, shared) are used.
struct MrfAnnealPlan {
  const MrfPlan* mrf = nullptr;
  std::int64_t C = 0, T = 0;
  const double* temp = nullptr;  ///< [T]
  std::uint64_t seed = 0;
  std::int64_t chain_offset = 0;
  std::int32_t* states = nullptr;  ///< [C,N] in (the start) and out (the last state)
  std::int32_t* best = nullptr;    ///< [C,N]
  double* best_energy = nullptr;   ///< [C]
  double* energy = nullptr;        ///< [C,T]
};

void sampler_gibbs_mrf(const MrfPlan& p);
void sampler_anneal_mrf(const MrfAnnealPlan& p);
void sampler_lda(const LdaPlan& p);

/// The number of AD-LDA blocks for D documents (exact: 1).
inline std::int64_t lda_blocks(std::int64_t D, bool exact) {
  return exact ? 1 : (D < 64 ? D : 64);
}

}  // namespace cpu
}  // namespace kexue
