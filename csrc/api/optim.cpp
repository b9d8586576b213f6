// csrc/api/optim.cpp - the front door of kexue::optim: every check over every
// array and hyper-parameter first (a throwing call has written nothing), then
// the one dispatch point.
#include "kexue/optim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>

#include "api/checks.hpp"
#include "cpu/optim.hpp"
#include "cuda/backend.hpp"

namespace kexue {
namespace optim {

namespace {

std::string nth(const char* base, std::size_t i) { return std::string(base) + "[" + std::to_string(i) + "]"; }

bool present(const Array& a) { return !(a.data == nullptr && a.dtype == DType::Other && a.shape.empty()); }

/// A finite number >= lo (strictly > lo when strict).
void check_num(const char* op, const char* name, double v, double lo, bool strict) {
  KX_CHECK_VALUE(std::isfinite(v), op, name, " must be finite; got ", v);
  if (strict) KX_CHECK_VALUE(v > lo, op, name, " must be > ", lo, "; got ", v);
  else KX_CHECK_VALUE(v >= lo, op, name, " must be >= ", lo, "; got ", v);
}

void check_beta(const char* op, const char* name, double v) {
  KX_CHECK_VALUE(std::isfinite(v) && v >= 0.0 && v < 1.0, op, name, " must be in [0, 1); got ", v);
}

void check_step(const char* op, const StepInfo& s) {
  KX_CHECK_VALUE(s.step >= 1, op, "step must be >= 1 (the 1-based number of this update); got ", s.step);
  KX_CHECK_VALUE(std::isfinite(s.grad_scale) && s.grad_scale > 0.0, op,
                 "grad_scale must be finite and > 0; got ", s.grad_scale);
}

/// A state slot: present (unless optional), the param's shape (or `shape`),
/// the param's dtype, or uint16 (bfloat16 bits) where allowed.
void check_state(const char* op, const Slot& sl, std::size_t i, std::size_t k, const char* name,
                 bool bf16_ok, const std::vector<std::int64_t>* shape = nullptr) {
  const std::string nm = nth(name, i);
  KX_CHECK_VALUE(k < sl.state.size() && present(sl.state[k]), op, nm, " is required; got None");
  const Array& a = sl.state[k];
  api::check_ndim(op, a, nm.c_str(), a.ndim(), "", true);
  api::check_device(op, a, nm.c_str(), sl.param.device, "params[" + std::to_string(i) + "]");
  const std::vector<std::int64_t>& want = shape ? *shape : sl.param.shape;
  KX_CHECK_VALUE(a.shape == want, op, nm, " must have shape ", api::shape_str(want),
                 shape ? "" : " (the shape of params[" + std::to_string(i) + "])", "; got ", a.shape_str());
  if (bf16_ok && a.dtype == DType::UInt16) {
    KX_CHECK_TYPE(sl.param.dtype == DType::Float32, op, nm,
                  " is bfloat16 state (uint16), which needs float32 params; params[", i, "] is ",
                  sl.param.name);
    return;
  }
  KX_CHECK_TYPE(a.dtype == sl.param.dtype, op, nm, " must have dtype ", dtype_name(sl.param.dtype),
                " (the dtype of params[", i, "])", bf16_ok ? " or uint16 (bfloat16 state)" : "",
                "; got ", a.name);
}

bool absent(const Slot& sl, std::size_t k) { return k >= sl.state.size() || !present(sl.state[k]); }

/// params and grads, one dtype and one device for all (*device: -1 for
/// host memory, else the CUDA device).
DType check_params(const char* op, const std::vector<Slot>& slots, int* device) {
  DType dt = DType::Float32;
  *device = slots.empty() ? -1 : slots[0].param.device;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const Slot& sl = slots[i];
    const std::string pn = nth("params", i), gn = nth("grads", i);
    api::check_ndim(op, sl.param, pn.c_str(), sl.param.ndim(), "", true);
    api::check_float(op, sl.param, pn.c_str());
    api::check_device(op, sl.param, pn.c_str(), *device, "params[0]");
    api::check_device(op, sl.grad, gn.c_str(), *device, pn);
    if (i == 0) dt = sl.param.dtype;
    KX_CHECK_TYPE(sl.param.dtype == dt, op, pn, " must have dtype ", dtype_name(dt),
                  " (the dtype of params[0]); got ", sl.param.name);
    api::check_ndim(op, sl.grad, gn.c_str(), sl.grad.ndim(), "", true);
    KX_CHECK_VALUE(sl.grad.shape == sl.param.shape, op, gn, " must have shape ",
                   sl.param.shape_str(), " (the shape of ", pn, "); got ", sl.grad.shape_str());
    KX_CHECK_TYPE(sl.grad.dtype == dt, op, gn, " must have dtype ", dtype_name(dt), " (the dtype of ",
                  pn, "); got ", sl.grad.name);
  }
  return dt;
}

/// Every state slot of one array is bfloat16, or none is.
bool check_bf16(const char* op, const Slot& sl, std::size_t i, std::size_t nslots) {
  bool any = false, all = true;
  for (std::size_t k = 0; k < nslots && k < sl.state.size(); ++k) {
    if (!present(sl.state[k])) continue;
    const bool b = sl.state[k].dtype == DType::UInt16;
    any = any || b;
    all = all && b;
  }
  KX_CHECK_TYPE(!any || all, op, "the state arrays of params[", i,
                "] must all be bfloat16 (uint16) or all float; got a mix");
  return any;
}

std::size_t itemsize(DType d) {
  return d == DType::Float64 ? 8 : d == DType::UInt16 ? 2 : d == DType::Bool ? 1 : 4;
}

/// One array a call writes: its bytes and its argument name.
struct Written {
  std::uintptr_t b, e;
  std::string name;
};

void add_written(std::vector<Written>& w, const void* ptr, const Array& a, std::string name) {
  const std::size_t bytes = static_cast<std::size_t>(a.size()) * itemsize(a.dtype);
  if (ptr == nullptr || bytes == 0) return;
  const auto b = reinterpret_cast<std::uintptr_t>(ptr);
  w.push_back({b, b + bytes, std::move(name)});
}

/// The arrays a call writes must not share memory: chunks of one array would
/// race with chunks of another, and the result would depend on the thread count.
void check_disjoint(const char* op, std::vector<Written> w) {
  std::sort(w.begin(), w.end(), [](const Written& x, const Written& y) { return x.b < y.b; });
  std::size_t widest = 0;
  for (std::size_t j = 1; j < w.size(); ++j) {
    if (w[j].b < w[widest].e)
      fail(ErrorKind::Value, op, w[j].name, " shares memory with ", w[widest].name,
           "; the arrays a step updates in place must not overlap");
    if (w[j].e > w[widest].e) widest = j;
  }
}

/// A step writes its params and the state slots the plan uses.
void check_disjoint(const char* op, const std::vector<Slot>& slots, const cpu::OptPlan& pl,
                    const std::vector<const char*>& state_names) {
  std::vector<Written> w;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    add_written(w, pl.items[i].p, slots[i].param, nth("params", i));
    for (std::size_t k = 0; k < state_names.size() && k < slots[i].state.size(); ++k)
      add_written(w, pl.items[i].s[k], slots[i].state[k], nth(state_names[k], i));
  }
  check_disjoint(op, std::move(w));
}

/// The one dispatch point of a checked plan: the CPU for host arrays, else
/// the CUDA kernels of `device` (float state only: bfloat16 state has no
/// CUDA kernel yet).
void run(const char* op, cpu::OptPlan& pl, int device) {
  if (device < 0) {
    cpu::optim_run(pl);
    return;
  }
  for (std::size_t i = 0; i < pl.items.size(); ++i)
    KX_CHECK_VALUE(!pl.items[i].bf16, op, "bfloat16 (uint16) state has no CUDA kernel yet (params[", i,
                   "]); pass float32 state");
  cuda::optim_run(op, pl, device);
}

cpu::OptPlan base_plan(cpu::OptRule rule, DType dt, const std::vector<Slot>& slots, const StepInfo& s) {
  cpu::OptPlan pl;
  pl.rule = rule;
  pl.dt = dt;
  pl.step = s.step;
  pl.gs = s.grad_scale;
  pl.seed = s.seed;
  pl.items.resize(slots.size());
  for (std::size_t i = 0; i < slots.size(); ++i) {
    cpu::OptItem& it = pl.items[i];
    it.n = slots[i].param.size();
    it.p = slots[i].param.data;
    it.g = slots[i].grad.data;
    for (std::size_t k = 0; k < 4 && k < slots[i].state.size(); ++k) it.s[k] = slots[i].state[k].data;
    it.index = static_cast<std::uint32_t>(i);
  }
  return pl;
}

}  // namespace

void sgd(const std::vector<Slot>& slots, const SgdOptions& o, const StepInfo& s) {
  const char* op = "optim.sgd_";
  check_step(op, s);
  check_num(op, "lr", o.lr, 0.0, false);
  check_num(op, "momentum", o.momentum, 0.0, false);
  check_num(op, "dampening", o.dampening, 0.0, false);
  check_num(op, "weight_decay", o.weight_decay, 0.0, false);
  KX_CHECK_VALUE(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0), op,
                 "nesterov needs momentum > 0 and dampening 0; got momentum ", o.momentum,
                 ", dampening ", o.dampening);
  int dev = -1;
  const DType dt = check_params(op, slots, &dev);
  for (std::size_t i = 0; i < slots.size(); ++i)
    if (o.momentum != 0.0) check_state(op, slots[i], i, 0, "momentum_buffers", false);
  cpu::OptPlan pl = base_plan(cpu::OptRule::Sgd, dt, slots, s);
  pl.lr = o.lr;
  pl.momentum = o.momentum;
  pl.dampening = o.dampening;
  pl.wd = o.weight_decay;
  pl.nesterov = o.nesterov;
  check_disjoint(op, slots, pl, {"momentum_buffers"});
  run(op, pl, dev);
}

void adam(const std::vector<Slot>& slots, const AdamOptions& o, const StepInfo& s) {
  const char* op = o.decoupled ? "optim.adamw_" : "optim.adam_";
  check_step(op, s);
  check_num(op, "lr", o.lr, 0.0, false);
  check_beta(op, "beta1", o.beta1);
  check_beta(op, "beta2", o.beta2);
  check_num(op, "eps", o.eps, 0.0, false);
  check_num(op, "weight_decay", o.weight_decay, 0.0, false);
  int dev = -1;
  const DType dt = check_params(op, slots, &dev);
  cpu::OptPlan pl = base_plan(cpu::OptRule::Adam, dt, slots, s);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    check_state(op, slots[i], i, 0, "exp_avgs", true);
    check_state(op, slots[i], i, 1, "exp_avg_sqs", true);
    if (o.amsgrad) check_state(op, slots[i], i, 2, "max_exp_avg_sqs", true);
    pl.items[i].bf16 = check_bf16(op, slots[i], i, o.amsgrad ? 3 : 2);
    KX_CHECK_VALUE(!(pl.items[i].bf16 && o.amsgrad), op,
                   "amsgrad is not supported with bfloat16 state (params[", i, "])");
  }
  pl.lr = o.lr;
  pl.beta1 = o.beta1;
  pl.beta2 = o.beta2;
  pl.eps = o.eps;
  pl.wd = o.weight_decay;
  pl.decoupled = o.decoupled;
  pl.amsgrad = o.amsgrad;
  check_disjoint(op, slots, pl, {"exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"});
  run(op, pl, dev);
}

void adax(const std::vector<Slot>& slots, const AdaxOptions& o, const StepInfo& s) {
  const char* op = "optim.adax_";
  check_step(op, s);
  check_num(op, "lr", o.lr, 0.0, false);
  check_beta(op, "beta1", o.beta1);
  check_num(op, "beta2", o.beta2, 0.0, true);
  check_num(op, "eps", o.eps, 0.0, false);
  check_num(op, "weight_decay", o.weight_decay, 0.0, false);
  int dev = -1;
  const DType dt = check_params(op, slots, &dev);
  cpu::OptPlan pl = base_plan(cpu::OptRule::Adax, dt, slots, s);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    check_state(op, slots[i], i, 0, "exp_avgs", true);
    check_state(op, slots[i], i, 1, "exp_avg_sqs", true);
    pl.items[i].bf16 = check_bf16(op, slots[i], i, 2);
  }
  KX_CHECK_VALUE(std::isfinite(std::expm1(static_cast<double>(s.step) * std::log1p(o.beta2))), op,
                 "(1 + beta2)^step overflows; got beta2 ", o.beta2, ", step ", s.step);
  pl.lr = o.lr;
  pl.beta1 = o.beta1;
  pl.beta2 = o.beta2;
  pl.eps = o.eps;
  pl.wd = o.weight_decay;
  check_disjoint(op, slots, pl, {"exp_avgs", "exp_avg_sqs"});
  run(op, pl, dev);
}

void lion(const std::vector<Slot>& slots, const LionOptions& o, const StepInfo& s) {
  const char* op = "optim.lion_";
  check_step(op, s);
  check_num(op, "lr", o.lr, 0.0, false);
  check_beta(op, "beta1", o.beta1);
  check_beta(op, "beta2", o.beta2);
  check_num(op, "weight_decay", o.weight_decay, 0.0, false);
  int dev = -1;
  const DType dt = check_params(op, slots, &dev);
  cpu::OptPlan pl = base_plan(cpu::OptRule::Lion, dt, slots, s);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    check_state(op, slots[i], i, 0, "exp_avgs", true);
    pl.items[i].bf16 = check_bf16(op, slots[i], i, 1);
  }
  pl.lr = o.lr;
  pl.beta1 = o.beta1;
  pl.beta2 = o.beta2;
  pl.wd = o.weight_decay;
  check_disjoint(op, slots, pl, {"exp_avgs"});
  run(op, pl, dev);
}

void lamb(const std::vector<Slot>& slots, const LambOptions& o, const StepInfo& s) {
  const char* op = "optim.lamb_";
  check_step(op, s);
  check_num(op, "lr", o.lr, 0.0, false);
  check_beta(op, "beta1", o.beta1);
  check_beta(op, "beta2", o.beta2);
  check_num(op, "eps", o.eps, 0.0, false);
  check_num(op, "weight_decay", o.weight_decay, 0.0, false);
  int dev = -1;
  const DType dt = check_params(op, slots, &dev);
  if (dev >= 0) cuda::no_kernel(op);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    check_state(op, slots[i], i, 0, "exp_avgs", false);
    check_state(op, slots[i], i, 1, "exp_avg_sqs", false);
  }
  cpu::OptPlan pl = base_plan(cpu::OptRule::Lamb, dt, slots, s);
  pl.lr = o.lr;
  pl.beta1 = o.beta1;
  pl.beta2 = o.beta2;
  pl.eps = o.eps;
  pl.wd = o.weight_decay;
  check_disjoint(op, slots, pl, {"exp_avgs", "exp_avg_sqs"});
  cpu::optim_run(pl);
}

std::optional<FactoredShapes> adafactor_shapes(const std::vector<std::int64_t>& shape,
                                               std::int64_t min_dim_size_to_factor) {
  if (shape.size() < 2) return std::nullopt;
  std::vector<int> ax(shape.size());
  std::iota(ax.begin(), ax.end(), 0);
  std::stable_sort(ax.begin(), ax.end(), [&](int a, int b) {
    return shape[static_cast<std::size_t>(a)] < shape[static_cast<std::size_t>(b)];
  });
  const int a1 = ax.back(), a2 = ax[ax.size() - 2];
  if (shape[static_cast<std::size_t>(a2)] < min_dim_size_to_factor) return std::nullopt;
  FactoredShapes f;
  f.a1 = a1;
  f.a2 = a2;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (static_cast<int>(i) != a1) f.row.push_back(shape[i]);
    if (static_cast<int>(i) != a2) f.col.push_back(shape[i]);
  }
  return f;
}

void adafactor(const std::vector<Slot>& slots, const AdafactorOptions& o, const StepInfo& s) {
  const char* op = "optim.adafactor_";
  check_step(op, s);
  const double t = static_cast<double>(s.step);
  if (o.lr) check_num(op, "lr", *o.lr, 0.0, false);
  check_beta(op, "beta1", o.beta1);
  if (o.beta2) check_beta(op, "beta2", *o.beta2);
  check_num(op, "eps1", o.eps1, 0.0, false);
  check_num(op, "eps2", o.eps2, 0.0, false);
  check_num(op, "d", o.d, 0.0, true);
  int dev = -1;
  const DType dt = check_params(op, slots, &dev);
  if (dev >= 0) cuda::no_kernel(op);
  cpu::OptPlan pl = base_plan(cpu::OptRule::Adafactor, dt, slots, s);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const Slot& sl = slots[i];
    cpu::OptItem& it = pl.items[i];
    if (o.beta1 > 0.0) check_state(op, sl, i, 0, "exp_avgs", false);
    else it.s[0] = nullptr;
    const bool full = !absent(sl, 1);
    KX_CHECK_VALUE(full != (!absent(sl, 2) || !absent(sl, 3)), op,
                   "params[", i, "] needs either exp_avg_sqs[", i, "] (full) or exp_avg_sq_rows[", i,
                   "] and exp_avg_sq_cols[", i, "] (factored), not ", full ? "both" : "neither");
    if (full) {
      check_state(op, sl, i, 1, "exp_avg_sqs", false);
      continue;
    }
    const auto f = adafactor_shapes(sl.param.shape, 0);
    KX_CHECK_VALUE(f.has_value(), op, "params[", i, "] has ", sl.param.ndim(),
                   " axes; factored state needs at least 2 (pass exp_avg_sqs[", i, "] instead)");
    check_state(op, sl, i, 2, "exp_avg_sq_rows", false, &f->row);
    check_state(op, sl, i, 3, "exp_avg_sq_cols", false, &f->col);
    it.factored = true;
    const int lo = std::min(f->a1, f->a2), hi = std::max(f->a1, f->a2);
    it.a1_hi = f->a1 == hi;
    it.P0 = it.P1 = it.P2 = 1;
    for (int a = 0; a < sl.param.ndim(); ++a) {
      const std::int64_t d = sl.param.dim(a);
      if (a < lo) it.P0 *= d;
      else if (a == lo) it.na = d;
      else if (a < hi) it.P1 *= d;
      else if (a == hi) it.nb = d;
      else it.P2 *= d;
    }
  }
  pl.lr = o.lr ? *o.lr : std::min(1.0 / std::sqrt(t), 1e-2) * (o.multiply_by_parameter_scale ? 1.0 : 0.05);
  pl.beta2 = o.beta2 ? *o.beta2 : 1.0 - std::pow(t, -0.8);
  pl.beta1 = o.beta1;
  pl.eps1 = o.eps1;
  pl.eps2 = o.eps2;
  pl.d = o.d;
  pl.mbps = o.multiply_by_parameter_scale;
  check_disjoint(op, slots, pl, {"exp_avgs", "exp_avg_sqs", "exp_avg_sq_rows", "exp_avg_sq_cols"});
  cpu::optim_run(pl);
}

void amos(const std::vector<Slot>& slots, const AmosOptions& o, const StepInfo& s) {
  const char* op = "optim.amos_";
  check_step(op, s);
  check_num(op, "lr", o.lr, 0.0, false);
  check_beta(op, "beta", o.beta);
  check_num(op, "zeta", o.zeta, 0.0, false);
  check_num(op, "eps", o.eps, 0.0, true);
  check_num(op, "finetune_rate", o.finetune_rate, 0.0, false);
  KX_CHECK_VALUE(o.eta.size() == 1 || o.eta.size() == slots.size(), op,
                 "eta must be one number or one per array (", slots.size(), "); got ", o.eta.size());
  for (double e : o.eta) check_num(op, "eta", e, 0.0, false);
  int dev = -1;
  const DType dt = check_params(op, slots, &dev);
  if (dev >= 0) cuda::no_kernel(op);
  cpu::OptPlan pl = base_plan(cpu::OptRule::Amos, dt, slots, s);
  const std::vector<std::int64_t> scalar;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const Slot& sl = slots[i];
    const bool red = !absent(sl, 0) && sl.state[0].ndim() == 0 && sl.param.ndim() != 0;
    check_state(op, sl, i, 0, "exp_avg_sqs", false, red ? &scalar : nullptr);
    check_state(op, sl, i, 1, "decays", false, red ? &scalar : nullptr);
    pl.items[i].reduced = red;
    pl.items[i].eta = o.eta.size() == 1 ? o.eta[0] : o.eta[i];
  }
  pl.lr = o.lr;
  pl.beta = o.beta;
  pl.zeta = o.zeta;
  pl.eps = o.eps;
  pl.fr = o.finetune_rate;
  check_disjoint(op, slots, pl, {"exp_avg_sqs", "decays"});
  cpu::optim_run(pl);
}

namespace {
/// The grads' device (-1: host), one for all.
int check_grads(const char* op, const std::vector<Array>& grads) {
  const int dev = grads.empty() ? -1 : grads[0].device;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const std::string gn = nth("grads", i);
    api::check_ndim(op, grads[i], gn.c_str(), grads[i].ndim(), "", true);
    api::check_float(op, grads[i], gn.c_str());
    api::check_device(op, grads[i], gn.c_str(), dev, "grads[0]");
  }
  return dev;
}

/// Gradients scaled in place must not share memory (see check_disjoint).
void check_grads_disjoint(const char* op, const std::vector<Array>& grads) {
  std::vector<Written> w;
  for (std::size_t i = 0; i < grads.size(); ++i) add_written(w, grads[i].data, grads[i], nth("grads", i));
  check_disjoint(op, std::move(w));
}
}  // namespace

double grad_norm(const std::vector<Array>& grads, bool* finite) {
  const char* op = "optim.grad_norm";
  const int dev = check_grads(op, grads);
  bool bad = false;
  const double n = std::sqrt(dev >= 0 ? cuda::optim_sumsq(op, grads, dev, &bad) : cpu::optim_sumsq(grads, &bad));
  if (finite) *finite = !bad && std::isfinite(n);
  return n;
}

double clip_grad_norm(const std::vector<Array>& grads, double max_norm, ClipMode mode) {
  const char* op = "optim.clip_grad_norm_";
  const int dev = check_grads(op, grads);
  check_num(op, "max_norm", max_norm, 0.0, false);
  check_grads_disjoint(op, grads);
  bool bad = false;
  const double n = std::sqrt(dev >= 0 ? cuda::optim_sumsq(op, grads, dev, &bad) : cpu::optim_sumsq(grads, &bad));
  if (bad || !std::isfinite(n)) return n;  // NaN or inf: the caller decides; nothing is scaled
  const double f = mode == ClipMode::Clip ? (n > 0.0 ? std::min(1.0, max_norm / n) : 1.0)
                                          : (n + max_norm > 0.0 ? max_norm / (n + max_norm) : 1.0);
  if (f != 1.0) {
    if (dev >= 0) cuda::optim_scale(op, grads, dev, f);
    else cpu::optim_scale(grads, f);
  }
  return n;
}

void child_tuning(const std::vector<Array>& grads, double p, std::uint64_t seed, std::int64_t step) {
  const char* op = "optim.child_tuning_";
  if (check_grads(op, grads) >= 0) cuda::no_kernel(op);
  KX_CHECK_VALUE(std::isfinite(p) && p > 0.0 && p <= 1.0, op, "p must be in (0, 1]; got ", p);
  check_grads_disjoint(op, grads);
  KX_CHECK_VALUE(step >= 0, op, "step must be >= 0; got ", step);
  const std::uint64_t thresh = static_cast<std::uint64_t>(std::floor(p * 4294967296.0));
  cpu::optim_child(grads, thresh, 1.0 / p, seed, step);
}

}  // namespace optim
}  // namespace kexue
