// csrc/api/attention.cpp - the front door of kexue::attention: every check,
// then the one dispatch point (the CPU backend).
#include "kexue/attention.hpp"

#include <cmath>
#include <vector>

#include "api/checks.hpp"
#include "cpu/attention.hpp"

namespace kexue {
namespace attention {

namespace {

/// Shapes of q, k, v and the plan's inputs.
cpu::AttnPlan check_qkv(const char* op, const Array& q, const Array& k, const Array& v) {
  api::check_ndim(op, q, "q", 4, "[B,H,N,D]");
  api::check_float(op, q, "q");
  api::check_ndim(op, k, "k", 4, "[B,Hkv,M,D]");
  api::check_dtype(op, k, "k", q.dtype);
  api::check_ndim(op, v, "v", 4, "[B,Hkv,M,Dv]");
  api::check_dtype(op, v, "v", q.dtype);
  cpu::AttnPlan p;
  p.B = q.dim(0);
  p.H = q.dim(1);
  p.N = q.dim(2);
  p.D = q.dim(3);
  p.Hkv = k.dim(1);
  p.M = k.dim(2);
  p.Dv = v.dim(3);
  KX_CHECK_VALUE(p.D >= 1, op, "q must have a head size D >= 1; got shape ", q.shape_str());
  KX_CHECK_VALUE(k.dim(0) == p.B && k.dim(3) == p.D, op,
                 "k must have shape (B, Hkv, M, D) with B and D of q ", q.shape_str(), "; got ",
                 k.shape_str());
  KX_CHECK_VALUE(p.Hkv >= 1 && p.H % p.Hkv == 0, op,
                 "k's head count Hkv must divide q's H = ", p.H, "; got shape ", k.shape_str());
  KX_CHECK_VALUE(v.dim(0) == p.B && v.dim(1) == p.Hkv && v.dim(2) == p.M && p.Dv >= 1, op,
                 "v must have shape (B, Hkv, M, Dv) with B, Hkv, M of k ", k.shape_str(),
                 " and Dv >= 1; got ", v.shape_str());
  p.q = q.data;
  p.k = k.data;
  p.v = v.data;
  return p;
}

void check_alibi(const char* op, const std::optional<Array>& a, std::int64_t H,
                 cpu::AttnPlan& p) {
  if (!a) return;
  api::check_arg(op, *a, "alibi_slopes", DType::Float64, {H}, "[H]");
  const double* s = a->ptr<double>();
  for (std::int64_t h = 0; h < H; ++h)
    KX_CHECK_VALUE(std::isfinite(s[h]), op, "alibi_slopes must be finite; got ", s[h],
                   " at ", h);
  p.alibi = s;
}

void check_scale(const char* op, const std::optional<double>& scale,
                 const std::optional<double>& logn, std::int64_t D, cpu::AttnPlan& p) {
  if (scale) KX_CHECK_VALUE(std::isfinite(*scale), op, "scale must be finite; got ", *scale);
  if (logn)
    KX_CHECK_VALUE(std::isfinite(*logn) && *logn > 1.0, op,
                   "logn must be a finite number > 1 (the training length); got ", *logn);
  p.scale = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(D));
}

void check_window(const char* op, std::int64_t w, cpu::AttnPlan& p) {
  KX_CHECK_VALUE(w >= 0, op, "window must be >= 1 (0 here means none); got ", w);
  p.window = w;
}

/// The options of sdpa and sdpa_backward into the plan and extras.
cpu::AttnExtras check_options(const char* op, const Options& o, const Array& q,
                              cpu::AttnPlan& p) {
  p.causal = o.causal;
  check_window(op, o.window, p);
  check_scale(op, o.scale, o.logn, p.D, p);
  check_alibi(op, o.alibi_slopes, p.H, p);
  cpu::AttnExtras x;
  x.dtype = q.dtype;
  x.logn = o.logn;
  x.rope = o.rope;
  x.rope_base = o.rope_base;
  p.interleaved = o.rope_interleaved;
  if (o.rope) {
    KX_CHECK_VALUE(p.D % 2 == 0, op, "q's head size D must be even with rope=True; got ", p.D);
    KX_CHECK_VALUE(std::isfinite(o.rope_base) && o.rope_base > 0.0, op,
                   "rope_base must be a finite number > 0; got ", o.rope_base);
  }
  if (o.mask) {
    const Array& m = *o.mask;
    api::check_ndim(op, m, "mask", 4, "[B|1,H|1,N|1,M|1]");
    KX_CHECK_TYPE(m.dtype == DType::Bool || m.dtype == q.dtype, op,
                  "mask must be bool or a float bias of q's dtype ", dtype_name(q.dtype),
                  "; got ", m.name);
    const std::int64_t full[4] = {p.B, p.H, p.N, p.M};
    std::int64_t stride = 1;
    for (int a = 3; a >= 0; --a) {
      KX_CHECK_VALUE(m.dim(a) == 1 || m.dim(a) == full[a], op,
                     "mask must broadcast to (B, H, N, M) = ",
                     api::shape_str({p.B, p.H, p.N, p.M}), "; got shape ", m.shape_str());
      p.ms[a] = m.dim(a) == 1 ? 0 : stride;
      stride *= m.dim(a);
    }
    if (m.dtype == DType::Bool)
      p.bmask = m.ptr<bool>();
    else
      p.bias = m.data;
  }
  if (o.segment_ids) {
    const Array& s = *o.segment_ids;
    api::check_ndim(op, s, "segment_ids", 2, "[B,N]");
    api::check_index(op, s, "segment_ids");
    api::check_shape(op, s, "segment_ids", {p.B, p.N}, "[B,N]");
    KX_CHECK_VALUE(p.N == p.M, op, "segment_ids needs as many keys as queries (N == M); got N = ",
                   p.N, ", M = ", p.M);
    for (std::int64_t i = 0; i < s.size(); ++i) {
      const std::int64_t val = s.dtype == DType::Int32 ? s.ptr<std::int32_t>()[i]
                                                       : s.ptr<std::int64_t>()[i];
      KX_CHECK_VALUE(val == 0 || val == 1, op,
                     "segment_ids must be 0 (source) or 1 (target); got ", val, " at (",
                     i / (p.N > 0 ? p.N : 1), ", ", i % (p.N > 0 ? p.N : 1), ")");
    }
    x.segment_ids = &s;
  }
  return x;
}

}  // namespace

void sdpa(const Array& q, const Array& k, const Array& v, const Options& opt, const Array& out,
          const Array* lse) {
  const char* op = "attention.sdpa";
  cpu::AttnPlan p = check_qkv(op, q, k, v);
  const cpu::AttnExtras x = check_options(op, opt, q, p);
  api::check_arg(op, out, "out", q.dtype, {p.B, p.H, p.N, p.Dv}, "[B,H,N,Dv]");
  if (lse != nullptr) api::check_arg(op, *lse, "lse", q.dtype, {p.B, p.H, p.N}, "[B,H,N]");
  p.out = out.data;
  p.lse = lse != nullptr ? lse->data : nullptr;
  cpu::attn_forward(p, x);
}

void sdpa_backward(const Array& q, const Array& k, const Array& v, const Array& out,
                   const Array& lse, const Array& dout, const Options& opt, const Array& dq,
                   const Array& dk, const Array& dv) {
  const char* op = "attention.sdpa_backward";
  cpu::AttnPlan p = check_qkv(op, q, k, v);
  const cpu::AttnExtras x = check_options(op, opt, q, p);
  api::check_arg(op, out, "out", q.dtype, {p.B, p.H, p.N, p.Dv}, "[B,H,N,Dv]");
  api::check_arg(op, lse, "lse", q.dtype, {p.B, p.H, p.N}, "[B,H,N]");
  api::check_arg(op, dout, "dout", q.dtype, {p.B, p.H, p.N, p.Dv}, "[B,H,N,Dv]");
  api::check_arg(op, dq, "dq", q.dtype, q.shape, "[B,H,N,D]");
  api::check_arg(op, dk, "dk", q.dtype, k.shape, "[B,Hkv,M,D]");
  api::check_arg(op, dv, "dv", q.dtype, v.shape, "[B,Hkv,M,Dv]");
  p.out = out.data;
  p.lse = lse.data;
  p.dout = dout.data;
  p.dq = dq.data;
  p.dk = dk.data;
  p.dv = dv.data;
  cpu::attn_backward(p, x);
}

void decode(const Array& q, const Array& k_cache, const Array& v_cache, const Array& lengths,
            const DecodeOptions& opt, const Array& out, const Array* lse) {
  const char* op = "attention.decode";
  api::check_ndim(op, q, "q", 3, "[B,H,D]");
  api::check_float(op, q, "q");
  api::check_ndim(op, k_cache, "k_cache", 4, "[B,Hkv,Mmax,D]");
  api::check_dtype(op, k_cache, "k_cache", q.dtype);
  api::check_ndim(op, v_cache, "v_cache", 4, "[B,Hkv,Mmax,Dv]");
  api::check_dtype(op, v_cache, "v_cache", q.dtype);
  cpu::AttnPlan p;
  p.B = q.dim(0);
  p.H = q.dim(1);
  p.D = q.dim(2);
  p.N = 1;
  p.Hkv = k_cache.dim(1);
  p.M = k_cache.dim(2);
  p.Dv = v_cache.dim(3);
  KX_CHECK_VALUE(p.D >= 1, op, "q must have a head size D >= 1; got shape ", q.shape_str());
  KX_CHECK_VALUE(k_cache.dim(0) == p.B && k_cache.dim(3) == p.D, op,
                 "k_cache must have shape (B, Hkv, Mmax, D) with B and D of q ", q.shape_str(),
                 "; got ", k_cache.shape_str());
  KX_CHECK_VALUE(p.Hkv >= 1 && p.H % p.Hkv == 0, op,
                 "k_cache's head count Hkv must divide q's H = ", p.H, "; got shape ",
                 k_cache.shape_str());
  KX_CHECK_VALUE(v_cache.dim(0) == p.B && v_cache.dim(1) == p.Hkv && v_cache.dim(2) == p.M &&
                     p.Dv >= 1,
                 op, "v_cache must have shape (B, Hkv, Mmax, Dv) with B, Hkv, Mmax of k_cache ",
                 k_cache.shape_str(), " and Dv >= 1; got ", v_cache.shape_str());
  api::check_ndim(op, lengths, "lengths", 1, "[B]");
  api::check_index(op, lengths, "lengths");
  api::check_shape(op, lengths, "lengths", {p.B}, "[B]");
  std::vector<std::int64_t> len(static_cast<std::size_t>(p.B));
  for (std::int64_t b = 0; b < p.B; ++b) {
    const std::int64_t L = lengths.dtype == DType::Int32 ? lengths.ptr<std::int32_t>()[b]
                                                         : lengths.ptr<std::int64_t>()[b];
    KX_CHECK_INDEX(L >= 0 && L <= p.M, op, "lengths must be in [0, Mmax = ", p.M, "]; got ", L,
                   " at ", b);
    len[static_cast<std::size_t>(b)] = L;
  }
  check_window(op, opt.window, p);
  check_scale(op, opt.scale, opt.logn, p.D, p);
  check_alibi(op, opt.alibi_slopes, p.H, p);
  api::check_arg(op, out, "out", q.dtype, {p.B, p.H, p.Dv}, "[B,H,Dv]");
  if (lse != nullptr) api::check_arg(op, *lse, "lse", q.dtype, {p.B, p.H}, "[B,H]");
  p.q = q.data;
  p.k = k_cache.data;
  p.v = v_cache.data;
  p.out = out.data;
  p.lse = lse != nullptr ? lse->data : nullptr;
  p.lengths = len.data();
  cpu::AttnExtras x;
  x.dtype = q.dtype;
  x.logn = opt.logn;
  cpu::attn_decode(p, x);
}

void rope(const Array& x, const Array& positions, double base, bool interleaved,
          const Array& out) {
  const char* op = "attention.rope";
  api::check_ndim(op, x, "x", 3, "[R,N,D]");
  api::check_float(op, x, "x");
  KX_CHECK_VALUE(x.dim(2) % 2 == 0, op, "x must have an even last dimension D; got shape ",
                 x.shape_str());
  api::check_ndim(op, positions, "positions", 2, "[1|R,N]");
  api::check_dtype(op, positions, "positions", DType::Float64);
  KX_CHECK_VALUE((positions.dim(0) == 1 || positions.dim(0) == x.dim(0)) &&
                     positions.dim(1) == x.dim(1),
                 op, "positions must have shape (1, N) or (R, N) for x ", x.shape_str(), "; got ",
                 positions.shape_str());
  const double* ps = positions.ptr<double>();
  for (std::int64_t i = 0; i < positions.size(); ++i)
    KX_CHECK_VALUE(std::isfinite(ps[i]), op, "positions must be finite; got ", ps[i]);
  KX_CHECK_VALUE(std::isfinite(base) && base > 0.0, op,
                 "base must be a finite number > 0; got ", base);
  api::check_arg(op, out, "out", x.dtype, x.shape, "[R,N,D]");
  cpu::attn_rope(x, positions, base, interleaved, out);
}

}  // namespace attention
}  // namespace kexue
