// csrc/cuda/stub.cpp - compiled when kexue has no CUDA kernels (this release
// builds none): answers "not built" so no front door needs an #ifdef.
#include "kexue/config.hpp"
#include "kexue/core/error.hpp"

namespace kexue {
namespace cuda {

KX_API bool built() { return KEXUE_HAS_CUDA != 0; }

[[noreturn]] void unavailable(const char* op) {
  fail(ErrorKind::Value, op, "this build of kexue has no CUDA kernels; pass CPU (numpy) arrays");
}

}  // namespace cuda
}  // namespace kexue
