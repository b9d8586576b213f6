// csrc/cpu/crf.cpp - CRF on the CPU: fold the constraints into the
// transitions, precompute the exp-space matrices once, run the rows in
// parallel, reduce the per-chunk gradient accumulators in chunk order.
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/decoders.hpp"
#include "cpu/workspace.hpp"
#include "kexue/core/parallel.hpp"

namespace kexue {
namespace cpu {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

struct CrfPrepared {
  std::vector<double> A, E, c, FT, r, Eh, s, e;
  double Amax = 0.0;
  bool nan = false;
};

CrfPrepared prepare(const CrfInputs& in, std::int64_t K) {
  CrfPrepared p;
  const std::size_t KK = static_cast<std::size_t>(K * K), Ks = static_cast<std::size_t>(K);
  p.A.assign(in.A, in.A + KK);
  p.s.assign(Ks, 0.0);
  p.e.assign(Ks, 0.0);
  if (in.s) p.s.assign(in.s, in.s + Ks);
  if (in.e) p.e.assign(in.e, in.e + Ks);
  // Forbidden entries get -inf added (a NaN stays NaN: NaN in, NaN out).
  for (std::size_t i = 0; i < KK; ++i)
    if (in.allowed && !in.allowed[i]) p.A[i] -= kInf;
  for (std::size_t k = 0; k < Ks; ++k) {
    if (in.allowed_start && !in.allowed_start[k]) p.s[k] -= kInf;
    if (in.allowed_end && !in.allowed_end[k]) p.e[k] -= kInf;
  }
  for (const auto* v : {&p.A, &p.s, &p.e})
    for (double x : *v) p.nan = p.nan || std::isnan(x);
  // Shifts: column max (forward), row max (backward), global max (pairs).
  // Entries that are +inf or NaN make the shifted matrices NaN, which
  // propagates to the results as documented ("NaN in, NaN out").
  p.c.assign(Ks, -kInf);
  p.r.assign(Ks, -kInf);
  p.Amax = -kInf;
  for (std::int64_t i = 0; i < K; ++i)
    for (std::int64_t j = 0; j < K; ++j) {
      const double a = p.A[static_cast<std::size_t>(i * K + j)];
      if (a > p.c[static_cast<std::size_t>(j)]) p.c[static_cast<std::size_t>(j)] = a;
      if (a > p.r[static_cast<std::size_t>(i)]) p.r[static_cast<std::size_t>(i)] = a;
      if (a > p.Amax) p.Amax = a;
    }
  for (auto& v : p.c) v = v == -kInf ? 0.0 : v;
  for (auto& v : p.r) v = v == -kInf ? 0.0 : v;
  if (p.Amax == -kInf) p.Amax = 0.0;
  p.E.resize(KK);
  p.FT.resize(KK);
  p.Eh.resize(KK);
  for (std::int64_t i = 0; i < K; ++i)
    for (std::int64_t j = 0; j < K; ++j) {
      const double a = p.A[static_cast<std::size_t>(i * K + j)];
      p.E[static_cast<std::size_t>(i * K + j)] = std::exp(a - p.c[static_cast<std::size_t>(j)]);
      p.FT[static_cast<std::size_t>(j * K + i)] = std::exp(a - p.r[static_cast<std::size_t>(i)]);
      p.Eh[static_cast<std::size_t>(i * K + j)] = std::exp(a - p.Amax);
    }
  return p;
}
}  // namespace

void crf_run(Job job, const CrfInputs& in, std::int64_t k, const CrfOutputs& out) {
  const Array& em = *in.em;
  const std::int64_t B = em.dim(0), T = em.dim(1), K = em.dim(2);
  const bool grads = job == Job::NllGrad;
  const std::size_t KK = static_cast<std::size_t>(K * K), Ks = static_cast<std::size_t>(K);
  if (grads) {
    for (std::size_t i = 0; i < KK; ++i) out.dA[i] = 0.0;
    for (std::size_t i = 0; i < Ks; ++i) out.ds[i] = out.de[i] = 0.0;
  }
  if (B == 0) return;
  const CrfPrepared p = prepare(in, K);
  CrfPlan plan{};
  plan.job = job;
  plan.B = B;
  plan.T = T;
  plan.K = K;
  plan.k = k;
  plan.em = em.data;
  plan.dt = em.dtype;
  plan.tags = in.tags ? in.tags->data : nullptr;
  plan.tag_dt = in.tags ? in.tags->dtype : DType::Int64;
  plan.mask = in.mask;
  plan.A = p.A.data();
  plan.E = p.E.data();
  plan.c = p.c.data();
  plan.FT = p.FT.data();
  plan.r = p.r.data();
  plan.Eh = p.Eh.data();
  plan.Amax = p.Amax;
  // float32 inputs: the one-row path steps in single precision (lse_step_f32)
  std::vector<float> E32, FT32;
  if (em.dtype == DType::Float32) {
    E32.assign(p.E.begin(), p.E.end());
    FT32.assign(p.FT.begin(), p.FT.end());
  }
  plan.E32 = E32.empty() ? nullptr : E32.data();
  plan.FT32 = FT32.empty() ? nullptr : FT32.data();
  plan.params_nan = p.nan;
  plan.s = p.s.data();
  plan.e = p.e.data();
  plan.out = out.out;
  plan.out2 = out.out2;
  plan.paths = out.paths;

  const std::int64_t grain = row_grain(B);
  // Eight rows per vector pays when groups are full enough: always for small
  // K (the one-row path is latency-bound there), from six rows for large K.
  plan.lanes = K <= 32 && grain >= 2;
  const DecoderKernels& kern = decoder_kernels();
  const std::size_t ws_bytes = kern.crf_workspace(plan);
  const std::int64_t nchunks = (B + grain - 1) / grain;
  const std::size_t per_chunk = 2 * KK + 2 * Ks;
  std::vector<double> accum(grads ? static_cast<std::size_t>(nchunks) * per_chunk : 0, 0.0);
  parallel_for(B, grain, [&](std::int64_t b0, std::int64_t b1) {
    Workspace ws(ws_bytes);
    CrfAccum acc{nullptr, nullptr, nullptr, nullptr};
    if (grads) {
      double* base = accum.data() + static_cast<std::size_t>(b0 / grain) * per_chunk;
      acc = CrfAccum{base, base + KK, base + 2 * KK, base + 2 * KK + Ks};
    }
    kern.crf_rows(plan, b0, b1, acc, ws.data());
  });
  if (!grads) return;
  for (std::int64_t c = 0; c < nchunks; ++c) {
    const double* base = accum.data() + static_cast<std::size_t>(c) * per_chunk;
    for (std::size_t i = 0; i < KK; ++i) out.dA[i] += base[i] * p.Eh[i] + base[KK + i];
    for (std::size_t i = 0; i < Ks; ++i) {
      out.ds[i] += base[2 * KK + i];
      out.de[i] += base[2 * KK + Ks + i];
    }
  }
}

}  // namespace cpu
}  // namespace kexue
