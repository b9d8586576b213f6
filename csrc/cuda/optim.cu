// csrc/cuda/optim.cu - optimizer kernels on the GPU (issue 8), from the same
// per-element rules as the CPU (kexue/optim/rules.hpp): SGD, Adam/AdamW, AdaX
// and Lion (float and double parameters and state), the in-place scale of
// clip_grad_norm_, and the float64 sum of squares behind grad_norm /
// clip_grad_norm_ (warp shuffles, then one partial sum per block in shared
// memory). Every kernel takes a list of up to kMaxTensors arrays in one
// launch (multi-tensor, as apex). Compiled by nvcc (-Werror), and as plain
// C++ against tests/emu/cuda_emu.hpp for the emulator tests. The front door
// (csrc/api/optim.cpp) reaches them through optim_run / optim_sumsq /
// optim_scale at the end of this file.
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cuda/backend.hpp"
#include "cuda/launch.cuh"
#include "cuda/optim.cuh"
#include "cuda/runtime.cuh"

namespace kexue {
namespace cuda {
namespace {

namespace R = ::kexue::KEXUE_ISA_NS::optim;

// Every kernel walks a TensorList: the grid strides over the list's chunks of
// kChunk elements, a block's threads over one chunk's elements. One launch
// updates up to kMaxTensors arrays (the list travels in the kernel's
// parameters, about 3 KB), as apex's multi_tensor_apply does.

/// Rule functors: element i of array t of the list.
template <class T, bool kL2, bool kAms>
struct AdamRule {
  R::AdamCoef<T> c;
  __device__ void operator()(const TensorList<T>& L, int t, std::int64_t i) const {
    const T pi = L.p[t][i];
    T mi = L.s0[t][i], vi = L.s1[t][i];
    R::adam_moments<T, kL2>(pi, L.g[t][i], mi, vi, c);
    L.s0[t][i] = mi;
    L.s1[t][i] = vi;
    T vv = vi;
    if (kAms) {
      vv = R::nan_max(L.s2[t][i], vi);
      L.s2[t][i] = vv;
    }
    L.p[t][i] = R::adam_param(pi, mi, vv, c);
  }
};

template <class T, bool kDecay, bool kMom, bool kNest>
struct SgdRule {
  R::SgdCoef<T> c;
  bool first;
  __device__ void operator()(const TensorList<T>& L, int t, std::int64_t i) const {
    T pi = L.p[t][i];
    R::sgd_elem<T, kDecay, kMom, kNest>(pi, L.g[t][i], kMom ? L.s0[t] + i : nullptr, first, c);
    L.p[t][i] = pi;
  }
};

template <class T>
struct AdaxRule {
  R::AdaxCoef<T> c;
  __device__ void operator()(const TensorList<T>& L, int t, std::int64_t i) const {
    T mi = L.s0[t][i], vi = L.s1[t][i];
    R::adax_moments<T>(L.g[t][i], mi, vi, c);
    L.s0[t][i] = mi;
    L.s1[t][i] = vi;
    L.p[t][i] = R::adax_param(L.p[t][i], mi, vi, c);
  }
};

/// Lion with the momentum in float64, rounded once to T (as the CPU).
template <class T>
struct LionRule {
  R::LionCoef c;
  T lr, wd;
  __device__ void operator()(const TensorList<T>& L, int t, std::int64_t i) const {
    const double mi = static_cast<double>(L.s0[t][i]), gi = static_cast<double>(L.g[t][i]) * c.gs;
    const double sgn = R::lion_sign(mi, gi, c);
    L.p[t][i] = R::lion_param(L.p[t][i], sgn, lr, wd);
    L.s0[t][i] = static_cast<T>(c.b2 * mi + c.w2 * gi);
  }
};

/// g *= f, in g's dtype (as the CPU's scale); the arrays are the list's p.
template <class T>
struct ScaleRule {
  T f;
  __device__ void operator()(const TensorList<T>& L, int t, std::int64_t i) const { L.p[t][i] = L.p[t][i] * f; }
};

/// The array of chunk k, by a linear scan of the list's chunk offsets.
template <class T>
__device__ inline int tensor_of(const TensorList<T>& L, std::int64_t k) {
  int t = 0;
  while (L.chunk0[t + 1] <= k) ++t;
  return t;
}

template <class T, class Rule>
__global__ void multi_kernel(TensorList<T> L, Rule rule) {
  const std::int64_t chunks = L.chunk0[L.count];
  for (std::int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
    const int t = tensor_of(L, k);
    const std::int64_t b = (k - L.chunk0[t]) * kChunk;
    const std::int64_t e = b + kChunk < L.n[t] ? b + kChunk : L.n[t];
    for (std::int64_t i = b + threadIdx.x; i < e; i += blockDim.x) rule(L, t, i);
  }
}

/// partial[blockIdx.x] = the block's share of sum g_i^2 over the list's p
/// (float64): each thread's sum, folded by warp shuffles, then the warps' in
/// shared memory.
template <class T>
__global__ void sumsq_kernel(TensorList<T> L, double* __restrict__ partial) {
  __shared__ double warp_sums[32];
  const std::int64_t chunks = L.chunk0[L.count];
  double s = 0.0;
  for (std::int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
    const int t = tensor_of(L, k);
    const std::int64_t b = (k - L.chunk0[t]) * kChunk;
    const std::int64_t e = b + kChunk < L.n[t] ? b + kChunk : L.n[t];
    for (std::int64_t i = b + threadIdx.x; i < e; i += blockDim.x) {
      const double x = static_cast<double>(L.p[t][i]);
      s += x * x;
    }
  }
  for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < (blockDim.x + 31u) / 32u ? warp_sums[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    if (lane == 0) partial[blockIdx.x] = s;
  }
}

constexpr unsigned kOptimThreads = 256;
constexpr unsigned kMaxBlocks = 4096;

template <class T, class Rule>
void launch_multi(const TensorList<T>& L, const Rule& rule, cudaStream_t stream) {
  const std::int64_t chunks = L.chunk0[L.count];
  if (chunks == 0) return;
  auto k = &multi_kernel<T, Rule>;
  KX_LAUNCH(k, dim3(blocks_for(chunks, 1, kMaxBlocks)), dim3(kOptimThreads), 0, stream, L, rule);
}

/// A one-array list (the single-array launchers).
template <class T>
TensorList<T> one(T* p, const T* g, T* s0, T* s1, T* s2, std::int64_t n) {
  TensorList<T> L{};
  L.add(p, g, s0, s1, s2, n);
  return L;
}

}  // namespace

template <class T>
void adam_multi(const TensorList<T>& L, const optim::AdamCoef<T>& c, bool l2, bool amsgrad,
                cudaStream_t stream) {
  if (l2) {
    if (amsgrad) launch_multi(L, AdamRule<T, true, true>{c}, stream);
    else launch_multi(L, AdamRule<T, true, false>{c}, stream);
  } else {
    if (amsgrad) launch_multi(L, AdamRule<T, false, true>{c}, stream);
    else launch_multi(L, AdamRule<T, false, false>{c}, stream);
  }
}

template <class T>
void sgd_multi(const TensorList<T>& L, const optim::SgdCoef<T>& c, bool decay, bool momentum,
               bool nesterov, bool first, cudaStream_t stream) {
  if (!momentum) {
    if (decay) launch_multi(L, SgdRule<T, true, false, false>{c, first}, stream);
    else launch_multi(L, SgdRule<T, false, false, false>{c, first}, stream);
  } else if (nesterov) {
    if (decay) launch_multi(L, SgdRule<T, true, true, true>{c, first}, stream);
    else launch_multi(L, SgdRule<T, false, true, true>{c, first}, stream);
  } else {
    if (decay) launch_multi(L, SgdRule<T, true, true, false>{c, first}, stream);
    else launch_multi(L, SgdRule<T, false, true, false>{c, first}, stream);
  }
}

template <class T>
void adax_multi(const TensorList<T>& L, const optim::AdaxCoef<T>& c, cudaStream_t stream) {
  launch_multi(L, AdaxRule<T>{c}, stream);
}

template <class T>
void lion_multi(const TensorList<T>& L, const optim::LionCoef& c, double lr, double wd,
                cudaStream_t stream) {
  launch_multi(L, LionRule<T>{c, static_cast<T>(lr), static_cast<T>(wd)}, stream);
}

template <class T>
void scale_multi(const TensorList<T>& L, T f, cudaStream_t stream) {
  launch_multi(L, ScaleRule<T>{f}, stream);
}

template <class T>
unsigned sumsq_multi_blocks(const TensorList<T>& L) {
  const std::int64_t chunks = L.chunk0[L.count];
  return chunks == 0 ? 0u : blocks_for(chunks, 1, 1024);
}

template <class T>
void sumsq_multi(const TensorList<T>& L, double* partial, cudaStream_t stream) {
  const unsigned nb = sumsq_multi_blocks(L);
  if (nb == 0) return;
  auto k = &sumsq_kernel<T>;
  KX_LAUNCH(k, dim3(nb), dim3(kOptimThreads), 0, stream, L, partial);
}

// The single-array launchers: a list of one.
template <class T>
void adam(T* p, const T* g, T* m, T* v, T* vmax, std::int64_t n, const optim::AdamCoef<T>& c,
          bool l2, bool amsgrad, cudaStream_t stream) {
  adam_multi(one(p, g, m, v, vmax, n), c, l2, amsgrad, stream);
}

template <class T>
void sgd(T* p, const T* g, T* buf, std::int64_t n, const optim::SgdCoef<T>& c, bool decay,
         bool nesterov, bool first, cudaStream_t stream) {
  sgd_multi(one<T>(p, g, buf, nullptr, nullptr, n), c, decay, buf != nullptr, nesterov, first, stream);
}

template <class T>
void adax(T* p, const T* g, T* m, T* v, std::int64_t n, const optim::AdaxCoef<T>& c,
          cudaStream_t stream) {
  adax_multi(one<T>(p, g, m, v, nullptr, n), c, stream);
}

template <class T>
void lion(T* p, const T* g, T* m, std::int64_t n, const optim::LionCoef& c, double lr, double wd,
          cudaStream_t stream) {
  lion_multi(one<T>(p, g, m, nullptr, nullptr, n), c, lr, wd, stream);
}

template <class T>
void scale(T* g, std::int64_t n, T f, cudaStream_t stream) {
  scale_multi(one<T>(g, nullptr, nullptr, nullptr, nullptr, n), f, stream);
}

template <class T>
unsigned sumsq_blocks(std::int64_t n) {
  return n <= 0 ? 0u : blocks_for((n + kChunk - 1) / kChunk, 1, 1024);
}

template <class T>
void sumsq(const T* g, std::int64_t n, double* partial, cudaStream_t stream) {
  sumsq_multi(one<T>(const_cast<T*>(g), nullptr, nullptr, nullptr, nullptr, n), partial, stream);
}

#define KX_OPTIM_INST(T)                                                                          \
  template void adam_multi<T>(const TensorList<T>&, const optim::AdamCoef<T>&, bool, bool,          \
                              cudaStream_t);                                                       \
  template void sgd_multi<T>(const TensorList<T>&, const optim::SgdCoef<T>&, bool, bool, bool, bool, \
                             cudaStream_t);                                                        \
  template void adax_multi<T>(const TensorList<T>&, const optim::AdaxCoef<T>&, cudaStream_t);       \
  template void lion_multi<T>(const TensorList<T>&, const optim::LionCoef&, double, double,         \
                              cudaStream_t);                                                       \
  template void scale_multi<T>(const TensorList<T>&, T, cudaStream_t);                              \
  template unsigned sumsq_multi_blocks<T>(const TensorList<T>&);                                    \
  template void sumsq_multi<T>(const TensorList<T>&, double*, cudaStream_t);                        \
  template void adam<T>(T*, const T*, T*, T*, T*, std::int64_t, const optim::AdamCoef<T>&, bool,    \
                        bool, cudaStream_t);                                                       \
  template void sgd<T>(T*, const T*, T*, std::int64_t, const optim::SgdCoef<T>&, bool, bool, bool,  \
                       cudaStream_t);                                                              \
  template void adax<T>(T*, const T*, T*, T*, std::int64_t, const optim::AdaxCoef<T>&,              \
                        cudaStream_t);                                                             \
  template void lion<T>(T*, const T*, T*, std::int64_t, const optim::LionCoef&, double, double,     \
                        cudaStream_t);                                                             \
  template void scale<T>(T*, std::int64_t, T, cudaStream_t);                                        \
  template unsigned sumsq_blocks<T>(std::int64_t);                                                  \
  template void sumsq<T>(const T*, std::int64_t, double*, cudaStream_t);
KX_OPTIM_INST(float)
KX_OPTIM_INST(double)
#undef KX_OPTIM_INST

// ------------------------------------------------- the front door's entries

namespace {

std::string nth(const char* base, std::size_t i) { return std::string(base) + "[" + std::to_string(i) + "]"; }

/// The state slots a rule uses, by name (as the front door names them).
std::vector<const char*> state_names(const cpu::OptPlan& pl) {
  switch (pl.rule) {
    case cpu::OptRule::Sgd: return {"momentum_buffers"};
    case cpu::OptRule::Adam: return {"exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"};
    case cpu::OptRule::Adax: return {"exp_avgs", "exp_avg_sqs"};
    case cpu::OptRule::Lion: return {"exp_avgs"};
    default: return {};
  }
}

/// The plan's arrays in lists of at most kMaxTensors, one launch each.
template <class T, class F>
void each_list(const cpu::OptPlan& pl, F launch) {
  TensorList<T> L{};
  for (const cpu::OptItem& it : pl.items) {
    if (it.n == 0) continue;
    L.add(static_cast<T*>(it.p), static_cast<const T*>(it.g), static_cast<T*>(it.s[0]),
          static_cast<T*>(it.s[1]), static_cast<T*>(it.s[2]), it.n);
    if (L.full()) {
      launch(L);
      L.count = 0;
    }
  }
  if (L.count > 0) launch(L);
}

template <class T>
void run_items(const cpu::OptPlan& pl, cudaStream_t st) {
  switch (pl.rule) {
    case cpu::OptRule::Sgd: {
      const auto c = optim::sgd_coef<T>(pl.lr, pl.momentum, pl.dampening, pl.wd, pl.gs);
      each_list<T>(pl, [&](const TensorList<T>& L) {
        sgd_multi<T>(L, c, pl.wd != 0.0, pl.momentum != 0.0, pl.nesterov, pl.step == 1, st);
      });
      break;
    }
    case cpu::OptRule::Adam: {
      const auto c = optim::adam_coef<T>(pl.lr, pl.beta1, pl.beta2, pl.eps, pl.wd, pl.decoupled, pl.step, pl.gs);
      each_list<T>(pl, [&](const TensorList<T>& L) {
        adam_multi<T>(L, c, !pl.decoupled && pl.wd != 0.0, pl.amsgrad, st);
      });
      break;
    }
    case cpu::OptRule::Adax: {
      const auto c = optim::adax_coef<T>(pl.lr, pl.beta1, pl.beta2, pl.eps, pl.wd, pl.step, pl.gs);
      each_list<T>(pl, [&](const TensorList<T>& L) { adax_multi<T>(L, c, st); });
      break;
    }
    case cpu::OptRule::Lion: {
      const auto c = optim::lion_coef(pl.beta1, pl.beta2, pl.gs);
      each_list<T>(pl, [&](const TensorList<T>& L) { lion_multi<T>(L, c, pl.lr, pl.wd, st); });
      break;
    }
    default: break;
  }
}

/// The grads of one dtype in lists of at most kMaxTensors.
template <class T>
std::vector<TensorList<T>> grad_lists(const std::vector<Array>& grads) {
  std::vector<TensorList<T>> out;
  for (const Array& g : grads) {
    if (g.size() == 0 || g.dtype != dtype_of<T>::value) continue;
    if (out.empty() || out.back().full()) out.push_back(TensorList<T>{});
    out.back().add(g.ptr<T>(), nullptr, nullptr, nullptr, nullptr, g.size());
  }
  return out;
}

}  // namespace

void optim_run(const char* op, const cpu::OptPlan& pl, int device) {
  const std::vector<const char*> names = state_names(pl);
  if (names.empty()) no_kernel(op);
  DeviceScope scope(op, device);
  // every pointer first: a call that raises has launched nothing
  for (std::size_t i = 0; i < pl.items.size(); ++i) {
    const cpu::OptItem& it = pl.items[i];
    if (it.n == 0) continue;
    check_pointer(op, it.p, device, nth("params", i));
    check_pointer(op, it.g, device, nth("grads", i));
    for (std::size_t k = 0; k < names.size(); ++k) check_pointer(op, it.s[k], device, nth(names[k], i));
  }
  if (pl.dt == DType::Float32) run_items<float>(pl, stream());
  else run_items<double>(pl, stream());
  check_launch(op);
}

namespace {

/// The per-block sums' buffer of each device, kept between calls (cudaMalloc
/// and cudaFree would cost more than a norm of a few million elements, and
/// cudaFree waits for the whole device); grown on demand, guarded by the mutex
/// for the whole call that uses it.
std::mutex g_partials_mutex;

double* partials(const char* op, int device, std::size_t n) {
  static std::vector<std::pair<double*, std::size_t>> bufs;  // by device; never freed
  if (bufs.size() <= static_cast<std::size_t>(device)) bufs.resize(static_cast<std::size_t>(device) + 1, {nullptr, 0});
  auto& b = bufs[static_cast<std::size_t>(device)];
  if (b.second < n) {
    if (b.first != nullptr) {
      check_call(op, cudaStreamSynchronize(stream()), "the sum of squares");
      cudaFree(b.first);
      b = {nullptr, 0};
    }
    const std::size_t want = n < 4096 ? 4096 : n;
    check_call(op, cudaMalloc(reinterpret_cast<void**>(&b.first), want * sizeof(double)), "cudaMalloc");
    b.second = want;
  }
  return b.first;
}

}  // namespace

double optim_sumsq(const char* op, const std::vector<Array>& grads, int device, bool* bad) {
  DeviceScope scope(op, device);
  for (std::size_t i = 0; i < grads.size(); ++i)
    if (grads[i].size() != 0) check_pointer(op, grads[i].data, device, nth("grads", i));
  const auto lf = grad_lists<float>(grads);
  const auto ld = grad_lists<double>(grads);
  std::size_t total = 0;
  for (const auto& L : lf) total += sumsq_multi_blocks(L);
  for (const auto& L : ld) total += sumsq_multi_blocks(L);
  if (total == 0) return 0.0;
  std::lock_guard<std::mutex> lock(g_partials_mutex);
  double* part = partials(op, device, total);
  std::vector<double> host(total, 0.0);
  const cudaStream_t st = stream();
  std::size_t at = 0;
  for (const auto& L : lf) {
    sumsq_multi(L, part + at, st);
    at += sumsq_multi_blocks(L);
  }
  for (const auto& L : ld) {
    sumsq_multi(L, part + at, st);
    at += sumsq_multi_blocks(L);
  }
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaMemcpyAsync(host.data(), part, total * sizeof(double), cudaMemcpyDeviceToHost, st);
  if (e == cudaSuccess) e = cudaStreamSynchronize(st);
  check_call(op, e, "the sum of squares");
  double s = 0.0;  // block order: fixed for a given list of shapes
  for (double x : host) s += x;
  if (!(s <= 1.79769313486231570815e308)) *bad = true;  // inf or NaN
  return s;
}

void optim_scale(const char* op, const std::vector<Array>& grads, int device, double f) {
  DeviceScope scope(op, device);
  for (std::size_t i = 0; i < grads.size(); ++i)
    if (grads[i].size() != 0) check_pointer(op, grads[i].data, device, nth("grads", i));
  const cudaStream_t st = stream();
  for (const auto& L : grad_lists<float>(grads)) scale_multi<float>(L, static_cast<float>(f), st);
  for (const auto& L : grad_lists<double>(grads)) scale_multi<double>(L, f, st);
  check_launch(op);
}

}  // namespace cuda
}  // namespace kexue
