// The attention loops compiled for the avx2 level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS avx2
#include "cpu/simd/attention_kernels.inc"
