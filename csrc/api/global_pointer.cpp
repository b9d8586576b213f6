// csrc/api/global_pointer.cpp - the front door of kexue::global_pointer:
// every check, then the one dispatch point (the CPU backend).
#include "kexue/global_pointer.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "api/checks.hpp"
#include "kexue/losses.hpp"
#include "cpu/global_pointer.hpp"

namespace kexue {
namespace global_pointer {

namespace {

void check_opts(const char* op, const Options& opt, std::int64_t B, std::int64_t T,
                std::int64_t D, const char* dname) {
  if (opt.mask) api::check_arg(op, *opt.mask, "mask", DType::Bool, {B, T}, "[B,T]");
  KX_CHECK_VALUE(std::isfinite(opt.rope_base) && opt.rope_base > 0.0, op,
                 "rope_base must be a finite number > 0; got ", opt.rope_base);
  KX_CHECK_VALUE(!opt.rope || D % 2 == 0, op, dname, " must be even with rope=True; got ", D);
}

cpu::GpShape check_qk(const char* op, const Array& q, const Array& k, const Options& opt) {
  api::check_ndim(op, q, "q", 4, "[B,T,E,D]");
  api::check_float(op, q, "q");
  const cpu::GpShape s{q.dim(0), q.dim(1), q.dim(2), q.dim(3)};
  api::check_arg(op, k, "k", q.dtype, q.shape, "[B,T,E,D] (the shape of q)");
  KX_CHECK_VALUE(s.D >= 1, op, "q must have a head size D >= 1; got shape ", q.shape_str());
  check_opts(op, opt, s.B, s.T, s.D, "the head size D (q's last axis)");
  return s;
}

cpu::GpShape check_egp(const char* op, const Array& h, const Array& W,
                       const std::optional<Array>& bias, const Options& opt) {
  api::check_ndim(op, h, "h", 3, "[B,T,2d]");
  api::check_float(op, h, "h");
  const std::int64_t C2 = h.dim(2);
  KX_CHECK_VALUE(C2 >= 2 && C2 % 2 == 0, op,
                 "h's last axis must be even, 2d (q and k interleaved); got shape ",
                 h.shape_str());
  api::check_ndim(op, W, "W", 2, "[2d,2E]");
  api::check_dtype(op, W, "W", h.dtype);
  const std::int64_t E2 = W.dim(1);
  KX_CHECK_VALUE(W.dim(0) == C2 && E2 >= 2 && E2 % 2 == 0, op,
                 "W must have shape (", C2, ", 2E) [2d,2E] with E >= 1; got ", W.shape_str());
  if (bias) api::check_arg(op, *bias, "bias", h.dtype, {E2}, "[2E]");
  const cpu::GpShape s{h.dim(0), h.dim(1), E2 / 2, C2 / 2};
  check_opts(op, opt, s.B, s.T, s.D, "d (half of h's last axis)");
  return s;
}

}  // namespace

void scores(const Array& q, const Array& k, const Options& opt, const Array& out) {
  const char* op = "global_pointer.scores";
  const cpu::GpShape s = check_qk(op, q, k, opt);
  api::check_arg(op, out, "out", q.dtype, {s.B, s.E, s.T, s.T}, "[B,E,T,T]");
  cpu::gp_scores(s, q, k, opt.mask ? opt.mask->ptr<bool>() : nullptr, opt, out);
}

void scores_backward(const Array& q, const Array& k, const Array& d_scores, const Options& opt,
                     const Array& dq, const Array& dk) {
  const char* op = "global_pointer.scores_backward";
  const cpu::GpShape s = check_qk(op, q, k, opt);
  api::check_arg(op, d_scores, "d_scores", q.dtype, {s.B, s.E, s.T, s.T}, "[B,E,T,T]");
  api::check_arg(op, dq, "dq", q.dtype, q.shape, "[B,T,E,D]");
  api::check_arg(op, dk, "dk", q.dtype, q.shape, "[B,T,E,D]");
  cpu::gp_scores_backward(s, q, k, d_scores, opt.mask ? opt.mask->ptr<bool>() : nullptr, opt, dq,
                          dk);
}

void efficient_scores(const Array& h, const Array& W, const std::optional<Array>& bias,
                      const Options& opt, const Array& out) {
  const char* op = "global_pointer.efficient_scores";
  const cpu::GpShape s = check_egp(op, h, W, bias, opt);
  api::check_arg(op, out, "out", h.dtype, {s.B, s.E, s.T, s.T}, "[B,E,T,T]");
  cpu::gp_efficient(s, h, W, bias ? &*bias : nullptr, opt.mask ? opt.mask->ptr<bool>() : nullptr,
                    opt, out);
}

void efficient_scores_backward(const Array& h, const Array& W, const Array& d_scores,
                               const std::optional<Array>& bias, const Options& opt,
                               const Array& dh, const Array& dW, const Array& dbias) {
  const char* op = "global_pointer.efficient_scores_backward";
  const cpu::GpShape s = check_egp(op, h, W, bias, opt);
  api::check_arg(op, d_scores, "d_scores", h.dtype, {s.B, s.E, s.T, s.T}, "[B,E,T,T]");
  api::check_arg(op, dh, "dh", h.dtype, h.shape, "[B,T,2d]");
  api::check_arg(op, dW, "dW", h.dtype, W.shape, "[2d,2E]");
  api::check_arg(op, dbias, "dbias", h.dtype, {2 * s.E}, "[2E]");
  cpu::gp_efficient_backward(s, h, W, d_scores, bias ? &*bias : nullptr,
                             opt.mask ? opt.mask->ptr<bool>() : nullptr, opt, dh, dW, dbias);
}

std::vector<Span> decode(const Array& scores, double threshold, const std::optional<Array>& mask,
                         bool flat) {
  const char* op = "global_pointer.decode";
  api::check_ndim(op, scores, "scores", 4, "[B,E,T,T]");
  api::check_float(op, scores, "scores");
  KX_CHECK_VALUE(scores.dim(2) == scores.dim(3), op, "scores must be [B,E,T,T] (square in the last two axes); got shape ",
                 scores.shape_str());
  KX_CHECK_VALUE(!std::isnan(threshold), op, "threshold must not be NaN");
  const bool* m = nullptr;
  if (mask) {
    api::check_ndim(op, *mask, "mask", 2, "[B,T]");
    api::check_dtype(op, *mask, "mask", DType::Bool);
    api::check_shape(op, *mask, "mask", {scores.dim(0), scores.dim(2)}, "[B,T]");
    m = mask->ptr<bool>();
  }
  return cpu::gp_decode(scores, threshold, m, flat);
}

void loss(const Array& scores, const Array& spans, const Array& loss_out, const Array* grad) {
  const char* op = "global_pointer.loss";
  api::check_ndim(op, scores, "scores", 4, "[B,E,T,T]");
  api::check_float(op, scores, "scores");
  KX_CHECK_VALUE(scores.dim(2) == scores.dim(3), op,
                 "scores must be [B,E,T,T] (square in the last two axes); got shape ", scores.shape_str());
  const std::int64_t B = scores.dim(0), E = scores.dim(1), T = scores.dim(2);
  KX_CHECK_TYPE(spans.is_index(), op, "spans must be integers (int32 or int64); got ", spans.name);
  KX_CHECK_VALUE(spans.ndim() == 2 && spans.dim(1) == 4, op,
                 "spans must be [n,4] rows (batch, type, start, end); got shape ", spans.shape_str());
  api::check_arg(op, loss_out, "loss", scores.dtype, {B, E}, "[B,E]");
  if (grad) api::check_arg(op, *grad, "grad", scores.dtype, scores.shape, "[B,E,T,T]");
  const std::int64_t n = spans.dim(0);
  const std::int64_t limit[4] = {B, E, T, T};
  const char* what[4] = {"batch", "type", "start", "end"};
  std::vector<std::int64_t> rows(static_cast<std::size_t>(n)), count(static_cast<std::size_t>(B * E), 0);
  auto at = [&](std::int64_t r, int c) -> std::int64_t {
    return spans.dtype == DType::Int32 ? spans.ptr<std::int32_t>()[r * 4 + c] : spans.ptr<std::int64_t>()[r * 4 + c];
  };
  for (std::int64_t r = 0; r < n; ++r) {
    for (int c = 0; c < 4; ++c) {
      const std::int64_t v = at(r, c);
      if (v < 0 || v >= limit[c])
        fail(ErrorKind::Index, op, "spans ", what[c], " must be in [0, ", limit[c], "); got ", v, " in row ", r);
    }
    rows[static_cast<std::size_t>(r)] = at(r, 0) * E + at(r, 1);
    ++count[static_cast<std::size_t>(rows[static_cast<std::size_t>(r)])];
  }
  std::int64_t P = 1;
  for (std::int64_t c : count) P = std::max(P, c);
  // Positives per (batch, type) as cell indices i*T + j, padded with -1.
  std::vector<std::int64_t> index(static_cast<std::size_t>(B * E * P), -1), fill(count.size(), 0);
  for (std::int64_t r = 0; r < n; ++r) {
    const std::size_t row = static_cast<std::size_t>(rows[static_cast<std::size_t>(r)]);
    index[row * static_cast<std::size_t>(P) + static_cast<std::size_t>(fill[row]++)] = at(r, 2) * T + at(r, 3);
  }
  const Array s2(scores.data, scores.dtype, {B * E, T * T});
  const Array ix(index.data(), DType::Int64, {B * E, P});
  const Array l2(loss_out.data, loss_out.dtype, {B * E});
  if (grad) {
    const Array g2(grad->data, grad->dtype, {B * E, T * T});
    losses::sparse_multilabel_crossentropy(s2, ix, false, l2, &g2);
  } else {
    losses::sparse_multilabel_crossentropy(s2, ix, false, l2, nullptr);
  }
}

namespace {

std::vector<Span> distinct_rows(const Array& a, const char* name) {
  const char* op = "global_pointer.f1";
  std::vector<Span> rows;
  if (a.size() == 0) return rows;  // an empty list of spans, whatever its shape
  KX_CHECK_VALUE(a.is_index(), op, name, " must be integer [n,4] rows (batch, type, start, end); got dtype ",
                 a.name);
  KX_CHECK_VALUE(a.ndim() == 2 && a.dim(1) == 4, op, name,
                 " must be integer [n,4] rows (batch, type, start, end); got shape ", a.shape_str());
  rows.resize(static_cast<std::size_t>(a.dim(0)));
  for (std::int64_t r = 0; r < a.dim(0); ++r)
    for (int c = 0; c < 4; ++c)
      rows[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)] =
          a.dtype == DType::Int32 ? a.ptr<std::int32_t>()[r * 4 + c] : a.ptr<std::int64_t>()[r * 4 + c];
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

}  // namespace

F1Counts f1_counts(const Array& pred_spans, const Array& gold_spans) {
  const std::vector<Span> p = distinct_rows(pred_spans, "pred_spans");
  const std::vector<Span> g = distinct_rows(gold_spans, "gold_spans");
  F1Counts out;
  out.pred = static_cast<std::int64_t>(p.size());
  out.gold = static_cast<std::int64_t>(g.size());
  std::size_t i = 0, j = 0;
  while (i < p.size() && j < g.size()) {  // both sorted: one merge
    if (p[i] < g[j]) ++i;
    else if (g[j] < p[i]) ++j;
    else {
      ++out.tp;
      ++i;
      ++j;
    }
  }
  return out;
}

}  // namespace global_pointer
}  // namespace kexue
