// csrc/bindings/convert.hpp - numpy <-> kexue::Array, output allocation.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "kexue/core/view.hpp"

namespace kexue {
namespace bind {

namespace py = pybind11;

/// kexue::Error -> ValueError / TypeError / IndexError / RuntimeError (CUDA
/// runtime errors), for every module of the package.
inline void register_errors() {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      switch (e.kind()) {
        case ErrorKind::Type: PyErr_SetString(PyExc_TypeError, e.what()); break;
        case ErrorKind::Index: PyErr_SetString(PyExc_IndexError, e.what()); break;
        case ErrorKind::Runtime: PyErr_SetString(PyExc_RuntimeError, e.what()); break;
        default: PyErr_SetString(PyExc_ValueError, e.what()); break;
      }
    }
  });
}

/// View a numpy array without copying. The Python layer has already made it
/// C-contiguous; anything else here is a bug in that layer, reported as such.
inline Array view(const py::array& a, const char* op, const char* name) {
  if (!(a.flags() & py::array::c_style))
    fail(ErrorKind::Value, op, name, " must be C-contiguous (internal: kexue's Python layer makes it so)");
  const py::dtype dt = a.dtype();
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  DType t = DType::Other;
  if (kind == 'f' && size == 4) t = DType::Float32;
  else if (kind == 'f' && size == 8) t = DType::Float64;
  else if (kind == 'i' && size == 4) t = DType::Int32;
  else if (kind == 'i' && size == 8) t = DType::Int64;
  else if (kind == 'b' && size == 1) t = DType::Bool;
  else if (kind == 'u' && size == 2) t = DType::UInt16;
  else if (kind == 'i' && size == 1) t = DType::Int8;
  std::vector<std::int64_t> shape(static_cast<std::size_t>(a.ndim()));
  for (py::ssize_t i = 0; i < a.ndim(); ++i) shape[static_cast<std::size_t>(i)] = a.shape(i);
  return Array(const_cast<void*>(a.data()), t, std::move(shape), py::str(dt).cast<std::string>());
}

inline std::optional<Array> view(const std::optional<py::array>& a, const char* op,
                                 const char* name) {
  if (!a) return std::nullopt;
  return view(*a, op, name);
}

/// A new C-contiguous numpy array of kexue dtype `t`.
inline py::array empty(DType t, const std::vector<py::ssize_t>& shape) {
  switch (t) {
    case DType::Float32: return py::array_t<float>(shape);
    case DType::Float64: return py::array_t<double>(shape);
    case DType::Int64: return py::array_t<std::int64_t>(shape);
    case DType::Int8: return py::array_t<std::int8_t>(shape);
    default: return py::array_t<double>(shape);
  }
}

/// Output dtype for an op: the emissions' dtype if it is a float, else
/// float64 (the front door will reject the input with the real message).
inline DType float_out(const Array& em) { return em.is_float() ? em.dtype : DType::Float64; }

inline py::ssize_t dim_or0(const Array& a, int i) {
  return a.ndim() > i ? static_cast<py::ssize_t>(a.dim(i)) : 0;
}

}  // namespace bind
}  // namespace kexue
