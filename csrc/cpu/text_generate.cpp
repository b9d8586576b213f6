// csrc/cpu/text_generate.cpp - CGMH-style Metropolis-Hastings over sentences
// that keep their keywords (spec §A6), and MLM-style Gibbs resampling (§A4).
//
// One chain's step (the numpy twin, kexue.reference.text, follows the same
// order): block 2t picks the move (U0) and the position (U1) from the move's
// legal set; the scorer gives the candidates of that slot (top-k of
// p(w | x[:i])) and the scores of the candidate sentences; block 2t+1 draws
// the candidate (U0) and decides (log U1 < log alpha).
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/text.hpp"
#include "kexue/core/error.hpp"
#include "kexue/core/parallel.hpp"
#include "kexue/samplers/rng.hpp"

namespace kexue {
namespace text {

namespace {

constexpr const char* kOp = "text.constrained_generate";
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
enum Move { kReplace = 0, kInsert = 1, kDelete = 2 };

std::int64_t pick(double u, std::int64_t L) {
  const auto i = static_cast<std::int64_t>(u * static_cast<double>(L));
  return i < L ? i : L - 1;
}

/// One chain: tokens, keyword flags (0 free, 1 keyword token followed by more
/// of its keyword, 2 the last token of a keyword) and the bookkeeping.
struct Chain {
  std::vector<std::int64_t> x;
  std::vector<std::int8_t> kw;
  std::vector<double> lps;  ///< built-in model: log p of every position (n + 1)
  double f = 0.0;
  ChainResult res;
  std::int64_t proposed[3] = {0, 0, 0}, accepted[3] = {0, 0, 0};
  // the current step
  int move = -1;
  std::int64_t i = 0, nI = 0, nD = 0;
  std::vector<std::int32_t> C;
  std::vector<double> fv;  ///< scores (untempered) of the candidate sentences
  double f_del = 0.0;      ///< delete: the score of x without x_i
  std::vector<double> l;   ///< scratch

  std::int64_t n_free() const {
    std::int64_t c = 0;
    for (auto k : kw) c += k == 0;
    return c;
  }
  /// |I| of the sentence whose flags are kw (without index `skip`, if >= 0):
  /// slot 0 plus one after every token that is not 1 (inside a keyword).
  static std::int64_t n_slots(const std::vector<std::int8_t>& kw, std::int64_t max_len,
                              std::int64_t skip = -1) {
    const auto n = static_cast<std::int64_t>(kw.size()) - (skip >= 0 ? 1 : 0);
    if (n >= max_len) return 0;
    std::int64_t c = 1;
    for (std::size_t s = 0; s < kw.size(); ++s)
      if (static_cast<std::int64_t>(s) != skip) c += kw[s] != 1;
    return c;
  }
  void record(std::int64_t step) {
    res.traj_steps.push_back(step);
    res.traj_scores.push_back(f);
    res.traj_tokens.insert(res.traj_tokens.end(), x.begin(), x.end());
    res.traj_offsets.push_back(static_cast<std::int64_t>(res.traj_tokens.size()));
  }
};

struct Setup {
  const GenerateOptions* opt;
  double p[3], c_rep, c_ins;
};

Setup make_setup(const GenerateOptions& opt) {
  Setup s{&opt, {0, 0, 0}, 0, 0};
  const double S = opt.moves[0] + opt.moves[1] + opt.moves[2];
  for (int k = 0; k < 3; ++k) s.p[k] = opt.moves[k] / S;
  s.c_rep = s.p[0];
  s.c_ins = s.p[0] + s.p[1];
  return s;
}

/// Block 2t: the move and its position; false when the move has no legal place.
bool plan(Chain& ch, const Setup& s, std::int64_t t, std::uint64_t g) {
  const GenerateOptions& opt = *s.opt;
  const samplers::Block A = samplers::block(static_cast<std::uint64_t>(2 * t), g, opt.seed);
  const double u0 = samplers::uniform53(A.w[0], A.w[1]), u1 = samplers::uniform53(A.w[2], A.w[3]);
  int move;
  if (u0 < s.c_rep) move = kReplace;
  else if (u0 < s.c_ins || s.p[kDelete] == 0.0) move = kInsert;
  else move = kDelete;
  const auto n = static_cast<std::int64_t>(ch.x.size());
  ch.nD = ch.n_free();
  ch.nI = Chain::n_slots(ch.kw, opt.max_len);
  ch.move = -1;
  if (move == kInsert) {
    if (ch.nI == 0) return false;
    std::int64_t j = pick(u1, ch.nI);
    // slot s is legal iff s == 0 or kw[s - 1] != 1
    for (std::int64_t slot = 0; slot <= n; ++slot) {
      if (slot > 0 && ch.kw[static_cast<std::size_t>(slot - 1)] == 1) continue;
      if (j-- == 0) {
        ch.i = slot;
        break;
      }
    }
  } else {
    if (ch.nD == 0) return false;
    std::int64_t j = pick(u1, ch.nD);
    for (std::int64_t pos = 0; pos < n; ++pos) {
      if (ch.kw[static_cast<std::size_t>(pos)] != 0) continue;
      if (j-- == 0) {
        ch.i = pos;
        break;
      }
    }
  }
  ch.move = move;
  ch.proposed[move] += 1;
  return true;
}

/// Block 2t + 1: draw, accept or reject, given ch.C and ch.fv (and f_del).
void decide(Chain& ch, const Setup& s, std::int64_t t, std::uint64_t g, double tau) {
  const GenerateOptions& opt = *s.opt;
  const samplers::Block B = samplers::block(static_cast<std::uint64_t>(2 * t + 1), g, opt.seed);
  const double ub0 = samplers::uniform53(B.w[0], B.w[1]), ub1 = samplers::uniform53(B.w[2], B.w[3]);
  const int move = ch.move;
  for (double v : ch.fv)
    if (std::isnan(v)) fail(ErrorKind::Value, kOp, "scorer returned NaN at step ", t);
  if (move == kDelete && std::isnan(ch.f_del)) fail(ErrorKind::Value, kOp, "scorer returned NaN at step ", t);
  const std::int64_t cur = move == kInsert ? -1 : ch.x[static_cast<std::size_t>(ch.i)];
  std::int64_t at_cur = -1;
  for (std::size_t j = 0; j < ch.C.size(); ++j)
    if (ch.C[j] == cur) at_cur = static_cast<std::int64_t>(j);
  if (move == kReplace && !opt.exact && at_cur < 0) {
    ch.C.push_back(static_cast<std::int32_t>(cur));
    ch.fv.push_back(ch.f);
    at_cur = static_cast<std::int64_t>(ch.C.size()) - 1;
  }
  const auto K = static_cast<std::int64_t>(ch.C.size());
  ch.l.resize(static_cast<std::size_t>(K));
  double M = kNegInf;
  for (std::int64_t j = 0; j < K; ++j) {
    ch.l[static_cast<std::size_t>(j)] = ch.fv[static_cast<std::size_t>(j)] / tau;
    M = std::max(M, ch.l[static_cast<std::size_t>(j)]);
  }
  if (K == 0 || M == kNegInf) return;  // nothing can be proposed: rejected
  double Z = 0.0;
  for (std::int64_t j = 0; j < K; ++j) Z += std::exp(ch.l[static_cast<std::size_t>(j)] - M);
  const double logZ = std::log(Z);
  auto lq = [&](std::int64_t j) { return ch.l[static_cast<std::size_t>(j)] - M - logZ; };
  std::int64_t w_at = -1;
  if (move != kDelete) w_at = samplers::categorical(ch.l.data(), K, M, ub0);
  double la;
  double f_new;
  const double* p = s.p;
  if (move == kReplace) {
    f_new = ch.fv[static_cast<std::size_t>(w_at)];
    la = at_cur < 0 ? kNegInf : (f_new - ch.f) / tau + (lq(at_cur) - lq(w_at));
  } else if (move == kInsert) {
    f_new = ch.fv[static_cast<std::size_t>(w_at)];
    const std::int64_t nD_new = ch.nD + 1;
    la = opt.exact ? (f_new - ch.f) / tau +
                         (std::log(p[kDelete] / static_cast<double>(nD_new)) -
                          std::log(p[kInsert] / static_cast<double>(ch.nI))) -
                         lq(w_at)
                   : (f_new - ch.f) / tau - lq(w_at);
  } else {
    f_new = ch.f_del;
    if (at_cur < 0) {
      la = kNegInf;
    } else {
      const std::int64_t nI_new = Chain::n_slots(ch.kw, opt.max_len, ch.i);
      la = opt.exact ? (f_new - ch.f) / tau +
                           (std::log(p[kInsert] / static_cast<double>(nI_new)) -
                            std::log(p[kDelete] / static_cast<double>(ch.nD))) +
                           lq(at_cur)
                     : (f_new - ch.f) / tau + lq(at_cur);
    }
  }
  if (!(std::log(ub1) < la)) return;
  ch.accepted[move] += 1;
  const auto at = static_cast<std::ptrdiff_t>(ch.i);
  if (move == kReplace) {
    ch.x[static_cast<std::size_t>(ch.i)] = ch.C[static_cast<std::size_t>(w_at)];
  } else if (move == kInsert) {
    ch.x.insert(ch.x.begin() + at, ch.C[static_cast<std::size_t>(w_at)]);
    ch.kw.insert(ch.kw.begin() + at, 0);
  } else {
    ch.x.erase(ch.x.begin() + at);
    ch.kw.erase(ch.kw.begin() + at);
  }
  ch.f = f_new;
  ch.record(t + 1);
  if (ch.f > ch.res.best_score) {
    ch.res.best_score = ch.f;
    ch.res.best = ch.x;
  }
}

std::vector<Chain> start(const std::vector<std::vector<std::int64_t>>& keywords,
                         const GenerateOptions& opt) {
  std::vector<Chain> chains(static_cast<std::size_t>(opt.chains));
  for (auto& ch : chains) {
    for (const auto& k : keywords)
      for (std::size_t j = 0; j < k.size(); ++j) {
        ch.x.push_back(k[j]);
        ch.kw.push_back(j + 1 == k.size() ? 2 : 1);
      }
  }
  return chains;
}

GenerateResult finish(std::vector<Chain>& chains) {
  GenerateResult r;
  for (auto& ch : chains) {
    ch.res.final_tokens = ch.x;
    ch.res.final_score = ch.f;
    for (int k = 0; k < 3; ++k) {
      r.proposed[k] += ch.proposed[k];
      r.accepted[k] += ch.accepted[k];
    }
    r.chains.push_back(std::move(ch.res));
  }
  return r;
}

void check_options(const GenerateOptions& opt, std::int64_t V,
                   const std::vector<std::vector<std::int64_t>>& keywords) {
  if (keywords.empty()) fail(ErrorKind::Value, kOp, "keywords must hold at least one keyword");
  std::int64_t n0 = 0;
  for (std::size_t k = 0; k < keywords.size(); ++k) {
    if (keywords[k].empty()) fail(ErrorKind::Value, kOp, "keywords[", k, "] is empty");
    for (auto v : keywords[k])
      if (v < 0 || v >= V)
        fail(ErrorKind::Index, kOp, "keywords[", k, "] holds token ", v, ", outside the vocabulary [0, ", V, ")");
    n0 += static_cast<std::int64_t>(keywords[k].size());
  }
  if (opt.max_len < n0)
    fail(ErrorKind::Value, kOp, "max_len (", opt.max_len, ") is shorter than the keywords (", n0, " tokens)");
  if (opt.n_steps < 0) fail(ErrorKind::Value, kOp, "n_steps must be >= 0; got ", opt.n_steps);
  if (opt.chains < 1) fail(ErrorKind::Value, kOp, "chains must be >= 1; got ", opt.chains);
  if (opt.topk < 1) fail(ErrorKind::Value, kOp, "proposal_topk must be >= 1; got ", opt.topk);
  if (opt.chain_offset < 0) fail(ErrorKind::Value, kOp, "chain_offset must be >= 0; got ", opt.chain_offset);
  if (!(opt.gamma > 0.0) || !std::isfinite(opt.gamma))
    fail(ErrorKind::Value, kOp, "gamma must be finite and > 0; got ", opt.gamma);
  for (double m : opt.moves)
    if (!(m >= 0.0) || !std::isfinite(m))
      fail(ErrorKind::Value, kOp, "moves must be three finite probabilities >= 0");
  if (!(opt.moves[0] + opt.moves[1] + opt.moves[2] > 0.0))
    fail(ErrorKind::Value, kOp, "moves must not all be 0");
  if (!opt.temperatures.empty()) {
    if (static_cast<std::int64_t>(opt.temperatures.size()) != opt.n_steps)
      fail(ErrorKind::Value, kOp, "anneal must give one temperature per step");
    for (double T : opt.temperatures)
      if (!(T > 0.0) || !std::isfinite(T)) fail(ErrorKind::Value, kOp, "anneal temperatures must be finite and > 0");
  }
}

/// The incremental score of x edited at i (kind: replace by v, insert v before
/// i, delete x_i): positions whose window the edit touches are recomputed, the
/// others taken from ch.lps; the sum runs over every position in order.
double edit_score(const NGramImpl& m, const Chain& ch, int kind, std::int64_t i, std::int64_t v,
                  std::vector<std::int64_t>& y, double gamma, const std::int32_t* chain_i, int depth_i) {
  y.assign(ch.x.begin(), ch.x.end());
  std::int64_t shift = 0, hi;
  if (kind == kReplace) {
    y[static_cast<std::size_t>(i)] = v;
    hi = i + m.N - 1;
  } else if (kind == kInsert) {
    y.insert(y.begin() + static_cast<std::ptrdiff_t>(i), v);
    shift = -1;
    hi = i + m.N - 1;
  } else {
    y.erase(y.begin() + static_cast<std::ptrdiff_t>(i));
    shift = 1;
    hi = i + m.N - 2;
  }
  const auto ny = static_cast<std::int64_t>(y.size());
  hi = std::min(hi, ny);
  double fresh[8];  // hi - i < N <= 5
  std::int64_t from = i;
  if (kind != kDelete) {  // position i keeps its context x[:i] (given): only its token changed
    fresh[0] = std::log(m.prob(chain_i, depth_i, i < ny ? y[static_cast<std::size_t>(i)] : m.V));
    from = i + 1;
  }
  if (from <= hi) m.positions(y.data(), ny, from, hi + 1, fresh + (from - i));
  double s = 0.0;
  for (std::int64_t t = 0; t <= ny; ++t) {
    const double lp = t < i ? ch.lps[static_cast<std::size_t>(t)]
                            : (t <= hi ? fresh[t - i] : ch.lps[static_cast<std::size_t>(t + shift)]);
    s += lp;
  }
  return gamma * s;
}

void refresh_lps(const NGramImpl& m, Chain& ch) {
  const auto n = static_cast<std::int64_t>(ch.x.size());
  ch.lps.resize(static_cast<std::size_t>(n + 1));
  m.positions(ch.x.data(), n, 0, n + 1, ch.lps.data());
}

}  // namespace

GenerateResult generate(const NGramModel& lm, const std::vector<std::vector<std::int64_t>>& keywords,
                        const GenerateOptions& opt) {
  const NGramImpl& m = lm.impl();
  check_options(opt, m.V, keywords);
  const Setup s = make_setup(opt);
  std::vector<Chain> chains = start(keywords, opt);
  for (auto& ch : chains) {
    refresh_lps(m, ch);
    double sum = 0.0;
    for (double v : ch.lps) sum += v;
    ch.f = opt.gamma * sum;
    ch.res.best = ch.x;
    ch.res.best_score = ch.f;
    ch.record(0);
  }
  const std::int64_t T = opt.n_steps, C = opt.chains;
  constexpr std::int64_t kSteps = 16;  // steps between progress reports
  for (std::int64_t t0 = 0; t0 < T; t0 += kSteps) {
    const std::int64_t t1 = std::min(T, t0 + kSteps);
    parallel_for(C, 1, [&](std::int64_t c0, std::int64_t c1) {
      std::vector<std::int64_t> y;
      std::int32_t chain[8];
      for (std::int64_t c = c0; c < c1; ++c) {
        Chain& ch = chains[static_cast<std::size_t>(c)];
        const auto g = static_cast<std::uint64_t>(opt.chain_offset + c);
        for (std::int64_t t = t0; t < t1; ++t) {
          if (!plan(ch, s, t, g)) continue;
          const int depth = m.contexts(ch.x.data(), ch.i, chain);
          const TopK top = topk_cached(m, chain, depth, opt.topk);
          ch.C.assign(top.ids, top.ids + top.n);
          ch.fv.resize(ch.C.size());
          const int kind = ch.move == kInsert ? kInsert : kReplace;  // delete: x with x_i := v
          for (std::size_t j = 0; j < ch.C.size(); ++j)
            ch.fv[j] = edit_score(m, ch, kind, ch.i, ch.C[j], y, opt.gamma, chain, depth);
          if (ch.move == kDelete) ch.f_del = edit_score(m, ch, kDelete, ch.i, 0, y, opt.gamma, chain, depth);
          const auto before = ch.accepted[ch.move];
          decide(ch, s, t, g, opt.temperatures.empty() ? 1.0 : opt.temperatures[static_cast<std::size_t>(t)]);
          if (ch.accepted[ch.move] != before) refresh_lps(m, ch);
        }
      }
    });
    if (opt.progress) opt.progress(t1, T);
  }
  return finish(chains);
}

GenerateResult generate(Scorer& scorer, const std::vector<std::vector<std::int64_t>>& keywords,
                        const GenerateOptions& opt) {
  const std::int64_t V = scorer.vocab_size();
  if (V < 1) fail(ErrorKind::Value, kOp, "scorer.vocab_size must be >= 1; got ", V);
  check_options(opt, V, keywords);
  const Setup s = make_setup(opt);
  std::vector<Chain> chains = start(keywords, opt);
  const std::int64_t C = opt.chains;
  {
    std::vector<std::vector<std::int64_t>> seqs;
    for (auto& ch : chains) seqs.push_back(ch.x);
    std::vector<double> lp(seqs.size());
    scorer.logprob(seqs, lp.data());
    for (std::int64_t c = 0; c < C; ++c) {
      Chain& ch = chains[static_cast<std::size_t>(c)];
      ch.f = opt.gamma * lp[static_cast<std::size_t>(c)];
      if (!(ch.f > kNegInf) || std::isnan(ch.f))
        fail(ErrorKind::Value, kOp, "the starting sentence (the keywords) has score ", ch.f,
             "; the scorer must give it a finite log probability");
      ch.res.best = ch.x;
      ch.res.best_score = ch.f;
      ch.record(0);
    }
  }
  std::vector<std::int64_t> active;
  std::vector<std::vector<std::int64_t>> prefixes, seqs;
  std::vector<std::vector<std::int32_t>> tops;
  std::vector<double> lp;
  for (std::int64_t t = 0; t < opt.n_steps; ++t) {
    active.clear();
    prefixes.clear();
    for (std::int64_t c = 0; c < C; ++c) {
      Chain& ch = chains[static_cast<std::size_t>(c)];
      if (!plan(ch, s, t, static_cast<std::uint64_t>(opt.chain_offset + c))) continue;
      active.push_back(c);
      prefixes.emplace_back(ch.x.begin(), ch.x.begin() + static_cast<std::ptrdiff_t>(ch.i));
    }
    if (!active.empty()) {
      if (scorer.has_next_logprobs()) {
        scorer.topk(prefixes, opt.topk, tops);
      } else {
        tops.assign(active.size(), std::vector<std::int32_t>(static_cast<std::size_t>(V)));
        for (auto& tp : tops)
          for (std::int64_t v = 0; v < V; ++v) tp[static_cast<std::size_t>(v)] = static_cast<std::int32_t>(v);
      }
      seqs.clear();
      for (std::size_t a = 0; a < active.size(); ++a) {
        Chain& ch = chains[static_cast<std::size_t>(active[a])];
        ch.C = tops[a];
        const auto at = static_cast<std::ptrdiff_t>(ch.i);
        if (ch.move == kDelete) {
          seqs.push_back(ch.x);
          seqs.back().erase(seqs.back().begin() + at);
        }
        for (std::int32_t v : ch.C) {
          seqs.push_back(ch.x);
          if (ch.move == kInsert) seqs.back().insert(seqs.back().begin() + at, v);
          else seqs.back()[static_cast<std::size_t>(ch.i)] = v;
        }
      }
      lp.resize(seqs.size());
      scorer.logprob(seqs, lp.data());
      std::size_t r = 0;
      for (std::size_t a = 0; a < active.size(); ++a) {
        Chain& ch = chains[static_cast<std::size_t>(active[a])];
        if (ch.move == kDelete) ch.f_del = opt.gamma * lp[r++];
        ch.fv.resize(ch.C.size());
        for (double& v : ch.fv) v = opt.gamma * lp[r++];
        decide(ch, s, t, static_cast<std::uint64_t>(opt.chain_offset + active[a]),
               opt.temperatures.empty() ? 1.0 : opt.temperatures[static_cast<std::size_t>(t)]);
      }
    }
    if (opt.progress && ((t + 1) % 16 == 0 || t + 1 == opt.n_steps)) opt.progress(t + 1, opt.n_steps);
  }
  return finish(chains);
}

void gibbs_resample(
    const std::function<std::int64_t(const std::int64_t*, const std::int64_t*, std::vector<double>&)>& fn,
    std::int64_t* tokens, std::int64_t C, std::int64_t L, const std::int64_t* positions,
    std::int64_t P, std::int64_t n_steps, double temperature, std::uint64_t seed,
    std::int64_t chain_offset, std::int64_t record_every, std::int64_t* samples) {
  const char* op = "text.gibbs_resample";
  if (!(temperature > 0.0) || !std::isfinite(temperature))
    fail(ErrorKind::Value, op, "temperature must be finite and > 0; got ", temperature);
  if (n_steps < 0) fail(ErrorKind::Value, op, "n_steps must be >= 0; got ", n_steps);
  if (record_every < 1) fail(ErrorKind::Value, op, "record_every must be >= 1; got ", record_every);
  if (chain_offset < 0) fail(ErrorKind::Value, op, "chain_offset must be >= 0; got ", chain_offset);
  if (P < 1) fail(ErrorKind::Value, op, "positions must not be empty");
  for (std::int64_t j = 0; j < P; ++j)
    if (positions[j] < 0 || positions[j] >= L)
      fail(ErrorKind::Index, op, "positions must be in [0, ", L, "); got ", positions[j]);
  const std::int64_t R = n_steps / record_every;
  std::vector<std::int64_t> pos(static_cast<std::size_t>(C));
  std::vector<double> logits, z, e, u1(static_cast<std::size_t>(C));
  for (std::int64_t t = 0; t < n_steps; ++t) {
    for (std::int64_t c = 0; c < C; ++c) {
      const samplers::Block k =
          samplers::block(static_cast<std::uint64_t>(t), static_cast<std::uint64_t>(chain_offset + c), seed);
      pos[static_cast<std::size_t>(c)] = positions[pick(samplers::uniform53(k.w[0], k.w[1]), P)];
      u1[static_cast<std::size_t>(c)] = samplers::uniform53(k.w[2], k.w[3]);
    }
    const std::int64_t S = fn(tokens, pos.data(), logits);
    z.resize(static_cast<std::size_t>(S));
    e.resize(static_cast<std::size_t>(S));
    for (std::int64_t c = 0; c < C; ++c) {
      const double* l = logits.data() + c * S;
      double mx = kNegInf;
      for (std::int64_t a = 0; a < S; ++a) {
        if (std::isnan(l[a]))
          fail(ErrorKind::Value, op, "conditional returned NaN at step ", t, " (chain ", c, ")");
        z[static_cast<std::size_t>(a)] = l[a] / temperature;
        mx = std::max(mx, z[static_cast<std::size_t>(a)]);
      }
      if (mx == kNegInf || mx == HUGE_VAL)
        fail(ErrorKind::Value, op, "conditional returned ", mx == HUGE_VAL ? "+inf" : "no finite logit",
             " at step ", t, " (chain ", c, ")");
      tokens[c * L + pos[static_cast<std::size_t>(c)]] =
          samplers::categorical(z.data(), S, mx, u1[static_cast<std::size_t>(c)], e.data());
    }
    if ((t + 1) % record_every == 0) {
      const std::int64_t r = (t + 1) / record_every - 1;
      for (std::int64_t c = 0; c < C; ++c)
        std::copy(tokens + c * L, tokens + (c + 1) * L, samples + (c * R + r) * L);
    }
  }
}

}  // namespace text
}  // namespace kexue
