// csrc/cuda/optim.cuh - the optimizer launchers of csrc/cuda/optim.cu
// (pointers are device memory; under the emulator, host memory).
#pragma once
#include <cstdint>

#include "cuda/launch.cuh"
#include "kexue/optim/rules.hpp"

namespace kexue {
namespace cuda {

namespace optim = ::kexue::KEXUE_ISA_NS::optim;

/// One Adam/AdamW step over n elements (T = float or double), coefficients
/// from optim::adam_coef (as the CPU's): l2 = Adam's L2 decay (AdamW has it
/// in c.decay), amsgrad keeps vmax.
template <class T>
void adam(T* p, const T* g, T* m, T* v, T* vmax, std::int64_t n, const optim::AdamCoef<T>& c,
          bool l2, bool amsgrad, cudaStream_t stream);

/// One SGD step (buf: the momentum buffer, null without momentum; first:
/// step 1, where torch sets buf = d), coefficients from optim::sgd_coef.
template <class T>
void sgd(T* p, const T* g, T* buf, std::int64_t n, const optim::SgdCoef<T>& c, bool decay,
         bool nesterov, bool first, cudaStream_t stream);

/// One AdaX step, coefficients from optim::adax_coef.
template <class T>
void adax(T* p, const T* g, T* m, T* v, std::int64_t n, const optim::AdaxCoef<T>& c,
          cudaStream_t stream);

/// One Lion step, coefficients from optim::lion_coef (momentum kept in T,
/// updated in float64 as on the CPU).
template <class T>
void lion(T* p, const T* g, T* m, std::int64_t n, const optim::LionCoef& c, double lr, double wd,
          cudaStream_t stream);

/// partial[0 .. sumsq_blocks(n)) = per-block sums of g_i^2 in float64 (their
/// total is grad_norm's square).
template <class T>
unsigned sumsq_blocks(std::int64_t n);
template <class T>
void sumsq(const T* g, std::int64_t n, double* partial, cudaStream_t stream);

}  // namespace cuda
}  // namespace kexue
