// csrc/cpu/decoders_plan.hpp - what the CPU backend hands the per-ISA kernels.
//
// The front door (csrc/api) has checked every argument; csrc/cpu/crf.cpp and
// memm.cpp prepare the double-precision parameters once per call and fill a
// plan; csrc/cpu/simd/decoders_*.cpp run rows [b0, b1) of it with the header
// math compiled for one instruction set. Internal: not installed.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kexue/core/view.hpp"

namespace kexue {
namespace cpu {

enum class Job { LogPartition, LogLikelihood, NllGrad, Marginals, Viterbi, NBest };

/// Per-chunk accumulators for the parameter gradients (reduced in chunk order).
struct CrfAccum {
  double* M;   ///< [K,K]
  double* D;   ///< [K,K]
  double* ds;  ///< [K]
  double* de;  ///< [K]
};

struct CrfPlan {
  Job job;
  std::int64_t B, T, K, k;   ///< k: n-best size
  const void* em;            ///< [B,T,K]
  DType dt;                  ///< emissions' (and float outputs') dtype
  const void* tags;          ///< [B,T] or nullptr
  DType tag_dt;
  const bool* mask;          ///< [B,T] or nullptr
  // Parameters: the CrfParams of the header math, as pointers into storage
  // owned by the caller (the ISA_NS-independent mirror of decoders::CrfParams).
  const double *A, *E, *c, *FT, *r, *Eh, *s, *e;
  const float *E32, *FT32;  ///< E, FT in float for float32 inputs (else nullptr)
  double Amax;
  bool params_nan;  ///< NaN in A, s or e: every decoded row is NaN
  bool lanes;       ///< run forward-backward jobs eight rows per vector (crf_lanes.hpp)
  // Outputs (dtype dt for floats).
  void* out;        ///< [B] log Z / log-likelihood / loss / viterbi scores; [B,k] n-best scores
  void* out2;       ///< [B,T,K] d_emissions or marginals
  std::int64_t* paths;  ///< [B,T] or [B,k,T]
};

struct MemmPlan {
  Job job;
  std::int64_t B, T, K, k, d;
  const void* em;
  DType dt;
  const void* tags;
  DType tag_dt;
  const bool* mask;
  double alpha;
  bool bidirectional;
  // Forward-direction parameters (G or Lf/Rf, masks) and the reversed ones
  // (G^T or Rf/Lf, tmask^T, start/end swapped) for Bi-MEMM.
  const double *G, *Lf, *Rf, *tmask, *smask, *emask;
  const double *Gt, *tmaskT;
  // Decoding tables (see decoders::MemmParams), or nullptr.
  const double *EGT, *Gr;
  bool params_nan;  ///< NaN in G (or its factors): every decoded row is NaN
  // Outputs.
  void* out;            ///< [B] (or [B,k])
  void* out2;           ///< [B,T,K]
  std::int64_t* paths;
};

struct MemmAccum {
  double* dG;   ///< [K,K] (dense) or nullptr
  double* dL;   ///< [K,d] (low-rank) or nullptr
  double* dR;   ///< [K,d]
};

/// One set of row kernels per instruction set.
/// rows(plan, b0, b1, accum, ws) runs rows [b0, b1) with `ws` a workspace
/// of workspace(plan) bytes (64-byte aligned).
struct DecoderKernels {
  void (*crf_rows)(const CrfPlan&, std::int64_t b0, std::int64_t b1, const CrfAccum&, char* ws);
  std::size_t (*crf_workspace)(const CrfPlan&);
  void (*memm_rows)(const MemmPlan&, std::int64_t b0, std::int64_t b1, const MemmAccum&, char* ws);
  std::size_t (*memm_workspace)(const MemmPlan&);
};

/// The kernels for the SIMD level in force (see dispatch.cpp).
const DecoderKernels& decoder_kernels();

}  // namespace cpu
}  // namespace kexue
