// csrc/cuda/crf.cuh - the CRF launchers of csrc/cuda/crf.cu (pointers are
// device memory; under the emulator, host memory).
#pragma once
#include <cstdint>

#include "cuda/backend.hpp"  // CrfArgs
#include "cuda/launch.cuh"

namespace kexue {
namespace cuda {

/// Viterbi, one block a sequence: paths [B,T] int64 (-1 at masked steps),
/// scores [B] in the emissions' dtype, psi: workspace of B*T*K int32. The
/// CPU's rules bit for bit: ties to the lowest index, a row with a NaN among
/// its valid emissions (or NaN parameters) -> path -1 and score NaN, a row
/// whose paths are all forbidden -> -1 and -inf, an empty row -> -1 and 0.
void crf_viterbi(const CrfArgs& a, std::int64_t* paths, void* scores, std::int32_t* psi,
                 cudaStream_t stream);

}  // namespace cuda
}  // namespace kexue
