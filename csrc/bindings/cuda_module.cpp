// csrc/bindings/cuda_module.cpp - the private module kexue._cuda: the ops
// that have CUDA kernels, over arrays exposing __cuda_array_interface__
// (CuPy, torch, Numba, ...). Built only with CUDA (KEXUE_CUDA), linked to
// the CUDA runtime statically, and imported by kexue only when a GPU array
// is passed (kexue.cuda), so `import kexue` never needs the CUDA runtime.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "bindings/convert.hpp"
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
}
