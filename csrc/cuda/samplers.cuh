// csrc/cuda/samplers.cuh - the sampler launchers of csrc/cuda/samplers.cu
// (pointers are device memory; under the emulator, host memory).
#pragma once
#include <cstdint>

#include "cuda/launch.cuh"

namespace kexue {
namespace cuda {

/// Sweeps sweep0 .. sweep0 + n_sweeps - 1 of heat-bath checkerboard Gibbs on
/// C periodic H x W Ising lattices (H, W even), spins [C,H,W] int8 +-1 in
/// place: chain c is global chain chain_offset + c, and every site draws the
/// Philox word the CPU's gibbs_ising gives it (kexue/samplers.hpp; the twin's
/// docstring has the map), so the chains are the CPU's bit for bit.
void ising_sweeps(std::int8_t* spins, std::int64_t C, std::int64_t H, std::int64_t W, double beta,
                  double h, std::int64_t sweep0, std::int64_t n_sweeps, std::uint64_t seed,
                  std::int64_t chain_offset, cudaStream_t stream);

}  // namespace cuda
}  // namespace kexue
