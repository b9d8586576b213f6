// csrc/bindings/text.cpp - kexue.text: the n-gram model, the constrained
// sentence sampler (built-in model or a Python scorer) and MLM-style Gibbs.
#include <cmath>
#include <cstring>
#include <limits>

#include "bindings/convert.hpp"
#include "kexue/core/error.hpp"
#include "kexue/core/parallel.hpp"
#include "kexue/text.hpp"

namespace kexue {
namespace bind {

namespace {

using I64 = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using text::NGramModel;

/// Sentences given flat: tokens [total] int64 and offsets [n + 1].
struct Flat {
  const std::int64_t* tok;
  const std::int64_t* off;
  std::int64_t n;
};

Flat flat(const I64& tokens, const I64& offsets, const char* op, std::int64_t V, const char* name = "seqs") {
  const std::int64_t n = offsets.size() - 1;
  if (n < 0) fail(ErrorKind::Value, op, "internal: empty offsets");
  const std::int64_t* o = offsets.data();
  const std::int64_t* t = tokens.data();
  if (o[0] != 0 || o[n] != tokens.size()) fail(ErrorKind::Value, op, "internal: bad offsets");
  for (std::int64_t s = 0; s < n; ++s) {
    if (o[s + 1] < o[s]) fail(ErrorKind::Value, op, "internal: bad offsets");
    if (V > 0)
      for (std::int64_t i = o[s]; i < o[s + 1]; ++i)
        if (t[i] < 0 || t[i] >= V)
          fail(ErrorKind::Index, op, name, " must hold token ids in [0, ", V, "); sequence ", s, " has ", t[i]);
  }
  return Flat{t, o, n};
}

py::list to_list(const std::vector<std::vector<std::int64_t>>& seqs) {
  py::list out;
  for (const auto& s : seqs) {
    I64 a(static_cast<py::ssize_t>(s.size()));
    if (!s.empty()) std::memcpy(a.mutable_data(), s.data(), s.size() * sizeof(std::int64_t));
    out.append(a);
  }
  return out;
}

/// A Python object with logprob(seqs) (and maybe next_logprobs(prefixes)).
class PyScorer final : public text::Scorer {
 public:
  PyScorer(py::object obj, std::int64_t V, bool has_next) : obj_(std::move(obj)), V_(V), next_(has_next) {}
  std::int64_t vocab_size() const override { return V_; }
  bool has_next_logprobs() const override { return next_; }

  void logprob(const std::vector<std::vector<std::int64_t>>& seqs, double* out) override {
    const py::object r = obj_.attr("logprob")(to_list(seqs));
    const auto n = static_cast<py::ssize_t>(seqs.size());
    const py::array got = py::array::ensure(r);
    if (!got || got.ndim() != 1 || got.shape(0) != n)
      fail(ErrorKind::Value, kOp, "scorer.logprob must return a float array of shape (", n, ",) for ", n,
           " sentences; got ", describe(r, got));
    const auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(got);
    if (!a) fail(ErrorKind::Type, kOp, "scorer.logprob must return floats");
    for (py::ssize_t i = 0; i < n; ++i) {
      out[i] = a.data()[i];
      if (std::isnan(out[i])) fail(ErrorKind::Value, kOp, "scorer.logprob returned NaN for sentence ", i);
    }
  }

  void topk(const std::vector<std::vector<std::int64_t>>& prefixes, std::int64_t k,
            std::vector<std::vector<std::int32_t>>& out) override {
    const py::object r = obj_.attr("next_logprobs")(to_list(prefixes));
    const auto n = static_cast<py::ssize_t>(prefixes.size());
    const py::array got = py::array::ensure(r);
    if (!got || got.ndim() != 2 || got.shape(0) != n || got.shape(1) < V_)
      fail(ErrorKind::Value, kOp, "scorer.next_logprobs must return an array of shape (", n, ", >= ", V_,
           ") for ", n, " prefixes; got ", describe(r, got));
    const auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(got);
    if (!a) fail(ErrorKind::Type, kOp, "scorer.next_logprobs must return floats");
    const py::ssize_t W = a.shape(1);
    out.assign(static_cast<std::size_t>(n), {});
    std::vector<std::pair<double, std::int32_t>> cand;
    for (py::ssize_t i = 0; i < n; ++i) {
      const double* row = a.data() + i * W;
      cand.clear();
      for (std::int64_t w = 0; w < V_; ++w) {
        if (std::isnan(row[w])) fail(ErrorKind::Value, kOp, "scorer.next_logprobs returned NaN (prefix ", i, ")");
        if (std::isfinite(row[w])) cand.emplace_back(row[w], static_cast<std::int32_t>(w));
        else if (row[w] > 0) fail(ErrorKind::Value, kOp, "scorer.next_logprobs returned +inf (prefix ", i, ")");
      }
      const auto kk = static_cast<std::size_t>(std::min<std::int64_t>(k, static_cast<std::int64_t>(cand.size())));
      std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(kk), cand.end(),
                        [](const auto& x, const auto& y) {
                          return x.first > y.first || (x.first == y.first && x.second < y.second);
                        });
      auto& o = out[static_cast<std::size_t>(i)];
      for (std::size_t j = 0; j < kk; ++j) o.push_back(cand[j].second);
    }
  }

 private:
  static constexpr const char* kOp = "text.constrained_generate";
  static std::string describe(const py::object& r, const py::array& got) {
    return got ? std::string(py::str(py::tuple(got.attr("shape"))))
               : std::string(py::str(py::type::of(r).attr("__name__")));
  }
  py::object obj_;
  std::int64_t V_;
  bool next_;
};

text::GenerateOptions options(std::int64_t n_steps, std::int64_t chains, double gamma, std::int64_t topk,
                              const std::vector<double>& moves, std::uint64_t seed,
                              const std::vector<double>& temperatures, bool exact, std::int64_t max_len,
                              std::int64_t chain_offset, const py::object& progress) {
  text::GenerateOptions o;
  o.n_steps = n_steps;
  o.chains = chains;
  o.gamma = gamma;
  o.topk = topk;
  if (moves.size() != 3) fail(ErrorKind::Value, "text.constrained_generate", "moves must hold 3 probabilities");
  for (int k = 0; k < 3; ++k) o.moves[k] = moves[static_cast<std::size_t>(k)];
  o.seed = seed;
  o.temperatures = temperatures;
  o.exact = exact;
  o.max_len = max_len;
  o.chain_offset = chain_offset;
  if (!progress.is_none())
    o.progress = [progress](std::int64_t done, std::int64_t total) {
      py::gil_scoped_acquire gil;
      progress(done, total);
    };
  return o;
}

template <class T>
py::array_t<T> np1(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

py::tuple result(const text::GenerateResult& r) {
  py::list chains;
  for (const auto& c : r.chains)
    chains.append(py::make_tuple(np1(c.best), c.best_score, np1(c.final_tokens), c.final_score,
                                 np1(c.traj_steps), np1(c.traj_scores), np1(c.traj_tokens),
                                 np1(c.traj_offsets)));
  return py::make_tuple(chains, py::make_tuple(r.proposed[0], r.proposed[1], r.proposed[2]),
                        py::make_tuple(r.accepted[0], r.accepted[1], r.accepted[2]));
}

}  // namespace

void register_text(py::module_& m) {
  // A list of 1-D C-contiguous int64 arrays -> (tokens, offsets) in one pass,
  // or None when any item is something else (the Python layer then checks
  // and converts item by item, naming what is wrong).
  m.def("text_flatten", [](const py::list& seqs) -> py::object {
    using Exact = py::array_t<std::int64_t, py::array::c_style>;
    const std::size_t n = seqs.size();
    I64 offsets(static_cast<py::ssize_t>(n + 1));
    std::int64_t* off = offsets.mutable_data();
    off[0] = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const py::handle h = seqs[i];
      if (!Exact::check_(h)) return py::none();
      const auto a = py::reinterpret_borrow<Exact>(h);
      if (a.ndim() != 1) return py::none();
      off[i + 1] = off[i] + a.shape(0);
    }
    I64 tokens(static_cast<py::ssize_t>(off[n]));
    std::int64_t* out = tokens.mutable_data();
    for (std::size_t i = 0; i < n; ++i) {
      const auto a = py::reinterpret_borrow<Exact>(seqs[i]);
      if (a.shape(0)) std::memcpy(out + off[i], a.data(), static_cast<std::size_t>(a.shape(0)) * 8);
    }
    return py::make_tuple(tokens, offsets);
  });

  py::class_<NGramModel>(m, "NGramModel")
      .def_static(
          "fit",
          [](const I64& tokens, const I64& offsets, int order, std::int64_t V) {
            const Flat f = flat(tokens, offsets, "text.NGramLM.fit", 0);
            if (f.n < 1) fail(ErrorKind::Value, "text.NGramLM.fit", "sentences must hold at least one sentence");
            py::gil_scoped_release nogil;
            return NGramModel::fit(f.tok, f.off, f.n, order, V);
          },
          py::arg("tokens"), py::arg("offsets"), py::arg("order"), py::arg("vocab_size"))
      .def_static("load", [](const std::string& path) {
        py::gil_scoped_release nogil;
        return NGramModel::load(path);
      })
      .def("save", [](const NGramModel& lm, const std::string& path) {
        py::gil_scoped_release nogil;
        lm.save(path);
      })
      .def_property_readonly("order", &NGramModel::order)
      .def_property_readonly("vocab_size", &NGramModel::vocab_size)
      .def_property_readonly("n_contexts", &NGramModel::n_contexts)
      .def_property_readonly("n_ngrams", &NGramModel::n_ngrams)
      .def_property_readonly("discounts", &NGramModel::discounts)
      .def("logprob",
           [](const NGramModel& lm, const I64& tokens, const I64& offsets) {
             const Flat f = flat(tokens, offsets, "text.NGramLM.logprob", lm.vocab_size());
             py::array_t<double> out(static_cast<py::ssize_t>(f.n));
             double* o = out.mutable_data();
             py::gil_scoped_release nogil;
             parallel_for(f.n, 64, [&](std::int64_t s0, std::int64_t s1) {
               for (std::int64_t s = s0; s < s1; ++s) o[s] = lm.logprob(f.tok + f.off[s], f.off[s + 1] - f.off[s]);
             });
             return out;
           })
      .def("position_logprobs",
           [](const NGramModel& lm, const I64& seq) {
             const std::int64_t n = seq.size();
             std::int64_t o[2] = {0, n};
             flat(seq, I64(2, o), "text.NGramLM.position_logprobs", lm.vocab_size(), "seq");
             py::array_t<double> out(static_cast<py::ssize_t>(n + 1));
             lm.position_logprobs(seq.data(), n, out.mutable_data());
             return out;
           })
      .def("next_logprobs",
           [](const NGramModel& lm, const I64& tokens, const I64& offsets) {
             const Flat f = flat(tokens, offsets, "text.NGramLM.next_logprobs", lm.vocab_size(), "prefixes");
             const std::int64_t W = lm.vocab_size() + 1;
             py::array_t<double> out({static_cast<py::ssize_t>(f.n), static_cast<py::ssize_t>(W)});
             double* o = out.mutable_data();
             py::gil_scoped_release nogil;
             parallel_for(f.n, 4, [&](std::int64_t s0, std::int64_t s1) {
               for (std::int64_t s = s0; s < s1; ++s)
                 lm.next_logprobs(f.tok + f.off[s], f.off[s + 1] - f.off[s], o + s * W);
             });
             return out;
           })
      .def("topk", [](const NGramModel& lm, const I64& prefix, std::int64_t k) {
        std::int64_t o[2] = {0, prefix.size()};
        flat(prefix, I64(2, o), "text.NGramLM.topk", lm.vocab_size(), "prefix");
        if (k < 1) fail(ErrorKind::Value, "text.NGramLM.topk", "k must be >= 1; got ", k);
        std::vector<std::int32_t> out;
        lm.topk(prefix.data(), prefix.size(), k, out);
        return np1(out);
      });

  m.def(
      "text_generate_ngram",
      [](const NGramModel& lm, const std::vector<std::vector<std::int64_t>>& keywords, std::int64_t n_steps,
         std::int64_t chains, double gamma, std::int64_t topk, const std::vector<double>& moves,
         std::uint64_t seed, const std::vector<double>& temperatures, bool exact, std::int64_t max_len,
         std::int64_t chain_offset, const py::object& progress) {
        const text::GenerateOptions o = options(n_steps, chains, gamma, topk, moves, seed, temperatures, exact,
                                                max_len, chain_offset, progress);
        text::GenerateResult r;
        {
          py::gil_scoped_release nogil;
          r = text::generate(lm, keywords, o);
        }
        return result(r);
      },
      py::arg("lm"), py::arg("keywords"), py::arg("n_steps"), py::arg("chains"), py::arg("gamma"),
      py::arg("topk"), py::arg("moves"), py::arg("seed"), py::arg("temperatures"), py::arg("exact"),
      py::arg("max_len"), py::arg("chain_offset"), py::arg("progress"));

  m.def(
      "text_generate_scorer",
      [](const py::object& scorer, std::int64_t V, bool has_next,
         const std::vector<std::vector<std::int64_t>>& keywords, std::int64_t n_steps, std::int64_t chains,
         double gamma, std::int64_t topk, const std::vector<double>& moves, std::uint64_t seed,
         const std::vector<double>& temperatures, bool exact, std::int64_t max_len, std::int64_t chain_offset,
         const py::object& progress) {
        text::GenerateOptions o = options(n_steps, chains, gamma, topk, moves, seed, temperatures, exact,
                                          max_len, chain_offset, py::none());
        if (!progress.is_none()) o.progress = [progress](std::int64_t d, std::int64_t t) { progress(d, t); };
        PyScorer s(scorer, V, has_next);
        return result(text::generate(s, keywords, o));  // serial; the GIL stays held
      },
      py::arg("scorer"), py::arg("vocab_size"), py::arg("has_next"), py::arg("keywords"), py::arg("n_steps"),
      py::arg("chains"), py::arg("gamma"), py::arg("topk"), py::arg("moves"), py::arg("seed"),
      py::arg("temperatures"), py::arg("exact"), py::arg("max_len"), py::arg("chain_offset"),
      py::arg("progress"));

  m.def(
      "text_gibbs_resample",
      [](const py::object& conditional, const I64& tokens, const I64& positions, std::int64_t n_steps,
         double temperature, std::uint64_t seed, std::int64_t chain_offset, std::int64_t record_every) {
        const char* op = "text.gibbs_resample";
        if (tokens.ndim() != 2) fail(ErrorKind::Value, op, "tokens must be 2-D [C, L]");
        const std::int64_t C = tokens.shape(0), L = tokens.shape(1);
        I64 cur(std::vector<py::ssize_t>{C, L});
        if (C * L) std::memcpy(cur.mutable_data(), tokens.data(), static_cast<std::size_t>(C * L) * 8);
        const std::int64_t R = record_every >= 1 && n_steps >= 0 ? n_steps / record_every : 0;
        I64 samples(std::vector<py::ssize_t>{C, R, L});
        const auto fn = [&](const std::int64_t* x, const std::int64_t* pos, std::vector<double>& out) {
          I64 seqs(std::vector<py::ssize_t>{C, L}), p(C);
          if (C * L) std::memcpy(seqs.mutable_data(), x, static_cast<std::size_t>(C * L) * 8);
          if (C) std::memcpy(p.mutable_data(), pos, static_cast<std::size_t>(C) * 8);
          const py::object r = conditional(seqs, p);
          const py::array got = py::array::ensure(r);
          if (!got || got.ndim() != 2 || got.shape(0) != C || got.shape(1) < 1)
            fail(ErrorKind::Value, op, "conditional must return logits of shape (", C, ", V) [C, V]; got ",
                 got ? std::string(py::str(py::tuple(got.attr("shape"))))
                     : std::string(py::str(py::type::of(r).attr("__name__"))));
          const auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(got);
          if (!a) fail(ErrorKind::Type, op, "conditional must return float logits");
          out.assign(a.data(), a.data() + a.size());
          return static_cast<std::int64_t>(a.shape(1));
        };
        text::gibbs_resample(fn, cur.mutable_data(), C, L, positions.data(), positions.size(), n_steps,
                             temperature, seed, chain_offset, record_every, samples.mutable_data());
        return py::make_tuple(cur, samples);
      },
      py::arg("conditional"), py::arg("tokens"), py::arg("positions"), py::arg("n_steps"),
      py::arg("temperature"), py::arg("seed"), py::arg("chain_offset"), py::arg("record_every"));
}

}  // namespace bind
}  // namespace kexue
