// kexue/core/macros.hpp - portability macros shared by host and device code.
#pragma once

// KX_HD marks header math that nvcc may compile for the device as well.
#if defined(__CUDACC__)
#define KX_HD __host__ __device__
#else
#define KX_HD
#endif

// KX_API exports a symbol from the library (hidden visibility by default).
#if defined(_WIN32)
#define KX_API
#else
#define KX_API __attribute__((visibility("default")))
#endif

// Header math is compiled once per instruction set (csrc/cpu/simd/*.cpp).
// Each of those translation units defines KEXUE_ISA_NS before including it so
// the inline functions of different ISAs get different symbols (otherwise the
// linker could keep an AVX-512 copy and call it on a machine without AVX-512).
#ifndef KEXUE_ISA_NS
#define KEXUE_ISA_NS generic
#endif

#if defined(__GNUC__)
#define KX_RESTRICT __restrict__
#else
#define KX_RESTRICT
#endif

// KX_FMA_OK on a function lets the compiler fuse a*b+c into one FMA inside it
// (where the ISA has FMA: the avx2 and avx512 builds). Everything else is
// compiled with -ffp-contract=off, so only these multiply-add loops round
// differently between the scalar build and the FMA builds (avx2 and avx512
// still agree bitwise with each other).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define KX_FMA_OK __attribute__((optimize("fp-contract=fast")))
#else
#define KX_FMA_OK
#endif
