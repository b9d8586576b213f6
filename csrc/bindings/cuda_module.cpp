// csrc/bindings/cuda_module.cpp - the private module kexue._cuda: the ops
// that have CUDA kernels, over arrays exposing __cuda_array_interface__
// (CuPy, torch, Numba, ...). Built only with CUDA (KEXUE_CUDA), linked to
// the CUDA runtime statically, and imported by kexue only when a GPU array
// is passed (kexue.cuda), so `import kexue` never needs the CUDA runtime.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>

#include "bindings/convert.hpp"
#include "bindings/device.hpp"
#include "kexue/kexue.hpp"

namespace py = pybind11;

namespace kexue {
namespace bind {
void register_optim(py::module_& m);
}  // namespace bind
}  // namespace kexue

namespace {

/// A GPU array argument of `op`, or a TypeError naming it.
kexue::Array gpu_arg(const char* op, const py::object& o, const char* name, bool writes) {
  if (auto a = kexue::bind::gpu_view(op, o, name, writes)) return *a;
  kexue::fail(kexue::ErrorKind::Type, op, name, " must be an array in GPU memory (as the emissions are); got ",
              py::str(py::type::of(o)).cast<std::string>());
}

/// The emissions, transitions and options of a CRF call on GPU arrays.
struct CrfViews {
  kexue::Array em, trans;
  kexue::crf::Options opt;
  CrfViews(const char* op, const py::object& e, const py::object& t, const py::object& mask,
           const py::object& start, const py::object& end, const py::object& allowed,
           const py::object& allowed_start, const py::object& allowed_end)
      : em(gpu_arg(op, e, "emissions", false)), trans(gpu_arg(op, t, "transitions", false)) {
    auto o = [&](const py::object& x, const char* name) -> std::optional<kexue::Array> {
      if (x.is_none()) return std::nullopt;
      return gpu_arg(op, x, name, false);
    };
    opt.mask = o(mask, "mask");
    opt.start = o(start, "start");
    opt.end = o(end, "end");
    opt.allowed = o(allowed, "allowed");
    opt.allowed_start = o(allowed_start, "allowed_start");
    opt.allowed_end = o(allowed_end, "allowed_end");
  }
};

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "kexue's CUDA kernels (private: use the kexue package; see kexue.cuda)";
  kexue::bind::register_errors();
  m.attr("__version__") = kexue::version();
  m.def("built", &kexue::cuda::built);
  m.def("device_count", &kexue::cuda::device_count, "CUDA devices visible (0 without a driver or GPU).");
  m.def(
      "set_stream", [](std::uintptr_t s) { kexue::cuda::set_current_stream(reinterpret_cast<void*>(s)); },
      py::arg("stream"), "The calling thread's stream for kexue's launches (a cudaStream_t as an int; 0 = default).");
  m.def("get_stream", [] { return reinterpret_cast<std::uintptr_t>(kexue::cuda::current_stream()); });
  kexue::bind::register_optim(m);

  // crf.viterbi, log_partition, log_likelihood, nll_grad and marginals into caller-allocated GPU
  // outputs (kexue.crf allocates them with the emissions' library); None for
  // the absent options.
  m.def(
      "crf_viterbi_into",
      [](const py::object& em, const py::object& trans, const py::object& mask, const py::object& start,
         const py::object& end, const py::object& allowed, const py::object& allowed_start,
         const py::object& allowed_end, const py::object& paths, const py::object& scores) {
        const char* op = "crf.viterbi";
        const CrfViews v(op, em, trans, mask, start, end, allowed, allowed_start, allowed_end);
        const kexue::Array p = gpu_arg(op, paths, "paths", true), s = gpu_arg(op, scores, "scores", true);
        py::gil_scoped_release nogil;
        kexue::crf::viterbi(v.em, v.trans, v.opt, p, s);
      },
      py::arg("emissions"), py::arg("transitions"), py::arg("mask"), py::arg("start"), py::arg("end"),
      py::arg("allowed"), py::arg("allowed_start"), py::arg("allowed_end"), py::arg("paths"),
      py::arg("scores"));
  m.def(
      "crf_nll_grad_into",
      [](const py::object& em, const py::object& tags, const py::object& trans, const py::object& mask,
         const py::object& start, const py::object& end, const py::object& allowed, const py::object& allowed_start,
         const py::object& allowed_end, const py::object& loss, const py::object& d_em, const py::object& d_trans,
         const py::object& d_start, const py::object& d_end) {
        const char* op = "crf.nll_grad";
        const CrfViews v(op, em, trans, mask, start, end, allowed, allowed_start, allowed_end);
        const kexue::Array t = gpu_arg(op, tags, "tags", false);
        const kexue::Array l = gpu_arg(op, loss, "loss", true), dh = gpu_arg(op, d_em, "d_emissions", true),
                           dA = gpu_arg(op, d_trans, "d_transitions", true),
                           ds = gpu_arg(op, d_start, "d_start", true), de = gpu_arg(op, d_end, "d_end", true);
        py::gil_scoped_release nogil;
        kexue::crf::nll_grad(v.em, t, v.trans, v.opt, l, dh, dA, ds, de);
      },
      py::arg("emissions"), py::arg("tags"), py::arg("transitions"), py::arg("mask"), py::arg("start"),
      py::arg("end"), py::arg("allowed"), py::arg("allowed_start"), py::arg("allowed_end"), py::arg("loss"),
      py::arg("d_emissions"), py::arg("d_transitions"), py::arg("d_start"), py::arg("d_end"));
  m.def(
      "crf_marginals_into",
      [](const py::object& em, const py::object& trans, const py::object& mask, const py::object& start,
         const py::object& end, const py::object& allowed, const py::object& allowed_start,
         const py::object& allowed_end, const py::object& out) {
        const char* op = "crf.marginals";
        const CrfViews v(op, em, trans, mask, start, end, allowed, allowed_start, allowed_end);
        const kexue::Array o = gpu_arg(op, out, "out", true);
        py::gil_scoped_release nogil;
        kexue::crf::marginals(v.em, v.trans, v.opt, o);
      },
      py::arg("emissions"), py::arg("transitions"), py::arg("mask"), py::arg("start"), py::arg("end"),
      py::arg("allowed"), py::arg("allowed_start"), py::arg("allowed_end"), py::arg("out"));
  // log_partition when tags is None, else log_likelihood
  m.def(
      "crf_forward_into",
      [](const py::object& em, const py::object& tags, const py::object& trans, const py::object& mask,
         const py::object& start, const py::object& end, const py::object& allowed, const py::object& allowed_start,
         const py::object& allowed_end, const py::object& out) {
        const bool ll = !tags.is_none();
        const char* op = ll ? "crf.log_likelihood" : "crf.log_partition";
        const CrfViews v(op, em, trans, mask, start, end, allowed, allowed_start, allowed_end);
        const kexue::Array o = gpu_arg(op, out, "out", true);
        if (ll) {
          const kexue::Array t = gpu_arg(op, tags, "tags", false);
          py::gil_scoped_release nogil;
          kexue::crf::log_likelihood(v.em, t, v.trans, v.opt, o);
        } else {
          py::gil_scoped_release nogil;
          kexue::crf::log_partition(v.em, v.trans, v.opt, o);
        }
      },
      py::arg("emissions"), py::arg("tags"), py::arg("transitions"), py::arg("mask"), py::arg("start"),
      py::arg("end"), py::arg("allowed"), py::arg("allowed_start"), py::arg("allowed_end"), py::arg("out"));
}
