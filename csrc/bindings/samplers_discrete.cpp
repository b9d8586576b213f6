// csrc/bindings/samplers_discrete.cpp - kexue._core.smp_gibbs_mrf,
// kexue._core.smp_anneal_mrf and kexue._core.smp_lda: numpy in, outputs allocated, the GIL released around
// the sampling (and taken back only for the progress callback between
// LDA iterations).
#include "bindings/convert.hpp"
#include "kexue/samplers.hpp"

namespace kexue {
namespace bind {

void register_samplers_discrete(py::module_& m) {
  m.def(
      "smp_gibbs_mrf",
      [](const py::array& unary, const py::array& edges, const py::array& pairwise,
         const py::array& states, std::int64_t n_sweeps, std::int64_t record_every,
         std::int64_t chain_offset, std::uint64_t seed, bool init_given) {
        const char* op = "samplers.gibbs_mrf";
        const Array uv = view(unary, op, "unary"), ev = view(edges, op, "edges"),
                    pv = view(pairwise, op, "pairwise"), sv = view(states, op, "init");
        samplers::MrfOptions o;
        o.n_sweeps = n_sweeps;
        o.record_every = record_every;
        o.chain_offset = chain_offset;
        o.seed = seed;
        o.init_given = init_given;
        const py::ssize_t C = dim_or0(sv, 0), N = dim_or0(uv, 0), S = dim_or0(uv, 1);
        const py::ssize_t R = record_every >= 1 && n_sweeps >= 0 ? n_sweeps / record_every : 0;
        py::array samples = py::array_t<std::int32_t>(std::vector<py::ssize_t>{C, R, N});
        py::array counts = empty(DType::Int64, {N, S});
        const Array smv = view(samples, op, "samples"), cv = view(counts, op, "counts");
        {
          py::gil_scoped_release nogil;
          samplers::gibbs_mrf(uv, ev, pv, o, sv, smv, cv);
        }
        return py::make_tuple(samples, counts);
      },
      py::arg("unary"), py::arg("edges"), py::arg("pairwise"), py::arg("states"), py::kw_only(),
      py::arg("n_sweeps"), py::arg("record_every") = 1, py::arg("chain_offset") = 0,
      py::arg("seed") = 0, py::arg("init_given") = false,
      "Heat-bath Gibbs on a pairwise MRF; `states` [C,N] int32 is the start (init_given) and "
      "receives the last state. Returns (samples [C,R,N] int32, counts [N,S] int64).");

  m.def(
      "smp_anneal_mrf",
      [](const py::array& unary, const py::array& edges, const py::array& pairwise,
         const py::array& states, const py::array& temperatures, std::uint64_t seed,
         std::int64_t chain_offset) {
        const char* op = "samplers.anneal";
        const Array uv = view(unary, op, "unary"), ev = view(edges, op, "edges"),
                    pv = view(pairwise, op, "pairwise"), sv = view(states, op, "x0"),
                    tv = view(temperatures, op, "temperatures");
        const py::ssize_t C = dim_or0(sv, 0), N = dim_or0(sv, 1), n = dim_or0(tv, 0);
        py::array best = py::array_t<std::int32_t>(std::vector<py::ssize_t>{C, N});
        py::array best_energy = empty(DType::Float64, {C});
        py::array energy = empty(DType::Float64, {C, n});
        const Array bv = view(best, op, "best"), bev = view(best_energy, op, "best_energy"),
                    env = view(energy, op, "energy");
        {
          py::gil_scoped_release nogil;
          samplers::anneal_mrf(uv, ev, pv, sv, tv, seed, chain_offset, bv, bev, env);
        }
        return py::make_tuple(best, best_energy, energy);
      },
      py::arg("unary"), py::arg("edges"), py::arg("pairwise"), py::arg("states"),
      py::arg("temperatures"), py::kw_only(), py::arg("seed") = 0, py::arg("chain_offset") = 0,
      "Simulated annealing of a pairwise MRF's energy; `states` [C,N] int32 is the start and "
      "receives the last state. Returns (best [C,N] int32, best_energy [C], energy [C,n]).");

  m.def(
      "smp_lda",
      [](const py::array& indptr, const py::array& indices, std::int64_t n_topics,
         std::int64_t n_words, double alpha, double eta, std::int64_t n_iter, std::uint64_t seed,
         bool exact, const py::object& progress) {
        const char* op = "samplers.lda";
        const Array ipv = view(indptr, op, "indptr"), wv = view(indices, op, "indices");
        samplers::LdaOptions o;
        o.alpha = alpha;
        o.eta = eta;
        o.n_iter = n_iter;
        o.seed = seed;
        o.exact = exact;
        if (!progress.is_none())
          o.progress = [progress](std::int64_t done, std::int64_t total) {
            py::gil_scoped_acquire gil;
            progress(done, total);
          };
        const py::ssize_t D = ipv.ndim() == 1 && ipv.dim(0) >= 1 ? ipv.dim(0) - 1 : 0;
        const py::ssize_t T = dim_or0(wv, 0);
        const py::ssize_t K = n_topics >= 0 ? n_topics : 0, V = n_words >= 0 ? n_words : 0;
        const py::ssize_t L = n_iter >= 0 ? n_iter : 0;
        if (K >= 1 && V >= 1 && K > (py::ssize_t{1} << 40) / V)
          fail(ErrorKind::Value, op, "n_words * n_topics is too large: ", V, " x ", K);
        py::array topics = py::array_t<std::int32_t>(std::vector<py::ssize_t>{T});
        py::array dk = py::array_t<std::int32_t>(std::vector<py::ssize_t>{D, K});
        py::array kw = py::array_t<std::int32_t>(std::vector<py::ssize_t>{K, V});
        py::array ll = empty(DType::Float64, {L});
        const Array tv = view(topics, op, "topics"), dkv = view(dk, op, "doc_topic"),
                    kwv = view(kw, op, "topic_word"), llv = view(ll, op, "loglik");
        {
          py::gil_scoped_release nogil;
          samplers::lda(ipv, wv, n_topics, o, tv, dkv, kwv, llv);
        }
        return py::make_tuple(topics, dk, kw, ll);
      },
      py::arg("indptr"), py::arg("indices"), py::arg("n_topics"), py::kw_only(),
      py::arg("n_words"), py::arg("alpha") = 0.1, py::arg("eta") = 0.01, py::arg("n_iter") = 500,
      py::arg("seed") = 0, py::arg("exact") = false, py::arg("progress") = py::none(),
      "Collapsed Gibbs LDA over a CSR corpus (indptr [D+1] int64, indices [T] int32/int64). "
      "Returns (topics [T] int32, doc_topic [D,K] int32, topic_word [K,V] int32, loglik [n_iter]).");
}

}  // namespace bind
}  // namespace kexue
