// The span-score product compiled for the avx2 level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS avx2
#include "cpu/simd/global_pointer_kernels.inc"
