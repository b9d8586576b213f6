// The samplers' loops compiled for the avx2 level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS avx2
#include "cpu/simd/samplers_kernels.inc"
