// tests/cpp/test_embed.cpp - the embedding guarantee.
//
// Uses kexue only through find_package(kexue) / kexue::kexue and the public
// headers. Checks the CRF and MEMM entry points on the worked example of
// spec/decoders.md section 1.7 (K=2, T=3) in float32 and float64, against the
// spec's numbers and against a brute-force enumeration of all K^T paths done
// here in long double; then checks that bad calls throw kexue::Error with the
// right kind and message. Prints "N passed, M failed"; exit status 1 on any
// failure.
#include <kexue/kexue.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>
#include <functional>

namespace {

int g_passed = 0;
int g_failed = 0;

void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

void check_close(double got, double want, double tol, const std::string& what) {
  const bool ok = std::isfinite(got) && std::fabs(got - want) <= tol * (1.0 + std::fabs(want));
  if (!ok) {
    std::printf("  got %.15g, want %.15g (tol %g)\n", got, want, tol);
  }
  check(ok, what);
}

// Section 1.7 of spec/decoders.md.
constexpr int K = 2;
constexpr int T = 3;
const double kH[T][K] = {{1.0, 0.5}, {0.2, 1.5}, {0.9, 0.3}};
const double kA[K][K] = {{0.4, -0.2}, {0.1, 0.6}};
const double kStart[K] = {0.5, -0.5};
const double kEnd[K] = {-0.3, 0.4};
const std::int64_t kGold[T] = {0, 1, 1};

// ------------------------------------------------------------ brute force
using Path = std::array<int, T>;

std::vector<Path> all_paths() {
  std::vector<Path> out;
  for (int c = 0; c < K * K * K; ++c) out.push_back({c / (K * K), (c / K) % K, c % K});
  return out;
}

long double path_score(const Path& y, bool with_se) {
  long double s = 0;
  for (int t = 0; t < T; ++t) s += kH[t][y[t]];
  for (int t = 1; t < T; ++t) s += kA[y[t - 1]][y[t]];
  if (with_se) s += kStart[y[0]] + kEnd[y[T - 1]];
  return s;
}

long double brute_log_z(bool with_se) {
  long double z = 0;
  for (const Path& y : all_paths()) z += std::exp(path_score(y, with_se));
  return std::log(z);
}

/// MEMM log p(y) under the left-to-right model:
/// p(y_0) = softmax(h_0), p(y_t | y_{t-1}) = softmax_k(alpha (h_t[k] + A[y_{t-1}, k])).
long double brute_memm_loglik(const std::int64_t* y, double alpha) {
  long double ll = kH[0][y[0]] - std::log(std::exp((long double)kH[0][0]) + std::exp((long double)kH[0][1]));
  for (int t = 1; t < T; ++t) {
    long double z = 0;
    for (int k = 0; k < K; ++k) z += std::exp(alpha * ((long double)kH[t][k] + kA[y[t - 1]][k]));
    ll += alpha * ((long double)kH[t][y[t]] + kA[y[t - 1]][y[t]]) - std::log(z);
  }
  return ll;
}

// ------------------------------------------------------------ the suite
template <class F>
void run_suite(const char* dtype, double tol) {
  const std::string tag = std::string("[") + dtype + "] ";
  // emissions [B=1,T,K], transitions [K,K], start/end [K]; C order.
  std::vector<F> h, A, s, e;
  for (auto& row : kH)
    for (double v : row) h.push_back(static_cast<F>(v));
  for (auto& row : kA)
    for (double v : row) A.push_back(static_cast<F>(v));
  for (double v : kStart) s.push_back(static_cast<F>(v));
  for (double v : kEnd) e.push_back(static_cast<F>(v));
  const std::vector<std::int64_t> gold(kGold, kGold + T);

  const kexue::Array em = kexue::Array::of(h.data(), {1, T, K});
  const kexue::Array tr = kexue::Array::of(A.data(), {K, K});
  const kexue::Array tags = kexue::Array::of(gold.data(), {1, T});

  kexue::crf::Options plain;  // bert4keras convention: no start/end
  kexue::crf::Options se;
  se.start = kexue::Array::of(s.data(), {K});
  se.end = kexue::Array::of(e.data(), {K});

  // (a) no start/end: log Z = 5.047499, Viterbi (1,1,0) score 3.6.
  {
    F logz[1] = {0};
    kexue::crf::log_partition(em, tr, plain, kexue::Array::of(logz, {1}));
    check_close(logz[0], 5.047499, 2e-6, tag + "crf.log_partition == spec 5.047499");
    check_close(logz[0], (double)brute_log_z(false), tol, tag + "crf.log_partition == brute force");

    std::int64_t path[T] = {-7, -7, -7};
    F score[1] = {0};
    kexue::crf::viterbi(em, tr, plain, kexue::Array::of(path, {1, T}), kexue::Array::of(score, {1}));
    check(path[0] == 1 && path[1] == 1 && path[2] == 0, tag + "crf.viterbi path == (1,1,0)");
    check_close(score[0], 3.6, tol, tag + "crf.viterbi score == 3.6");

    F ll[1] = {0};
    kexue::crf::log_likelihood(em, tags, tr, plain, kexue::Array::of(ll, {1}));
    check_close(ll[0], -1.847499, 2e-6, tag + "crf.log_likelihood == spec -1.847499");
    check_close(ll[0], (double)(3.2L - brute_log_z(false)), tol,
                tag + "crf.log_likelihood == brute force");

    // nll_grad: loss 1.847499, dNLL/dh and dNLL/dA from the spec.
    F loss[1] = {0};
    std::vector<F> dh(T * K, F(99)), dA(K * K, F(99)), ds(K, F(99)), de(K, F(99));
    kexue::crf::nll_grad(em, tags, tr, plain, kexue::Array::of(loss, {1}),
                         kexue::Array::of(dh.data(), {1, T, K}), kexue::Array::of(dA.data(), {K, K}),
                         kexue::Array::of(ds.data(), {K}), kexue::Array::of(de.data(), {K}));
    check_close(loss[0], 1.847499, 2e-6, tag + "crf.nll_grad loss == spec 1.847499");
    const double want_dh[T * K] = {-0.516212, 0.516212, 0.220223, -0.220223, 0.578613, -0.578613};
    const double want_dA[K * K] = {0.321195, -0.617184, 0.477641, -0.181652};
    bool ok_dh = true, ok_dA = true;
    for (int i = 0; i < T * K; ++i) ok_dh = ok_dh && std::fabs(dh[i] - want_dh[i]) <= 2e-6;
    for (int i = 0; i < K * K; ++i) ok_dA = ok_dA && std::fabs(dA[i] - want_dA[i]) <= 2e-6;
    check(ok_dh, tag + "crf.nll_grad d_emissions == spec");
    check(ok_dA, tag + "crf.nll_grad d_transitions == spec");
    // No start/end given: their gradients are the node marginals' first/last
    // rows minus the gold one-hot (what a start/end of zero would receive).
    check_close(ds[0], 0.483788 - 1.0, 2e-6, tag + "crf.nll_grad d_start[0] (start absent)");
    check_close(de[1], 0.421387 - 1.0, 2e-6, tag + "crf.nll_grad d_end[1] (end absent)");
  }

  // (b) with start/end: log Z = 5.200820, Viterbi (0,1,1) score 4.1.
  {
    F logz[1] = {0};
    kexue::crf::log_partition(em, tr, se, kexue::Array::of(logz, {1}));
    check_close(logz[0], 5.200820, 2e-6, tag + "crf.log_partition(start,end) == spec 5.200820");
    check_close(logz[0], (double)brute_log_z(true), tol,
                tag + "crf.log_partition(start,end) == brute force");

    std::int64_t path[T] = {-7, -7, -7};
    F score[1] = {0};
    kexue::crf::viterbi(em, tr, se, kexue::Array::of(path, {1, T}), kexue::Array::of(score, {1}));
    check(path[0] == 0 && path[1] == 1 && path[2] == 1, tag + "crf.viterbi(start,end) path == (0,1,1)");
    check_close(score[0], 4.1, tol, tag + "crf.viterbi(start,end) score == 4.1");

    F loss[1] = {0};
    std::vector<F> dh(T * K), dA(K * K), ds(K), de(K);
    kexue::crf::nll_grad(em, tags, tr, se, kexue::Array::of(loss, {1}),
                         kexue::Array::of(dh.data(), {1, T, K}), kexue::Array::of(dA.data(), {K, K}),
                         kexue::Array::of(ds.data(), {K}), kexue::Array::of(de.data(), {K}));
    check_close(loss[0], 1.100820, 2e-6, tag + "crf.nll_grad(start,end) loss == spec 1.100820");
    check(std::fabs(ds[0] - (-0.288299)) <= 2e-6 && std::fabs(ds[1] - 0.288299) <= 2e-6,
          tag + "crf.nll_grad d_start == spec");
    check(std::fabs(de[0] - 0.415759) <= 2e-6 && std::fabs(de[1] - (-0.415759)) <= 2e-6,
          tag + "crf.nll_grad d_end == spec");
  }

  // (c) masks: batch [ex.(a); same h, length 2; length 0]. kexue's semantics:
  // NLL = [1.847499, 1.121539, 0] (a length-0 row has NLL 0 and path all -1).
  {
    std::vector<F> h3;
    for (int b = 0; b < 3; ++b) h3.insert(h3.end(), h.begin(), h.end());
    const std::vector<std::int64_t> tags3 = {0, 1, 1, 0, 1, 1, 0, 1, 1};
    bool mask3[3 * T] = {true, true, true, true, true, false, false, false, false};
    kexue::crf::Options m;
    m.mask = kexue::Array::of(mask3, {3, T});
    F ll[3] = {0, 0, 0};
    kexue::crf::log_likelihood(kexue::Array::of(h3.data(), {3, T, K}),
                               kexue::Array::of(tags3.data(), {3, T}), tr, m,
                               kexue::Array::of(ll, {3}));
    check_close(ll[0], -1.847499, 2e-6, tag + "crf.log_likelihood masked row 0");
    check_close(ll[1], -1.121539, 2e-6, tag + "crf.log_likelihood masked row 1 (length 2)");
    check(ll[2] == F(0), tag + "crf.log_likelihood length-0 row == 0");

    std::int64_t paths[3 * T];
    F scores[3];
    kexue::crf::viterbi(kexue::Array::of(h3.data(), {3, T, K}), tr, m,
                        kexue::Array::of(paths, {3, T}), kexue::Array::of(scores, {3}));
    check(paths[5] == -1 && paths[6] == -1 && paths[7] == -1 && paths[8] == -1,
          tag + "crf.viterbi pads masked steps with -1");
  }

  // MEMM, alpha = 0.5 (bert4keras): forward log-likelihood of (0,1,1)
  // = -(0.474077 + 0.533382 + 0.718460).
  {
    kexue::memm::Options mo;
    mo.transitions = tr;
    mo.alpha = 0.5;
    F ll[1] = {0};
    kexue::memm::log_likelihood(em, tags, mo, kexue::Array::of(ll, {1}));
    check_close(ll[0], -(0.474077 + 0.533382 + 0.718460), 3e-6,
                tag + "memm.log_likelihood(alpha=0.5) == spec");
    check_close(ll[0], (double)brute_memm_loglik(kGold, 0.5), tol,
                tag + "memm.log_likelihood(alpha=0.5) == brute force");

    // Low-rank factors L R^T (spec section 2) agree with the dense G they make.
    const double L[K * 2] = {0.5, -0.2, 0.3, 0.8};
    const double R[K * 2] = {0.6, 0.1, -0.4, 0.7};
    std::vector<F> Lf(L, L + 4), Rf(R, R + 4), G(K * K);
    for (int i = 0; i < K; ++i)
      for (int j = 0; j < K; ++j)
        G[i * K + j] = static_cast<F>(L[i * 2] * R[j * 2] + L[i * 2 + 1] * R[j * 2 + 1]);
    kexue::memm::Options dense, lowrank;
    dense.transitions = kexue::Array::of(G.data(), {K, K});
    lowrank.left = kexue::Array::of(Lf.data(), {K, 2});
    lowrank.right = kexue::Array::of(Rf.data(), {K, 2});
    F a[1] = {0}, b[1] = {0};
    kexue::memm::log_likelihood(em, tags, dense, kexue::Array::of(a, {1}));
    kexue::memm::log_likelihood(em, tags, lowrank, kexue::Array::of(b, {1}));
    check_close(b[0], a[0], tol, tag + "memm.log_likelihood low-rank == dense");
  }

  // The thread count never changes a result.
  {
    std::vector<F> big;
    for (int i = 0; i < 64 * 50 * 5; ++i) big.push_back(static_cast<F>(std::sin(0.37 * i)));
    std::vector<F> A5;
    for (int i = 0; i < 25; ++i) A5.push_back(static_cast<F>(std::cos(1.3 * i)));
    F z1[64], z2[64];
    const int before = kexue::get_num_threads();
    kexue::set_num_threads(1);
    kexue::crf::log_partition(kexue::Array::of(big.data(), {64, 50, 5}),
                              kexue::Array::of(A5.data(), {5, 5}), plain, kexue::Array::of(z1, {64}));
    kexue::set_num_threads(2);
    kexue::crf::log_partition(kexue::Array::of(big.data(), {64, 50, 5}),
                              kexue::Array::of(A5.data(), {5, 5}), plain, kexue::Array::of(z2, {64}));
    kexue::set_num_threads(before);
    bool same = true;
    for (int i = 0; i < 64; ++i) same = same && z1[i] == z2[i];
    check(same, tag + "crf.log_partition bitwise equal for 1 and 2 threads");
  }
}

/// `fn` must throw kexue::Error of `kind` whose message starts with `prefix`.
void expect_error(const std::function<void()>& fn, kexue::ErrorKind kind, const std::string& prefix,
                  const std::string& what) {
  try {
    fn();
  } catch (const kexue::Error& err) {
    const std::string msg = err.what();
    const bool ok = err.kind() == kind && msg.compare(0, prefix.size(), prefix) == 0;
    if (!ok) std::printf("  message: %s\n", msg.c_str());
    check(ok, what);
    return;
  } catch (...) {
    check(false, what + " (threw something other than kexue::Error)");
    return;
  }
  check(false, what + " (did not throw)");
}

void run_errors() {
  double h[T * K] = {1.0, 0.5, 0.2, 1.5, 0.9, 0.3};
  double A[K * K] = {0.4, -0.2, 0.1, 0.6};
  float Af[K * K] = {0.4f, -0.2f, 0.1f, 0.6f};
  std::int64_t path[T];
  double score[1];
  std::int64_t bad_tags[T] = {0, 2, 1};
  double out[1];
  kexue::crf::Options none;

  expect_error(
      [&] {
        kexue::crf::viterbi(kexue::Array::of(h, {T, K}), kexue::Array::of(A, {K, K}), none,
                            kexue::Array::of(path, {1, T}), kexue::Array::of(score, {1}));
      },
      kexue::ErrorKind::Value, "[kexue.crf.viterbi] emissions",
      "crf.viterbi with 2-D emissions throws ValueError-kind naming emissions");
  expect_error(
      [&] {
        kexue::crf::log_partition(kexue::Array::of(h, {1, T, K}), kexue::Array::of(Af, {K, K}),
                                  none, kexue::Array::of(out, {1}));
      },
      kexue::ErrorKind::Type, "[kexue.crf.log_partition] transitions",
      "crf.log_partition with float32 transitions for float64 emissions throws TypeError-kind");
  expect_error(
      [&] {
        kexue::crf::log_likelihood(kexue::Array::of(h, {1, T, K}), kexue::Array::of(bad_tags, {1, T}),
                                   kexue::Array::of(A, {K, K}), none, kexue::Array::of(out, {1}));
      },
      kexue::ErrorKind::Index, "[kexue.crf.log_likelihood] tags",
      "crf.log_likelihood with a tag out of range throws IndexError-kind");
  expect_error([] { kexue::set_num_threads(0); }, kexue::ErrorKind::Value, "[kexue.",
               "set_num_threads(0) throws ValueError-kind");
}

// The spans area through the installed package: the ZLPR loss and its
// gradient (spec/decoders.md section 4.5) and GlobalPointer scores (3.5).
void run_spans() {
  const double s[4] = {2.0, -1.0, 0.5, -3.0};
  const bool pos[4] = {true, false, true, false};
  double loss[1] = {0.0}, grad[4] = {};
  const auto lv = kexue::Array::of(loss, {}), gv = kexue::Array::of(grad, {4});
  kexue::losses::multilabel_crossentropy(kexue::Array::of(s, {4}), kexue::Array::of(pos, {4}),
                                         std::nullopt, lv, &gv);
  check_close(loss[0], 0.903969, 1e-6, "losses.multilabel_crossentropy == 0.903969");
  check_close(grad[1], 0.259496, 1e-6, "losses.multilabel_crossentropy grad[1] == 0.259496");
  const std::int64_t idx[2] = {0, 2};
  double loss2[1] = {0.0};
  kexue::losses::sparse_multilabel_crossentropy(kexue::Array::of(s, {4}),
                                                kexue::Array::of(idx, {2}), false,
                                                kexue::Array::of(loss2, {}), nullptr);
  check_close(loss2[0], 0.903969, 1e-6, "losses.sparse_multilabel_crossentropy == dense");
  // One head, d = 2, n = 4, the last token padding, rope_base 1 (angle = position).
  const double q[8] = {1, 0, 0, 1, 1, 1, 0.5, -1};
  const double k[8] = {1, 0, 1, 1, 0, 1, -1, 0.5};
  const bool mask[4] = {true, true, true, false};
  double sc[16] = {};
  kexue::global_pointer::Options opt;
  opt.mask = kexue::Array::of(mask, {1, 4});
  opt.rope_base = 1.0;
  kexue::global_pointer::scores(kexue::Array::of(q, {1, 4, 1, 2}), kexue::Array::of(k, {1, 4, 1, 2}),
                                opt, kexue::Array::of(sc, {1, 1, 4, 4}));
  check_close(sc[2], -0.642970, 1e-6, "global_pointer.scores s(0,2) == -0.642970");
  check(std::isinf(sc[1 * 4 + 0]) && sc[1 * 4 + 0] < 0, "global_pointer.scores: i > j is -inf");
  check(std::isinf(sc[0 * 4 + 3]) && sc[0 * 4 + 3] < 0, "global_pointer.scores: padding is -inf");
  // Decoding: two nested-free spans above 0; flat keeps the higher of the overlapping pair.
  double ds[9] = {-1, 2, -1, -1, -1, 1, -1, -1, -1};
  const auto all = kexue::global_pointer::decode(kexue::Array::of(ds, {1, 1, 3, 3}), 0.0, std::nullopt, false);
  check(all.size() == 2 && all[0] == kexue::global_pointer::Span{0, 0, 0, 1} &&
            all[1] == kexue::global_pointer::Span{0, 0, 1, 2},
        "global_pointer.decode finds (0,0,0,1) and (0,0,1,2)");
  const auto flat = kexue::global_pointer::decode(kexue::Array::of(ds, {1, 1, 3, 3}), 0.0, std::nullopt, true);
  check(flat.size() == 1 && flat[0] == kexue::global_pointer::Span{0, 0, 0, 1},
        "global_pointer.decode(flat) keeps the higher-scoring overlapping span");
  // The span loss of the Python docstring: 0.38934.
  double ls[4] = {-2, 3, -2, -2}, lout[1] = {0.0}, lgrad[4] = {};
  const std::int64_t gold[4] = {0, 0, 0, 1};
  const auto lg = kexue::Array::of(lgrad, {1, 1, 2, 2});
  kexue::global_pointer::loss(kexue::Array::of(ls, {1, 1, 2, 2}), kexue::Array::of(gold, {1, 4}),
                              kexue::Array::of(lout, {1, 1}), &lg);
  check_close(lout[0], 0.38934, 1e-5, "global_pointer.loss == 0.38934");
  const std::int64_t bad[4] = {0, 0, 0, 2};
  expect_error(
      [&] {
        kexue::global_pointer::loss(kexue::Array::of(ls, {1, 1, 2, 2}), kexue::Array::of(bad, {1, 4}),
                                    kexue::Array::of(lout, {1, 1}), nullptr);
      },
      kexue::ErrorKind::Index, "[kexue.global_pointer.loss] spans end must be in [0, 2); got 2",
      "global_pointer.loss: an end outside [0, T) throws IndexError-kind");
}

// parallel_for: every chunk runs once, and an exception thrown in a worker
// reaches the caller (the lowest failing chunk's), with the pool usable after.
void run_parallel() {
  const int before = kexue::get_num_threads();
  kexue::set_num_threads(2);
  std::vector<int> hits(1000, 0);
  kexue::parallel_for(1000, 7, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) hits[static_cast<std::size_t>(i)] += 1;
  });
  bool once = true;
  for (int h : hits) once = once && h == 1;
  check(once, "parallel_for visits every index exactly once");
  std::string what;
  try {
    kexue::parallel_for(100, 1, [](std::int64_t b, std::int64_t) {
      if (b == 37 || b == 90) throw std::runtime_error("chunk " + std::to_string(b));
    });
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  check(what == "chunk 37", "an exception inside parallel_for reaches the caller (lowest chunk)");
  int sum = 0;
  kexue::parallel_for(10, 1, [&](std::int64_t, std::int64_t) { __atomic_add_fetch(&sum, 1, __ATOMIC_RELAXED); });
  check(sum == 10, "the pool works after an exception");
  kexue::set_num_threads(before);
}

// The optimizers through the installed package: AdamW's two steps of spec C2,
// Philox's known answer, and a bad call that throws before writing anything.
void run_optim() {
  double p[3] = {0.5, -1.0, 2.0}, m[3] = {}, v[3] = {};
  const double g1[3] = {0.1, -0.2, 0.3}, g2[3] = {-0.05, 0.1, 0.4};
  const double* gs[2] = {g1, g2};
  for (int t = 1; t <= 2; ++t) {
    kexue::optim::Slot sl;
    sl.param = kexue::Array::of(p, {3});
    sl.grad = kexue::Array::of(gs[t - 1], {3});
    sl.state = {kexue::Array::of(m, {3}), kexue::Array::of(v, {3})};
    kexue::optim::AdamOptions o;
    o.weight_decay = 0.01;
    o.decoupled = true;
    kexue::optim::StepInfo si;
    si.step = t;
    kexue::optim::adam({sl}, o, si);
  }
  check_close(p[0], 0.49872367, 1e-8, "optim.adam (AdamW) step 2 p[0] == 0.49872367");
  check_close(p[2], 1.99796269, 1e-8, "optim.adam (AdamW) step 2 p[2] == 1.99796269");
  std::uint32_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  kexue::philox4x32_10(c0, c1, c2, c3, 0, 0);
  check(c0 == 0x6627e8d5u && c1 == 0xe169c58du && c2 == 0xbc57ac4cu && c3 == 0x9b00dbd8u,
        "philox4x32_10 known answer (Random123)");
  const double before = p[0];
  kexue::optim::Slot bad;
  bad.param = kexue::Array::of(p, {3});
  bad.grad = kexue::Array::of(g1, {3});
  bad.state = {kexue::Array::of(m, {3}), kexue::Array::of(v, {2})};
  expect_error(
      [&] { kexue::optim::adam({bad}, kexue::optim::AdamOptions{}, kexue::optim::StepInfo{}); },
      kexue::ErrorKind::Value, "[kexue.optim.adam_] exp_avg_sqs[0] must have shape (3,)",
      "optim.adam: a state of the wrong shape throws ValueError-kind");
  check(p[0] == before, "optim.adam: a failing call leaves the params unchanged");
}

// Attention through the installed package: spec B2's worked example (UniLM
// mask from segment ids, causal), B5's RoPE numbers, decode against the last
// causal row, a backward identity and a bad head ratio.
void run_attention() {
  namespace at = kexue::attention;
  const double Q[12] = {1, 0, 1, 0, 1, 0, 1, 1, 0, 0.5, -0.5, 1};
  const double K[12] = {1, 1, 0, 0, 1, 1, 1, 0, 1, -1, 0.5, 0.5};
  const double V[8] = {1, 2, 0, 1, -1, 0, 2, -1};
  const std::int64_t seg[4] = {0, 0, 1, 1};
  double out[8], lse[4];
  at::Options o;
  o.segment_ids = kexue::Array::of(seg, {1, 4});
  at::sdpa(kexue::Array::of(Q, {1, 1, 4, 3}), kexue::Array::of(K, {1, 1, 4, 3}),
           kexue::Array::of(V, {1, 1, 4, 2}), o, kexue::Array::of(out, {1, 1, 4, 2}), nullptr);
  const double want[8] = {0.5, 1.5, 0.5, 1.5, 0.206625, 1.206625, 0.063422, 0.442667};
  for (int i = 0; i < 8; ++i)
    check_close(out[i], want[i], 2e-6, "attention.sdpa UniLM (spec B2) out[" + std::to_string(i) + "]");
  at::Options c;
  c.causal = true;
  const kexue::Array lv = kexue::Array::of(lse, {1, 1, 4});
  at::sdpa(kexue::Array::of(Q, {1, 1, 4, 3}), kexue::Array::of(K, {1, 1, 4, 3}),
           kexue::Array::of(V, {1, 1, 4, 2}), c, kexue::Array::of(out, {1, 1, 4, 2}), &lv);
  check_close(out[0], 1.0, 1e-12, "attention.sdpa causal row 0 == v_0");
  check_close(out[6], 0.063422, 2e-6, "attention.sdpa causal row 3 (spec B2)");
  // decode of the last query against the 4 keys == the causal row 3
  const std::int64_t len[1] = {4};
  double dout_[2], dlse[1];
  const kexue::Array dl = kexue::Array::of(dlse, {1, 1});
  at::decode(kexue::Array::of(Q + 9, {1, 1, 3}), kexue::Array::of(K, {1, 1, 4, 3}),
             kexue::Array::of(V, {1, 1, 4, 2}), kexue::Array::of(len, {1}), at::DecodeOptions{},
             kexue::Array::of(dout_, {1, 1, 2}), &dl);
  check_close(dout_[0], out[6], 1e-12, "attention.decode == the last causal row (out)");
  check_close(dlse[0], lse[3], 1e-12, "attention.decode == the last causal row (lse)");
  // backward: with every row seeing a key, sum_j dv_j = sum_i dout_i
  const double G[8] = {1, -2, 0.5, 3, -1, 1, 2, 0.25};
  double dq[12], dk[12], dv[8];
  at::sdpa_backward(kexue::Array::of(Q, {1, 1, 4, 3}), kexue::Array::of(K, {1, 1, 4, 3}),
                    kexue::Array::of(V, {1, 1, 4, 2}), kexue::Array::of(out, {1, 1, 4, 2}), lv,
                    kexue::Array::of(G, {1, 1, 4, 2}), c, kexue::Array::of(dq, {1, 1, 4, 3}),
                    kexue::Array::of(dk, {1, 1, 4, 3}), kexue::Array::of(dv, {1, 1, 4, 2}));
  check_close(dv[0] + dv[2] + dv[4] + dv[6], 1 + 0.5 - 1 + 2, 1e-12,
              "attention.sdpa_backward: sum of dv == sum of dout");
  // causal row 0 sees key 0 alone (probability 1 whatever q_0): dq_0 = 0
  check(std::fabs(dq[0]) + std::fabs(dq[1]) + std::fabs(dq[2]) < 1e-15,
        "attention.sdpa_backward: dq of a row with one visible key is 0");
  // RoPE: spec B5, x = [1,2,3,4] at position 2
  const double x[4] = {1, 2, 3, 4}, pos[1] = {2};
  double y[4];
  at::rope(kexue::Array::of(x, {1, 1, 4}), kexue::Array::of(pos, {1, 1}), 10000.0, true,
           kexue::Array::of(y, {1, 1, 4}));
  const double wi[4] = {-2.234742, 0.077004, 2.919405, 4.059196};
  for (int i = 0; i < 4; ++i) check_close(y[i], wi[i], 2e-6, "attention.rope interleaved (spec B5)");
  at::rope(kexue::Array::of(x, {1, 1, 4}), kexue::Array::of(pos, {1, 1}), 10000.0, false,
           kexue::Array::of(y, {1, 1, 4}));
  const double wh[4] = {-3.144039, 1.919605, -0.339143, 4.039197};
  for (int i = 0; i < 4; ++i) check_close(y[i], wh[i], 2e-6, "attention.rope rotate-half (spec B5)");
  double q2[2 * 3 * 4 * 2] = {}, k2[2 * 2 * 4 * 2] = {}, o2[2 * 3 * 4 * 2];
  expect_error(
      [&] {
        at::sdpa(kexue::Array::of(q2, {2, 3, 4, 2}), kexue::Array::of(k2, {2, 2, 4, 2}),
                 kexue::Array::of(k2, {2, 2, 4, 2}), at::Options{},
                 kexue::Array::of(o2, {2, 3, 4, 2}), nullptr);
      },
      kexue::ErrorKind::Value, "[kexue.attention.sdpa] k's head count Hkv must divide q's H = 3",
      "attention.sdpa: a head count that does not divide throws ValueError-kind");
}

// The samplers through the installed package: heat-bath Ising at beta = 0 is
// a fair coin per site, Metropolis on N(0, 1) has the right moments, the
// spin-glass annealer finds a ferromagnet's ground state, and a bad call
// throws before any work.
void run_samplers() {
  namespace sm = kexue::samplers;
  const std::int64_t C = 4, H = 16, W = 16, S = 50;
  std::vector<std::int8_t> spins(static_cast<std::size_t>(C * H * W));
  std::vector<double> mag(C * S), en(C * S);
  sm::LatticeOptions lo;
  lo.beta = 0.0;
  lo.n_sweeps = S;
  lo.seed = 7;
  sm::gibbs_ising(kexue::Array::of(spins.data(), {C, H, W}), lo, kexue::Array::of(mag.data(), {C, S}),
                  kexue::Array::of(en.data(), {C, S}));
  double m = 0.0, m2 = 0.0;
  for (double v : mag) {
    m += v;
    m2 += v * v;
  }
  m /= static_cast<double>(mag.size());
  m2 /= static_cast<double>(mag.size());
  // independent fair spins: mean 0, E[m^2] = 1/(H W); 200 draws of m
  check(std::fabs(m) < 4.0 * std::sqrt(1.0 / (H * W) / 200.0), "samplers.gibbs_ising beta=0: mean magnetisation ~ 0");
  check(std::fabs(m2 * H * W - 1.0) < 0.35, "samplers.gibbs_ising beta=0: E[m^2] = 1/(H W)");
  sm::Target t;
  t.kind = sm::TargetKind::Gaussian;
  t.mean = {0.0};
  t.chol = {1.0};
  sm::MetropolisOptions mo;
  mo.step_size = {2.4};
  mo.burn = 200;
  mo.seed = 3;
  const std::int64_t MC = 64, n = 2000;
  std::vector<double> x0(MC, 0.0), samples(MC * n), lp(MC * n), acc(MC), st(MC);
  sm::metropolis(t, kexue::Array::of(x0.data(), {MC, 1}), n, mo, kexue::Array::of(samples.data(), {MC, n, 1}),
                 kexue::Array::of(lp.data(), {MC, n}), kexue::Array::of(acc.data(), {MC}),
                 kexue::Array::of(st.data(), {MC}));
  double s1 = 0.0, s2 = 0.0;
  for (double v : samples) {
    s1 += v;
    s2 += v * v;
  }
  s1 /= static_cast<double>(samples.size());
  s2 /= static_cast<double>(samples.size());
  check(std::fabs(s1) < 0.05 && std::fabs(s2 - 1.0) < 0.06, "samplers.metropolis N(0,1): mean 0, variance 1");
  // a 4-spin ferromagnetic ring in a field 0.1: ground energy -4.4 (all up)
  const double J[16] = {0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0};
  const double h[4] = {0.1, 0.1, 0.1, 0.1};  // breaks the dE = 0 cycles of a bare ring
  std::int8_t s0[8] = {1, -1, 1, -1, -1, 1, -1, 1}, best[8];
  std::vector<double> temps(100), be(2), et(200);
  for (int i = 0; i < 100; ++i) temps[static_cast<std::size_t>(i)] = 2.0 * std::pow(0.01, i / 99.0);
  sm::anneal_spins(kexue::Array::of(J, {4, 4}), kexue::Array::of(h, {4}), kexue::Array::of(s0, {2, 4}),
                   kexue::Array::of(temps.data(), {100}), 1, 0, kexue::Array::of(best, {2, 4}),
                   kexue::Array::of(be.data(), {2}), kexue::Array::of(et.data(), {2, 100}));
  check(std::fabs(be[0] + 4.4) < 1e-12 && std::fabs(be[1] + 4.4) < 1e-12,
        "samplers.anneal_spins: a ferromagnetic ring's ground state (all up, E = -4.4)");
  std::int8_t odd[2 * 5 * 6] = {};
  expect_error(
      [&] {
        sm::gibbs_ising(kexue::Array::of(odd, {2, 5, 6}), lo, kexue::Array::of(mag.data(), {2, 1}),
                        kexue::Array::of(en.data(), {2, 1}));
      },
      kexue::ErrorKind::Value, "[kexue.samplers.gibbs_ising] shape must be even in both axes",
      "samplers.gibbs_ising: an odd lattice throws ValueError-kind");
}

// kexue.text through the installed package: Kneser-Ney conditionals sum to 1,
// a sentence's log probability is the sum of its positions, save/load keeps
// every number, a truncated file is refused, and the sampler keeps its
// keywords in every accepted state.
void run_text() {
  namespace tx = kexue::text;
  const std::vector<std::int64_t> tok = {0, 1, 2, 3, 0, 1, 1, 2, 2, 0, 3, 1, 0, 2};
  const std::vector<std::int64_t> off = {0, 4, 8, 10, 14};
  const tx::NGramModel lm = tx::NGramModel::fit(tok.data(), off.data(), 4, 3, 5);
  std::vector<double> nl(6), pos(4);
  const std::int64_t prefix[3] = {0, 1, 4};
  double worst = 0.0;
  for (std::int64_t n = 0; n <= 3; ++n) {
    lm.next_logprobs(prefix, n, nl.data());
    double s = 0.0;
    for (double v : nl) s += std::exp(v);
    worst = std::max(worst, std::fabs(s - 1.0));
  }
  check(worst < 1e-12, "text.NGramModel: p(. | prefix) sums to 1 over tokens and end");
  const std::int64_t x[3] = {0, 1, 2};
  lm.position_logprobs(x, 3, pos.data());
  check(std::fabs(pos[0] + pos[1] + pos[2] + pos[3] - lm.logprob(x, 3)) == 0.0,
        "text.NGramModel: logprob is the sum of the position log probabilities");
  const std::string path = "kexue_embed_test.kxlm";
  lm.save(path);
  const tx::NGramModel back = tx::NGramModel::load(path);
  check(back.logprob(x, 3) == lm.logprob(x, 3) && back.discounts() == lm.discounts(),
        "text.NGramModel: save/load round trip");
  {
    std::FILE* f = std::fopen(path.c_str(), "r+b");
    std::fseek(f, 0, SEEK_END);
    const long size = std::ftell(f);
    std::fclose(f);
    std::vector<char> buf(static_cast<std::size_t>(size));
    f = std::fopen(path.c_str(), "rb");
    const std::size_t got = std::fread(buf.data(), 1, buf.size(), f);
    std::fclose(f);
    f = std::fopen(path.c_str(), "wb");
    std::fwrite(buf.data(), 1, got - 3, f);
    std::fclose(f);
  }
  expect_error([&] { tx::NGramModel::load(path); }, kexue::ErrorKind::Value, "[kexue.text.NGramLM.load]",
               "text.NGramModel.load: a truncated file throws ValueError-kind");
  std::remove(path.c_str());
  tx::GenerateOptions o;
  o.n_steps = 300;
  o.chains = 4;
  o.topk = 3;
  o.max_len = 8;
  const tx::GenerateResult r = tx::generate(lm, {{3}, {1, 2}}, o);
  bool kept = r.proposed[0] + r.proposed[1] + r.proposed[2] > 0;
  for (const auto& c : r.chains)
    for (std::size_t a = 0; a + 1 < c.traj_offsets.size(); ++a) {
      const std::vector<std::int64_t> s(c.traj_tokens.begin() + c.traj_offsets[a],
                                        c.traj_tokens.begin() + c.traj_offsets[a + 1]);
      std::size_t k = 0;
      while (k < s.size() && s[k] != 3) ++k;
      std::size_t j = k + 1;
      while (j + 1 < s.size() && !(s[j] == 1 && s[j + 1] == 2)) ++j;
      kept = kept && k < s.size() && j + 1 < s.size() && s.size() <= 8;
    }
  check(kept, "text.generate: every accepted state holds the keywords in order");
}

}  // namespace

int main() {
  std::printf("kexue %s (simd %s, %d threads)\n", kexue::version(), kexue::simd_level(),
              kexue::get_num_threads());
  check(std::string(kexue::version()) == KEXUE_VERSION_STRING,
        "kexue::version() matches the headers' KEXUE_VERSION_STRING");
  run_suite<float>("float32", 1e-5);
  run_suite<double>("float64", 1e-12);
  run_errors();
  run_parallel();
  run_spans();
  run_optim();
  run_attention();
  run_samplers();
  run_text();
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
