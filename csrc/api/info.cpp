// csrc/api/info.cpp - what this build of kexue is.
#include "cpu/dispatch.hpp"
#include "kexue/kexue.hpp"

namespace kexue {

const char* version() { return KEXUE_VERSION_STRING; }

const char* simd_level() { return cpu::simd_level_name(cpu::simd_level()); }

}  // namespace kexue
