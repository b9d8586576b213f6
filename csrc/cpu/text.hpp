// csrc/cpu/text.hpp - the n-gram model's tables and its per-position
// arithmetic (internal; kexue/text.hpp is the public side).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/flat_map.hpp"
#include "kexue/text.hpp"

namespace kexue {
namespace text {

/// Contexts form a trie grown to the LEFT: node 0 is the empty context, the
/// child of node h by token v is the context (v, h...). Every context that
/// occurs as the history of a counted token has a node, so the contexts of one
/// history are found by one walk from the root, shortest first, and a missing
/// child ends it (every longer context is missing too).
struct NGramImpl {
  int N = 0;                       ///< order
  std::int64_t V = 0, A = 0;       ///< tokens; alphabet V + 2 (EOS = V, BOS = V + 1)
  std::vector<std::int32_t> parent, token;  ///< per node: the context without its first token; that token
  std::vector<std::int8_t> len;    ///< per node: context length
  std::vector<double> T, lam;      ///< per node: sum of adjusted counts; D * U / T
  std::vector<std::int64_t> U;     ///< per node: number of distinct next tokens
  std::vector<double> D;           ///< D[m], m = 1..N (D[0] unused)
  std::vector<std::int64_t> succ_off;  ///< per node: its entries [succ_off[h], succ_off[h+1])
  std::vector<std::int32_t> succ_w;    ///< entries sorted by (node, token)
  std::vector<std::int64_t> succ_c;    ///< adjusted counts
  cpu::FlatMap child, count;       ///< (node * A + token) -> child node / adjusted count
  std::vector<std::int32_t> ctx1;  ///< the child of the root by each token (-1: none), without hashing
  std::vector<double> p1;          ///< p_1(w), w = 0..V
  std::vector<std::int32_t> uni_order;  ///< tokens 0..V-1 by (p_1 desc, id asc)
  std::uint64_t uid = 0;           ///< distinct per model (keys the top-k caches)

  std::uint64_t key(std::int64_t node, std::int64_t w) const {
    return static_cast<std::uint64_t>(node) * static_cast<std::uint64_t>(A) +
           static_cast<std::uint64_t>(w);
  }

  /// The contexts of position t of x (history BOS, x[0..t-1]): chain[k] is the
  /// node of the last k tokens, k = 1..depth (depth <= N - 1). Returns depth.
  int contexts(const std::int64_t* x, std::int64_t t, std::int32_t* chain) const {
    std::int64_t node = ctx1[static_cast<std::size_t>(t == 0 ? V + 1 : x[t - 1])];
    if (node < 0) return 0;
    chain[1] = static_cast<std::int32_t>(node);
    int depth = 1;
    for (int k = 2; k < N; ++k) {
      const std::int64_t idx = t - k;
      if (idx < -1) break;
      const std::int64_t tok = idx == -1 ? V + 1 : x[idx];
      const std::int64_t c = child.get(key(node, tok));
      if (c < 0) break;
      node = c;
      chain[k] = static_cast<std::int32_t>(c);
      depth = k;
    }
    return depth;
  }

  /// p(w | the contexts chain[1..depth]): interpolated Kneser-Ney, shortest first.
  double prob(const std::int32_t* chain, int depth, std::int64_t w) const {
    double p = p1[static_cast<std::size_t>(w)];
    for (int k = 1; k <= depth; ++k) {
      const std::int32_t h = chain[k];
      const double c = static_cast<double>(count.get(key(h, w), 0));
      const double a = std::max(c - D[static_cast<std::size_t>(k + 1)], 0.0) / T[static_cast<std::size_t>(h)];
      p = a + lam[static_cast<std::size_t>(h)] * p;
    }
    return p;
  }

  /// log p of positions t0..t1-1 of the sentence x[0..n) into out[0..t1-t0)
  /// (t = n: end of sentence). The  /// look-ups run level by level over all the positions, each level's
  /// table slots prefetched by the one before, so their cache misses overlap.
  void positions(const std::int64_t* x, std::int64_t n, std::int64_t t0, std::int64_t t1, double* out) const {
    constexpr std::int64_t kMax = 64;
    std::int32_t chain[kMax][8];
    int depth[kMax];
    for (std::int64_t b0 = t0; b0 < t1; b0 += kMax) {
      const std::int64_t b1 = std::min(t1, b0 + kMax);
      auto tok = [&](std::int64_t i) { return i == -1 ? V + 1 : x[i]; };
      auto word = [&](std::int64_t t) { return t < n ? x[t] : V; };
      for (std::int64_t t = b0; t < b1; ++t) {
        const std::int32_t c = ctx1[static_cast<std::size_t>(tok(t - 1))];
        int& d = depth[t - b0];
        d = c < 0 ? 0 : 1;
        chain[t - b0][1] = c;
        if (c >= 0) {
          count.prefetch(key(c, word(t)));
          if (N > 2 && t - 2 >= -1) child.prefetch(key(c, tok(t - 2)));
        }
      }
      for (int k = 2; k < N; ++k)
        for (std::int64_t t = b0; t < b1; ++t) {
          int& d = depth[t - b0];
          if (d != k - 1 || t - k < -1) continue;
          const std::int64_t c = child.get(key(chain[t - b0][k - 1], tok(t - k)));
          if (c < 0) continue;
          chain[t - b0][k] = static_cast<std::int32_t>(c);
          d = k;
          count.prefetch(key(c, word(t)));
          if (k + 1 < N && t - k - 1 >= -1) child.prefetch(key(c, tok(t - k - 1)));
        }
      for (std::int64_t t = b0; t < b1; ++t)
        out[t - t0] = std::log(prob(chain[t - b0], depth[t - b0], word(t)));
    }
  }
};

/// A view of cached candidates: ids[0..n).
struct TopK {
  const std::int32_t* ids;
  std::size_t n;
};

/// The top-k candidates after the contexts chain[1..depth] (deepest last),
/// cached per thread by the deepest context; the view lives until the
/// thread's next call.
TopK topk_cached(const NGramImpl& m, const std::int32_t* chain, int depth, std::int64_t k);

}  // namespace text
}  // namespace kexue
