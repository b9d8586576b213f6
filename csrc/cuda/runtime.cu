// csrc/cuda/runtime.cu - what a build with CUDA kernels says of itself
// (kexue/cuda.hpp), and its answer for ops that have no CUDA kernel yet.
#include "cuda/backend.hpp"
#include "cuda/runtime.cuh"

namespace kexue {
namespace cuda {

bool built() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {  // no driver, no device: none
    cudaGetLastError();
    return 0;
  }
  return n;
}

int pointer_device(const void* p) {
  cudaPointerAttributes a{};
  if (p == nullptr || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return 0;  // the front door's pointer check then says what is wrong
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged ? a.device : 0;
}

[[noreturn]] void no_kernel(const char* op) {
  fail(ErrorKind::Value, op, "got arrays in GPU memory, but this op has no CUDA kernel yet; "
       "pass host (numpy) arrays");
}

}  // namespace cuda
}  // namespace kexue
