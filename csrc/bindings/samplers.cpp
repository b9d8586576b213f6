// csrc/bindings/samplers.cpp - kexue._core.smp_*: numpy in, outputs allocated,
// the GIL released around the chains (and taken back only to call a Python
// target once per step).
#include <cstring>
#include <string>

#include "bindings/convert.hpp"
#include "kexue/samplers.hpp"

namespace kexue {
namespace bind {

namespace {

using OptArr = std::optional<py::array_t<double, py::array::c_style | py::array::forcecast>>;

std::vector<double> vec(const OptArr& a) {
  if (!a) return {};
  return std::vector<double>(a->data(), a->data() + a->size());
}

samplers::TargetKind kind_of(const std::string& k) {
  if (k == "callable") return samplers::TargetKind::Callable;
  if (k == "gaussian") return samplers::TargetKind::Gaussian;
  if (k == "rosenbrock") return samplers::TargetKind::Rosenbrock;
  if (k == "mixture") return samplers::TargetKind::Mixture;
  if (k == "logistic") return samplers::TargetKind::Logistic;
  if (k == "funnel") return samplers::TargetKind::Funnel;
  fail(ErrorKind::Type, "samplers.metropolis", "target must be callable or a built-in target; got kind '", k, "'");
}

samplers::Target make_target(const char* op, const char* what, const std::string& kind,
                             const py::object& fn, const OptArr& mean,
                             const OptArr& chol, double a, double b, const OptArr& logw,
                             const OptArr& means, const OptArr& chols, const OptArr& X,
                             const OptArr& y, double prior_scale) {
  samplers::Target t;
  t.kind = kind_of(kind);
  t.mean = vec(mean);
  t.chol = vec(chol);
  t.a = a;
  t.b = b;
  t.logw = vec(logw);
  t.K = static_cast<std::int64_t>(t.logw.size());
  t.means = vec(means);
  t.chols = vec(chols);
  t.X = vec(X);
  t.y = vec(y);
  t.n = static_cast<std::int64_t>(t.y.size());
  t.prior_scale = prior_scale;
  if (t.kind == samplers::TargetKind::Callable) {
    t.fn = [fn, op, what](const double* ys, std::int64_t C, std::int64_t D, double* out) {
      py::gil_scoped_acquire gil;
      py::array_t<double> arr({static_cast<py::ssize_t>(C), static_cast<py::ssize_t>(D)});
      std::memcpy(arr.mutable_data(), ys, static_cast<std::size_t>(C * D) * sizeof(double));
      const py::object r = fn(arr);
      const py::array got = py::array::ensure(r);
      if (!got || got.ndim() != 1 || got.shape(0) != C) {
        const std::string came = got ? std::string(py::str(py::tuple(got.attr("shape"))))
                                     : std::string(py::str(py::type::of(r).attr("__name__")));
        fail(ErrorKind::Value, op, what, " must return ",
             std::string(what) == "energy" ? "energies" : "logp", " of shape (", C,
             ",) for x of shape (", C, ", ", D, "); got ", came);
      }
      const auto res = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(got);
      if (!res) fail(ErrorKind::Type, op, what, " must return float values");
      std::memcpy(out, res.data(), static_cast<std::size_t>(C) * sizeof(double));
    };
  }
  return t;
}

samplers::MetropolisOptions make_options(const OptArr& step_size, bool independent,
                                         const OptArr& prop_mean, const OptArr& prop_chol,
                                         std::uint64_t seed, std::int64_t burn, std::int64_t thin,
                                         bool adapt, std::int64_t chain_offset,
                                         const py::object& progress) {
  samplers::MetropolisOptions o;
  o.step_size = vec(step_size);
  o.independent = independent;
  o.prop_mean = vec(prop_mean);
  o.prop_chol = vec(prop_chol);
  o.seed = seed;
  o.burn = burn;
  o.thin = thin;
  o.adapt = adapt;
  o.chain_offset = chain_offset;
  if (!progress.is_none())
    o.progress = [progress](std::int64_t done, std::int64_t total) {
      py::gil_scoped_acquire gil;
      progress(done, total);
    };
  return o;
}

}  // namespace

void register_samplers(py::module_& m) {
  m.def(
      "smp_metropolis",
      [](const std::string& kind, const py::object& fn, const py::array& x0, std::int64_t n_steps,
         const OptArr& step_size, bool independent, const OptArr& prop_mean,
         const OptArr& prop_chol, std::uint64_t seed, std::int64_t burn, std::int64_t thin,
         bool adapt, std::int64_t chain_offset, const py::object& progress, const OptArr& mean,
         const OptArr& chol, double a, double b, const OptArr& logw, const OptArr& means,
         const OptArr& chols, const OptArr& X, const OptArr& y, double prior_scale) {
        const char* op = "samplers.metropolis";
        const Array xv = view(x0, op, "x0");
        const samplers::Target t = make_target(op, "target", kind, fn, mean, chol, a, b, logw, means, chols, X, y, prior_scale);
        const samplers::MetropolisOptions o = make_options(step_size, independent, prop_mean, prop_chol, seed, burn, thin, adapt, chain_offset, progress);
        const py::ssize_t C = dim_or0(xv, 0), D = dim_or0(xv, 1);
        const py::ssize_t S = thin >= 1 && n_steps >= 0 ? (n_steps + thin - 1) / thin : 0;
        py::array samples = empty(DType::Float64, {C, S, D});
        py::array logp = empty(DType::Float64, {C, S});
        py::array acc = empty(DType::Float64, {C});
        py::array st = empty(DType::Float64, {C});
        const Array sv = view(samples, op, "samples"), lv = view(logp, op, "logp"),
                    av = view(acc, op, "accept_rate"), tv = view(st, op, "step_size");
        {
          py::gil_scoped_release nogil;
          samplers::metropolis(t, xv, n_steps, o, sv, lv, av, tv);
        }
        return py::make_tuple(samples, logp, acc, st);
      },
      py::arg("kind"), py::arg("fn"), py::arg("x0"), py::arg("n_steps"), py::kw_only(),
      py::arg("step_size") = py::none(), py::arg("independent") = false,
      py::arg("prop_mean") = py::none(), py::arg("prop_chol") = py::none(), py::arg("seed") = 0,
      py::arg("burn") = 0, py::arg("thin") = 1, py::arg("adapt") = true,
      py::arg("chain_offset") = 0, py::arg("progress") = py::none(), py::arg("mean") = py::none(),
      py::arg("chol") = py::none(), py::arg("a") = 1.0, py::arg("b") = 100.0,
      py::arg("logw") = py::none(), py::arg("means") = py::none(), py::arg("chols") = py::none(),
      py::arg("X") = py::none(), py::arg("y") = py::none(), py::arg("prior_scale") = 1.0);

  m.def(
      "smp_lattice",
      [](const py::array& spins, std::int64_t q, double beta, double h, std::int64_t n_sweeps,
         std::int64_t record_every, std::int64_t chain_offset, std::uint64_t seed, int init) {
        const char* op = q == 0 ? "samplers.gibbs_ising" : "samplers.gibbs_potts";
        const Array sv = view(spins, op, "spins");
        samplers::LatticeOptions o;
        o.beta = beta;
        o.h = h;
        o.n_sweeps = n_sweeps;
        o.record_every = record_every;
        o.chain_offset = chain_offset;
        o.seed = seed;
        o.init = init;
        const py::ssize_t C = dim_or0(sv, 0);
        const py::ssize_t S = record_every >= 1 && n_sweeps >= 0 ? n_sweeps / record_every : 0;
        py::array mag = empty(DType::Float64, {C, S}), en = empty(DType::Float64, {C, S});
        const Array mv = view(mag, op, "magnetization"), ev = view(en, op, "energy");
        {
          py::gil_scoped_release nogil;
          if (q == 0)
            samplers::gibbs_ising(sv, o, mv, ev);
          else
            samplers::gibbs_potts(sv, q, o, mv, ev);
        }
        return py::make_tuple(mag, en);
      },
      py::arg("spins"), py::arg("q"), py::kw_only(), py::arg("beta"), py::arg("h") = 0.0,
      py::arg("n_sweeps"), py::arg("record_every") = 1, py::arg("chain_offset") = 0,
      py::arg("seed") = 0, py::arg("init") = 0);
  m.def(
      "smp_anneal",
      [](const std::string& kind, const py::object& fn, const py::array& x0,
         const py::array& temperatures, const OptArr& step_size, bool independent,
         const OptArr& prop_mean, const OptArr& prop_chol, std::uint64_t seed,
         std::int64_t chain_offset, const py::object& progress, const OptArr& mean,
         const OptArr& chol, double a, double b, const OptArr& logw, const OptArr& means,
         const OptArr& chols, const OptArr& X, const OptArr& y, double prior_scale) {
        const char* op = "samplers.anneal";
        const Array xv = view(x0, op, "x0"), tv = view(temperatures, op, "temperatures");
        const samplers::Target t = make_target(op, "energy", kind, fn, mean, chol, a, b, logw, means, chols, X, y, prior_scale);
        const samplers::MetropolisOptions o = make_options(step_size, independent, prop_mean, prop_chol, seed, 0, 1, false, chain_offset, progress);
        const py::ssize_t C = dim_or0(xv, 0), D = dim_or0(xv, 1), n = dim_or0(tv, 0);
        py::array bx = empty(DType::Float64, {C, D}), be = empty(DType::Float64, {C});
        py::array en = empty(DType::Float64, {C, n}), acc = empty(DType::Float64, {C});
        const Array bxv = view(bx, op, "best_x"), bev = view(be, op, "best_energy"),
                    env = view(en, op, "energy"), av = view(acc, op, "accept_rate");
        {
          py::gil_scoped_release nogil;
          samplers::anneal(t, xv, tv, o, bxv, bev, env, av);
        }
        return py::make_tuple(bx, be, en, acc);
      },
      py::arg("kind"), py::arg("fn"), py::arg("x0"), py::arg("temperatures"), py::kw_only(),
      py::arg("step_size") = py::none(), py::arg("independent") = false,
      py::arg("prop_mean") = py::none(), py::arg("prop_chol") = py::none(), py::arg("seed") = 0,
      py::arg("chain_offset") = 0, py::arg("progress") = py::none(), py::arg("mean") = py::none(),
      py::arg("chol") = py::none(), py::arg("a") = 1.0, py::arg("b") = 100.0,
      py::arg("logw") = py::none(), py::arg("means") = py::none(), py::arg("chols") = py::none(),
      py::arg("X") = py::none(), py::arg("y") = py::none(), py::arg("prior_scale") = 1.0);

  m.def(
      "smp_anneal_spins",
      [](const py::array& J, const py::array& h, const py::array& x0, const py::array& temperatures,
         std::uint64_t seed, std::int64_t chain_offset) {
        const char* op = "samplers.anneal";
        const Array Jv = view(J, op, "energy's J"), hv = view(h, op, "energy's h"),
                    tv = view(temperatures, op, "temperatures");
        py::array spins = py::array::ensure(x0.attr("copy")());
        const Array sv = view(spins, op, "x0");
        const py::ssize_t C = dim_or0(sv, 0), N = dim_or0(sv, 1), n = dim_or0(tv, 0);
        py::array best = empty(DType::Int8, {C, N}), be = empty(DType::Float64, {C});
        py::array en = empty(DType::Float64, {C, n});
        const Array bv = view(best, op, "best"), bev = view(be, op, "best_energy"),
                    env = view(en, op, "energy");
        {
          py::gil_scoped_release nogil;
          samplers::anneal_spins(Jv, hv, sv, tv, seed, chain_offset, bv, bev, env);
        }
        return py::make_tuple(best, be, en, spins);
      },
      py::arg("J"), py::arg("h"), py::arg("x0"), py::arg("temperatures"), py::kw_only(),
      py::arg("seed") = 0, py::arg("chain_offset") = 0);

  m.def(
      "smp_gibbs",
      [](const py::object& conditional, const py::array& x0, std::int64_t n_sweeps,
         std::int64_t n_states, bool random_scan, std::uint64_t seed, std::int64_t chain_offset,
         std::int64_t record_every) {
        const char* op = "samplers.gibbs";
        const Array xv = view(x0, op, "x0");
        const auto fn = [conditional, op](const std::int64_t* x, std::int64_t C, std::int64_t N,
                                          std::int64_t i, std::int64_t S, double* out) {
          py::gil_scoped_acquire gil;
          py::array_t<std::int64_t> arr({static_cast<py::ssize_t>(C), static_cast<py::ssize_t>(N)});
          std::memcpy(arr.mutable_data(), x, static_cast<std::size_t>(C * N) * sizeof(std::int64_t));
          const py::object r = conditional(arr, i);
          const py::array got = py::array::ensure(r);
          if (!got || got.ndim() != 2 || got.shape(0) != C || got.shape(1) != S) {
            const std::string what = got ? std::string(py::str(py::tuple(got.attr("shape"))))
                                         : std::string(py::str(py::type::of(r).attr("__name__")));
            fail(ErrorKind::Value, op, "conditional must return logits of shape (", C, ", ", S,
                 ") [C,n_states]; got ", what, " for coordinate ", i);
          }
          const auto res = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(got);
          if (!res) fail(ErrorKind::Type, op, "conditional must return float logits");
          std::memcpy(out, res.data(), static_cast<std::size_t>(C * S) * sizeof(double));
        };
        const py::ssize_t C = dim_or0(xv, 0), N = dim_or0(xv, 1);
        const py::ssize_t R = record_every >= 1 && n_sweeps >= 0 ? n_sweeps / record_every : 0;
        py::array samples = empty(DType::Int64, {C, R, N});
        const Array sv = view(samples, op, "samples");
        {
          py::gil_scoped_release nogil;
          samplers::gibbs(fn, xv, n_sweeps, n_states, random_scan, seed, chain_offset, record_every, sv);
        }
        return samples;
      },
      py::arg("conditional"), py::arg("x0"), py::arg("n_sweeps"), py::arg("n_states"),
      py::kw_only(), py::arg("random_scan") = false, py::arg("seed") = 0,
      py::arg("chain_offset") = 0, py::arg("record_every") = 1);
}

}  // namespace bind
}  // namespace kexue
