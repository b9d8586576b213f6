// kexue/decoders/memm.hpp - MEMM math for one sequence (Su's formulation).
//
// Step 0: z = h_0 + smask; step l >= 1: z = alpha (h_l + G[y_{l-1}, :]) +
// tmask[y_{l-1}, :]; p = softmax(z). G is dense or G = L R^T (then a row is
// L[y] R^T, O(K d)). The right-to-left model of Bi-MEMM is the same math on
// the reversed steps with G^T (R and L swapped), tmask^T and the start/end
// masks swapped: the caller prepares MemmParams per direction.
#pragma once
#include <cstdint>

#include "kexue/core/math.hpp"
#include "kexue/decoders/crf.hpp"

namespace kexue {
inline namespace KEXUE_ISA_NS {
namespace decoders {

struct MemmParams {
  std::int64_t K;
  std::int64_t d;          ///< rank when low-rank, else 0
  const double* G;         ///< [K,K] dense transitions, or nullptr
  const double* Lf;        ///< [K,d] left factor (G = Lf Rf^T), or nullptr
  const double* Rf;        ///< [K,d] right factor
  const double* tmask;     ///< [K,K] 0 / -inf, or nullptr
  const double* smask;     ///< [K] 0 / -inf for the first step, or nullptr
  const double* emask;     ///< [K] 0 / -inf for the last step, or nullptr
  double alpha;
  /// Decoding tables (dense G only, or nullptr): EGT[k,j] = exp(alpha G[j,k]
  /// + tmask[j,k] - Gr[j]) with Gr[j] the row max (0 for an all -inf row).
  const double* EGT = nullptr;
  const double* Gr = nullptr;
};

/// Row `j` of G into out [K].
KX_HD inline void memm_grow(const MemmParams& p, std::int64_t j, double* KX_RESTRICT out) {
  const std::int64_t K = p.K;
  if (p.G != nullptr) {
    for (std::int64_t k = 0; k < K; ++k) out[k] = p.G[j * K + k];
    return;
  }
  const double* KX_RESTRICT lj = p.Lf + j * p.d;
  for (std::int64_t k = 0; k < K; ++k) out[k] = 0.0;
  for (std::int64_t q = 0; q < p.d; ++q) {
    const double a = lj[q];
    // R is [K,d]: walk it by column q with stride d.
    for (std::int64_t k = 0; k < K; ++k) out[k] += a * p.Rf[k * p.d + q];
  }
}

/// The logits z [K] of step l given the previous tag `prev` (ignored at l=0).
KX_HD inline void memm_logits(const MemmParams& p, std::int64_t l, const double* h,
                              std::int64_t prev, double* KX_RESTRICT z) {
  const std::int64_t K = p.K;
  if (l == 0) {
    for (std::int64_t k = 0; k < K; ++k) z[k] = h[k] + (p.smask ? p.smask[k] : 0.0);
    return;
  }
  memm_grow(p, prev, z);
  const double a = p.alpha;
  for (std::int64_t k = 0; k < K; ++k) z[k] = a * (h[k] + z[k]);
  if (p.tmask)
    for (std::int64_t k = 0; k < K; ++k) z[k] += p.tmask[prev * K + k];
}

/// In place: z -> exp(z - max) (unnormalised), returns (max, sum) through
/// the out-parameters; lse = max + log(sum).
KX_HD inline void exp_shift(std::int64_t K, double* KX_RESTRICT z, double& mx, double& sum) {
  mx = math::max_of(z, K);
  const double m = (mx > -math::kInf && mx < math::kInf) ? mx : 0.0;
  for (std::int64_t k = 0; k < K; ++k) z[k] = math::exp(z[k] - m);
  sum = math::sum_of(z, K);
  mx = m;
}

/// log p(y) of the valid steps (hbuf [L,K] doubles, y [L]) and, when dz is
/// given, dz [L,K] = softmax(z_l) - onehot(y_l) (the gradient wrt z_l).
/// Workspace z [K].
KX_HD inline double memm_loglik(std::int64_t L, const MemmParams& p, const double* hbuf,
                                const std::int64_t* y, double* dz, double* KX_RESTRICT z) {
  const std::int64_t K = p.K;
  double ll = 0.0;
  for (std::int64_t l = 0; l < L; ++l) {
    memm_logits(p, l, hbuf + l * K, l > 0 ? y[l - 1] : 0, z);
    const double zy = z[y[l]];
    double m, s;
    exp_shift(K, z, m, s);
    // s == 0: every tag is forbidden from here, so is the gold one.
    ll += s == 0.0 ? -math::kInf : zy - (m + math::log(s));
    if (dz != nullptr) {
      double* d = dz + l * K;
      const double inv = 1.0 / s;
      for (std::int64_t k = 0; k < K; ++k) d[k] = z[k] * inv;
      d[y[l]] -= 1.0;
    }
  }
  if (p.emask != nullptr && L > 0 && p.emask[y[L - 1]] == -math::kInf) ll = -math::kInf;
  return ll;
}

/// The local log-probability matrix of step l >= 1: S[j,k] = log p(k | j).
/// With the decoding tables the K normalisers come from one exp-space
/// product, Z_j = sum_k EGT[k,j] exp(alpha h_k - hm), so a step costs K exps,
/// a K x K multiply-add and K logs instead of K^2 exps; a Z_j below kTiny
/// (its dominant term may have underflowed) is recomputed exactly.
/// Workspace z, e, Z [K].
KX_HD inline void memm_step_matrix(const MemmParams& p, std::int64_t l, const double* h,
                                   double* KX_RESTRICT S, double* KX_RESTRICT z,
                                   double* KX_RESTRICT e, double* KX_RESTRICT Zn) {
  const std::int64_t K = p.K;
  if (p.EGT == nullptr || p.G == nullptr) {
    for (std::int64_t j = 0; j < K; ++j) {
      memm_logits(p, l, h, j, z);
      double* Sj = S + j * K;
      for (std::int64_t k = 0; k < K; ++k) Sj[k] = z[k];
      double m, s;
      exp_shift(K, z, m, s);
      const double lse = m + math::log(s);
      for (std::int64_t k = 0; k < K; ++k) Sj[k] = s == 0.0 ? -math::kInf : Sj[k] - lse;
    }
    return;
  }
  const double a = p.alpha;
  for (std::int64_t k = 0; k < K; ++k) z[k] = a * h[k];
  const double hm0 = math::max_of(z, K);
  const double hm = (hm0 > -math::kInf && hm0 < math::kInf) ? hm0 : 0.0;
  for (std::int64_t k = 0; k < K; ++k) e[k] = math::exp(z[k] - hm);
  matvec<double>(K, e, p.EGT, Zn);
  for (std::int64_t j = 0; j < K; ++j) {
    double* Sj = S + j * K;
    const double* Gj = p.G + j * K;
    for (std::int64_t k = 0; k < K; ++k) Sj[k] = a * (h[k] + Gj[k]);
    if (p.tmask)
      for (std::int64_t k = 0; k < K; ++k) Sj[k] += p.tmask[j * K + k];
    double lse;
    if (Zn[j] >= kTiny && hm0 == hm) {
      lse = p.Gr[j] + hm + math::log(Zn[j]);
    } else {
      for (std::int64_t k = 0; k < K; ++k) z[k] = Sj[k];
      double m, s;
      exp_shift(K, z, m, s);
      lse = s == 0.0 ? math::kInf : m + math::log(s);  // all forbidden: S = -inf
    }
    for (std::int64_t k = 0; k < K; ++k) Sj[k] = Sj[k] - lse;
    if (lse == math::kInf)
      for (std::int64_t k = 0; k < K; ++k) Sj[k] = -math::kInf;
  }
}

/// Step-0 log-probabilities: out[k] = log softmax(h_0 + smask)[k].
KX_HD inline void memm_first(const MemmParams& p, const double* h0, double* KX_RESTRICT out,
                             double* KX_RESTRICT z) {
  const std::int64_t K = p.K;
  memm_logits(p, 0, h0, 0, z);
  for (std::int64_t k = 0; k < K; ++k) out[k] = z[k];
  double m, s;
  exp_shift(K, z, m, s);
  const double lse = m + math::log(s);
  for (std::int64_t k = 0; k < K; ++k) out[k] = s == 0.0 ? -math::kInf : out[k] - lse;
}

}  // namespace decoders
}  // namespace KEXUE_ISA_NS
}  // namespace kexue
