// csrc/api/cuda.cpp - the calling thread's CUDA stream (kexue/cuda.hpp),
// shared by the builds with and without CUDA kernels.
#include "kexue/cuda.hpp"

namespace kexue {
namespace cuda {

namespace {
thread_local void* t_stream = nullptr;
}

void* current_stream() { return t_stream; }

void set_current_stream(void* stream) { t_stream = stream; }

}  // namespace cuda
}  // namespace kexue
