// csrc/bindings/global_pointer.cpp - kexue._core.gp_*: numpy in, outputs
// allocated, the GIL released around the kernel.
#include <cstring>

#include "bindings/convert.hpp"
#include "kexue/global_pointer.hpp"

namespace kexue {
namespace bind {

namespace {

using OptArr = std::optional<py::array>;

global_pointer::Options options(const char* op, const OptArr& mask, bool rope, double base,
                                bool interleaved, bool tril) {
  global_pointer::Options o;
  o.mask = view(mask, op, "mask");
  o.rope = rope;
  o.rope_base = base;
  o.interleaved = interleaved;
  o.tril_mask = tril;
  return o;
}

#define KX_GP_OPTS                                                                         \
  py::kw_only(), py::arg("mask") = py::none(), py::arg("rope") = true,                     \
      py::arg("rope_base") = 10000.0, py::arg("interleaved") = true, py::arg("tril_mask") = true

py::ssize_t d(const Array& a, int i) { return dim_or0(a, i); }

}  // namespace

void register_global_pointer(py::module_& m) {
  m.def(
      "gp_scores",
      [](const py::array& q, const py::array& k, const OptArr& mask, bool rope, double base,
         bool inter, bool tril) {
        const char* op = "global_pointer.scores";
        const Array qv = view(q, op, "q"), kv = view(k, op, "k");
        const auto o = options(op, mask, rope, base, inter, tril);
        py::array out = empty(float_out(qv), {d(qv, 0), d(qv, 2), d(qv, 1), d(qv, 1)});
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          global_pointer::scores(qv, kv, o, ov);
        }
        return out;
      },
      py::arg("q"), py::arg("k"), KX_GP_OPTS);

  m.def(
      "gp_scores_backward",
      [](const py::array& q, const py::array& k, const py::array& ds, const OptArr& mask,
         bool rope, double base, bool inter, bool tril) {
        const char* op = "global_pointer.scores_backward";
        const Array qv = view(q, op, "q"), kv = view(k, op, "k"), dv = view(ds, op, "d_scores");
        const auto o = options(op, mask, rope, base, inter, tril);
        std::vector<py::ssize_t> shape(qv.shape.begin(), qv.shape.end());
        py::array dq = empty(float_out(qv), shape), dk = empty(float_out(qv), shape);
        const Array dqv = view(dq, op, "dq"), dkv = view(dk, op, "dk");
        {
          py::gil_scoped_release nogil;
          global_pointer::scores_backward(qv, kv, dv, o, dqv, dkv);
        }
        return py::make_tuple(dq, dk);
      },
      py::arg("q"), py::arg("k"), py::arg("d_scores"), KX_GP_OPTS);

  m.def(
      "gp_efficient_scores",
      [](const py::array& h, const py::array& W, const OptArr& bias, const OptArr& mask,
         bool rope, double base, bool inter, bool tril) {
        const char* op = "global_pointer.efficient_scores";
        const Array hv = view(h, op, "h"), Wv = view(W, op, "W");
        const std::optional<Array> bv = view(bias, op, "bias");
        const auto o = options(op, mask, rope, base, inter, tril);
        py::array out = empty(float_out(hv), {d(hv, 0), d(Wv, 1) / 2, d(hv, 1), d(hv, 1)});
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          global_pointer::efficient_scores(hv, Wv, bv, o, ov);
        }
        return out;
      },
      py::arg("h"), py::arg("W"), py::arg("bias") = py::none(), KX_GP_OPTS);

  m.def(
      "gp_efficient_scores_backward",
      [](const py::array& h, const py::array& W, const py::array& ds, const OptArr& bias,
         const OptArr& mask, bool rope, double base, bool inter, bool tril) {
        const char* op = "global_pointer.efficient_scores_backward";
        const Array hv = view(h, op, "h"), Wv = view(W, op, "W"), dv = view(ds, op, "d_scores");
        const std::optional<Array> bv = view(bias, op, "bias");
        const auto o = options(op, mask, rope, base, inter, tril);
        const DType dt = float_out(hv);
        py::array dh = empty(dt, std::vector<py::ssize_t>(hv.shape.begin(), hv.shape.end()));
        py::array dW = empty(dt, std::vector<py::ssize_t>(Wv.shape.begin(), Wv.shape.end()));
        py::array db = empty(dt, {d(Wv, 1)});
        const Array dhv = view(dh, op, "dh"), dWv = view(dW, op, "dW"), dbv = view(db, op, "dbias");
        {
          py::gil_scoped_release nogil;
          global_pointer::efficient_scores_backward(hv, Wv, dv, bv, o, dhv, dWv, dbv);
        }
        return py::make_tuple(dh, dW, db);
      },
      py::arg("h"), py::arg("W"), py::arg("d_scores"), py::arg("bias") = py::none(), KX_GP_OPTS);
  m.def(
      "gp_decode",
      [](const py::array& scores, double threshold, const OptArr& mask, bool flat) {
        const char* op = "global_pointer.decode";
        const Array s = view(scores, op, "scores");
        const std::optional<Array> mk = view(mask, op, "mask");
        std::vector<global_pointer::Span> spans;
        {
          py::gil_scoped_release nogil;
          spans = global_pointer::decode(s, threshold, mk, flat);
        }
        py::array_t<std::int64_t> out({static_cast<py::ssize_t>(spans.size()), static_cast<py::ssize_t>(4)});
        if (!spans.empty()) std::memcpy(out.mutable_data(), spans.data(), spans.size() * sizeof(global_pointer::Span));
        return out;
      },
      py::arg("scores"), py::kw_only(), py::arg("threshold"), py::arg("mask") = py::none(),
      py::arg("flat") = false);
  m.def(
      "gp_f1_counts",
      [](const py::array& pred, const py::array& gold) {
        const char* op = "global_pointer.f1";
        const Array pv = view(pred, op, "pred_spans"), gv = view(gold, op, "gold_spans");
        global_pointer::F1Counts c;
        {
          py::gil_scoped_release nogil;
          c = global_pointer::f1_counts(pv, gv);
        }
        return py::make_tuple(c.pred, c.gold, c.tp);
      },
      py::arg("pred_spans"), py::arg("gold_spans"));
  m.def(
      "gp_loss",
      [](const py::array& scores, const py::array& spans, bool return_grad) -> py::object {
        const char* op = "global_pointer.loss";
        const Array s = view(scores, op, "scores"), sp = view(spans, op, "spans");
        const DType dt = float_out(s);
        py::array loss = empty(dt, {static_cast<py::ssize_t>(dim_or0(s, 0)), static_cast<py::ssize_t>(dim_or0(s, 1))});
        const Array lv = view(loss, op, "loss");
        py::array grad;
        Array gv;
        if (return_grad) {
          grad = empty(dt, std::vector<py::ssize_t>(s.shape.begin(), s.shape.end()));
          gv = view(grad, op, "grad");
        }
        {
          py::gil_scoped_release nogil;
          global_pointer::loss(s, sp, lv, return_grad ? &gv : nullptr);
        }
        if (return_grad) return py::make_tuple(loss, grad);
        return loss;
      },
      py::arg("scores"), py::arg("spans"), py::kw_only(), py::arg("return_grad") = false);
}

}  // namespace bind
}  // namespace kexue
