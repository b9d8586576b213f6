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
#include "cuda_emu.hpp"  // first: the .cu sources below see the emulated CUDA

#include "cuda/optim.cu"
#include "cuda/samplers.cu"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
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

// Every launcher declared in csrc/cuda/*.cuh must have a test above.
const std::set<std::string> kCovered = {"adam", "sgd", "adax", "lion", "sumsq", "sumsq_blocks",
                                        "ising_sweeps"};

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
  for (const char* header : {"optim.cuh", "samplers.cuh"}) {
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
  if (argc > 1) test_coverage(argv[1]);
  else check(false, "coverage: pass the csrc/cuda directory as the first argument");
  std::printf("%d checks, %d failed\n", g_checks, g_failed);
  return g_failed == 0 ? 0 : 1;
}
