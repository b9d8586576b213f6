// csrc/cpu/attention.hpp - the CPU backend of kexue::attention (internal).
#pragma once
#include <optional>

#include "cpu/attention_plan.hpp"
#include "kexue/core/view.hpp"

namespace kexue {
namespace cpu {

/// What the backend derives before the blocked loops: RoPE tables, the
/// per-query logn scales, the segment cumsums.
struct AttnExtras {
  DType dtype = DType::Float32;
  bool rope = false;
  double rope_base = 10000.0;
  std::optional<double> logn;
  const Array* segment_ids = nullptr;  ///< int32/int64 [B,N]
};

/// p: shapes, inputs, outputs and masks filled in by the front door.
void attn_forward(AttnPlan p, const AttnExtras& x);
void attn_backward(AttnPlan p, const AttnExtras& x);
/// p.lengths as int64 [B]; out [B,H,Dv], lse [B,H] (nullable).
void attn_decode(AttnPlan p, const AttnExtras& x);
void attn_rope(const Array& x, const Array& positions, double base, bool interleaved,
               const Array& out);

}  // namespace cpu
}  // namespace kexue
