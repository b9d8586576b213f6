// kexue/cuda.hpp - the GPU side of kexue's public C++ API.
//
// Every entry point takes kexue::Array views; a view whose `device` is a CUDA
// device ordinal (>= 0) holds device memory, and the front door then checks
// everything as for host arrays and runs the op's CUDA kernels instead of the
// CPU's, asynchronously on the calling thread's current stream (below).
// Arrays of one call must all live on one device (or all on the host).
// Ops without CUDA kernels yet, and builds without CUDA (built() == false),
// reject device arrays with a kexue::Error naming the op.
#pragma once
#include "kexue/core/macros.hpp"

namespace kexue {
namespace cuda {

/// Whether this build of kexue has its CUDA kernels.
KX_API bool built();

/// CUDA devices visible (0 without a build with CUDA, a driver or a GPU).
KX_API int device_count();

/// The stream the calling thread's launches go to (a cudaStream_t;
/// nullptr = the legacy default stream).
KX_API void* current_stream();
KX_API void set_current_stream(void* stream);

/// Sets the calling thread's stream for a scope: `kexue::cuda::StreamScope s(stream);`.
class StreamScope {
 public:
  explicit StreamScope(void* stream) : prev_(current_stream()) { set_current_stream(stream); }
  ~StreamScope() { set_current_stream(prev_); }
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

 private:
  void* prev_;
};

}  // namespace cuda
}  // namespace kexue
