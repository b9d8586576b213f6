// csrc/cuda/backend.hpp - what the front doors (csrc/api) call for arrays in
// GPU memory (internal, plain C++: no CUDA types). Defined by the .cu files
// of csrc/cuda when kexue is built with CUDA, and by csrc/cuda/stub.cpp
// (every call: "this build has no CUDA kernels") when it is not. The plans
// and arrays come fully checked; these check only what the host cannot see
// without the runtime (that each pointer is memory of the named device), and
// launch on kexue::cuda::current_stream() without waiting, except where a
// result comes back to the host (the sums of squares).
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/optim_plan.hpp"
#include "kexue/core/view.hpp"

namespace kexue {
namespace cuda {

/// The inputs of one CRF call as the kernels read them: emissions [B,T,K]
/// (float or double, `f32`), transitions [K,K] and start/end [K] in the
/// same dtype (start/end may be null: 0), mask [B,T] and the allowed masks
/// (null: all allowed). Forbidden entries become -inf as on the CPU (x - inf).
struct CrfArgs {
  const void* em;
  bool f32;
  std::int64_t B, T, K;
  const bool* mask;
  const void* trans;
  const void* start;
  const void* end;
  const bool* allowed;
  const bool* allowed_start;
  const bool* allowed_end;
};

/// The largest K the Viterbi kernel takes (its scores live in shared memory).
constexpr std::int64_t kViterbiMaxK = 2048;

/// An op called with GPU arrays that has no CUDA kernel (yet) in this build,
/// or any op in a build without CUDA: a ValueError naming `op`.
[[noreturn]] void no_kernel(const char* op);

/// The CUDA device `p` points into (device or managed memory); without CUDA
/// kernels in the build, 0 (the front door then says there are none).
int pointer_device(const void* p);

/// The step of a checked optimizer plan whose arrays all live on `device`
/// (SGD, Adam/AdamW, AdaX, Lion; float32/float64 state).
void optim_run(const char* op, const cpu::OptPlan& pl, int device);

/// sum over the arrays of sum g^2 (float64), the arrays on `device`;
/// *bad is set when the sum is not finite.
double optim_sumsq(const char* op, const std::vector<Array>& grads, int device, bool* bad);

/// g *= f in each array's dtype (as the CPU's optim_scale).
void optim_scale(const char* op, const std::vector<Array>& grads, int device, double f);

/// crf.log_partition (tags null) or crf.log_likelihood of checked arguments
/// on `device` into out [B] (the emissions' dtype); the tags' range is
/// checked on the device first (an IndexError, nothing written).
void crf_forward_run(const char* op, const CrfArgs& a, int device, const void* tags, bool tags64, void* out);

/// crf.nll_grad of checked arguments on `device`: loss [B], d_emissions
/// [B,T,K], d_transitions [K,K], d_start, d_end [K] (the emissions' dtype);
/// the tags' range is checked on the device first (IndexError, nothing written).
void crf_nll_grad_run(const char* op, const CrfArgs& a, int device, const void* tags, bool tags64, void* loss,
                      void* d_emissions, void* d_transitions, void* d_start, void* d_end);

/// crf.marginals of checked arguments on `device` into out [B,T,K].
void crf_marginals_run(const char* op, const CrfArgs& a, int device, void* out);

/// crf.viterbi of checked arguments on `device`: paths [B,T] int64 and
/// scores [B] (the emissions' dtype) written there.
void crf_viterbi_run(const char* op, const CrfArgs& a, int device, std::int64_t* paths, void* scores);

}  // namespace cuda
}  // namespace kexue
