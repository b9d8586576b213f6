"""kexue.text: sentences by search and sampling (spec kernels §A1, §A4-§A6).

* :class:`NGramLM` -- an interpolated Kneser-Ney n-gram model over token ids
  (orders 2-5) in C++: batched sentence log probabilities, next-token
  distributions, top-k candidates, a checked binary file format;
* :func:`constrained_generate` -- CGMH-style Metropolis-Hastings over
  insert / delete / replace moves that keeps the keywords, with the exact
  acceptance ratio, many chains in parallel, optional annealing;
* :func:`gibbs_resample` -- MLM-style Gibbs with your own conditional;
* :class:`Scorer` -- the protocol a user's own language model implements;
* :mod:`kexue.text.corpus` -- a template-grammar corpus for demos, tests
  and benches (``python -m kexue.text.corpus``).

Command line: ``python -m kexue text --keywords "cat mat"``.
"""
from __future__ import annotations

from ._generate import GenerateResult, GibbsTextResult, Scorer, constrained_generate, gibbs_resample
from ._ngram import NGramLM

__all__ = ["NGramLM", "Scorer", "constrained_generate", "gibbs_resample", "GenerateResult",
           "GibbsTextResult", "corpus"]


def __getattr__(name):  # kexue.text.corpus is imported on first use
    if name == "corpus":
        import importlib

        return importlib.import_module(".corpus", __name__)
    raise AttributeError(f"module 'kexue.text' has no attribute {name!r}")
