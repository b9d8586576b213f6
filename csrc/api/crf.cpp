// csrc/api/crf.cpp - the front door of kexue::crf: every check, then the one
// dispatch point (the CPU backend; the CUDA one for log_partition,
// log_likelihood, nll_grad, marginals and viterbi on GPU arrays).
#include "kexue/crf.hpp"

#include <string>
#include <vector>

#include "api/checks.hpp"
#include "cpu/decoders.hpp"
#include "cuda/backend.hpp"

namespace kexue {
namespace crf {

namespace {

/// The checked, converted inputs of one CRF call.
struct Prepared {
  std::int64_t B = 0, T = 0, K = 0;
  DType dt = DType::Float32;
  std::vector<double> A, s, e;
  const bool* mask = nullptr;
  const bool* allowed = nullptr;
  const bool* allowed_start = nullptr;
  const bool* allowed_end = nullptr;
};

Prepared check_inputs(const char* op, const Array& em, const Array* tags, const Array& trans,
                      const Options& opt) {
  Prepared p;
  api::check_ndim(op, em, "emissions", 3, "[B,T,K]");
  api::check_float(op, em, "emissions");
  p.B = em.dim(0);
  p.T = em.dim(1);
  p.K = em.dim(2);
  p.dt = em.dtype;
  KX_CHECK_VALUE(p.K >= 1, op, "emissions must have at least one tag (K >= 1); got shape ",
                 em.shape_str());
  api::check_ndim(op, trans, "transitions", 2, "[K,K]");
  api::check_dtype(op, trans, "transitions", p.dt);
  api::check_shape(op, trans, "transitions", {p.K, p.K}, "[K,K]");
  p.A = api::to_double(trans);
  if (opt.mask) {
    api::check_ndim(op, *opt.mask, "mask", 2, "[B,T]");
    api::check_dtype(op, *opt.mask, "mask", DType::Bool);
    api::check_shape(op, *opt.mask, "mask", {p.B, p.T}, "[B,T]");
    p.mask = opt.mask->ptr<bool>();
  }
  if (opt.start) {
    api::check_arg(op, *opt.start, "start", p.dt, {p.K}, "[K]");
    p.s = api::to_double(*opt.start);
  }
  if (opt.end) {
    api::check_arg(op, *opt.end, "end", p.dt, {p.K}, "[K]");
    p.e = api::to_double(*opt.end);
  }
  if (opt.allowed) {
    api::check_arg(op, *opt.allowed, "allowed", DType::Bool, {p.K, p.K}, "[K,K]");
    p.allowed = opt.allowed->ptr<bool>();
  }
  if (opt.allowed_start) {
    api::check_arg(op, *opt.allowed_start, "allowed_start", DType::Bool, {p.K}, "[K]");
    p.allowed_start = opt.allowed_start->ptr<bool>();
  }
  if (opt.allowed_end) {
    api::check_arg(op, *opt.allowed_end, "allowed_end", DType::Bool, {p.K}, "[K]");
    p.allowed_end = opt.allowed_end->ptr<bool>();
  }
  if (tags) {
    api::check_ndim(op, *tags, "tags", 2, "[B,T]");
    api::check_index(op, *tags, "tags");
    api::check_shape(op, *tags, "tags", {p.B, p.T}, "[B,T]");
    api::check_tags_range(op, *tags, p.mask, p.K);
  }
  return p;
}

cpu::CrfInputs inputs(const Prepared& p, const Array& em, const Array* tags) {
  return cpu::CrfInputs{&em,
                        tags,
                        p.mask,
                        p.A.data(),
                        p.s.empty() ? nullptr : p.s.data(),
                        p.e.empty() ? nullptr : p.e.data(),
                        p.allowed,
                        p.allowed_start,
                        p.allowed_end};
}

/// Copy doubles into a float output of dtype dt.
void store(const std::vector<double>& src, const Array& dst) {
  if (dst.dtype == DType::Float32) {
    float* q = dst.ptr<float>();
    for (std::size_t i = 0; i < src.size(); ++i) q[i] = static_cast<float>(src[i]);
  } else {
    double* q = dst.ptr<double>();
    for (std::size_t i = 0; i < src.size(); ++i) q[i] = src[i];
  }
}

}  // namespace

namespace {

/// The checks of a CRF call on GPU arrays: as for host arrays, without
/// reading any array (they live on the device), every array on the
/// emissions' device. `arg` checks one more array the same way.
struct GpuCall {
  const char* op;
  int dev;
  std::int64_t B, T, K;
  DType dt;
  void arg(const Array& x, const char* name, DType want_dt, const std::vector<std::int64_t>& want,
           const char* layout) const {
    api::check_device(op, x, name, dev, "emissions");
    api::check_ndim(op, x, name, static_cast<int>(want.size()), layout, true);
    api::check_dtype(op, x, name, want_dt);
    api::check_shape(op, x, name, want, layout);
  }
};

GpuCall gpu_call(const char* op, const Array& em, const Array& trans, const Options& opt,
                 cuda::CrfArgs* a) {
  api::check_ndim(op, em, "emissions", 3, "[B,T,K]", true);
  api::check_float(op, em, "emissions");
  const GpuCall c{op, em.device, em.dim(0), em.dim(1), em.dim(2), em.dtype};
  KX_CHECK_VALUE(c.K >= 1, op, "emissions must have at least one tag (K >= 1); got shape ", em.shape_str());
  c.arg(trans, "transitions", c.dt, {c.K, c.K}, "[K,K]");
  if (opt.mask) c.arg(*opt.mask, "mask", DType::Bool, {c.B, c.T}, "[B,T]");
  if (opt.start) c.arg(*opt.start, "start", c.dt, {c.K}, "[K]");
  if (opt.end) c.arg(*opt.end, "end", c.dt, {c.K}, "[K]");
  if (opt.allowed) c.arg(*opt.allowed, "allowed", DType::Bool, {c.K, c.K}, "[K,K]");
  if (opt.allowed_start) c.arg(*opt.allowed_start, "allowed_start", DType::Bool, {c.K}, "[K]");
  if (opt.allowed_end) c.arg(*opt.allowed_end, "allowed_end", DType::Bool, {c.K}, "[K]");
  auto ptr = [](const std::optional<Array>& x) -> const void* { return x ? x->data : nullptr; };
  *a = cuda::CrfArgs{em.data,
                     em.dtype == DType::Float32,
                     c.B,
                     c.T,
                     c.K,
                     static_cast<const bool*>(ptr(opt.mask)),
                     trans.data,
                     ptr(opt.start),
                     ptr(opt.end),
                     static_cast<const bool*>(ptr(opt.allowed)),
                     static_cast<const bool*>(ptr(opt.allowed_start)),
                     static_cast<const bool*>(ptr(opt.allowed_end))};
  return c;
}

void gpu_tags(const GpuCall& c, const Array& tags) {
  api::check_device(c.op, tags, "tags", c.dev, "emissions");
  api::check_ndim(c.op, tags, "tags", 2, "[B,T]", true);
  api::check_index(c.op, tags, "tags");
  api::check_shape(c.op, tags, "tags", {c.B, c.T}, "[B,T]");
}

/// log Z (tags null) or log p(tags) on GPU arrays.
void forward_gpu(const char* op, const Array& em, const Array* tags, const Array& trans,
                 const Options& opt, const Array& out) {
  cuda::CrfArgs a{};
  const GpuCall c = gpu_call(op, em, trans, opt, &a);
  if (tags) gpu_tags(c, *tags);
  c.arg(out, "out", c.dt, {c.B}, "[B]");
  cuda::crf_forward_run(op, a, c.dev, tags ? tags->data : nullptr, tags && tags->dtype == DType::Int64,
                        out.data);
}

void nll_grad_gpu(const char* op, const Array& em, const Array& tags, const Array& trans, const Options& opt,
                  const Array& loss, const Array& d_em, const Array& d_trans, const Array& d_start,
                  const Array& d_end) {
  cuda::CrfArgs a{};
  const GpuCall c = gpu_call(op, em, trans, opt, &a);
  gpu_tags(c, tags);
  c.arg(loss, "loss", c.dt, {c.B}, "[B]");
  c.arg(d_em, "d_emissions", c.dt, {c.B, c.T, c.K}, "[B,T,K]");
  c.arg(d_trans, "d_transitions", c.dt, {c.K, c.K}, "[K,K]");
  c.arg(d_start, "d_start", c.dt, {c.K}, "[K]");
  c.arg(d_end, "d_end", c.dt, {c.K}, "[K]");
  cuda::crf_nll_grad_run(op, a, c.dev, tags.data, tags.dtype == DType::Int64, loss.data, d_em.data,
                         d_trans.data, d_start.data, d_end.data);
}

void marginals_gpu(const char* op, const Array& em, const Array& trans, const Options& opt, const Array& out) {
  cuda::CrfArgs a{};
  const GpuCall c = gpu_call(op, em, trans, opt, &a);
  c.arg(out, "out", c.dt, {c.B, c.T, c.K}, "[B,T,K]");
  cuda::crf_marginals_run(op, a, c.dev, out.data);
}

void viterbi_gpu(const char* op, const Array& em, const Array& trans, const Options& opt,
                 const Array& paths, const Array& scores) {
  cuda::CrfArgs a{};
  const GpuCall c = gpu_call(op, em, trans, opt, &a);
  c.arg(paths, "paths", DType::Int64, {c.B, c.T}, "[B,T]");
  c.arg(scores, "scores", c.dt, {c.B}, "[B]");
  cuda::crf_viterbi_run(op, a, c.dev, paths.ptr<std::int64_t>(), scores.data);
}

}  // namespace

void log_partition(const Array& emissions, const Array& transitions, const Options& opt,
                   const Array& out) {
  const char* op = "crf.log_partition";
  if (emissions.on_gpu()) {
    forward_gpu(op, emissions, nullptr, transitions, opt, out);
    return;
  }
  const Prepared p = check_inputs(op, emissions, nullptr, transitions, opt);
  api::check_arg(op, out, "out", p.dt, {p.B}, "[B]");
  cpu::CrfOutputs o;
  o.out = out.data;
  cpu::crf_run(cpu::Job::LogPartition, inputs(p, emissions, nullptr), 0, o);
}

void log_likelihood(const Array& emissions, const Array& tags, const Array& transitions,
                    const Options& opt, const Array& out) {
  const char* op = "crf.log_likelihood";
  if (emissions.on_gpu()) {
    forward_gpu(op, emissions, &tags, transitions, opt, out);
    return;
  }
  const Prepared p = check_inputs(op, emissions, &tags, transitions, opt);
  api::check_arg(op, out, "out", p.dt, {p.B}, "[B]");
  cpu::CrfOutputs o;
  o.out = out.data;
  cpu::crf_run(cpu::Job::LogLikelihood, inputs(p, emissions, &tags), 0, o);
}

void nll_grad(const Array& emissions, const Array& tags, const Array& transitions,
              const Options& opt, const Array& loss, const Array& d_emissions,
              const Array& d_transitions, const Array& d_start, const Array& d_end) {
  const char* op = "crf.nll_grad";
  if (emissions.on_gpu()) {
    nll_grad_gpu(op, emissions, tags, transitions, opt, loss, d_emissions, d_transitions, d_start, d_end);
    return;
  }
  const Prepared p = check_inputs(op, emissions, &tags, transitions, opt);
  api::check_arg(op, loss, "loss", p.dt, {p.B}, "[B]");
  api::check_arg(op, d_emissions, "d_emissions", p.dt, {p.B, p.T, p.K}, "[B,T,K]");
  api::check_arg(op, d_transitions, "d_transitions", p.dt, {p.K, p.K}, "[K,K]");
  api::check_arg(op, d_start, "d_start", p.dt, {p.K}, "[K]");
  api::check_arg(op, d_end, "d_end", p.dt, {p.K}, "[K]");
  const std::size_t K = static_cast<std::size_t>(p.K);
  std::vector<double> dA(K * K), ds(K), de(K);
  cpu::CrfOutputs o;
  o.out = loss.data;
  o.out2 = d_emissions.data;
  o.dA = dA.data();
  o.ds = ds.data();
  o.de = de.data();
  cpu::crf_run(cpu::Job::NllGrad, inputs(p, emissions, &tags), 0, o);
  store(dA, d_transitions);
  store(ds, d_start);
  store(de, d_end);
}

void marginals(const Array& emissions, const Array& transitions, const Options& opt,
               const Array& out) {
  const char* op = "crf.marginals";
  if (emissions.on_gpu()) {
    marginals_gpu(op, emissions, transitions, opt, out);
    return;
  }
  const Prepared p = check_inputs(op, emissions, nullptr, transitions, opt);
  api::check_arg(op, out, "out", p.dt, {p.B, p.T, p.K}, "[B,T,K]");
  cpu::CrfOutputs o;
  o.out2 = out.data;
  cpu::crf_run(cpu::Job::Marginals, inputs(p, emissions, nullptr), 0, o);
}

void viterbi(const Array& emissions, const Array& transitions, const Options& opt,
             const Array& paths, const Array& scores) {
  const char* op = "crf.viterbi";
  if (emissions.on_gpu()) {
    viterbi_gpu(op, emissions, transitions, opt, paths, scores);
    return;
  }
  const Prepared p = check_inputs(op, emissions, nullptr, transitions, opt);
  api::check_arg(op, paths, "paths", DType::Int64, {p.B, p.T}, "[B,T]");
  api::check_arg(op, scores, "scores", p.dt, {p.B}, "[B]");
  cpu::CrfOutputs o;
  o.out = scores.data;
  o.paths = paths.ptr<std::int64_t>();
  cpu::crf_run(cpu::Job::Viterbi, inputs(p, emissions, nullptr), 0, o);
}

void nbest(const Array& emissions, const Array& transitions, std::int64_t k, const Options& opt,
           const Array& paths, const Array& scores) {
  const char* op = "crf.nbest";
  const Prepared p = check_inputs(op, emissions, nullptr, transitions, opt);
  KX_CHECK_VALUE(k >= 1, op, "k must be >= 1; got ", k);
  KX_CHECK_VALUE(k <= (std::int64_t{1} << 20), op, "k must be <= 1048576; got ", k);
  api::check_arg(op, paths, "paths", DType::Int64, {p.B, k, p.T}, "[B,k,T]");
  api::check_arg(op, scores, "scores", p.dt, {p.B, k}, "[B,k]");
  cpu::CrfOutputs o;
  o.out = scores.data;
  o.paths = paths.ptr<std::int64_t>();
  cpu::crf_run(cpu::Job::NBest, inputs(p, emissions, nullptr), k, o);
}

}  // namespace crf
}  // namespace kexue
