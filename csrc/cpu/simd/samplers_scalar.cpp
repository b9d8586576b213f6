// The samplers' loops compiled for the scalar level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS scalar
#include "cpu/simd/samplers_kernels.inc"
