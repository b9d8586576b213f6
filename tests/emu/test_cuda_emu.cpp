// tests/emu/test_cuda_emu.cpp - the CUDA kernel sources run as C++ under the
// emulator (cuda_emu.hpp) and compared with the CPU path (issue 8).
//
// 1. The emulator itself: barriers order shared-memory traffic, shuffles and
//    ballots see the right lanes, blocks see their own shared memory.
// 2. Every kernel of csrc/cuda/*.cu (kCovered lists them; the test fails if a
//    launcher is added to the sources without a test here): SGD (momentum,
//    Nesterov, decay), Adam/AdamW (L2, decoupled, amsgrad), AdaX and Lion in
//    float and double, three steps each, bitwise against kexue::optim's CPU
//    steps; the grad-norm sum of squares against kexue::optim::grad_norm;
//    the Ising checkerboard sweeps bitwise against kexue::samplers::gibbs_ising.
// 3. crf.viterbi through the front door on arrays marked as GPU memory,
//    against the host call: paths and scores bit for bit over masks with
//    holes, empty rows, K = 1, forbidden transitions, ties, NaN emissions
//    and NaN parameters, float and double.
// 4. The front door with arrays marked as GPU memory (kexue::Array::device):
//    kexue::optim's steps, grad_norm and clip_grad_norm run the emulated
//    kernels through csrc/cuda's host glue and match the host call; mixed
//    devices, host memory labelled as GPU memory, and ops or state without a
//    CUDA kernel are refused before anything is written or launched.
#include "cuda_emu.hpp"  // first: the .cu sources below see the emulated CUDA

#include "cuda/runtime.cu"
#include "cuda/optim.cu"
#include "cuda/samplers.cu"
#include "cuda/crf.cu"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <kexue/kexue.hpp>

namespace {

int g_failed = 0, g_checks = 0;

void check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) {
    ++g_failed;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

// ---------------------------------------------------------------- the emulator

__global__ void reverse_kernel(const int* in, int* out) {
  __shared__ int s[256];
  const unsigned t = threadIdx.x;
  s[t] = in[blockIdx.x * blockDim.x + t] + static_cast<int>(blockIdx.x) * 1000;
  __syncthreads();
  out[blockIdx.x * blockDim.x + t] = s[blockDim.x - 1 - t];
}

__global__ void warp_kernel(const double* in, double* xor_sum, double* down_sum, unsigned* ballot) {
  const unsigned t = threadIdx.x;
  double a = in[t], b = in[t];
  for (int off = 16; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
  for (int off = 16; off > 0; off >>= 1) b += __shfl_down_sync(0xffffffffu, b, off);
  const unsigned bits = __ballot_sync(0xffffffffu, in[t] > 0.0);
  xor_sum[t] = a;
  down_sum[t] = b;
  ballot[t] = bits;
}

__global__ void grid_kernel(int* out) {
  out[(blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x * blockDim.y + threadIdx.y * blockDim.x +
      threadIdx.x] = static_cast<int>(blockIdx.x + 10 * blockIdx.y + 100 * threadIdx.x + 1000 * threadIdx.y);
}

void test_emulator() {
  const unsigned B = 3, T = 256;
  std::vector<int> in(B * T), out(B * T, -1);
  for (unsigned i = 0; i < B * T; ++i) in[i] = static_cast<int>(i);
  auto rk = &reverse_kernel;
  KX_LAUNCH(rk, dim3(B), dim3(T), 0, nullptr, in.data(), out.data());
  bool ok = true;
  for (unsigned b = 0; b < B; ++b)
    for (unsigned t = 0; t < T; ++t) ok = ok && out[b * T + t] == in[b * T + (T - 1 - t)] + static_cast<int>(b) * 1000;
  check(ok, "emu: __syncthreads orders shared memory, each block its own");

  const unsigned W = 64;  // two warps
  std::vector<double> x(W), xs(W), ds(W);
  std::vector<unsigned> bal(W);
  std::mt19937 rng(3);
  std::normal_distribution<double> nd;
  for (auto& v : x) v = nd(rng);
  auto wk = &warp_kernel;
  KX_LAUNCH(wk, dim3(1), dim3(W), 0, nullptr, x.data(), xs.data(), ds.data(), bal.data());
  for (unsigned w = 0; w < 2; ++w) {
    // the butterfly gives every lane the warp's sum in the butterfly's order
    std::vector<double> a(x.begin() + 32 * w, x.begin() + 32 * w + 32);
    for (int off = 16; off > 0; off >>= 1) {
      std::vector<double> n(32);
      for (int l = 0; l < 32; ++l) n[l] = a[l] + a[l ^ off];
      a = n;
    }
    std::vector<double> b(x.begin() + 32 * w, x.begin() + 32 * w + 32);
    for (int off = 16; off > 0; off >>= 1) {
      std::vector<double> n(32);
      for (int l = 0; l < 32; ++l) n[l] = b[l] + (l + off < 32 ? b[l + off] : b[l]);
      b = n;
    }
    unsigned want_bits = 0;
    for (int l = 0; l < 32; ++l) want_bits |= (x[32 * w + l] > 0.0 ? 1u : 0u) << l;
    bool okw = true;
    for (int l = 0; l < 32; ++l)
      okw = okw && xs[32 * w + l] == a[l] && ds[32 * w + l] == b[l] && bal[32 * w + l] == want_bits;
    check(okw, "emu: __shfl_xor_sync, __shfl_down_sync and __ballot_sync, warp " + std::to_string(w));
  }

  std::vector<int> g(2 * 3 * 4 * 2, -1);
  auto gk = &grid_kernel;
  KX_LAUNCH(gk, dim3(2, 3), dim3(4, 2), 0, nullptr, g.data());
  bool okg = true;
  for (unsigned by = 0; by < 3; ++by)
    for (unsigned bx = 0; bx < 2; ++bx)
      for (unsigned ty = 0; ty < 2; ++ty)
        for (unsigned tx = 0; tx < 4; ++tx)
          okg = okg && g[(by * 2 + bx) * 8 + ty * 4 + tx] == static_cast<int>(bx + 10 * by + 100 * tx + 1000 * ty);
  check(okg, "emu: 2-D grids and blocks");
}

// ---------------------------------------------------------------- optimizers

template <class T>
kexue::Array arr(std::vector<T>& v) {
  return kexue::Array::of(v.data(), {static_cast<std::int64_t>(v.size())});
}

template <class T>
struct Rand {
  std::mt19937 rng;
  std::normal_distribution<double> nd;
  explicit Rand(unsigned seed) : rng(seed) {}
  std::vector<T> vec(std::int64_t n, double scale = 1.0, bool positive = false) {
    std::vector<T> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = static_cast<T>(positive ? std::abs(scale * nd(rng)) : scale * nd(rng));
    return v;
  }
};

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0);
}

const char* tname(std::size_t bytes) { return bytes == 4 ? "float32" : "float64"; }

template <class T>
void test_adam(bool decoupled, bool amsgrad, double wd, std::int64_t n) {
  Rand<T> r(static_cast<unsigned>(n + (decoupled ? 7 : 0) + (amsgrad ? 13 : 0)));
  std::vector<T> p = r.vec(n), g = r.vec(n), m = r.vec(n, 0.1), v = r.vec(n, 0.1, true),
                 vm = r.vec(n, 0.1, true);
  if (n > 3) g[3] = static_cast<T>(NAN);  // NaN flows through both alike
  std::vector<T> p2 = p, m2 = m, v2 = v, vm2 = vm;
  kexue::optim::AdamOptions o;
  o.lr = 1e-2;
  o.weight_decay = wd;
  o.decoupled = decoupled;
  o.amsgrad = amsgrad;
  kexue::optim::StepInfo si;
  for (std::int64_t step = 1; step <= 3; ++step) {
    si.step = step;
    si.grad_scale = 0.5;
    kexue::optim::Slot s;
    s.param = arr(p);
    s.grad = arr(g);
    s.state = {arr(m), arr(v)};
    if (amsgrad) s.state.push_back(arr(vm));
    kexue::optim::adam({s}, o, si);
    const auto c = kexue::cuda::optim::adam_coef<T>(o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                                                     o.decoupled, step, si.grad_scale);
    kexue::cuda::adam<T>(p2.data(), g.data(), m2.data(), v2.data(), vm2.data(), n, c,
                         !decoupled && wd != 0.0, amsgrad, nullptr);
  }
  const bool same = same_bits(p, p2) && same_bits(m, m2) && same_bits(v, v2) &&
                    (!amsgrad || same_bits(vm, vm2));
  check(same, std::string("cuda adam ") + tname(sizeof(T)) +
                  (decoupled ? " AdamW" : " Adam") + (amsgrad ? " amsgrad" : "") + " wd=" +
                  std::to_string(wd) + " n=" + std::to_string(n) + ": bitwise equal to the CPU");
}

template <class T>
void test_sgd(double momentum, bool nesterov, double wd, std::int64_t n) {
  Rand<T> r(static_cast<unsigned>(n * 3 + (nesterov ? 1 : 0)));
  std::vector<T> p = r.vec(n), g = r.vec(n), buf = r.vec(n, 0.1);
  if (n > 2) g[2] = static_cast<T>(INFINITY);
  std::vector<T> p2 = p, buf2 = buf;
  kexue::optim::SgdOptions o;
  o.lr = 0.05;
  o.momentum = momentum;
  o.dampening = momentum != 0.0 && !nesterov ? 0.1 : 0.0;  // torch: Nesterov needs dampening 0
  o.weight_decay = wd;
  o.nesterov = nesterov;
  kexue::optim::StepInfo si;
  si.grad_scale = 0.25;
  for (std::int64_t step = 1; step <= 3; ++step) {
    si.step = step;
    kexue::optim::Slot s;
    s.param = arr(p);
    s.grad = arr(g);
    if (momentum != 0.0) s.state = {arr(buf)};
    kexue::optim::sgd({s}, o, si);
    const auto c = kexue::cuda::optim::sgd_coef<T>(o.lr, o.momentum, o.dampening, o.weight_decay,
                                                    si.grad_scale);
    kexue::cuda::sgd<T>(p2.data(), g.data(), momentum != 0.0 ? buf2.data() : nullptr, n, c,
                        wd != 0.0, nesterov, step == 1, nullptr);
  }
  check(same_bits(p, p2) && same_bits(buf, buf2),
        std::string("cuda sgd ") + tname(sizeof(T)) + " momentum=" + std::to_string(momentum) +
            (nesterov ? " nesterov" : "") + " wd=" + std::to_string(wd) + " n=" + std::to_string(n) +
            ": bitwise equal to the CPU");
}

template <class T>
void test_adax(double wd, std::int64_t n) {
  Rand<T> r(static_cast<unsigned>(n * 5 + 1));
  std::vector<T> p = r.vec(n), g = r.vec(n), m = r.vec(n, 0.1), v = r.vec(n, 0.1, true);
  std::vector<T> p2 = p, m2 = m, v2 = v;
  kexue::optim::AdaxOptions o;
  o.lr = 0.01;
  o.weight_decay = wd;
  kexue::optim::StepInfo si;
  for (std::int64_t step = 1; step <= 3; ++step) {
    si.step = step;
    kexue::optim::Slot s;
    s.param = arr(p);
    s.grad = arr(g);
    s.state = {arr(m), arr(v)};
    kexue::optim::adax({s}, o, si);
    const auto c = kexue::cuda::optim::adax_coef<T>(o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                                                     step, si.grad_scale);
    kexue::cuda::adax<T>(p2.data(), g.data(), m2.data(), v2.data(), n, c, nullptr);
  }
  check(same_bits(p, p2) && same_bits(m, m2) && same_bits(v, v2),
        std::string("cuda adax ") + tname(sizeof(T)) + " wd=" + std::to_string(wd) + " n=" +
            std::to_string(n) + ": bitwise equal to the CPU");
}

template <class T>
void test_lion(double wd, std::int64_t n) {
  Rand<T> r(static_cast<unsigned>(n * 7 + 2));
  std::vector<T> p = r.vec(n), g = r.vec(n), m = r.vec(n, 0.1);
  if (n > 1) g[1] = static_cast<T>(NAN);
  std::vector<T> p2 = p, m2 = m;
  kexue::optim::LionOptions o;
  o.lr = 0.01;
  o.weight_decay = wd;
  kexue::optim::StepInfo si;
  si.grad_scale = 2.0;
  for (std::int64_t step = 1; step <= 3; ++step) {
    si.step = step;
    kexue::optim::Slot s;
    s.param = arr(p);
    s.grad = arr(g);
    s.state = {arr(m)};
    kexue::optim::lion({s}, o, si);
    const auto c = kexue::cuda::optim::lion_coef(o.beta1, o.beta2, si.grad_scale);
    kexue::cuda::lion<T>(p2.data(), g.data(), m2.data(), n, c, o.lr, o.weight_decay, nullptr);
  }
  check(same_bits(p, p2) && same_bits(m, m2),
        std::string("cuda lion ") + tname(sizeof(T)) + " wd=" + std::to_string(wd) + " n=" +
            std::to_string(n) + ": bitwise equal to the CPU");
}

template <class T>
void test_sumsq(std::int64_t n) {
  std::vector<T> g = Rand<T>(static_cast<unsigned>(n)).vec(n);
  std::vector<double> part(kexue::cuda::sumsq_blocks<T>(n), -1.0);
  kexue::cuda::sumsq<T>(g.data(), n, part.data(), nullptr);
  double total = 0.0;
  for (double x : part) total += x;
  long double want = 0.0L;
  for (T x : g) want += static_cast<long double>(x) * x;
  bool finite = true;
  const double cpu = kexue::optim::grad_norm({arr(g)}, &finite);
  const double rel = std::abs(std::sqrt(total) - cpu) / (cpu > 0 ? cpu : 1.0);
  check(std::abs(total - static_cast<double>(want)) <= 1e-12 * static_cast<double>(want) + 1e-300 &&
            rel <= 1e-13,
        std::string("cuda sumsq ") + tname(sizeof(T)) + " n=" +
            std::to_string(n) + ": sum of squares and grad_norm agree with the CPU");
}

template <class T>
void test_scale(std::int64_t n, double f) {
  std::vector<T> g = Rand<T>(static_cast<unsigned>(n + 5)).vec(n), h = g;
  kexue::cuda::scale<T>(g.data(), n, static_cast<T>(f), nullptr);
  for (auto& x : h) x = x * static_cast<T>(f);  // the CPU's scale_t
  check(same_bits(g, h), std::string("cuda scale ") + tname(sizeof(T)) + ": bitwise g * f in g's dtype");
}

// ---------------------------------------------------------------- samplers

void test_ising(std::int64_t C, std::int64_t H, std::int64_t W, double beta, double h,
                std::int64_t n_sweeps, std::uint64_t seed, std::int64_t offset) {
  std::mt19937 rng(static_cast<unsigned>(H * 131 + W));
  std::vector<std::int8_t> s0(static_cast<std::size_t>(C * H * W));
  for (auto& x : s0) x = (rng() & 1) ? 1 : -1;
  std::vector<std::int8_t> cpu = s0, gpu = s0, split = s0;
  kexue::samplers::LatticeOptions o;
  o.beta = beta;
  o.h = h;
  o.n_sweeps = n_sweeps;
  o.record_every = n_sweeps > 0 ? n_sweeps : 1;
  o.chain_offset = offset;
  o.seed = seed;
  o.init = 3;
  const std::int64_t S = n_sweeps / o.record_every;
  std::vector<double> mag(static_cast<std::size_t>(C * S)), en(mag.size());
  kexue::samplers::gibbs_ising(kexue::Array::of(cpu.data(), {C, H, W}), o,
                               kexue::Array::of(mag.data(), {C, S}), kexue::Array::of(en.data(), {C, S}));
  kexue::cuda::ising_sweeps(gpu.data(), C, H, W, beta, h, 0, n_sweeps, seed, offset, nullptr);
  const std::int64_t first = n_sweeps / 2;
  kexue::cuda::ising_sweeps(split.data(), C, H, W, beta, h, 0, first, seed, offset, nullptr);
  kexue::cuda::ising_sweeps(split.data(), C, H, W, beta, h, first, n_sweeps - first, seed, offset, nullptr);
  check(cpu == gpu && gpu == split,
        "cuda ising " + std::to_string(C) + "x" + std::to_string(H) + "x" + std::to_string(W) +
            " beta=" + std::to_string(beta) + " h=" + std::to_string(h) + " sweeps=" +
            std::to_string(n_sweeps) + " offset=" + std::to_string(offset) +
            ": bitwise equal to the CPU's gibbs_ising (and in two calls)");
}

// ---------------------------------------------------------------- the front door

/// A vector whose memory the emulated runtime counts as cuda:0's.
template <class T>
struct Dev {
  std::vector<T> v;
  explicit Dev(std::vector<T> x) : v(std::move(x)) {
    kx_emu::register_device_memory(v.data(), v.size() * sizeof(T));
  }
  ~Dev() { kx_emu::unregister_device_memory(v.data()); }
  Dev(const Dev&) = delete;
  kexue::Array a(int device = 0) {
    kexue::Array x = arr(v);
    x.device = device;
    return x;
  }
};

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const kexue::Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// x marked as memory of cuda:0.
kexue::Array on(kexue::Array x) {
  x.device = 0;
  return x;
}

/// AdamW (amsgrad), SGD with momentum, AdaX and Lion through the front door on
/// two arrays marked as cuda:0, against the same calls on host arrays.
template <class T>
void test_front_door_steps() {
  Rand<T> r(sizeof(T) * 17);
  const std::int64_t n0 = 300, n1 = 41;
  std::vector<T> p0 = r.vec(n0), p1 = r.vec(n1), g0 = r.vec(n0), g1 = r.vec(n1);
  std::vector<T> m0 = r.vec(n0, 0.1), m1 = r.vec(n1, 0.1), v0 = r.vec(n0, 0.1, true), v1 = r.vec(n1, 0.1, true);
  std::vector<T> x0 = r.vec(n0, 0.1, true), x1 = r.vec(n1, 0.1, true);
  Dev<T> dp0(p0), dp1(p1), dg0(g0), dg1(g1), dm0(m0), dm1(m1), dv0(v0), dv1(v1), dx0(x0), dx1(x1);
  using kexue::optim::Slot;
  auto host = [&](bool) {
    return std::vector<Slot>{Slot{arr(p0), arr(g0), {arr(m0), arr(v0), arr(x0)}},
                             Slot{arr(p1), arr(g1), {arr(m1), arr(v1), arr(x1)}}};
  };
  auto dev = [&](bool) {
    return std::vector<Slot>{Slot{dp0.a(), dg0.a(), {dm0.a(), dv0.a(), dx0.a()}},
                             Slot{dp1.a(), dg1.a(), {dm1.a(), dv1.a(), dx1.a()}}};
  };
  auto same = [&] {
    return same_bits(p0, dp0.v) && same_bits(p1, dp1.v) && same_bits(m0, dm0.v) && same_bits(m1, dm1.v) &&
           same_bits(v0, dv0.v) && same_bits(v1, dv1.v) && same_bits(x0, dx0.v) && same_bits(x1, dx1.v);
  };
  kexue::optim::StepInfo si;
  si.grad_scale = 0.5;
  const long before = kx_emu::g_launches;
  for (std::int64_t step = 1; step <= 2; ++step) {
    si.step = step;
    kexue::optim::AdamOptions a;
    a.decoupled = true;
    a.amsgrad = true;
    a.weight_decay = 0.02;
    kexue::optim::adam(host(true), a, si);
    kexue::optim::adam(dev(true), a, si);
    kexue::optim::SgdOptions sg;
    sg.momentum = 0.9;
    sg.nesterov = true;
    sg.weight_decay = 0.01;
    kexue::optim::sgd(host(true), sg, si);
    kexue::optim::sgd(dev(true), sg, si);
    kexue::optim::AdaxOptions ax;
    kexue::optim::adax(host(true), ax, si);
    kexue::optim::adax(dev(true), ax, si);
    kexue::optim::LionOptions ln;
    ln.weight_decay = 0.1;
    kexue::optim::lion(host(true), ln, si);
    kexue::optim::lion(dev(true), ln, si);
  }
  check(same(), std::string("front door ") + tname(sizeof(T)) +
                    ": AdamW, SGD, AdaX and Lion on cuda:0 arrays equal the host steps bitwise");
  check(kx_emu::g_launches - before == 2 * 4, "front door: one launch per call (a list of two arrays)");

  // grad_norm and clip_grad_norm_: the norm within rounding, the scaled grads
  // by the same factor (one rounding each)
  bool fin_h = false, fin_d = false;
  const double nh = kexue::optim::grad_norm({arr(g0), arr(g1)}, &fin_h);
  const double nd = kexue::optim::grad_norm({dg0.a(), dg1.a()}, &fin_d);
  check(fin_h && fin_d && std::abs(nh - nd) <= 1e-14 * nh, std::string("front door grad_norm ") + tname(sizeof(T)));
  const double ch = kexue::optim::clip_grad_norm({arr(g0), arr(g1)}, 0.5 * nh, kexue::optim::ClipMode::Clip);
  const double cd = kexue::optim::clip_grad_norm({dg0.a(), dg1.a()}, 0.5 * nh, kexue::optim::ClipMode::Clip);
  bool scaled = std::abs(ch - cd) <= 1e-14 * ch;
  for (std::size_t i = 0; i < g0.size(); ++i)
    scaled = scaled && std::abs(static_cast<double>(dg0.v[i]) - static_cast<double>(g0[i])) <=
                           4.0 * std::numeric_limits<T>::epsilon() * std::abs(static_cast<double>(g0[i])) + 1e-300;
  check(scaled, std::string("front door clip_grad_norm ") + tname(sizeof(T)) + ": norm and scaled grads");
}

/// 45 arrays (more than one launch's kMaxTensors) of sizes 0 .. 3 chunks,
/// through the front door: every step bitwise equal to the host's, one
/// launch per kMaxTensors arrays; then grad_norm and clip over them.
void test_front_door_many() {
  const int A = kexue::cuda::kMaxTensors + 5;
  std::mt19937 rng(77);
  std::vector<std::vector<float>> hp, hg, hm, hv;
  std::vector<std::unique_ptr<Dev<float>>> dp, dg, dm, dv;
  for (int a = 0; a < A; ++a) {
    const std::int64_t n = a == 3 ? 0 : a == 7 ? 1 : a == 11 ? 2 * kexue::cuda::kChunk + 17 : static_cast<std::int64_t>(rng() % 300);
    Rand<float> r(static_cast<unsigned>(a + 1));
    hp.push_back(r.vec(n));
    hg.push_back(r.vec(n));
    hm.push_back(r.vec(n, 0.1));
    hv.push_back(r.vec(n, 0.1, true));
    dp.emplace_back(new Dev<float>(hp.back()));
    dg.emplace_back(new Dev<float>(hg.back()));
    dm.emplace_back(new Dev<float>(hm.back()));
    dv.emplace_back(new Dev<float>(hv.back()));
  }
  std::vector<kexue::optim::Slot> hs, ds;
  for (int a = 0; a < A; ++a) {
    hs.push_back(kexue::optim::Slot{arr(hp[a]), arr(hg[a]), {arr(hm[a]), arr(hv[a])}});
    ds.push_back(kexue::optim::Slot{dp[a]->a(), dg[a]->a(), {dm[a]->a(), dv[a]->a()}});
  }
  kexue::optim::AdamOptions o;
  o.decoupled = true;
  kexue::optim::StepInfo si;
  const long before = kx_emu::g_launches;
  for (std::int64_t step = 1; step <= 2; ++step) {
    si.step = step;
    kexue::optim::adam(hs, o, si);
    kexue::optim::adam(ds, o, si);
  }
  bool same = true;
  for (int a = 0; a < A; ++a)
    same = same && same_bits(hp[a], dp[a]->v) && same_bits(hm[a], dm[a]->v) && same_bits(hv[a], dv[a]->v);
  check(same, "front door: AdamW over 45 arrays (two launches a step) equals the host bitwise");
  check(kx_emu::g_launches - before == 2 * 2, "front door: 45 arrays take two launches a step");
  std::vector<kexue::Array> hga, dga;
  for (int a = 0; a < A; ++a) {
    hga.push_back(arr(hg[a]));
    dga.push_back(dg[a]->a());
  }
  bool fh = false, fd = false;
  const double nh = kexue::optim::grad_norm(hga, &fh), nd = kexue::optim::grad_norm(dga, &fd);
  check(fh && fd && std::abs(nh - nd) <= 1e-14 * nh, "front door: grad_norm over 45 arrays");
}

void test_front_door_errors() {
  using kexue::optim::Slot;
  std::vector<float> hp(8, 1.0f), hg(8, 0.5f), hm(8, 0.0f), hv(8, 0.0f);
  Dev<float> dp(hp), dg(hg), dm(hm), dv(hv);
  const std::vector<float> p_before = dp.v;
  kexue::optim::StepInfo si;
  kexue::optim::AdamOptions o;
  const long before = kx_emu::g_launches;
  // a grad on the host with params on cuda:0
  std::string e = error_of([&] { kexue::optim::adam({Slot{dp.a(), arr(hg), {dm.a(), dv.a()}}}, o, si); });
  check(has(e, "grads[0] is on the host but params[0] is on cuda:0"), "front door: mixed devices refused: " + e);
  // state on another device
  e = error_of([&] { kexue::optim::adam({Slot{dp.a(), dg.a(), {dm.a(1), dv.a()}}}, o, si); });
  check(has(e, "exp_avgs[0] is on cuda:1 but params[0] is on cuda:0"), "front door: state on another device: " + e);
  // host memory labelled as GPU memory: refused by the pointer check, nothing launched
  std::vector<float> plain(8, 0.0f);
  kexue::Array lie = arr(plain);
  lie.device = 0;
  e = error_of([&] { kexue::optim::adam({Slot{dp.a(), dg.a(), {lie, dv.a()}}}, o, si); });
  check(has(e, "exp_avgs[0] is labelled as memory of cuda:0 but is host memory"), "front door: host memory as GPU memory: " + e);
  // an op without a CUDA kernel, and bfloat16 state
  kexue::optim::LambOptions lo;
  e = error_of([&] { kexue::optim::lamb({Slot{dp.a(), dg.a(), {dm.a(), dv.a()}}}, lo, si); });
  check(has(e, "optim.lamb_") && has(e, "no CUDA kernel"), "front door: LAMB on the GPU refused: " + e);
  std::vector<std::uint16_t> b0(8, 0), b1(8, 0);
  kexue::Array bm = kexue::Array::of(b0.data(), {8}), bv = kexue::Array::of(b1.data(), {8});
  bm.device = bv.device = 0;
  e = error_of([&] { kexue::optim::adam({Slot{dp.a(), dg.a(), {bm, bv}}}, o, si); });
  check(has(e, "bfloat16 (uint16) state has no CUDA kernel yet"), "front door: bfloat16 state on the GPU refused: " + e);
  // other areas refuse GPU arrays
  std::vector<double> em(2 * 3 * 4);
  kexue::Array ea = kexue::Array::of(em.data(), {2, 3, 4});
  ea.device = 0;
  std::vector<double> tr(4 * 4), sc(2 * 2);
  std::vector<std::int64_t> paths(2 * 2 * 3);
  e = error_of([&] {
    kexue::crf::nbest(ea, kexue::Array::of(tr.data(), {4, 4}), 2, kexue::crf::Options{},
                      kexue::Array::of(paths.data(), {2, 2, 3}), kexue::Array::of(sc.data(), {2, 2}));
  });
  check(has(e, "crf.nbest") && has(e, "emissions is in GPU memory (cuda:0)"),
        "front door: CRF nbest (no CUDA kernel) refuses GPU arrays: " + e);
  e = error_of([&] { kexue::optim::child_tuning({dg.a()}, 0.5, 1, 0); });
  check(has(e, "optim.child_tuning_") && has(e, "no CUDA kernel"), "front door: child_tuning on the GPU refused: " + e);
  check(kx_emu::g_launches == before && same_bits(dp.v, p_before), "front door: refused calls launched and wrote nothing");
}

// ---------------------------------------------------------------- CRF

template <class T>
void test_viterbi(std::int64_t B, std::int64_t TT, std::int64_t K, unsigned seed, bool with_mask,
                  bool with_opts, const char* what) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<T> em(static_cast<std::size_t>(B * TT * K)), tr(static_cast<std::size_t>(K * K)),
      st(static_cast<std::size_t>(K)), en(static_cast<std::size_t>(K));
  for (auto& x : em) x = static_cast<T>(std::round(nd(rng) * 4) / 4);  // coarse: ties happen
  for (auto& x : tr) x = static_cast<T>(std::round(nd(rng) * 4) / 4);
  for (auto& x : st) x = static_cast<T>(nd(rng));
  for (auto& x : en) x = static_cast<T>(nd(rng));
  // mask: holes, an empty row (row 1), a full row (row 0)
  std::vector<char> maskc(static_cast<std::size_t>(B * TT), 1);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < TT; ++t)
      maskc[static_cast<std::size_t>(b * TT + t)] = b == 0 ? 1 : b == 1 ? 0 : (rng() % 4 != 0);
  std::vector<char> allowed(static_cast<std::size_t>(K * K)), as(static_cast<std::size_t>(K)), ae(static_cast<std::size_t>(K));
  for (auto& x : allowed) x = rng() % 5 != 0;
  for (auto& x : as) x = rng() % 4 != 0;
  for (auto& x : ae) x = rng() % 4 != 0;
  if (B > 2 && TT > 1) em[static_cast<std::size_t>((2 * TT + 1) * K)] = static_cast<T>(NAN);  // row 2: NaN in, NaN out
  auto bool_arr = [](std::vector<char>& v, std::initializer_list<std::int64_t> shape) {
    return kexue::Array(v.data(), kexue::DType::Bool, std::vector<std::int64_t>(shape));
  };
  Dev<T> dem(em), dtr(tr), dst(st), den(en);
  Dev<char> dmask(maskc), dal(allowed), das(as), dae(ae);
  std::vector<std::int64_t> hp(static_cast<std::size_t>(B * TT), 7);
  std::vector<T> hs(static_cast<std::size_t>(B), 7);
  Dev<std::int64_t> dp(hp);
  Dev<T> ds(hs);
  kexue::crf::Options ho, dopt;
  if (with_mask) {
    ho.mask = bool_arr(maskc, {B, TT});
    dopt.mask = bool_arr(dmask.v, {B, TT});
    dopt.mask->device = 0;
  }
  if (with_opts) {
    ho.start = kexue::Array::of(st.data(), {K});
    ho.end = kexue::Array::of(en.data(), {K});
    ho.allowed = bool_arr(allowed, {K, K});
    ho.allowed_start = bool_arr(as, {K});
    ho.allowed_end = bool_arr(ae, {K});
    dopt.start = kexue::Array::of(dst.v.data(), {K});
    dopt.end = kexue::Array::of(den.v.data(), {K});
    dopt.allowed = bool_arr(dal.v, {K, K});
    dopt.allowed_start = bool_arr(das.v, {K});
    dopt.allowed_end = bool_arr(dae.v, {K});
    for (auto* o : {&dopt.start, &dopt.end, &dopt.allowed, &dopt.allowed_start, &dopt.allowed_end}) (*o)->device = 0;
  }
  auto a3 = [&](Dev<T>& d) {
    kexue::Array x = kexue::Array::of(d.v.data(), {B, TT, K});
    x.device = 0;
    return x;
  };
  kexue::Array dtra = kexue::Array::of(dtr.v.data(), {K, K});
  dtra.device = 0;
  kexue::Array dpa = kexue::Array::of(dp.v.data(), {B, TT}), dsa = kexue::Array::of(ds.v.data(), {B});
  dpa.device = dsa.device = 0;
  kexue::crf::viterbi(kexue::Array::of(em.data(), {B, TT, K}), kexue::Array::of(tr.data(), {K, K}), ho,
                      kexue::Array::of(hp.data(), {B, TT}), kexue::Array::of(hs.data(), {B}));
  kexue::crf::viterbi(a3(dem), dtra, dopt, dpa, dsa);
  check(hp == dp.v && same_bits(hs, ds.v),
        std::string("cuda viterbi ") + tname(sizeof(T)) + " " + what + ": paths and scores bitwise equal to the CPU");
}

/// log_partition and log_likelihood on arrays marked as GPU memory against
/// the host calls: float64 to 1e-12 (relative), float32 to float rounding of
/// the host's float64 result on the same (widened) inputs; masks with holes,
/// an empty row (0), a NaN row, forbidden transitions (log p = -inf).
template <class T>
void test_forward(std::int64_t B, std::int64_t TT, std::int64_t K, unsigned seed, bool with_opts, const char* what) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  const std::size_t BTK = static_cast<std::size_t>(B * TT * K);
  std::vector<double> em(BTK), tr(static_cast<std::size_t>(K * K)), st(static_cast<std::size_t>(K)), en(static_cast<std::size_t>(K));
  for (auto& x : em) x = static_cast<double>(static_cast<T>(3 * nd(rng)));
  for (auto& x : tr) x = static_cast<double>(static_cast<T>(nd(rng)));
  for (auto& x : st) x = static_cast<double>(static_cast<T>(nd(rng)));
  for (auto& x : en) x = static_cast<double>(static_cast<T>(nd(rng)));
  if (B > 2 && TT > 1) em[static_cast<std::size_t>((2 * TT + 1) * K)] = NAN;
  std::vector<char> maskc(static_cast<std::size_t>(B * TT)), allowed(static_cast<std::size_t>(K * K)),
      as(static_cast<std::size_t>(K)), ae(static_cast<std::size_t>(K));
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < TT; ++t) maskc[static_cast<std::size_t>(b * TT + t)] = b == 1 ? 0 : (rng() % 4 != 0);
  for (auto& x : allowed) x = rng() % 4 != 0;
  for (auto& x : as) x = rng() % 4 != 0;
  for (auto& x : ae) x = rng() % 4 != 0;
  std::vector<std::int64_t> tags(static_cast<std::size_t>(B * TT));
  for (auto& y : tags) y = static_cast<std::int64_t>(rng() % static_cast<unsigned>(K));
  std::vector<T> emT(em.begin(), em.end()), trT(tr.begin(), tr.end()), stT(st.begin(), st.end()), enT(en.begin(), en.end());
  auto bool_arr = [](std::vector<char>& v, std::initializer_list<std::int64_t> shape, int dev) {
    kexue::Array x(v.data(), kexue::DType::Bool, std::vector<std::int64_t>(shape));
    x.device = dev;
    return x;
  };
  auto on = [](kexue::Array x, int dev) {
    x.device = dev;
    return x;
  };
  // host: float64 on the widened inputs
  kexue::crf::Options ho;
  ho.mask = bool_arr(maskc, {B, TT}, -1);
  if (with_opts) {
    ho.start = kexue::Array::of(st.data(), {K});
    ho.end = kexue::Array::of(en.data(), {K});
    ho.allowed = bool_arr(allowed, {K, K}, -1);
    ho.allowed_start = bool_arr(as, {K}, -1);
    ho.allowed_end = bool_arr(ae, {K}, -1);
  }
  std::vector<double> hz(static_cast<std::size_t>(B)), hl(static_cast<std::size_t>(B));
  kexue::crf::log_partition(kexue::Array::of(em.data(), {B, TT, K}), kexue::Array::of(tr.data(), {K, K}), ho,
                            kexue::Array::of(hz.data(), {B}));
  kexue::crf::log_likelihood(kexue::Array::of(em.data(), {B, TT, K}), kexue::Array::of(tags.data(), {B, TT}),
                             kexue::Array::of(tr.data(), {K, K}), ho, kexue::Array::of(hl.data(), {B}));
  // "device": T inputs
  Dev<T> dem(emT), dtr(trT), dst(stT), den(enT);
  Dev<char> dmask(maskc), dal(allowed), das(as), dae(ae);
  Dev<std::int64_t> dtags(tags);
  std::vector<T> z0(static_cast<std::size_t>(B), T(7));
  Dev<T> dz(z0), dl(z0);
  kexue::crf::Options dopt;
  dopt.mask = bool_arr(dmask.v, {B, TT}, 0);
  if (with_opts) {
    dopt.start = on(kexue::Array::of(dst.v.data(), {K}), 0);
    dopt.end = on(kexue::Array::of(den.v.data(), {K}), 0);
    dopt.allowed = bool_arr(dal.v, {K, K}, 0);
    dopt.allowed_start = bool_arr(das.v, {K}, 0);
    dopt.allowed_end = bool_arr(dae.v, {K}, 0);
  }
  const kexue::Array E = on(kexue::Array::of(dem.v.data(), {B, TT, K}), 0);
  const kexue::Array A = on(kexue::Array::of(dtr.v.data(), {K, K}), 0);
  kexue::crf::log_partition(E, A, dopt, on(kexue::Array::of(dz.v.data(), {B}), 0));
  kexue::crf::log_likelihood(E, on(kexue::Array::of(dtags.v.data(), {B, TT}), 0), A, dopt,
                             on(kexue::Array::of(dl.v.data(), {B}), 0));
  const double tol = sizeof(T) == 4 ? 2.0 * std::numeric_limits<float>::epsilon() : 1e-12;
  auto close = [&](double got, double want) {
    if (std::isnan(want)) return std::isnan(got);
    if (std::isinf(want)) return got == want;
    return std::abs(got - want) <= tol * std::max(1.0, std::abs(want));
  };
  bool ok = true;
  int inf_rows = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    ok = ok && close(static_cast<double>(dz.v[static_cast<std::size_t>(b)]), hz[static_cast<std::size_t>(b)]) &&
         close(static_cast<double>(dl.v[static_cast<std::size_t>(b)]), hl[static_cast<std::size_t>(b)]);
    inf_rows += std::isinf(hl[static_cast<std::size_t>(b)]) ? 1 : 0;
  }
  check(ok && hz[1] == 0.0 && static_cast<double>(dz.v[1]) == 0.0,
        std::string("cuda log_partition/log_likelihood ") + tname(sizeof(T)) + " " + what + " (" +
            std::to_string(inf_rows) + " forbidden gold paths): equal to the host's float64 to rounding");

  // marginals: 0 at masked steps and on rows whose every path is forbidden
  std::vector<double> hmu(BTK);
  kexue::crf::marginals(kexue::Array::of(em.data(), {B, TT, K}), kexue::Array::of(tr.data(), {K, K}), ho,
                        kexue::Array::of(hmu.data(), {B, TT, K}));
  Dev<T> gmu(std::vector<T>(BTK, T(7)));
  kexue::crf::marginals(E, A, dopt, on(kexue::Array::of(gmu.v.data(), {B, TT, K}), 0));

  // nll_grad: the loss and all four gradients against the host's float64
  const std::size_t KK = static_cast<std::size_t>(K * K), Kz = static_cast<std::size_t>(K);
  std::vector<double> hloss(static_cast<std::size_t>(B)), hdh(BTK), hdA(KK), hds(Kz), hde(Kz);
  kexue::crf::nll_grad(kexue::Array::of(em.data(), {B, TT, K}), kexue::Array::of(tags.data(), {B, TT}),
                       kexue::Array::of(tr.data(), {K, K}), ho, kexue::Array::of(hloss.data(), {B}),
                       kexue::Array::of(hdh.data(), {B, TT, K}), kexue::Array::of(hdA.data(), {K, K}),
                       kexue::Array::of(hds.data(), {K}), kexue::Array::of(hde.data(), {K}));
  Dev<T> gloss(z0), gdh(std::vector<T>(BTK, T(7))), gdA(std::vector<T>(KK, T(7))), gds(std::vector<T>(Kz, T(7))),
      gde(std::vector<T>(Kz, T(7)));
  kexue::crf::nll_grad(E, on(kexue::Array::of(dtags.v.data(), {B, TT}), 0), A, dopt,
                       on(kexue::Array::of(gloss.v.data(), {B}), 0), on(kexue::Array::of(gdh.v.data(), {B, TT, K}), 0),
                       on(kexue::Array::of(gdA.v.data(), {K, K}), 0), on(kexue::Array::of(gds.v.data(), {K}), 0),
                       on(kexue::Array::of(gde.v.data(), {K}), 0));
  // gradients: float64 to 1e-11 of max(1, |x|) (the parameter ones add B*T
  // terms in another order), float32 to float rounding
  const double gtol = sizeof(T) == 4 ? 2.0 * std::numeric_limits<float>::epsilon() : 1e-11;
  auto gclose = [&](const std::vector<T>& got, const std::vector<double>& want, int* nans) {
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double g = static_cast<double>(got[i]), w = want[i];
      if (std::isnan(w)) {
        ++*nans;
        if (!std::isnan(g)) return false;
      } else if (!(std::abs(g - w) <= gtol * std::max(1.0, std::abs(w)))) {
        return false;
      }
    }
    return true;
  };
  bool gok = true;
  for (std::int64_t b = 0; b < B; ++b)
    gok = gok && close(static_cast<double>(gloss.v[static_cast<std::size_t>(b)]), hloss[static_cast<std::size_t>(b)]);
  int nans = 0, param_nans = 0, mu_nans = 0;
  const bool mu_ok = gclose(gmu.v, hmu, &mu_nans);
  check(mu_ok, std::string("cuda marginals ") + tname(sizeof(T)) + " " + what + " (" + std::to_string(mu_nans) +
                   " NaN): equal to the host's float64 to rounding");
  const bool dh_ok = gclose(gdh.v, hdh, &nans);
  const bool par_ok = gclose(gdA.v, hdA, &param_nans) && gclose(gds.v, hds, &param_nans) &&
                      gclose(gde.v, hde, &param_nans);
  check(gok && dh_ok && par_ok && hloss[1] == 0.0,
        std::string("cuda nll_grad ") + tname(sizeof(T)) + " " + what + " (" + std::to_string(nans) +
            " NaN d_emissions, " + std::to_string(param_nans) +
            " NaN parameter gradients): loss and gradients equal to the host's float64 to rounding");
}

void test_forward_bad_tags() {
  std::vector<double> em(2 * 3 * 4, 0.5), tr(16, 0.1), out(2, 7.0);
  std::vector<std::int64_t> tags = {0, 1, 2, 3, 4, 0};  // 4 at (1, 1): out of range
  std::vector<char> mask = {1, 1, 1, 1, 1, 1};
  Dev<double> dem(em), dtr(tr), dout(out);
  Dev<std::int64_t> dtags(tags);
  Dev<char> dmask(mask);
  kexue::crf::Options o;
  o.mask = on(kexue::Array(dmask.v.data(), kexue::DType::Bool, {2, 3}));
  const long before = kx_emu::g_launches;
  std::string e = error_of([&] {
    kexue::crf::log_likelihood(on(kexue::Array::of(dem.v.data(), {2, 3, 4})), on(kexue::Array::of(dtags.v.data(), {2, 3})),
                               on(kexue::Array::of(dtr.v.data(), {4, 4})), o, on(kexue::Array::of(dout.v.data(), {2})));
  });
  check(has(e, "tags must be in [0, 4) on valid steps; got 4 at (1, 1)") && dout.v == out &&
            kx_emu::g_launches == before + 1,
        "cuda log_likelihood: a tag out of range is an error before the forward pass (nothing written): " + e);
  std::vector<double> dh0(24, 7.0), dA0(16, 7.0), d40(4, 7.0);
  Dev<double> ddh(dh0), ddA(dA0), dds(d40), dde(d40);
  const long before2 = kx_emu::g_launches;
  e = error_of([&] {
    kexue::crf::nll_grad(on(kexue::Array::of(dem.v.data(), {2, 3, 4})), on(kexue::Array::of(dtags.v.data(), {2, 3})),
                         on(kexue::Array::of(dtr.v.data(), {4, 4})), o, on(kexue::Array::of(dout.v.data(), {2})),
                         on(kexue::Array::of(ddh.v.data(), {2, 3, 4})), on(kexue::Array::of(ddA.v.data(), {4, 4})),
                         on(kexue::Array::of(dds.v.data(), {4})), on(kexue::Array::of(dde.v.data(), {4})));
  });
  check(has(e, "[kexue.crf.nll_grad] tags must be in [0, 4) on valid steps; got 4 at (1, 1)") && dout.v == out &&
            ddh.v == dh0 && ddA.v == dA0 && dds.v == d40 && dde.v == d40 && kx_emu::g_launches == before2 + 1,
        "cuda nll_grad: a tag out of range is an error before any gradient is written: " + e);
  dmask.v[4] = 0;  // the bad tag on a masked step is ignored
  kexue::crf::log_likelihood(on(kexue::Array::of(dem.v.data(), {2, 3, 4})), on(kexue::Array::of(dtags.v.data(), {2, 3})),
                             on(kexue::Array::of(dtr.v.data(), {4, 4})), o, on(kexue::Array::of(dout.v.data(), {2})));
  check(std::isfinite(dout.v[1]) && dout.v[1] < 0.0, "cuda log_likelihood: tags on masked steps are not checked");
}

/// Every path forbidden (no allowed transition, T = 3): marginals 0, the
/// loss +inf and no gradient, as on the host.
void test_crf_all_forbidden() {
  std::vector<double> em(2 * 3 * 2, 0.25), tr(4, 0.5), mu(12, 7.0), loss(2, 7.0), dh(12, 7.0), dA(4, 7.0),
      d2(2, 7.0), d2b(2, 7.0);
  std::vector<std::int64_t> tags(6, 1);
  std::vector<char> none(4, 0);
  Dev<double> dem(em), dtr(tr), dmu(mu), dloss(loss), ddh(dh), ddA(dA), dds(d2), dde(d2b);
  Dev<std::int64_t> dtags(tags);
  Dev<char> dal(none);
  kexue::crf::Options o;
  o.allowed = on(kexue::Array(dal.v.data(), kexue::DType::Bool, {2, 2}));
  const kexue::Array E = on(kexue::Array::of(dem.v.data(), {2, 3, 2})), A = on(kexue::Array::of(dtr.v.data(), {2, 2}));
  kexue::crf::marginals(E, A, o, on(kexue::Array::of(dmu.v.data(), {2, 3, 2})));
  kexue::crf::nll_grad(E, on(kexue::Array::of(dtags.v.data(), {2, 3})), A, o, on(kexue::Array::of(dloss.v.data(), {2})),
                       on(kexue::Array::of(ddh.v.data(), {2, 3, 2})), on(kexue::Array::of(ddA.v.data(), {2, 2})),
                       on(kexue::Array::of(dds.v.data(), {2})), on(kexue::Array::of(dde.v.data(), {2})));
  const std::vector<double> z12(12, 0.0), z4(4, 0.0), z2(2, 0.0), inf2(2, std::numeric_limits<double>::infinity());
  check(dmu.v == z12 && dloss.v == inf2 && ddh.v == z12 && ddA.v == z4 && dds.v == z2 && dde.v == z2,
        "cuda marginals/nll_grad with every path forbidden: marginals 0, loss +inf, no gradient");
}

/// nll_grad with B = 0: zero parameter gradients, nothing launched.
void test_nll_grad_no_rows() {
  std::vector<float> none, A(9, 0.5f), g9(9, 7.0f), g3(3, 7.0f);
  Dev<float> dem(none), dA(A), dgA(g9), dgs(g3), dge(g3), dloss(none), ddh(none);
  Dev<std::int64_t> dtags(std::vector<std::int64_t>{});
  const long before = kx_emu::g_launches;
  kexue::crf::nll_grad(on(kexue::Array::of(dem.v.data(), {0, 4, 3})), on(kexue::Array::of(dtags.v.data(), {0, 4})),
                       on(kexue::Array::of(dA.v.data(), {3, 3})), {}, on(kexue::Array::of(dloss.v.data(), {0})),
                       on(kexue::Array::of(ddh.v.data(), {0, 4, 3})), on(kexue::Array::of(dgA.v.data(), {3, 3})),
                       on(kexue::Array::of(dgs.v.data(), {3})), on(kexue::Array::of(dge.v.data(), {3})));
  const std::vector<float> z9(9, 0.0f), z3(3, 0.0f);
  check(dgA.v == z9 && dgs.v == z3 && dge.v == z3 && kx_emu::g_launches == before,
        "cuda nll_grad with no sequences: zero parameter gradients, no launch");
}

void test_viterbi_errors() {
  std::vector<float> em(2 * 3 * 4), tr(16), sc(2);
  std::vector<std::int64_t> paths(6);
  Dev<float> dem(em), dtr(tr), dsc(sc);
  Dev<std::int64_t> dpaths(paths);
  auto dv = [](kexue::Array x) {
    x.device = 0;
    return x;
  };
  const long before = kx_emu::g_launches;
  // transitions on the host with emissions on cuda:0
  std::string e = error_of([&] {
    kexue::crf::viterbi(dv(kexue::Array::of(dem.v.data(), {2, 3, 4})), kexue::Array::of(tr.data(), {4, 4}), {},
                        dv(kexue::Array::of(dpaths.v.data(), {2, 3})), dv(kexue::Array::of(dsc.v.data(), {2})));
  });
  check(has(e, "transitions is on the host but emissions is on cuda:0"), "viterbi: mixed devices refused: " + e);
  e = error_of([&] {
    kexue::crf::viterbi(dv(kexue::Array::of(dem.v.data(), {2, 3, 4})), dv(kexue::Array::of(dtr.v.data(), {2, 8})), {},
                        dv(kexue::Array::of(dpaths.v.data(), {2, 3})), dv(kexue::Array::of(dsc.v.data(), {2})));
  });
  check(has(e, "transitions must have shape (4, 4)"), "viterbi: bad transitions shape refused: " + e);
  std::vector<float> plain(16);
  e = error_of([&] {
    kexue::crf::viterbi(dv(kexue::Array::of(dem.v.data(), {2, 3, 4})), dv(kexue::Array::of(plain.data(), {4, 4})), {},
                        dv(kexue::Array::of(dpaths.v.data(), {2, 3})), dv(kexue::Array::of(dsc.v.data(), {2})));
  });
  check(has(e, "transitions is labelled as memory of cuda:0 but is host memory"), "viterbi: host memory as GPU memory: " + e);
  check(kx_emu::g_launches == before, "viterbi: refused calls launched nothing");
}

// Every launcher declared in csrc/cuda/*.cuh must have a test above.
// (the *_multi launchers are the ones the single-array launchers call, and
// the front door's: test_front_door_steps / _many cover them with lists)
const std::set<std::string> kCovered = {"adam", "sgd", "adax", "lion", "sumsq", "sumsq_blocks",
                                        "scale", "adam_multi", "sgd_multi", "adax_multi",
                                        "lion_multi", "scale_multi", "sumsq_multi_blocks",
                                        "sumsq_multi", "ising_sweeps", "crf_viterbi", "crf_forward",
                                        "crf_check_tags", "crf_check_tags_blocks", "crf_nll_grad",
                                        "crf_marginals"};

/// The name declared by a line "<type> name(" at the start of a line of a
/// launcher header (return types void, unsigned, double, float, int, bool).
std::string declared(const std::string& line) {
  for (const char* type : {"void ", "unsigned ", "double ", "float ", "int ", "bool "}) {
    const std::string t(type);
    if (line.compare(0, t.size(), t) != 0) continue;
    const std::size_t open = line.find('(', t.size());
    if (open == std::string::npos) return "";
    std::string name = line.substr(t.size(), open - t.size());
    while (!name.empty() && name.back() == ' ') name.pop_back();
    return name;
  }
  return "";
}

void test_coverage(const char* cuda_dir) {
  int found = 0;
  for (const char* header : {"optim.cuh", "samplers.cuh", "crf.cuh"}) {
    std::ifstream f(std::string(cuda_dir) + "/" + header);
    check(static_cast<bool>(f), std::string("coverage: read csrc/cuda/") + header);
    std::string line;
    while (std::getline(f, line)) {
      const std::string name = declared(line);
      if (name.empty()) continue;
      ++found;
      check(kCovered.count(name) == 1,
            "coverage: launcher " + name + " of " + header + " has an emulator test");
    }
  }
  check(found == static_cast<int>(kCovered.size()), "coverage: every covered launcher is declared");
}

}  // namespace

int main(int argc, char** argv) {
  test_emulator();
  for (bool dec : {false, true})
    for (bool ams : {false, true})
      for (double wd : {0.0, 0.01}) {
        test_adam<float>(dec, ams, wd, 1000);
        test_adam<double>(dec, ams, wd, 777);
      }
  for (double mom : {0.0, 0.9})
    for (bool nes : {false, true})
      for (double wd : {0.0, 0.01}) {
        if (nes && mom == 0.0) continue;
        test_sgd<float>(mom, nes, wd, 1000);
        test_sgd<double>(mom, nes, wd, 333);
      }
  for (double wd : {0.0, 0.05}) {
    test_adax<float>(wd, 1000);
    test_adax<double>(wd, 257);
    test_lion<float>(wd, 1000);
    test_lion<double>(wd, 129);
  }
  test_sgd<float>(0.9, true, 0.01, 0);
  test_lion<float>(0.0, 1);
  test_adam<float>(true, false, 0.01, 1);
  test_adam<double>(false, false, 0.0, 0);
  for (std::int64_t n : {1, 31, 1000, 300000}) {
    test_sumsq<float>(n);
    test_sumsq<double>(n);
  }
  test_ising(2, 6, 8, 0.44, 0.0, 6, 3, 0);
  test_ising(3, 16, 16, 0.7, 0.25, 5, (1ull << 40) + 7, 5);  // 128 sites a colour: 2 word groups
  test_ising(1, 10, 26, 0.3, -0.4, 4, 11, 2);                  // 130 sites: a partial group
  test_ising(2, 2, 2, 2.0, 0.0, 3, 1, 0);
  test_ising(1, 64, 64, 0.44, 0.0, 3, 9, 1);
  test_ising(1, 4, 4, 1.0, 30.0, 2, 5, 0);                      // thresholds of 2^32: always +1
  test_ising(2, 4, 6, 0.0, 0.0, 3, 6, 3);                       // beta 0: thresholds 2^31
  test_scale<float>(1000, 0.37);
  test_scale<double>(77, 3.5);
  test_front_door_steps<float>();
  test_front_door_steps<double>();
  test_front_door_many();
  test_viterbi<double>(5, 7, 4, 1, true, true, "mask with holes, an empty row, start/end/allowed, NaN row");
  test_viterbi<float>(5, 7, 4, 2, true, true, "mask with holes, an empty row, start/end/allowed, NaN row");
  test_viterbi<double>(3, 9, 5, 3, false, false, "no mask, no options");
  test_viterbi<float>(4, 6, 1, 4, true, false, "K = 1");
  test_viterbi<double>(3, 1, 3, 5, false, true, "T = 1");
  test_viterbi<double>(2, 0, 3, 6, false, false, "T = 0");
  test_viterbi<float>(3, 20, 300, 7, true, true, "K = 300 (more tags than threads)");
  test_viterbi<double>(6, 40, 33, 8, true, true, "K = 33, T = 40");
  test_viterbi_errors();
  test_forward<double>(6, 9, 5, 11, true, "mask with holes, an empty row, start/end/allowed, NaN row");
  test_forward<float>(6, 9, 5, 12, true, "mask with holes, an empty row, start/end/allowed, NaN row");
  test_forward<double>(4, 7, 1, 13, false, "K = 1");
  test_forward<double>(3, 12, 300, 14, true, "K = 300");
  test_forward<float>(5, 30, 40, 15, false, "K = 40, T = 30");
  test_forward<double>(5, 1, 3, 16, true, "T = 1");
  test_nll_grad_no_rows();
  test_crf_all_forbidden();
  test_forward_bad_tags();
  test_front_door_errors();
  if (argc > 1) test_coverage(argv[1]);
  else check(false, "coverage: pass the csrc/cuda directory as the first argument");
  std::printf("%d checks, %d failed\n", g_checks, g_failed);
  return g_failed == 0 ? 0 : 1;
}
