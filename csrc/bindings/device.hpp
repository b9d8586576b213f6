// csrc/bindings/device.hpp - Python objects in GPU memory -> kexue::Array
// with `device` set: torch's CUDA tensors (through their own attributes) and
// anything exposing __cuda_array_interface__. Shared by the modules' bindings.
#pragma once
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "bindings/convert.hpp"
#include "cuda/backend.hpp"

namespace kexue {
namespace bind {

/// The dtype a __cuda_array_interface__ typestr names ("<f4" -> float32).
inline DType cai_dtype(const std::string& ts, std::string* name) {
  *name = ts;
  if (ts.size() < 3) return DType::Other;
  const char kind = ts[1];
  const std::string size = ts.substr(2);
  if (ts[0] == '>') return DType::Other;  // big-endian: never on a GPU
  if (kind == 'f' && size == "4") return DType::Float32;
  if (kind == 'f' && size == "8") return DType::Float64;
  if (kind == 'f' && size == "2") *name = "float16";
  if (kind == 'u' && size == "2") return DType::UInt16;
  if (kind == 'i' && size == "1") return DType::Int8;
  if (kind == 'i' && size == "4") return DType::Int32;
  if (kind == 'i' && size == "8") return DType::Int64;
  if (kind == 'b' && size == "1") return DType::Bool;
  if (kind == 'V' && size == "2") *name = "bfloat16";  // torch's bfloat16 typestr
  return DType::Other;
}

/// An array in GPU memory, from its __cuda_array_interface__ (CuPy, torch,
/// Numba, JAX...): C-contiguous (kexue never copies device arrays), no mask;
/// the device from __dlpack_device__ when the object has it, else from the
/// pointer itself.
inline Array cuda_view(const char* op, const py::object& o, const std::string& nm, bool writes) {
  const py::dict cai = o.attr("__cuda_array_interface__").cast<py::dict>();
  if (cai.contains("mask") && !cai["mask"].is_none())
    fail(ErrorKind::Value, op, nm, " has a mask in its __cuda_array_interface__; masked arrays are not supported");
  std::vector<std::int64_t> shape;
  for (auto d : cai["shape"].cast<py::tuple>()) shape.push_back(d.cast<std::int64_t>());
  std::string name;
  const DType t = cai_dtype(cai["typestr"].cast<std::string>(), &name);
  const py::tuple data = cai["data"].cast<py::tuple>();
  const auto ptr = data[0].cast<std::uintptr_t>();
  const bool readonly = data[1].cast<bool>();
  std::int64_t item = t == DType::Float64 || t == DType::Int64 ? 8 : t == DType::Float32 || t == DType::Int32 ? 4
                      : t == DType::UInt16 ? 2 : 1;
  if (t == DType::Other) {
    const std::string ts = cai["typestr"].cast<std::string>();
    item = ts.size() > 2 ? std::atoll(ts.c_str() + 2) : 1;
  }
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  if (cai.contains("strides") && !cai["strides"].is_none() && n > 1) {
    const py::tuple st = cai["strides"].cast<py::tuple>();
    std::int64_t want = item;
    for (std::size_t k = shape.size(); k-- > 0;) {
      if (shape[k] != 1 && st[k].cast<std::int64_t>() != want)
        fail(ErrorKind::Value, op, nm, " must be C-contiguous (kexue does not copy arrays in GPU memory); got strides ",
             py::str(st).cast<std::string>());
      want *= shape[k];
    }
  }
  if (writes && readonly) fail(ErrorKind::Value, op, nm, " must be writeable; got a read-only array");
  Array a(reinterpret_cast<void*>(ptr), t, std::move(shape), name);
  if (py::hasattr(o, "__dlpack_device__")) {
    const py::tuple dev = o.attr("__dlpack_device__")().cast<py::tuple>();
    const int type = dev[0].cast<int>();
    if (type != 2 && type != 13)  // kDLCUDA, kDLCUDAManaged
      fail(ErrorKind::Value, op, nm, " has a __cuda_array_interface__ but its DLPack device type is ", type);
    a.device = dev[1].cast<int>();
  } else {
    a.device = cuda::pointer_device(a.data);
  }
  return a;
}

/// torch's CUDA tensors, read through their own attributes: a third of the
/// cost of building their __cuda_array_interface__ (a Python property), and
/// it works for tensors that require grad (nn.Parameter), whose interface
/// torch refuses. `torch` is found in sys.modules (never imported here).
struct TorchTypes {
  py::object tensor, f32, f64, u16, i8, i32, i64, b;
};

inline const TorchTypes* torch_types() {
  static TorchTypes* t = nullptr;  // leaked: outlives the interpreter's teardown
  if (t == nullptr) {
    const py::dict modules = py::module_::import("sys").attr("modules");
    if (!modules.contains("torch")) return nullptr;
    const py::object torch = modules["torch"];
    if (!py::hasattr(torch, "Tensor") || !py::hasattr(torch, "float32")) return nullptr;
    t = new TorchTypes{torch.attr("Tensor"), torch.attr("float32"), torch.attr("float64"),
                       torch.attr("uint16"), torch.attr("int8"),    torch.attr("int32"),
                       torch.attr("int64"),  torch.attr("bool")};
  }
  return t;
}

/// A torch tensor on a CUDA device, or std::nullopt when `o` is not one.
inline std::optional<Array> torch_cuda_view(const char* op, const py::object& o, const std::string& nm) {
  const TorchTypes* tt = torch_types();
  if (tt == nullptr || !py::isinstance(o, tt->tensor) || !o.attr("is_cuda").cast<bool>()) return std::nullopt;
  const py::object dt = o.attr("dtype");
  DType t = DType::Other;
  if (dt.is(tt->f32)) t = DType::Float32;
  else if (dt.is(tt->f64)) t = DType::Float64;
  else if (dt.is(tt->u16)) t = DType::UInt16;
  else if (dt.is(tt->i8)) t = DType::Int8;
  else if (dt.is(tt->i32)) t = DType::Int32;
  else if (dt.is(tt->i64)) t = DType::Int64;
  else if (dt.is(tt->b)) t = DType::Bool;
  std::string name;  // only an unsupported dtype needs its name (for the message)
  if (t == DType::Other) {
    name = py::str(dt).cast<std::string>();
    if (name.rfind("torch.", 0) == 0) name = name.substr(6);
  }
  std::vector<std::int64_t> shape;
  for (auto d : o.attr("shape")) shape.push_back(d.cast<std::int64_t>());
  if (!o.attr("is_contiguous")().cast<bool>())
    fail(ErrorKind::Value, op, nm, " must be C-contiguous (kexue does not copy arrays in GPU memory); got strides ",
         py::str(o.attr("stride")()).cast<std::string>());
  Array a(reinterpret_cast<void*>(o.attr("data_ptr")().cast<std::uintptr_t>()), t, std::move(shape), name);
  a.device = o.attr("get_device")().cast<int>();
  return a;
}

/// `o` as a GPU array, or nullopt when it is not one (host arrays are the
/// caller's business).
inline std::optional<Array> gpu_view(const char* op, const py::object& o, const std::string& nm, bool writes) {
  if (auto t = torch_cuda_view(op, o, nm)) return t;
  if (py::hasattr(o, "__cuda_array_interface__")) return cuda_view(op, o, nm, writes);
  return std::nullopt;
}

}  // namespace bind
}  // namespace kexue
