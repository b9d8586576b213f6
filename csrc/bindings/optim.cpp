// csrc/bindings/optim.cpp - kexue._core.optim_*: lists of numpy arrays in,
// updated in place with the GIL released. Every array is viewed (and checked
// for contiguity and writeability) before the front door runs, and the front
// door checks everything else before writing, so a failing call changes nothing.
#include <string>

#include "bindings/convert.hpp"
#include "bindings/device.hpp"
#include "kexue/optim.hpp"

namespace kexue {
namespace bind {

namespace {

using Objs = std::vector<py::object>;

std::string nth(const char* base, std::size_t i) { return std::string(base) + "[" + std::to_string(i) + "]"; }

/// View list entry i (None -> an absent Array); in-place arrays must be
/// C-contiguous and writeable (they are never copied). Arrays with a
/// __cuda_array_interface__ are GPU arrays (the front door runs the CUDA
/// kernels, or says this build has none).
Array entry(const char* op, const Objs& xs, std::size_t i, const char* base, bool writes) {
  if (i >= xs.size() || xs[i].is_none()) return Array();
  const std::string nm = nth(base, i);
  if (auto t = gpu_view(op, xs[i], nm, writes)) return *t;
  if (!py::isinstance<py::array>(xs[i]))
    fail(ErrorKind::Type, op, nm, " must be a numpy array; got ", py::str(py::type::of(xs[i])).cast<std::string>());
  const py::array a = py::reinterpret_borrow<py::array>(xs[i]);
  if (writes) {
    if (!(a.flags() & py::array::c_style))
      fail(ErrorKind::Value, op, nm, " must be C-contiguous (it is updated in place); got strides ",
           py::str(py::tuple(py::cast(std::vector<py::ssize_t>(a.strides(), a.strides() + a.ndim()))))
               .cast<std::string>());
    if (!a.writeable()) fail(ErrorKind::Value, op, nm, " must be writeable; got a read-only array");
  }
  return view(a, op, nm.c_str());
}

/// The slots of one call: params, grads and the state lists (in slot order).
std::vector<optim::Slot> slots(const char* op, const Objs& params, const Objs& grads,
                               const std::vector<std::pair<const Objs*, const char*>>& states) {
  KX_CHECK_VALUE(grads.size() == params.size(), op, "grads must have one array per param (",
                 params.size(), "); got ", grads.size());
  for (const auto& s : states)
    if (s.first)
      KX_CHECK_VALUE(s.first->size() == params.size(), op, s.second, " must have one entry per param (",
                     params.size(), "); got ", s.first->size());
  std::vector<optim::Slot> out(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    KX_CHECK_VALUE(!params[i].is_none(), op, nth("params", i), " is None");
    KX_CHECK_VALUE(!grads[i].is_none(), op, nth("grads", i), " is None");
    out[i].param = entry(op, params, i, "params", true);
    out[i].grad = entry(op, grads, i, "grads", false);
    for (const auto& s : states) out[i].state.push_back(s.first ? entry(op, *s.first, i, s.second, true) : Array());
  }
  return out;
}

optim::StepInfo info(std::int64_t step, double grad_scale, std::uint64_t seed) {
  optim::StepInfo s;
  s.step = step;
  s.grad_scale = grad_scale;
  s.seed = seed;
  return s;
}

std::vector<Array> views(const char* op, const Objs& grads, bool writes) {
  std::vector<Array> g;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    KX_CHECK_VALUE(!grads[i].is_none(), op, nth("grads", i), " is None");
    g.push_back(entry(op, grads, i, "grads", writes));
  }
  return g;
}

}  // namespace

void register_optim(py::module_& m) {
  m.def(
      "optim_sgd",
      [](const Objs& params, const Objs& grads, const std::optional<Objs>& bufs, std::int64_t step,
         double lr, double momentum, double dampening, double weight_decay, bool nesterov,
         double grad_scale) {
        const char* op = "optim.sgd_";
        auto sl = slots(op, params, grads, {{bufs ? &*bufs : nullptr, "momentum_buffers"}});
        optim::SgdOptions o;
        o.lr = lr;
        o.momentum = momentum;
        o.dampening = dampening;
        o.weight_decay = weight_decay;
        o.nesterov = nesterov;
        py::gil_scoped_release nogil;
        optim::sgd(sl, o, info(step, grad_scale, 0));
      },
      py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("step"), py::kw_only(),
      py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"),
      py::arg("nesterov"), py::arg("grad_scale"));

  m.def(
      "optim_adam",
      [](const Objs& params, const Objs& grads, const Objs& m1, const Objs& m2,
         const std::optional<Objs>& vmax, std::int64_t step, double lr, double beta1, double beta2,
         double eps, double weight_decay, bool amsgrad, bool decoupled, double grad_scale,
         std::uint64_t seed) {
        const char* op = decoupled ? "optim.adamw_" : "optim.adam_";
        auto sl = slots(op, params, grads,
                        {{&m1, "exp_avgs"}, {&m2, "exp_avg_sqs"}, {vmax ? &*vmax : nullptr, "max_exp_avg_sqs"}});
        optim::AdamOptions o;
        o.lr = lr;
        o.beta1 = beta1;
        o.beta2 = beta2;
        o.eps = eps;
        o.weight_decay = weight_decay;
        o.amsgrad = amsgrad;
        o.decoupled = decoupled;
        py::gil_scoped_release nogil;
        optim::adam(sl, o, info(step, grad_scale, seed));
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("max_exp_avg_sqs"), py::arg("step"), py::kw_only(), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"),
      py::arg("decoupled"), py::arg("grad_scale"), py::arg("seed"));

  m.def(
      "optim_adax",
      [](const Objs& params, const Objs& grads, const Objs& m1, const Objs& m2, std::int64_t step,
         double lr, double beta1, double beta2, double eps, double weight_decay, double grad_scale,
         std::uint64_t seed) {
        const char* op = "optim.adax_";
        auto sl = slots(op, params, grads, {{&m1, "exp_avgs"}, {&m2, "exp_avg_sqs"}});
        optim::AdaxOptions o;
        o.lr = lr;
        o.beta1 = beta1;
        o.beta2 = beta2;
        o.eps = eps;
        o.weight_decay = weight_decay;
        py::gil_scoped_release nogil;
        optim::adax(sl, o, info(step, grad_scale, seed));
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("step"),
      py::kw_only(), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("grad_scale"), py::arg("seed"));

  m.def(
      "optim_lion",
      [](const Objs& params, const Objs& grads, const Objs& m1, std::int64_t step, double lr,
         double beta1, double beta2, double weight_decay, double grad_scale, std::uint64_t seed) {
        const char* op = "optim.lion_";
        auto sl = slots(op, params, grads, {{&m1, "exp_avgs"}});
        optim::LionOptions o;
        o.lr = lr;
        o.beta1 = beta1;
        o.beta2 = beta2;
        o.weight_decay = weight_decay;
        py::gil_scoped_release nogil;
        optim::lion(sl, o, info(step, grad_scale, seed));
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("step"), py::kw_only(),
      py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("weight_decay"),
      py::arg("grad_scale"), py::arg("seed"));

  m.def(
      "optim_lamb",
      [](const Objs& params, const Objs& grads, const Objs& m1, const Objs& m2, std::int64_t step,
         double lr, double beta1, double beta2, double eps, double weight_decay, double grad_scale) {
        const char* op = "optim.lamb_";
        auto sl = slots(op, params, grads, {{&m1, "exp_avgs"}, {&m2, "exp_avg_sqs"}});
        optim::LambOptions o;
        o.lr = lr;
        o.beta1 = beta1;
        o.beta2 = beta2;
        o.eps = eps;
        o.weight_decay = weight_decay;
        py::gil_scoped_release nogil;
        optim::lamb(sl, o, info(step, grad_scale, 0));
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("step"),
      py::kw_only(), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
      py::arg("weight_decay"), py::arg("grad_scale"));

  m.def(
      "optim_adafactor",
      [](const Objs& params, const Objs& grads, const Objs& m1, const Objs& v, const Objs& vr,
         const Objs& vc, std::int64_t step, std::optional<double> lr, double beta1,
         std::optional<double> beta2, double eps1, double eps2, double d, bool mbps, double grad_scale) {
        const char* op = "optim.adafactor_";
        auto sl = slots(op, params, grads,
                        {{&m1, "exp_avgs"}, {&v, "exp_avg_sqs"}, {&vr, "exp_avg_sq_rows"}, {&vc, "exp_avg_sq_cols"}});
        optim::AdafactorOptions o;
        o.lr = lr;
        o.beta1 = beta1;
        o.beta2 = beta2;
        o.eps1 = eps1;
        o.eps2 = eps2;
        o.d = d;
        o.multiply_by_parameter_scale = mbps;
        py::gil_scoped_release nogil;
        optim::adafactor(sl, o, info(step, grad_scale, 0));
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("exp_avg_sq_rows"), py::arg("exp_avg_sq_cols"), py::arg("step"), py::kw_only(),
      py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps1"), py::arg("eps2"), py::arg("d"),
      py::arg("multiply_by_parameter_scale"), py::arg("grad_scale"));

  m.def(
      "optim_adafactor_shapes",
      [](const std::vector<std::int64_t>& shape, std::int64_t min_dim) -> py::object {
        const auto f = optim::adafactor_shapes(shape, min_dim);
        if (!f) return py::none();
        return py::make_tuple(py::tuple(py::cast(f->row)), py::tuple(py::cast(f->col)));
      },
      py::arg("shape"), py::arg("min_dim_size_to_factor"));

  m.def(
      "optim_amos",
      [](const Objs& params, const Objs& grads, const Objs& v, const Objs& b, std::int64_t step,
         double lr, const std::vector<double>& eta, double beta, double zeta, double eps,
         double finetune_rate, double grad_scale) {
        const char* op = "optim.amos_";
        auto sl = slots(op, params, grads, {{&v, "exp_avg_sqs"}, {&b, "decays"}});
        optim::AmosOptions o;
        o.lr = lr;
        o.eta = eta;
        o.beta = beta;
        o.zeta = zeta;
        o.eps = eps;
        o.finetune_rate = finetune_rate;
        py::gil_scoped_release nogil;
        optim::amos(sl, o, info(step, grad_scale, 0));
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avg_sqs"), py::arg("decays"), py::arg("step"),
      py::kw_only(), py::arg("lr"), py::arg("eta"), py::arg("beta"), py::arg("zeta"), py::arg("eps"),
      py::arg("finetune_rate"), py::arg("grad_scale"));

  m.def(
      "optim_grad_norm",
      [](const Objs& grads) {
        const auto g = views("optim.grad_norm", grads, false);
        bool finite = true;
        double n;
        {
          py::gil_scoped_release nogil;
          n = optim::grad_norm(g, &finite);
        }
        return py::make_tuple(n, finite);
      },
      py::arg("grads"));

  m.def(
      "optim_clip_grad_norm",
      [](const Objs& grads, double max_norm, const std::string& mode) {
        const char* op = "optim.clip_grad_norm_";
        if (mode != "clip" && mode != "smooth")
          fail(ErrorKind::Value, op, "mode must be \"clip\" or \"smooth\"; got \"", mode, "\"");
        const auto g = views(op, grads, true);
        py::gil_scoped_release nogil;
        return optim::clip_grad_norm(g, max_norm, mode == "clip" ? optim::ClipMode::Clip : optim::ClipMode::Smooth);
      },
      py::arg("grads"), py::arg("max_norm"), py::kw_only(), py::arg("mode"));

  m.def(
      "optim_child_tuning",
      [](const Objs& grads, double p, std::uint64_t seed, std::int64_t step) {
        const auto g = views("optim.child_tuning_", grads, true);
        py::gil_scoped_release nogil;
        optim::child_tuning(g, p, seed, step);
      },
      py::arg("grads"), py::arg("p"), py::kw_only(), py::arg("seed"), py::arg("step"));
}

}  // namespace bind
}  // namespace kexue
