// csrc/bindings/losses.cpp - kexue._core.losses_*: numpy in, outputs
// allocated, the GIL released around the kernel.
#include "bindings/convert.hpp"
#include "kexue/losses.hpp"

namespace kexue {
namespace bind {

namespace {

std::vector<py::ssize_t> shape_of(const Array& a, bool drop_last) {
  std::vector<py::ssize_t> s(a.shape.begin(), a.shape.end());
  if (drop_last && !s.empty()) s.pop_back();
  return s;
}

/// The outputs of one loss call: loss [...] and, when asked, grad [..., C].
struct Outputs {
  py::array loss, grad;  // grad only when with_grad (a default py::array is not "none")
  Array lv, gv;
  bool with_grad;
  Outputs(const Array& s, bool return_grad, const char* op)
      : loss(empty(float_out(s), shape_of(s, true))), with_grad(return_grad) {
    lv = view(loss, op, "loss");
    if (return_grad) {
      grad = empty(float_out(s), shape_of(s, false));
      gv = view(grad, op, "grad");
    }
  }
  const Array* grad_view() const { return with_grad ? &gv : nullptr; }
  py::object result() const {
    if (with_grad) return py::make_tuple(loss, grad);
    return loss;
  }
};

}  // namespace

void register_losses(py::module_& m) {
  m.def(
      "losses_multilabel_crossentropy",
      [](const py::array& logits, const py::array& targets, const std::optional<py::array>& mask,
         bool return_grad, bool soft) {
        const char* op = soft ? "losses.multilabel_crossentropy_soft"
                              : "losses.multilabel_crossentropy";
        const Array s = view(logits, op, "logits"), t = view(targets, op, soft ? "probs" : "targets");
        const std::optional<Array> mk = view(mask, op, "mask");
        Outputs o(s, return_grad, op);
        {
          py::gil_scoped_release nogil;
          if (soft)
            losses::multilabel_crossentropy_soft(s, t, mk, o.lv, o.grad_view());
          else
            losses::multilabel_crossentropy(s, t, mk, o.lv, o.grad_view());
        }
        return o.result();
      },
      py::arg("logits"), py::arg("targets"), py::kw_only(), py::arg("mask") = py::none(),
      py::arg("return_grad") = false, py::arg("soft") = false);

  m.def(
      "losses_sparse_multilabel_crossentropy",
      [](const py::array& logits, const py::array& index, bool mask_zero, bool return_grad) {
        const char* op = "losses.sparse_multilabel_crossentropy";
        const Array s = view(logits, op, "logits"), ix = view(index, op, "positive_index");
        Outputs o(s, return_grad, op);
        {
          py::gil_scoped_release nogil;
          losses::sparse_multilabel_crossentropy(s, ix, mask_zero, o.lv, o.grad_view());
        }
        return o.result();
      },
      py::arg("logits"), py::arg("positive_index"), py::kw_only(), py::arg("mask_zero") = false,
      py::arg("return_grad") = false);
}

}  // namespace bind
}  // namespace kexue
