// csrc/cpu/losses.cpp - the ZLPR losses on the CPU: rows in parallel chunks
// (a fixed number of rows each), each chunk with its own scratch.
#include "cpu/losses.hpp"

#include "cpu/workspace.hpp"
#include "kexue/core/parallel.hpp"

namespace kexue {
namespace cpu {

void loss_run(const LossPlan& plan) {
  if (plan.R == 0) return;
  const LossKernels& kern = loss_kernels();
  const std::size_t ws_bytes = kern.workspace(plan);
  // ~64K classes a chunk: big enough to amortise the scratch, small enough
  // to spread a batch over the threads.
  const std::int64_t grain = plan.C >= 65536 ? 1 : 65536 / plan.C;
  parallel_for(plan.R, grain, [&](std::int64_t r0, std::int64_t r1) {
    Workspace ws(ws_bytes);
    kern.rows(plan, r0, r1, ws.data());
  });
}

}  // namespace cpu
}  // namespace kexue
