// csrc/cuda/crf.cu - the CRF on the GPU (issue 8), one block a sequence and
// a thread a tag (looping when K exceeds the block), the step scores in
// shared memory:
// - Viterbi with the CPU's arithmetic (kexue/decoders/common.hpp's
//   max_plus_step and viterbi_chain: double sums, strict > so ties go to the
//   lowest index and NaN candidates never win): the CPU's paths and scores
//   bit for bit;
// - the forward algorithm (log Z, log p(tags)) in log space and double
//   precision, as the CPU computes it whatever the dtype: the CPU's results
//   to rounding (its exp-domain recurrence adds in another order);
// - nll_grad: the forward pass kept in a workspace, the backward pass
//   writing each step's marginals minus the gold one-hot as it goes, the
//   parameter gradients as per-sequence shares summed in order of b
//   (deterministic; the CPU's to rounding); marginals: the same kernel
//   without tags.
// Compiled by nvcc (-Werror) and, for the emulator tests, as plain C++.
#include <cmath>
#include <string>
#include <vector>

#include "cuda/backend.hpp"
#include "cuda/crf.cuh"
#include "cuda/launch.cuh"
#include "cuda/runtime.cuh"

namespace kexue {
namespace cuda {
namespace {

constexpr double kInfD = __builtin_huge_val();

__device__ inline double load(const void* p, bool f32, std::int64_t i) {
  return f32 ? static_cast<double>(static_cast<const float*>(p)[i]) : static_cast<const double*>(p)[i];
}

/// A[i,j] as the CPU prepares it: the transition, minus inf where forbidden.
__device__ inline double trans_at(const CrfArgs& a, std::int64_t ij) {
  const double x = load(a.trans, a.f32, ij);
  return a.allowed != nullptr && !a.allowed[ij] ? x - kInfD : x;
}

__device__ inline double start_at(const CrfArgs& a, std::int64_t k) {
  const double x = a.start != nullptr ? load(a.start, a.f32, k) : 0.0;
  return a.allowed_start != nullptr && !a.allowed_start[k] ? x - kInfD : x;
}

__device__ inline double end_at(const CrfArgs& a, std::int64_t k) {
  const double x = a.end != nullptr ? load(a.end, a.f32, k) : 0.0;
  return a.allowed_end != nullptr && !a.allowed_end[k] ? x - kInfD : x;
}

__device__ inline void store(void* p, bool f32, std::int64_t i, double v) {
  if (f32) static_cast<float*>(p)[i] = static_cast<float>(v);
  else static_cast<double*>(p)[i] = v;
}

__global__ void viterbi_kernel(CrfArgs a, std::int64_t* __restrict__ paths, void* scores,
                               std::int32_t* __restrict__ psi) {
  KX_DYNAMIC_SHARED(double, smem);  // delta [K], nd [K]
  __shared__ int flags[2];          // [0]: a NaN among the parameters or valid emissions
  const std::int64_t b = blockIdx.x, T = a.T, K = a.K;
  double* delta = smem;
  double* nd = smem + K;
  const unsigned tid = threadIdx.x, nt = blockDim.x;
  if (tid == 0) flags[0] = 0;
  std::int64_t* prow = paths + b * T;
  for (std::int64_t t = tid; t < T; t += nt) prow[t] = -1;
  __syncthreads();
  // NaN parameters (the CPU's params_nan)
  int bad = 0;
  for (std::int64_t q = tid; q < K * K; q += nt) bad |= trans_at(a, q) != trans_at(a, q);
  for (std::int64_t k = tid; k < K; k += nt) bad |= (start_at(a, k) != start_at(a, k)) | (end_at(a, k) != end_at(a, k));
  if (bad) flags[0] = 1;
  // the forward max-plus pass over the valid steps
  const bool* mrow = a.mask != nullptr ? a.mask + b * T : nullptr;
  std::int32_t* prow_psi = psi + b * T * K;
  std::int64_t L = 0;
  for (std::int64_t t = 0; t < T; ++t) {
    if (mrow != nullptr && !mrow[t]) continue;
    const std::int64_t hb = (b * T + t) * K;
    if (L == 0) {
      for (std::int64_t j = tid; j < K; j += nt) {
        const double h = load(a.em, a.f32, hb + j);
        if (h != h) flags[0] = 1;
        delta[j] = start_at(a, j) + h;
      }
    } else {
      for (std::int64_t j = tid; j < K; j += nt) {
        double best = delta[0] + trans_at(a, j);
        std::int32_t arg = 0;
        for (std::int64_t i = 1; i < K; ++i) {
          const double c = delta[i] + trans_at(a, i * K + j);
          if (c > best) {
            best = c;
            arg = static_cast<std::int32_t>(i);
          }
        }
        const double h = load(a.em, a.f32, hb + j);
        if (h != h) flags[0] = 1;
        nd[j] = best + h;
        prow_psi[L * K + j] = arg;
      }
      __syncthreads();
      for (std::int64_t j = tid; j < K; j += nt) delta[j] = nd[j];
    }
    __syncthreads();
    ++L;
  }
  if (tid != 0) return;
  double out;
  if (L == 0) {
    out = 0.0;
  } else if (flags[0]) {
    out = __builtin_nan("");
  } else {
    double score = delta[0] + end_at(a, 0);
    std::int64_t tag = 0;
    for (std::int64_t k = 1; k < K; ++k) {
      const double c = delta[k] + end_at(a, k);
      if (c > score) {
        score = c;
        tag = k;
      }
    }
    out = score;
    if (score != -kInfD) {
      std::int64_t l = L - 1;
      for (std::int64_t t = T - 1; t >= 0; --t) {
        if (mrow != nullptr && !mrow[t]) continue;
        prow[t] = tag;
        if (l > 0) tag = prow_psi[l * K + tag];
        --l;
      }
    }
  }
  store(scores, a.f32, b, out);
}

/// log-sum-exp over i < K of x_i + A[i,j] (column) or x_i + e_i (the end),
/// the max first: -inf when every term is -inf; a NaN term (or a +inf one)
/// gives NaN, as on the CPU.
__device__ inline double lse_col(const double* x, const CrfArgs& a, std::int64_t j, bool column) {
  const std::int64_t K = a.K;
  double m = -kInfD;
  bool nan = false;
  for (std::int64_t i = 0; i < K; ++i) {
    const double v = x[i] + (column ? trans_at(a, i * K + j) : end_at(a, i));
    m = v > m ? v : m;
    nan = nan || v != v;
  }
  if (nan) return __builtin_nan("");  // NaN in, NaN out, even beside -inf terms
  if (m == -kInfD) return -kInfD;
  double sum = 0.0;
  for (std::int64_t i = 0; i < K; ++i) {
    const double v = x[i] + (column ? trans_at(a, i * K + j) : end_at(a, i));
    sum += exp(v - m);
  }
  return m + log(sum);
}

__device__ inline std::int64_t tag_at(const void* tags, bool tags64, std::int64_t i) {
  return tags64 ? static_cast<const std::int64_t*>(tags)[i]
                : static_cast<std::int64_t>(static_cast<const std::int32_t*>(tags)[i]);
}

/// S(tags) of sequence b over its valid steps (at least one).
__device__ inline double gold_score(const CrfArgs& a, const void* tags, bool tags64, std::int64_t b,
                                   const bool* mrow) {
  const std::int64_t T = a.T, K = a.K;
  double sc = 0.0;
  std::int64_t prev = -1;
  for (std::int64_t t = 0; t < T; ++t) {
    if (mrow != nullptr && !mrow[t]) continue;
    const std::int64_t y = tag_at(tags, tags64, b * T + t);
    const double h = load(a.em, a.f32, (b * T + t) * K + y);
    sc = prev < 0 ? start_at(a, y) + h : sc + (trans_at(a, prev * K + y) + h);
    prev = y;
  }
  return sc + end_at(a, prev);
}

/// bad[0..3) = (count, value, flat index) of the tags outside [0, K) at valid
/// steps: the first thread to count one (atomically) writes its value and
/// index, so the pair reported belongs together; bad[0] stays 0 without one.
__global__ void check_tags_kernel(const void* tags, bool tags64, const bool* mask, std::int64_t n,
                                  std::int64_t K, std::int64_t* bad) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    if (mask != nullptr && !mask[i]) continue;
    const std::int64_t y = tag_at(tags, tags64, i);
    if ((y < 0 || y >= K) && atomicAdd(reinterpret_cast<unsigned long long*>(bad), 1ull) == 0ull) {
      bad[1] = y;
      bad[2] = i;
    }
  }
}

/// The forward algorithm in log space and double precision, one block a
/// sequence: out[b] = log Z (tags null) or log p(tags) = score - log Z (-inf
/// for a forbidden path), 0 / 0 for a row without valid steps.
__global__ void forward_kernel(CrfArgs a, const void* tags, bool tags64, void* out) {
  KX_DYNAMIC_SHARED(double, smem);  // alpha [K], next [K]
  const std::int64_t b = blockIdx.x, T = a.T, K = a.K;
  double* alpha = smem;
  double* nxt = smem + K;
  const unsigned tid = threadIdx.x, nt = blockDim.x;
  const bool* mrow = a.mask != nullptr ? a.mask + b * T : nullptr;
  std::int64_t L = 0;
  for (std::int64_t t = 0; t < T; ++t) {
    if (mrow != nullptr && !mrow[t]) continue;
    const std::int64_t hb = (b * T + t) * K;
    if (L == 0) {
      for (std::int64_t j = tid; j < K; j += nt) alpha[j] = start_at(a, j) + load(a.em, a.f32, hb + j);
    } else {
      for (std::int64_t j = tid; j < K; j += nt) nxt[j] = lse_col(alpha, a, j, true) + load(a.em, a.f32, hb + j);
      __syncthreads();
      for (std::int64_t j = tid; j < K; j += nt) alpha[j] = nxt[j];
    }
    __syncthreads();
    ++L;
  }
  if (tid != 0) return;
  double r = 0.0;
  if (L > 0) {
    const double logz = lse_col(alpha, a, 0, false);
    r = logz;
    if (tags != nullptr) {
      const double sc = gold_score(a, tags, tags64, b, mrow);
      r = sc == -kInfD ? -kInfD : sc - logz;
    }
  }
  store(out, a.f32, b, r);
}

/// log-sum-exp over j < K of A[i,j] + v_j (a row), the max first; as lse_col.
__device__ inline double lse_row(const double* v, const CrfArgs& a, std::int64_t i) {
  const std::int64_t K = a.K;
  double m = -kInfD;
  bool nan = false;
  for (std::int64_t j = 0; j < K; ++j) {
    const double x = trans_at(a, i * K + j) + v[j];
    m = x > m ? x : m;
    nan = nan || x != x;
  }
  if (nan) return __builtin_nan("");
  if (m == -kInfD) return -kInfD;
  double sum = 0.0;
  for (std::int64_t j = 0; j < K; ++j) sum += exp(trans_at(a, i * K + j) + v[j] - m);
  return m + log(sum);
}

/// The negative log-likelihood and its gradients, one block a sequence
/// (forward-backward in log space, double precision): loss[b], d_emissions
/// [b] (0 at masked steps) and this sequence's share of the parameter
/// gradients in ws.dA [b,K,K], ws.ds, ws.de [b,K] (summed over b by
/// nll_reduce_kernel, in order). A forbidden gold path: loss +inf and no
/// gradient; an empty row: loss 0 and none. Without tags (marginals): dh
/// gets the node marginals mu alone (0 on rows whose every path is
/// forbidden), and loss and ws.dA/ds/de are not used (may be null).
__global__ void nll_grad_kernel(CrfArgs a, const void* tags, bool tags64, void* loss, void* dh,
                                CrfGradWork ws) {
  KX_DYNAMIC_SHARED(double, smem);  // cur [K], nxt [K]
  __shared__ double sh[2];          // log Z, the gold score
  const std::int64_t b = blockIdx.x, T = a.T, K = a.K;
  double* cur = smem;
  double* nxt = smem + K;
  const unsigned tid = threadIdx.x, nt = blockDim.x;
  const bool* mrow = a.mask != nullptr ? a.mask + b * T : nullptr;
  const bool marg = tags == nullptr;
  double* alpha = ws.alpha + b * T * K;  // [L,K], compact over the valid steps
  double* dA = marg ? nullptr : ws.dA + b * K * K;
  double* ds = marg ? nullptr : ws.ds + b * K;
  double* de = marg ? nullptr : ws.de + b * K;
  if (!marg) {
    for (std::int64_t q = tid; q < K * K; q += nt) dA[q] = 0.0;
    for (std::int64_t k = tid; k < K; k += nt) ds[k] = de[k] = 0.0;
  }
  // forward: alpha of every valid step
  std::int64_t L = 0;
  for (std::int64_t t = 0; t < T; ++t) {
    if (mrow != nullptr && !mrow[t]) continue;
    const std::int64_t hb = (b * T + t) * K;
    for (std::int64_t j = tid; j < K; j += nt) {
      const double h = load(a.em, a.f32, hb + j);
      nxt[j] = L == 0 ? start_at(a, j) + h : lse_col(cur, a, j, true) + h;
    }
    __syncthreads();
    for (std::int64_t j = tid; j < K; j += nt) cur[j] = alpha[L * K + j] = nxt[j];
    __syncthreads();
    ++L;
  }
  if (tid == 0) {
    double logz = 0.0, sc = -kInfD;
    if (L > 0) {
      logz = lse_col(cur, a, 0, false);
      sc = marg ? logz : gold_score(a, tags, tags64, b, mrow);
    }
    sh[0] = logz;
    sh[1] = sc;
    if (!marg) store(loss, a.f32, b, L == 0 ? 0.0 : (sc == -kInfD ? kInfD : logz - sc));
  }
  __syncthreads();
  const double logz = sh[0];
  const bool grads = L > 0 && sh[1] != -kInfD;
  // backward: beta in cur, the outputs of each valid step as it is reached
  for (std::int64_t j = tid; j < K; j += nt) cur[j] = end_at(a, j);
  __syncthreads();
  std::int64_t l = L;
  for (std::int64_t t = T - 1; t >= 0; --t) {
    const std::int64_t hb = (b * T + t) * K;
    if ((mrow != nullptr && !mrow[t]) || !grads) {
      for (std::int64_t j = tid; j < K; j += nt) store(dh, a.f32, hb + j, 0.0);
      continue;
    }
    --l;
    const std::int64_t y = marg ? -1 : tag_at(tags, tags64, b * T + t);
    for (std::int64_t j = tid; j < K; j += nt) {
      const double mu = exp(alpha[l * K + j] + cur[j] - logz);
      const double g = mu - (j == y ? 1.0 : 0.0);
      store(dh, a.f32, hb + j, g);
      if (!marg && l == 0) ds[j] = g;
      if (!marg && l == L - 1) de[j] = g;
      nxt[j] = load(a.em, a.f32, hb + j) + cur[j];  // v = h_l + beta_l
    }
    __syncthreads();
    if (l > 0) {
      if (!marg) {
        // the previous valid step's tag, for the observed transition count
        std::int64_t tp = t - 1;
        while (mrow != nullptr && !mrow[tp]) --tp;
        const std::int64_t yp = tag_at(tags, tags64, b * T + tp);
        const double* ap = alpha + (l - 1) * K;
        for (std::int64_t q = tid; q < K * K; q += nt) {
          const std::int64_t i = q / K, j = q % K;
          const double xi = exp(ap[i] + trans_at(a, q) + nxt[j] - logz);
          dA[q] += xi - (i == yp && j == y ? 1.0 : 0.0);
        }
      }
      // beta_{l-1} into cur: past the barrier above nothing reads beta_l
      for (std::int64_t i = tid; i < K; i += nt) cur[i] = lse_row(nxt, a, i);
    }
    __syncthreads();
  }
}

/// d_transitions, d_start, d_end = the sequences' shares summed in order of b.
__global__ void nll_reduce_kernel(CrfGradWork ws, std::int64_t B, std::int64_t K, bool f32, void* dA,
                                  void* ds, void* de) {
  const std::int64_t n = K * K + 2 * K;
  for (std::int64_t q = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < n;
       q += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const double* src;
    std::int64_t stride, at;
    void* dst;
    if (q < K * K) {
      src = ws.dA, stride = K * K, at = q, dst = dA;
    } else if (q < K * K + K) {
      src = ws.ds, stride = K, at = q - K * K, dst = ds;
    } else {
      src = ws.de, stride = K, at = q - K * K - K, dst = de;
    }
    double sum = 0.0;
    for (std::int64_t b = 0; b < B; ++b) sum += src[b * stride + at];
    store(dst, f32, at, sum);
  }
}

}  // namespace

void crf_viterbi(const CrfArgs& a, std::int64_t* paths, void* scores, std::int32_t* psi,
                 cudaStream_t stream) {
  if (a.B <= 0) return;
  const unsigned threads = a.K >= 256 ? 256u : static_cast<unsigned>((a.K + 31) / 32 * 32);
  auto k = &viterbi_kernel;
  KX_LAUNCH(k, dim3(static_cast<unsigned>(a.B)), dim3(threads),
            static_cast<std::size_t>(2 * a.K) * sizeof(double), stream, a, paths, scores, psi);
}

unsigned crf_check_tags_blocks(std::int64_t n) { return blocks_for(n, 256, 1024); }

void crf_check_tags(const void* tags, bool tags64, const bool* mask, std::int64_t n, std::int64_t K,
                    std::int64_t* bad, cudaStream_t stream) {
  if (n <= 0) return;
  auto k = &check_tags_kernel;
  KX_LAUNCH(k, dim3(crf_check_tags_blocks(n)), dim3(256), 0, stream, tags, tags64, mask, n, K, bad);
}

void crf_forward(const CrfArgs& a, const void* tags, bool tags64, void* out, cudaStream_t stream) {
  if (a.B <= 0) return;
  const unsigned threads = a.K >= 256 ? 256u : static_cast<unsigned>((a.K + 31) / 32 * 32);
  auto k = &forward_kernel;
  KX_LAUNCH(k, dim3(static_cast<unsigned>(a.B)), dim3(threads),
            static_cast<std::size_t>(2 * a.K) * sizeof(double), stream, a, tags, tags64, out);
}

void crf_nll_grad(const CrfArgs& a, const void* tags, bool tags64, void* loss, void* dh, void* dA, void* ds,
                  void* de, const CrfGradWork& ws, cudaStream_t stream) {
  if (a.B <= 0) return;
  const unsigned threads = a.K >= 256 ? 256u : static_cast<unsigned>((a.K + 31) / 32 * 32);
  auto k = &nll_grad_kernel;
  KX_LAUNCH(k, dim3(static_cast<unsigned>(a.B)), dim3(threads),
            static_cast<std::size_t>(2 * a.K) * sizeof(double), stream, a, tags, tags64, loss, dh, ws);
  auto r = &nll_reduce_kernel;
  const std::int64_t n = a.K * a.K + 2 * a.K;
  KX_LAUNCH(r, dim3(blocks_for(n, 256, 1024)), dim3(256), 0, stream, ws, a.B, a.K, a.f32, dA, ds, de);
}

void crf_marginals(const CrfArgs& a, void* out, double* alpha, cudaStream_t stream) {
  if (a.B <= 0) return;
  const unsigned threads = a.K >= 256 ? 256u : static_cast<unsigned>((a.K + 31) / 32 * 32);
  auto k = &nll_grad_kernel;
  const CrfGradWork ws{alpha, nullptr, nullptr, nullptr};
  KX_LAUNCH(k, dim3(static_cast<unsigned>(a.B)), dim3(threads),
            static_cast<std::size_t>(2 * a.K) * sizeof(double), stream, a, nullptr, false, nullptr, out, ws);
}

// ------------------------------------------------- the front door's entries

namespace {

void check_args(const char* op, const CrfArgs& a, int device) {
  KX_CHECK_VALUE(a.K <= kViterbiMaxK, op, "K = ", a.K, " tags is more than the CUDA CRF kernels take (",
                 kViterbiMaxK, "); pass host arrays");
  check_pointer(op, a.em, device, "emissions");
  check_pointer(op, a.trans, device, "transitions");
  check_pointer(op, a.mask, device, "mask");
  check_pointer(op, a.start, device, "start");
  check_pointer(op, a.end, device, "end");
  check_pointer(op, a.allowed, device, "allowed");
  check_pointer(op, a.allowed_start, device, "allowed_start");
  check_pointer(op, a.allowed_end, device, "allowed_end");
}

/// Launch a kernel needing 2K doubles of shared memory: `ws_bytes` of
/// workspace first (none for 0), the shared-memory limit raised past 48 KiB
/// when K asks for it, launch(ws), and the workspace freed whatever failed;
/// then a RuntimeError naming `what` if anything did.
template <class Kernel, class Launch>
void launch_with(const char* op, Kernel kernel, std::int64_t K, std::size_t ws_bytes, cudaStream_t st,
                 const char* what, Launch launch) {
  void* ws = nullptr;
  if (ws_bytes > 0) check_call(op, cudaMallocAsync(&ws, ws_bytes, st), "cudaMallocAsync");
  const std::size_t shared = static_cast<std::size_t>(2 * K) * sizeof(double);
  cudaError_t e = cudaSuccess;
  if (shared > 48 * 1024)
    e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
  if (e == cudaSuccess) {
    launch(ws);
    e = cudaGetLastError();
  }
  if (ws != nullptr) cudaFreeAsync(ws, st);
  check_call(op, e, what);
}

/// The tags' range on the device, before any output is written: a call
/// that raises (IndexError) writes nothing.
void check_tags(const char* op, const CrfArgs& a, const void* tags, bool tags64, cudaStream_t st) {
  if (a.T > 0) {
    std::int64_t* bad = nullptr;
    std::int64_t host[3] = {0, 0, 0};
    check_call(op, cudaMallocAsync(reinterpret_cast<void**>(&bad), sizeof host, st), "cudaMallocAsync");
    cudaError_t e = cudaMemsetAsync(bad, 0, sizeof host, st);
    if (e == cudaSuccess) {
      crf_check_tags(tags, tags64, a.mask, a.B * a.T, a.K, bad, st);
      e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpyAsync(host, bad, sizeof host, cudaMemcpyDeviceToHost, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    cudaFreeAsync(bad, st);
    check_call(op, e, "the tags check");
    if (host[0] != 0)
      fail(ErrorKind::Index, op, "tags must be in [0, ", a.K, ") on valid steps; got ", host[1], " at (",
           host[2] / a.T, ", ", host[2] % a.T, ")");
  }
}

}  // namespace

void crf_forward_run(const char* op, const CrfArgs& a, int device, const void* tags, bool tags64,
                     void* out) {
  DeviceScope scope(op, device);
  check_args(op, a, device);
  check_pointer(op, tags, device, "tags");
  check_pointer(op, out, device, "out");
  if (a.B == 0) return;
  const cudaStream_t st = stream();
  if (tags != nullptr) check_tags(op, a, tags, tags64, st);
  launch_with(op, &forward_kernel, a.K, 0, st, "the forward kernel",
              [&](void*) { crf_forward(a, tags, tags64, out, st); });
}

void crf_nll_grad_run(const char* op, const CrfArgs& a, int device, const void* tags, bool tags64, void* loss,
                      void* dh, void* dA, void* ds, void* de) {
  DeviceScope scope(op, device);
  check_args(op, a, device);
  check_pointer(op, tags, device, "tags");
  check_pointer(op, loss, device, "loss");
  check_pointer(op, dh, device, "d_emissions");
  check_pointer(op, dA, device, "d_transitions");
  check_pointer(op, ds, device, "d_start");
  check_pointer(op, de, device, "d_end");
  const cudaStream_t st = stream();
  if (a.B == 0) {  // no sequence: zero parameter gradients
    const std::size_t w = a.f32 ? sizeof(float) : sizeof(double);
    const std::size_t K = static_cast<std::size_t>(a.K);
    cudaError_t e = cudaMemsetAsync(dA, 0, K * K * w, st);
    if (e == cudaSuccess) e = cudaMemsetAsync(ds, 0, K * w, st);
    if (e == cudaSuccess) e = cudaMemsetAsync(de, 0, K * w, st);
    check_call(op, e, "cudaMemsetAsync");
    return;
  }
  check_tags(op, a, tags, tags64, st);
  const std::size_t B = static_cast<std::size_t>(a.B), T = static_cast<std::size_t>(a.T > 0 ? a.T : 1),
                    K = static_cast<std::size_t>(a.K);
  const std::size_t n = B * T * K + B * K * K + 2 * B * K;
  launch_with(op, &nll_grad_kernel, a.K, n * sizeof(double), st, "the nll_grad kernels", [&](void* w) {
    double* buf = static_cast<double*>(w);
    const CrfGradWork ws{buf, buf + B * T * K, buf + B * T * K + B * K * K, buf + B * T * K + B * K * K + B * K};
    crf_nll_grad(a, tags, tags64, loss, dh, dA, ds, de, ws, st);
  });
}

void crf_marginals_run(const char* op, const CrfArgs& a, int device, void* out) {
  DeviceScope scope(op, device);
  check_args(op, a, device);
  check_pointer(op, out, device, "out");
  if (a.B == 0) return;
  const cudaStream_t st = stream();
  const std::size_t n = static_cast<std::size_t>(a.B * (a.T > 0 ? a.T : 1) * a.K);
  launch_with(op, &nll_grad_kernel, a.K, n * sizeof(double), st, "the marginals kernel",
              [&](void* alpha) { crf_marginals(a, out, static_cast<double*>(alpha), st); });
}

void crf_viterbi_run(const char* op, const CrfArgs& a, int device, std::int64_t* paths, void* scores) {
  DeviceScope scope(op, device);
  check_args(op, a, device);
  check_pointer(op, paths, device, "paths");
  check_pointer(op, scores, device, "scores");
  if (a.B == 0) return;
  const std::size_t n = static_cast<std::size_t>(a.B * (a.T > 0 ? a.T : 1) * a.K);
  const cudaStream_t st = stream();
  launch_with(op, &viterbi_kernel, a.K, n * sizeof(std::int32_t), st, "the Viterbi kernel",
              [&](void* psi) { crf_viterbi(a, paths, scores, static_cast<std::int32_t*>(psi), st); });
}

}  // namespace cuda
}  // namespace kexue
