// The span-score product compiled for the avx512 level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS avx512
#include "cpu/simd/global_pointer_kernels.inc"
