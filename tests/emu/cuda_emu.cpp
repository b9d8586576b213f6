// tests/emu/cuda_emu.cpp - the fiber scheduler behind cuda_emu.hpp.
#include "cuda_emu.hpp"

#include <ucontext.h>

#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

namespace kx_emu {

namespace {
std::map<std::uintptr_t, std::size_t> g_device_memory;  // start -> bytes
int g_device = 0;
}  // namespace

long g_launches = 0;

namespace {
std::vector<double> g_dyn;  // doubles: 8-byte aligned (malloc gives 16)
}  // namespace

void set_dynamic_shared(std::size_t bytes) { g_dyn.assign((bytes + 7) / 8 + 2, 0.0); }

void* dynamic_shared() { return g_dyn.data(); }

void register_device_memory(void* p, std::size_t bytes) {
  const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(p);
  g_device_memory.erase(at);
  g_device_memory.emplace(at, bytes);
}

void unregister_device_memory(const void* p) { g_device_memory.erase(reinterpret_cast<std::uintptr_t>(p)); }

uint3 g_thread{0, 0, 0}, g_block{0, 0, 0};
dim3 g_block_dim, g_grid_dim;

namespace {

constexpr std::size_t kStack = 256 * 1024;  // per GPU thread (kernels keep small frames)

enum class State { Runnable, Parked, Done };

struct Fiber {
  ucontext_t ctx;
  uint3 tid;
  State state = State::Runnable;
};

struct Block {
  ucontext_t sched;
  std::vector<Fiber> fibers;
  std::vector<std::vector<char>> stacks;
  std::vector<std::uint64_t> table;
  const std::function<void()>* body = nullptr;
  std::size_t current = 0;
};

Block* g_run = nullptr;  // one launch at a time in the process (a test tool)

void entry() {
  Block& b = *g_run;
  (*b.body)();
  b.fibers[b.current].state = State::Done;
  swapcontext(&b.fibers[b.current].ctx, &b.sched);
}

/// Fiber i of the block, ready to start the body (kept out of run_grid: no
/// local of that loop lives across getcontext, which returns like setjmp).
__attribute__((noinline)) void init_fiber(Block& b, std::size_t i, dim3 block) {
  Fiber& f = b.fibers[i];
  f.tid = uint3{static_cast<unsigned>(i % block.x), static_cast<unsigned>(i / block.x % block.y),
                static_cast<unsigned>(i / (block.x * block.y))};
  f.state = State::Runnable;
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = b.stacks[i].data();
  f.ctx.uc_stack.ss_size = kStack;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, entry, 0);
}

}  // namespace

unsigned linear_thread() {
  return g_thread.x + g_block_dim.x * (g_thread.y + g_block_dim.y * g_thread.z);
}

std::uint64_t* slot(unsigned t) { return &g_run->table.at(t); }

void barrier() {
  Block& b = *g_run;
  b.fibers[b.current].state = State::Parked;
  swapcontext(&b.fibers[b.current].ctx, &b.sched);
}

void run_grid(dim3 grid, dim3 block, const std::function<void()>& body) {
  if (g_run != nullptr) throw std::logic_error("kx_emu: a launch inside a kernel");
  const std::size_t n = static_cast<std::size_t>(block.x) * block.y * block.z;
  if (n == 0 || n > 1024) throw std::invalid_argument("kx_emu: 1..1024 threads a block");
  Block b;
  b.body = &body;
  b.fibers.resize(n);
  b.stacks.assign(n, std::vector<char>(kStack));
  b.table.assign(n, 0);
  g_run = &b;
  g_grid_dim = grid;
  g_block_dim = block;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        g_block = uint3{bx, by, bz};
        for (std::size_t i = 0; i < n; ++i) init_fiber(b, i, block);
        // Between barriers every runnable fiber runs, in thread order, until it
        // parks or ends; then the parked ones are released together.
        for (;;) {
          bool any = false;
          for (std::size_t i = 0; i < n; ++i) {
            Fiber& f = b.fibers[i];
            if (f.state != State::Runnable) continue;
            any = true;
            b.current = i;
            g_thread = f.tid;
            swapcontext(&b.sched, &f.ctx);
          }
          bool parked = false;
          for (Fiber& f : b.fibers)
            if (f.state == State::Parked) {
              f.state = State::Runnable;
              parked = true;
            }
          if (!any && !parked) break;
        }
      }
  g_run = nullptr;
}

}  // namespace kx_emu

// ---------------------------------------------------------------- the runtime

namespace {
/// What cudaMalloc handed out and cudaFree has not taken back: released when
/// the process ends, as a device's memory is (so a buffer a backend keeps for
/// the process's lifetime is not a leak to the sanitizers).
struct Owned {
  std::set<void*> blocks;
  ~Owned() {
    for (void* b : blocks) std::free(b);
  }
};
Owned& owned() {
  static Owned o;
  return o;
}
}  // namespace

cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  void* q = std::malloc(bytes ? bytes : 1);
  *p = q;
  if (q == nullptr) return cudaErrorMemoryAllocation;
  kx_emu::register_device_memory(q, bytes);
  owned().blocks.insert(q);
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  if (owned().blocks.erase(p) == 0) return cudaErrorInvalidValue;
  kx_emu::unregister_device_memory(p);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  *a = cudaPointerAttributes{cudaMemoryTypeUnregistered, -2, nullptr, const_cast<void*>(p)};
  const auto x = reinterpret_cast<std::uintptr_t>(p);
  auto it = kx_emu::g_device_memory.upper_bound(x);
  if (it != kx_emu::g_device_memory.begin()) {
    --it;
    if (x < it->first + (it->second ? it->second : 1)) {
      *a = cudaPointerAttributes{cudaMemoryTypeDevice, 0, const_cast<void*>(p), nullptr};
    }
  }
  return cudaSuccess;
}

cudaError_t cudaGetLastError() { return cudaSuccess; }

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
  }
  return "unknown error";
}

cudaError_t cudaGetDevice(int* d) {
  *d = kx_emu::g_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int d) {
  if (d != 0) return cudaErrorInvalidDevice;
  kx_emu::g_device = d;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}

cudaError_t cudaMallocAsync(void** p, std::size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }

cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }

cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}
