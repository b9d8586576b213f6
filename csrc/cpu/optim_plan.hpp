// csrc/cpu/optim_plan.hpp - a checked optimizer step, as the CPU backend sees
// it (internal). Built by csrc/api/optim.cpp after every check has passed.
#pragma once
#include <cstdint>
#include <vector>

#include "kexue/core/view.hpp"

namespace kexue {
namespace cpu {

enum class OptRule : std::uint8_t { Sgd, Adam, Adax, Lion, Lamb, Adafactor, Amos };

/// One parameter array. s[]: the rule's state slots (nullptr when absent).
struct OptItem {
  std::int64_t n = 0;
  void* p = nullptr;
  const void* g = nullptr;
  void* s[4] = {nullptr, nullptr, nullptr, nullptr};
  std::uint32_t index = 0;  // position in the caller's list (keys the RNG stream)
  bool bf16 = false;        // state slots hold bfloat16 bits
  // Adafactor, factored: the array seen as [P0, na, P1, nb, P2] with a1 and a2
  // the two axes na, nb; a1_hi: the largest axis a1 is the later one (nb).
  bool factored = false, a1_hi = true;
  std::int64_t P0 = 1, na = 1, P1 = 1, nb = 1, P2 = 1;
  bool reduced = false;  // Amos: v, b are scalars
  double eta = 0.5;      // Amos: target scale
  double k[4] = {0, 0, 0, 0};  // per-array scalars set between passes
};

struct OptPlan {
  OptRule rule = OptRule::Sgd;
  DType dt = DType::Float64;
  std::int64_t step = 1;
  double gs = 1.0;
  std::uint64_t seed = 0;
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, eps1 = 0, eps2 = 0, wd = 0;
  double momentum = 0, dampening = 0, d = 1, beta = 0, zeta = 0, fr = 1;
  bool nesterov = false, amsgrad = false, decoupled = false, mbps = true;
  std::vector<OptItem> items;
};

/// A piece of one item: elements [b, e) (or, for factored Adafactor, rows).
struct OptChunk {
  std::uint32_t item;
  std::int64_t b, e;
};

/// The per-ISA kernels (csrc/cpu/simd/optim_kernels.inc).
struct OptimKernels {
  /// Pass `pass` of the plan's rule over elements [b, e) of `it`;
  /// partial[0..1]: the chunk's sums for the rules that reduce.
  void (*chunk)(const OptPlan& pl, const OptItem& it, int pass, std::int64_t b, std::int64_t e,
                double* partial);
  /// Factored Adafactor, rows [r0, r1) of [P0*na] rows of P1*nb*P2 elements.
  /// pass 0: xs[row-local (r - r0), i1, i2] = sum over nb of G2, ypart[i1, ib, i2] +=
  /// sum over rows of G2, partial[1] = sum p^2 (tmp: scratch of nb*P2 doubles);
  /// pass 1: partial[0] = sum U^2; pass 2: the update. inv_mean: 1/mean_{a2}(R) [P0, P1, P2].
  void (*af_rows)(const OptPlan& pl, const OptItem& it, int pass, std::int64_t r0, std::int64_t r1,
                  double* xs, double* ypart, const double* inv_mean, double* tmp, double* partial);
  /// Sum of squares of g[b, e) in float64 (lane-blocked); *bad |= any non-finite.
  double (*sumsq)(const void* g, DType dt, std::int64_t b, std::int64_t e, bool* bad);
  /// g[b, e) *= f (in g's dtype).
  void (*scale)(void* g, DType dt, std::int64_t b, std::int64_t e, double f);
  /// ChildTuning-F over g[b, e) (b a multiple of 64).
  void (*child)(void* g, DType dt, std::int64_t b, std::int64_t e, std::uint64_t thresh, double inv_p,
                std::uint32_t index, std::int64_t step, std::uint64_t seed);
};

const OptimKernels& optim_kernels();

}  // namespace cpu
}  // namespace kexue
