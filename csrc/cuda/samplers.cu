// csrc/cuda/samplers.cu - sampler kernels on the GPU (issue 8): the Ising
// checkerboard heat bath, one thread per site of a colour (a launch per
// colour, chains along the grid's y axis), drawing from the same Philox
// blocks as the CPU (kexue/core/philox.hpp) with the CPU's thresholds, so
// the chains agree bit for bit. Compiled by nvcc (-Werror) and, for the
// emulator tests, as plain C++. Not yet dispatched from csrc/api.
#include "cuda/launch.cuh"
#include "cuda/samplers.cuh"
#include "kexue/core/philox.hpp"
#include "kexue/samplers/rng.hpp"

namespace kexue {
namespace cuda {
namespace {

struct IsingStep {
  std::int64_t H, W, half, nb;  // half = W / 2 sites a row of a colour; nb = blocks a colour
  std::uint64_t base, seed;     // first block of this colour's words: (2 sweep + col) nb
  std::int64_t chain_offset;
  int col;
  std::uint64_t thr[5];  // the spin becomes +1 iff word < thr[(neighbour sum + 4) / 2]
};

__global__ void ising_colour_kernel(std::int8_t* __restrict__ spins, IsingStep st) {
  const std::int64_t q = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (q >= st.H * st.half) return;
  const std::int64_t c = blockIdx.y;
  std::int8_t* s = spins + c * st.H * st.W;
  const std::int64_t r = q / st.half;
  const std::int64_t x = 2 * (q % st.half) + ((r + st.col) & 1);
  const std::int64_t up = (r + st.H - 1) % st.H, dn = (r + 1) % st.H;
  const std::int64_t lf = (x + st.W - 1) % st.W, rt = (x + 1) % st.W;
  const int ns = s[up * st.W + x] + s[dn * st.W + x] + s[r * st.W + lf] + s[r * st.W + rt];
  // site q: word (q % 64) / 16 of block base + 16 (q / 64) + q % 16
  const samplers::Block b = samplers::block(st.base + static_cast<std::uint64_t>(16 * (q / 64) + q % 16),
                                            static_cast<std::uint64_t>(st.chain_offset + c), st.seed);
  const std::uint32_t w = b.w[(q % 64) / 16];
  s[r * st.W + x] = static_cast<std::uint64_t>(w) < st.thr[(ns + 4) / 2] ? std::int8_t(1) : std::int8_t(-1);
}

constexpr unsigned kIsingThreads = 256;

}  // namespace

void ising_sweeps(std::int8_t* spins, std::int64_t C, std::int64_t H, std::int64_t W, double beta,
                  double h, std::int64_t sweep0, std::int64_t n_sweeps, std::uint64_t seed,
                  std::int64_t chain_offset, cudaStream_t stream) {
  if (C <= 0 || n_sweeps <= 0) return;
  IsingStep st{};
  st.H = H;
  st.W = W;
  st.half = W / 2;
  st.nb = 16 * ((H * W + 127) / 128);
  st.seed = seed;
  st.chain_offset = chain_offset;
  for (int i = 0; i < 5; ++i)  // on the host, as the CPU: libm's exp, not the device's
    st.thr[i] = samplers::ising_threshold(beta, static_cast<double>(2 * i - 4) + h);
  const std::int64_t sites = H * st.half;
  const dim3 grid(static_cast<unsigned>((sites + kIsingThreads - 1) / kIsingThreads), static_cast<unsigned>(C));
  auto k = &ising_colour_kernel;
  for (std::int64_t t = sweep0; t < sweep0 + n_sweeps; ++t)
    for (int col = 0; col < 2; ++col) {
      st.col = col;
      st.base = static_cast<std::uint64_t>(2 * t + col) * static_cast<std::uint64_t>(st.nb);
      KX_LAUNCH(k, grid, dim3(kIsingThreads), 0, stream, spins, st);
    }
}

}  // namespace cuda
}  // namespace kexue
