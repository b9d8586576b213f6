// csrc/cpu/losses_plan.hpp - what the CPU backend hands the per-ISA loss
// kernels (internal). Inputs are checked, including target values and
// indices, before a plan is run: the kernels never fail.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kexue/core/view.hpp"

namespace kexue {
namespace cpu {

enum class LossKind { Hard, Soft, Sparse };

struct LossPlan {
  LossKind kind;
  std::int64_t R, C, P;  ///< rows, classes, positives per row (sparse)
  const void* logits;    ///< [R,C]
  DType dt;
  const void* targets;   ///< [R,C] bool or dt (hard/soft)
  DType tdt;
  const bool* mask;      ///< [R,C] or nullptr
  const void* index;     ///< [R,P] (sparse)
  DType idt;
  bool mask_zero;
  void* loss;            ///< [R]
  void* grad;            ///< [R,C] or nullptr
};

struct LossKernels {
  void (*rows)(const LossPlan&, std::int64_t r0, std::int64_t r1, char* ws);
  std::size_t (*workspace)(const LossPlan&);
};

/// The kernels for the SIMD level in force (see dispatch.cpp).
const LossKernels& loss_kernels();

}  // namespace cpu
}  // namespace kexue
