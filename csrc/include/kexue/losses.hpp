// kexue/losses.hpp - the multi-label "softmax + cross-entropy" family (ZLPR):
// checked entry points. Rows are the leading axes of `logits` [..., C]; every
// output is allocated by the caller (C-contiguous) in the logits' dtype.
// A class is excluded (in neither sum, gradient 0) when its mask entry is
// false or its logit is -inf. O(rows * C), parallel over rows.
#pragma once
#include <optional>

#include "kexue/core/view.hpp"

namespace kexue {
namespace losses {

/// Hard labels: targets [..., C] bool, or the logits' float dtype holding 0/1.
/// loss [...]; grad [..., C] (nullable) = d loss.sum() / d logits.
KX_API void multilabel_crossentropy(const Array& logits, const Array& targets,
                                    const std::optional<Array>& mask, const Array& loss,
                                    const Array* grad);

/// Soft labels: probs [..., C] in [0, 1] (the logits' dtype); equals the hard
/// loss on 0/1 targets.
KX_API void multilabel_crossentropy_soft(const Array& logits, const Array& probs,
                                         const std::optional<Array>& mask, const Array& loss,
                                         const Array* grad);

/// Positives as indices: positive_index [..., P] int32/int64 in [-1, C), -1 =
/// padding, duplicates count once; mask_zero: index 0 is padding too and
/// class 0 is excluded. Equals the dense loss on the one-hot targets.
KX_API void sparse_multilabel_crossentropy(const Array& logits, const Array& positive_index,
                                           bool mask_zero, const Array& loss, const Array* grad);

}  // namespace losses
}  // namespace kexue
