// kexue/decoders/common.hpp - max-plus decoding shared by the CRF and the MEMM.
//
// Both decoders walk a chain of L steps over K tags where step l >= 1 scores
// moving from tag i to tag j as S_l[i,j] + h_l[j]. The CRF passes S = A
// (transitions) and h = emissions; the MEMM passes S = local log-softmax
// matrix and h = 0. No allocation, no throw: callers hand in the workspace.
#pragma once
#include <cstdint>
#include <cstring>

#include "kexue/core/math.hpp"

namespace kexue {
inline namespace KEXUE_ISA_NS {
namespace decoders {

/// best[j] = max_i (delta[i] + S[i,j]) and arg[j] = the first i attaining it
/// (strict > while scanning i upwards: ties go to the lowest index; NaN
/// candidates never win). Column blocks keep best/arg in registers (GCC
/// vector extensions; arg is carried as an exact double).
KX_HD inline void max_plus_step(std::int64_t K, const double* KX_RESTRICT delta,
                                const double* KX_RESTRICT S, double* KX_RESTRICT best,
                                std::int32_t* KX_RESTRICT arg) {
  std::int64_t j0 = 0;
#if defined(__GNUC__) && !defined(__CUDACC__)
  typedef double v8d __attribute__((vector_size(64)));
  for (; j0 + 16 <= K; j0 += 16) {
    v8d b0, b1, g0 = {}, g1 = {};
    std::memcpy(&b0, S + j0, sizeof b0);
    std::memcpy(&b1, S + j0 + 8, sizeof b1);
    b0 = delta[0] + b0;
    b1 = delta[0] + b1;
    for (std::int64_t i = 1; i < K; ++i) {
      const double di = delta[i];
      v8d c0, c1;
      std::memcpy(&c0, S + i * K + j0, sizeof c0);
      std::memcpy(&c1, S + i * K + j0 + 8, sizeof c1);
      c0 = di + c0;
      c1 = di + c1;
      const v8d iv = g0 * 0.0 + static_cast<double>(i);
      const auto m0 = c0 > b0;
      const auto m1 = c1 > b1;
      b0 = m0 ? c0 : b0;
      g0 = m0 ? iv : g0;
      b1 = m1 ? c1 : b1;
      g1 = m1 ? iv : g1;
    }
    for (int q = 0; q < 8; ++q) {
      best[j0 + q] = b0[q];
      best[j0 + 8 + q] = b1[q];
      arg[j0 + q] = static_cast<std::int32_t>(g0[q]);
      arg[j0 + 8 + q] = static_cast<std::int32_t>(g1[q]);
    }
  }
#endif
  if (j0 < K) {
    const double d0 = delta[0];
    for (std::int64_t j = j0; j < K; ++j) {
      best[j] = d0 + S[j];
      arg[j] = 0;
    }
    for (std::int64_t i = 1; i < K; ++i) {
      const double di = delta[i];
      const double* KX_RESTRICT Si = S + i * K;
      const std::int32_t ii = static_cast<std::int32_t>(i);
      for (std::int64_t j = j0; j < K; ++j) {
        const double c = di + Si[j];
        const bool better = c > best[j];
        best[j] = better ? c : best[j];
        arg[j] = better ? ii : arg[j];
      }
    }
  }
}

/// Viterbi over L >= 1 steps. `delta` [K] holds the step-0 scores on entry;
/// `prepare(l, S, h)` sets S ([K,K]) and h ([K]) for step l; `fin` [K] is
/// added at the end. Writes path[0..L) (tag indices; all -1 when the best
/// score is -inf), returns the best score. Ties go to the lowest index: for
/// each j the first i attaining the max, then the first final tag.
/// Workspace: best, nd [K] doubles; arg [K], psi [L*K] int32.
template <class Prepare>
KX_HD inline double viterbi_chain(std::int64_t L, std::int64_t K, double* KX_RESTRICT delta,
                                  const double* KX_RESTRICT fin, Prepare&& prepare,
                                  double* KX_RESTRICT best, double* KX_RESTRICT nd,
                                  std::int32_t* KX_RESTRICT arg, std::int32_t* KX_RESTRICT psi,
                                  std::int64_t* KX_RESTRICT path) {
  for (std::int64_t l = 1; l < L; ++l) {
    const double* S = nullptr;
    const double* h = nullptr;
    prepare(l, S, h);
    max_plus_step(K, delta, S, best, arg);
    std::int32_t* KX_RESTRICT pl = psi + l * K;
    for (std::int64_t j = 0; j < K; ++j) {
      nd[j] = best[j] + h[j];
      pl[j] = arg[j];
    }
    for (std::int64_t j = 0; j < K; ++j) delta[j] = nd[j];
  }
  double score = delta[0] + fin[0];
  std::int64_t k_best = 0;
  for (std::int64_t k = 1; k < K; ++k) {
    const double c = delta[k] + fin[k];
    if (c > score) {
      score = c;
      k_best = k;
    }
  }
  if (score == -math::kInf) {
    for (std::int64_t l = 0; l < L; ++l) path[l] = -1;
    return score;
  }
  std::int64_t tag = k_best;
  for (std::int64_t l = L - 1; l >= 0; --l) {
    path[l] = tag;
    if (l > 0) tag = psi[l * K + tag];
  }
  return score;
}

/// max of the entries of a below `prev` (-inf if none). The maximum of a
/// set does not depend on the order it is taken in (a holds no NaN here), so
/// the vector blocks give the same value on every ISA.
KX_HD inline double max_below(const double* KX_RESTRICT a, std::int64_t n, double prev) {
  double r = -math::kInf;
  std::int64_t i = 0;
#if defined(__GNUC__) && !defined(__CUDACC__)
  typedef double v8d __attribute__((vector_size(64)));
  const v8d ninf = v8d{} - math::kInf;
  v8d m = ninf;
  for (; i + 8 <= n; i += 8) {
    v8d x;
    std::memcpy(&x, a + i, sizeof x);
    const v8d v = x < prev ? x : ninf;
    m = v > m ? v : m;
  }
  for (int q = 0; q < 8; ++q) r = m[q] > r ? m[q] : r;
#endif
  for (; i < n; ++i) {
    const double v = a[i] < prev ? a[i] : -math::kInf;
    r = v > r ? v : r;
  }
  return r;
}

/// How many entries of a equal v.
KX_HD inline std::int64_t count_equal(const double* KX_RESTRICT a, std::int64_t n, double v) {
  std::int64_t c = 0;
  for (std::int64_t i = 0; i < n; ++i) c += a[i] == v ? 1 : 0;
  return c;
}

/// One entry of an n-best list: a score and where it came from.
struct NBestEntry {
  double score;
  std::int32_t tag;
  std::int32_t rank;
};

/// Insert candidate (c, tag, rank) into list[0..n) sorted by descending
/// score, keeping at most k entries; equal scores keep the earlier-inserted
/// entry first. Returns the new length.
KX_HD inline std::int64_t nbest_insert(NBestEntry* list, std::int64_t n, std::int64_t k, double c,
                                       std::int32_t tag, std::int32_t rank) {
  if (n == k && !(c > list[k - 1].score)) return n;
  std::int64_t pos = n < k ? n : k - 1;
  while (pos > 0 && c > list[pos - 1].score) {
    list[pos] = list[pos - 1];
    --pos;
  }
  list[pos] = NBestEntry{c, tag, rank};
  return n < k ? n + 1 : n;
}

/// The k best paths over L >= 1 steps (see viterbi_chain for S, h, fin).
/// `cur` [K*k] holds the step-0 scores in cur[j*k] on entry (one per tag).
/// Candidates scoring -inf (or NaN) are dropped, so fewer than k paths leave
/// the remaining rows of `paths` ([k,L]) at -1 and `scores` at -inf.
/// Workspace: nxt [K*k], c0 [K] doubles, cnt/ncnt [K] int64, back
/// [L*K*k] entries.
///
/// Pruning: the k-th best of the K rank-0 candidates bounds the list from
/// below (at least k candidates reach it), so candidates under it are
/// skipped without changing the result; ties at the bound are still
/// inserted in (tag, rank) order.
template <class Prepare>
KX_HD inline void nbest_chain(std::int64_t L, std::int64_t K, std::int64_t k,
                              double* KX_RESTRICT cur, const double* KX_RESTRICT fin,
                              Prepare&& prepare, double* KX_RESTRICT nxt,
                              std::int64_t* KX_RESTRICT cnt, std::int64_t* KX_RESTRICT ncnt,
                              NBestEntry* KX_RESTRICT back, NBestEntry* KX_RESTRICT list,
                              double* KX_RESTRICT c0, std::int64_t* KX_RESTRICT paths,
                              double* KX_RESTRICT scores) {
  for (std::int64_t j = 0; j < K; ++j) cnt[j] = cur[j * k] > -math::kInf ? 1 : 0;
  for (std::int64_t l = 1; l < L; ++l) {
    const double* S = nullptr;
    const double* h = nullptr;
    prepare(l, S, h);
    NBestEntry* bl = back + l * K * k;
    for (std::int64_t j = 0; j < K; ++j) {
      std::int64_t n = 0;
      NBestEntry* lst = bl + j * k;
      // The bound: the k-th largest rank-0 candidate (-inf when fewer than k
      // are finite), found by at most k vectorised max passes over c0.
      for (std::int64_t i = 0; i < K; ++i) {
        const double c = cur[i * k] + S[i * K + j];
        c0[i] = (cnt[i] > 0 && c > -math::kInf) ? c : -math::kInf;
      }
      double bound = -math::kInf, prev = math::kInf;
      std::int64_t remaining = k;
      for (std::int64_t pass = 0; pass < k; ++pass) {
        const double m = max_below(c0, K, prev);
        if (m == -math::kInf) break;
        remaining -= count_equal(c0, K, m);
        if (remaining <= 0) {
          bound = m;
          break;
        }
        prev = m;
      }
      for (std::int64_t i = 0; i < K; ++i) {
        if (!(c0[i] >= bound) || c0[i] == -math::kInf) continue;
        const double sij = S[i * K + j];
        for (std::int64_t r = 0; r < cnt[i]; ++r) {
          const double c = cur[i * k + r] + sij;
          if (!(c >= bound) || !(c > -math::kInf)) break;  // cur[i,.] is sorted
          if (n == k && !(c > lst[k - 1].score)) break;
          n = nbest_insert(lst, n, k, c, static_cast<std::int32_t>(i), static_cast<std::int32_t>(r));
        }
      }
      ncnt[j] = n;
      for (std::int64_t r = 0; r < n; ++r) nxt[j * k + r] = lst[r].score + h[j];
    }
    for (std::int64_t j = 0; j < K; ++j) {
      cnt[j] = 0;
      for (std::int64_t r = 0; r < ncnt[j]; ++r) {
        cur[j * k + r] = nxt[j * k + r];
        cnt[j] += cur[j * k + r] > -math::kInf ? 1 : 0;
      }
    }
  }
  std::int64_t n = 0;
  for (std::int64_t j = 0; j < K; ++j)
    for (std::int64_t r = 0; r < cnt[j]; ++r) {
      const double c = cur[j * k + r] + fin[j];
      if (!(c > -math::kInf)) continue;
      n = nbest_insert(list, n, k, c, static_cast<std::int32_t>(j), static_cast<std::int32_t>(r));
    }
  for (std::int64_t q = 0; q < k; ++q) {
    std::int64_t* p = paths + q * L;
    if (q >= n) {
      scores[q] = -math::kInf;
      for (std::int64_t l = 0; l < L; ++l) p[l] = -1;
      continue;
    }
    scores[q] = list[q].score;
    std::int32_t tag = list[q].tag, rank = list[q].rank;
    for (std::int64_t l = L - 1; l >= 0; --l) {
      p[l] = tag;
      if (l > 0) {
        const NBestEntry& e = back[(l * K + tag) * k + rank];
        tag = e.tag;
        rank = e.rank;
      }
    }
  }
}

}  // namespace decoders
}  // namespace KEXUE_ISA_NS
}  // namespace kexue
