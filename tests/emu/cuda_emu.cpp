// tests/emu/cuda_emu.cpp - the fiber scheduler behind cuda_emu.hpp.
#include "cuda_emu.hpp"

#include <ucontext.h>

#include <stdexcept>
#include <vector>

namespace kx_emu {

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
