"""kexue.text.constrained_generate and gibbs_resample (spec kernels §A4-§A6)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .. import _core
from .._util import check_int
from ..samplers import temperatures as _temperatures
from ..samplers._args import progress_arg, seed_arg
from ._ngram import NGramLM

_MOVES = ("replace", "insert", "delete")


@runtime_checkable
class Scorer(Protocol):
    """What :func:`constrained_generate` needs from a language model.

    ``vocab_size`` -- the insertable tokens are 0..vocab_size-1;
    ``logprob(seqs)`` -- seqs a list of 1-D int64 arrays (no BOS/EOS) ->
    float [n], the log probability of each complete sentence;
    ``next_logprobs(prefixes)`` (optional) -- float [n, >= vocab_size], log
    p(w | prefix), used to pick the top-k candidates of a slot (without it
    every token is a candidate). Return -inf for tokens never to insert.
    Calls are batched over the chains: one ``next_logprobs`` and one
    ``logprob`` call per step. :class:`NGramLM` is one (and runs in C++
    without any Python call).
    """

    vocab_size: int

    def logprob(self, seqs): ...


@dataclass
class GenerateResult:
    """The outcome of :func:`constrained_generate` for C chains.

    best, final: lists of C int64 arrays; best_score, final_score: float64 [C]
    (gamma * log p, untempered); trajectory: per chain a list of
    (step, tokens, score), the start (step 0) then the state after every
    accepted step (the chain stays in a state until the next entry);
    acceptance: move -> accepted / proposed (nan if never proposed);
    proposed, accepted: move -> count; temperatures: [n_steps].
    """

    best: list
    best_score: np.ndarray
    final: list
    final_score: np.ndarray
    trajectory: list
    acceptance: dict
    proposed: dict
    accepted: dict
    temperatures: np.ndarray = field(repr=False)

    def decode(self, lm):
        """The best sentences as text (``lm`` with a vocabulary, e.g. from fit_text)."""
        return [lm.decode(b) for b in self.best]


@dataclass
class GibbsTextResult:
    """tokens: int64 [C, L] (the last state); samples: int64 [C, n_steps // record_every, L]."""

    tokens: np.ndarray
    samples: np.ndarray


def _keywords(op, scorer, keywords, V):
    if isinstance(keywords, str):
        keywords = [keywords]
    try:
        kws = list(keywords)
    except TypeError:
        raise TypeError(f"[kexue.{op}] keywords must be a list of keywords; got {type(keywords).__name__}") from None
    if not kws:
        raise ValueError(f"[kexue.{op}] keywords must hold at least one keyword")
    out = []
    for j, k in enumerate(kws):
        if isinstance(k, str):
            enc = getattr(scorer, "encode", None)
            if enc is None:
                raise TypeError(f"[kexue.{op}] keywords[{j}] is a string but the scorer has no encode(); "
                                "pass token ids")
            try:
                ids = enc(k)
            except KeyError as e:
                raise IndexError(f"[kexue.{op}] keywords[{j}] ({k!r}) is out of the vocabulary: {e}") from None
            k = ids
        a = np.asarray(k)
        if a.ndim == 0:
            a = a.reshape(1)
        if a.ndim != 1 or a.size == 0:
            raise ValueError(f"[kexue.{op}] keywords[{j}] must be a non-empty sequence of token ids; got {k!r}")
        if a.dtype.kind not in "iu":
            raise TypeError(f"[kexue.{op}] keywords[{j}] must hold integer token ids; got {a.dtype}")
        if a.min() < 0 or a.max() >= V:
            raise IndexError(f"[kexue.{op}] keywords[{j}] holds token ids outside the vocabulary [0, {V})")
        out.append([int(v) for v in a])
    return out


def constrained_generate(scorer, keywords, *, n_steps=200, chains=8, gamma=1.0, proposal_topk=64,
                         moves=(1 / 3, 1 / 3, 1 / 3), seed=0, anneal=None, exact_acceptance=True,
                         max_len=40, chain_offset=0, progress=False):
    """Sentences that contain ``keywords`` in order, by Metropolis-Hastings over
    insert / delete / replace moves (CGMH, spec §A6), C chains at once.

    The target is rho(x) = p(x)^gamma (p: the scorer's sentence probability,
    end of sentence included). Keyword tokens are never replaced or deleted
    and nothing is inserted inside a multi-token keyword; chains start from the
    keywords alone. A replace or insert at slot i draws its token from the
    top-``proposal_topk`` tokens w of p(w | x[:i]), with probability
    proportional to rho of the resulting sentence; acceptance is the exact
    MH ratio with the position counts |I(x)|, |D(x')| (``exact_acceptance=
    False``: CGMH's and Su's approximation, which drops them, forces the
    current token into the candidates and is biased -- kept for comparison).

    Parameters
    ----------
    scorer : :class:`NGramLM` (runs in C++, chains in parallel) or any
        :class:`Scorer` (called from the sampler, batched over chains)
    keywords : list of keywords, each a sequence of token ids or a string
        (encoded with ``scorer.encode``)
    n_steps, chains : int
    gamma : float > 0 (Su uses 0.8: flatter, longer sentences)
    proposal_topk : int >= 1
    moves : (p_replace, p_insert, p_delete), normalised
    seed, chain_offset : the Philox key and the first chain's number
        (chains split over calls with chain_offset give the same chains)
    anneal : None, or a schedule of :func:`kexue.samplers.temperatures`
        (e.g. ("geometric", 1.0, 0.05)): simulated annealing toward the
        best sentence, targets rho^(1/T_t)
    exact_acceptance : bool
    max_len : int -- no insertion into a sentence of this length
    progress : bool -- a progress line on stderr

    Returns
    -------
    :class:`GenerateResult`

    Examples
    --------
    >>> import kexue
    >>> lm = kexue.text.NGramLM.fit_text(kexue.text.corpus.generate(2000, seed=0))
    >>> r = kexue.text.constrained_generate(lm, ["cat", "mat"], n_steps=100, chains=2, seed=1)
    >>> all("cat" in lm.decode(b).split() for b in r.best)
    True
    """
    op = "text.constrained_generate"
    builtin = isinstance(scorer, NGramLM)
    if not builtin:
        if not callable(getattr(scorer, "logprob", None)):
            raise TypeError(f"[kexue.{op}] scorer must have logprob(seqs) (see kexue.text.Scorer); "
                            f"got {type(scorer).__name__}")
        V = getattr(scorer, "vocab_size", None)
        if isinstance(V, (bool, np.bool_)) or not isinstance(V, (int, np.integer)) or V < 1:
            raise TypeError(f"[kexue.{op}] scorer.vocab_size must be an int >= 1; got {V!r}")
        V = int(V)
    else:
        V = scorer.vocab_size
    kws = _keywords(op, scorer, keywords, V)
    n_steps = check_int(op, "n_steps", n_steps)
    if n_steps < 0:
        raise ValueError(f"[kexue.{op}] n_steps must be >= 0; got {n_steps}")
    try:
        mv = [float(m) for m in moves]
    except (TypeError, ValueError):
        raise TypeError(f"[kexue.{op}] moves must be 3 numbers (replace, insert, delete); got {moves!r}") from None
    if len(mv) != 3 or not all(math.isfinite(m) and m >= 0 for m in mv) or sum(mv) <= 0:
        raise ValueError(f"[kexue.{op}] moves must be 3 finite probabilities >= 0, not all 0; got {moves!r}")
    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"[kexue.{op}] gamma must be finite and > 0; got {gamma}")
    temps = (np.ones(n_steps) if anneal is None else _temperatures(anneal, n_steps))
    args = dict(n_steps=n_steps, chains=check_int(op, "chains", chains), gamma=gamma,
                topk=check_int(op, "proposal_topk", proposal_topk), moves=mv, seed=seed_arg(op, seed),
                temperatures=[] if anneal is None else list(temps), exact=bool(exact_acceptance),
                max_len=check_int(op, "max_len", max_len),
                chain_offset=check_int(op, "chain_offset", chain_offset), progress=progress_arg(op, progress))
    if builtin:
        chains_out, prop, acc = _core.text_generate_ngram(scorer._m, kws, **args)
    else:
        has_next = callable(getattr(scorer, "next_logprobs", None))
        chains_out, prop, acc = _core.text_generate_scorer(scorer, V, has_next, kws, **args)
    best, best_score, final, final_score, traj = [], [], [], [], []
    for b, bs, fi, fs, steps, scores, toks, offs in chains_out:
        best.append(b)
        best_score.append(bs)
        final.append(fi)
        final_score.append(fs)
        traj.append([(int(steps[a]), toks[offs[a]:offs[a + 1]].copy(), float(scores[a]))
                     for a in range(steps.size)])
    proposed = dict(zip(_MOVES, prop))
    accepted = dict(zip(_MOVES, acc))
    acceptance = {m: (accepted[m] / proposed[m] if proposed[m] else float("nan")) for m in _MOVES}
    return GenerateResult(best, np.asarray(best_score, np.float64), final, np.asarray(final_score, np.float64),
                          traj, acceptance, proposed, accepted, np.asarray(temps, np.float64))


def gibbs_resample(conditional, tokens, n_steps, *, positions=None, temperature=1.0, seed=0, chain_offset=0,
                   record_every=1):
    """MLM-style Gibbs sampling of token sequences (spec §A4, Su's BERT sampler).

    Every step, each chain picks one position i (uniform over ``positions``)
    and redraws x_i from softmax(logits / temperature) where ``logits =
    conditional(seqs, pos)[c]`` -- for a masked LM: mask x_i, read its logits.

    Parameters
    ----------
    conditional : callable ``f(seqs, pos) -> logits`` -- seqs int64 [C, L]
        (a copy of the states), pos int64 [C] (the position of each chain) ->
        float [C, V]
    tokens : int array [C, L] -- the starting sequences (length is fixed)
    n_steps : int
    positions : None (every position) or a 1-D list of the positions that may change
    temperature : float > 0 (tempered conditionals, spec §A4)
    seed, chain_offset : as in :func:`constrained_generate`
    record_every : int -- keep the state after every k-th step

    Returns
    -------
    :class:`GibbsTextResult` (tokens [C, L], samples [C, n_steps // record_every, L])

    Examples
    --------
    >>> import numpy as np, kexue
    >>> def cond(seqs, pos):          # a toy "MLM": token 1 is 3x as likely as token 0
    ...     return np.tile([0.0, np.log(3.0)], (len(seqs), 1))
    >>> r = kexue.text.gibbs_resample(cond, np.zeros((64, 4), np.int64), 200, seed=0)
    >>> bool(abs(r.tokens.mean() - 0.75) < 0.05)
    True
    """
    op = "text.gibbs_resample"
    if not callable(conditional):
        raise TypeError(f"[kexue.{op}] conditional must be callable; got {type(conditional).__name__}")
    x = np.asarray(tokens)
    if x.dtype.kind not in "iu":
        raise TypeError(f"[kexue.{op}] tokens must be an integer array [C, L]; got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"[kexue.{op}] tokens must be 2-D [C, L]; got shape {x.shape}")
    if x.size and x.min() < 0:
        raise IndexError(f"[kexue.{op}] tokens must be >= 0; got {x.min()}")
    L = x.shape[1]
    if positions is None:
        pos = np.arange(L, dtype=np.int64)
    else:
        p = np.asarray(positions)
        if p.dtype.kind not in "iu" or p.ndim != 1:
            raise TypeError(f"[kexue.{op}] positions must be a 1-D integer array; got {p.dtype} {p.shape}")
        pos = p.astype(np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= L):
            raise IndexError(f"[kexue.{op}] positions must be in [0, {L}); got {pos.min()}..{pos.max()}")
        if np.unique(pos).size != pos.size:
            raise ValueError(f"[kexue.{op}] positions must not repeat")
    temperature = float(temperature)
    toks, samples = _core.text_gibbs_resample(
        conditional, np.ascontiguousarray(x, np.int64), np.ascontiguousarray(pos), check_int(op, "n_steps", n_steps),
        temperature, seed_arg(op, seed), check_int(op, "chain_offset", chain_offset),
        check_int(op, "record_every", record_every))
    return GibbsTextResult(toks, samples)
