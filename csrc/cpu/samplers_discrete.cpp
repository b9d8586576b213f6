// csrc/cpu/samplers_discrete.cpp - the CPU backend of the discrete samplers.
//
// gibbs_mrf: greedy colouring, then colour classes in turn; the nodes of one
// class are conditionally independent, and node i of sweep s (chain g) draws
// with U0 of block s * N + i, so the threads may run chains (one chain per
// task, all sweeps) or the nodes of a class (one task per chain and node
// range, a barrier between classes) and the result is the same bit for bit.
//
// lda: AD-LDA over a fixed partition of the documents into P = min(64, D)
// blocks (exact: P = 1). In iteration it, every block samples its tokens in
// corpus order against its own copy of the topic-word counts n_wk and topic
// counts n_k as they were at the start of the iteration (updating that copy
// as it goes: collapsed Gibbs within the block); the copies' changes are
// added to the global counts at the end of the iteration. Integer sums do
// not depend on their order, so the result is the same for any thread
// count. Copies are not kept per block: a few "slots" (about one per thread)
// each hold the iteration's counts; a block that ran in a slot undoes its
// changes there (from its tokens' old and new topics), so the slot serves
// the next block. At the end of the iteration the word-topic counts take the
// changes of all tokens, word by word (tokens grouped by word, word ranges in
// parallel, fused with the log-likelihood sums), and n_k the blocks' deltas.
//
// Randomness (chain 0 of `seed`): token t (corpus order) starts in topic
// floor(U0 * K) of block 2^63 + t and draws with U0 of block it * T + t in
// iteration it. loglik: log p(w | z) after each iteration, lgamma(n + eta)
// from a table, summed over words in fixed chunks (thread-independent).
#include "cpu/samplers_discrete.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <vector>

#include "kexue/core/parallel.hpp"
#include "kexue/samplers/discrete.hpp"
#include "kexue/samplers/rng.hpp"

namespace kexue {
namespace cpu {

namespace {

constexpr std::uint64_t kInitBlock = 1ull << 63;

inline double block_u0(std::uint64_t n, std::uint64_t g, std::uint64_t seed) {
  const samplers::Block b = samplers::block(n, g, seed);
  return samplers::uniform53(b.w[0], b.w[1]);
}

// ============================================================================
// gibbs_mrf

struct Graph {
  std::int64_t N = 0, S = 0;
  std::vector<std::int64_t> off;    ///< [N+1] incidence offsets (edges ascending)
  std::vector<std::int64_t> nb;     ///< [2E] the neighbour
  std::vector<std::int64_t> base;   ///< [2E] offset of the matrix M in mats: l[a] += M[x_nb * S + a]
  std::vector<double> mats;         ///< pairwise matrices and their transposes
  std::vector<std::int64_t> class_off, class_nodes;  ///< colour classes (nodes ascending)
};

Graph build_graph(const MrfPlan& p) {
  Graph G;
  const std::int64_t N = p.N, S = p.S, E = p.E, SS = S * S;
  G.N = N;
  G.S = S;
  const std::int64_t nm = p.shared ? 1 : E;
  // mats = [P_0 .. P_{nm-1}, P_0^T .. P_{nm-1}^T]
  G.mats.resize(static_cast<std::size_t>(2 * nm * SS));
  std::copy(p.pairwise, p.pairwise + nm * SS, G.mats.begin());
  for (std::int64_t m = 0; m < nm; ++m)
    for (std::int64_t a = 0; a < S; ++a)
      for (std::int64_t b = 0; b < S; ++b)
        G.mats[static_cast<std::size_t>((nm + m) * SS + b * S + a)] = p.pairwise[m * SS + a * S + b];
  G.off.assign(static_cast<std::size_t>(N + 1), 0);
  for (std::int64_t e = 0; e < E; ++e) {
    ++G.off[static_cast<std::size_t>(p.edges[2 * e] + 1)];
    ++G.off[static_cast<std::size_t>(p.edges[2 * e + 1] + 1)];
  }
  for (std::int64_t i = 0; i < N; ++i) G.off[static_cast<std::size_t>(i + 1)] += G.off[static_cast<std::size_t>(i)];
  G.nb.resize(static_cast<std::size_t>(2 * E));
  G.base.resize(static_cast<std::size_t>(2 * E));
  std::vector<std::int64_t> fill(G.off.begin(), G.off.end() - 1);
  for (std::int64_t e = 0; e < E; ++e) {
    const std::int64_t u = p.edges[2 * e], v = p.edges[2 * e + 1], m = p.shared ? 0 : e;
    // at u: l[a] += P_e[a, x_v] = P_e^T[x_v, a]; at v: l[a] += P_e[x_u, a]
    std::size_t q = static_cast<std::size_t>(fill[static_cast<std::size_t>(u)]++);
    G.nb[q] = v;
    G.base[q] = (nm + m) * SS;
    q = static_cast<std::size_t>(fill[static_cast<std::size_t>(v)]++);
    G.nb[q] = u;
    G.base[q] = m * SS;
  }
  // Greedy colouring in index order: the smallest colour no earlier neighbour has.
  std::vector<std::int64_t> colour(static_cast<std::size_t>(N), -1), mark;
  std::int64_t ncol = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t deg = G.off[static_cast<std::size_t>(i + 1)] - G.off[static_cast<std::size_t>(i)];
    if (static_cast<std::int64_t>(mark.size()) < deg + 1) mark.resize(static_cast<std::size_t>(deg + 1), -1);
    for (std::int64_t q = G.off[static_cast<std::size_t>(i)]; q < G.off[static_cast<std::size_t>(i + 1)]; ++q) {
      const std::int64_t c = colour[static_cast<std::size_t>(G.nb[static_cast<std::size_t>(q)])];
      if (c >= 0 && c <= deg) mark[static_cast<std::size_t>(c)] = i;
    }
    std::int64_t c = 0;
    while (mark[static_cast<std::size_t>(c)] == i) ++c;
    colour[static_cast<std::size_t>(i)] = c;
    ncol = std::max(ncol, c + 1);
  }
  G.class_off.assign(static_cast<std::size_t>(ncol + 1), 0);
  for (std::int64_t i = 0; i < N; ++i) ++G.class_off[static_cast<std::size_t>(colour[static_cast<std::size_t>(i)] + 1)];
  for (std::int64_t c = 0; c < ncol; ++c)
    G.class_off[static_cast<std::size_t>(c + 1)] += G.class_off[static_cast<std::size_t>(c)];
  G.class_nodes.resize(static_cast<std::size_t>(N));
  std::vector<std::int64_t> cf(G.class_off.begin(), G.class_off.end() - 1);
  for (std::int64_t i = 0; i < N; ++i)
    G.class_nodes[static_cast<std::size_t>(cf[static_cast<std::size_t>(colour[static_cast<std::size_t>(i)])]++)] = i;
  return G;
}

/// Heat-bath update of node i of chain g (states x [N]) in sweep s; l: [S] scratch.
inline void update_node(const Graph& G, const double* unary, std::int32_t* x, std::int64_t i,
                        std::uint64_t s, std::uint64_t g, std::uint64_t seed, double* l) {
  const std::int64_t S = G.S;
  const double* ui = unary + i * S;
  for (std::int64_t a = 0; a < S; ++a) l[a] = ui[a];
  const std::int64_t q1 = G.off[static_cast<std::size_t>(i + 1)];
  for (std::int64_t q = G.off[static_cast<std::size_t>(i)]; q < q1; ++q) {
    const double* row = G.mats.data() + G.base[static_cast<std::size_t>(q)] +
                        static_cast<std::int64_t>(x[G.nb[static_cast<std::size_t>(q)]]) * S;
    for (std::int64_t a = 0; a < S; ++a) l[a] = l[a] + row[a];
  }
  const double u = block_u0(s * static_cast<std::uint64_t>(G.N) + static_cast<std::uint64_t>(i), g, seed);
  x[i] = static_cast<std::int32_t>(samplers::draw_logits(l, S, u));
}

void record_mrf(const MrfPlan& p, std::int64_t c, std::int64_t s, const std::int32_t* x) {
  if ((s + 1) % p.opt->record_every != 0) return;
  const std::int64_t r = (s + 1) / p.opt->record_every - 1;
  if (r >= p.R) return;
  std::copy(x, x + p.N, p.samples + (c * p.R + r) * p.N);
}

}  // namespace

void sampler_anneal_mrf(const MrfAnnealPlan& a) {
  const MrfPlan& p = *a.mrf;
  const std::int64_t N = p.N, S = p.S, E = p.E, T = a.T;
  const Graph G = build_graph(p);
  parallel_for(a.C, 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c) {
      std::int32_t* x = a.states + c * N;
      const std::uint64_t g = static_cast<std::uint64_t>(a.chain_offset + c);
      double tot = 0.0;  // sum_i unary[i, x_i] + sum_e P_e[x_u, x_v], in order
      for (std::int64_t i = 0; i < N; ++i) tot += p.unary[i * S + x[i]];
      for (std::int64_t e = 0; e < E; ++e) {
        const double* P = p.pairwise + (p.shared ? 0 : e * S * S);
        tot += P[static_cast<std::int64_t>(x[p.edges[2 * e]]) * S + x[p.edges[2 * e + 1]]];
      }
      double En = -tot;
      a.best_energy[c] = En;
      std::copy(x, x + N, a.best + c * N);
      for (std::int64_t t = 0; t < T; ++t) {
        const double temp = a.temp[t];
        for (std::int64_t i = 0; i < N; ++i) {
          const samplers::Block k = samplers::block(static_cast<std::uint64_t>(t * N + i), g, a.seed);
          const double u0 = samplers::uniform53(k.w[0], k.w[1]), u1 = samplers::uniform53(k.w[2], k.w[3]);
          const std::int64_t xa = x[i];
          std::int64_t j = static_cast<std::int64_t>(u1 * static_cast<double>(S - 1));
          if (j > S - 2) j = S - 2;
          const std::int64_t xb = (xa + 1 + j) % S;
          double d = p.unary[i * S + xb] - p.unary[i * S + xa];
          for (std::int64_t q = G.off[static_cast<std::size_t>(i)]; q < G.off[static_cast<std::size_t>(i + 1)]; ++q) {
            const double* row = G.mats.data() + G.base[static_cast<std::size_t>(q)] +
                                static_cast<std::int64_t>(x[G.nb[static_cast<std::size_t>(q)]]) * S;
            d += row[xb] - row[xa];
          }
          const double dE = -d;
          if (std::log(u0) < -dE / temp) {
            x[i] = static_cast<std::int32_t>(xb);
            En += dE;
            if (En < a.best_energy[c]) {
              a.best_energy[c] = En;
              std::copy(x, x + N, a.best + c * N);
            }
          }
        }
        a.energy[c * T + t] = En;
      }
    }
  });
}

void sampler_gibbs_mrf(const MrfPlan& p) {
  const std::int64_t N = p.N, S = p.S, C = p.C;
  const std::uint64_t seed = p.opt->seed;
  const std::uint64_t g0 = static_cast<std::uint64_t>(p.opt->chain_offset);
  const Graph G = build_graph(p);
  const std::int64_t ncol = static_cast<std::int64_t>(G.class_off.size()) - 1;
  if (!p.opt->init_given) {
    parallel_for(C, 16, [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t c = c0; c < c1; ++c)
        for (std::int64_t i = 0; i < N; ++i)
          p.states[c * N + i] = static_cast<std::int32_t>(samplers::uniform_index(
              block_u0(kInitBlock + static_cast<std::uint64_t>(i), g0 + static_cast<std::uint64_t>(c), seed), S));
    });
  }
  const std::int64_t n_sweeps = p.opt->n_sweeps;
  // Chains per task when there are enough of them (or the graph is small);
  // else the nodes of each class over tasks. Same result either way.
  const bool by_chain = C >= get_num_threads() || N * S < 8192;
  if (by_chain) {
    parallel_for(C, 1, [&](std::int64_t c0, std::int64_t c1) {
      std::vector<double> l(static_cast<std::size_t>(S));
      for (std::int64_t c = c0; c < c1; ++c) {
        std::int32_t* x = p.states + c * N;
        const std::uint64_t g = g0 + static_cast<std::uint64_t>(c);
        for (std::int64_t s = 0; s < n_sweeps; ++s) {
          for (std::int64_t k = 0; k < ncol; ++k)
            for (std::int64_t j = G.class_off[static_cast<std::size_t>(k)];
                 j < G.class_off[static_cast<std::size_t>(k + 1)]; ++j)
              update_node(G, p.unary, x, G.class_nodes[static_cast<std::size_t>(j)],
                          static_cast<std::uint64_t>(s), g, seed, l.data());
          record_mrf(p, c, s, x);
        }
      }
    });
  } else {
    constexpr std::int64_t kNodes = 256;
    for (std::int64_t s = 0; s < n_sweeps; ++s) {
      for (std::int64_t k = 0; k < ncol; ++k) {
        const std::int64_t j0 = G.class_off[static_cast<std::size_t>(k)];
        const std::int64_t nk = G.class_off[static_cast<std::size_t>(k + 1)] - j0;
        const std::int64_t nch = (nk + kNodes - 1) / kNodes;
        parallel_for(C * nch, 1, [&](std::int64_t t0, std::int64_t t1) {
          std::vector<double> l(static_cast<std::size_t>(S));
          for (std::int64_t t = t0; t < t1; ++t) {
            const std::int64_t c = t / nch, b = t % nch;
            std::int32_t* x = p.states + c * N;
            const std::int64_t e = std::min(nk, (b + 1) * kNodes);
            for (std::int64_t j = b * kNodes; j < e; ++j)
              update_node(G, p.unary, x, G.class_nodes[static_cast<std::size_t>(j0 + j)],
                          static_cast<std::uint64_t>(s), g0 + static_cast<std::uint64_t>(c), seed, l.data());
          }
        });
      }
      for (std::int64_t c = 0; c < C; ++c) record_mrf(p, c, s, p.states + c * N);
    }
  }
  // Marginal counts over chains and recorded sweeps (node ranges per task).
  std::fill(p.counts, p.counts + N * S, std::int64_t{0});
  const std::int64_t rows = C * p.R;
  parallel_for(N, 256, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int32_t* x = p.samples + r * N;
      for (std::int64_t i = i0; i < i1; ++i) ++p.counts[i * S + x[i]];
    }
  });
}

// ============================================================================
// lda

namespace {

/// One copy of the topic-word and topic counts (the counts of the iteration
/// `tag`, between blocks) with the cached 1 / (n_k + V eta).
struct Slot {
  std::vector<std::int32_t> nwk;  ///< [V,K]
  std::vector<std::int32_t> nk;   ///< [K]
  std::vector<double> inv, cum;   ///< [K]
  std::int64_t tag = -1;
};

constexpr std::int64_t kWordChunk = 2048;  ///< words per task of the merge and log-likelihood

struct Lda {
  const LdaPlan& p;
  std::int64_t D, T, K, V, P, nwc;
  double alpha, eta, Veta;
  std::uint64_t seed;
  std::int32_t* z;                  ///< [T] current topics (the output)
  std::vector<std::int32_t> zprev;  ///< [T] topics at the start of the iteration (AD-LDA)
  std::vector<std::int32_t> G;      ///< [V,K] topic-word counts
  std::vector<std::int32_t> nk;     ///< [K]
  std::vector<std::int32_t> dnk;    ///< [P,K] per-block change of n_k
  std::vector<std::int64_t> woff;   ///< [V+1] tokens by word: tok[woff[w] .. woff[w+1])
  std::vector<std::int32_t> tok;    ///< [T]
  std::vector<double> lg;           ///< lgamma(n + eta), n = 0 .. size-1
  std::vector<double> part;         ///< [nwc, K] partial log-likelihood sums

  std::mutex m;
  std::vector<std::unique_ptr<Slot>> slots;
  std::vector<Slot*> free_slots;

  explicit Lda(const LdaPlan& plan) : p(plan) {
    D = p.D;
    T = p.T;
    K = p.K;
    V = p.V;
    P = lda_blocks(D, p.opt->exact);
    nwc = (V + kWordChunk - 1) / kWordChunk;
    alpha = p.opt->alpha;
    eta = p.opt->eta;
    Veta = static_cast<double>(V) * eta;
    seed = p.opt->seed;
    z = p.topics;
  }

  std::int64_t doc_begin(std::int64_t b) const { return b * D / P; }

  void fill_inv(const std::int32_t* n, double* inv) const {
    for (std::int64_t k = 0; k < K; ++k) inv[k] = 1.0 / (static_cast<double>(n[k]) + Veta);
  }

  Slot* acquire(std::int64_t tag) {
    Slot* s = nullptr;
    {
      std::lock_guard<std::mutex> lk(m);
      if (!free_slots.empty()) {
        s = free_slots.back();
        free_slots.pop_back();
      } else {
        slots.emplace_back(new Slot());
        s = slots.back().get();
      }
    }
    if (s->tag != tag) {
      s->nwk.assign(G.begin(), G.end());
      s->nk.assign(nk.begin(), nk.end());
      s->inv.resize(static_cast<std::size_t>(K));
      s->cum.resize(static_cast<std::size_t>(K));
      fill_inv(s->nk.data(), s->inv.data());
      s->tag = tag;
    }
    return s;
  }

  void release(Slot* s) {
    std::lock_guard<std::mutex> lk(m);
    free_slots.push_back(s);
  }

  /// Collapsed Gibbs over the tokens of block b in iteration it, against
  /// the counts nwk [V,K], nkk [K] (with inv [K]) that it updates.
  void sample_block(std::int64_t b, std::int64_t it, std::int32_t* KX_RESTRICT nwk,
                    std::int32_t* KX_RESTRICT nkk, double* KX_RESTRICT inv,
                    double* KX_RESTRICT cum, std::int32_t* KX_RESTRICT prev) const {
    const std::int64_t d0 = doc_begin(b), d1 = doc_begin(b + 1), nK = K;
    const std::uint64_t base = static_cast<std::uint64_t>(it) * static_cast<std::uint64_t>(T);
    const std::uint64_t sd = seed;
    const double a = alpha, e = eta, ve = Veta;
    const std::int64_t* KX_RESTRICT ip = p.indptr;
    const std::int32_t* KX_RESTRICT words = p.words;
    std::int32_t* KX_RESTRICT zz = z;
    constexpr std::int64_t kU = 128;
    double ubuf[kU];
    for (std::int64_t d = d0; d < d1; ++d) {
      std::int32_t* KX_RESTRICT nd = p.doc_topic + d * nK;
      const std::int64_t t1 = ip[d + 1];
      for (std::int64_t tb = ip[d]; tb < t1; tb += kU) {
        // the uniforms of up to kU tokens first (independent Philox blocks)
        const std::int64_t tn = std::min(t1, tb + kU);
        for (std::int64_t t = tb; t < tn; ++t) ubuf[t - tb] = block_u0(base + static_cast<std::uint64_t>(t), 0, sd);
        for (std::int64_t t = tb; t < tn; ++t) {
          const std::int32_t k0 = zz[t];
          if (prev) prev[t] = k0;
          std::int32_t* KX_RESTRICT nw = nwk + static_cast<std::int64_t>(words[t]) * nK;
          --nd[k0];
          --nw[k0];
          inv[k0] = 1.0 / (static_cast<double>(--nkk[k0]) + ve);
          samplers::lda_cumulative(nd, nw, inv, a, e, nK, cum);
          const std::int32_t k1 = static_cast<std::int32_t>(samplers::draw_cumulative(cum, nK, ubuf[t - tb]));
          ++nd[k1];
          ++nw[k1];
          inv[k1] = 1.0 / (static_cast<double>(++nkk[k1]) + ve);
          zz[t] = k1;
        }
      }
    }
  }

  /// Undo block b's changes in the slot; its change of n_k goes to dnk[b].
  void revert_block(std::int64_t b, Slot& s) {
    const std::int64_t t0 = p.indptr[doc_begin(b)], t1 = p.indptr[doc_begin(b + 1)];
    std::int32_t* dn = dnk.data() + b * K;
    std::fill(dn, dn + K, 0);
    std::int32_t* nw = s.nwk.data();
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int32_t kn = z[t], ko = zprev[static_cast<std::size_t>(t)];
      if (kn == ko) continue;
      const std::int64_t row = static_cast<std::int64_t>(p.words[t]) * K;
      --nw[row + kn];
      ++nw[row + ko];
      ++dn[kn];
      --dn[ko];
    }
    for (std::int64_t k = 0; k < K; ++k) s.nk[static_cast<std::size_t>(k)] -= dn[k];
    fill_inv(s.nk.data(), s.inv.data());
  }

  void init() {
    parallel_for(T, 8192, [&](std::int64_t t0, std::int64_t t1) {
      for (std::int64_t t = t0; t < t1; ++t)
        z[t] = static_cast<std::int32_t>(
            samplers::uniform_index(block_u0(kInitBlock + static_cast<std::uint64_t>(t), 0, seed), K));
    });
    parallel_for(D, 256, [&](std::int64_t d0, std::int64_t d1) {
      for (std::int64_t d = d0; d < d1; ++d) {
        std::int32_t* nd = p.doc_topic + d * K;
        std::fill(nd, nd + K, 0);
        for (std::int64_t t = p.indptr[d]; t < p.indptr[d + 1]; ++t) ++nd[z[t]];
      }
    });
    G.assign(static_cast<std::size_t>(V * K), 0);
    nk.assign(static_cast<std::size_t>(K), 0);
    for (std::int64_t t = 0; t < T; ++t) {
      ++G[static_cast<std::size_t>(static_cast<std::int64_t>(p.words[t]) * K + z[t])];
      ++nk[static_cast<std::size_t>(z[t])];
    }
    part.assign(static_cast<std::size_t>(nwc * K), 0.0);
    // lgamma(n + eta) for the counts a topic-word cell can reach: up to the
    // most frequent word's count (capped)
    std::int64_t maxfreq = 0;
    {
      std::vector<std::int64_t> freq(static_cast<std::size_t>(V), 0);
      for (std::int64_t t = 0; t < T; ++t)
        maxfreq = std::max(maxfreq, ++freq[static_cast<std::size_t>(p.words[t])]);
    }
    const std::int64_t nt = std::min<std::int64_t>(maxfreq, std::int64_t{1} << 20) + 1;
    lg.resize(static_cast<std::size_t>(nt));
    for (std::int64_t n = 0; n < nt; ++n) lg[static_cast<std::size_t>(n)] = std::lgamma(static_cast<double>(n) + eta);
    if (P > 1) {
      zprev.resize(static_cast<std::size_t>(T));
      dnk.assign(static_cast<std::size_t>(P * K), 0);
      woff.assign(static_cast<std::size_t>(V + 1), 0);
      for (std::int64_t t = 0; t < T; ++t) ++woff[static_cast<std::size_t>(p.words[t] + 1)];
      for (std::int64_t w = 0; w < V; ++w) woff[static_cast<std::size_t>(w + 1)] += woff[static_cast<std::size_t>(w)];
      tok.resize(static_cast<std::size_t>(T));
      std::vector<std::int64_t> f(woff.begin(), woff.end() - 1);
      for (std::int64_t t = 0; t < T; ++t)
        tok[static_cast<std::size_t>(f[static_cast<std::size_t>(p.words[t])]++)] = static_cast<std::int32_t>(t);
    }
  }

  double lgamma_pos(double x) const { return x > 1048576.0 ? samplers::lgamma_large(x) : std::lgamma(x); }

  /// Word chunk c: apply the iteration's changes to G (AD-LDA: merge) and
  /// sum lgamma(n_wk + eta) over its words (w ascending) into part[c].
  void merge_chunk(std::int64_t c, bool merge) {
    const std::int64_t w0 = c * kWordChunk, w1 = std::min(V, w0 + kWordChunk);
    if (merge) {
      for (std::int64_t w = w0; w < w1; ++w) {
        std::int32_t* row = G.data() + w * K;
        for (std::int64_t q = woff[static_cast<std::size_t>(w)]; q < woff[static_cast<std::size_t>(w + 1)]; ++q) {
          const std::int32_t t = tok[static_cast<std::size_t>(q)];
          const std::int32_t kn = z[t], ko = zprev[static_cast<std::size_t>(t)];
          ++row[kn];
          --row[ko];
        }
      }
    }
    double* s = part.data() + c * K;
    std::fill(s, s + K, 0.0);
    const std::int64_t ntab = static_cast<std::int64_t>(lg.size());
    for (std::int64_t w = w0; w < w1; ++w) {
      const std::int32_t* row = G.data() + w * K;
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t n = row[k];
        s[k] += n < ntab ? lg[static_cast<std::size_t>(n)] : samplers::lgamma_large(static_cast<double>(n) + eta);
      }
    }
  }

  /// log p(w | z) = K (lgamma(V eta) - V lgamma(eta))
  ///   + sum_k [sum_w lgamma(n_kw + eta) - lgamma(n_k + V eta)]
  /// (the sum over w in chunks of 2048 words, the chunks then k ascending).
  double loglik() const {
    double ll = static_cast<double>(K) * (lgamma_pos(Veta) - static_cast<double>(V) * std::lgamma(eta));
    for (std::int64_t k = 0; k < K; ++k) {
      double s = 0.0;
      for (std::int64_t c = 0; c < nwc; ++c) s += part[static_cast<std::size_t>(c * K + k)];
      ll += s - lgamma_pos(static_cast<double>(nk[static_cast<std::size_t>(k)]) + Veta);
    }
    return ll;
  }

  void finish_iteration(std::int64_t it, bool merge) {
    parallel_for(nwc, 1, [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t c = c0; c < c1; ++c) merge_chunk(c, merge);
    });
    p.loglik[it] = loglik();
    if (p.opt->progress) p.opt->progress(it + 1, p.opt->n_iter);
  }

  void run() {
    init();
    const std::int64_t n_iter = p.opt->n_iter;
    if (P == 1) {
      // Exact collapsed Gibbs: the one block samples against the global counts.
      std::vector<double> inv(static_cast<std::size_t>(K)), cum(inv.size());
      fill_inv(nk.data(), inv.data());
      for (std::int64_t it = 0; it < n_iter; ++it) {
        sample_block(0, it, G.data(), nk.data(), inv.data(), cum.data(), nullptr);
        finish_iteration(it, false);
      }
    } else {
      for (std::int64_t it = 0; it < n_iter; ++it) {
        parallel_for(P, 1, [&](std::int64_t b0, std::int64_t b1) {
          Slot* s = acquire(it);
          for (std::int64_t b = b0; b < b1; ++b) {
            sample_block(b, it, s->nwk.data(), s->nk.data(), s->inv.data(), s->cum.data(), zprev.data());
            revert_block(b, *s);
          }
          release(s);
        });
        for (std::int64_t b = 0; b < P; ++b)
          for (std::int64_t k = 0; k < K; ++k) nk[static_cast<std::size_t>(k)] += dnk[static_cast<std::size_t>(b * K + k)];
        finish_iteration(it, true);
      }
    }
    // topic_word [K,V] = G^T
    parallel_for(K, 1, [&](std::int64_t k0, std::int64_t k1) {
      for (std::int64_t k = k0; k < k1; ++k)
        for (std::int64_t w = 0; w < V; ++w)
          p.topic_word[k * V + w] = G[static_cast<std::size_t>(w * K + k)];
    });
  }
};

}  // namespace

void sampler_lda(const LdaPlan& p) {
  Lda lda(p);
  lda.run();
}

}  // namespace cpu
}  // namespace kexue
