// The span-score product compiled for the scalar level (flags: CMakeLists.txt).
#define KEXUE_ISA_NS scalar
#include "cpu/simd/global_pointer_kernels.inc"
