// csrc/cuda/launch.cuh - what the .cu files share: the CUDA runtime under
// nvcc, or the emulator (tests/emu/cuda_emu.hpp, included first) when the
// same source is compiled as plain C++ to be tested without a GPU; and
// KX_LAUNCH, the one spelling of a launch for both. Pass the kernel as a
// variable (a pointer to an instantiation): template arguments' commas would
// split the macro's arguments.
#pragma once
#include <cstdint>

// KX_DYNAMIC_SHARED(T, name): the launch's dynamic shared memory as T* name.
#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define KX_LAUNCH(kernel, grid, block, smem, stream, ...) \
  kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define KX_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#elif defined(KX_CUDA_EMULATED)
#define KX_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::kx_emu::launch((grid), (block), (smem), (stream), kernel, __VA_ARGS__)
#define KX_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::kx_emu::dynamic_shared())
#else
#error "csrc/cuda/*.cu: compile with nvcc, or as C++ after tests/emu/cuda_emu.hpp"
#endif

namespace kexue {
namespace cuda {

/// Blocks for n elements at `threads` a block, grid-stride loops taking the rest.
inline unsigned blocks_for(std::int64_t n, unsigned threads, unsigned max_blocks = 4096) {
  const std::int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > max_blocks ? max_blocks : b));
}

}  // namespace cuda
}  // namespace kexue
