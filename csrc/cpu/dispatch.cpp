// csrc/cpu/dispatch.cpp - pick the per-ISA kernels at run time.
//
// The level is the best the CPU supports, unless KEXUE_SIMD=scalar|avx2|avx512
// asks for a lower one (tests run every level this way); a level the CPU
// lacks is never used, so one build runs on any x86-64.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu/attention_plan.hpp"
#include "cpu/decoders_plan.hpp"
#include "cpu/gemm_plan.hpp"
#include "cpu/losses_plan.hpp"
#include "cpu/optim_plan.hpp"
#include "cpu/samplers_plan.hpp"
#include "cpu/dispatch.hpp"
#include "kexue/core/error.hpp"

namespace kexue {
namespace cpu {

namespace scalar {
const DecoderKernels& decoder_kernels();
const LossKernels& loss_kernels();
const GemmKernels& gemm_kernels();
const OptimKernels& optim_kernels();
const AttnKernels& attn_kernels();
const SamplerKernels& sampler_kernels();
}  // namespace scalar
#if defined(KEXUE_X86_SIMD)
namespace avx2 {
const DecoderKernels& decoder_kernels();
const LossKernels& loss_kernels();
const GemmKernels& gemm_kernels();
const OptimKernels& optim_kernels();
const AttnKernels& attn_kernels();
const SamplerKernels& sampler_kernels();
}  // namespace avx2
namespace avx512 {
const DecoderKernels& decoder_kernels();
const LossKernels& loss_kernels();
const GemmKernels& gemm_kernels();
const OptimKernels& optim_kernels();
const AttnKernels& attn_kernels();
const SamplerKernels& sampler_kernels();
}  // namespace avx512
#endif

namespace {

SimdLevel best_supported() {
#if defined(KEXUE_X86_SIMD)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return SimdLevel::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::Avx2;
#endif
  return SimdLevel::Scalar;
}

bool parse(const char* s, SimdLevel& out) {
  if (std::strcmp(s, "scalar") == 0) out = SimdLevel::Scalar;
  else if (std::strcmp(s, "avx2") == 0) out = SimdLevel::Avx2;
  else if (std::strcmp(s, "avx512") == 0) out = SimdLevel::Avx512;
  else return false;
  return true;
}

SimdLevel initial_level() {
  const SimdLevel best = best_supported();
  const char* env = std::getenv("KEXUE_SIMD");
  SimdLevel want;
  if (env != nullptr && parse(env, want) && static_cast<int>(want) < static_cast<int>(best))
    return want;
  return best;
}

std::atomic<int>& level_ref() {
  static std::atomic<int> lvl{static_cast<int>(initial_level())};
  return lvl;
}

}  // namespace

SimdLevel simd_level() { return static_cast<SimdLevel>(level_ref().load()); }

SimdLevel simd_level_supported() { return best_supported(); }

const char* simd_levels_built() {
#if defined(KEXUE_X86_SIMD)
  return "scalar avx2 avx512";
#else
  return "scalar";
#endif
}

const char* simd_level_name(SimdLevel l) {
  switch (l) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2: return "avx2";
    default: return "scalar";
  }
}

void set_simd_level(const char* name) {
  SimdLevel want;
  if (!parse(name, want))
    fail(ErrorKind::Value, "set_simd_level", "level must be 'scalar', 'avx2' or 'avx512'; got '",
         name, "'");
  if (static_cast<int>(want) > static_cast<int>(best_supported()))
    fail(ErrorKind::Value, "set_simd_level", "level '", name,
         "' is not supported by this CPU/build; the best is '", simd_level_name(best_supported()),
         "'");
  level_ref().store(static_cast<int>(want));
}

const DecoderKernels& decoder_kernels() {
#if defined(KEXUE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::Avx512: return avx512::decoder_kernels();
    case SimdLevel::Avx2: return avx2::decoder_kernels();
    default: break;
  }
#endif
  return scalar::decoder_kernels();
}

const LossKernels& loss_kernels() {
#if defined(KEXUE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::Avx512: return avx512::loss_kernels();
    case SimdLevel::Avx2: return avx2::loss_kernels();
    default: break;
  }
#endif
  return scalar::loss_kernels();
}

const GemmKernels& gemm_kernels() {
#if defined(KEXUE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::Avx512: return avx512::gemm_kernels();
    case SimdLevel::Avx2: return avx2::gemm_kernels();
    default: break;
  }
#endif
  return scalar::gemm_kernels();
}

const OptimKernels& optim_kernels() {
#if defined(KEXUE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::Avx512: return avx512::optim_kernels();
    case SimdLevel::Avx2: return avx2::optim_kernels();
    default: break;
  }
#endif
  return scalar::optim_kernels();
}

const AttnKernels& attn_kernels() {
#if defined(KEXUE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::Avx512: return avx512::attn_kernels();
    case SimdLevel::Avx2: return avx2::attn_kernels();
    default: break;
  }
#endif
  return scalar::attn_kernels();
}

const SamplerKernels& sampler_kernels() {
#if defined(KEXUE_X86_SIMD)
  switch (simd_level()) {
    case SimdLevel::Avx512: return avx512::sampler_kernels();
    case SimdLevel::Avx2: return avx2::sampler_kernels();
    default: break;
  }
#endif
  return scalar::sampler_kernels();
}

}  // namespace cpu
}  // namespace kexue
