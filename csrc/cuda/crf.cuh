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

/// The forward algorithm (double precision, log space), one block a
/// sequence: out [B] in the emissions' dtype = log Z, or with tags [B,T]
/// (int32, or int64 when tags64) log p(tags) = score - log Z (-inf for a
/// forbidden path); 0 for a row without valid steps. Tags are not checked here.
void crf_forward(const CrfArgs& a, const void* tags, bool tags64, void* out, cudaStream_t stream);

/// Workspace of crf_nll_grad (device memory): alpha [B,T,K], the
/// per-sequence gradient shares dA [B,K,K], ds and de [B,K], all double.
struct CrfGradWork {
  double* alpha;
  double* dA;
  double* ds;
  double* de;
};

/// The negative log-likelihood and its gradients (forward-backward in log
/// space, double precision): loss [B], dh [B,T,K] (0 at masked steps),
/// dA [K,K], ds, de [K], all in the emissions' dtype. The shares of dA, ds
/// and de are summed over the sequences in order (deterministic). A row
/// whose gold path is forbidden: loss +inf, no gradient; an empty row: loss
/// 0. Tags are not checked here.
void crf_nll_grad(const CrfArgs& a, const void* tags, bool tags64, void* loss, void* dh, void* dA, void* ds,
                  void* de, const CrfGradWork& ws, cudaStream_t stream);

/// The node marginals out [B,T,K] (the emissions' dtype; 0 at masked steps
/// and on rows whose every path is forbidden): crf_nll_grad's kernel
/// without tags. alpha: workspace of B*T*K doubles.
void crf_marginals(const CrfArgs& a, void* out, double* alpha, cudaStream_t stream);

/// bad[0..3) = (count, value, flat index) of the tags at valid steps (mask
/// nullable) outside [0, K), one of them reported; bad must hold zeros on entry.
unsigned crf_check_tags_blocks(std::int64_t n);
void crf_check_tags(const void* tags, bool tags64, const bool* mask, std::int64_t n, std::int64_t K,
                    std::int64_t* bad, cudaStream_t stream);

}  // namespace cuda
}  // namespace kexue
