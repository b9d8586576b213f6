// csrc/cuda/optim.cu - optimizer kernels on the GPU (issue 8), from the same
// per-element rules as the CPU (kexue/optim/rules.hpp): Adam/AdamW, one
// thread per element in a grid-stride loop, and the float64 sum of squares
// behind grad_norm / clip_grad_norm (warp shuffles, then one partial sum per
// block in shared memory). Compiled by nvcc (-Werror), and as plain C++
// against tests/emu/cuda_emu.hpp for the emulator tests. Not yet dispatched
// from csrc/api (see the issue note): these are the kernels and launchers.
#include "cuda/launch.cuh"
#include "cuda/optim.cuh"

namespace kexue {
namespace cuda {
namespace {

namespace R = ::kexue::KEXUE_ISA_NS::optim;

template <class T, bool kL2, bool kAms>
__global__ void adam_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                            T* __restrict__ v, T* __restrict__ vmax, std::int64_t n,
                            R::AdamCoef<T> c) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const T pi = p[i];
    T mi = m[i], vi = v[i];
    R::adam_moments<T, kL2>(pi, g[i], mi, vi, c);
    m[i] = mi;
    v[i] = vi;
    T vv = vi;
    if (kAms) {
      vv = R::nan_max(vmax[i], vi);
      vmax[i] = vv;
    }
    p[i] = R::adam_param(pi, mi, vv, c);
  }
}

/// partial[blockIdx.x] = the block's share of sum g_i^2 (float64); the
/// threads' sums are folded by warp shuffles, the warps' in shared memory.
template <class T>
__global__ void sumsq_kernel(const T* __restrict__ g, std::int64_t n, double* __restrict__ partial) {
  __shared__ double warp_sums[32];
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  double s = 0.0;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const double x = static_cast<double>(g[i]);
    s += x * x;
  }
  for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < (blockDim.x + 31u) / 32u ? warp_sums[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) partial[blockIdx.x] = s;
  }
}

constexpr unsigned kThreads = 256;

}  // namespace

template <class T>
void adam(T* p, const T* g, T* m, T* v, T* vmax, std::int64_t n, const optim::AdamCoef<T>& c,
          bool l2, bool amsgrad, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned nb = blocks_for(n, kThreads);
  auto k = l2 ? (amsgrad ? &adam_kernel<T, true, true> : &adam_kernel<T, true, false>)
              : (amsgrad ? &adam_kernel<T, false, true> : &adam_kernel<T, false, false>);
  KX_LAUNCH(k, dim3(nb), dim3(kThreads), 0, stream, p, g, m, v, vmax, n, c);
}

template <class T>
unsigned sumsq_blocks(std::int64_t n) {
  return blocks_for(n, kThreads, 1024);
}

template <class T>
void sumsq(const T* g, std::int64_t n, double* partial, cudaStream_t stream) {
  auto k = &sumsq_kernel<T>;
  KX_LAUNCH(k, dim3(sumsq_blocks<T>(n)), dim3(kThreads), 0, stream, g, n, partial);
}

template void adam<float>(float*, const float*, float*, float*, float*, std::int64_t,
                          const optim::AdamCoef<float>&, bool, bool, cudaStream_t);
template void adam<double>(double*, const double*, double*, double*, double*, std::int64_t,
                           const optim::AdamCoef<double>&, bool, bool, cudaStream_t);
template unsigned sumsq_blocks<float>(std::int64_t);
template unsigned sumsq_blocks<double>(std::int64_t);
template void sumsq<float>(const float*, std::int64_t, double*, cudaStream_t);
template void sumsq<double>(const double*, std::int64_t, double*, cudaStream_t);

}  // namespace cuda
}  // namespace kexue
