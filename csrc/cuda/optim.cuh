// csrc/cuda/optim.cuh - the optimizer launchers of csrc/cuda/optim.cu
// (pointers are device memory; under the emulator, host memory).
#pragma once
#include <cstdint>

#include "cuda/launch.cuh"
#include "kexue/optim/rules.hpp"

namespace kexue {
namespace cuda {

namespace optim = ::kexue::KEXUE_ISA_NS::optim;

/// Elements a block takes at a time, and arrays one launch takes.
constexpr std::int64_t kChunk = 16384;
constexpr int kMaxTensors = 40;

/// Up to kMaxTensors arrays for one launch (passed by value in the kernel's
/// parameters: under 3 KB for double, inside the 4 KB every architecture
/// takes): parameters p, gradients g, state slots s0..s2 (null where a rule
/// has none), sizes, and chunk0[t] = the list's chunks before array t.
template <class T>
struct TensorList {
  int count;
  T* p[kMaxTensors];
  const T* g[kMaxTensors];
  T* s0[kMaxTensors];
  T* s1[kMaxTensors];
  T* s2[kMaxTensors];
  std::int64_t n[kMaxTensors];
  std::int64_t chunk0[kMaxTensors + 1];

  bool full() const { return count == kMaxTensors; }
  /// Appends an array (the caller keeps count < kMaxTensors; empty arrays
  /// take no chunk).
  void add(T* p_, const T* g_, T* a, T* b, T* c, std::int64_t n_) {
    if (count == 0) chunk0[0] = 0;
    p[count] = p_;
    g[count] = g_;
    s0[count] = a;
    s1[count] = b;
    s2[count] = c;
    n[count] = n_;
    chunk0[count + 1] = chunk0[count] + (n_ + kChunk - 1) / kChunk;
    ++count;
  }
};

/// One step of each rule over every array of a list (one launch; nothing
/// for a list without elements), coefficients as for the single-array
/// launchers below. SGD's s0 is the momentum buffer (momentum: whether it is
/// used); Adam's s0, s1, s2 are m, v, vmax; AdaX's m, v; Lion's m.
template <class T>
void adam_multi(const TensorList<T>& L, const optim::AdamCoef<T>& c, bool l2, bool amsgrad,
                cudaStream_t stream);
template <class T>
void sgd_multi(const TensorList<T>& L, const optim::SgdCoef<T>& c, bool decay, bool momentum,
               bool nesterov, bool first, cudaStream_t stream);
template <class T>
void adax_multi(const TensorList<T>& L, const optim::AdaxCoef<T>& c, cudaStream_t stream);
template <class T>
void lion_multi(const TensorList<T>& L, const optim::LionCoef& c, double lr, double wd,
                cudaStream_t stream);
/// p *= f for every array p of the list (clip_grad_norm_'s scale).
template <class T>
void scale_multi(const TensorList<T>& L, T f, cudaStream_t stream);
/// partial[0 .. sumsq_multi_blocks(L)) = per-block float64 sums of p_i^2
/// over the list's arrays p (their total is the list's share of grad_norm^2).
template <class T>
unsigned sumsq_multi_blocks(const TensorList<T>& L);
template <class T>
void sumsq_multi(const TensorList<T>& L, double* partial, cudaStream_t stream);

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

/// g *= f (clip_grad_norm_'s scale, in T as on the CPU).
template <class T>
void scale(T* g, std::int64_t n, T f, cudaStream_t stream);

/// partial[0 .. sumsq_blocks(n)) = per-block sums of g_i^2 in float64 (their
/// total is grad_norm's square).
template <class T>
unsigned sumsq_blocks(std::int64_t n);
template <class T>
void sumsq(const T* g, std::int64_t n, double* partial, cudaStream_t stream);

}  // namespace cuda
}  // namespace kexue
