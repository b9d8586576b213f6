// csrc/bindings/attention.cpp - kexue._core.attn_*: numpy in, outputs
// allocated, the GIL released around the kernel.
#include "bindings/convert.hpp"
#include "kexue/attention.hpp"

namespace kexue {
namespace bind {

namespace {

using OptArr = std::optional<py::array>;
using OptF = std::optional<double>;

attention::Options options(const char* op, bool causal, const OptArr& mask, const OptArr& seg,
                           std::int64_t window, OptF scale, OptF logn, const OptArr& alibi,
                           bool rope, double base, bool inter) {
  attention::Options o;
  o.causal = causal;
  o.mask = view(mask, op, "mask");
  o.segment_ids = view(seg, op, "segment_ids");
  o.window = window;
  o.scale = scale;
  o.logn = logn;
  o.alibi_slopes = view(alibi, op, "alibi_slopes");
  o.rope = rope;
  o.rope_base = base;
  o.rope_interleaved = inter;
  return o;
}

#define KX_ATTN_OPTS                                                                            \
  py::kw_only(), py::arg("causal") = false, py::arg("mask") = py::none(),                       \
      py::arg("segment_ids") = py::none(), py::arg("window") = 0, py::arg("scale") = py::none(), \
      py::arg("logn") = py::none(), py::arg("alibi_slopes") = py::none(),                       \
      py::arg("rope") = false, py::arg("rope_base") = 10000.0,                                  \
      py::arg("rope_interleaved") = false

py::ssize_t d(const Array& a, int i) { return dim_or0(a, i); }

}  // namespace

void register_attention(py::module_& m) {
  m.def(
      "attn_sdpa",
      [](const py::array& q, const py::array& k, const py::array& v, bool causal,
         const OptArr& mask, const OptArr& seg, std::int64_t window, OptF scale, OptF logn,
         const OptArr& alibi, bool rope, double base, bool inter, bool return_lse) {
        const char* op = "attention.sdpa";
        const Array qv = view(q, op, "q"), kv = view(k, op, "k"), vv = view(v, op, "v");
        const auto o = options(op, causal, mask, seg, window, scale, logn, alibi, rope, base, inter);
        py::array out = empty(float_out(qv), {d(qv, 0), d(qv, 1), d(qv, 2), d(vv, 3)});
        py::object lse_obj = py::none();
        std::optional<Array> lv;
        if (return_lse) {
          py::array lse = empty(float_out(qv), {d(qv, 0), d(qv, 1), d(qv, 2)});
          lv = view(lse, op, "lse");
          lse_obj = lse;
        }
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          attention::sdpa(qv, kv, vv, o, ov, lv ? &*lv : nullptr);
        }
        return py::make_tuple(out, lse_obj);
      },
      py::arg("q"), py::arg("k"), py::arg("v"), KX_ATTN_OPTS, py::arg("return_lse") = false);

  m.def(
      "attn_sdpa_backward",
      [](const py::array& q, const py::array& k, const py::array& v, const py::array& out,
         const py::array& lse, const py::array& dout, bool causal, const OptArr& mask,
         const OptArr& seg, std::int64_t window, OptF scale, OptF logn, const OptArr& alibi,
         bool rope, double base, bool inter) {
        const char* op = "attention.sdpa_backward";
        const Array qv = view(q, op, "q"), kv = view(k, op, "k"), vv = view(v, op, "v");
        const Array ov = view(out, op, "out"), lv = view(lse, op, "lse"),
                    gv = view(dout, op, "dout");
        const auto o = options(op, causal, mask, seg, window, scale, logn, alibi, rope, base, inter);
        const DType t = float_out(qv);
        py::array dq = empty(t, {d(qv, 0), d(qv, 1), d(qv, 2), d(qv, 3)});
        py::array dk = empty(t, {d(kv, 0), d(kv, 1), d(kv, 2), d(kv, 3)});
        py::array dv = empty(t, {d(vv, 0), d(vv, 1), d(vv, 2), d(vv, 3)});
        const Array dqv = view(dq, op, "dq"), dkv = view(dk, op, "dk"), dvv = view(dv, op, "dv");
        {
          py::gil_scoped_release nogil;
          attention::sdpa_backward(qv, kv, vv, ov, lv, gv, o, dqv, dkv, dvv);
        }
        return py::make_tuple(dq, dk, dv);
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("dout"),
      KX_ATTN_OPTS);

  m.def(
      "attn_decode",
      [](const py::array& q, const py::array& kc, const py::array& vc, const py::array& lengths,
         OptF scale, OptF logn, std::int64_t window, const OptArr& alibi, bool return_lse) {
        const char* op = "attention.decode";
        const Array qv = view(q, op, "q"), kv = view(kc, op, "k_cache"),
                    vv = view(vc, op, "v_cache"), lv = view(lengths, op, "lengths");
        attention::DecodeOptions o;
        o.scale = scale;
        o.logn = logn;
        o.window = window;
        o.alibi_slopes = view(alibi, op, "alibi_slopes");
        py::array out = empty(float_out(qv), {d(qv, 0), d(qv, 1), d(vv, 3)});
        py::object lse_obj = py::none();
        std::optional<Array> lsv;
        if (return_lse) {
          py::array lse = empty(float_out(qv), {d(qv, 0), d(qv, 1)});
          lsv = view(lse, op, "lse");
          lse_obj = lse;
        }
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          attention::decode(qv, kv, vv, lv, o, ov, lsv ? &*lsv : nullptr);
        }
        return py::make_tuple(out, lse_obj);
      },
      py::arg("q"), py::arg("k_cache"), py::arg("v_cache"), py::arg("lengths"), py::kw_only(),
      py::arg("scale") = py::none(), py::arg("logn") = py::none(), py::arg("window") = 0,
      py::arg("alibi_slopes") = py::none(), py::arg("return_lse") = false);

  m.def(
      "attn_rope",
      [](const py::array& x, const py::array& positions, double base, bool inter) {
        const char* op = "attention.rope";
        const Array xv = view(x, op, "x"), pv = view(positions, op, "positions");
        std::vector<py::ssize_t> shape(xv.shape.begin(), xv.shape.end());
        py::array out = empty(float_out(xv), shape);
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          attention::rope(xv, pv, base, inter, ov);
        }
        return out;
      },
      py::arg("x"), py::arg("positions"), py::kw_only(), py::arg("base") = 10000.0,
      py::arg("interleaved") = false);
}

}  // namespace bind
}  // namespace kexue
