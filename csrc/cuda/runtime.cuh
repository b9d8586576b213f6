// csrc/cuda/runtime.cuh - the host-side glue the backends of csrc/cuda share:
// the device of a call, pointer checks, launch errors. Compiled by nvcc, and
// under the emulator (tests/emu), whose runtime functions answer the same.
#pragma once
#include <string>

#include "cuda/launch.cuh"
#include "kexue/core/error.hpp"
#include "kexue/cuda.hpp"

namespace kexue {
namespace cuda {

inline cudaStream_t stream() { return static_cast<cudaStream_t>(current_stream()); }

/// Makes `device` current for a scope (and restores the caller's).
class DeviceScope {
 public:
  DeviceScope(const char* op, int device) {
    if (cudaGetDevice(&prev_) != cudaSuccess) prev_ = -1;
    if (prev_ != device) {
      const cudaError_t e = cudaSetDevice(device);
      if (e != cudaSuccess)
        fail(ErrorKind::Runtime, op, "cannot use CUDA device ", device, ": ", cudaGetErrorString(e));
    }
  }
  ~DeviceScope() {
    int now = -1;
    if (prev_ >= 0 && cudaGetDevice(&now) == cudaSuccess && now != prev_) cudaSetDevice(prev_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int prev_ = -1;
};

/// `p` (argument `name`) must point into memory of `device` (device or
/// managed memory): a host pointer labelled as GPU memory would fault in a
/// kernel, so it is refused here, before any launch.
inline void check_pointer(const char* op, const void* p, int device, const std::string& name) {
  if (p == nullptr) return;
  cudaPointerAttributes a{};
  const cudaError_t e = cudaPointerGetAttributes(&a, p);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it
    fail(ErrorKind::Value, op, name, " is not memory the CUDA runtime knows (", cudaGetErrorString(e), ")");
  }
  KX_CHECK_VALUE(a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged, op, name,
                 " is labelled as memory of cuda:", device, " but is host memory");
  KX_CHECK_VALUE(a.device == device, op, name, " is labelled as memory of cuda:", device,
                 " but lives on cuda:", a.device);
}

/// After a call's launches: a launch error (bad configuration, a sticky
/// fault of an earlier kernel) as a RuntimeError naming the op.
inline void check_launch(const char* op) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) fail(ErrorKind::Runtime, op, "CUDA error: ", cudaGetErrorString(e));
}

inline void check_call(const char* op, cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(ErrorKind::Runtime, op, what, ": ", cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace kexue
