// csrc/cpu/losses.hpp - the CPU backend of kexue.losses (internal).
#pragma once
#include "cpu/losses_plan.hpp"

namespace kexue {
namespace cpu {

/// Run a checked plan over its rows.
void loss_run(const LossPlan& plan);

}  // namespace cpu
}  // namespace kexue
