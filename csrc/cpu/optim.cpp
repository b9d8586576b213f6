// csrc/cpu/optim.cpp - the CPU backend of kexue.optim: splits every array into
// fixed chunks (never by thread count), runs the rule's passes over them on
// the pool, and reduces per-array sums in chunk order between passes.
#include "cpu/optim.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/dispatch.hpp"
#include "kexue/core/parallel.hpp"

namespace kexue {
namespace cpu {

namespace {

// Elements per chunk: a multiple of 64 (the bfloat16 RNG block), large
// enough that the pool's per-chunk cost vanishes, small enough to balance.
constexpr std::int64_t kChunk = 1 << 16;

struct Chunks {
  std::vector<OptChunk> list;
  std::vector<std::uint32_t> first;  // first chunk of each item (list index)
};

template <class N>
Chunks split(std::size_t items, const N& size_of) {
  Chunks c;
  for (std::size_t i = 0; i < items; ++i) {
    c.first.push_back(static_cast<std::uint32_t>(c.list.size()));
    const std::int64_t n = size_of(i);
    for (std::int64_t b = 0; b < n; b += kChunk)
      c.list.push_back({static_cast<std::uint32_t>(i), b, std::min(n, b + kChunk)});
  }
  c.first.push_back(static_cast<std::uint32_t>(c.list.size()));
  return c;
}

/// Sum of partial[2 c + k] over the chunks of item i, in chunk order.
double item_sum(const Chunks& c, const std::vector<double>& part, std::size_t i, int k) {
  double s = 0.0;
  for (std::uint32_t j = c.first[i]; j < c.first[i + 1]; ++j) s += part[2 * j + static_cast<std::uint32_t>(k)];
  return s;
}

double get(DType dt, const void* p, std::int64_t i) {
  return dt == DType::Float32 ? static_cast<const float*>(p)[i] : static_cast<const double*>(p)[i];
}
void put(DType dt, void* p, std::int64_t i, double v) {
  if (dt == DType::Float32) static_cast<float*>(p)[i] = static_cast<float>(v);
  else static_cast<double*>(p)[i] = v;
}

void run_elementwise(OptPlan& pl, const OptimKernels& k) {
  const Chunks c = split(pl.items.size(), [&](std::size_t i) { return pl.items[i].n; });
  const std::int64_t nc = static_cast<std::int64_t>(c.list.size());
  std::vector<double> part(2 * c.list.size(), 0.0);
  auto pass = [&](int ps, bool only_reduced) {
    parallel_for(nc, 1, [&](std::int64_t c0, std::int64_t c1) {
      for (std::int64_t j = c0; j < c1; ++j) {
        const OptChunk& ch = c.list[static_cast<std::size_t>(j)];
        const OptItem& it = pl.items[ch.item];
        if (only_reduced && !it.reduced) continue;
        k.chunk(pl, it, ps, ch.b, ch.e, &part[2 * static_cast<std::size_t>(j)]);
      }
    });
  };
  pass(0, false);
  if (pl.rule == OptRule::Lamb) {
    for (std::size_t i = 0; i < pl.items.size(); ++i) {
      const double rn = std::sqrt(item_sum(c, part, i, 0)), pn = std::sqrt(item_sum(c, part, i, 1));
      const double tau = (pn > 0.0 && rn > 0.0) ? pn / rn : 1.0;
      pl.items[i].k[0] = pl.lr * tau;
    }
    pass(1, false);
  } else if (pl.rule == OptRule::Amos) {
    bool any = false;
    const double xi = pl.lr, bc = 1.0 - std::pow(pl.beta, static_cast<double>(pl.step));
    for (std::size_t i = 0; i < pl.items.size(); ++i) {
      OptItem& it = pl.items[i];
      if (!it.reduced) continue;
      any = true;
      const double g2 = it.n > 0 ? item_sum(c, part, i, 0) / static_cast<double>(it.n) : 0.0;
      const double v = get(pl.dt, it.s[0], 0), b = get(pl.dt, it.s[1], 0);
      const double vn = pl.beta * v + (1.0 - pl.beta) * g2;
      const double r = bc / std::max(vn, pl.eps);
      const double cc = 1.0 / std::sqrt(1.0 + pl.zeta * std::sqrt(xi) * b);
      const double gamma = std::sqrt(pl.fr) * cc * xi * xi * r * g2;
      const double a0 = xi * it.eta;
      const double dd = 1.0 / (1.0 + pl.zeta * std::sqrt(a0) * b);
      it.k[0] = pl.fr * dd;
      it.k[1] = a0 * std::sqrt(r);
      it.k[2] = 0.5 * gamma;
      put(pl.dt, it.s[0], 0, vn);
      put(pl.dt, it.s[1], 0, b + gamma * (pl.fr + b));
    }
    if (any) pass(1, true);
  }
}

/// Adafactor: stats (pass 0), sum of U^2 for the factored arrays (pass 1), update (pass 2).
void run_adafactor(OptPlan& pl, const OptimKernels& k) {
  const std::size_t ni = pl.items.size();
  // Full arrays: element chunks. Factored arrays: row chunks that never
  // cross an outer (P0) index, at most 16 per outer index.
  std::vector<OptChunk> rows;
  std::vector<std::uint32_t> rfirst;
  const Chunks c = split(ni, [&](std::size_t i) { return pl.items[i].factored ? 0 : pl.items[i].n; });
  for (std::size_t i = 0; i < ni; ++i) {
    rfirst.push_back(static_cast<std::uint32_t>(rows.size()));
    const OptItem& it = pl.items[i];
    if (!it.factored || it.n == 0) continue;
    const std::int64_t L = it.P1 * it.nb * it.P2;
    const std::int64_t rpc = std::max<std::int64_t>({1, (kChunk + L - 1) / L, (it.na + 15) / 16});
    for (std::int64_t i0 = 0; i0 < it.P0; ++i0)
      for (std::int64_t a = 0; a < it.na; a += rpc)
        rows.push_back({static_cast<std::uint32_t>(i), i0 * it.na + a, i0 * it.na + std::min(it.na, a + rpc)});
  }
  rfirst.push_back(static_cast<std::uint32_t>(rows.size()));
  std::vector<std::vector<double>> xs(ni), inv(ni), ypart(rows.size());
  for (std::size_t i = 0; i < ni; ++i) {
    const OptItem& it = pl.items[i];
    if (!it.factored) continue;
    xs[i].assign(static_cast<std::size_t>(it.P0 * it.na * it.P1 * it.P2), 0.0);
    inv[i].assign(static_cast<std::size_t>(it.P0 * it.P1 * it.P2), 0.0);
  }
  const std::int64_t nc = static_cast<std::int64_t>(c.list.size());
  const std::int64_t nr = static_cast<std::int64_t>(rows.size());
  std::vector<double> part(2 * c.list.size(), 0.0), rpart(2 * rows.size(), 0.0);
  auto pass = [&](int ps) {
    parallel_for(nc + nr, 1, [&](std::int64_t c0, std::int64_t c1) {
      std::vector<double> tmp;
      for (std::int64_t j = c0; j < c1; ++j) {
        if (j < nc) {
          if (ps == 1) continue;
          const OptChunk& ch = c.list[static_cast<std::size_t>(j)];
          k.chunk(pl, pl.items[ch.item], ps, ch.b, ch.e, &part[2 * static_cast<std::size_t>(j)]);
          continue;
        }
        const std::size_t r = static_cast<std::size_t>(j - nc);
        const OptChunk& ch = rows[r];
        const OptItem& it = pl.items[ch.item];
        double* yp = nullptr;
        if (ps == 0) {
          ypart[r].assign(static_cast<std::size_t>(it.P1 * it.nb * it.P2), 0.0);
          yp = ypart[r].data();
          tmp.resize(static_cast<std::size_t>(it.nb * it.P2));
        }
        k.af_rows(pl, it, ps, ch.b, ch.e, xs[ch.item].data(), yp, inv[ch.item].data(), tmp.data(),
                  &rpart[2 * r]);
      }
    });
  };
  pass(0);
  std::vector<double> su(ni, 0.0), sp(ni, 0.0);
  for (std::size_t i = 0; i < ni; ++i) {
    OptItem& it = pl.items[i];
    if (!it.factored) {
      su[i] = item_sum(c, part, i, 0);
      sp[i] = item_sum(c, part, i, 1);
      continue;
    }
    if (it.n == 0) continue;  // no statistics from no elements: the state stays as it is
    for (std::uint32_t r = rfirst[i]; r < rfirst[i + 1]; ++r) sp[i] += rpart[2 * r + 1];
    // Y-type sums (over the lo axis) per outer index, in chunk order.
    const std::int64_t L = it.P1 * it.nb * it.P2, XL = it.P1 * it.P2;
    std::vector<double> ysum(static_cast<std::size_t>(it.P0 * L), 0.0);
    for (std::uint32_t r = rfirst[i]; r < rfirst[i + 1]; ++r) {
      const std::int64_t i0 = rows[r].b / it.na;
      for (std::int64_t j = 0; j < L; ++j) ysum[static_cast<std::size_t>(i0 * L + j)] += ypart[r][static_cast<std::size_t>(j)];
    }
    // EMA of the means: X-type state (hi axis removed) gets X/nb, Y-type gets Y/na.
    void* xst = it.a1_hi ? it.s[2] : it.s[3];
    void* yst = it.a1_hi ? it.s[3] : it.s[2];
    const double b2 = pl.beta2, w2 = 1.0 - pl.beta2;
    for (std::size_t j = 0; j < xs[i].size(); ++j) {
      const std::int64_t jj = static_cast<std::int64_t>(j);
      put(pl.dt, xst, jj, b2 * get(pl.dt, xst, jj) + w2 * (xs[i][j] / static_cast<double>(it.nb)));
    }
    for (std::size_t j = 0; j < ysum.size(); ++j) {
      const std::int64_t jj = static_cast<std::int64_t>(j);
      put(pl.dt, yst, jj, b2 * get(pl.dt, yst, jj) + w2 * (ysum[j] / static_cast<double>(it.na)));
    }
    // 1 / mean over a2 of R, per (i0, i1, i2). R = X-type when a1 is the hi axis
    // (then a2 = the lo axis, na), else Y-type (a2 = the hi axis, nb).
    for (std::int64_t i0 = 0; i0 < it.P0; ++i0)
      for (std::int64_t q = 0; q < XL; ++q) {
        const std::int64_t i1 = q / it.P2, i2 = q % it.P2;
        double s = 0.0;
        if (it.a1_hi) {
          for (std::int64_t a = 0; a < it.na; ++a)
            s += get(pl.dt, xst, ((i0 * it.na + a) * it.P1 + i1) * it.P2 + i2);
          s /= static_cast<double>(it.na);
        } else {
          for (std::int64_t b = 0; b < it.nb; ++b)
            s += get(pl.dt, yst, ((i0 * it.P1 + i1) * it.nb + b) * it.P2 + i2);
          s /= static_cast<double>(it.nb);
        }
        inv[i][static_cast<std::size_t>(i0 * XL + q)] = 1.0 / s;
      }
  }
  pass(1);
  for (std::size_t i = 0; i < ni; ++i) {
    OptItem& it = pl.items[i];
    if (it.factored)
      for (std::uint32_t r = rfirst[i]; r < rfirst[i + 1]; ++r) su[i] += rpart[2 * r];
    const double n = static_cast<double>(std::max<std::int64_t>(it.n, 1));
    const double rms_u = std::sqrt(su[i] / n), rms_p = std::sqrt(sp[i] / n);
    it.k[0] = 1.0 / std::max(1.0, rms_u / pl.d);
    it.k[1] = pl.lr * (pl.mbps ? std::max(rms_p, pl.eps2) : 1.0);
  }
  pass(2);
}

}  // namespace

void optim_run(OptPlan& pl) {
  const OptimKernels& k = optim_kernels();
  if (pl.rule == OptRule::Adafactor) run_adafactor(pl, k);
  else run_elementwise(pl, k);
}

namespace {

Chunks chunks_of(const std::vector<Array>& arrays) {
  return split(arrays.size(), [&](std::size_t i) { return arrays[i].size(); });
}

/// fn(array index, chunk number, begin, end) over the chunks c of `arrays`, on the pool.
template <class Fn>
void each_chunk(const Chunks& c, const Fn& fn) {
  parallel_for(static_cast<std::int64_t>(c.list.size()), 1, [&](std::int64_t c0, std::int64_t c1) {
    for (std::int64_t j = c0; j < c1; ++j) {
      const OptChunk& ch = c.list[static_cast<std::size_t>(j)];
      fn(ch.item, static_cast<std::size_t>(j), ch.b, ch.e);
    }
  });
}

}  // namespace

double optim_sumsq(const std::vector<Array>& grads, bool* bad) {
  const OptimKernels& k = optim_kernels();
  const Chunks c = chunks_of(grads);
  const std::size_t n = c.list.size();
  std::vector<double> part(n, 0.0);
  std::vector<char> nonfinite(n, 0);
  each_chunk(c, [&](std::uint32_t a, std::size_t j, std::int64_t b, std::int64_t e) {
    bool nf = false;
    part[j] = k.sumsq(grads[a].data, grads[a].dtype, b, e, &nf);
    nonfinite[j] = nf ? 1 : 0;
  });
  double s = 0.0;  // chunk order: the same for any thread count
  for (std::size_t j = 0; j < n; ++j) {
    s += part[j];
    if (nonfinite[j]) *bad = true;
  }
  return s;
}

void optim_scale(const std::vector<Array>& grads, double f) {
  const OptimKernels& k = optim_kernels();
  each_chunk(chunks_of(grads), [&](std::uint32_t a, std::size_t, std::int64_t b, std::int64_t e) {
    k.scale(grads[a].data, grads[a].dtype, b, e, f);
  });
}

void optim_child(const std::vector<Array>& grads, std::uint64_t thresh, double inv_p,
                 std::uint64_t seed, std::int64_t step) {
  const OptimKernels& k = optim_kernels();
  each_chunk(chunks_of(grads), [&](std::uint32_t a, std::size_t, std::int64_t b, std::int64_t e) {
    k.child(grads[a].data, grads[a].dtype, b, e, thresh, inv_p, a, step, seed);
  });
}

}  // namespace cpu
}  // namespace kexue
