// csrc/cpu/dispatch.hpp - the SIMD level in force (internal).
#pragma once

namespace kexue {
namespace cpu {

enum class SimdLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };

SimdLevel simd_level();
SimdLevel simd_level_supported();
const char* simd_level_name(SimdLevel l);
/// The levels compiled into this build, e.g. "scalar avx2 avx512".
const char* simd_levels_built();
/// Force a level (tests); ValueError-kind error for an unknown or unsupported one.
void set_simd_level(const char* name);

}  // namespace cpu
}  // namespace kexue
