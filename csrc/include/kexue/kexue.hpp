// kexue/kexue.hpp - umbrella header: everything an embedder needs.
#pragma once
#include "kexue/attention.hpp"
#include "kexue/config.hpp"
#include "kexue/core/error.hpp"
#include "kexue/core/parallel.hpp"
#include "kexue/core/philox.hpp"
#include "kexue/core/view.hpp"
#include "kexue/crf.hpp"
#include "kexue/cuda.hpp"
#include "kexue/global_pointer.hpp"
#include "kexue/optim.hpp"
#include "kexue/samplers.hpp"
#include "kexue/text.hpp"
#include "kexue/losses.hpp"
#include "kexue/memm.hpp"
#include "kexue/version.hpp"

namespace kexue {
/// "major.minor.patch" of the library this program was linked against.
KX_API const char* version();
/// The SIMD level the CPU kernels run at: "avx512", "avx2" or "scalar".
KX_API const char* simd_level();
}  // namespace kexue
