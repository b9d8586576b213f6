// csrc/api/memm.cpp - the front door of kexue::memm: every check, then the
// one dispatch point (the CPU backend).
#include "kexue/memm.hpp"

#include <cmath>
#include <vector>

#include "api/checks.hpp"
#include "cpu/decoders.hpp"
#include "kexue/crf.hpp"

namespace kexue {
namespace memm {

namespace {

struct Prepared {
  std::int64_t B = 0, T = 0, K = 0, d = 0;
  DType dt = DType::Float32;
  std::vector<double> G, Lf, Rf;
  const bool* mask = nullptr;
  const bool* allowed = nullptr;
  const bool* allowed_start = nullptr;
  const bool* allowed_end = nullptr;
};

Prepared check_inputs(const char* op, const Array& em, const Array* tags, const Options& opt) {
  Prepared p;
  api::check_ndim(op, em, "emissions", 3, "[B,T,K]");
  api::check_float(op, em, "emissions");
  p.B = em.dim(0);
  p.T = em.dim(1);
  p.K = em.dim(2);
  p.dt = em.dtype;
  KX_CHECK_VALUE(p.K >= 1, op, "emissions must have at least one tag (K >= 1); got shape ",
                 em.shape_str());
  KX_CHECK_VALUE(std::isfinite(opt.alpha) && opt.alpha > 0.0, op,
                 "alpha must be a finite number > 0; got ", opt.alpha);
  const bool has_factors = opt.left.has_value() || opt.right.has_value();
  KX_CHECK_VALUE(opt.transitions.has_value() != has_factors, op,
                 "give exactly one of transitions and factors=(left, right); got ",
                 opt.transitions ? "both" : "neither");
  if (opt.transitions) {
    api::check_arg(op, *opt.transitions, "transitions", p.dt, {p.K, p.K}, "[K,K]");
    p.G = api::to_double(*opt.transitions);
  } else {
    KX_CHECK_VALUE(opt.left && opt.right, op, "factors must be a pair (left, right)");
    api::check_ndim(op, *opt.left, "factors[0] (left)", 2, "[K,d]");
    api::check_dtype(op, *opt.left, "factors[0] (left)", p.dt);
    p.d = opt.left->dim(1);
    api::check_shape(op, *opt.left, "factors[0] (left)", {p.K, p.d}, "[K,d]");
    api::check_arg(op, *opt.right, "factors[1] (right)", p.dt, {p.K, p.d}, "[K,d]");
    p.Lf = api::to_double(*opt.left);
    p.Rf = api::to_double(*opt.right);
  }
  if (opt.mask) {
    api::check_arg(op, *opt.mask, "mask", DType::Bool, {p.B, p.T}, "[B,T]");
    p.mask = opt.mask->ptr<bool>();
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

cpu::MemmInputs inputs(const Prepared& p, const Array& em, const Array* tags, const Options& opt) {
  return cpu::MemmInputs{&em,
                         tags,
                         p.mask,
                         p.G.empty() ? nullptr : p.G.data(),
                         p.Lf.empty() ? nullptr : p.Lf.data(),
                         p.Rf.empty() ? nullptr : p.Rf.data(),
                         p.d,
                         p.allowed,
                         p.allowed_start,
                         p.allowed_end,
                         opt.alpha,
                         opt.bidirectional};
}

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

void log_likelihood(const Array& emissions, const Array& tags, const Options& opt,
                    const Array& out) {
  const char* op = "memm.log_likelihood";
  const Prepared p = check_inputs(op, emissions, &tags, opt);
  api::check_arg(op, out, "out", p.dt, {p.B}, "[B]");
  cpu::MemmOutputs o;
  o.out = out.data;
  cpu::memm_run(cpu::Job::LogLikelihood, inputs(p, emissions, &tags, opt), 0, o);
}

void nll_grad(const Array& emissions, const Array& tags, const Options& opt, const Array& loss,
              const Array& d_emissions, const Array& d_transitions, const Array& d_left,
              const Array& d_right) {
  const char* op = "memm.nll_grad";
  const Prepared p = check_inputs(op, emissions, &tags, opt);
  api::check_arg(op, loss, "loss", p.dt, {p.B}, "[B]");
  api::check_arg(op, d_emissions, "d_emissions", p.dt, {p.B, p.T, p.K}, "[B,T,K]");
  const bool dense = !p.G.empty();
  std::vector<double> dG, dL, dR;
  cpu::MemmOutputs o;
  if (dense) {
    api::check_arg(op, d_transitions, "d_transitions", p.dt, {p.K, p.K}, "[K,K]");
    dG.resize(static_cast<std::size_t>(p.K * p.K));
    o.dG = dG.data();
  } else {
    api::check_arg(op, d_left, "d_left", p.dt, {p.K, p.d}, "[K,d]");
    api::check_arg(op, d_right, "d_right", p.dt, {p.K, p.d}, "[K,d]");
    dL.resize(static_cast<std::size_t>(p.K * p.d));
    dR.resize(static_cast<std::size_t>(p.K * p.d));
    o.dL = dL.data();
    o.dR = dR.data();
  }
  o.out = loss.data;
  o.out2 = d_emissions.data;
  cpu::memm_run(cpu::Job::NllGrad, inputs(p, emissions, &tags, opt), 0, o);
  if (dense) {
    store(dG, d_transitions);
  } else {
    store(dL, d_left);
    store(dR, d_right);
  }
}

void viterbi(const Array& emissions, const Options& opt, bool crf_style, const Array& paths,
             const Array& scores) {
  const char* op = "memm.viterbi";
  const Prepared p = check_inputs(op, emissions, nullptr, opt);
  api::check_arg(op, paths, "paths", DType::Int64, {p.B, p.T}, "[B,T]");
  api::check_arg(op, scores, "scores", p.dt, {p.B}, "[B]");
  if (crf_style) {
    // bert4keras' examples decode an MEMM with the CRF's Viterbi on h + G.
    std::vector<double> G = p.G;
    if (G.empty()) {
      const std::size_t K = static_cast<std::size_t>(p.K), d = static_cast<std::size_t>(p.d);
      G.assign(K * K, 0.0);
      for (std::size_t i = 0; i < K; ++i)
        for (std::size_t j = 0; j < K; ++j) {
          double acc = 0.0;
          for (std::size_t q = 0; q < d; ++q) acc += p.Lf[i * d + q] * p.Rf[j * d + q];
          G[i * K + j] = acc;
        }
    }
    cpu::CrfInputs in{&emissions, nullptr,   p.mask,        G.data(),     nullptr,
                      nullptr,    p.allowed, p.allowed_start, p.allowed_end};
    cpu::CrfOutputs o;
    o.out = scores.data;
    o.paths = paths.ptr<std::int64_t>();
    cpu::crf_run(cpu::Job::Viterbi, in, 0, o);
    return;
  }
  cpu::MemmOutputs o;
  o.out = scores.data;
  o.paths = paths.ptr<std::int64_t>();
  cpu::memm_run(cpu::Job::Viterbi, inputs(p, emissions, nullptr, opt), 0, o);
}

void nbest(const Array& emissions, std::int64_t k, const Options& opt, const Array& paths,
           const Array& scores) {
  const char* op = "memm.nbest";
  const Prepared p = check_inputs(op, emissions, nullptr, opt);
  KX_CHECK_VALUE(k >= 1, op, "k must be >= 1; got ", k);
  KX_CHECK_VALUE(k <= (std::int64_t{1} << 20), op, "k must be <= 1048576; got ", k);
  api::check_arg(op, paths, "paths", DType::Int64, {p.B, k, p.T}, "[B,k,T]");
  api::check_arg(op, scores, "scores", p.dt, {p.B, k}, "[B,k]");
  cpu::MemmOutputs o;
  o.out = scores.data;
  o.paths = paths.ptr<std::int64_t>();
  cpu::memm_run(cpu::Job::NBest, inputs(p, emissions, nullptr, opt), k, o);
}

void marginals(const Array& emissions, const Options& opt, const Array& out) {
  const char* op = "memm.marginals";
  const Prepared p = check_inputs(op, emissions, nullptr, opt);
  api::check_arg(op, out, "out", p.dt, {p.B, p.T, p.K}, "[B,T,K]");
  cpu::MemmOutputs o;
  o.out2 = out.data;
  cpu::memm_run(cpu::Job::Marginals, inputs(p, emissions, nullptr, opt), 0, o);
}

}  // namespace memm
}  // namespace kexue
