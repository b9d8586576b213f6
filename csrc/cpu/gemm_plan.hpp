// csrc/cpu/gemm_plan.hpp - the small dense product the span scorers need
// (internal): C[i,j] = alpha * sum_k A[i,k] B[k,j], row-major with leading
// dimensions. `upper`: only j >= i is needed (column blocks wholly below the
// diagonal are skipped; entries there are unspecified).
#pragma once
#include <cstdint>

namespace kexue {
namespace cpu {

struct GemmKernels {
  void (*f32)(std::int64_t M, std::int64_t N, std::int64_t K, const float* A, std::int64_t lda,
              const float* B, std::int64_t ldb, float* C, std::int64_t ldc, float alpha,
              bool upper);
  void (*f64)(std::int64_t M, std::int64_t N, std::int64_t K, const double* A, std::int64_t lda,
              const double* B, std::int64_t ldb, double* C, std::int64_t ldc, double alpha,
              bool upper);
};

const GemmKernels& gemm_kernels();

}  // namespace cpu
}  // namespace kexue
