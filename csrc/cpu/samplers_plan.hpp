// csrc/cpu/samplers_plan.hpp - the per-ISA sampler loops (internal).
#pragma once
#include <cstdint>

#include "cpu/samplers.hpp"

namespace kexue {
namespace cpu {

struct SamplerKernels {
  /// Philox words of sites q in [q0, q1): word q % 4 of block base + q / 4 of
  /// chain g (kexue/samplers/rng.hpp), 16 blocks per vector.
  void (*site_words)(std::uint64_t base, std::int64_t q0, std::int64_t q1, std::uint64_t g,
                     std::uint64_t seed, std::uint32_t* w);
  /// Heat-bath update of rows [r0, r1) of the colour-`col` sublattice S
  /// [H, half] (int8 +-1) from the other colour's O [H, half]: a site becomes
  /// +1 iff (its word < lo[i]) or all[i], i = (sum of its 4 neighbours + 4) / 2.
  /// w holds the rows' words (row r at (r - r0) * half).
  void (*ising_rows)(std::int8_t* S, const std::int8_t* O, std::int64_t H, std::int64_t half,
                     int col, std::int64_t r0, std::int64_t r1, const std::uint32_t* w,
                     const std::uint32_t* lo, const std::uint8_t* all);
  /// Metropolis with a built-in target over chains [c0, c1): 32 chains at a
  /// time as four interleaved vectors of eight, the rest eight at a time
  /// (tail lanes padded and discarded); c1 - c0 a multiple of 32 except at C.
  void (*mh_builtin)(const MetropolisPlan& p, std::int64_t c0, std::int64_t c1);
  /// The proposals y = Y[c], the independence proposal's log density LQ[c]
  /// and the log of the deciding uniform LU[c] of step t for chains [c0, c1),
  /// from X and the step factors f (callable targets).
  void (*mh_propose)(const MetropolisPlan& p, std::int64_t t, std::int64_t c0, std::int64_t c1,
                     const double* X, const double* f, double* Y, double* LQ, double* LU);
};

const SamplerKernels& sampler_kernels();

}  // namespace cpu
}  // namespace kexue
