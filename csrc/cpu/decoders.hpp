// csrc/cpu/decoders.hpp - the CPU backend of kexue.crf and kexue.memm (internal).
// Called by csrc/api after every check; runs the per-ISA row kernels over
// the batch with parallel_for.
#pragma once
#include <cstdint>

#include "cpu/decoders_plan.hpp"
#include "kexue/core/view.hpp"

namespace kexue {
namespace cpu {

/// CRF inputs, checked. A/s/e are doubles (s, e may be null = 0); the bool
/// constraint arrays may be null (= everything allowed).
struct CrfInputs {
  const Array* em;
  const Array* tags;  ///< nullable
  const bool* mask;   ///< nullable
  const double* A;
  const double* s;
  const double* e;
  const bool* allowed;
  const bool* allowed_start;
  const bool* allowed_end;
};

/// CRF outputs: out [B] (or [B,k]) in the emissions' dtype, out2 [B,T,K],
/// paths int64; dA/ds/de (doubles, [K,K]/[K]/[K]) for NllGrad.
struct CrfOutputs {
  void* out = nullptr;
  void* out2 = nullptr;
  std::int64_t* paths = nullptr;
  double* dA = nullptr;
  double* ds = nullptr;
  double* de = nullptr;
};

void crf_run(Job job, const CrfInputs& in, std::int64_t k, const CrfOutputs& out);

/// MEMM inputs, checked: dense G ([K,K] doubles) or factors L, R ([K,d]).
struct MemmInputs {
  const Array* em;
  const Array* tags;
  const bool* mask;
  const double* G;
  const double* Lf;
  const double* Rf;
  std::int64_t d;
  const bool* allowed;
  const bool* allowed_start;
  const bool* allowed_end;
  double alpha;
  bool bidirectional;
};

struct MemmOutputs {
  void* out = nullptr;
  void* out2 = nullptr;
  std::int64_t* paths = nullptr;
  double* dG = nullptr;
  double* dL = nullptr;
  double* dR = nullptr;
};

void memm_run(Job job, const MemmInputs& in, std::int64_t k, const MemmOutputs& out);

}  // namespace cpu
}  // namespace kexue
