// csrc/api/samplers.cpp - the front door of kexue::samplers: every check,
// then the one dispatch point (the CPU backend).
#include "kexue/samplers.hpp"

#include <cmath>

#include "api/checks.hpp"
#include "cpu/samplers.hpp"

namespace kexue {
namespace samplers {

namespace {

void check_finite(const char* op, const std::vector<double>& v, const char* name) {
  for (std::size_t i = 0; i < v.size(); ++i)
    KX_CHECK_VALUE(std::isfinite(v[i]), op, name, " must be finite; got ", v[i], " at ", i);
}

void check_chol(const char* op, const std::vector<double>& L, std::int64_t D, std::int64_t count,
                const char* name) {
  KX_CHECK_VALUE(static_cast<std::int64_t>(L.size()) == count * D * D, op, name,
                 " must hold ", count, " lower Cholesky factors of shape (", D, ", ", D, ")");
  check_finite(op, L, name);
  for (std::int64_t k = 0; k < count; ++k)
    for (std::int64_t i = 0; i < D; ++i)
      KX_CHECK_VALUE(L[static_cast<std::size_t>((k * D + i) * D + i)] > 0.0, op, name,
                     " must be positive definite (a Cholesky factor with a positive diagonal)");
}

void check_target(const char* op, const Target& t, std::int64_t D) {
  switch (t.kind) {
    case TargetKind::Callable:
      KX_CHECK_VALUE(static_cast<bool>(t.fn), op, "target must be callable or a built-in target");
      break;
    case TargetKind::Gaussian:
      KX_CHECK_VALUE(static_cast<std::int64_t>(t.mean.size()) == D, op,
                     "target's mean must have D = ", D, " entries (x0's last axis); got ", t.mean.size());
      check_finite(op, t.mean, "target's mean");
      check_chol(op, t.chol, D, 1, "target's cov");
      break;
    case TargetKind::Rosenbrock:
      KX_CHECK_VALUE(D >= 2, op, "x0 must have D >= 2 for the Rosenbrock target; got D = ", D);
      KX_CHECK_VALUE(std::isfinite(t.a) && std::isfinite(t.b), op,
                     "target's a and b must be finite; got ", t.a, ", ", t.b);
      break;
    case TargetKind::Mixture:
      KX_CHECK_VALUE(t.K >= 1 && static_cast<std::int64_t>(t.logw.size()) == t.K &&
                         static_cast<std::int64_t>(t.means.size()) == t.K * D,
                     op, "target's weights [K] and means [K,D] must match D = ", D);
      check_finite(op, t.means, "target's means");
      check_chol(op, t.chols, D, t.K, "target's covs");
      break;
    case TargetKind::Logistic:
      KX_CHECK_VALUE(static_cast<std::int64_t>(t.X.size()) == t.n * D &&
                         static_cast<std::int64_t>(t.y.size()) == t.n,
                     op, "target's X must be [n, D] with D = ", D, " and y [n]");
      check_finite(op, t.X, "target's X");
      for (double v : t.y) KX_CHECK_VALUE(v == 0.0 || v == 1.0, op, "target's y must be 0 or 1; got ", v);
      KX_CHECK_VALUE(std::isfinite(t.prior_scale) && t.prior_scale > 0.0, op,
                     "target's prior_scale must be a finite number > 0; got ", t.prior_scale);
      break;
    case TargetKind::Funnel:
      KX_CHECK_VALUE(D >= 2, op, "x0 must have D >= 2 for the funnel target; got D = ", D);
      break;
  }
}

}  // namespace

namespace {

/// Checks shared by metropolis and anneal; the plan without its outputs.
cpu::MetropolisPlan check_mh(const char* op, const Target& target, const Array& x0,
                             std::int64_t n_steps, const MetropolisOptions& opt) {
  api::check_ndim(op, x0, "x0", 2, "[C,D]");
  api::check_dtype(op, x0, "x0", DType::Float64);
  const std::int64_t C = x0.dim(0), D = x0.dim(1);
  KX_CHECK_VALUE(D >= 1, op, "x0 must have D >= 1 coordinates; got shape ", x0.shape_str());
  const double* xs = x0.ptr<double>();
  for (std::int64_t i = 0; i < x0.size(); ++i)
    KX_CHECK_VALUE(std::isfinite(xs[i]), op, "x0 must be finite; got ", xs[i], " at (", i / D,
                   ", ", i % D, ")");
  KX_CHECK_VALUE(n_steps >= 0, op, "n_steps must be >= 0; got ", n_steps);
  KX_CHECK_VALUE(opt.burn >= 0, op, "burn must be >= 0; got ", opt.burn);
  KX_CHECK_VALUE(opt.thin >= 1, op, "thin must be >= 1; got ", opt.thin);
  KX_CHECK_VALUE(opt.chain_offset >= 0, op, "chain_offset must be >= 0; got ", opt.chain_offset);
  check_target(op, target, D);
  if (opt.independent) {
    KX_CHECK_VALUE(static_cast<std::int64_t>(opt.prop_mean.size()) == D, op,
                   "proposal's mean must have D = ", D, " entries; got ", opt.prop_mean.size());
    check_finite(op, opt.prop_mean, "proposal's mean");
    check_chol(op, opt.prop_chol, D, 1, "proposal's cov");
  } else {
    const std::size_t n = opt.step_size.size();
    KX_CHECK_VALUE(n == 1 || static_cast<std::int64_t>(n) == D, op,
                   "step_size must be a number or have D = ", D, " entries; got ", n);
    for (double s : opt.step_size)
      KX_CHECK_VALUE(std::isfinite(s) && s > 0.0, op, "step_size must be finite and > 0; got ", s);
  }
  cpu::MetropolisPlan p;
  p.target = &target;
  p.opt = &opt;
  p.C = C;
  p.D = D;
  p.n_steps = n_steps;
  p.S = (n_steps + opt.thin - 1) / opt.thin;
  p.seed = opt.seed;
  p.x0 = xs;
  return p;
}

}  // namespace

void metropolis(const Target& target, const Array& x0, std::int64_t n_steps,
                const MetropolisOptions& opt, const Array& samples, const Array& logp,
                const Array& accept_rate, const Array& step_size) {
  const char* op = "samplers.metropolis";
  cpu::MetropolisPlan p = check_mh(op, target, x0, n_steps, opt);
  api::check_arg(op, samples, "samples", DType::Float64, {p.C, p.S, p.D}, "[C,S,D]");
  api::check_arg(op, logp, "logp", DType::Float64, {p.C, p.S}, "[C,S]");
  api::check_arg(op, accept_rate, "accept_rate", DType::Float64, {p.C}, "[C]");
  api::check_arg(op, step_size, "step_size", DType::Float64, {p.C}, "[C]");
  p.samples = samples.ptr<double>();
  p.logp = logp.ptr<double>();
  p.accept_rate = accept_rate.ptr<double>();
  p.step_out = step_size.ptr<double>();
  cpu::sampler_metropolis(p);
}

void anneal(const Target& target, const Array& x0, const Array& temperatures,
            const MetropolisOptions& opt, const Array& best_x, const Array& best_energy,
            const Array& energy, const Array& accept_rate) {
  const char* op = "samplers.anneal";
  const double* T = api::check_temperatures(op, temperatures);
  KX_CHECK_VALUE(opt.burn == 0 && opt.thin == 1, op, "burn must be 0 and thin 1 when annealing");
  cpu::MetropolisPlan p = check_mh(op, target, x0, temperatures.size(), opt);
  p.op = op;
  p.what = "energy";
  api::check_arg(op, best_x, "best_x", DType::Float64, {p.C, p.D}, "[C,D]");
  api::check_arg(op, best_energy, "best_energy", DType::Float64, {p.C}, "[C]");
  api::check_arg(op, energy, "energy", DType::Float64, {p.C, p.S}, "[C,n_steps]");
  api::check_arg(op, accept_rate, "accept_rate", DType::Float64, {p.C}, "[C]");
  std::vector<double> step(static_cast<std::size_t>(p.C));
  MetropolisOptions o = opt;
  o.adapt = false;
  p.opt = &o;
  p.temp = T;
  p.logp = energy.ptr<double>();
  p.best_x = best_x.ptr<double>();
  p.best_lp = best_energy.ptr<double>();
  p.accept_rate = accept_rate.ptr<double>();
  p.step_out = step.data();
  cpu::sampler_metropolis(p);
  double* e = energy.ptr<double>();
  for (std::int64_t i = 0; i < energy.size(); ++i) e[i] = -e[i];
  double* be = best_energy.ptr<double>();
  for (std::int64_t c = 0; c < p.C; ++c) be[c] = -be[c];
}

void anneal_spins(const Array& J, const Array& h, const Array& spins, const Array& temperatures,
                  std::uint64_t seed, std::int64_t chain_offset, const Array& best,
                  const Array& best_energy, const Array& energy) {
  const char* op = "samplers.anneal";
  api::check_ndim(op, J, "energy's J", 2, "[N,N]");
  api::check_dtype(op, J, "energy's J", DType::Float64);
  const std::int64_t N = J.dim(0);
  KX_CHECK_VALUE(J.dim(1) == N, op, "energy's J must be square [N,N]; got ", J.shape_str());
  const double* Jp = J.ptr<double>();
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t j = 0; j < N; ++j) {
      KX_CHECK_VALUE(std::isfinite(Jp[i * N + j]), op, "energy's J must be finite");
      KX_CHECK_VALUE(Jp[i * N + j] == Jp[j * N + i], op, "energy's J must be symmetric; J[", i,
                     ", ", j, "] != J[", j, ", ", i, "]");
    }
  for (std::int64_t i = 0; i < N; ++i)
    KX_CHECK_VALUE(Jp[i * N + i] == 0.0, op, "energy's J must have a zero diagonal");
  api::check_arg(op, h, "energy's h", DType::Float64, {N}, "[N]");
  for (std::int64_t i = 0; i < N; ++i)
    KX_CHECK_VALUE(std::isfinite(h.ptr<double>()[i]), op, "energy's h must be finite");
  api::check_ndim(op, spins, "x0", 2, "[C,N]");
  api::check_dtype(op, spins, "x0", DType::Int8);
  KX_CHECK_VALUE(spins.dim(1) == N, op, "x0 must have shape (C, ", N, ") [C,N]; got ", spins.shape_str());
  const std::int8_t* s = spins.ptr<std::int8_t>();
  for (std::int64_t i = 0; i < spins.size(); ++i)
    KX_CHECK_VALUE(s[i] == 1 || s[i] == -1, op, "x0 spins must be +1 or -1; got ", int(s[i]));
  const double* T = api::check_temperatures(op, temperatures);
  KX_CHECK_VALUE(chain_offset >= 0, op, "chain_offset must be >= 0; got ", chain_offset);
  const std::int64_t C = spins.dim(0), n = temperatures.size();
  api::check_arg(op, best, "best", DType::Int8, {C, N}, "[C,N]");
  api::check_arg(op, best_energy, "best_energy", DType::Float64, {C}, "[C]");
  api::check_arg(op, energy, "energy", DType::Float64, {C, n}, "[C,n_steps]");
  cpu::SpinAnnealPlan p;
  p.C = C;
  p.N = N;
  p.T = n;
  p.J = Jp;
  p.h = h.ptr<double>();
  p.temp = T;
  p.seed = seed;
  p.chain_offset = chain_offset;
  p.spins = spins.ptr<std::int8_t>();
  p.best = best.ptr<std::int8_t>();
  p.best_energy = best_energy.ptr<double>();
  p.energy = energy.ptr<double>();
  cpu::sampler_anneal_spins(p);
}

void gibbs(const std::function<void(const std::int64_t*, std::int64_t, std::int64_t, std::int64_t,
                                    std::int64_t, double*)>& fn,
           const Array& x0, std::int64_t n_sweeps, std::int64_t n_states, bool random_scan,
           std::uint64_t seed, std::int64_t chain_offset, std::int64_t record_every,
           const Array& samples) {
  const char* op = "samplers.gibbs";
  KX_CHECK_VALUE(static_cast<bool>(fn), op, "conditional must be callable");
  api::check_ndim(op, x0, "x0", 2, "[C,N]");
  api::check_dtype(op, x0, "x0", DType::Int64);
  KX_CHECK_VALUE(n_states >= 2, op, "n_states must be >= 2; got ", n_states);
  KX_CHECK_VALUE(n_sweeps >= 0, op, "n_sweeps must be >= 0; got ", n_sweeps);
  KX_CHECK_VALUE(record_every >= 1, op, "record_every must be >= 1; got ", record_every);
  KX_CHECK_VALUE(chain_offset >= 0, op, "chain_offset must be >= 0; got ", chain_offset);
  const std::int64_t* x = x0.ptr<std::int64_t>();
  for (std::int64_t i = 0; i < x0.size(); ++i)
    KX_CHECK_INDEX(x[i] >= 0 && x[i] < n_states, op, "x0 must be in [0, n_states = ", n_states,
                   "); got ", x[i]);
  const std::int64_t C = x0.dim(0), N = x0.dim(1), R = n_sweeps / record_every;
  api::check_arg(op, samples, "samples", DType::Int64, {C, R, N}, "[C,R,N]");
  cpu::GibbsPlan p;
  p.fn = &fn;
  p.C = C;
  p.N = N;
  p.S = n_states;
  p.n_sweeps = n_sweeps;
  p.record_every = record_every;
  p.chain_offset = chain_offset;
  p.random_scan = random_scan;
  p.seed = seed;
  p.x0 = x;
  p.samples = samples.ptr<std::int64_t>();
  if (C > 0 && N > 0) cpu::sampler_gibbs(p);
}

namespace {

void lattice(const char* op, const Array& spins, std::int64_t q, const LatticeOptions& opt,
             const Array& mag, const Array& energy) {
  api::check_ndim(op, spins, "spins", 3, "[C,H,W]");
  api::check_dtype(op, spins, "spins", DType::Int8);
  const std::int64_t C = spins.dim(0), H = spins.dim(1), W = spins.dim(2);
  KX_CHECK_VALUE(H >= 2 && W >= 2 && H % 2 == 0 && W % 2 == 0, op,
                 "shape must be even in both axes and >= 2 (a checkerboard on a periodic lattice); got (",
                 H, ", ", W, ")");
  KX_CHECK_VALUE(std::isfinite(opt.beta) && opt.beta >= 0.0, op,
                 "beta must be a finite number >= 0; got ", opt.beta);
  KX_CHECK_VALUE(std::isfinite(opt.h), op, "h must be finite; got ", opt.h);
  KX_CHECK_VALUE(opt.n_sweeps >= 0, op, "n_sweeps must be >= 0; got ", opt.n_sweeps);
  KX_CHECK_VALUE(opt.record_every >= 1, op, "record_every must be >= 1; got ", opt.record_every);
  KX_CHECK_VALUE(opt.chain_offset >= 0, op, "chain_offset must be >= 0; got ", opt.chain_offset);
  KX_CHECK_VALUE(opt.init >= 0 && opt.init <= 3, op, "init must be 'random', 'up', 'down' or an array");
  if (opt.init == 3) {
    const std::int8_t* s = spins.ptr<std::int8_t>();
    for (std::int64_t i = 0; i < spins.size(); ++i) {
      const bool ok = q == 0 ? (s[i] == 1 || s[i] == -1) : (s[i] >= 0 && s[i] < q);
      if (!ok) {
        if (q == 0) fail(ErrorKind::Value, op, "init spins must be +1 or -1; got ", int(s[i]), " at flat index ", i);
        fail(ErrorKind::Value, op, "init states must be in [0, ", q, "); got ", int(s[i]), " at flat index ", i);
      }
    }
  }
  const std::int64_t S = opt.n_sweeps / opt.record_every;
  api::check_arg(op, mag, "magnetization", DType::Float64, {C, S}, "[C,S]");
  api::check_arg(op, energy, "energy", DType::Float64, {C, S}, "[C,S]");
  cpu::LatticePlan p;
  p.opt = &opt;
  p.C = C;
  p.H = H;
  p.W = W;
  p.q = q;
  p.spins = spins.ptr<std::int8_t>();
  p.mag = mag.ptr<double>();
  p.energy = energy.ptr<double>();
  cpu::sampler_lattice(p);
}

}  // namespace

void gibbs_ising(const Array& spins, const LatticeOptions& opt, const Array& magnetization,
                 const Array& energy) {
  lattice("samplers.gibbs_ising", spins, 0, opt, magnetization, energy);
}

void gibbs_potts(const Array& spins, std::int64_t q, const LatticeOptions& opt,
                 const Array& magnetization, const Array& energy) {
  KX_CHECK_VALUE(q >= 2 && q <= 127, "samplers.gibbs_potts", "q must be in [2, 127]; got ", q);
  KX_CHECK_VALUE(opt.h == 0.0, "samplers.gibbs_potts", "h must be 0 (no field in the Potts model); got ", opt.h);
  lattice("samplers.gibbs_potts", spins, q, opt, magnetization, energy);
}

}  // namespace samplers
}  // namespace kexue
