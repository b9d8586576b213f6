// csrc/cpu/attention.cpp - the CPU backend of kexue::attention: RoPE tables,
// logn scales and segment cumsums built once per call, then the per-ISA
// blocked loops (csrc/cpu/simd/attention_kernels.inc) over work items whose
// partition depends only on the shapes, so results are the same bits for
// any thread count.
#include "cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kexue/attention/math.hpp"
#include "kexue/core/parallel.hpp"

namespace kexue {
namespace cpu {

namespace {

/// base^(-2r/D), r < D/2, in float64.
std::vector<double> rope_freqs(std::int64_t D, double base) {
  std::vector<double> w(static_cast<std::size_t>(D / 2));
  for (std::int64_t r = 0; r < D / 2; ++r)
    w[static_cast<std::size_t>(r)] =
        std::pow(base, -2.0 * static_cast<double>(r) / static_cast<double>(D));
  return w;
}

/// cos/sin tables [n, D/2] of positions first, first+1, ...
void rope_table(std::int64_t n, std::int64_t first, std::int64_t D, double base,
                std::vector<double>& c, std::vector<double>& s) {
  const std::int64_t half = D / 2;
  const std::vector<double> w = rope_freqs(D, base);
  c.assign(static_cast<std::size_t>(n * half), 0.0);
  s.assign(static_cast<std::size_t>(n * half), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t r = 0; r < half; ++r) {
      const double a = static_cast<double>(first + i) * w[static_cast<std::size_t>(r)];
      c[static_cast<std::size_t>(i * half + r)] = std::cos(a);
      s[static_cast<std::size_t>(i * half + r)] = std::sin(a);
    }
}

template <class I>
void cumsum_rows(const I* s, std::int64_t B, std::int64_t N, std::vector<std::int64_t>& c) {
  c.assign(static_cast<std::size_t>(B * N), 0);
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t acc = 0;
    for (std::int64_t i = 0; i < N; ++i) {
      acc += static_cast<std::int64_t>(s[b * N + i]);
      c[static_cast<std::size_t>(b * N + i)] = acc;
    }
  }
}

/// Everything derived from the options; the plan points into it.
struct Derived {
  std::vector<std::int64_t> cseg;
  std::vector<double> qcos, qsin, kcos, ksin, row_scale;

  Derived(AttnPlan& p, const AttnExtras& x) {
    if (x.segment_ids != nullptr) {
      if (x.segment_ids->dtype == DType::Int32)
        cumsum_rows(x.segment_ids->ptr<std::int32_t>(), p.B, p.N, cseg);
      else
        cumsum_rows(x.segment_ids->ptr<std::int64_t>(), p.B, p.N, cseg);
      p.cseg = cseg.data();
    }
    if (x.rope) {
      rope_table(p.N, p.M - p.N, p.D, x.rope_base, qcos, qsin);
      rope_table(p.M, 0, p.D, x.rope_base, kcos, ksin);
      p.qcos = qcos.data();
      p.qsin = qsin.data();
      p.kcos = kcos.data();
      p.ksin = ksin.data();
    }
    if (x.logn) {
      row_scale.assign(static_cast<std::size_t>(p.B * p.H * p.N), 0.0);
      const double inv_log_n0 = 1.0 / std::log(*x.logn);
      const bool dense = p.bmask != nullptr || p.bias != nullptr || p.cseg != nullptr;
      const AttnPlan& cp = p;
      double* rs = row_scale.data();
      const bool f32 = x.dtype == DType::Float32;
      parallel_for(p.B * p.H, 1, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t bh = begin; bh < end; ++bh) {
          const std::int64_t b = bh / cp.H, h = bh % cp.H;
          for (std::int64_t i = 0; i < cp.N; ++i) {
            const std::int64_t qp = i + cp.M - cp.N;
            std::int64_t lo, hi;
            attention::visible_range(qp, cp.M, cp.causal, cp.window, &lo, &hi);
            std::int64_t n = hi - lo;
            if (dense) {
              n = 0;
              const std::int64_t mb = b * cp.ms[0] + h * cp.ms[1] + i * cp.ms[2];
              for (std::int64_t j = lo; j < hi; ++j) {
                if (cp.cseg != nullptr && cp.cseg[b * cp.N + j] > cp.cseg[b * cp.N + i]) continue;
                const std::int64_t mo = mb + j * cp.ms[3];
                if (cp.bmask != nullptr && !cp.bmask[mo]) continue;
                if (cp.bias != nullptr) {
                  const double v = f32 ? static_cast<const float*>(cp.bias)[mo]
                                       : static_cast<const double*>(cp.bias)[mo];
                  if (v == -std::numeric_limits<double>::infinity()) continue;
                }
                ++n;
              }
            }
            rs[bh * cp.N + i] =
                n > 0 ? cp.scale * std::log(static_cast<double>(n)) * inv_log_n0 : 0.0;
          }
        }
      });
      p.row_scale = row_scale.data();
    }
  }
};

template <class F>
std::int64_t lanes() {
  return 64 / static_cast<std::int64_t>(sizeof(F));
}

template <class F>
void backward_t(AttnPlan& p) {
  const std::int64_t W = lanes<F>();
  p.Dp = (p.D + W - 1) / W * W;
  const std::int64_t nkb = (p.M + kAttnBk - 1) / kAttnBk;
  const std::int64_t BK = p.B * p.Hkv;
  // Key-block groups: enough items for many threads even at B*Hkv = 1, fixed
  // by the shapes (each group has its own dq accumulator, summed in order).
  std::int64_t G = BK > 0 ? (16 + BK - 1) / BK : 1;
  G = std::max<std::int64_t>(1, std::min(G, nkb));
  p.G = G;
  const std::int64_t rows = p.B * p.H * p.N;
  const std::int64_t nqb = (p.N + kAttnBq - 1) / kAttnBq, blocks = p.B * p.H * nqb;
  p.Dvp = (p.Dv + W - 1) / W * W;
  std::vector<F> delta(static_cast<std::size_t>(rows));
  std::vector<F> acc(static_cast<std::size_t>(G * rows * p.Dp), F(0));
  std::vector<F> qt(static_cast<std::size_t>(blocks * p.D * kAttnBq));
  std::vector<F> qr(static_cast<std::size_t>(rows * p.Dp));
  std::vector<F> dot(static_cast<std::size_t>(blocks * p.Dv * kAttnBq));
  std::vector<F> dor(p.Dvp == p.Dv ? 0 : static_cast<std::size_t>(rows * p.Dvp));
  std::vector<F> ls(static_cast<std::size_t>(blocks * kAttnBq)), dl(ls.size());
  const F* o = static_cast<const F*>(p.out);
  const F* gout = static_cast<const F*>(p.dout);
  const std::int64_t Dv = p.Dv;
  parallel_for(rows, 1024, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      double s = 0.0;
      for (std::int64_t d = 0; d < Dv; ++d)
        s += static_cast<double>(o[r * Dv + d]) * static_cast<double>(gout[r * Dv + d]);
      delta[static_cast<std::size_t>(r)] = static_cast<F>(s);
    }
  });
  p.delta = delta.data();
  p.dq_acc = acc.data();
  p.qt = qt.data();
  p.qr = qr.data();
  p.dot = dot.data();
  p.dor = dor.empty() ? nullptr : dor.data();
  p.ls = ls.data();
  p.dl = dl.data();
  const AttnKernels& kern = attn_kernels();
  const auto pack = sizeof(F) == 4 ? kern.pack_f32 : kern.pack_f64;
  const auto fn = sizeof(F) == 4 ? kern.bwd_f32 : kern.bwd_f64;
  const AttnPlan& cp = p;
  if (blocks > 0) parallel_for(blocks, 4, [&](std::int64_t b, std::int64_t e) { pack(cp, b, e); });
  if (BK * G > 0)
    parallel_for(BK * G, 1, [&](std::int64_t b, std::int64_t e) { fn(cp, b, e); });
  // dq = scale_i * R_i^T (sum over groups, in order)
  F* dq = static_cast<F*>(p.dq);
  const std::int64_t half = p.D / 2;
  parallel_for(rows, 256, [&](std::int64_t begin, std::int64_t end) {
    std::vector<double> t(static_cast<std::size_t>(cp.D));
    for (std::int64_t r = begin; r < end; ++r) {
      const double sc = cp.row_scale != nullptr ? cp.row_scale[r] : cp.scale;
      for (std::int64_t d = 0; d < cp.D; ++d) {
        double s = 0.0;
        for (std::int64_t g = 0; g < G; ++g)
          s += static_cast<double>(acc[static_cast<std::size_t>((g * rows + r) * cp.Dp + d)]);
        t[static_cast<std::size_t>(d)] = s * sc;
      }
      F* out = dq + r * cp.D;
      if (cp.qcos != nullptr) {
        const std::int64_t i = r % cp.N;
        for (std::int64_t q = 0; q < half; ++q) {
          std::int64_t a, b;
          attention::rope_pair(q, half, cp.interleaved, &a, &b);
          double xa, xb;
          attention::rope_unrotate(t[static_cast<std::size_t>(a)], t[static_cast<std::size_t>(b)],
                                   cp.qcos[i * half + q], cp.qsin[i * half + q], &xa, &xb);
          out[a] = static_cast<F>(xa);
          out[b] = static_cast<F>(xb);
        }
      } else {
        for (std::int64_t d = 0; d < cp.D; ++d) out[d] = static_cast<F>(t[static_cast<std::size_t>(d)]);
      }
    }
  });
}

template <class F>
void decode_t(AttnPlan& p, const AttnExtras& x) {
  std::int64_t maxlen = 0;
  for (std::int64_t b = 0; b < p.B; ++b) maxlen = std::max(maxlen, p.lengths[b]);
  const std::int64_t C = std::max<std::int64_t>(1, (maxlen + kDecodeChunk - 1) / kDecodeChunk);
  p.chunks = C;
  std::vector<double> ml(static_cast<std::size_t>(p.B * p.H * C * 2));
  std::vector<F> po(static_cast<std::size_t>(p.B * p.H * C * p.Dv));
  p.part_ml = ml.data();
  p.part_o = po.data();
  std::vector<double> rs;
  if (x.logn) {
    rs.resize(static_cast<std::size_t>(p.B));
    for (std::int64_t b = 0; b < p.B; ++b) {
      std::int64_t lo, hi;
      attention::visible_range(p.lengths[b] - 1, p.lengths[b], true, p.window, &lo, &hi);
      const std::int64_t n = hi - lo;
      rs[static_cast<std::size_t>(b)] =
          n > 0 ? p.scale * std::log(static_cast<double>(n)) / std::log(*x.logn) : 0.0;
    }
    p.row_scale = rs.data();
  }
  const AttnKernels& kern = attn_kernels();
  const auto fn = sizeof(F) == 4 ? kern.dec_f32 : kern.dec_f64;
  const AttnPlan& cp = p;
  const std::int64_t items = p.B * p.Hkv * C;
  if (items > 0) parallel_for(items, 1, [&](std::int64_t b, std::int64_t e) { fn(cp, b, e); });
  F* out = static_cast<F*>(p.out);
  F* lse = static_cast<F*>(p.lse);
  const double ninf = -std::numeric_limits<double>::infinity();
  parallel_for(p.B * p.H, 16, [&](std::int64_t begin, std::int64_t end) {
    std::vector<double> o(static_cast<std::size_t>(cp.Dv));
    for (std::int64_t bh = begin; bh < end; ++bh) {
      double mx = ninf;
      for (std::int64_t c = 0; c < C; ++c) mx = std::max(mx, ml[static_cast<std::size_t>((bh * C + c) * 2)]);
      std::fill(o.begin(), o.end(), 0.0);
      double l = 0.0;
      bool nan = false;  // a NaN logit in some chunk (its l is NaN)
      for (std::int64_t c = 0; c < C; ++c)
        nan = nan || std::isnan(ml[static_cast<std::size_t>((bh * C + c) * 2 + 1)]);
      if (nan) l = std::numeric_limits<double>::quiet_NaN();
      if (mx != ninf && !nan) {
        for (std::int64_t c = 0; c < C; ++c) {
          const double mc = ml[static_cast<std::size_t>((bh * C + c) * 2)];
          if (mc == ninf) continue;
          const double f = std::exp(mc - mx);
          l += f * ml[static_cast<std::size_t>((bh * C + c) * 2 + 1)];
          for (std::int64_t d = 0; d < cp.Dv; ++d)
            o[static_cast<std::size_t>(d)] +=
                f * static_cast<double>(po[static_cast<std::size_t>((bh * C + c) * cp.Dv + d)]);
        }
      }
      if (nan) std::fill(o.begin(), o.end(), l);
      const double inv = l > 0.0 ? 1.0 / l : (nan ? 1.0 : 0.0);
      for (std::int64_t d = 0; d < cp.Dv; ++d)
        out[bh * cp.Dv + d] = static_cast<F>(o[static_cast<std::size_t>(d)] * inv);
      if (lse != nullptr) lse[bh] = static_cast<F>(l > 0.0 ? mx + std::log(l) : (nan ? l : ninf));
    }
  });
}

template <class F>
void rope_t(const Array& x, const Array& pos, double base, bool interleaved, const Array& out) {
  const std::int64_t R = x.dim(0), N = x.dim(1), D = x.dim(2), half = D / 2;
  const std::vector<double> w = rope_freqs(D, base);
  const F* xs = x.ptr<F>();
  const double* ps = pos.ptr<double>();
  const bool per_row = pos.dim(0) != 1;
  F* ys = out.ptr<F>();
  parallel_for(R * N, 64, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t rn = begin; rn < end; ++rn) {
      const double p = ps[per_row ? rn : rn % N];
      const F* xr = xs + rn * D;
      F* yr = ys + rn * D;
      for (std::int64_t r = 0; r < half; ++r) {
        std::int64_t a, b;
        attention::rope_pair(r, half, interleaved, &a, &b);
        const double ang = p * w[static_cast<std::size_t>(r)];
        double ya, yb;
        attention::rope_rotate(static_cast<double>(xr[a]), static_cast<double>(xr[b]),
                               std::cos(ang), std::sin(ang), &ya, &yb);
        yr[a] = static_cast<F>(ya);
        yr[b] = static_cast<F>(yb);
      }
    }
  });
}

}  // namespace

void attn_forward(AttnPlan p, const AttnExtras& x) {
  Derived d(p, x);
  const std::int64_t items = p.B * p.H * ((p.N + kAttnBq - 1) / kAttnBq);
  if (items == 0) return;
  const AttnKernels& kern = attn_kernels();
  const auto fn = x.dtype == DType::Float32 ? kern.fwd_f32 : kern.fwd_f64;
  const AttnPlan& cp = p;
  parallel_for(items, 1, [&](std::int64_t b, std::int64_t e) { fn(cp, b, e); });
}

void attn_backward(AttnPlan p, const AttnExtras& x) {
  Derived d(p, x);
  if (x.dtype == DType::Float32)
    backward_t<float>(p);
  else
    backward_t<double>(p);
}

void attn_decode(AttnPlan p, const AttnExtras& x) {
  if (x.dtype == DType::Float32)
    decode_t<float>(p, x);
  else
    decode_t<double>(p, x);
}

void attn_rope(const Array& x, const Array& positions, double base, bool interleaved,
               const Array& out) {
  if (x.dtype == DType::Float32)
    rope_t<float>(x, positions, base, interleaved, out);
  else
    rope_t<double>(x, positions, base, interleaved, out);
}

}  // namespace cpu
}  // namespace kexue
