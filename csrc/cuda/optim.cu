// csrc/cuda/optim.cu - optimizer kernels on the GPU (issue 8), from the same
// per-element rules as the CPU (kexue/optim/rules.hpp): SGD, Adam/AdamW, AdaX
// and Lion (float and double parameters and state), one thread per element
// in a grid-stride loop, and the float64 sum of squares
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

template <class T, bool kDecay, bool kMom, bool kNest>
__global__ void sgd_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ buf,
                           std::int64_t n, bool first, R::SgdCoef<T> c) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    T pi = p[i];
    R::sgd_elem<T, kDecay, kMom, kNest>(pi, g[i], kMom ? buf + i : nullptr, first, c);
    p[i] = pi;
  }
}

template <class T>
__global__ void adax_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                            T* __restrict__ v, std::int64_t n, R::AdaxCoef<T> c) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    T mi = m[i], vi = v[i];
    R::adax_moments<T>(g[i], mi, vi, c);
    m[i] = mi;
    v[i] = vi;
    p[i] = R::adax_param(p[i], mi, vi, c);
  }
}

/// Lion with the momentum in float64, rounded once to T (as the CPU).
template <class T>
__global__ void lion_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m,
                            std::int64_t n, R::LionCoef c, T lr, T wd) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const double mi = static_cast<double>(m[i]), gi = static_cast<double>(g[i]) * c.gs;
    const double sgn = R::lion_sign(mi, gi, c);
    p[i] = R::lion_param(p[i], sgn, lr, wd);
    m[i] = static_cast<T>(c.b2 * mi + c.w2 * gi);
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

constexpr unsigned kOptimThreads = 256;

}  // namespace

template <class T>
void adam(T* p, const T* g, T* m, T* v, T* vmax, std::int64_t n, const optim::AdamCoef<T>& c,
          bool l2, bool amsgrad, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned nb = blocks_for(n, kOptimThreads);
  auto k = l2 ? (amsgrad ? &adam_kernel<T, true, true> : &adam_kernel<T, true, false>)
              : (amsgrad ? &adam_kernel<T, false, true> : &adam_kernel<T, false, false>);
  KX_LAUNCH(k, dim3(nb), dim3(kOptimThreads), 0, stream, p, g, m, v, vmax, n, c);
}

template <class T>
void sgd(T* p, const T* g, T* buf, std::int64_t n, const optim::SgdCoef<T>& c, bool decay,
         bool nesterov, bool first, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned nb = blocks_for(n, kOptimThreads);
  const bool mom = buf != nullptr;
  auto k = !mom ? (decay ? &sgd_kernel<T, true, false, false> : &sgd_kernel<T, false, false, false>)
           : nesterov ? (decay ? &sgd_kernel<T, true, true, true> : &sgd_kernel<T, false, true, true>)
                      : (decay ? &sgd_kernel<T, true, true, false> : &sgd_kernel<T, false, true, false>);
  KX_LAUNCH(k, dim3(nb), dim3(kOptimThreads), 0, stream, p, g, buf, n, first, c);
}

template <class T>
void adax(T* p, const T* g, T* m, T* v, std::int64_t n, const optim::AdaxCoef<T>& c,
          cudaStream_t stream) {
  if (n <= 0) return;
  auto k = &adax_kernel<T>;
  KX_LAUNCH(k, dim3(blocks_for(n, kOptimThreads)), dim3(kOptimThreads), 0, stream, p, g, m, v, n, c);
}

template <class T>
void lion(T* p, const T* g, T* m, std::int64_t n, const optim::LionCoef& c, double lr, double wd,
          cudaStream_t stream) {
  if (n <= 0) return;
  auto k = &lion_kernel<T>;
  KX_LAUNCH(k, dim3(blocks_for(n, kOptimThreads)), dim3(kOptimThreads), 0, stream, p, g, m, n, c,
            static_cast<T>(lr), static_cast<T>(wd));
}

template <class T>
unsigned sumsq_blocks(std::int64_t n) {
  return blocks_for(n, kOptimThreads, 1024);
}

template <class T>
void sumsq(const T* g, std::int64_t n, double* partial, cudaStream_t stream) {
  auto k = &sumsq_kernel<T>;
  KX_LAUNCH(k, dim3(sumsq_blocks<T>(n)), dim3(kOptimThreads), 0, stream, g, n, partial);
}

template void adam<float>(float*, const float*, float*, float*, float*, std::int64_t,
                          const optim::AdamCoef<float>&, bool, bool, cudaStream_t);
template void adam<double>(double*, const double*, double*, double*, double*, std::int64_t,
                           const optim::AdamCoef<double>&, bool, bool, cudaStream_t);
#define KX_OPTIM_INST(T)                                                                  \
  template void sgd<T>(T*, const T*, T*, std::int64_t, const optim::SgdCoef<T>&, bool, bool, bool, \
                       cudaStream_t);                                                        \
  template void adax<T>(T*, const T*, T*, T*, std::int64_t, const optim::AdaxCoef<T>&,         \
                        cudaStream_t);                                                       \
  template void lion<T>(T*, const T*, T*, std::int64_t, const optim::LionCoef&, double, double, \
                        cudaStream_t);
KX_OPTIM_INST(float)
KX_OPTIM_INST(double)
#undef KX_OPTIM_INST
template unsigned sumsq_blocks<float>(std::int64_t);
template unsigned sumsq_blocks<double>(std::int64_t);
template void sumsq<float>(const float*, std::int64_t, double*, cudaStream_t);
template void sumsq<double>(const double*, std::int64_t, double*, cudaStream_t);

}  // namespace cuda
}  // namespace kexue
