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

py::object finish(py::array loss, py::object grad, bool return_grad) {
  if (return_grad) return py::make_tuple(loss, grad);
  return std::move(loss);
}

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
        py::array loss = empty(float_out(s), shape_of(s, true));
        py::object grad = py::none();
        Array gv;
        if (return_grad) {
          py::array g = empty(float_out(s), shape_of(s, false));
          gv = view(g, op, "grad");
          grad = g;
        }
        const Array lv = view(loss, op, "loss");
        {
          py::gil_scoped_release nogil;
          if (soft)
            losses::multilabel_crossentropy_soft(s, t, mk, lv, return_grad ? &gv : nullptr);
          else
            losses::multilabel_crossentropy(s, t, mk, lv, return_grad ? &gv : nullptr);
        }
        return finish(loss, grad, return_grad);
      },
      py::arg("logits"), py::arg("targets"), py::kw_only(), py::arg("mask") = py::none(),
      py::arg("return_grad") = false, py::arg("soft") = false);

  m.def(
      "losses_sparse_multilabel_crossentropy",
      [](const py::array& logits, const py::array& index, bool mask_zero, bool return_grad) {
        const char* op = "losses.sparse_multilabel_crossentropy";
        const Array s = view(logits, op, "logits"), ix = view(index, op, "positive_index");
        py::array loss = empty(float_out(s), shape_of(s, true));
        py::object grad = py::none();
        Array gv;
        if (return_grad) {
          py::array g = empty(float_out(s), shape_of(s, false));
          gv = view(g, op, "grad");
          grad = g;
        }
        const Array lv = view(loss, op, "loss");
        {
          py::gil_scoped_release nogil;
          losses::sparse_multilabel_crossentropy(s, ix, mask_zero, lv,
                                                 return_grad ? &gv : nullptr);
        }
        return finish(loss, grad, return_grad);
      },
      py::arg("logits"), py::arg("positive_index"), py::kw_only(), py::arg("mask_zero") = false,
      py::arg("return_grad") = false);
}

}  // namespace bind
}  // namespace kexue
