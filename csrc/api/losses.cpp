// csrc/api/losses.cpp - the front door of kexue::losses: every check (target
// values and indices included), then the one dispatch point.
#include "kexue/losses.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "api/checks.hpp"
#include "cpu/losses.hpp"

namespace kexue {
namespace losses {

namespace {

/// Rows and classes of logits [..., C]; checks logits itself.
void check_logits(const char* op, const Array& logits, std::int64_t& R, std::int64_t& C) {
  KX_CHECK_VALUE(logits.ndim() >= 1, op, "logits must have at least 1 axis [..., C]; got shape ",
                 logits.shape_str());
  api::check_ndim(op, logits, "logits", logits.ndim(), "[..., C]");
  api::check_float(op, logits, "logits");
  C = logits.dim(logits.ndim() - 1);
  KX_CHECK_VALUE(C >= 1, op, "logits must have at least one class (C >= 1); got shape ",
                 logits.shape_str());
  R = logits.size() / C;
}

std::vector<std::int64_t> lead(const Array& a) {
  return std::vector<std::int64_t>(a.shape.begin(), a.shape.end() - 1);
}

void check_outputs(const char* op, const Array& logits, const Array& loss, const Array* grad) {
  api::check_arg(op, loss, "loss", logits.dtype, lead(logits), "[...]");
  if (grad) api::check_arg(op, *grad, "grad", logits.dtype, logits.shape, "[..., C]");
}

void check_mask(const char* op, const Array& logits, const std::optional<Array>& mask) {
  if (!mask) return;
  api::check_ndim(op, *mask, "mask", logits.ndim(), "[..., C]");
  api::check_dtype(op, *mask, "mask", DType::Bool);
  api::check_shape(op, *mask, "mask", logits.shape, "[..., C] (the shape of logits)");
}

/// 1 where v is not a valid target: hard, v not 0 or 1 (NaN included);
/// soft, v < 0 or v > 1 (NaN passes, as before: it propagates to the loss).
template <class F>
inline int bad_value(F v, bool hard) {
  return hard ? static_cast<int>(v != F(0)) & static_cast<int>(v != F(1))
              : static_cast<int>(v < F(0)) | static_cast<int>(v > F(1));
}

template <class F>
void check_values(const char* op, const Array& a, const char* name, bool hard) {
  const F* p = a.ptr<F>();
  const std::int64_t n = a.size();
  // Blocks checked branch-free (the loop vectorises); a block with a bad
  // value is scanned again for the first one, which the error names.
  constexpr std::int64_t kBlock = 4096;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t e = std::min(n, b + kBlock);
    int bad = 0;
    if (hard)
      for (std::int64_t i = b; i < e; ++i) bad |= bad_value(p[i], true);
    else
      for (std::int64_t i = b; i < e; ++i) bad |= bad_value(p[i], false);
    if (bad == 0) continue;
    for (std::int64_t i = b; i < e; ++i)
      if (bad_value(p[i], hard))
        fail(ErrorKind::Value, op, name, hard ? " must be 0 or 1" : " must be in [0, 1]",
             "; got ", static_cast<double>(p[i]), " at flat index ", i);
  }
}

cpu::LossPlan plan_for(cpu::LossKind kind, const Array& logits, std::int64_t R, std::int64_t C,
                       const Array& loss, const Array* grad) {
  cpu::LossPlan pl{};
  pl.kind = kind;
  pl.R = R;
  pl.C = C;
  pl.logits = logits.data;
  pl.dt = logits.dtype;
  pl.loss = loss.data;
  pl.grad = grad ? grad->data : nullptr;
  return pl;
}

void dense(const char* op, bool hard, const Array& logits, const Array& targets,
           const std::optional<Array>& mask, const Array& loss, const Array* grad) {
  std::int64_t R = 0, C = 0;
  check_logits(op, logits, R, C);
  const char* tname = hard ? "targets" : "probs";
  api::check_ndim(op, targets, tname, logits.ndim(), "[..., C]");
  if (hard)
    KX_CHECK_TYPE(targets.dtype == DType::Bool || targets.dtype == logits.dtype, op, tname,
                  " must be bool or ", dtype_name(logits.dtype), " (the logits' dtype); got ",
                  targets.name);
  else
    api::check_dtype(op, targets, tname, logits.dtype);
  api::check_shape(op, targets, tname, logits.shape, "[..., C] (the shape of logits)");
  check_mask(op, logits, mask);
  check_outputs(op, logits, loss, grad);
  if (targets.dtype == DType::Float32) check_values<float>(op, targets, tname, hard);
  if (targets.dtype == DType::Float64) check_values<double>(op, targets, tname, hard);
  cpu::LossPlan pl = plan_for(hard ? cpu::LossKind::Hard : cpu::LossKind::Soft, logits, R, C,
                              loss, grad);
  pl.targets = targets.data;
  pl.tdt = targets.dtype;
  pl.mask = mask ? mask->ptr<bool>() : nullptr;
  cpu::loss_run(pl);
}

}  // namespace

void multilabel_crossentropy(const Array& logits, const Array& targets,
                             const std::optional<Array>& mask, const Array& loss,
                             const Array* grad) {
  dense("losses.multilabel_crossentropy", true, logits, targets, mask, loss, grad);
}

void multilabel_crossentropy_soft(const Array& logits, const Array& probs,
                                  const std::optional<Array>& mask, const Array& loss,
                                  const Array* grad) {
  dense("losses.multilabel_crossentropy_soft", false, logits, probs, mask, loss, grad);
}

void sparse_multilabel_crossentropy(const Array& logits, const Array& positive_index,
                                    bool mask_zero, const Array& loss, const Array* grad) {
  const char* op = "losses.sparse_multilabel_crossentropy";
  std::int64_t R = 0, C = 0;
  check_logits(op, logits, R, C);
  api::check_ndim(op, positive_index, "positive_index", logits.ndim(), "[..., P]");
  api::check_index(op, positive_index, "positive_index");
  std::vector<std::int64_t> want = lead(logits);
  const std::int64_t P = positive_index.dim(positive_index.ndim() - 1);
  want.push_back(P);
  api::check_shape(op, positive_index, "positive_index", want,
                   "[..., P] (the leading axes of logits)");
  check_outputs(op, logits, loss, grad);
  const std::int64_t n = positive_index.size();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t v = positive_index.dtype == DType::Int32
                               ? positive_index.ptr<std::int32_t>()[i]
                               : positive_index.ptr<std::int64_t>()[i];
    if (v < -1 || v >= C)
      fail(ErrorKind::Index, op, "positive_index must be in [-1, ", C, ") (-1 = padding); got ",
           v, " at flat index ", i);
  }
  cpu::LossPlan pl = plan_for(cpu::LossKind::Sparse, logits, R, C, loss, grad);
  pl.P = P;
  pl.index = positive_index.data;
  pl.idt = positive_index.dtype;
  pl.mask_zero = mask_zero;
  cpu::loss_run(pl);
}

}  // namespace losses
}  // namespace kexue
