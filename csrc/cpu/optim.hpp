// csrc/cpu/optim.hpp - the CPU backend of kexue.optim (internal).
#pragma once
#include <vector>

#include "cpu/optim_plan.hpp"

namespace kexue {
namespace cpu {

/// Run a checked plan: every pass of its rule over fixed chunks of every array.
void optim_run(OptPlan& plan);
/// Sum of squares of every array (float64, chunk order); *bad |= non-finite.
double optim_sumsq(const std::vector<Array>& grads, bool* bad);
/// grads *= f.
void optim_scale(const std::vector<Array>& grads, double f);
/// ChildTuning-F with keep threshold `thresh` (of 2^32) and scale inv_p.
void optim_child(const std::vector<Array>& grads, std::uint64_t thresh, double inv_p,
                 std::uint64_t seed, std::int64_t step);

}  // namespace cpu
}  // namespace kexue
