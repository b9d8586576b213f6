// The ZLPR row kernels compiled for the avx2 level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS avx2
#include "cpu/simd/losses_kernels.inc"
