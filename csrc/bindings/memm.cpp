// csrc/bindings/memm.cpp - kexue._core.memm_*: numpy in, outputs allocated,
// the GIL released around the kernel.
#include "bindings/convert.hpp"
#include "kexue/memm.hpp"

namespace kexue {
namespace bind {

namespace {

using OptArr = std::optional<py::array>;

memm::Options options(const char* op, const OptArr& trans, const OptArr& left,
                      const OptArr& right, const OptArr& mask, const OptArr& allowed,
                      const OptArr& allowed_start, const OptArr& allowed_end, double alpha,
                      bool bidirectional) {
  memm::Options o;
  o.transitions = view(trans, op, "transitions");
  o.left = view(left, op, "factors[0] (left)");
  o.right = view(right, op, "factors[1] (right)");
  o.mask = view(mask, op, "mask");
  o.allowed = view(allowed, op, "allowed");
  o.allowed_start = view(allowed_start, op, "allowed_start");
  o.allowed_end = view(allowed_end, op, "allowed_end");
  o.alpha = alpha;
  o.bidirectional = bidirectional;
  return o;
}

#define KX_MEMM_OPTS                                                                    \
  py::kw_only(), py::arg("left") = py::none(), py::arg("right") = py::none(),           \
      py::arg("mask") = py::none(), py::arg("allowed") = py::none(),                    \
      py::arg("allowed_start") = py::none(), py::arg("allowed_end") = py::none(),       \
      py::arg("alpha") = 1.0

}  // namespace

void register_memm(py::module_& m) {
  m.def(
      "memm_log_likelihood",
      [](const py::array& em, const py::array& tags, const OptArr& trans, const OptArr& left,
         const OptArr& right, const OptArr& mask, const OptArr& al, const OptArr& als,
         const OptArr& ale, double alpha, bool bidir) {
        const char* op = "memm.log_likelihood";
        const Array e = view(em, op, "emissions"), y = view(tags, op, "tags");
        const memm::Options o = options(op, trans, left, right, mask, al, als, ale, alpha, bidir);
        py::array out = empty(float_out(e), {dim_or0(e, 0)});
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          memm::log_likelihood(e, y, o, ov);
        }
        return out;
      },
      py::arg("emissions"), py::arg("tags"), py::arg("transitions"), KX_MEMM_OPTS,
      py::arg("bidirectional") = false);

  m.def(
      "memm_nll_grad",
      [](const py::array& em, const py::array& tags, const OptArr& trans, const OptArr& left,
         const OptArr& right, const OptArr& mask, const OptArr& al, const OptArr& als,
         const OptArr& ale, double alpha, bool bidir) {
        const char* op = "memm.nll_grad";
        const Array e = view(em, op, "emissions"), y = view(tags, op, "tags");
        const memm::Options o = options(op, trans, left, right, mask, al, als, ale, alpha, bidir);
        const DType dt = float_out(e);
        const py::ssize_t B = dim_or0(e, 0), T = dim_or0(e, 1), K = dim_or0(e, 2);
        const py::ssize_t d = o.left ? dim_or0(*o.left, 1) : 0;
        py::array loss = empty(dt, {B}), de = empty(dt, {B, T, K});
        py::object dG = py::none(), dL = py::none(), dR = py::none();
        Array dGv, dLv, dRv;
        if (trans) {
          py::array a = empty(dt, {K, K});
          dGv = view(a, op, "d_transitions");
          dG = a;
        } else {
          py::array a = empty(dt, {K, d}), b = empty(dt, {K, d});
          dLv = view(a, op, "d_left");
          dRv = view(b, op, "d_right");
          dL = a;
          dR = b;
        }
        const Array lv = view(loss, op, "loss"), dev = view(de, op, "d_emissions");
        {
          py::gil_scoped_release nogil;
          memm::nll_grad(e, y, o, lv, dev, dGv, dLv, dRv);
        }
        return py::make_tuple(loss, de, dG, dL, dR);
      },
      py::arg("emissions"), py::arg("tags"), py::arg("transitions"), KX_MEMM_OPTS,
      py::arg("bidirectional") = false);

  m.def(
      "memm_viterbi",
      [](const py::array& em, const OptArr& trans, const OptArr& left, const OptArr& right,
         const OptArr& mask, const OptArr& al, const OptArr& als, const OptArr& ale,
         double alpha, bool crf_style) {
        const char* op = "memm.viterbi";
        const Array e = view(em, op, "emissions");
        const memm::Options o = options(op, trans, left, right, mask, al, als, ale, alpha, false);
        py::array paths = empty(DType::Int64, {dim_or0(e, 0), dim_or0(e, 1)});
        py::array scores = empty(float_out(e), {dim_or0(e, 0)});
        const Array pv = view(paths, op, "paths"), sv = view(scores, op, "scores");
        {
          py::gil_scoped_release nogil;
          memm::viterbi(e, o, crf_style, pv, sv);
        }
        return py::make_tuple(paths, scores);
      },
      py::arg("emissions"), py::arg("transitions"), KX_MEMM_OPTS, py::arg("crf_style") = false);

  m.def(
      "memm_nbest",
      [](const py::array& em, const OptArr& trans, std::int64_t k, const OptArr& left,
         const OptArr& right, const OptArr& mask, const OptArr& al, const OptArr& als,
         const OptArr& ale, double alpha) {
        const char* op = "memm.nbest";
        const Array e = view(em, op, "emissions");
        const memm::Options o = options(op, trans, left, right, mask, al, als, ale, alpha, false);
        KX_CHECK_VALUE(k >= 1 && k <= (std::int64_t{1} << 20), op,
                       "k must be in [1, 1048576]; got ", k);
        const py::ssize_t kk = static_cast<py::ssize_t>(k);
        py::array paths = empty(DType::Int64, {dim_or0(e, 0), kk, dim_or0(e, 1)});
        py::array scores = empty(float_out(e), {dim_or0(e, 0), kk});
        const Array pv = view(paths, op, "paths"), sv = view(scores, op, "scores");
        {
          py::gil_scoped_release nogil;
          memm::nbest(e, k, o, pv, sv);
        }
        return py::make_tuple(paths, scores);
      },
      py::arg("emissions"), py::arg("transitions"), py::arg("k"), KX_MEMM_OPTS);

  m.def(
      "memm_marginals",
      [](const py::array& em, const OptArr& trans, const OptArr& left, const OptArr& right,
         const OptArr& mask, const OptArr& al, const OptArr& als, const OptArr& ale,
         double alpha) {
        const char* op = "memm.marginals";
        const Array e = view(em, op, "emissions");
        const memm::Options o = options(op, trans, left, right, mask, al, als, ale, alpha, false);
        py::array out = empty(float_out(e), {dim_or0(e, 0), dim_or0(e, 1), dim_or0(e, 2)});
        const Array ov = view(out, op, "out");
        {
          py::gil_scoped_release nogil;
          memm::marginals(e, o, ov);
        }
        return out;
      },
      py::arg("emissions"), py::arg("transitions"), KX_MEMM_OPTS);
}

}  // namespace bind
}  // namespace kexue
