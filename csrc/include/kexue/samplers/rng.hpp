// kexue/samplers/rng.hpp - the random streams of the samplers: Philox4x32-10
// blocks addressed by (block n, chain g) under the key `seed`, turned into
// uniforms and normals the same way on every backend (and in the numpy twin).
//
// Block n of chain g: philox4x32_10((n_lo, n_hi, g_lo, g_hi), (seed_lo, seed_hi)).
// uniform53(wa, wb) = ((wa >> 5) * 2^26 + (wb >> 6)) * 2^-53 in [0, 1); a block
// gives U0 = uniform53(w0, w1), U1 = uniform53(w2, w3), and the normals
// Z0 = r cos(2 pi U1), Z1 = r sin(2 pi U1), r = sqrt(-2 log(1 - U0)).
#pragma once
#include <cmath>
#include <cstdint>

#include "kexue/core/macros.hpp"
#include "kexue/core/philox.hpp"

namespace kexue {
namespace samplers {

struct Block {
  std::uint32_t w[4];
};

KX_HD inline Block block(std::uint64_t n, std::uint64_t g, std::uint64_t seed) {
  std::uint32_t c0 = static_cast<std::uint32_t>(n), c1 = static_cast<std::uint32_t>(n >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(g), c3 = static_cast<std::uint32_t>(g >> 32);
  philox4x32_10(c0, c1, c2, c3, static_cast<std::uint32_t>(seed),
                static_cast<std::uint32_t>(seed >> 32));
  return Block{{c0, c1, c2, c3}};
}

KX_HD inline double uniform53(std::uint32_t a, std::uint32_t b) {
  return (static_cast<double>(a >> 5) * 67108864.0 + static_cast<double>(b >> 6)) *
         (1.0 / 9007199254740992.0);
}

/// The two normals of a block (Box-Muller on U0, U1).
KX_HD inline void normals(const Block& k, double* z0, double* z1) {
  const double u0 = uniform53(k.w[0], k.w[1]), u1 = uniform53(k.w[2], k.w[3]);
  const double r = std::sqrt(-2.0 * std::log(1.0 - u0));
  const double t = 6.283185307179586 * u1;
  *z0 = r * std::cos(t);
  *z1 = r * std::sin(t);
}

/// A categorical draw from logits l[0..n) with max m (finite): e_a = exp(l_a - m),
/// Z = e_0 + .. + e_{n-1} in order; the first a with u Z < e_0 + .. + e_a and
/// e_a > 0, else (rounding) the last a with e_a > 0.
/// With scratch `e` [n] (nullable), each exponential is computed once.
KX_HD inline std::int64_t categorical(const double* l, std::int64_t n, double m, double u,
                                      double* e = nullptr) {
  double Z = 0.0;
  for (std::int64_t a = 0; a < n; ++a) {
    const double ea = std::exp(l[a] - m);
    if (e != nullptr) e[a] = ea;
    Z += ea;
  }
  const double target = u * Z;
  double cum = 0.0;
  std::int64_t pick = -1;
  for (std::int64_t a = 0; a < n; ++a) {
    const double ea = e != nullptr ? e[a] : std::exp(l[a] - m);
    cum += ea;
    if (ea > 0.0) pick = a;
    if (target < cum && ea > 0.0) return a;
  }
  return pick;
}

/// The heat-bath threshold of the Ising model: a site becomes +1 iff its
/// word is below T = min(floor(p 2^32), 2^32), p = 1 / (1 + exp(-2 beta f)).
KX_HD inline std::uint64_t ising_threshold(double beta, double field) {
  const double p = 1.0 / (1.0 + std::exp(-2.0 * beta * field));
  const double t = std::floor(p * 4294967296.0);
  return t >= 4294967296.0 ? 4294967296ull : static_cast<std::uint64_t>(t);
}

}  // namespace samplers
}  // namespace kexue
