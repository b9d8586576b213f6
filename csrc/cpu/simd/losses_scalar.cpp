// The ZLPR row kernels compiled for the scalar level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS scalar
#include "cpu/simd/losses_kernels.inc"
