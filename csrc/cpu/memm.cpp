// csrc/cpu/memm.cpp - MEMM on the CPU: the constraint masks as 0/-inf
// doubles, the transposed parameters for the right-to-left model, the rows
// in parallel, the per-chunk gradients reduced in chunk order.
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/decoders.hpp"
#include "cpu/workspace.hpp"
#include "kexue/core/parallel.hpp"

namespace kexue {
namespace cpu {

void memm_run(Job job, const MemmInputs& in, std::int64_t k, const MemmOutputs& out) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const Array& em = *in.em;
  const std::int64_t B = em.dim(0), T = em.dim(1), K = em.dim(2), d = in.d;
  const std::size_t KK = static_cast<std::size_t>(K * K), Kd = static_cast<std::size_t>(K * d);
  const bool grads = job == Job::NllGrad;
  const bool dense = in.G != nullptr;
  if (grads) {
    if (dense)
      for (std::size_t i = 0; i < KK; ++i) out.dG[i] = 0.0;
    else
      for (std::size_t i = 0; i < Kd; ++i) out.dL[i] = out.dR[i] = 0.0;
  }
  if (B == 0) return;

  std::vector<double> tmask, tmaskT, smask, emask, Gt;
  if (in.allowed) {
    tmask.resize(KK);
    tmaskT.resize(KK);
    for (std::int64_t i = 0; i < K; ++i)
      for (std::int64_t j = 0; j < K; ++j) {
        const double v = in.allowed[i * K + j] ? 0.0 : -kInf;
        tmask[static_cast<std::size_t>(i * K + j)] = v;
        tmaskT[static_cast<std::size_t>(j * K + i)] = v;
      }
  }
  if (in.allowed_start) {
    smask.resize(static_cast<std::size_t>(K));
    for (std::int64_t i = 0; i < K; ++i) smask[static_cast<std::size_t>(i)] = in.allowed_start[i] ? 0.0 : -kInf;
  }
  if (in.allowed_end) {
    emask.resize(static_cast<std::size_t>(K));
    for (std::int64_t i = 0; i < K; ++i) emask[static_cast<std::size_t>(i)] = in.allowed_end[i] ? 0.0 : -kInf;
  }
  if (dense && in.bidirectional) {
    Gt.resize(KK);
    for (std::int64_t i = 0; i < K; ++i)
      for (std::int64_t j = 0; j < K; ++j) Gt[static_cast<std::size_t>(j * K + i)] = in.G[i * K + j];
  }

  // Decoding works on a dense G (materialised from the factors, K^2 d once)
  // and its exp-space tables.
  const bool decode = job == Job::Viterbi || job == Job::NBest || job == Job::Marginals;
  std::vector<double> Gfull, EGT, Gr;
  const double* G = in.G;
  if (decode) {
    if (G == nullptr) {
      Gfull.assign(KK, 0.0);
      for (std::int64_t i = 0; i < K; ++i)
        for (std::int64_t j = 0; j < K; ++j) {
          double acc = 0.0;
          for (std::int64_t q = 0; q < d; ++q) acc += in.Lf[i * d + q] * in.Rf[j * d + q];
          Gfull[static_cast<std::size_t>(i * K + j)] = acc;
        }
      G = Gfull.data();
    }
    EGT.assign(KK, 0.0);
    Gr.assign(static_cast<std::size_t>(K), 0.0);
    for (std::int64_t j = 0; j < K; ++j) {
      double r = -kInf;
      for (std::int64_t k = 0; k < K; ++k) {
        const double v = in.alpha * G[j * K + k] + (tmask.empty() ? 0.0 : tmask[static_cast<std::size_t>(j * K + k)]);
        r = v > r ? v : r;
      }
      r = (r > -kInf && r < kInf) ? r : 0.0;
      Gr[static_cast<std::size_t>(j)] = r;
      for (std::int64_t k = 0; k < K; ++k) {
        const double v = in.alpha * G[j * K + k] + (tmask.empty() ? 0.0 : tmask[static_cast<std::size_t>(j * K + k)]);
        EGT[static_cast<std::size_t>(k * K + j)] = std::exp(v - r);
      }
    }
  }

  MemmPlan plan{};
  plan.job = job;
  plan.B = B;
  plan.T = T;
  plan.K = K;
  plan.k = k;
  plan.d = (dense || decode) ? 0 : d;
  plan.em = em.data;
  plan.dt = em.dtype;
  plan.tags = in.tags ? in.tags->data : nullptr;
  plan.tag_dt = in.tags ? in.tags->dtype : DType::Int64;
  plan.mask = in.mask;
  plan.alpha = in.alpha;
  plan.bidirectional = in.bidirectional;
  plan.G = G;
  plan.Lf = in.Lf;
  plan.Rf = in.Rf;
  plan.tmask = tmask.empty() ? nullptr : tmask.data();
  plan.tmaskT = tmaskT.empty() ? nullptr : tmaskT.data();
  plan.smask = smask.empty() ? nullptr : smask.data();
  plan.emask = emask.empty() ? nullptr : emask.data();
  plan.Gt = Gt.empty() ? nullptr : Gt.data();
  for (std::size_t i = 0; i < (dense ? KK : Kd); ++i)
    plan.params_nan = plan.params_nan ||
                      (dense ? std::isnan(in.G[i]) : (std::isnan(in.Lf[i]) || std::isnan(in.Rf[i])));
  plan.EGT = EGT.empty() ? nullptr : EGT.data();
  plan.Gr = Gr.empty() ? nullptr : Gr.data();
  plan.out = out.out;
  plan.out2 = out.out2;
  plan.paths = out.paths;

  const DecoderKernels& kern = decoder_kernels();
  const std::size_t ws_bytes = kern.memm_workspace(plan);
  const std::int64_t grain = row_grain(B);
  const std::int64_t nchunks = (B + grain - 1) / grain;
  const std::size_t per_chunk = dense ? KK : 2 * Kd;
  std::vector<double> accum(grads ? static_cast<std::size_t>(nchunks) * per_chunk : 0, 0.0);
  parallel_for(B, grain, [&](std::int64_t b0, std::int64_t b1) {
    Workspace ws(ws_bytes);
    MemmAccum acc{nullptr, nullptr, nullptr};
    if (grads) {
      double* base = accum.data() + static_cast<std::size_t>(b0 / grain) * per_chunk;
      acc = dense ? MemmAccum{base, nullptr, nullptr} : MemmAccum{nullptr, base, base + Kd};
    }
    kern.memm_rows(plan, b0, b1, acc, ws.data());
  });
  if (!grads) return;
  for (std::int64_t c = 0; c < nchunks; ++c) {
    const double* base = accum.data() + static_cast<std::size_t>(c) * per_chunk;
    if (dense) {
      for (std::size_t i = 0; i < KK; ++i) out.dG[i] += base[i];
    } else {
      for (std::size_t i = 0; i < Kd; ++i) {
        out.dL[i] += base[i];
        out.dR[i] += base[Kd + i];
      }
    }
  }
}

}  // namespace cpu
}  // namespace kexue
