// csrc/cpu/global_pointer.cpp - GlobalPointer scores and their gradients on
// the CPU: RoPE from a cos/sin table built once per call, the T x T products
// through the per-ISA kernel (gemm_plan.hpp), masks applied after, parallel
// over (batch, type) -- or over the batch for Efficient GlobalPointer, whose
// weight gradients are reduced in batch order (thread-count independent).
// Decoding: one list of spans per batch row, joined in row order.
#include "cpu/global_pointer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/gemm_plan.hpp"
#include "kexue/core/parallel.hpp"

namespace kexue {
namespace cpu {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// cos/sin of p * base^(-2r/D) for p < T, r < D/2.
struct Rope {
  std::int64_t half = 0;
  std::vector<double> c, s;
  Rope(std::int64_t T, std::int64_t D, double base, bool on) {
    if (!on) return;
    half = D / 2;
    c.resize(static_cast<std::size_t>(T * half));
    s.resize(static_cast<std::size_t>(T * half));
    for (std::int64_t r = 0; r < half; ++r) {
      const double w = std::pow(base, -2.0 * static_cast<double>(r) / static_cast<double>(D));
      for (std::int64_t p = 0; p < T; ++p) {
        c[static_cast<std::size_t>(p * half + r)] = std::cos(static_cast<double>(p) * w);
        s[static_cast<std::size_t>(p * half + r)] = std::sin(static_cast<double>(p) * w);
      }
    }
  }
};

/// The index pair rotated together by frequency r.
inline void pair(bool interleaved, std::int64_t D, std::int64_t r, std::int64_t& a,
                 std::int64_t& b) {
  if (interleaved) {
    a = 2 * r;
    b = 2 * r + 1;
  } else {
    a = r;
    b = r + D / 2;
  }
}

/// out[0..D) = R_p x (stride sx between x's channels), in double.
template <class F>
void rotate(const F* x, std::int64_t sx, std::int64_t D, std::int64_t p, const Rope& rope,
            bool interleaved, double* out) {
  for (std::int64_t d = 0; d < D; ++d) out[d] = static_cast<double>(x[d * sx]);
  if (rope.half == 0) return;
  for (std::int64_t r = 0; r < rope.half; ++r) {
    std::int64_t a, b;
    pair(interleaved, D, r, a, b);
    const double c = rope.c[static_cast<std::size_t>(p * rope.half + r)];
    const double s = rope.s[static_cast<std::size_t>(p * rope.half + r)];
    const double xa = out[a], xb = out[b];
    out[a] = xa * c - xb * s;
    out[b] = xb * c + xa * s;
  }
}

/// g <- R_p^T g in place (the gradient through a rotation).
void unrotate(double* g, std::int64_t D, std::int64_t p, const Rope& rope, bool interleaved) {
  for (std::int64_t r = 0; r < rope.half; ++r) {
    std::int64_t a, b;
    pair(interleaved, D, r, a, b);
    const double c = rope.c[static_cast<std::size_t>(p * rope.half + r)];
    const double s = rope.s[static_cast<std::size_t>(p * rope.half + r)];
    const double ga = g[a], gb = g[b];
    g[a] = ga * c + gb * s;
    g[b] = gb * c - ga * s;
  }
}

template <class F>
void gemm(std::int64_t M, std::int64_t N, std::int64_t K, const F* A, std::int64_t lda, const F* B,
          std::int64_t ldb, F* C, std::int64_t ldc, double alpha, bool upper) {
  const GemmKernels& g = gemm_kernels();
  if constexpr (sizeof(F) == 4)
    g.f32(M, N, K, A, lda, B, ldb, C, ldc, static_cast<float>(alpha), upper);
  else
    g.f64(M, N, K, A, lda, B, ldb, C, ldc, alpha, upper);
}

/// Is cell (i, j) of batch row b excluded?
inline bool cell_masked(const bool* mask, std::int64_t b, std::int64_t T, std::int64_t i,
                        std::int64_t j, bool tril) {
  return (tril && i > j) || (mask != nullptr && (!mask[b * T + i] || !mask[b * T + j]));
}

/// Qr [T,D] (rotated rows) and Kt [D,T] (rotated, transposed) of one head.
template <class F>
void rotated_qk(const F* q, const F* k, std::int64_t row_stride, std::int64_t ch_stride,
                std::int64_t T, std::int64_t D, const Rope& rope, bool interleaved, F* Qr, F* Kr,
                F* Kt, double* tmp) {
  for (std::int64_t i = 0; i < T; ++i) {
    rotate(q + i * row_stride, ch_stride, D, i, rope, interleaved, tmp);
    for (std::int64_t d = 0; d < D; ++d) Qr[i * D + d] = static_cast<F>(tmp[d]);
    rotate(k + i * row_stride, ch_stride, D, i, rope, interleaved, tmp);
    for (std::int64_t d = 0; d < D; ++d) {
      if (Kr) Kr[i * D + d] = static_cast<F>(tmp[d]);
      if (Kt) Kt[d * T + i] = static_cast<F>(tmp[d]);
    }
  }
}

template <class F>
void scores_t(const GpShape& s, const Array& qa, const Array& ka, const bool* mask,
              const global_pointer::Options& opt, const Array& out) {
  const std::int64_t B = s.B, T = s.T, E = s.E, D = s.D;
  const Rope rope(T, D, opt.rope_base, opt.rope);
  const F* q = qa.ptr<F>();
  const F* k = ka.ptr<F>();
  F* o = out.ptr<F>();
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  parallel_for(B * E, 1, [&](std::int64_t t0, std::int64_t t1) {
    std::vector<F> Qr(static_cast<std::size_t>(T * D)), Kt(static_cast<std::size_t>(D * T));
    std::vector<double> tmp(static_cast<std::size_t>(D));
    for (std::int64_t task = t0; task < t1; ++task) {
      const std::int64_t b = task / E, e = task % E;
      const std::int64_t base = (b * T * E + e) * D;
      rotated_qk(q + base, k + base, E * D, 1, T, D, rope, opt.interleaved, Qr.data(),
                 static_cast<F*>(nullptr), Kt.data(), tmp.data());
      F* S = o + (b * E + e) * T * T;
      gemm<F>(T, T, D, Qr.data(), D, Kt.data(), T, S, T, scale, opt.tril_mask);
      for (std::int64_t i = 0; i < T; ++i)
        for (std::int64_t j = 0; j < T; ++j)
          if (cell_masked(mask, b, T, i, j, opt.tril_mask)) S[i * T + j] = static_cast<F>(-kInf);
    }
  });
}

template <class F>
void scores_backward_t(const GpShape& s, const Array& qa, const Array& ka, const Array& dsa,
                       const bool* mask, const global_pointer::Options& opt, const Array& dqa,
                       const Array& dka) {
  const std::int64_t B = s.B, T = s.T, E = s.E, D = s.D;
  const Rope rope(T, D, opt.rope_base, opt.rope);
  const F* q = qa.ptr<F>();
  const F* k = ka.ptr<F>();
  const F* ds = dsa.ptr<F>();
  F* dq = dqa.ptr<F>();
  F* dk = dka.ptr<F>();
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  parallel_for(B * E, 1, [&](std::int64_t t0, std::int64_t t1) {
    const std::size_t TD = static_cast<std::size_t>(T * D), TT = static_cast<std::size_t>(T * T);
    std::vector<F> Qr(TD), Kr(TD), G(TT), GT(TT), dQ(TD), dK(TD);
    std::vector<double> tmp(static_cast<std::size_t>(D));
    for (std::int64_t task = t0; task < t1; ++task) {
      const std::int64_t b = task / E, e = task % E;
      const std::int64_t base = (b * T * E + e) * D;
      rotated_qk(q + base, k + base, E * D, 1, T, D, rope, opt.interleaved, Qr.data(), Kr.data(),
                 static_cast<F*>(nullptr), tmp.data());
      const F* dS = ds + (b * E + e) * T * T;
      for (std::int64_t i = 0; i < T; ++i)
        for (std::int64_t j = 0; j < T; ++j) {
          const F g = cell_masked(mask, b, T, i, j, opt.tril_mask) ? F(0) : dS[i * T + j];
          G[static_cast<std::size_t>(i * T + j)] = g;
          GT[static_cast<std::size_t>(j * T + i)] = g;
        }
      gemm<F>(T, D, T, G.data(), T, Kr.data(), D, dQ.data(), D, scale, false);
      gemm<F>(T, D, T, GT.data(), T, Qr.data(), D, dK.data(), D, scale, false);
      for (std::int64_t i = 0; i < T; ++i) {
        for (int which = 0; which < 2; ++which) {
          const F* src = (which == 0 ? dQ.data() : dK.data()) + i * D;
          for (std::int64_t d = 0; d < D; ++d) tmp[static_cast<std::size_t>(d)] = src[d];
          unrotate(tmp.data(), D, i, rope, opt.interleaved);
          F* dst = (which == 0 ? dq : dk) + base + i * E * D;
          for (std::int64_t d = 0; d < D; ++d) dst[d] = static_cast<F>(tmp[static_cast<std::size_t>(d)]);
        }
      }
    }
  });
}

/// c = h W + bias for one batch row: [T, 2E] doubles.
template <class F>
void egp_bias(const F* h, const F* W, const F* bias, std::int64_t T, std::int64_t C2,
              std::int64_t E2, double* c) {
  for (std::int64_t i = 0; i < T; ++i)
    for (std::int64_t o = 0; o < E2; ++o) {
      double acc = bias ? static_cast<double>(bias[o]) : 0.0;
      for (std::int64_t m = 0; m < C2; ++m)
        acc += static_cast<double>(h[i * C2 + m]) * static_cast<double>(W[m * E2 + o]);
      c[i * E2 + o] = acc;
    }
}

template <class F>
void efficient_t(const GpShape& s, const Array& ha, const Array& Wa, const Array* biasa,
                 const bool* mask, const global_pointer::Options& opt, const Array& out) {
  const std::int64_t B = s.B, T = s.T, E = s.E, d = s.D, C2 = 2 * d, E2 = 2 * E;
  const Rope rope(T, d, opt.rope_base, opt.rope);
  const F* h = ha.ptr<F>();
  const F* W = Wa.ptr<F>();
  const F* bias = biasa ? biasa->ptr<F>() : nullptr;
  F* o = out.ptr<F>();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  parallel_for(B, 1, [&](std::int64_t b0, std::int64_t b1) {
    std::vector<F> Qr(static_cast<std::size_t>(T * d)), Kt(static_cast<std::size_t>(d * T)),
        S(static_cast<std::size_t>(T * T));
    std::vector<double> tmp(static_cast<std::size_t>(d)), c(static_cast<std::size_t>(T * E2));
    for (std::int64_t b = b0; b < b1; ++b) {
      const F* hb = h + b * T * C2;
      // q = even channels, k = odd channels (bert4keras' interleaved split).
      rotated_qk(hb, hb + 1, C2, 2, T, d, rope, true, Qr.data(), static_cast<F*>(nullptr),
                 Kt.data(), tmp.data());
      gemm<F>(T, T, d, Qr.data(), d, Kt.data(), T, S.data(), T, scale, opt.tril_mask);
      egp_bias(hb, W, bias, T, C2, E2, c.data());
      for (std::int64_t e = 0; e < E; ++e) {
        F* oe = o + (b * E + e) * T * T;
        for (std::int64_t i = 0; i < T; ++i)
          for (std::int64_t j = 0; j < T; ++j)
            oe[i * T + j] =
                cell_masked(mask, b, T, i, j, opt.tril_mask)
                    ? static_cast<F>(-kInf)
                    : static_cast<F>(static_cast<double>(S[static_cast<std::size_t>(i * T + j)]) +
                                     0.5 * (c[static_cast<std::size_t>(i * E2 + 2 * e + 1)] +
                                            c[static_cast<std::size_t>(j * E2 + 2 * e)]));
      }
    }
  });
}

template <class F>
void efficient_backward_t(const GpShape& s, const Array& ha, const Array& Wa, const Array& dsa,
                          const Array* biasa, const bool* mask,
                          const global_pointer::Options& opt, const Array& dha, const Array& dWa,
                          const Array& dba) {
  const std::int64_t B = s.B, T = s.T, E = s.E, d = s.D, C2 = 2 * d, E2 = 2 * E;
  const Rope rope(T, d, opt.rope_base, opt.rope);
  const F* h = ha.ptr<F>();
  const F* W = Wa.ptr<F>();
  const F* ds = dsa.ptr<F>();
  F* dh = dha.ptr<F>();
  (void)biasa;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  // Per-batch-row partial sums of dW and dbias, reduced in row order below.
  std::vector<double> dWb(static_cast<std::size_t>(B * C2 * E2), 0.0),
      dbb(static_cast<std::size_t>(B * E2), 0.0);
  parallel_for(B, 1, [&](std::int64_t b0, std::int64_t b1) {
    const std::size_t Td = static_cast<std::size_t>(T * d), TT = static_cast<std::size_t>(T * T);
    std::vector<F> Qr(Td), Kr(Td), G(TT), GT(TT), dQ(Td), dK(Td);
    std::vector<double> tmp(static_cast<std::size_t>(d)), dc(static_cast<std::size_t>(T * E2)),
        Gd(TT);
    for (std::int64_t b = b0; b < b1; ++b) {
      const F* hb = h + b * T * C2;
      rotated_qk(hb, hb + 1, C2, 2, T, d, rope, true, Qr.data(), Kr.data(),
                 static_cast<F*>(nullptr), tmp.data());
      for (auto& v : Gd) v = 0.0;
      for (auto& v : dc) v = 0.0;
      for (std::int64_t e = 0; e < E; ++e) {
        const F* dS = ds + (b * E + e) * T * T;
        for (std::int64_t i = 0; i < T; ++i)
          for (std::int64_t j = 0; j < T; ++j) {
            if (cell_masked(mask, b, T, i, j, opt.tril_mask)) continue;
            const double g = static_cast<double>(dS[i * T + j]);
            Gd[static_cast<std::size_t>(i * T + j)] += g;
            dc[static_cast<std::size_t>(i * E2 + 2 * e + 1)] += 0.5 * g;
            dc[static_cast<std::size_t>(j * E2 + 2 * e)] += 0.5 * g;
          }
      }
      for (std::int64_t i = 0; i < T; ++i)
        for (std::int64_t j = 0; j < T; ++j) {
          const F g = static_cast<F>(Gd[static_cast<std::size_t>(i * T + j)]);
          G[static_cast<std::size_t>(i * T + j)] = g;
          GT[static_cast<std::size_t>(j * T + i)] = g;
        }
      gemm<F>(T, d, T, G.data(), T, Kr.data(), d, dQ.data(), d, scale, false);
      gemm<F>(T, d, T, GT.data(), T, Qr.data(), d, dK.data(), d, scale, false);
      F* dhb = dh + b * T * C2;
      for (std::int64_t i = 0; i < T; ++i) {
        for (int which = 0; which < 2; ++which) {
          const F* src = (which == 0 ? dQ.data() : dK.data()) + i * d;
          for (std::int64_t m = 0; m < d; ++m) tmp[static_cast<std::size_t>(m)] = src[m];
          unrotate(tmp.data(), d, i, rope, true);
          for (std::int64_t m = 0; m < d; ++m) {
            // dh = rotary part + dc W^T (the bias classifier reads un-rotated h)
            double acc = tmp[static_cast<std::size_t>(m)];
            const std::int64_t ch = 2 * m + which;
            for (std::int64_t o2 = 0; o2 < E2; ++o2)
              acc += dc[static_cast<std::size_t>(i * E2 + o2)] * static_cast<double>(W[ch * E2 + o2]);
            dhb[i * C2 + ch] = static_cast<F>(acc);
          }
        }
      }
      double* dWp = dWb.data() + b * C2 * E2;
      double* dbp = dbb.data() + b * E2;
      for (std::int64_t i = 0; i < T; ++i)
        for (std::int64_t o2 = 0; o2 < E2; ++o2) {
          const double g = dc[static_cast<std::size_t>(i * E2 + o2)];
          dbp[o2] += g;
          for (std::int64_t m = 0; m < C2; ++m) dWp[m * E2 + o2] += static_cast<double>(hb[i * C2 + m]) * g;
        }
    }
  });
  F* dW = dWa.ptr<F>();
  F* db = dba.ptr<F>();
  for (std::int64_t x = 0; x < C2 * E2; ++x) {
    double acc = 0.0;
    for (std::int64_t b = 0; b < B; ++b) acc += dWb[static_cast<std::size_t>(b * C2 * E2 + x)];
    dW[x] = static_cast<F>(acc);
  }
  for (std::int64_t x = 0; x < E2; ++x) {
    double acc = 0.0;
    for (std::int64_t b = 0; b < B; ++b) acc += dbb[static_cast<std::size_t>(b * E2 + x)];
    db[x] = static_cast<F>(acc);
  }
}

}  // namespace

void gp_scores(const GpShape& s, const Array& q, const Array& k, const bool* mask,
               const global_pointer::Options& opt, const Array& out) {
  if (q.dtype == DType::Float32) scores_t<float>(s, q, k, mask, opt, out);
  else scores_t<double>(s, q, k, mask, opt, out);
}
void gp_scores_backward(const GpShape& s, const Array& q, const Array& k, const Array& ds,
                        const bool* mask, const global_pointer::Options& opt, const Array& dq,
                        const Array& dk) {
  if (q.dtype == DType::Float32) scores_backward_t<float>(s, q, k, ds, mask, opt, dq, dk);
  else scores_backward_t<double>(s, q, k, ds, mask, opt, dq, dk);
}
void gp_efficient(const GpShape& s, const Array& h, const Array& W, const Array* bias,
                  const bool* mask, const global_pointer::Options& opt, const Array& out) {
  if (h.dtype == DType::Float32) efficient_t<float>(s, h, W, bias, mask, opt, out);
  else efficient_t<double>(s, h, W, bias, mask, opt, out);
}
void gp_efficient_backward(const GpShape& s, const Array& h, const Array& W, const Array& ds,
                           const Array* bias, const bool* mask, const global_pointer::Options& opt,
                           const Array& dh, const Array& dW, const Array& dbias) {
  if (h.dtype == DType::Float32)
    efficient_backward_t<float>(s, h, W, ds, bias, mask, opt, dh, dW, dbias);
  else
    efficient_backward_t<double>(s, h, W, ds, bias, mask, opt, dh, dW, dbias);
}

namespace {

template <class F>
void decode_row(const F* s, std::int64_t b, std::int64_t E, std::int64_t T, double threshold,
                const bool* mask, bool flat, std::vector<global_pointer::Span>& out) {
  const bool* m = mask ? mask + b * T : nullptr;
  std::vector<double> val;
  for (std::int64_t e = 0; e < E; ++e) {
    const F* se = s + (b * E + e) * T * T;
    for (std::int64_t i = 0; i < T; ++i) {
      if (m && !m[i]) continue;
      for (std::int64_t j = 0; j < T; ++j) {
        const double v = static_cast<double>(se[i * T + j]);
        if (!(v > threshold) || (m && !m[j])) continue;
        out.push_back({b, e, i, j});
        val.push_back(v);
      }
    }
  }
  if (!flat || out.empty()) return;
  // Greedy by descending score; ties keep the lexicographic order (stable).
  std::vector<std::size_t> order(out.size());
  for (std::size_t r = 0; r < order.size(); ++r) order[r] = r;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return val[x] > val[y]; });
  std::vector<char> keep(out.size(), 0);
  std::vector<std::pair<std::int64_t, std::int64_t>> taken;
  for (std::size_t r : order) {
    const std::int64_t i = out[r][2], j = out[r][3];
    bool free = true;
    for (const auto& t : taken)
      if (!(j < t.first || t.second < i)) {
        free = false;
        break;
      }
    if (free) {
      taken.emplace_back(i, j);
      keep[r] = 1;
    }
  }
  std::size_t w = 0;
  for (std::size_t r = 0; r < out.size(); ++r)
    if (keep[r]) out[w++] = out[r];
  out.resize(w);
}

}  // namespace

std::vector<global_pointer::Span> gp_decode(const Array& scores, double threshold, const bool* mask,
                                            bool flat) {
  const std::int64_t B = scores.dim(0), E = scores.dim(1), T = scores.dim(2);
  std::vector<std::vector<global_pointer::Span>> rows(static_cast<std::size_t>(B));
  parallel_for(B, 1, [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b) {
      auto& out = rows[static_cast<std::size_t>(b)];
      if (scores.dtype == DType::Float32)
        decode_row(scores.ptr<float>(), b, E, T, threshold, mask, flat, out);
      else
        decode_row(scores.ptr<double>(), b, E, T, threshold, mask, flat, out);
    }
  });
  std::vector<global_pointer::Span> all;
  for (auto& r : rows) all.insert(all.end(), r.begin(), r.end());
  return all;
}

}  // namespace cpu
}  // namespace kexue
