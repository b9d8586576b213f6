// csrc/api/samplers_discrete.cpp - the front door of the discrete samplers
// (kexue::samplers::gibbs_mrf, anneal_mrf, lda): every check, then the
// one dispatch point (the CPU backend).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "api/checks.hpp"
#include "cpu/samplers_discrete.hpp"
#include "kexue/samplers.hpp"

namespace kexue {
namespace samplers {

namespace {

constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kI32Max = std::numeric_limits<std::int32_t>::max();

std::int64_t index_at(const Array& a, std::int64_t i) {
  return a.dtype == DType::Int32 ? static_cast<std::int64_t>(a.ptr<std::int32_t>()[i])
                                 : a.ptr<std::int64_t>()[i];
}

/// Every entry finite; the message names the first bad one by its index.
void check_finite(const char* op, const Array& x, const char* name) {
  const double* v = x.ptr<double>();
  const std::int64_t n = x.size();
  for (std::int64_t i = 0; i < n; ++i) {
    if (std::isfinite(v[i])) continue;
    std::int64_t rem = i;
    std::vector<std::int64_t> idx(static_cast<std::size_t>(x.ndim()));
    for (int a = x.ndim() - 1; a >= 0; --a) {
      idx[static_cast<std::size_t>(a)] = rem % x.dim(a);
      rem /= x.dim(a);
    }
    fail(ErrorKind::Value, op, name, " must be finite (log-potentials; use a large negative number for a",
         " forbidden state); got ", v[i], " at ", api::shape_str(idx));
  }
}

/// The MRF's arrays (shared by gibbs_mrf and anneal_mrf): unary [N,S] with
/// N >= 1, S >= 2; edges [E,2] in range, no self-loop (copied to ed as int64);
/// pairwise [S,S] or [E,S,S]; potentials finite. Fills plan's N, S, E,
/// unary, edges (= ed), pairwise and shared.
void check_mrf(const char* op, const Array& unary, const Array& edges, const Array& pairwise,
               std::vector<std::int64_t>& ed, cpu::MrfPlan& p) {
  api::check_ndim(op, unary, "unary", 2, "[N,S]");
  api::check_dtype(op, unary, "unary", DType::Float64);
  const std::int64_t N = unary.dim(0), S = unary.dim(1);
  KX_CHECK_VALUE(N >= 1, op, "unary must have N >= 1 nodes (its first axis); got shape ",
                 unary.shape_str());
  KX_CHECK_VALUE(S >= 2, op, "unary must have S >= 2 states per node (its second axis); got shape ",
                 unary.shape_str());
  KX_CHECK_VALUE(S <= kI32Max, op, "unary has too many states: ", S);
  api::check_ndim(op, edges, "edges", 2, "[E,2]");
  api::check_index(op, edges, "edges");
  KX_CHECK_VALUE(edges.dim(1) == 2, op, "edges must have shape [E,2] (node pairs (u, v)); got shape ",
                 edges.shape_str());
  const std::int64_t E = edges.dim(0);
  KX_CHECK_VALUE(pairwise.ndim() == 2 || pairwise.ndim() == 3, op,
                 "pairwise must be 2-D [S,S] (shared by every edge) or 3-D [E,S,S]; got shape ",
                 pairwise.shape_str());
  api::check_ndim(op, pairwise, "pairwise", pairwise.ndim(), "[S,S] or [E,S,S]");
  api::check_dtype(op, pairwise, "pairwise", DType::Float64);
  const bool shared = pairwise.ndim() == 2;
  if (shared)
    KX_CHECK_VALUE(pairwise.dim(0) == S && pairwise.dim(1) == S, op, "pairwise must have shape (", S,
                   ", ", S, ") [S,S] with S = ", S, " (unary's states) or (", E, ", ", S, ", ", S,
                   ") [E,S,S]; got ", pairwise.shape_str());
  else
    KX_CHECK_VALUE(pairwise.dim(0) == E && pairwise.dim(1) == S && pairwise.dim(2) == S, op,
                   "pairwise must have shape (", E, ", ", S, ", ", S, ") [E,S,S] with E = ", E,
                   " (edges) and S = ", S, " (unary's states), or (", S, ", ", S, ") [S,S]; got ",
                   pairwise.shape_str());
  check_finite(op, unary, "unary");
  check_finite(op, pairwise, "pairwise");
  ed.assign(static_cast<std::size_t>(2 * E), 0);
  for (std::int64_t e = 0; e < E; ++e) {
    const std::int64_t u = index_at(edges, 2 * e), v = index_at(edges, 2 * e + 1);
    KX_CHECK_INDEX(u >= 0 && u < N && v >= 0 && v < N, op, "edges must hold node indices in [0, ", N,
                   ") (N = unary's first axis); got edges[", e, "] = (", u, ", ", v, ")");
    KX_CHECK_VALUE(u != v, op, "edges must join two different nodes; edges[", e, "] = (", u, ", ", v,
                   ") is a self-loop (put a node's own potential in unary)");
    ed[static_cast<std::size_t>(2 * e)] = u;
    ed[static_cast<std::size_t>(2 * e + 1)] = v;
  }
  p.N = N;
  p.S = S;
  p.E = E;
  p.unary = unary.ptr<double>();
  p.edges = ed.data();
  p.pairwise = pairwise.ptr<double>();
  p.shared = shared;
}

}  // namespace

void gibbs_mrf(const Array& unary, const Array& edges, const Array& pairwise,
               const MrfOptions& opt, const Array& states, const Array& samples,
               const Array& counts) {
  const char* op = "samplers.gibbs_mrf";
  std::vector<std::int64_t> ed;
  cpu::MrfPlan p;
  check_mrf(op, unary, edges, pairwise, ed, p);
  const std::int64_t N = p.N, S = p.S;
  KX_CHECK_VALUE(opt.n_sweeps >= 0, op, "n_sweeps must be >= 0; got ", opt.n_sweeps);
  KX_CHECK_VALUE(opt.n_sweeps <= kI64Max / N, op, "n_sweeps * N must be below 2^63 (the random ",
                 "stream's block numbers); got n_sweeps = ", opt.n_sweeps, ", N = ", N);
  KX_CHECK_VALUE(opt.record_every >= 1, op, "record_every must be >= 1; got ", opt.record_every);
  KX_CHECK_VALUE(opt.chain_offset >= 0, op, "chain_offset must be >= 0; got ", opt.chain_offset);
  api::check_ndim(op, states, "init", 2, "[C,N]");
  api::check_dtype(op, states, "init", DType::Int32);
  KX_CHECK_VALUE(states.dim(1) == N, op, "init must have shape [chains, N] with N = ", N,
                 " (unary's first axis); got ", states.shape_str());
  const std::int64_t C = states.dim(0);
  if (opt.init_given) {
    const std::int32_t* x = states.ptr<std::int32_t>();
    for (std::int64_t i = 0; i < C * N; ++i)
      KX_CHECK_VALUE(x[i] >= 0 && x[i] < S, op, "init states must be in [0, ", S, "); got ", x[i],
                     " at (", i / N, ", ", i % N, ")");
  }
  const std::int64_t R = opt.n_sweeps / opt.record_every;
  api::check_arg(op, samples, "samples", DType::Int32, {C, R, N}, "[C,R,N]");
  api::check_arg(op, counts, "counts", DType::Int64, {N, S}, "[N,S]");
  p.opt = &opt;
  p.C = C;
  p.R = R;
  p.states = states.ptr<std::int32_t>();
  p.samples = samples.ptr<std::int32_t>();
  p.counts = counts.ptr<std::int64_t>();
  cpu::sampler_gibbs_mrf(p);
}

void anneal_mrf(const Array& unary, const Array& edges, const Array& pairwise, const Array& states,
                const Array& temperatures, std::uint64_t seed, std::int64_t chain_offset,
                const Array& best, const Array& best_energy, const Array& energy) {
  const char* op = "samplers.anneal";
  std::vector<std::int64_t> ed;
  cpu::MrfPlan p;
  check_mrf(op, unary, edges, pairwise, ed, p);
  const std::int64_t N = p.N, S = p.S;
  api::check_ndim(op, states, "x0", 2, "[C,N]");
  api::check_dtype(op, states, "x0", DType::Int32);
  KX_CHECK_VALUE(states.dim(1) == N, op, "x0 must have shape (C, ", N, ") [C,N] (N = unary's first ",
                 "axis); got ", states.shape_str());
  const std::int64_t C = states.dim(0);
  const std::int32_t* x = states.ptr<std::int32_t>();
  for (std::int64_t i = 0; i < C * N; ++i)
    KX_CHECK_INDEX(x[i] >= 0 && x[i] < S, op, "x0 states must be in [0, ", S, "); got ", x[i],
                   " at (", i / N, ", ", i % N, ")");
  const double* T = api::check_temperatures(op, temperatures);
  const std::int64_t n = temperatures.size();
  KX_CHECK_VALUE(n <= kI64Max / N, op, "n_steps * N must be below 2^63 (the random stream's block ",
                 "numbers); got n_steps = ", n, ", N = ", N);
  KX_CHECK_VALUE(chain_offset >= 0, op, "chain_offset must be >= 0; got ", chain_offset);
  api::check_arg(op, best, "best", DType::Int32, {C, N}, "[C,N]");
  api::check_arg(op, best_energy, "best_energy", DType::Float64, {C}, "[C]");
  api::check_arg(op, energy, "energy", DType::Float64, {C, n}, "[C,n_steps]");
  cpu::MrfAnnealPlan a;
  a.mrf = &p;
  a.C = C;
  a.T = n;
  a.temp = T;
  a.seed = seed;
  a.chain_offset = chain_offset;
  a.states = states.ptr<std::int32_t>();
  a.best = best.ptr<std::int32_t>();
  a.best_energy = best_energy.ptr<double>();
  a.energy = energy.ptr<double>();
  cpu::sampler_anneal_mrf(a);
}

void lda(const Array& indptr, const Array& words, std::int64_t n_topics, const LdaOptions& opt,
         const Array& topics, const Array& doc_topic, const Array& topic_word,
         const Array& loglik) {
  const char* op = "samplers.lda";
  api::check_ndim(op, indptr, "indptr", 1, "[D+1]");
  api::check_dtype(op, indptr, "indptr", DType::Int64);
  KX_CHECK_VALUE(indptr.dim(0) >= 2, op, "docs must hold at least one document; got ",
                 indptr.dim(0) - 1 < 0 ? 0 : indptr.dim(0) - 1);
  const std::int64_t D = indptr.dim(0) - 1;
  api::check_ndim(op, words, "indices", 1, "[T]");
  api::check_index(op, words, "indices");
  const std::int64_t T = words.dim(0);
  const std::int64_t* ip = indptr.ptr<std::int64_t>();
  KX_CHECK_VALUE(ip[0] == 0, op, "indptr must start at 0; got ", ip[0]);
  for (std::int64_t d = 0; d < D; ++d)
    KX_CHECK_VALUE(ip[d + 1] >= ip[d], op, "indptr must be non-decreasing; got indptr[", d, "] = ",
                   ip[d], " > indptr[", d + 1, "] = ", ip[d + 1]);
  KX_CHECK_VALUE(ip[D] == T, op, "indptr must end at len(indices) = ", T, "; got ", ip[D]);
  KX_CHECK_VALUE(T >= 1, op, "docs must hold at least one token; got ", D, " empty document",
                 D == 1 ? "" : "s");
  KX_CHECK_VALUE(T <= kI32Max, op, "docs hold too many tokens (", T, "; at most 2^31 - 1)");
  KX_CHECK_VALUE(n_topics >= 1, op, "n_topics must be >= 1; got ", n_topics);
  KX_CHECK_VALUE(n_topics <= kI32Max, op, "n_topics is too large: ", n_topics);
  const std::int64_t K = n_topics;
  KX_CHECK_VALUE(std::isfinite(opt.alpha) && opt.alpha > 0.0, op,
                 "alpha must be a finite number > 0; got ", opt.alpha);
  KX_CHECK_VALUE(std::isfinite(opt.eta) && opt.eta > 0.0, op, "eta must be a finite number > 0; got ",
                 opt.eta);
  KX_CHECK_VALUE(opt.n_iter >= 0, op, "n_iter must be >= 0; got ", opt.n_iter);
  KX_CHECK_VALUE(opt.n_iter <= kI64Max / T, op, "n_iter * T must be below 2^63 (the random ",
                 "stream's block numbers); got n_iter = ", opt.n_iter, ", T = ", T);
  api::check_ndim(op, topic_word, "topic_word", 2, "[K,V]");
  api::check_dtype(op, topic_word, "topic_word", DType::Int32);
  KX_CHECK_VALUE(topic_word.dim(0) == K, op, "topic_word must have K = ", K,
                 " rows (n_topics); got shape ", topic_word.shape_str());
  const std::int64_t V = topic_word.dim(1);
  KX_CHECK_VALUE(V >= 1, op, "n_words must be >= 1; got ", V);
  KX_CHECK_VALUE(V <= kI32Max, op, "n_words is too large: ", V);
  KX_CHECK_VALUE(V <= kI64Max / K / 4, op, "n_words * n_topics is too large: ", V, " x ", K);
  std::vector<std::int32_t> w32;
  if (words.dtype == DType::Int64) w32.resize(static_cast<std::size_t>(T));
  for (std::int64_t d = 0, t = 0; d < D; ++d) {
    for (; t < ip[d + 1]; ++t) {
      const std::int64_t w = index_at(words, t);
      if (w < 0 || w >= V)
        fail(ErrorKind::Index, op, "docs must hold word ids in [0, n_words = ", V, "); got ", w,
             " at token ", t - ip[d], " of document ", d);
      if (!w32.empty()) w32[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(w);
    }
  }
  api::check_arg(op, topics, "topics", DType::Int32, {T}, "[T]");
  api::check_arg(op, doc_topic, "doc_topic", DType::Int32, {D, K}, "[D,K]");
  api::check_arg(op, loglik, "loglik", DType::Float64, {opt.n_iter}, "[n_iter]");
  cpu::LdaPlan p;
  p.opt = &opt;
  p.D = D;
  p.T = T;
  p.K = K;
  p.V = V;
  p.indptr = ip;
  p.words = w32.empty() ? words.ptr<std::int32_t>() : w32.data();
  p.topics = topics.ptr<std::int32_t>();
  p.doc_topic = doc_topic.ptr<std::int32_t>();
  p.topic_word = topic_word.ptr<std::int32_t>();
  p.loglik = loglik.ptr<double>();
  cpu::sampler_lda(p);
}

}  // namespace samplers
}  // namespace kexue
