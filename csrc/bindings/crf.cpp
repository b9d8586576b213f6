// csrc/bindings/crf.cpp - kexue._core.crf_*: numpy in, outputs allocated, the
// GIL released around the kernel (safe: after the views are taken no Python
// object is touched until the outputs are returned).
#include "bindings/convert.hpp"
#include "kexue/crf.hpp"

namespace kexue {
namespace bind {

namespace {

using OptArr = std::optional<py::array>;

crf::Options options(const char* op, const OptArr& mask, const OptArr& start, const OptArr& end,
                     const OptArr& allowed, const OptArr& allowed_start,
                     const OptArr& allowed_end) {
  crf::Options o;
  o.mask = view(mask, op, "mask");
  o.start = view(start, op, "start");
  o.end = view(end, op, "end");
  o.allowed = view(allowed, op, "allowed");
  o.allowed_start = view(allowed_start, op, "allowed_start");
  o.allowed_end = view(allowed_end, op, "allowed_end");
  return o;
}

#define KX_CRF_OPTS                                                                    \
  py::kw_only(), py::arg("mask") = py::none(), py::arg("start") = py::none(),          \
      py::arg("end") = py::none(), py::arg("allowed") = py::none(),                    \
      py::arg("allowed_start") = py::none(), py::arg("allowed_end") = py::none()

}  // namespace

void register_crf(py::module_& m) {
  m.def(
      "crf_log_partition",
      [](const py::array& em, const py::array& trans, const OptArr& mask, const OptArr& start,
         const OptArr& end, const OptArr& al, const OptArr& als, const OptArr& ale) {
        const char* op = "crf.log_partition";
        const Array e = view(em, op, "emissions"), t = view(trans, op, "transitions");
        const crf::Options o = options(op, mask, start, end, al, als, ale);
        py::array out = empty(float_out(e), {dim_or0(e, 0)});
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          crf::log_partition(e, t, o, ov);
        }
        return out;
      },
      py::arg("emissions"), py::arg("transitions"), KX_CRF_OPTS);

  m.def(
      "crf_log_likelihood",
      [](const py::array& em, const py::array& tags, const py::array& trans, const OptArr& mask,
         const OptArr& start, const OptArr& end, const OptArr& al, const OptArr& als,
         const OptArr& ale) {
        const char* op = "crf.log_likelihood";
        const Array e = view(em, op, "emissions"), y = view(tags, op, "tags"),
                    t = view(trans, op, "transitions");
        const crf::Options o = options(op, mask, start, end, al, als, ale);
        py::array out = empty(float_out(e), {dim_or0(e, 0)});
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          crf::log_likelihood(e, y, t, o, ov);
        }
        return out;
      },
      py::arg("emissions"), py::arg("tags"), py::arg("transitions"), KX_CRF_OPTS);

  m.def(
      "crf_nll_grad",
      [](const py::array& em, const py::array& tags, const py::array& trans, const OptArr& mask,
         const OptArr& start, const OptArr& end, const OptArr& al, const OptArr& als,
         const OptArr& ale) {
        const char* op = "crf.nll_grad";
        const Array e = view(em, op, "emissions"), y = view(tags, op, "tags"),
                    t = view(trans, op, "transitions");
        const crf::Options o = options(op, mask, start, end, al, als, ale);
        const DType dt = float_out(e);
        const py::ssize_t B = dim_or0(e, 0), T = dim_or0(e, 1), K = dim_or0(e, 2);
        py::array loss = empty(dt, {B}), de = empty(dt, {B, T, K}), dA = empty(dt, {K, K}),
                  ds = empty(dt, {K}), dd = empty(dt, {K});
        const Array lv = view(loss, op, "loss"), dev = view(de, op, "d_emissions"),
                    dAv = view(dA, op, "d_transitions"), dsv = view(ds, op, "d_start"),
                    ddv = view(dd, op, "d_end");
        {
          py::gil_scoped_release nogil;
          crf::nll_grad(e, y, t, o, lv, dev, dAv, dsv, ddv);
        }
        return py::make_tuple(loss, de, dA, ds, dd);
      },
      py::arg("emissions"), py::arg("tags"), py::arg("transitions"), KX_CRF_OPTS);

  m.def(
      "crf_marginals",
      [](const py::array& em, const py::array& trans, const OptArr& mask, const OptArr& start,
         const OptArr& end, const OptArr& al, const OptArr& als, const OptArr& ale) {
        const char* op = "crf.marginals";
        const Array e = view(em, op, "emissions"), t = view(trans, op, "transitions");
        const crf::Options o = options(op, mask, start, end, al, als, ale);
        py::array out = empty(float_out(e), {dim_or0(e, 0), dim_or0(e, 1), dim_or0(e, 2)});
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          crf::marginals(e, t, o, ov);
        }
        return out;
      },
      py::arg("emissions"), py::arg("transitions"), KX_CRF_OPTS);

  m.def(
      "crf_viterbi",
      [](const py::array& em, const py::array& trans, const OptArr& mask, const OptArr& start,
         const OptArr& end, const OptArr& al, const OptArr& als, const OptArr& ale) {
        const char* op = "crf.viterbi";
        const Array e = view(em, op, "emissions"), t = view(trans, op, "transitions");
        const crf::Options o = options(op, mask, start, end, al, als, ale);
        py::array paths = empty(DType::Int64, {dim_or0(e, 0), dim_or0(e, 1)});
        py::array scores = empty(float_out(e), {dim_or0(e, 0)});
        const Array pv = view(paths, op, "paths"), sv = view(scores, op, "scores");
        {
          py::gil_scoped_release nogil;
          crf::viterbi(e, t, o, pv, sv);
        }
        return py::make_tuple(paths, scores);
      },
      py::arg("emissions"), py::arg("transitions"), KX_CRF_OPTS);

  m.def(
      "crf_nbest",
      [](const py::array& em, const py::array& trans, std::int64_t k, const OptArr& mask,
         const OptArr& start, const OptArr& end, const OptArr& al, const OptArr& als,
         const OptArr& ale) {
        const char* op = "crf.nbest";
        const Array e = view(em, op, "emissions"), t = view(trans, op, "transitions");
        const crf::Options o = options(op, mask, start, end, al, als, ale);
        KX_CHECK_VALUE(k >= 1 && k <= (std::int64_t{1} << 20), op,
                       "k must be in [1, 1048576]; got ", k);
        const py::ssize_t kk = static_cast<py::ssize_t>(k);
        py::array paths = empty(DType::Int64, {dim_or0(e, 0), kk, dim_or0(e, 1)});
        py::array scores = empty(float_out(e), {dim_or0(e, 0), kk});
        const Array pv = view(paths, op, "paths"), sv = view(scores, op, "scores");
        {
          py::gil_scoped_release nogil;
          crf::nbest(e, t, k, o, pv, sv);
        }
        return py::make_tuple(paths, scores);
      },
      py::arg("emissions"), py::arg("transitions"), py::arg("k"), KX_CRF_OPTS);
}

}  // namespace bind
}  // namespace kexue
