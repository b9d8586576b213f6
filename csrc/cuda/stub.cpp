// csrc/cuda/stub.cpp - the CUDA backend of a build without CUDA kernels: it
// reports none, and rejects GPU arrays with a clear error, so no front door
// needs an #ifdef.
#include "cuda/backend.hpp"
#include "kexue/core/error.hpp"
#include "kexue/cuda.hpp"

namespace kexue {
namespace cuda {

bool built() { return false; }

int device_count() { return 0; }

[[noreturn]] void no_kernel(const char* op) {
  fail(ErrorKind::Value, op,
       "got arrays in GPU memory, but this build of kexue has no CUDA kernels (it was built "
       "without nvcc or with KEXUE_CUDA=OFF); pass host (numpy) arrays");
}

int pointer_device(const void*) { return 0; }

void optim_run(const char* op, const cpu::OptPlan&, int) { no_kernel(op); }

double optim_sumsq(const char* op, const std::vector<Array>&, int, bool*) { no_kernel(op); }

void optim_scale(const char* op, const std::vector<Array>&, int, double) { no_kernel(op); }

void crf_forward_run(const char* op, const CrfArgs&, int, const void*, bool, void*) { no_kernel(op); }

void crf_nll_grad_run(const char* op, const CrfArgs&, int, const void*, bool, void*, void*, void*, void*, void*) {
  no_kernel(op);
}

void crf_marginals_run(const char* op, const CrfArgs&, int, void*) { no_kernel(op); }

void crf_viterbi_run(const char* op, const CrfArgs&, int, std::int64_t*, void*) { no_kernel(op); }

}  // namespace cuda
}  // namespace kexue
