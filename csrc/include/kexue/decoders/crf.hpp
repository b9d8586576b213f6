// kexue/decoders/crf.hpp - linear-chain CRF math for one sequence.
//
// A row is the valid steps of one sequence: idx[0..L) are their positions in
// the emissions row (masked steps are simply absent). Scores are computed in
// double whatever the input dtype. The forward and backward recursions run in
// "exp space" per step: with m = max alpha, alpha'(j) = h(j) + m + c_j +
// log(sum_i exp(alpha(i) - m) E[i,j]), E = exp(A - c) column-shifted, so a
// step is K exps, a K x K multiply-add and K logs, all vectorised. When a sum
// falls below kTiny its dominant term may have underflowed, and that entry is
// recomputed exactly in log space (hard constraints, extreme emissions).
#pragma once
#include <cstdint>
#include <cstring>

#include "kexue/core/math.hpp"
#include "kexue/decoders/common.hpp"

namespace kexue {
inline namespace KEXUE_ISA_NS {
namespace decoders {

/// Transition parameters prepared once per call (allowed already folded in
/// as -inf), shared read-only by every row.
struct CrfParams {
  std::int64_t K;
  const double* A;   ///< [K,K] transitions, -inf where forbidden
  const double* E;   ///< [K,K] exp(A[i,j] - c[j])
  const double* c;   ///< [K] column max of A (0 for an all -inf column)
  const double* FT;  ///< [K,K] FT[j,i] = exp(A[i,j] - r[i])
  const double* r;   ///< [K] row max of A (0 for an all -inf row)
  const double* Eh;  ///< [K,K] exp(A - Amax)
  double Amax;       ///< max of A (0 when all -inf)
  const double* s;   ///< [K] start scores, -inf where forbidden
  const double* e;   ///< [K] end scores, -inf where forbidden
  const float* E32 = nullptr;   ///< E in float (float32 inputs), or nullptr
  const float* FT32 = nullptr;  ///< FT in float (float32 inputs), or nullptr
};

constexpr double kTiny = 1e-280;

/// acc[j] = sum_i u[i] X[i,j] for a K x K row-major X, T = double or float.
/// Each acc[j] adds its K products in the order i = 0..K-1 whatever the
/// block width (fused multiply-adds where the ISA has them, see KX_FMA_OK);
/// the blocks keep their partial sums in registers (GCC vector extensions:
/// 64 bytes a vector, four or one vectors a block, lowered to whatever the
/// translation unit's ISA has).
template <class T>
KX_HD KX_FMA_OK inline void matvec(std::int64_t K, const T* KX_RESTRICT u,
                                   const T* KX_RESTRICT X, T* KX_RESTRICT acc) {
  std::int64_t j0 = 0;
#if defined(__GNUC__) && !defined(__CUDACC__)
  typedef T V __attribute__((vector_size(64)));
  constexpr std::int64_t W = 64 / sizeof(T);
  for (; j0 + 4 * W <= K; j0 += 4 * W) {
    V a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (std::int64_t i = 0; i < K; ++i) {
      const T ui = u[i];
      const T* Xi = X + i * K + j0;
      V x0, x1, x2, x3;
      std::memcpy(&x0, Xi, sizeof x0);
      std::memcpy(&x1, Xi + W, sizeof x1);
      std::memcpy(&x2, Xi + 2 * W, sizeof x2);
      std::memcpy(&x3, Xi + 3 * W, sizeof x3);
      a0 += ui * x0;
      a1 += ui * x1;
      a2 += ui * x2;
      a3 += ui * x3;
    }
    std::memcpy(acc + j0, &a0, sizeof a0);
    std::memcpy(acc + j0 + W, &a1, sizeof a1);
    std::memcpy(acc + j0 + 2 * W, &a2, sizeof a2);
    std::memcpy(acc + j0 + 3 * W, &a3, sizeof a3);
  }
  for (; j0 + W <= K; j0 += W) {
    V a0 = {};
    for (std::int64_t i = 0; i < K; ++i) {
      V x0;
      std::memcpy(&x0, X + i * K + j0, sizeof x0);
      a0 += u[i] * x0;
    }
    std::memcpy(acc + j0, &a0, sizeof a0);
  }
#endif
  if (j0 < K) {
    for (std::int64_t j = j0; j < K; ++j) acc[j] = T(0);
    for (std::int64_t i = 0; i < K; ++i) {
      const T ui = u[i];
      const T* KX_RESTRICT Xi = X + i * K;
      for (std::int64_t j = j0; j < K; ++j) acc[j] += ui * Xi[j];
    }
  }
}

/// Exact log-space LSE_i(prev[i] + M[i,j]) for one entry (the rare fallback
/// of the exp-space steps); -inf when all terms are, NaN when any is.
KX_HD inline double exact_lse(std::int64_t K, const double* prev, const double* Mlog,
                              bool transposed, std::int64_t j) {
  double mx = -math::kInf;
  for (std::int64_t i = 0; i < K; ++i) {
    const double t = prev[i] + (transposed ? Mlog[j * K + i] : Mlog[i * K + j]);
    mx = t > mx ? t : mx;
  }
  if (mx == -math::kInf || mx == math::kInf) {
    double v = mx;
    for (std::int64_t i = 0; i < K; ++i) {
      const double t = prev[i] + (transposed ? Mlog[j * K + i] : Mlog[i * K + j]);
      if (t != t) v = t;
    }
    return v;
  }
  double s = 0.0;
  for (std::int64_t i = 0; i < K; ++i)
    s += math::exp(prev[i] + (transposed ? Mlog[j * K + i] : Mlog[i * K + j]) - mx);
  return mx + math::log(s);
}

/// alpha/beta step: out[j] = h[j] + LSE_i(prev[i] + M[i,j]) where the
/// exp-space form uses X[i*K+j] = exp(M[i,j] - shift[j]) (X = E for the
/// forward pass, X = FT with M = A^T for the backward one). u, acc: [K].
KX_HD inline void lse_step(std::int64_t K, const double* KX_RESTRICT prev, const double* X,
                           const double* shift, const double* Mlog, bool transposed,
                           const double* KX_RESTRICT h, double* KX_RESTRICT out,
                           double* KX_RESTRICT u, double* KX_RESTRICT acc) {
  const double m = math::max_of(prev, K);
  bool slow_all = !(m > -math::kInf) || m == math::kInf;
  if (!slow_all) {
    for (std::int64_t i = 0; i < K; ++i) u[i] = math::exp(prev[i] - m);
    matvec<double>(K, u, X, acc);
    for (std::int64_t j = 0; j < K; ++j) out[j] = h[j] + ((m + shift[j]) + math::log(acc[j]));
  }
  // One vectorised pass tells whether any entry needs the fallback.
  int any_small = slow_all ? 1 : 0;
  if (!slow_all)
    for (std::int64_t j = 0; j < K; ++j) any_small |= !(acc[j] >= kTiny) ? 1 : 0;
  for (std::int64_t j = 0; j < K && any_small; ++j)
    if (slow_all || !(acc[j] >= kTiny)) out[j] = h[j] + exact_lse(K, prev, Mlog, transposed, j);
}

/// lse_step for float32 inputs: the exponentials, the product and the
/// logarithms in single precision (math::expf/logf, 16 lanes a vector),
/// alpha itself in double, so the error per step is about one float ulp of
/// the step's increment and does not compound with alpha's magnitude. Sums
/// below 1e-30 (possible float underflow) take the exact double fallback.
/// X32 is X in float; u, acc [K] float scratch.
KX_HD inline void lse_step_f32(std::int64_t K, const double* KX_RESTRICT prev, const float* X32,
                               const double* shift, const double* Mlog, bool transposed,
                               const double* KX_RESTRICT h, double* KX_RESTRICT out,
                               float* KX_RESTRICT u, float* KX_RESTRICT acc) {
  const double m = math::max_of(prev, K);
  const bool slow_all = !(m > -math::kInf) || m == math::kInf;
  int any_small = slow_all ? 1 : 0;
  if (!slow_all) {
    for (std::int64_t i = 0; i < K; ++i) u[i] = math::expf(static_cast<float>(prev[i] - m));
    matvec<float>(K, u, X32, acc);
    for (std::int64_t j = 0; j < K; ++j)
      out[j] = h[j] + ((m + shift[j]) + static_cast<double>(math::logf(acc[j])));
    for (std::int64_t j = 0; j < K; ++j) any_small |= !(acc[j] >= 1e-30f) ? 1 : 0;
  }
  for (std::int64_t j = 0; j < K && any_small; ++j)
    if (slow_all || !(acc[j] >= 1e-30f)) out[j] = h[j] + exact_lse(K, prev, Mlog, transposed, j);
}

/// M[i,j] += u[i] v[j] (fused where the ISA has FMA).
KX_HD KX_FMA_OK inline void outer_acc(std::int64_t K, const double* KX_RESTRICT u,
                                      const double* KX_RESTRICT v, double* KX_RESTRICT M) {
  for (std::int64_t i = 0; i < K; ++i) {
    const double ui = u[i];
    double* KX_RESTRICT Mi = M + i * K;
    for (std::int64_t j = 0; j < K; ++j) Mi[j] += ui * v[j];
  }
}

/// Forward pass, step 0: alpha_0 = s + h_0.
KX_HD inline void crf_forward_first(const CrfParams& p, const double* h0, double* alpha0) {
  for (std::int64_t k = 0; k < p.K; ++k) alpha0[k] = p.s[k] + h0[k];
}

/// Forward pass, step l >= 1: alpha_l from alpha_{l-1}. Workspace u, acc [K].
/// Single: the float32 step (lse_step_f32; needs p.E32, uses u/acc as floats).
template <bool Single = false>
KX_HD inline void crf_forward_step(const CrfParams& p, const double* h, const double* prev,
                                   double* next, double* u, double* acc) {
  if (Single)
    lse_step_f32(p.K, prev, p.E32, p.c, p.A, false, h, next, reinterpret_cast<float*>(u),
                 reinterpret_cast<float*>(acc));
  else
    lse_step(p.K, prev, p.E, p.c, p.A, false, h, next, u, acc);
}

/// log Z = LSE(alpha_{L-1} + e). Workspace u, acc [K].
KX_HD inline double crf_forward_final(const CrfParams& p, const double* last, double* u,
                                      double* acc) {
  for (std::int64_t k = 0; k < p.K; ++k) u[k] = last[k] + p.e[k];
  return math::logsumexp(u, p.K, acc);
}

/// Forward pass of one row: alpha [L,K] (L >= 1), returns log Z. hbuf [L,K]
/// holds the row's emissions of the valid steps as doubles.
KX_HD inline double crf_forward(std::int64_t L, const CrfParams& p, const double* hbuf,
                                double* alpha, double* u, double* acc) {
  const std::int64_t K = p.K;
  crf_forward_first(p, hbuf, alpha);
  for (std::int64_t l = 1; l < L; ++l)
    crf_forward_step(p, hbuf + l * K, alpha + (l - 1) * K, alpha + l * K, u, acc);
  return crf_forward_final(p, alpha + (L - 1) * K, u, acc);
}

/// Score of the tag path y[0..L) (the gold path).
KX_HD inline double crf_path_score(std::int64_t L, const CrfParams& p, const double* hbuf,
                                   const std::int64_t* y) {
  const std::int64_t K = p.K;
  double s = p.s[y[0]] + hbuf[y[0]];
  for (std::int64_t l = 1; l < L; ++l) s += p.A[y[l - 1] * K + y[l]] + hbuf[l * K + y[l]];
  return s + p.e[y[L - 1]];
}

/// Backward pass after the forward one, one step at a time from l = L-1
/// down to 0 (beta holds beta_l on entry; initialise it with p.e). Writes the
/// node marginals mu_l [K] and, for l > 0, moves beta to beta_{l-1} and (when
/// M/D are given) adds the pair marginals of step l as
///   xi_l[i,j] = M[i,j] * Eh[i,j] + D[i,j]
/// (M gets w*u_i*v_j in exp space; D gets exact terms for the rare steps
/// whose scale would overflow). Workspace nbeta, g, v, u, acc [K].
template <bool Single = false>
KX_HD inline void crf_backward_step(std::int64_t l, const CrfParams& p, const double* hbuf,
                                    const double* alpha, double logz, double* mu, double* M,
                                    double* D, double* beta, double* nbeta, double* g, double* v,
                                    double* u, double* acc) {
  const std::int64_t K = p.K;
  const double* al = alpha + l * K;
  double* mul = mu + l * K;
  for (std::int64_t k = 0; k < K; ++k) mul[k] = math::exp(al[k] + beta[k] - logz);
  if (l == 0) return;
  const double* h = hbuf + l * K;
  for (std::int64_t j = 0; j < K; ++j) g[j] = h[j] + beta[j];
  // beta_{l-1}(i) = LSE_j(A[i,j] + g[j]) : the forward step on A^T.
  for (std::int64_t j = 0; j < K; ++j) acc[j] = 0.0;  // zeros for the h argument
  if (Single)
    lse_step_f32(K, g, p.FT32, p.r, p.A, true, acc, nbeta, reinterpret_cast<float*>(v),
                 reinterpret_cast<float*>(u));
  else
    lse_step(K, g, p.FT, p.r, p.A, true, acc, nbeta, v, u);
  if (M != nullptr) {
    const double* ap = alpha + (l - 1) * K;
    const double m1 = math::max_of(ap, K);
    const double m2 = math::max_of(g, K);
    if (logz != logz) {
      // A NaN anywhere in the row makes log Z NaN, and every pair marginal
      // with it. (max_of skips NaN: with K = 1, or a step whose scores are
      // all NaN, the test below would drop the step and leave dA finite.)
      for (std::int64_t q = 0; q < K * K; ++q) D[q] += logz;
    } else if (m1 > -math::kInf && m2 > -math::kInf && m1 < math::kInf && m2 < math::kInf) {
      const double w = math::exp(m1 + m2 + p.Amax - logz);
      if (w <= 1e280) {
        for (std::int64_t j = 0; j < K; ++j) v[j] = math::exp(g[j] - m2);
        for (std::int64_t i = 0; i < K; ++i) u[i] = w * math::exp(ap[i] - m1);
        outer_acc(K, u, v, M);
      } else {
        for (std::int64_t i = 0; i < K; ++i)
          for (std::int64_t j = 0; j < K; ++j)
            D[i * K + j] += math::exp(ap[i] + p.A[i * K + j] + g[j] - logz);
      }
    }
  }
  for (std::int64_t k = 0; k < K; ++k) beta[k] = nbeta[k];
}

}  // namespace decoders
}  // namespace KEXUE_ISA_NS
}  // namespace kexue
