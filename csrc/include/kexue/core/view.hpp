// kexue/core/view.hpp - a non-owning view of a C-contiguous n-d array.
//
// The C++ API takes and writes arrays through Array: a pointer, a dtype and a
// shape (strides are implied: C order). The caller owns the memory. Python's
// layer makes inputs contiguous before they get here; C++ callers pass
// contiguous buffers.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "kexue/core/error.hpp"

namespace kexue {

/// UInt16 holds bfloat16 bits (optimizer state with state_dtype="bfloat16").
/// Int8 holds lattice spins / Potts states (kexue.samplers).
enum class DType : std::uint8_t { Float32, Float64, Int32, Int64, Bool, UInt16, Int8, Other };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
    case DType::UInt16: return "uint16";
    case DType::Int8: return "int8";
    default: return "unsupported";
  }
}

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<std::int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<std::uint16_t> { static constexpr DType value = DType::UInt16; };
template <> struct dtype_of<std::int8_t> { static constexpr DType value = DType::Int8; };

/// A view of a C-contiguous array. `name` is the dtype's own name (e.g.
/// "float16") when dtype is Other, so error messages can say what came.
/// `device`: -1 for host memory, else the CUDA device ordinal the memory
/// lives on (the front doors run such calls on the GPU, see kexue/cuda.hpp).
struct Array {
  void* data = nullptr;
  DType dtype = DType::Other;
  std::vector<std::int64_t> shape;
  std::string name;
  int device = -1;

  Array() = default;
  Array(void* d, DType t, std::vector<std::int64_t> s, std::string n = {})
      : data(d), dtype(t), shape(std::move(s)), name(n.empty() ? dtype_name(t) : std::move(n)) {}

  /// View typed memory: kexue::Array::of(ptr, {B, T, K}).
  template <class T>
  static Array of(const T* ptr, std::initializer_list<std::int64_t> shape) {
    return Array(const_cast<T*>(ptr), dtype_of<T>::value, std::vector<std::int64_t>(shape));
  }

  int ndim() const { return static_cast<int>(shape.size()); }
  std::int64_t dim(int i) const { return shape[static_cast<std::size_t>(i)]; }
  std::int64_t size() const {
    std::int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  template <class T> T* ptr() const { return static_cast<T*>(data); }
  bool is_float() const { return dtype == DType::Float32 || dtype == DType::Float64; }
  bool is_index() const { return dtype == DType::Int32 || dtype == DType::Int64; }
  bool on_gpu() const { return device >= 0; }

  std::string shape_str() const {
    std::ostringstream os;
    os << "(";
    for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
    if (shape.size() == 1) os << ",";
    os << ")";
    return os.str();
  }
};

}  // namespace kexue

/// `x` must be `n`-D; `layout` names the axes, e.g. "[B,T,K]".
#define KX_CHECK_NDIM(op, x, argname, n, layout)                                       \
  KX_CHECK_VALUE((x).ndim() == (n), op, argname, " must be ", n, "-D ", layout, "; got shape ", \
                 (x).shape_str())
/// `x` must have float dtype `dt` (the dtype of the op's main input).
#define KX_CHECK_DTYPE(op, x, argname, dt)                                             \
  KX_CHECK_TYPE((x).dtype == (dt), op, argname, " must have dtype ", ::kexue::dtype_name(dt), \
                "; got ", (x).name)
/// Axis `axis` of `x` must equal `want` (named `what` in the message).
#define KX_CHECK_DIM(op, x, argname, axis, want, what)                                   \
  KX_CHECK_VALUE((x).dim(axis) == (want), op, argname, " axis ", axis, " (", what, ") must be ", \
                 want, "; got shape ", (x).shape_str())
