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

  // crf.viterbi into caller-allocated GPU outputs (kexue.crf allocates them
  // with the emissions' library); None for the absent options.
  m.def(
      "crf_viterbi_into",
      [](const py::object& em, const py::object& trans, const py::object& mask, const py::object& start,
         const py::object& end, const py::object& allowed, const py::object& allowed_start,
         const py::object& allowed_end, const py::object& paths, const py::object& scores) {
        const char* op = "crf.viterbi";
        auto view = [&](const py::object& o, const char* name, bool writes) {
          if (auto a = kexue::bind::gpu_view(op, o, name, writes)) return *a;
          kexue::fail(kexue::ErrorKind::Type, op, name,
                      " must be an array in GPU memory (as the emissions are); got ",
                      py::str(py::type::of(o)).cast<std::string>());
        };
        auto opt = [&](const py::object& o, const char* name) -> std::optional<kexue::Array> {
          if (o.is_none()) return std::nullopt;
          return view(o, name, false);
        };
        kexue::crf::Options o;
        o.mask = opt(mask, "mask");
        o.start = opt(start, "start");
        o.end = opt(end, "end");
        o.allowed = opt(allowed, "allowed");
        o.allowed_start = opt(allowed_start, "allowed_start");
        o.allowed_end = opt(allowed_end, "allowed_end");
        const kexue::Array e = view(em, "emissions", false), t = view(trans, "transitions", false);
        const kexue::Array p = view(paths, "paths", true), s = view(scores, "scores", true);
        py::gil_scoped_release nogil;
        kexue::crf::viterbi(e, t, o, p, s);
      },
      py::arg("emissions"), py::arg("transitions"), py::arg("mask"), py::arg("start"), py::arg("end"),
      py::arg("allowed"), py::arg("allowed_start"), py::arg("allowed_end"), py::arg("paths"),
      py::arg("scores"));
}
