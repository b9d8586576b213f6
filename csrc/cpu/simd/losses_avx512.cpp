// The ZLPR row kernels compiled for the avx512 level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS avx512
#include "cpu/simd/losses_kernels.inc"
