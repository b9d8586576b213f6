// csrc/cuda/backend.hpp - what the front doors (csrc/api) call for arrays in
// GPU memory (internal, plain C++: no CUDA types). Defined by the .cu files
// of csrc/cuda when kexue is built with CUDA, and by csrc/cuda/stub.cpp
// (every call: "this build has no CUDA kernels") when it is not. The plans
// and arrays come fully checked; these check only what the host cannot see
// without the runtime (that each pointer is memory of the named device), and
// launch on kexue::cuda::current_stream() without waiting, except where a
// result comes back to the host (the sums of squares).
#pragma once
#include <vector>

#include "cpu/optim_plan.hpp"
#include "kexue/core/view.hpp"

namespace kexue {
namespace cuda {

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

}  // namespace cuda
}  // namespace kexue
