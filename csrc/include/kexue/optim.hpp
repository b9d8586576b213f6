// kexue/optim.hpp - fused in-place optimizer steps: checked entry points.
//
// Each entry point updates a list of parameter arrays (float32 or float64,
// C-contiguous) and their state arrays in place, in one fused pass per array
// where the rule allows it (LAMB, Adafactor and reduced Amos need per-array
// norms or means first). Everything is checked before the first byte is
// written: a call that throws has changed nothing. Work is split into fixed
// chunks of the arrays (never by thread count), so results are bitwise equal
// for any number of threads. The formulas are in spec/kernels.md section C and
// in the docstrings of python/kexue/optim/functional.py.
//
// `step` is the 1-based number of this update. `grad_scale` multiplies every
// gradient inside the update (global-norm clipping without rewriting grads).
// State arrays of dtype UInt16 hold bfloat16 bits (Adam, AdamW, AdaX, Lion;
// float32 params only): new moments are computed in float32 and stored with
// stochastic rounding driven by Philox4x32-10 keyed by `seed`, with counter
// (element block, step, array position) - see python/kexue/optim/functional.py.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "kexue/core/view.hpp"

namespace kexue {
namespace optim {

/// One parameter with its gradient and its state slots (slot order per rule
/// below; an absent optional slot is an Array with data == nullptr and
/// dtype Other, i.e. a default-constructed Array).
struct Slot {
  Array param;
  Array grad;
  std::vector<Array> state;
};

struct StepInfo {
  std::int64_t step = 1;     ///< 1-based number of this update
  double grad_scale = 1.0;   ///< multiplies every gradient (> 0, finite)
  std::uint64_t seed = 0;    ///< stochastic rounding of bfloat16 state
};

/// torch.optim.SGD. state: {momentum_buffer} (absent iff momentum == 0).
struct SgdOptions { double lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0; bool nesterov = false; };
KX_API void sgd(const std::vector<Slot>& slots, const SgdOptions& o, const StepInfo& s);

/// torch.optim.Adam (decoupled = false: L2 added to the gradient) and AdamW
/// (decoupled = true). state: {exp_avg, exp_avg_sq[, max_exp_avg_sq if amsgrad]}.
struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false, amsgrad = false;
};
KX_API void adam(const std::vector<Slot>& slots, const AdamOptions& o, const StepInfo& s);

/// AdaX (spec C3; eps outside the square root). state: {exp_avg, exp_avg_sq}.
struct AdaxOptions { double lr = 1e-3, beta1 = 0.9, beta2 = 1e-4, eps = 1e-6, weight_decay = 0; };
KX_API void adax(const std::vector<Slot>& slots, const AdaxOptions& o, const StepInfo& s);

/// Lion (spec C6). state: {exp_avg}.
struct LionOptions { double lr = 1e-4, beta1 = 0.9, beta2 = 0.99, weight_decay = 0; };
KX_API void lion(const std::vector<Slot>& slots, const LionOptions& o, const StepInfo& s);

/// LAMB (spec C5), trust ratio per array. state: {exp_avg, exp_avg_sq}.
struct LambOptions { double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-6, weight_decay = 0.01; };
KX_API void lamb(const std::vector<Slot>& slots, const LambOptions& o, const StepInfo& s);

/// Adafactor (spec C4, bert4keras). state: {exp_avg (absent unless beta1 > 0),
/// exp_avg_sq (full) | absent, exp_avg_sq_row | absent, exp_avg_sq_col | absent}:
/// either the full second moment or the factored pair, whose shapes are
/// `adafactor_shapes`. lr / beta2 absent: relative step min(1/sqrt(t), 0.01)
/// (x 0.05 without parameter scaling) and beta2_t = 1 - t^-0.8.
struct AdafactorOptions {
  std::optional<double> lr, beta2;
  double beta1 = 0, eps1 = 1e-30, eps2 = 1e-3, d = 1;
  bool multiply_by_parameter_scale = true;
};
KX_API void adafactor(const std::vector<Slot>& slots, const AdafactorOptions& o, const StepInfo& s);

/// The factored state shapes of a parameter of `shape`: (row, col) with the
/// largest axis a1 removed from row and the second largest a2 removed from
/// col (ties: the later axis is a1); nullopt when ndim < 2 or size(a2) <
/// min_dim_size_to_factor (then the full second moment is kept).
struct FactoredShapes { std::vector<std::int64_t> row, col; int a1, a2; };
KX_API std::optional<FactoredShapes> adafactor_shapes(const std::vector<std::int64_t>& shape,
                                                      std::int64_t min_dim_size_to_factor);

/// Amos (spec C7). state: {exp_avg_sq v, decay b}, each either the param's
/// shape (elementwise) or shape () (reduced over the whole array). `eta`: one
/// target scale for every array, or one per array.
struct AmosOptions {
  double lr = 1e-2, beta = 0.999, zeta = 0.25, eps = 0x1p-125, finetune_rate = 1;
  std::vector<double> eta{0.5};
};
KX_API void amos(const std::vector<Slot>& slots, const AmosOptions& o, const StepInfo& s);

/// sqrt(sum of squares) over every gradient, accumulated in float64 in fixed
/// chunks; *finite (nullable) is false when any entry is NaN or infinite.
KX_API double grad_norm(const std::vector<Array>& grads, bool* finite);

enum class ClipMode { Clip, Smooth };
/// Global-norm clipping in place: Clip scales by min(1, max_norm / N), Smooth
/// by max_norm / (N + max_norm). Returns N; a non-finite N leaves the grads as they are.
KX_API double clip_grad_norm(const std::vector<Array>& grads, double max_norm, ClipMode mode);

/// ChildTuning-F: keep each entry with probability p (scaled by 1/p), else 0;
/// deterministic for (seed, step, array position, element).
KX_API void child_tuning(const std::vector<Array>& grads, double p, std::uint64_t seed,
                         std::int64_t step);

}  // namespace optim
}  // namespace kexue
