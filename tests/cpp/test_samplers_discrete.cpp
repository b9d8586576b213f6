// tests/cpp/test_samplers_discrete.cpp - kexue::samplers::gibbs_mrf and ::lda
// through the public C++ API (kexue/samplers.hpp) and the draw helper of
// kexue/samplers/discrete.hpp:
//  - draw_cumulative == its definition (smallest a with u*Z < c[a]) on 200k
//    random weight vectors with ties and zeros, u = 0 and u = 1 - 2^-53 included;
//  - MRF N=6, S=3 (cycle + chord, per-edge potentials): marginals of 64 chains
//    x 2000 sweeps vs brute-force enumeration of the 729 states within 4 SE;
//    counts == histogram of samples; 1 vs 2 threads (shared potentials, and a
//    4000-node ring + chords where 2 threads run the nodes of a colour class);
//    chain_offset split == one call; record_every; init; bad inputs (kind + text);
//  - LDA: 300 docs x 80 tokens from 5 planted topics over V=50 words: AD-LDA
//    recovers every topic (matched TV < 0.1), loglik rises; counts consistent
//    with the topics; 1 vs 2 threads bitwise (AD-LDA and exact); bad inputs;
//  - `bench`: 2000 docs x 100 tokens, K=20, V=2000, 50 iterations, tokens/s.
// Built with the embedding test (tests/cpp/CMakeLists.txt) and run by ctest;
// `kexue_samplers_discrete_test bench [threads [reps]]` times LDA.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kexue/core/parallel.hpp"
#include "kexue/samplers.hpp"
#include "kexue/samplers/discrete.hpp"

using namespace kexue;
using namespace kexue::samplers;

static int failures = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      ++failures;                                          \
      std::printf("FAIL %s:%d: %s ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                            \
      std::printf("\n");                                   \
    }                                                      \
  } while (0)

struct MrfOut {
  std::vector<std::int32_t> states, samples;
  std::vector<std::int64_t> counts;
};

static MrfOut run_mrf(const std::vector<double>& unary, std::int64_t N, std::int64_t S,
                      const std::vector<std::int64_t>& edges, const std::vector<double>& pw,
                      bool per_edge, std::int64_t C, MrfOptions o, const std::vector<std::int32_t>* init = nullptr) {
  const std::int64_t E = static_cast<std::int64_t>(edges.size() / 2);
  MrfOut r;
  r.states.assign(static_cast<std::size_t>(C * N), 0);
  if (init) {
    r.states = *init;
    o.init_given = true;
  }
  const std::int64_t R = o.n_sweeps / o.record_every;
  r.samples.assign(static_cast<std::size_t>(C * R * N), -1);
  r.counts.assign(static_cast<std::size_t>(N * S), -1);
  Array pa = per_edge ? Array(const_cast<double*>(pw.data()), DType::Float64,
                              {static_cast<std::int64_t>(pw.size()) / (S * S), S, S})
                      : Array(const_cast<double*>(pw.data()), DType::Float64, {S, S});
  gibbs_mrf(Array(const_cast<double*>(unary.data()), DType::Float64, {N, S}),
            Array(const_cast<std::int64_t*>(edges.data()), DType::Int64, {E, 2}), pa, o,
            Array(r.states.data(), DType::Int32, {C, N}), Array(r.samples.data(), DType::Int32, {C, R, N}),
            Array(r.counts.data(), DType::Int64, {N, S}));
  return r;
}

template <class F>
static std::string error_of(F&& f, ErrorKind* kind = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "";
}

static void test_mrf() {
  const std::int64_t N = 6, S = 3;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> unary(N * S), pw(8 * S * S);
  for (auto& v : unary) v = 0.7 * nd(rng);
  for (auto& v : pw) v = 0.8 * nd(rng);
  // cycle 0-1-2-3-4-5-0 plus chord (0, 3); edges given in mixed orientation
  std::vector<std::int64_t> edges = {0, 1, 2, 1, 2, 3, 3, 4, 5, 4, 5, 0, 0, 3};
  const std::int64_t E = 7;
  pw.resize(E * S * S);
  // brute force
  std::vector<double> marg(N * S, 0.0);
  double Z = 0.0;
  for (int code = 0; code < 729; ++code) {
    int x[6];
    for (int i = 0, c = code; i < 6; ++i, c /= 3) x[i] = c % 3;
    double lp = 0.0;
    for (int i = 0; i < 6; ++i) lp += unary[i * S + x[i]];
    for (int e = 0; e < E; ++e) lp += pw[e * S * S + x[edges[2 * e]] * S + x[edges[2 * e + 1]]];
    const double w = std::exp(lp);
    Z += w;
    for (int i = 0; i < 6; ++i) marg[i * S + x[i]] += w;
  }
  for (auto& m : marg) m /= Z;
  MrfOptions o;
  o.n_sweeps = 2000;
  o.seed = 11;
  const std::int64_t C = 64;
  set_num_threads(2);
  MrfOut r = run_mrf(unary, N, S, edges, pw, true, C, o);
  // counts == histogram of samples
  std::vector<std::int64_t> cnt(N * S, 0);
  for (std::int64_t i = 0; i < C * o.n_sweeps * N; ++i) ++cnt[(i % N) * S + r.samples[i]];
  CHECK(cnt == r.counts, "counts differ from the samples' histogram");
  // per-chain frequencies -> SE across chains
  double worst = 0.0;
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t a = 0; a < S; ++a) {
      std::vector<double> f(C, 0.0);
      for (std::int64_t c = 0; c < C; ++c) {
        for (std::int64_t s = 100; s < o.n_sweeps; ++s) f[c] += r.samples[(c * o.n_sweeps + s) * N + i] == a;
        f[c] /= double(o.n_sweeps - 100);
      }
      double m = 0, v = 0;
      for (double x : f) m += x;
      m /= C;
      for (double x : f) v += (x - m) * (x - m);
      const double se = std::sqrt(v / (C - 1) / C);
      const double zsc = std::fabs(m - marg[i * S + a]) / se;
      worst = std::max(worst, zsc);
      CHECK(zsc < 4.0, "node %ld state %ld: %.5f vs exact %.5f (se %.5f)", long(i), long(a), m, marg[i * S + a], se);
    }
  std::printf("mrf marginals: worst |z| = %.2f\n", worst);
  // shared pairwise too runs
  std::vector<double> pws(pw.begin(), pw.begin() + S * S);
  set_num_threads(1);
  MrfOut a1 = run_mrf(unary, N, S, edges, pws, false, 8, o);
  set_num_threads(2);
  MrfOut a2 = run_mrf(unary, N, S, edges, pws, false, 8, o);
  CHECK(a1.samples == a2.samples && a1.counts == a2.counts, "threads differ (shared)");
  MrfOut b1 = run_mrf(unary, N, S, edges, pws, false, 3, o);
  MrfOptions o2 = o;
  o2.chain_offset = 3;
  MrfOut b2 = run_mrf(unary, N, S, edges, pws, false, 5, o2);
  std::vector<std::int32_t> cat(b1.samples);
  cat.insert(cat.end(), b2.samples.begin(), b2.samples.end());
  CHECK(cat == a2.samples, "chain_offset split differs from one call");
  // record_every
  MrfOptions o3 = o;
  o3.n_sweeps = 10;
  o3.record_every = 3;
  MrfOut c3 = run_mrf(unary, N, S, edges, pws, false, 2, o3);
  MrfOptions o4 = o;
  o4.n_sweeps = 10;
  MrfOut c4 = run_mrf(unary, N, S, edges, pws, false, 2, o4);
  bool ok = true;
  for (int c = 0; c < 2; ++c)
    for (int r_ = 0; r_ < 3; ++r_)
      for (int i = 0; i < N; ++i)
        ok &= c3.samples[(c * 3 + r_) * N + i] == c4.samples[(c * 10 + 3 * r_ + 2) * N + i];
  CHECK(ok, "record_every picks the wrong sweeps");
  CHECK(std::equal(c3.states.begin(), c3.states.end(), c4.states.begin()), "final state");
  // init given: continuing from a state
  MrfOut d = run_mrf(unary, N, S, edges, pws, false, 2, o4, &c4.states);
  CHECK(d.samples.size() == c4.samples.size(), "init run");
  // big graph: node-parallel (2 threads, 1 chain) == chain mode (1 thread)
  {
    const std::int64_t N2 = 4000, S2 = 4;
    std::vector<double> u2(N2 * S2);
    for (auto& v : u2) v = nd(rng);
    std::vector<std::int64_t> e2;
    for (std::int64_t i = 0; i < N2; ++i) {
      e2.push_back(i);
      e2.push_back((i + 1) % N2);
      e2.push_back(i);
      e2.push_back((i * 7 + 13) % N2 == i ? (i + 2) % N2 : (i * 7 + 13) % N2);
    }
    std::vector<double> p2(S2 * S2);
    for (auto& v : p2) v = nd(rng);
    MrfOptions ob;
    ob.n_sweeps = 20;
    ob.seed = 5;
    set_num_threads(1);
    MrfOut x1 = run_mrf(u2, N2, S2, e2, p2, false, 1, ob);
    set_num_threads(2);
    MrfOut x2 = run_mrf(u2, N2, S2, e2, p2, false, 1, ob);
    CHECK(x1.samples == x2.samples && x1.counts == x2.counts, "node-parallel != chain mode");
  }
  // errors
  ErrorKind k = ErrorKind::Type;
  std::string m;
  std::vector<std::int64_t> bad = {0, 6};
  m = error_of([&] { run_mrf(unary, N, S, bad, pws, false, 1, o4); }, &k);
  CHECK(k == ErrorKind::Index && m.find("edges") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  bad = {2, 2};
  m = error_of([&] { run_mrf(unary, N, S, bad, pws, false, 1, o4); }, &k);
  CHECK(k == ErrorKind::Value && m.find("self-loop") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  std::vector<double> un = unary;
  un[4] = NAN;
  m = error_of([&] { run_mrf(un, N, S, edges, pws, false, 1, o4); }, &k);
  CHECK(k == ErrorKind::Value && m.find("unary must be finite") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  m = error_of([&] { run_mrf(unary, N, S, edges, pw, false, 1, o4); }, &k);  // [S,S] view of wrong data is fine
  m = error_of([&] {
    std::vector<double> pw2(2 * S * S);
    run_mrf(unary, N, S, edges, pw2, true, 1, o4);
  }, &k);
  CHECK(k == ErrorKind::Value && m.find("pairwise must have shape") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  m = error_of([&] {
    std::vector<double> u1(N);
    std::vector<double> p1(1);
    run_mrf(u1, N, 1, edges, p1, false, 1, o4);
  }, &k);
  CHECK(k == ErrorKind::Value && m.find("S >= 2") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  m = error_of([&] {
    std::vector<std::int32_t> ini(2 * N, 3);
    run_mrf(unary, N, S, edges, pws, false, 2, o4, &ini);
  }, &k);
  CHECK(k == ErrorKind::Value && m.find("init states") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
}

// ---------------------------------------------------------------------------

struct Corpus {
  std::vector<std::int64_t> indptr;
  std::vector<std::int32_t> words;
  std::vector<double> phi;  // [K,V]
};

static Corpus make_corpus(std::int64_t D, std::int64_t L, std::int64_t K, std::int64_t V, double a, std::uint64_t s) {
  std::mt19937_64 rng(s);
  Corpus c;
  c.phi.assign(K * V, 0.0);
  // planted topics: each concentrated on its own band of words plus a Dirichlet-ish spread
  std::gamma_distribution<double> gd(0.1, 1.0);
  for (std::int64_t k = 0; k < K; ++k) {
    double tot = 0;
    for (std::int64_t w = 0; w < V; ++w) tot += c.phi[k * V + w] = gd(rng);
    for (std::int64_t w = 0; w < V; ++w) c.phi[k * V + w] /= tot;
  }
  std::gamma_distribution<double> ga(a, 1.0);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  c.indptr.push_back(0);
  for (std::int64_t d = 0; d < D; ++d) {
    std::vector<double> th(K);
    double tot = 0;
    for (auto& t : th) tot += t = ga(rng);
    for (auto& t : th) t /= tot;
    for (std::int64_t l = 0; l < L; ++l) {
      double u = ud(rng);
      std::int64_t k = 0;
      while (k < K - 1 && u >= th[k]) u -= th[k++];
      double v = ud(rng);
      std::int64_t w = 0;
      while (w < V - 1 && v >= c.phi[k * V + w]) v -= c.phi[k * V + w++];
      c.words.push_back(static_cast<std::int32_t>(w));
    }
    c.indptr.push_back(static_cast<std::int64_t>(c.words.size()));
  }
  return c;
}

struct LdaOut {
  std::vector<std::int32_t> z, dk, kw;
  std::vector<double> ll;
};

static LdaOut run_lda(const Corpus& c, std::int64_t K, std::int64_t V, const LdaOptions& o) {
  const std::int64_t D = static_cast<std::int64_t>(c.indptr.size()) - 1, T = static_cast<std::int64_t>(c.words.size());
  LdaOut r;
  r.z.assign(T, -1);
  r.dk.assign(D * K, -1);
  r.kw.assign(K * V, -1);
  r.ll.assign(o.n_iter, 0.0);
  lda(Array(const_cast<std::int64_t*>(c.indptr.data()), DType::Int64, {D + 1}),
      Array(const_cast<std::int32_t*>(c.words.data()), DType::Int32, {T}), K, o,
      Array(r.z.data(), DType::Int32, {T}), Array(r.dk.data(), DType::Int32, {D, K}),
      Array(r.kw.data(), DType::Int32, {K, V}), Array(r.ll.data(), DType::Float64, {o.n_iter}));
  return r;
}

static double best_match_tv(const std::vector<double>& planted, const LdaOut& r, std::int64_t K, std::int64_t V,
                            double eta, double* worst) {
  // brute force over permutations (K = 5)
  std::vector<double> phi(K * V);
  for (std::int64_t k = 0; k < K; ++k) {
    double tot = 0;
    for (std::int64_t w = 0; w < V; ++w) tot += r.kw[k * V + w];
    for (std::int64_t w = 0; w < V; ++w) phi[k * V + w] = (r.kw[k * V + w] + eta) / (tot + V * eta);
  }
  std::vector<double> tv(K * K);
  for (std::int64_t i = 0; i < K; ++i)
    for (std::int64_t j = 0; j < K; ++j) {
      double s = 0;
      for (std::int64_t w = 0; w < V; ++w) s += std::fabs(planted[i * V + w] - phi[j * V + w]);
      tv[i * K + j] = 0.5 * s;
    }
  std::vector<int> perm(K);
  std::iota(perm.begin(), perm.end(), 0);
  double best = 1e9;
  do {
    double mx = 0;
    for (std::int64_t i = 0; i < K; ++i) mx = std::max(mx, tv[i * K + perm[i]]);
    best = std::min(best, mx);
  } while (std::next_permutation(perm.begin(), perm.end()));
  *worst = best;
  return best;
}

static void test_lda() {
  const std::int64_t K = 5, V = 50;
  Corpus c = make_corpus(300, 80, K, V, 0.1, 3);
  LdaOptions o;
  o.n_iter = 300;
  o.seed = 1;
  o.alpha = 0.1;
  o.eta = 0.01;
  set_num_threads(2);
  auto t0 = std::chrono::steady_clock::now();
  LdaOut r = run_lda(c, K, V, o);
  auto t1 = std::chrono::steady_clock::now();
  double worst;
  best_match_tv(c.phi, r, K, V, o.eta, &worst);
  std::printf("lda AD: max matched TV = %.4f, loglik %.1f -> %.1f -> %.1f (%.1f ms)\n", worst, r.ll[0], r.ll[10],
              r.ll.back(), std::chrono::duration<double, std::milli>(t1 - t0).count());
  CHECK(worst < 0.1, "TV %.4f", worst);
  CHECK(r.ll.back() > r.ll[0] + 100, "loglik did not increase");
  // counts consistency
  {
    std::vector<std::int32_t> kw(K * V, 0), dk(300 * K, 0);
    for (std::int64_t d = 0; d < 300; ++d)
      for (std::int64_t t = c.indptr[d]; t < c.indptr[d + 1]; ++t) {
        ++kw[r.z[t] * V + c.words[t]];
        ++dk[d * K + r.z[t]];
      }
    CHECK(kw == r.kw && dk == r.dk, "counts inconsistent with topics");
  }
  set_num_threads(1);
  LdaOut r1 = run_lda(c, K, V, o);
  CHECK(r1.z == r.z && r1.ll == r.ll && r1.kw == r.kw && r1.dk == r.dk, "AD-LDA differs across threads");
  o.exact = true;
  LdaOut e1 = run_lda(c, K, V, o);
  set_num_threads(2);
  LdaOut e2 = run_lda(c, K, V, o);
  CHECK(e1.z == e2.z && e1.ll == e2.ll, "exact differs across threads");
  best_match_tv(c.phi, e1, K, V, o.eta, &worst);
  std::printf("lda exact: max matched TV = %.4f, loglik %.1f -> %.1f\n", worst, e1.ll[0], e1.ll.back());
  // (sequential collapsed Gibbs may settle in a split/merge local mode: not checked)
  // n_iter = 0: the random start
  {
    LdaOptions oz;
    oz.n_iter = 0;
    LdaOut a = run_lda(c, K, V, oz);
    CHECK(a.ll.empty() && a.z.size() == c.words.size(), "n_iter 0");
  }
  // errors
  ErrorKind k = ErrorKind::Type;
  std::string m;
  LdaOptions ob;
  ob.n_iter = 2;
  Corpus bad = c;
  bad.words[5] = -1;
  m = error_of([&] { run_lda(bad, K, V, ob); }, &k);
  CHECK(k == ErrorKind::Index && m.find("word ids") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  m = error_of([&] { run_lda(c, 0, V, ob); }, &k);
  CHECK(k == ErrorKind::Value && m.find("n_topics") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  LdaOptions oa = ob;
  oa.alpha = 0.0;
  m = error_of([&] { run_lda(c, K, V, oa); }, &k);
  CHECK(k == ErrorKind::Value && m.find("alpha") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  Corpus empty;
  empty.indptr = {0};
  m = error_of([&] { run_lda(empty, K, V, ob); }, &k);
  CHECK(k == ErrorKind::Value && m.find("at least one document") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
  Corpus empty2;
  empty2.indptr = {0, 0, 0};
  m = error_of([&] { run_lda(empty2, K, V, ob); }, &k);
  CHECK(k == ErrorKind::Value && m.find("at least one token") != std::string::npos, "%s", m.c_str());
  std::printf("  %s\n", m.c_str());
}

static void bench_lda(int only_threads, int reps) {
  const std::int64_t K = 20, V = 2000;
  Corpus c = make_corpus(2000, 100, K, V, 0.1, 5);
  for (int th : {1, 2}) {
    if (only_threads && th != only_threads) continue;
    set_num_threads(th);
    for (bool exact : {false, true}) {
      if (exact && th == 2) continue;
      LdaOptions o;
      o.n_iter = 50;
      o.exact = exact;
      double best = 1e9;
      for (int r = 0; r < reps; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        LdaOut out = run_lda(c, K, V, o);
        auto t1 = std::chrono::steady_clock::now();
        best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
      }
      std::printf("bench lda 2000x100 K=20 V=%ld %s threads=%d: best of %d %.3f s, %.2f M token updates/s\n", long(V),
                  exact ? "exact" : "AD", th, reps, best, 2000.0 * 100 * o.n_iter / best / 1e6);
    }
  }
}

static void test_draw() {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int> small(0, 3);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  int bad = 0;
  for (int rep = 0; rep < 200000; ++rep) {
    const int n = 1 + rep % 23;
    double c[32];
    for (int k = 0; k < n; ++k) c[k] = small(rng);  // ties and zeros
    c[n - 1] += 1.0;
    cumulate(c, n);
    const double u = rep % 7 == 0 ? 1.0 - 0x1p-53 : (rep % 11 == 0 ? 0.0 : ud(rng));
    const double t = u * c[n - 1];
    int want = -1;
    for (int k = 0; k < n; ++k)
      if (t < c[k]) { want = k; break; }
    if (want < 0) {
      want = n - 1;
      while (want > 0 && !(c[want] > c[want - 1])) --want;
    }
    bad += draw_cumulative(c, n, u) != want;
  }
  CHECK(bad == 0, "draw_cumulative differs from its definition %d times", bad);
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "bench") {
    bench_lda(argc > 2 ? std::atoi(argv[2]) : 0, argc > 3 ? std::atoi(argv[3]) : 1);
    return 0;
  }
  test_draw();
  test_mrf();
  test_lda();
  std::printf(failures ? "%d FAILURES\n" : "all passed\n", failures);
  return failures ? 1 : 0;
}
