"""Discrete samplers: heat-bath Gibbs on pairwise MRFs and collapsed Gibbs for LDA.

- :func:`gibbs_mrf` -- any pairwise discrete Markov random field, the nodes
  coloured greedily and each colour class updated in parallel.
- :func:`lda` -- Latent Dirichlet Allocation by collapsed Gibbs sampling,
  threaded over documents (AD-LDA over a fixed partition, so the result never
  depends on the thread count) or exact sequential.

Randomness is Philox4x32-10 as in the rest of :mod:`kexue.samplers`: block
``n`` of global chain ``g`` under ``seed`` gives the uniform
``U0 = uniform53(w0, w1)``. The numpy twin
:mod:`kexue.reference.samplers_discrete` reproduces both samplers draw for draw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._util import check_int
from ._args import progress_arg, seed_arg

__all__ = ["LDAResult", "MRFTrace", "gibbs_mrf", "lda"]


def _number(op, name, v):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"[kexue.{op}] {name} must be a number; got {type(v).__name__}")
    return float(v)


def _shape(a):
    return "[" + ", ".join(map(str, np.shape(a))) + "]"


# ============================================================================
# results


@dataclass(repr=False, eq=False)
class MRFTrace:
    """The output of :func:`gibbs_mrf`.

    Attributes
    ----------
    samples : int32 [C, R, N]
        The state of every node after each recorded sweep (chain first, then
        draw: ArviZ's layout), R = n_sweeps // record_every.
    counts : int64 [N, S]
        ``counts[i, a]``: how often node i was in state a, over all chains and
        recorded sweeps (burn-in included, as in ``samples``).
    state : int32 [C, N]
        The last state of each chain (pass it as ``init`` to continue).

    ``marginals`` is ``counts`` normalised per node; ``samples, counts = trace``
    unpacks the two main fields.

    Examples
    --------
    >>> import numpy as np
    >>> tr = MRFTrace(samples=np.zeros((2, 3, 4), np.int32), counts=np.array([[6, 0]] * 4),
    ...               state=np.zeros((2, 4), np.int32))
    >>> tr
    MRFTrace(samples=[2, 3, 4] int32, counts=[4, 2], state=[2, 4])
    >>> tr.marginals[0].tolist()
    [1.0, 0.0]
    """

    samples: np.ndarray
    counts: np.ndarray
    state: np.ndarray

    @property
    def marginals(self):
        """float64 [N, S]: ``counts / counts.sum(axis=1)`` (NaN when nothing was recorded)."""
        c = np.asarray(self.counts, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return c / c.sum(axis=1, keepdims=True)

    def __iter__(self):
        yield self.samples
        yield self.counts

    def __repr__(self):
        dt = getattr(self.samples, "dtype", None)
        return (f"MRFTrace(samples={_shape(self.samples)}{'' if dt is None else ' ' + str(dt)}, "
                f"counts={_shape(self.counts)}, state={_shape(self.state)})")


@dataclass(repr=False, eq=False)
class LDAResult:
    """The output of :func:`lda`.

    Attributes
    ----------
    doc_topic : float64 [D, K]
        theta: ``(n_dk + alpha) / (n_d + K alpha)`` from the last sample
        (each row sums to 1).
    topic_word : float64 [K, V]
        phi: ``(n_kw + eta) / (n_k + V eta)`` (each row sums to 1).
    loglik : float64 [n_iter]
        ``log p(w | z)`` after each iteration (the collapsed likelihood of the
        words given the topic assignments, Griffiths & Steyvers 2004).
    doc_topic_counts : int32 [D, K]; topic_word_counts : int32 [K, V]
        The raw counts n_dk and n_kw of the last sample.
    topics : int32 [T]
        The last topic of every token, in corpus order.

    ``theta, phi, loglik = result`` unpacks the three main fields.
    """

    doc_topic: np.ndarray
    topic_word: np.ndarray
    loglik: np.ndarray
    doc_topic_counts: np.ndarray
    topic_word_counts: np.ndarray
    topics: np.ndarray

    def __iter__(self):
        yield self.doc_topic
        yield self.topic_word
        yield self.loglik

    def __repr__(self):
        ll = np.asarray(self.loglik)
        last = f"{ll[-1]:.6g}" if ll.size else "n/a"
        return (f"LDAResult(doc_topic={_shape(self.doc_topic)}, topic_word={_shape(self.topic_word)}, "
                f"loglik={_shape(self.loglik)} last={last})")


def _lda_result(topics, dk, kw, ll, alpha, eta):
    """theta and phi from the counts (the same expressions in the twin)."""
    K, V = kw.shape
    theta = (dk + alpha) / (dk.sum(axis=1, keepdims=True) + K * alpha)
    phi = (kw + eta) / (kw.sum(axis=1, keepdims=True) + V * eta)
    return LDAResult(doc_topic=theta, topic_word=phi, loglik=ll, doc_topic_counts=dk,
                     topic_word_counts=kw, topics=topics)


# ============================================================================
# gibbs_mrf


def _float64(op, name, a):
    a = np.asarray(a)
    if a.dtype != np.float64:
        raise TypeError(f"[kexue.{op}] {name} must be float64 (log-potentials); got {a.dtype}")
    return np.ascontiguousarray(a)


def _index_array(op, name, a):
    """int32/int64 as they are; other integer dtypes widened to int64; else TypeError."""
    a = np.asarray(a)
    if a.dtype in (np.int32, np.int64):
        return np.ascontiguousarray(a)
    if a.dtype.kind in "iu" and a.dtype != np.uint64:
        return np.ascontiguousarray(a, dtype=np.int64)
    if a.dtype == np.uint64:
        if a.size and int(a.max()) >= 2**63:
            raise IndexError(f"[kexue.{op}] {name} holds an index >= 2^63: {int(a.max())}")
        return np.ascontiguousarray(a, dtype=np.int64)
    raise TypeError(f"[kexue.{op}] {name} must be an integer array; got {a.dtype}")


def gibbs_mrf(unary, edges, pairwise, n_sweeps, *, chains=1, seed=0, init=None, record_every=1,
              chain_offset=0):
    """Heat-bath Gibbs sampling of a pairwise discrete Markov random field.

    p(x) is proportional to ``exp(sum_i unary[i, x_i] + sum_e P_e[x_u, x_v])``
    for ``edges[e] = (u, v)``, with ``P_e = pairwise`` (shared) or
    ``pairwise[e]``. Node i's conditional logits are ``unary[i]`` plus, for
    each edge e touching i (in edge order), the row ``P_e[:, x_v]`` (i = u)
    or ``P_e[x_u, :]`` (i = v).

    The nodes are coloured greedily (in index order, each takes the smallest
    colour no earlier neighbour has); a sweep updates colour 0, then 1, ...,
    all nodes of a class at once (they are conditionally independent), the
    threads running chains or the nodes of a class: the result is the same.

    Randomness: node i in sweep s (0-based) of global chain
    ``g = chain_offset + c`` draws with ``U0`` of Philox block ``s * N + i``:
    weights ``w_a = exp(l_a - max l)``, ``c = cumsum(w)`` (a ascending), the
    new state is the smallest a with ``U0 * c[S-1] < c[a]``. The random start
    (``init=None``) puts node i in state ``floor(U0 * S)`` of block
    ``2^63 + i``.

    Parameters
    ----------
    unary : float64 [N, S] -- log-potentials of each node's S >= 2 states
    edges : int [E, 2] -- node pairs (u, v), u != v, in [0, N) (repeats add up)
    pairwise : float64 [S, S] (shared by every edge) or [E, S, S]
    n_sweeps : int -- sweeps over all nodes
    chains : int -- independent chains C
    seed : int in [0, 2^64); chain_offset : int -- global index of chain 0
        (chains split over calls with offsets give the chains of one call)
    init : None (random) or int [chains, N] -- the start, states in [0, S)
    record_every : int -- record the state after each sweep s with
        ``(s + 1) % record_every == 0``

    Returns
    -------
    :class:`MRFTrace` -- samples int32 [C, n_sweeps // record_every, N],
    counts int64 [N, S] (node-state occupation over chains and recorded
    sweeps; ``.marginals`` normalises it), state int32 [C, N] (the last one).

    Examples
    --------
    >>> import numpy as np, kexue
    >>> unary = np.zeros((3, 2))
    >>> edges = np.array([[0, 1], [1, 2]])
    >>> J = np.array([[1.0, -1.0], [-1.0, 1.0]])        # neighbours like to agree
    >>> tr = kexue.samplers.gibbs_mrf(unary, edges, J, 2000, chains=4, seed=0)
    >>> tr.samples.shape, tr.counts.shape, int(tr.counts.sum())
    ((4, 2000, 3), (3, 2), 24000)
    >>> x = tr.samples.reshape(-1, 3)
    >>> bool((x[:, 0] == x[:, 1]).mean() > 0.8)          # exact: e^2 / (e^2 + 1) = 0.881
    True
    """
    op = "samplers.gibbs_mrf"
    unary = _float64(op, "unary", unary)
    pairwise = _float64(op, "pairwise", pairwise)
    e = np.asarray(edges)
    if e.size == 0:
        e = np.zeros((0, 2), dtype=np.int64)
    edges = _index_array(op, "edges", e)
    n_sweeps = check_int(op, "n_sweeps", n_sweeps)
    chains = check_int(op, "chains", chains)
    if chains < 0:
        raise ValueError(f"[kexue.{op}] chains must be >= 0; got {chains}")
    N = unary.shape[0] if unary.ndim == 2 else 0
    S = unary.shape[1] if unary.ndim == 2 else 0
    if init is None:
        states = np.zeros((chains, N), dtype=np.int32)
        given = False
    else:
        a = np.asarray(init)
        if a.dtype.kind not in "iu":
            raise TypeError(f"[kexue.{op}] init must be an integer array [chains, N]; got {a.dtype}")
        if a.shape != (chains, N):
            raise ValueError(f"[kexue.{op}] init must have shape ({chains}, {N}) [chains, N]; got {a.shape}")
        bad = (a < 0) | (a >= S)
        if bad.any():
            c, i = np.argwhere(bad)[0]
            raise ValueError(f"[kexue.{op}] init states must be in [0, {S}); got {int(a[c, i])} at ({c}, {i})")
        states = np.array(a, dtype=np.int32, order="C", copy=True)
        given = True
    samples, counts = _core.smp_gibbs_mrf(
        unary, edges, pairwise, states, n_sweeps=n_sweeps,
        record_every=check_int(op, "record_every", record_every),
        chain_offset=check_int(op, "chain_offset", chain_offset), seed=seed_arg(op, seed),
        init_given=given)
    return MRFTrace(samples=samples, counts=counts, state=states)


# ============================================================================
# lda


def _corpus(op, docs, n_words):
    """(indptr int64 [D+1], indices int32/int64 [T], V) from the accepted forms of docs."""
    if isinstance(docs, tuple) and len(docs) == 2:
        indptr = np.asarray(docs[0])
        if indptr.dtype.kind not in "iu" or indptr.ndim != 1:
            raise TypeError(f"[kexue.{op}] docs as a pair (indptr, indices) needs a 1-D integer indptr; "
                            f"got {indptr.dtype} of shape {indptr.shape}")
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        ind = np.asarray(docs[1])
        if ind.size == 0:
            ind = ind.reshape(-1).astype(np.int64)
        if ind.ndim != 1:
            raise ValueError(f"[kexue.{op}] docs as a pair (indptr, indices) needs 1-D indices; got shape {ind.shape}")
        indices = _index_array(op, "docs' indices", ind)
    elif isinstance(docs, np.ndarray) and docs.ndim == 2:
        if docs.dtype.kind not in "iu":
            raise TypeError(f"[kexue.{op}] docs must hold integer word ids; got {docs.dtype}")
        D, L = docs.shape
        indptr = np.arange(D + 1, dtype=np.int64) * L
        indices = _index_array(op, "docs", docs.reshape(-1))
    else:
        if isinstance(docs, (str, bytes)) or not hasattr(docs, "__iter__"):
            raise TypeError(f"[kexue.{op}] docs must be a list of int arrays or a pair (indptr, indices); "
                            f"got {type(docs).__name__}")
        parts, lengths = [], []
        for d, doc in enumerate(docs):
            a = np.asarray(doc)
            if a.size == 0:
                a = np.zeros(0, dtype=np.int64)
            elif a.dtype.kind not in "iu":
                raise TypeError(f"[kexue.{op}] docs[{d}] must be an integer array of word ids; got {a.dtype}")
            elif a.ndim != 1:
                raise ValueError(f"[kexue.{op}] docs[{d}] must be 1-D (a sequence of word ids); got shape {a.shape}")
            parts.append(_index_array(op, f"docs[{d}]", a).astype(np.int64, copy=False))
            lengths.append(a.size)
        indptr = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if n_words is None:
        V = int(indices.max()) + 1 if indices.size else 1
        V = max(V, 1)
    else:
        V = check_int(op, "n_words", n_words)
        if V < 1:
            raise ValueError(f"[kexue.{op}] n_words must be >= 1; got {V}")
    return indptr, indices, V


def lda(docs, n_topics, *, alpha=0.1, eta=0.01, n_iter=500, seed=0, progress=False, exact=False,
        n_words=None):
    """Latent Dirichlet Allocation by collapsed Gibbs sampling (Griffiths & Steyvers 2004).

    Each token's topic is resampled from
    ``p(z = k) ~ (n_dk + alpha) (n_kw + eta) / (n_k + V eta)`` with its own
    assignment removed from the counts.

    Threading (``exact=False``, the default): approximate-distributed LDA
    (AD-LDA, Newman et al. 2009) over a fixed partition of the documents into
    ``P = min(64, D)`` contiguous blocks (block b holds documents
    ``b*D//P .. (b+1)*D//P - 1``). In each iteration every block samples its
    tokens against its own copy of the topic-word and topic counts as they
    were at the start of the iteration; the changes are added at its end. The
    blocks never depend on the thread count, so neither does the result.
    ``exact=True``: standard sequential collapsed Gibbs (one block, one
    thread). Sequential Gibbs can settle for a long time in a mode that splits
    one topic in two and merges two others; compare several seeds.

    Randomness: chain 0 of ``seed``; token t (0-based, corpus order) starts
    in topic ``floor(U0 * K)`` of Philox block ``2^63 + t`` and in iteration
    ``it`` draws with ``U0`` of block ``it * T + t`` (T tokens in all): the
    smallest k with ``U0 * c[K-1] < c[k]``, ``c = cumsum(p)`` in float64 with
    ``p_k = ((n_dk + alpha) * (n_kw + eta)) * (1 / (n_k + V eta))``.

    Parameters
    ----------
    docs : a list of 1-D int arrays of word ids (documents may be empty), a
        2-D int array [D, L] (equal lengths), or a tuple ``(indptr, indices)``
        (CSR: document d is ``indices[indptr[d]:indptr[d+1]]``). A tuple of
        two is always read as CSR: pass documents as a list.
    n_topics : int K >= 1
    alpha, eta : float > 0 -- symmetric Dirichlet priors on theta and phi
    n_iter : int -- sweeps over all tokens
    seed : int in [0, 2^64)
    progress : bool -- a plain-text progress line on stderr
    exact : bool -- sequential collapsed Gibbs instead of AD-LDA
    n_words : int V, or None for ``max id + 1``; ids must be in [0, V)

    Returns
    -------
    :class:`LDAResult` -- doc_topic (theta) float64 [D, K], topic_word (phi)
    float64 [K, V], loglik float64 [n_iter] (``log p(w | z)`` after each
    iteration), the counts doc_topic_counts int32 [D, K] and
    topic_word_counts int32 [K, V], and topics int32 [T].

    Examples
    --------
    >>> import numpy as np, kexue
    >>> rng = np.random.default_rng(0)
    >>> docs = [rng.integers(0, 5, 30) for _ in range(20)] + [rng.integers(5, 10, 30) for _ in range(20)]
    >>> res = kexue.samplers.lda(docs, 2, n_iter=50, seed=1)
    >>> res.doc_topic.shape, res.topic_word.shape, res.loglik.shape
    ((40, 2), (2, 10), (50,))
    >>> bool(np.allclose(res.topic_word.sum(axis=1), 1.0))
    True
    >>> top = res.topic_word.argmax(axis=0)          # each word's most likely topic
    >>> len(set(top[:5])), len(set(top[5:])), bool(top[0] != top[5])
    (1, 1, True)
    """
    op = "samplers.lda"
    indptr, indices, V = _corpus(op, docs, n_words)
    K = check_int(op, "n_topics", n_topics)
    if K < 1:
        raise ValueError(f"[kexue.{op}] n_topics must be >= 1; got {K}")
    alpha = _number(op, "alpha", alpha)
    eta = _number(op, "eta", eta)
    topics, dk, kw, ll = _core.smp_lda(
        indptr, indices, K, n_words=V, alpha=alpha, eta=eta,
        n_iter=check_int(op, "n_iter", n_iter), seed=seed_arg(op, seed), exact=bool(exact),
        progress=progress_arg(op, progress))
    return _lda_result(topics, dk, kw, ll, alpha, eta)
