// kexue/decoders/crf_lanes.hpp - the CRF forward-backward for eight rows at
// once, one row per lane of a v8d.
//
// A single row's recursion is a chain of dependent exp/log steps: for small
// K it is latency-bound and its vectors are mostly tail. With one row per
// lane every instruction does eight rows' work and the chains overlap. The
// rows are right-aligned: lane q's valid steps sit at positions
// [start[q], S) of S = max L steps, so the forward pass starts lane q at
// start[q] and every lane ends at S - 1, where the backward pass starts them
// all together. Each lane computes exactly the operations of crf_forward /
// crf_backward_step for its row, in the same order, so the results are the
// same bits as the one-row path. GCC/Clang only (vector extensions).
#pragma once
#include <cstdint>

#include "kexue/core/math.hpp"
#include "kexue/decoders/crf.hpp"

#if defined(KEXUE_HAS_V8D)

namespace kexue {
inline namespace KEXUE_ISA_NS {
namespace decoders {

using math::v8d;
constexpr int kLanesRows = 8;

/// Exact LSE_i(prev_i + M[i,j]) for one lane (the rare fallback).
KX_HD inline double lane_exact_lse(std::int64_t K, const v8d* prev, int q, const double* Mlog,
                                   bool transposed, std::int64_t j) {
  double mx = -math::kInf;
  for (std::int64_t i = 0; i < K; ++i) {
    const double t = prev[i][q] + (transposed ? Mlog[j * K + i] : Mlog[i * K + j]);
    mx = t > mx ? t : mx;
  }
  if (mx == -math::kInf || mx == math::kInf) {
    double v = mx;
    for (std::int64_t i = 0; i < K; ++i) {
      const double t = prev[i][q] + (transposed ? Mlog[j * K + i] : Mlog[i * K + j]);
      if (t != t) v = t;
    }
    return v;
  }
  double s = 0.0;
  for (std::int64_t i = 0; i < K; ++i)
    s += math::exp(prev[i][q] + (transposed ? Mlog[j * K + i] : Mlog[i * K + j]) - mx);
  return mx + math::log(s);
}

/// acc[j] = sum_i u[i] X[i,j] for eight lanes (i in order; four columns
/// share each u[i] load; fused multiply-adds where the ISA has them).
KX_HD KX_FMA_OK inline void matvec_lanes(std::int64_t K, const v8d* u, const double* X, v8d* acc) {
  std::int64_t j = 0;
  for (; j + 4 <= K; j += 4) {
    v8d a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (std::int64_t i = 0; i < K; ++i) {
      const double* Xi = X + i * K + j;
      const v8d ui = u[i];
      a0 += ui * Xi[0];
      a1 += ui * Xi[1];
      a2 += ui * Xi[2];
      a3 += ui * Xi[3];
    }
    acc[j] = a0;
    acc[j + 1] = a1;
    acc[j + 2] = a2;
    acc[j + 3] = a3;
  }
  for (; j < K; ++j) {
    v8d a0 = {};
    for (std::int64_t i = 0; i < K; ++i) a0 += u[i] * X[i * K + j];
    acc[j] = a0;
  }
}

/// Mv[i,j] += u[i] v[j] for eight lanes (fused where the ISA has FMA).
KX_HD KX_FMA_OK inline void outer_acc_lanes(std::int64_t K, const v8d* u, const v8d* v, v8d* Mv) {
  for (std::int64_t i = 0; i < K; ++i) {
    const v8d ui = u[i];
    v8d* Mi = Mv + i * K;
    for (std::int64_t j = 0; j < K; ++j) Mi[j] += ui * v[j];
  }
}

/// lse_step for eight lanes: out[j] = h[j] + LSE_i(prev[i] + M[i,j]) with
/// X, shift as in lse_step. Lanes whose `live` flag is false are computed
/// but never take the exact fallback. Workspace u, acc [K].
KX_HD inline void lse_step_lanes(std::int64_t K, const v8d* prev, const double* X,
                                 const double* shift, const double* Mlog, bool transposed,
                                 const v8d* h, v8d* out, v8d* u, v8d* acc, const bool* live) {
  v8d m = math::splat<v8d>(-math::kInf);
  for (std::int64_t i = 0; i < K; ++i) m = prev[i] > m ? prev[i] : m;
  for (std::int64_t i = 0; i < K; ++i) u[i] = math::exp_t<v8d>(prev[i] - m);
  matvec_lanes(K, u, X, acc);
  // bad: lanes with a sum below kTiny somewhere (or NaN), found with vector
  // compares; only those lanes go through the scalar fallback check.
  typedef long long v8l __attribute__((vector_size(64)));
  v8l bad = {};
  for (std::int64_t jj = 0; jj < K; ++jj) {
    out[jj] = h[jj] + ((m + shift[jj]) + math::log_t<v8d>(acc[jj]));
    bad |= !(acc[jj] >= kTiny);
  }
  for (int q = 0; q < kLanesRows; ++q) {
    const bool slow_all = !(m[q] > -math::kInf) || m[q] == math::kInf;
    if (!live[q] || !(slow_all || bad[q])) continue;
    for (std::int64_t jj = 0; jj < K; ++jj)
      if (slow_all || !(acc[jj][q] >= kTiny))
        out[jj][q] = h[jj][q] + lane_exact_lse(K, prev, q, Mlog, transposed, jj);
  }
}

/// Forward pass for eight right-aligned lanes: alpha [S,K] (v8d). Lane q is
/// initialised at start[q] (s + h) and stepped after it; live[q] false marks
/// an empty lane.
KX_HD inline void crf_forward_lanes(const CrfParams& p, std::int64_t S, const std::int64_t* start,
                                    const bool* present, const v8d* H, v8d* alpha, v8d* u,
                                    v8d* acc) {
  const std::int64_t K = p.K;
  for (std::int64_t k = 0; k < K; ++k) alpha[k] = p.s[k] + H[k];
  bool live[kLanesRows];
  for (std::int64_t l = 1; l < S; ++l) {
    for (int q = 0; q < kLanesRows; ++q) live[q] = present[q] && l > start[q];
    v8d* cur = alpha + l * K;
    lse_step_lanes(K, alpha + (l - 1) * K, p.E, p.c, p.A, false, H + l * K, cur, u, acc, live);
    for (int q = 0; q < kLanesRows; ++q)
      if (present[q] && l == start[q])
        for (std::int64_t k = 0; k < K; ++k) cur[k][q] = p.s[k] + H[l * K + k][q];
  }
}

/// One backward step for eight lanes at position l (see crf_backward_step):
/// mu_l, then (l > 0) beta_{l-1} and the pair sums. Lane q takes part while
/// live[q] and l > start[q] (for the move to l - 1). Pair sums go to Mv
/// [K,K] (v8d, per lane) in exp space, exact overflow terms to D (shared).
/// Workspace nbeta, g, v, u, acc [K] (v8d).
KX_HD inline void crf_backward_step_lanes(std::int64_t l, const CrfParams& p, const v8d* H,
                                          const v8d* alpha, v8d logz, const std::int64_t* start,
                                          const bool* live, v8d* mu, v8d* Mv, double* D, v8d* beta,
                                          v8d* nbeta, v8d* g, v8d* v, v8d* u, v8d* acc) {
  const std::int64_t K = p.K;
  const v8d* al = alpha + l * K;
  v8d* mul = mu + l * K;
  for (std::int64_t k = 0; k < K; ++k) mul[k] = math::exp_t<v8d>(al[k] + beta[k] - logz);
  if (l == 0) return;
  bool step[kLanesRows];
  bool any = false;
  for (int q = 0; q < kLanesRows; ++q) {
    step[q] = live[q] && l > start[q];
    any = any || step[q];
  }
  if (!any) return;
  const v8d* h = H + l * K;
  for (std::int64_t j = 0; j < K; ++j) g[j] = h[j] + beta[j];
  for (std::int64_t j = 0; j < K; ++j) acc[j] = v8d{};
  lse_step_lanes(K, g, p.FT, p.r, p.A, true, acc, nbeta, v, u, step);
  if (Mv != nullptr) {
    const v8d* ap = alpha + (l - 1) * K;
    v8d m1 = math::splat<v8d>(-math::kInf), m2 = math::splat<v8d>(-math::kInf);
    for (std::int64_t i = 0; i < K; ++i) m1 = ap[i] > m1 ? ap[i] : m1;
    for (std::int64_t j = 0; j < K; ++j) m2 = g[j] > m2 ? g[j] : m2;
    const v8d w = math::exp_t<v8d>(m1 + m2 + p.Amax - logz);
    v8d okv = {};
    bool any_ok = false;
    for (int q = 0; q < kLanesRows; ++q) {
      const bool finite = m1[q] > -math::kInf && m2[q] > -math::kInf && m1[q] < math::kInf &&
                          m2[q] < math::kInf;
      const bool ok = step[q] && finite && w[q] <= 1e280;
      okv[q] = ok ? 1.0 : 0.0;
      any_ok = any_ok || ok;
      if (step[q] && logz[q] != logz[q]) {  // NaN row: NaN pair marginals (see crf_backward_step)
        for (std::int64_t ij = 0; ij < K * K; ++ij) D[ij] += logz[q];
      } else if (step[q] && finite && !ok) {  // exact terms for an overflowing scale
        for (std::int64_t i = 0; i < K; ++i)
          for (std::int64_t j = 0; j < K; ++j)
            D[i * K + j] += math::exp(ap[i][q] + p.A[i * K + j] + g[j][q] - logz[q]);
      }
    }
    if (any_ok) {
      const v8d zero = {};
      for (std::int64_t j = 0; j < K; ++j) {
        const v8d vj = math::exp_t<v8d>(g[j] - m2);
        v[j] = okv > 0.5 ? vj : zero;
      }
      for (std::int64_t i = 0; i < K; ++i) {
        const v8d ui = w * math::exp_t<v8d>(ap[i] - m1);
        u[i] = okv > 0.5 ? ui : zero;
      }
      outer_acc_lanes(K, u, v, Mv);
    }
  }
  for (std::int64_t k = 0; k < K; ++k) beta[k] = nbeta[k];
}

/// Viterbi for eight right-aligned lanes: delta [K] ends as each lane's
/// delta_{L-1}; psi [S,K] holds the predecessors (as exact doubles) for the
/// lanes' backtracking. The same operations, in the same order, as
/// viterbi_chain with S = A and h = emissions. Workspace nd [K].
KX_HD inline void crf_viterbi_lanes(const CrfParams& p, std::int64_t S, const std::int64_t* start,
                                    const bool* present, const v8d* H, v8d* delta, v8d* nd,
                                    v8d* psi) {
  const std::int64_t K = p.K;
  for (std::int64_t k = 0; k < K; ++k) delta[k] = p.s[k] + H[k];
  for (std::int64_t l = 1; l < S; ++l) {
    for (std::int64_t j = 0; j < K; ++j) {
      v8d best = delta[0] + p.A[j];
      v8d arg = {};
      for (std::int64_t i = 1; i < K; ++i) {
        const v8d c = delta[i] + p.A[i * K + j];
        const auto better = c > best;
        best = better ? c : best;
        arg = better ? math::splat<v8d>(static_cast<double>(i)) : arg;
      }
      nd[j] = best + H[l * K + j];
      psi[l * K + j] = arg;
    }
    for (int q = 0; q < kLanesRows; ++q)
      if (present[q] && l == start[q])
        for (std::int64_t k = 0; k < K; ++k) nd[k][q] = p.s[k] + H[l * K + k][q];
    for (std::int64_t k = 0; k < K; ++k) delta[k] = nd[k];
  }
}

}  // namespace decoders
}  // namespace KEXUE_ISA_NS
}  // namespace kexue

#endif  // KEXUE_HAS_V8D
