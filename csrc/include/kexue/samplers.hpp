// kexue/samplers.hpp - MCMC over many chains: random-walk and independence
// Metropolis-Hastings, heat-bath Gibbs on Ising and Potts lattices (spec A3,
// A4, A7): checked entry points.
//
// Randomness: Philox4x32-10 blocks addressed by (block, global chain index
// chain_offset + c) under the key `seed` (kexue/samplers/rng.hpp), so a
// chain's draws depend only on (seed, its global index): never on threads,
// on how chains are split across calls, or on the other chains of a call.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "kexue/core/view.hpp"

namespace kexue {
namespace samplers {

enum class TargetKind { Callable, Gaussian, Rosenbrock, Mixture, Logistic, Funnel };

/// A log density over x [D]. Built-in kinds carry their parameters (float64,
/// row-major); Callable calls `fn(y [C,D], C, D, logp [C])` once per step for
/// all chains (from the calling thread).
struct Target {
  TargetKind kind = TargetKind::Callable;
  std::function<void(const double*, std::int64_t, std::int64_t, double*)> fn;
  std::vector<double> mean, chol;  ///< Gaussian: [D], [D,D] lower Cholesky factor
  double a = 1.0, b = 100.0;       ///< Rosenbrock
  std::int64_t K = 0;              ///< Mixture: log weights [K], means [K,D], chols [K,D,D]
  std::vector<double> logw, means, chols;
  std::int64_t n = 0;              ///< Logistic: X [n,D], y [n], prior scale
  std::vector<double> X, y;
  double prior_scale = 1.0;
};

struct MetropolisOptions {
  std::vector<double> step_size{0.1};  ///< [1] or [D]
  bool independent = false;            ///< independence proposal N(prop_mean, L L^T)
  std::vector<double> prop_mean, prop_chol;
  std::uint64_t seed = 0;
  std::int64_t burn = 0, thin = 1, chain_offset = 0;
  bool adapt = true;  ///< Robbins-Monro on each chain's step factor toward 0.234 in burn-in
  /// Called between steps with (steps done, total) when set (progress bars).
  std::function<void(std::int64_t, std::int64_t)> progress;
};

/// x0 [C,D] float64; samples [C,S,D], logp [C,S], accept_rate [C], step_size [C]
/// (float64), S = ceil(n_steps / thin).
KX_API void metropolis(const Target& target, const Array& x0, std::int64_t n_steps,
                       const MetropolisOptions& opt, const Array& samples, const Array& logp,
                       const Array& accept_rate, const Array& step_size);

/// Simulated annealing with the same MH kernel (spec A5) on the energy
/// E = -logp(target): step t accepts with min(1, exp(-(E_y - E_x) / T_t))
/// (the proposal ratio is not tempered). temperatures [n_steps] > 0 (float64);
/// opt.burn must be 0 and opt.adapt is ignored. Outputs: best_x [C,D] and
/// best_energy [C] (the lowest energy each chain visited, x0 included),
/// energy [C,n_steps] (after each step), accept_rate [C].
KX_API void anneal(const Target& target, const Array& x0, const Array& temperatures,
                   const MetropolisOptions& opt, const Array& best_x, const Array& best_energy,
                   const Array& energy, const Array& accept_rate);

/// Simulated annealing of an Ising spin glass E(s) = -sum_{i<j} J_ij s_i s_j
/// - sum_i h_i s_i over s in {-1,+1}^N: sweeps of single-spin Metropolis
/// flips in site order at temperature temperatures[t] (sweep t; one uniform
/// per site: U0 of block t*N + i of chain chain_offset + c). J [N,N]
/// symmetric with a zero diagonal, h [N] (float64); spins [C,N] int8 +-1 in
/// (start) and out (the last state); best [C,N] int8, best_energy [C],
/// energy [C,n_sweeps].
KX_API void anneal_spins(const Array& J, const Array& h, const Array& spins,
                         const Array& temperatures, std::uint64_t seed, std::int64_t chain_offset,
                         const Array& best, const Array& best_energy, const Array& energy);

/// Gibbs sampling with a caller's full conditionals: fn(x [C,N], i, logits
/// [C,S]) fills the logits of coordinate i for every chain given the others.
/// x0 [C,N] int64 in [0, S); scan "systematic" (i = 0..N-1 each sweep) or
/// random (update j of sweep t picks i = floor(U1 N) of block t*N + j of the
/// stream shared by all chains, chain number 2^64 - 1); the
/// draw uses U0 of block t*N + j of chain chain_offset + c. samples [C,R,N]
/// int64 after every record_every-th sweep, R = n_sweeps / record_every.
KX_API void gibbs(const std::function<void(const std::int64_t*, std::int64_t, std::int64_t,
                                           std::int64_t, std::int64_t, double*)>& fn,
                  const Array& x0, std::int64_t n_sweeps, std::int64_t n_states, bool random_scan,
                  std::uint64_t seed, std::int64_t chain_offset, std::int64_t record_every,
                  const Array& samples);

struct LatticeOptions {
  double beta = 0.0;
  double h = 0.0;  ///< Ising external field
  std::int64_t n_sweeps = 0, record_every = 1, chain_offset = 0;
  std::uint64_t seed = 0;
  int init = 0;  ///< 0 random, 1 up (+1 / state 0), 2 down (-1), 3 the given spins
};

/// Heat-bath checkerboard Gibbs on H x W periodic lattices (H, W even):
/// spins [C,H,W] int8 (+-1; in: the start with init = 3, out: the last
/// state); magnetization, energy [C,S] float64 per site, S = n_sweeps / record_every.
KX_API void gibbs_ising(const Array& spins, const LatticeOptions& opt, const Array& magnetization,
                        const Array& energy);
/// The q-state Potts model (states 0..q-1 in spins).
KX_API void gibbs_potts(const Array& spins, std::int64_t q, const LatticeOptions& opt,
                        const Array& magnetization, const Array& energy);


// ---------------------------------------------------------------------------
// Discrete samplers (helper C; csrc/api/samplers_discrete.cpp,
// csrc/cpu/samplers_discrete.cpp, math in kexue/samplers/discrete.hpp).

struct MrfOptions {
  std::int64_t n_sweeps = 0, record_every = 1, chain_offset = 0;
  std::uint64_t seed = 0;
  bool init_given = false;  ///< states holds the starting states (else random)
};

/// Heat-bath Gibbs on a pairwise discrete MRF, p(x) ~ exp(sum_i unary[i, x_i]
/// + sum_e pairwise_e[x_u, x_v]) with edges[e] = (u, v): unary [N,S] float64,
/// edges [E,2] int32/int64, pairwise [S,S] (shared) or [E,S,S] float64.
/// The nodes are coloured greedily (index order, smallest colour no earlier
/// neighbour has); a sweep updates colour 0, 1, ... in turn. Node i in sweep
/// s of global chain g = chain_offset + c draws with U0 of block s * N + i;
/// the random start uses U0 of block 2^63 + i (state floor(U0 * S)).
/// states [C,N] int32 (in: the start when init_given; out: the last state);
/// samples [C,R,N] int32, R = n_sweeps / record_every (the state after each
/// sweep s with (s + 1) % record_every == 0); counts [N,S] int64 (how often
/// node i was in state a over all chains and recorded sweeps).
KX_API void gibbs_mrf(const Array& unary, const Array& edges, const Array& pairwise,
                      const MrfOptions& opt, const Array& states, const Array& samples,
                      const Array& counts);

/// Simulated annealing of the same MRF's energy E(x) = -(sum_i unary[i, x_i]
/// + sum_e pairwise_e[x_u, x_v]) (the sums in index order, E = minus their
/// total) with single-site Metropolis moves: sweep t visits i = 0..N-1 and
/// proposes b = (a + 1 + j) mod S for the current state a, j = min(floor(U1
/// (S - 1)), S - 2), a uniform pick among the other states; with d =
/// (unary[i,b] - unary[i,a]) + the edges touching i in edge order
/// (pairwise_e[b, x_v] - pairwise_e[a, x_v] at u = i, pairwise_e[x_u, b] -
/// pairwise_e[x_u, a] at v = i) and dE = -d, it moves iff log(U0) < -dE /
/// T_t; U0, U1 of block t N + i of chain chain_offset + c. E is then a
/// running sum (E += dE), and the best (strictly lowest E) state is kept.
/// states [C,N] int32 in [0, S) (in: the start; out: the last state);
/// temperatures [n] float64 > 0; best [C,N] int32, best_energy [C],
/// energy [C,n] (E after each sweep).
KX_API void anneal_mrf(const Array& unary, const Array& edges, const Array& pairwise,
                       const Array& states, const Array& temperatures, std::uint64_t seed,
                       std::int64_t chain_offset, const Array& best, const Array& best_energy,
                       const Array& energy);

struct LdaOptions {
  double alpha = 0.1, eta = 0.01;
  std::int64_t n_iter = 500;
  std::uint64_t seed = 0;
  /// false: AD-LDA over min(64, D) fixed blocks of documents (threaded);
  /// true: standard sequential collapsed Gibbs (one block, one thread).
  bool exact = false;
  /// Called between iterations with (iterations done, n_iter) when set.
  std::function<void(std::int64_t, std::int64_t)> progress;
};

/// Collapsed Gibbs sampling for LDA. indptr [D+1] int64 and words [T]
/// int32/int64: the tokens of document d are words[indptr[d] : indptr[d+1]],
/// ids in [0, V) with V = topic_word.dim(1). Token t (corpus order) starts
/// in topic floor(U0 * K) of block 2^63 + t and in iteration it draws with
/// U0 of block it * T + t (chain 0). Outputs: topics [T] int32 (the last
/// assignment), doc_topic [D,K], topic_word [K,V] int32 counts, loglik
/// [n_iter] float64 (log p(w | z) after each iteration).
KX_API void lda(const Array& indptr, const Array& words, std::int64_t n_topics,
                const LdaOptions& opt, const Array& topics, const Array& doc_topic,
                const Array& topic_word, const Array& loglik);

}  // namespace samplers
}  // namespace kexue
