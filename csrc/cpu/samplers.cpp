// csrc/cpu/samplers.cpp - the CPU backend of kexue::samplers: Metropolis
// chains in parallel (or, with a callable target, proposals and decisions in
// parallel around one call per step), and checkerboard heat-bath sweeps.
// Every draw is addressed by (block, chain) (kexue/samplers/rng.hpp), so the
// split of work over threads never changes a result.
#include "cpu/samplers.hpp"
#include "cpu/samplers_plan.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kexue/core/error.hpp"
#include "kexue/core/parallel.hpp"
#include "kexue/samplers/rng.hpp"
#include "kexue/core/math.hpp"

namespace kexue {
namespace cpu {

namespace {

using samplers::Target;
using samplers::TargetKind;

/// One chain's state between steps.
struct Chain {
  double lp = 0.0;   ///< log p(x)
  double lq = 0.0;   ///< log q(x) of the independence proposal
  double f = 1.0;    ///< adapted step factor
  std::int64_t acc = 0;
};

/// The decision of step t for one chain given log(u) (callable targets; the
/// same arithmetic as the vector kernel's lanes), with the adaptation.
bool decide(const MetropolisPlan& p, std::int64_t t, double logu, Chain& ch, double lp_y,
            double lq_y) {
  const double dl = p.temp != nullptr ? (lp_y - ch.lp) / p.temp[t] : lp_y - ch.lp;
  const double lr = p.opt->independent ? dl + (ch.lq - lq_y) : dl;
  const bool accept = logu < lr;
  if (p.opt->adapt && !p.opt->independent && t < p.opt->burn) {
    const double e = math::exp_t<double>(lr);
    const double a = lp_y == -HUGE_VAL ? 0.0 : (e < 1.0 ? e : 1.0);
    ch.f *= math::exp_t<double>((a - 0.234) / std::pow(static_cast<double>(t + 1), 0.6));
  }
  return accept;
}

void check_logp(const MetropolisPlan& p, double lp, std::int64_t t, std::int64_t c) {
  if (std::isnan(lp)) {
    if (t < 0) fail(ErrorKind::Value, p.op, p.what, " returned NaN at the start (x0) for chain ", c);
    fail(ErrorKind::Value, p.op, p.what, " returned NaN at step ", t, " for chain ", c);
  }
}

/// Independence proposal's log density at x (up to its constant).
double indep_lq(const MetropolisPlan& p, const double* x, double* z) {
  const std::int64_t D = p.D;
  const double* mu = p.opt->prop_mean.data();
  const double* L = p.opt->prop_chol.data();
  double q = 0.0;
  for (std::int64_t i = 0; i < D; ++i) {
    double r = x[i] - mu[i];
    for (std::int64_t k = 0; k < i; ++k) r -= L[i * D + k] * z[k];
    z[i] = r / L[i * D + i];
    q += z[i] * z[i];
  }
  return -0.5 * q;
}

void record(const MetropolisPlan& p, std::int64_t c, std::int64_t t, const double* x,
            const Chain& ch) {
  const std::int64_t r = t - p.opt->burn;
  if (r < 0 || r % p.opt->thin != 0) return;
  const std::int64_t s = r / p.opt->thin;
  if (p.samples != nullptr) std::copy(x, x + p.D, p.samples + (c * p.S + s) * p.D);
  p.logp[c * p.S + s] = ch.lp;
}

/// Annealing: keep the state of highest log p (lowest energy) seen.
void track_best(const MetropolisPlan& p, std::int64_t c, const double* x, double lp) {
  if (p.best_x == nullptr || !(lp > p.best_lp[c])) return;
  p.best_lp[c] = lp;
  std::copy(x, x + p.D, p.best_x + c * p.D);
}

void finish(const MetropolisPlan& p, std::int64_t c, const Chain& ch) {
  p.accept_rate[c] = p.n_steps > 0 ? static_cast<double>(ch.acc) / static_cast<double>(p.n_steps) : 0.0;
  const std::vector<double>& st = p.opt->step_size;
  double m = 0.0;
  for (double v : st) m += v;
  p.step_out[c] = ch.f * (m / static_cast<double>(st.size()));
}

void run_builtin(const MetropolisPlan& p) {
  // chunks of 32 chains (one tile of four interleaved groups of eight vector
  // lanes); each lane's arithmetic is its own whatever tile or group it is
  // in, so results do not depend on the split or on chain_offset
  const SamplerKernels& K = sampler_kernels();
  StepProgress prog(p.C, p.opt->burn + p.n_steps, p.opt->progress);
  MetropolisPlan q = p;
  if (p.opt->progress) q.progress = &prog;
  parallel_for(q.C, 32, [&](std::int64_t c0, std::int64_t c1) { K.mh_builtin(q, c0, c1); });
}

void run_callable(const MetropolisPlan& p) {
  const std::int64_t C = p.C, D = p.D, T = p.opt->burn + p.n_steps;
  std::vector<double> X(p.x0, p.x0 + C * D), Y(X.size()), LY(static_cast<std::size_t>(C));
  std::vector<double> LQ(static_cast<std::size_t>(C));
  std::vector<Chain> ch(static_cast<std::size_t>(C));
  p.target->fn(X.data(), C, D, LY.data());
  for (std::int64_t c = 0; c < C; ++c) {
    check_logp(p, LY[static_cast<std::size_t>(c)], -1, c);
    ch[static_cast<std::size_t>(c)].lp = LY[static_cast<std::size_t>(c)];
    if (p.best_x != nullptr) {
      p.best_lp[c] = LY[static_cast<std::size_t>(c)];
      std::copy(X.data() + c * D, X.data() + (c + 1) * D, p.best_x + c * D);
    }
  }
  if (p.opt->independent) {
    std::vector<double> z(static_cast<std::size_t>(D));
    for (std::int64_t c = 0; c < C; ++c) ch[static_cast<std::size_t>(c)].lq = indep_lq(p, X.data() + c * D, z.data());
  }
  const SamplerKernels& K = sampler_kernels();
  std::vector<double> F(static_cast<std::size_t>(C), 1.0), LU(static_cast<std::size_t>(C));
  for (std::int64_t t = 0; t < T; ++t) {
    for (std::int64_t c = 0; c < C; ++c) F[static_cast<std::size_t>(c)] = ch[static_cast<std::size_t>(c)].f;
    parallel_for(C, 64, [&](std::int64_t c0, std::int64_t c1) {
      K.mh_propose(p, t, c0, c1, X.data(), F.data(), Y.data(), LQ.data(), LU.data());
    });
    p.target->fn(Y.data(), C, D, LY.data());
    for (std::int64_t c = 0; c < C; ++c) check_logp(p, LY[static_cast<std::size_t>(c)], t, c);
    parallel_for(C, 64, [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t c = c0; c < c1; ++c) {
        Chain& h = ch[static_cast<std::size_t>(c)];
        const double ly = LY[static_cast<std::size_t>(c)], lq = LQ[static_cast<std::size_t>(c)];
        if (decide(p, t, LU[static_cast<std::size_t>(c)], h, ly, lq)) {
          std::copy(Y.data() + c * D, Y.data() + (c + 1) * D, X.data() + c * D);
          h.lp = ly;
          h.lq = lq;
          if (t >= p.opt->burn) ++h.acc;
          track_best(p, c, X.data() + c * D, h.lp);
        }
        record(p, c, t, X.data() + c * D, h);
      }
    });
    if (p.opt->progress) p.opt->progress(t + 1, T);
  }
  for (std::int64_t c = 0; c < C; ++c) finish(p, c, ch[static_cast<std::size_t>(c)]);
}

// ------------------------------------------------------------------ lattices
//
// Inside a call the lattice lives split by colour: sub[col][r][k] is site
// (r, 2k + ((r + col) & 1)). A site of colour col in row r then has its four
// neighbours in the other colour at (r-1, k), (r+1, k), (r, k) and (r, k-1)
// or (r, k+1) (wrapping) -- unit-stride rows the update loop vectorises.

constexpr std::uint64_t kInitBlock = 1ull << 63;

void split(const std::int8_t* s, std::int64_t H, std::int64_t W, std::int8_t* sub) {
  const std::int64_t half = W / 2;
  for (std::int64_t r = 0; r < H; ++r)
    for (std::int64_t c = 0; c < W; ++c) {
      const std::int64_t col = (r + c) & 1;
      sub[(col * H + r) * half + c / 2] = s[r * W + c];
    }
}

void join(const std::int8_t* sub, std::int64_t H, std::int64_t W, std::int8_t* s) {
  const std::int64_t half = W / 2;
  for (std::int64_t r = 0; r < H; ++r)
    for (std::int64_t c = 0; c < W; ++c) {
      const std::int64_t col = (r + c) & 1;
      s[r * W + c] = sub[(col * H + r) * half + c / 2];
    }
}

void lattice_init(std::int8_t* s, std::int64_t H, std::int64_t W, std::int64_t q,
                  const samplers::LatticeOptions& o, std::uint64_t g) {
  if (o.init == 3) return;
  if (o.init == 1 || o.init == 2) {
    const std::int8_t v = q == 0 ? (o.init == 1 ? 1 : -1) : (o.init == 1 ? 0 : static_cast<std::int8_t>(q - 1));
    std::fill(s, s + H * W, v);
    return;
  }
  std::vector<std::uint32_t> w(static_cast<std::size_t>(H * W));
  sampler_kernels().site_words(kInitBlock, 0, H * W, g, o.seed, w.data());
  for (std::int64_t i = 0; i < H * W; ++i) {
    const std::uint32_t x = w[static_cast<std::size_t>(i)];
    s[i] = q == 0 ? (x < 2147483648u ? 1 : -1)
                  : static_cast<std::int8_t>((static_cast<std::uint64_t>(x) * static_cast<std::uint64_t>(q)) >> 32);
  }
}

/// Potts heat bath of rows [r0, r1) of sublattice S from the other colour O.
void potts_rows(std::int8_t* S, const std::int8_t* O, std::int64_t H, std::int64_t half, int col,
                std::int64_t q, std::int64_t r0, std::int64_t r1, const std::uint32_t* w,
                const double* E) {
  int cnt[128];
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int8_t* u = O + ((r + H - 1) % H) * half;
    const std::int8_t* d = O + ((r + 1) % H) * half;
    const std::int8_t* m = O + r * half;
    std::int8_t* s = S + r * half;
    const bool par = ((r + col) & 1) != 0;
    for (std::int64_t k = 0; k < half; ++k) {
      const std::int64_t ks = par ? (k + 1 == half ? 0 : k + 1) : (k == 0 ? half - 1 : k - 1);
      for (std::int64_t a = 0; a < q; ++a) cnt[a] = 0;
      ++cnt[u[k]];
      ++cnt[d[k]];
      ++cnt[m[k]];
      ++cnt[m[ks]];
      double Z = 0.0;
      for (std::int64_t a = 0; a < q; ++a) Z += E[cnt[a]];
      const double target =
          (static_cast<double>(w[(r - r0) * half + k]) + 0.5) * (1.0 / 4294967296.0) * Z;
      double cum = 0.0;
      std::int64_t pick = q - 1;
      for (std::int64_t a = 0; a < q; ++a) {
        cum += E[cnt[a]];
        if (target < cum) {
          pick = a;
          break;
        }
      }
      s[k] = static_cast<std::int8_t>(pick);
    }
  }
}

/// Magnetisation and energy per site from the split lattice: every bond
/// joins the two colours, so the colour-0 sites' neighbourhoods count each
/// bond once (integer sums: exact).
/// Integer sums over rows [r0, r1): spin sum m, bond sum b (Ising) or
/// equal bonds b and state counts cnt (Potts). Exact, so partial sums over
/// row ranges add up to the same result in any order.
void measure_rows(const std::int8_t* sub, std::int64_t H, std::int64_t W, std::int64_t q,
                  std::int64_t r0, std::int64_t r1, std::int64_t* m_out, std::int64_t* b_out,
                  std::int64_t* cnt) {
  const std::int64_t half = W / 2;
  const std::int8_t* A = sub;
  const std::int8_t* B = sub + H * half;
  std::int64_t m = 0, b = 0;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int8_t* u = B + ((r + H - 1) % H) * half;
    const std::int8_t* d = B + ((r + 1) % H) * half;
    const std::int8_t* mm = B + r * half;
    const std::int8_t* a = A + r * half;
    const bool par = (r & 1) != 0;
    const std::int64_t ks0 = par ? half - 1 : 0;  // the site whose side neighbour wraps
    const std::int64_t kw = par ? 0 : half - 1;
    if (q == 0) {
      // unit-stride sums (vectorised); the wrapped side neighbour fixed after
      int rm = 0, rb = 0;
      const std::int8_t* side = par ? mm + 1 : mm - 1;
      for (std::int64_t k = 0; k < half; ++k) {
        rm += a[k] + mm[k];
        rb += a[k] * (u[k] + d[k] + mm[k]);
      }
      for (std::int64_t k = par ? 0 : 1; k < (par ? half - 1 : half); ++k) rb += a[k] * side[k];
      rb += a[ks0] * mm[kw];
      m += rm;
      b += rb;
      continue;
    }
    for (std::int64_t k = 0; k < half; ++k) {
      const std::int64_t ks = k == ks0 ? kw : (par ? k + 1 : k - 1);
      const int v = a[k];
      ++cnt[static_cast<std::size_t>(v)];
      ++cnt[static_cast<std::size_t>(mm[k])];
      b += (v == u[k]) + (v == d[k]) + (v == mm[k]) + (v == mm[ks]);
    }
  }
  *m_out = m;
  *b_out = b;
}

void lattice_measure(const std::int8_t* sub, std::int64_t H, std::int64_t W, std::int64_t q,
                     double h, bool rows_parallel, double* mag, double* en) {
  constexpr std::int64_t kRows = 16;
  const std::int64_t nch = (H + kRows - 1) / kRows, Q = q > 0 ? q : 1;
  std::vector<std::int64_t> ms(static_cast<std::size_t>(nch)), bs(ms.size());
  std::vector<std::int64_t> cnt(static_cast<std::size_t>(nch * Q), 0);
  const auto chunk = [&](std::int64_t i) {
    measure_rows(sub, H, W, q, i * kRows, std::min(H, (i + 1) * kRows), &ms[static_cast<std::size_t>(i)],
                 &bs[static_cast<std::size_t>(i)], cnt.data() + i * Q);
  };
  if (rows_parallel)
    parallel_for(nch, 1, [&](std::int64_t a, std::int64_t e) {
      for (std::int64_t i = a; i < e; ++i) chunk(i);
    });
  else
    for (std::int64_t i = 0; i < nch; ++i) chunk(i);
  std::int64_t m = 0, b = 0;
  for (std::int64_t i = 0; i < nch; ++i) {
    m += ms[static_cast<std::size_t>(i)];
    b += bs[static_cast<std::size_t>(i)];
  }
  const double n = static_cast<double>(H * W);
  if (q == 0) {
    *mag = static_cast<double>(m) / n;
    *en = -static_cast<double>(b) / n - h * *mag;
    return;
  }
  std::int64_t mx = 0;
  for (std::int64_t a = 0; a < q; ++a) {
    std::int64_t t = 0;
    for (std::int64_t i = 0; i < nch; ++i) t += cnt[static_cast<std::size_t>(i * Q + a)];
    mx = std::max(mx, t);
  }
  *mag = (static_cast<double>(q) * (static_cast<double>(mx) / n) - 1.0) / static_cast<double>(q - 1);
  *en = -static_cast<double>(b) / n;
}


}  // namespace

void sampler_metropolis(const MetropolisPlan& p) {
  if (p.C == 0) return;
  if (p.target->kind == TargetKind::Callable)
    run_callable(p);
  else
    run_builtin(p);
}

void sampler_lattice(const LatticePlan& p) {
  const std::int64_t C = p.C, H = p.H, W = p.W, q = p.q, half = W / 2;
  const samplers::LatticeOptions& o = *p.opt;
  // blocks per (sweep, colour): site q uses block 16 (q / 64) + q % 16 (kernels)
  const std::int64_t S = o.n_sweeps / o.record_every, NB = 16 * ((H * half + 63) / 64);
  std::uint32_t lo[5];
  std::uint8_t all[5];
  double E[5];
  for (int i = 0; i < 5; ++i) {
    const std::uint64_t T = samplers::ising_threshold(o.beta, static_cast<double>(2 * i - 4) + o.h);
    all[i] = T >= 4294967296ull ? 1 : 0;
    lo[i] = static_cast<std::uint32_t>(T >= 4294967296ull ? 0 : T);
    E[i] = std::exp(o.beta * static_cast<double>(i));
  }
  const SamplerKernels& K = sampler_kernels();
  // rows [r0, r1) of colour col in sweep sw (words drawn here: site q = r*half + k)
  const auto rows = [&](std::int8_t* sub, std::uint64_t g, std::int64_t sw, int col,
                        std::int64_t r0, std::int64_t r1, std::uint32_t* w) {
    const std::uint64_t base = static_cast<std::uint64_t>(2 * sw + col) * static_cast<std::uint64_t>(NB);
    K.site_words(base, r0 * half, r1 * half, g, o.seed, w);
    std::int8_t* Sc = sub + col * H * half;
    const std::int8_t* Oc = sub + (1 - col) * H * half;
    if (q == 0)
      K.ising_rows(Sc, Oc, H, half, col, r0, r1, w, lo, all);
    else
      potts_rows(Sc, Oc, H, half, col, q, r0, r1, w, E);
  };
  const auto one_chain = [&](std::int64_t c, bool rows_parallel) {
    std::int8_t* s = p.spins + c * H * W;
    const std::uint64_t g = static_cast<std::uint64_t>(o.chain_offset + c);
    lattice_init(s, H, W, q, o, g);
    std::vector<std::int8_t> sub(static_cast<std::size_t>(H * W));
    split(s, H, W, sub.data());
    std::vector<std::uint32_t> w(rows_parallel ? 0 : static_cast<std::size_t>(H * half));
    for (std::int64_t sw = 0; sw < o.n_sweeps; ++sw) {
      for (int col = 0; col < 2; ++col) {
        if (rows_parallel) {
          parallel_for(H, 16, [&](std::int64_t r0, std::int64_t r1) {
            std::vector<std::uint32_t> wl(static_cast<std::size_t>((r1 - r0) * half));
            rows(sub.data(), g, sw, col, r0, r1, wl.data());
          });
        } else {
          rows(sub.data(), g, sw, col, 0, H, w.data());
        }
      }
      if ((sw + 1) % o.record_every == 0) {
        const std::int64_t k = (sw + 1) / o.record_every - 1;
        if (k < S)
          lattice_measure(sub.data(), H, W, q, o.h, rows_parallel, p.mag + c * S + k, p.energy + c * S + k);
      }
    }
    join(sub.data(), H, W, s);
  };
  // Many chains: one chain per task; few: the rows of each colour in parallel.
  // Every site draws the same word either way, so the results are the same.
  if (C >= get_num_threads()) {
    parallel_for(C, 1, [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t c = c0; c < c1; ++c) one_chain(c, false);
    });
  } else {
    for (std::int64_t c = 0; c < C; ++c) one_chain(c, true);
  }
}

void sampler_anneal_spins(const SpinAnnealPlan& p) {
  const std::int64_t N = p.N, T = p.T;
  parallel_for(p.C, 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t c = c0; c < c1; ++c) {
      std::int8_t* s = p.spins + c * N;
      const std::uint64_t g = static_cast<std::uint64_t>(p.chain_offset + c);
      double E = 0.0;  // -sum_{i<j} J_ij s_i s_j - sum_i h_i s_i
      for (std::int64_t i = 0; i < N; ++i) {
        double f = 0.0;
        for (std::int64_t j = i + 1; j < N; ++j) f += p.J[i * N + j] * s[j];
        E -= s[i] * f + p.h[i] * s[i];
      }
      p.best_energy[c] = E;
      std::copy(s, s + N, p.best + c * N);
      for (std::int64_t t = 0; t < T; ++t) {
        const double temp = p.temp[t];
        for (std::int64_t i = 0; i < N; ++i) {
          double f = 0.0;
          for (std::int64_t j = 0; j < N; ++j) f += p.J[i * N + j] * s[j];
          f += p.h[i];
          const double dE = 2.0 * s[i] * f;
          const samplers::Block k = samplers::block(static_cast<std::uint64_t>(t * N + i), g, p.seed);
          const double u = samplers::uniform53(k.w[0], k.w[1]);
          if (std::log(u) < -dE / temp) {
            s[i] = static_cast<std::int8_t>(-s[i]);
            E += dE;
            if (E < p.best_energy[c]) {
              p.best_energy[c] = E;
              std::copy(s, s + N, p.best + c * N);
            }
          }
        }
        p.energy[c * T + t] = E;
      }
    }
  });
}

void sampler_gibbs(const GibbsPlan& p) {
  const std::int64_t C = p.C, N = p.N, S = p.S;
  const std::int64_t R = p.n_sweeps / p.record_every;
  std::vector<std::int64_t> x(p.x0, p.x0 + C * N);
  std::vector<double> logits(static_cast<std::size_t>(C * S));
  constexpr std::uint64_t kShared = ~0ull;  // the random scan's stream, shared by all chains
  for (std::int64_t t = 0; t < p.n_sweeps; ++t) {
    for (std::int64_t j = 0; j < N; ++j) {
      const std::uint64_t n = static_cast<std::uint64_t>(t * N + j);
      std::int64_t i = j;
      if (p.random_scan) {
        const samplers::Block k = samplers::block(n, kShared, p.seed);
        i = static_cast<std::int64_t>(samplers::uniform53(k.w[2], k.w[3]) * static_cast<double>(N));
        if (i >= N) i = N - 1;
      }
      (*p.fn)(x.data(), C, N, i, S, logits.data());
      parallel_for(C, 256, [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t c = c0; c < c1; ++c) {
          const double* l = logits.data() + c * S;
          double m = -HUGE_VAL;
          for (std::int64_t a = 0; a < S; ++a) {
            if (std::isnan(l[a]))
              fail(ErrorKind::Value, "samplers.gibbs", "conditional returned NaN for coordinate ", i,
                   " at sweep ", t, " (chain ", c, ")");
            if (l[a] > m) m = l[a];
          }
          if (m == -HUGE_VAL || m == HUGE_VAL)
            fail(ErrorKind::Value, "samplers.gibbs", "conditional returned ",
                 m == HUGE_VAL ? "+inf" : "no finite logit", " for coordinate ", i, " at sweep ", t,
                 " (chain ", c, ")");
          const samplers::Block k =
              samplers::block(n, static_cast<std::uint64_t>(p.chain_offset + c), p.seed);
          const std::int64_t pick =
              samplers::categorical(l, S, m, samplers::uniform53(k.w[0], k.w[1]));
          x[static_cast<std::size_t>(c * N + i)] = pick;
        }
      });
    }
    if ((t + 1) % p.record_every == 0) {
      const std::int64_t r = (t + 1) / p.record_every - 1;
      for (std::int64_t c = 0; c < C; ++c)
        std::copy(x.data() + c * N, x.data() + (c + 1) * N, p.samples + (c * R + r) * N);
    }
  }
}

}  // namespace cpu
}  // namespace kexue
