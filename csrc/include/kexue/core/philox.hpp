// kexue/core/philox.hpp - Philox4x32-10, the counter-based generator of kexue.
//
// Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3"
// (SC'11), with the Random123 constants. A draw is a pure function of a
// 128-bit counter and a 64-bit key, so every stream (a chain, an array of an
// optimizer step) is addressed by numbers, never by shared state: results do
// not depend on threads, backends, or how work is split. The same header is
// compiled by g++ and nvcc.
#pragma once
#include <cstdint>

#include "kexue/core/macros.hpp"

namespace kexue {

constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;

/// One Philox round on the counter words c0..c3 with key (k0, k1).
KX_HD inline void philox_round(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2,
                               std::uint32_t& c3, std::uint32_t k0, std::uint32_t k1) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c0;
  const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c2;
  const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
  const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
  c0 = hi1 ^ c1 ^ k0;
  c1 = lo1;
  c2 = hi0 ^ c3 ^ k1;
  c3 = lo0;
}

/// Philox4x32-10: the counter (c0..c3) is replaced by the four output words.
/// Known answers (Random123 kat_vectors) are checked in the tests.
KX_HD inline void philox4x32_10(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2,
                                std::uint32_t& c3, std::uint32_t k0, std::uint32_t k1) {
  for (int r = 0; r < 9; ++r) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  philox_round(c0, c1, c2, c3, k0, k1);
}

}  // namespace kexue
