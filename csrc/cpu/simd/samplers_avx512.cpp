// The samplers' loops compiled for the avx512 level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS avx512
#include "cpu/simd/samplers_kernels.inc"
