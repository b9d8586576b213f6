// csrc/bindings/module.cpp - the private module kexue._core: error mapping,
// threads, build information, and one register_<area> call per area.
#include <pybind11/pybind11.h>

#include "bindings/convert.hpp"
#include "cpu/dispatch.hpp"
#include "kexue/kexue.hpp"

namespace py = pybind11;

namespace kexue {
namespace bind {
void register_attention(py::module_& m);
void register_crf(py::module_& m);
void register_memm(py::module_& m);
void register_losses(py::module_& m);
void register_global_pointer(py::module_& m);
void register_optim(py::module_& m);
void register_samplers(py::module_& m);
void register_samplers_discrete(py::module_& m);
void register_text(py::module_& m);
}  // namespace bind
}  // namespace kexue

PYBIND11_MODULE(_core, m) {
  m.doc() = "kexue's compiled core (private: use the kexue package)";
  kexue::bind::register_errors();
  m.attr("__version__") = kexue::version();
  m.def("get_num_threads", &kexue::get_num_threads, "Threads used by kexue's kernels.");
  m.def("set_num_threads", &kexue::set_num_threads, py::arg("n"),
        "Set the threads used by kexue's kernels (>= 1).");
  m.def("simd_level", &kexue::simd_level, "The SIMD level the CPU kernels run at.");
  m.def("simd_level_supported",
        [] { return kexue::cpu::simd_level_name(kexue::cpu::simd_level_supported()); });
  m.def("simd_levels_built", [] { return std::string(kexue::cpu::simd_levels_built()); },
        "The SIMD levels compiled into this build.");
  m.def("set_simd_level", [](const std::string& s) { kexue::cpu::set_simd_level(s.c_str()); },
        py::arg("level"), "Force the SIMD level (testing): scalar, avx2 or avx512.");
  m.def("compiler_info", [] { return std::string(KEXUE_COMPILER_ID); });
  m.def("cuda_built", &kexue::cuda::built);
  kexue::bind::register_attention(m);
  kexue::bind::register_crf(m);
  kexue::bind::register_memm(m);
  kexue::bind::register_losses(m);
  kexue::bind::register_global_pointer(m);
  kexue::bind::register_optim(m);
  kexue::bind::register_samplers(m);
  kexue::bind::register_samplers_discrete(m);
  kexue::bind::register_text(m);
}
