// tests/emu/cuda_emu.hpp - runs kexue's CUDA kernel sources as plain C++ on a
// machine without a GPU (issue 8): include this, then the .cu file.
//
// What is emulated, and how:
// - __global__/__device__/__host__ vanish; kernels are ordinary functions.
// - A launch (KX_LAUNCH in csrc/cuda/launch.cuh) runs the grid's blocks one
//   after another. Each GPU thread of a block is a fiber (ucontext) with its
//   own stack; threadIdx/blockIdx/blockDim/gridDim are switched with it.
// - __shared__ variables become function statics: one block runs at a time,
//   so they are that block's shared memory (not zeroed between blocks, as on
//   a GPU).
// - __syncthreads() parks the fiber; when every live fiber of the block is
//   parked (or finished), all resume. Fibers run in thread order between
//   barriers, so a missing barrier shows up as a wrong result only if the
//   order matters -- the tests compare with the CPU path.
// - Warp shuffles and __ballot_sync exchange values through a per-block table
//   between two barriers: every thread of the block must reach the same
//   shuffle together (the warp-synchronous reductions of kexue's kernels do).
// - atomicAdd is a plain read-modify-write (fibers never interleave inside it).
// - Streams are accepted and ignored (everything is synchronous), and one
//   launch runs at a time in the process (the emulator is a test tool).
// - The runtime calls the host glue of csrc/cuda uses (cudaMalloc, cudaFree,
//   cudaMemcpyAsync, cudaPointerGetAttributes, cudaGetLastError, devices,
//   streams) work on host memory: one device, 0; memory from cudaMalloc or
//   registered with kx_emu::register_device_memory counts as device memory,
//   anything else as unregistered host memory (as CUDA >= 11 reports it).
#pragma once
#define KX_CUDA_EMULATED 1
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x, y, z;
};
typedef void* cudaStream_t;

enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
                   cudaErrorInvalidDevice = 101 };
enum cudaMemoryType { cudaMemoryTypeUnregistered = 0, cudaMemoryTypeHost = 1,
                      cudaMemoryTypeDevice = 2, cudaMemoryTypeManaged = 3 };
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1,
                      cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
  void* devicePointer;
  void* hostPointer;
};
cudaError_t cudaMalloc(void** p, std::size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p);
cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaMallocAsync(void** p, std::size_t bytes, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaFreeAsync(void* p, cudaStream_t stream);
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <class F>
inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) {
  return cudaSuccess;
}

namespace kx_emu {

/// Bytes [p, p + bytes) count as memory of device 0 until unregistered.
void register_device_memory(void* p, std::size_t bytes);
void unregister_device_memory(const void* p);
/// Launches since the process started (tests count what a call launched).
extern long g_launches;
/// The running launch's dynamic shared memory (its `shared_bytes`, 8-byte
/// aligned; one buffer for the launch, as blocks run one at a time).
void* dynamic_shared();
void set_dynamic_shared(std::size_t bytes);

extern uint3 g_thread, g_block;
extern dim3 g_block_dim, g_grid_dim;

/// Runs body() once per GPU thread of every block of grid x block.
void run_grid(dim3 grid, dim3 block, const std::function<void()>& body);
/// __syncthreads.
void barrier();
/// This thread's 8-byte slot of the block's exchange table, and thread t's.
std::uint64_t* slot(unsigned t);
/// The linear index of this thread in its block.
unsigned linear_thread();

template <class T>
inline T exchange(T v, unsigned src_lane_of_warp) {
  static_assert(sizeof(T) <= 8, "shuffles of at most 8 bytes");
  const unsigned me = linear_thread();
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof v);
  *slot(me) = bits;
  barrier();
  const unsigned src = (me & ~31u) | (src_lane_of_warp & 31u);
  std::uint64_t got = *slot(src);
  barrier();
  T out;
  std::memcpy(&out, &got, sizeof out);
  return out;
}

template <class F, class... A>
void launch(dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t /*stream*/,
            F kernel, A... args) {
  ++g_launches;
  set_dynamic_shared(shared_bytes);
  run_grid(grid, block, [&] { kernel(args...); });
}

}  // namespace kx_emu

#define threadIdx (::kx_emu::g_thread)
#define blockIdx (::kx_emu::g_block)
#define blockDim (::kx_emu::g_block_dim)
#define gridDim (::kx_emu::g_grid_dim)

inline void __syncthreads() { kx_emu::barrier(); }

template <class T>
inline T __shfl_sync(unsigned /*mask*/, T v, int src_lane, int /*width*/ = 32) {
  return kx_emu::exchange(v, static_cast<unsigned>(src_lane));
}
template <class T>
inline T __shfl_xor_sync(unsigned /*mask*/, T v, int lane_mask, int /*width*/ = 32) {
  return kx_emu::exchange(v, (kx_emu::linear_thread() & 31u) ^ static_cast<unsigned>(lane_mask));
}
template <class T>
inline T __shfl_down_sync(unsigned /*mask*/, T v, unsigned delta, int /*width*/ = 32) {
  const unsigned lane = kx_emu::linear_thread() & 31u;
  // past the end of the warp: the thread's own value, as on a GPU
  return kx_emu::exchange(v, lane + delta < 32u ? lane + delta : lane);
}
inline unsigned __ballot_sync(unsigned /*mask*/, int pred) {
  const unsigned me = kx_emu::linear_thread();
  *kx_emu::slot(me) = pred != 0 ? 1u : 0u;
  kx_emu::barrier();
  unsigned out = 0;
  for (unsigned l = 0; l < 32u; ++l) {
    const unsigned t = (me & ~31u) | l;
    if (t < kx_emu::g_block_dim.x * kx_emu::g_block_dim.y * kx_emu::g_block_dim.z && *kx_emu::slot(t) != 0)
      out |= 1u << l;
  }
  kx_emu::barrier();
  return out;
}

template <class T>
inline T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
