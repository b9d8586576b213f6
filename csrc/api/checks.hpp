// csrc/api/checks.hpp - the argument checks shared by the front doors.
// Messages: "[kexue.<op>] <arg> must ...; got ...".
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kexue/core/view.hpp"

namespace kexue {
namespace api {

inline std::string shape_str(const std::vector<std::int64_t>& s) {
  return Array(nullptr, DType::Other, s).shape_str();
}

/// ndim, no negative axis, and a size that fits in int64; host memory unless
/// `gpu_ok` (the front doors with CUDA kernels check devices themselves).
inline void check_ndim(const char* op, const Array& x, const char* name, int n,
                       const char* layout, bool gpu_ok = false) {
  KX_CHECK_VALUE(gpu_ok || x.device < 0, op, name, " is in GPU memory (cuda:", x.device,
                 "), and this op has no CUDA kernel yet; pass host arrays");
  KX_CHECK_NDIM(op, x, name, n, layout);
  std::int64_t total = 1;
  for (auto s : x.shape) {
    KX_CHECK_VALUE(s >= 0, op, name, " has a negative axis: shape ", x.shape_str());
    KX_CHECK_VALUE(!__builtin_mul_overflow(total, s, &total), op, name,
                   " is too large: shape ", x.shape_str());
  }
  KX_CHECK_VALUE(total == 0 || x.data != nullptr, op, name, " has no data pointer");
}

/// Where an array lives, for messages: "the host" or "cuda:N".
inline std::string device_str(int device) {
  return device < 0 ? std::string("the host") : "cuda:" + std::to_string(device);
}

/// `x` must live where `ref` (named `ref_name`) lives: one call, one device.
inline void check_device(const char* op, const Array& x, const char* name, int device,
                         const std::string& ref_name) {
  KX_CHECK_VALUE(x.device == device, op, name, " is on ", device_str(x.device), " but ", ref_name,
                 " is on ", device_str(device), "; the arrays of one call must be on one device");
}

inline void check_float(const char* op, const Array& x, const char* name) {
  KX_CHECK_TYPE(x.is_float(), op, name, " must be float32 or float64; got ", x.name);
}

inline void check_dtype(const char* op, const Array& x, const char* name, DType dt) {
  KX_CHECK_DTYPE(op, x, name, dt);
}

inline void check_index(const char* op, const Array& x, const char* name) {
  KX_CHECK_TYPE(x.is_index(), op, name, " must be int32 or int64; got ", x.name);
}

inline void check_shape(const char* op, const Array& x, const char* name,
                        const std::vector<std::int64_t>& want, const char* layout) {
  KX_CHECK_VALUE(x.shape == want, op, name, " must have shape ", shape_str(want), " ", layout,
                 "; got ", x.shape_str());
}

/// A full check of an array argument: ndim, dtype, exact shape.
inline void check_arg(const char* op, const Array& x, const char* name, DType dt,
                      const std::vector<std::int64_t>& want, const char* layout) {
  check_ndim(op, x, name, static_cast<int>(want.size()), layout);
  check_dtype(op, x, name, dt);
  check_shape(op, x, name, want, layout);
}

/// Every entry of int tags in [0, K) where mask (nullable) is true.
inline void check_tags_range(const char* op, const Array& tags, const bool* mask,
                             std::int64_t K) {
  const std::int64_t n = tags.size();
  const std::int64_t T = tags.ndim() >= 2 ? tags.dim(1) : 1;
  for (std::int64_t i = 0; i < n; ++i) {
    if (mask != nullptr && !mask[i]) continue;
    const std::int64_t v = tags.dtype == DType::Int32 ? tags.ptr<std::int32_t>()[i]
                                                      : tags.ptr<std::int64_t>()[i];
    if (v < 0 || v >= K)
      fail(ErrorKind::Index, op, "tags must be in [0, ", K, ") on valid steps; got ", v,
           " at (", i / T, ", ", i % T, ")");
  }
}

/// Convert a float array (float32/float64) to doubles.
inline std::vector<double> to_double(const Array& x) {
  std::vector<double> out(static_cast<std::size_t>(x.size()));
  if (x.dtype == DType::Float32) {
    const float* p = x.ptr<float>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else {
    const double* p = x.ptr<double>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  }
  return out;
}

/// Annealing temperatures: float64 [n_steps], every entry finite and > 0.
inline const double* check_temperatures(const char* op, const Array& temperatures) {
  check_ndim(op, temperatures, "temperatures", 1, "[n_steps]");
  check_dtype(op, temperatures, "temperatures", DType::Float64);
  const double* T = temperatures.ptr<double>();
  for (std::int64_t t = 0; t < temperatures.size(); ++t)
    KX_CHECK_VALUE(std::isfinite(T[t]) && T[t] > 0.0, op,
                   "temperatures must be finite and > 0; got ", T[t], " at step ", t);
  return T;
}

}  // namespace api
}  // namespace kexue
