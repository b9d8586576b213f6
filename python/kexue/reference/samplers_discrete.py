"""Pure-numpy discrete samplers: the twin of :func:`kexue.samplers.gibbs_mrf` and
:func:`kexue.samplers.lda` (same signatures, defaults and outputs).

Both reproduce the core's random streams draw for draw (numpy's ``exp`` may
differ from libm's in the last bit, which could move a draw only when a
uniform falls within an ulp of a boundary; the LDA log-likelihood uses
Python's ``math.lgamma`` and agrees to ~1e-12 relative):

* Philox4x32-10 block ``n`` of global chain ``g`` under ``seed``:
  ``philox4x32_10((n_lo, n_hi, g_lo, g_hi), (seed_lo, seed_hi))`` -> words
  ``w0..w3``; ``U0 = ((w0 >> 5) * 2^26 + (w1 >> 6)) * 2^-53``.
* A categorical draw from weights ``p`` (float64) with ``u``:
  ``c = cumsum(p)`` (one running sum), the smallest a with ``u * c[-1] < c[a]``;
  if rounding leaves none, the largest a with ``c[a] > c[a-1]``.
* gibbs_mrf: greedy colouring (nodes in index order, smallest colour unused by
  an earlier neighbour); a sweep updates the classes in colour order. Node i
  in sweep s of chain ``g = chain_offset + c`` uses ``U0`` of block ``s*N + i``;
  logits ``l = unary[i] + (the edges touching i, edge order) P_e[:, x_v]``
  (i = u) or ``P_e[x_u, :]`` (i = v); weights ``exp(l - max l)``. The random
  start uses ``floor(U0 * S)`` of block ``2^63 + i``.
* lda: chain 0; token t (corpus order, T tokens) starts in topic
  ``floor(U0 * K)`` of block ``2^63 + t`` and in iteration it draws with ``U0``
  of block ``it*T + t``; ``p_k = ((n_dk + alpha) * (n_kw + eta)) * (1 / (n_k + V eta))``
  with the token removed. AD-LDA over ``P = min(64, D)`` blocks of documents
  (block b: documents ``b*D//P .. (b+1)*D//P - 1``), each against the counts of
  the start of the iteration; ``exact=True``: one block (sequential Gibbs).

This module imports only numpy, :mod:`kexue.reference.optim` (Philox) and the
argument helpers of :mod:`kexue.reference.samplers`; its results are small
dataclasses with the fields of kexue.samplers' MRFTrace and LDAResult.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from .optim import philox4x32_10
from .samplers import _err, _int_arg, _seed_arg

# The twin's own result types (this package never imports kexue._core), with
# the fields of kexue.samplers' MRFTrace and LDAResult.


@dataclass
class MRFTrace:
    """The twin of kexue.samplers.MRFTrace: samples int32 [C,R,N], counts int64 [N,S], state int32 [C,N]."""

    samples: np.ndarray
    counts: np.ndarray
    state: np.ndarray

    @property
    def marginals(self):
        c = np.asarray(self.counts, dtype=np.float64)
        return c / c.sum(axis=1, keepdims=True)

    def __iter__(self):
        yield self.samples
        yield self.counts

@dataclass
class LDAResult:
    """The twin of kexue.samplers.LDAResult: doc_topic [D,K], topic_word [K,V], loglik [n_iter], counts, topics."""

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


__all__ = ["LDAResult", "MRFTrace", "gibbs_mrf", "greedy_colouring", "lda", "lda_loglik",
           "mrf_exact_marginals", "u0"]

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_INIT_BLOCK = 1 << 63
_TWO_M53 = 2.0**-53


# ============================================================================
# the stream


def u0(seed, chain, blocks):
    """float64 [...]: ``U0`` of Philox block(s) ``blocks`` of global chain(s) ``chain``
    (uint64-valued ints or arrays, broadcast) under ``seed``.

    >>> u = u0(0, 0, np.arange(4))
    >>> u.shape, bool(((u >= 0) & (u < 1)).all())
    ((4,), True)
    """
    g = np.asarray(chain, dtype=_U64)
    n = np.asarray(blocks, dtype=_U64)
    g, n = np.broadcast_arrays(g, n)
    key = (int(seed) & 0xFFFFFFFF, int(seed) >> 32)
    w = philox4x32_10((n & _MASK32, n >> _U64(32), g & _MASK32, g >> _U64(32)), key)
    a = w[0].astype(_U64) >> _U64(5)
    b = w[1].astype(_U64) >> _U64(6)
    return (a * _U64(67108864) + b).astype(np.float64) * _TWO_M53


def _draw(c, u):
    """The draw from cumulative weights c [..., n] with uniforms u [...]."""
    n = c.shape[-1]
    t = u * c[..., -1]
    a = np.sum(c <= t[..., None], axis=-1)
    over = a >= n
    if over.any():
        gt = c[..., 1:] > c[..., :-1]  # [..., n-1]: c[a] > c[a-1] for a = 1..n-1
        last = np.where(gt.any(axis=-1), n - 1 - np.argmax(gt[..., ::-1], axis=-1), 0)
        a = np.where(over, last, a)
    return a


def _uniform_index(u, n):
    return np.minimum((u * n).astype(np.int64), n - 1)


# ============================================================================
# gibbs_mrf


def greedy_colouring(n_nodes, edges):
    """int64 [N]: the colour of each node: in index order, the smallest colour
    that no earlier neighbour has (the core's colouring).

    >>> greedy_colouring(4, np.array([[0, 1], [1, 2], [2, 3], [3, 0]])).tolist()
    [0, 1, 0, 1]
    """
    nbrs = [[] for _ in range(n_nodes)]
    for u, v in np.asarray(edges, dtype=np.int64).reshape(-1, 2):
        nbrs[u].append(v)
        nbrs[v].append(u)
    colour = np.full(n_nodes, -1, dtype=np.int64)
    for i in range(n_nodes):
        used = {int(colour[j]) for j in nbrs[i] if colour[j] >= 0}
        c = 0
        while c in used:
            c += 1
        colour[i] = c
    return colour


def _check_mrf(fn, unary, edges, pairwise):
    unary = np.asarray(unary)
    if unary.dtype != np.float64:
        raise _err(fn, f"unary must be float64 (log-potentials); got {unary.dtype}", TypeError)
    if unary.ndim != 2:
        raise _err(fn, f"unary must be 2-D [N,S]; got shape {unary.shape}")
    N, S = unary.shape
    if N < 1:
        raise _err(fn, f"unary must have N >= 1 nodes (its first axis); got shape {unary.shape}")
    if S < 2:
        raise _err(fn, f"unary must have S >= 2 states per node (its second axis); got shape {unary.shape}")
    pairwise = np.asarray(pairwise)
    if pairwise.dtype != np.float64:
        raise _err(fn, f"pairwise must be float64 (log-potentials); got {pairwise.dtype}", TypeError)
    edges = np.asarray(edges)
    if edges.size == 0:
        edges = np.zeros((0, 2), dtype=np.int64)
    if edges.dtype.kind not in "iu":
        raise _err(fn, f"edges must be an integer array; got {edges.dtype}", TypeError)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise _err(fn, f"edges must have shape [E,2] (node pairs (u, v)); got shape {edges.shape}")
    E = edges.shape[0]
    if pairwise.ndim == 2:
        if pairwise.shape != (S, S):
            raise _err(fn, f"pairwise must have shape ({S}, {S}) [S,S]; got {pairwise.shape}")
    elif pairwise.ndim == 3:
        if pairwise.shape != (E, S, S):
            raise _err(fn, f"pairwise must have shape ({E}, {S}, {S}) [E,S,S]; got {pairwise.shape}")
    else:
        raise _err(fn, f"pairwise must be 2-D [S,S] or 3-D [E,S,S]; got shape {pairwise.shape}")
    for name, a in (("unary", unary), ("pairwise", pairwise)):
        bad = ~np.isfinite(a)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise _err(fn, f"{name} must be finite; got {a[idx]} at {idx}")
    edges = edges.astype(np.int64)
    for e, (u, v) in enumerate(edges):
        if not (0 <= u < N and 0 <= v < N):
            raise _err(fn, f"edges must hold node indices in [0, {N}); got edges[{e}] = ({u}, {v})", IndexError)
        if u == v:
            raise _err(fn, f"edges must join two different nodes; edges[{e}] = ({u}, {v}) is a self-loop")
    return unary, edges, pairwise


def mrf_energy(unary, edges, pairwise, x):
    """E(x) = -(sum_i unary[i, x_i] + sum_e P_e[x_u, x_v]) for states x [C, N] (or [N]),
    the sums in index order from 0.0, as the core's anneal_mrf. float64 [C].

    >>> mrf_energy(np.zeros((2, 2)), [[0, 1]], np.array([[1.0, 0.0], [0.0, 1.0]]), [[0, 0], [0, 1]])
    array([-1., -0.])
    """
    unary = np.asarray(unary, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    pairwise = np.asarray(pairwise, dtype=np.float64)
    x = np.asarray(x, dtype=np.int64)
    x = x[None] if x.ndim == 1 else x
    tot = np.zeros(x.shape[0])
    for i in range(unary.shape[0]):
        tot = tot + unary[i, x[:, i]]
    for e, (u, v) in enumerate(edges):
        P = pairwise if pairwise.ndim == 2 else pairwise[e]
        tot = tot + P[x[:, u], x[:, v]]
    return -tot


def _anneal_mrf(unary, edges, pairwise, x0, T, seed, chain_offset):
    """The twin of the core's anneal_mrf (kexue/samplers.hpp); returns
    (best [C,N] int32, best_energy [C], energy [C,n])."""
    fn = "anneal"
    unary, edges, pairwise = _check_mrf(fn, unary, edges, pairwise)
    N, S = unary.shape
    x0 = np.asarray(x0)
    if x0.dtype.kind not in "iu":
        raise _err(fn, f"x0 must be integer states [C, N] for an MRF; got {x0.dtype}", TypeError)
    if x0.ndim != 2 or x0.shape[1] != N:
        raise _err(fn, f"x0 must have shape (C, {N}) [C,N]; got {x0.shape}")
    bad = np.argwhere((x0 < 0) | (x0 >= S))
    if bad.size:
        c, i = (int(v) for v in bad[0])
        raise _err(fn, f"x0 states must be in [0, {S}); got {int(x0[c, i])} at ({c}, {i})",
                   IndexError)
    if chain_offset < 0:
        raise _err(fn, f"chain_offset must be >= 0; got {chain_offset}")
    C, nT = x0.shape[0], T.size
    x = x0.astype(np.int64)
    E = mrf_energy(unary, edges, pairwise, x)
    best_e, best_x = E.copy(), x.copy()
    energy = np.empty((C, nT))
    # per node: (edge matrix, other node, i is u) in edge order
    inc = [[] for _ in range(N)]
    for e, (u, v) in enumerate(edges):
        P = pairwise if pairwise.ndim == 2 else pairwise[e]
        inc[u].append((P, v, True))
        inc[v].append((P, u, False))
    g = np.arange(C, dtype=_U64) + _U64(chain_offset)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    for t in range(nT):
        n = np.arange(t * N, (t + 1) * N, dtype=_U64)
        gg, nn = np.broadcast_arrays(g[:, None], n[None, :])
        w = philox4x32_10((nn & _MASK32, nn >> _U64(32), gg & _MASK32, gg >> _U64(32)), key)
        w = [wk.astype(_U64) for wk in w]
        U0 = ((w[0] >> _U64(5)) * _U64(67108864) + (w[1] >> _U64(6))).astype(np.float64) * _TWO_M53
        U1 = ((w[2] >> _U64(5)) * _U64(67108864) + (w[3] >> _U64(6))).astype(np.float64) * _TWO_M53
        with np.errstate(divide="ignore"):
            logU = np.log(U0)
        for i in range(N):
            a = x[:, i]
            j = np.minimum((U1[:, i] * (S - 1)).astype(np.int64), S - 2)
            b = (a + 1 + j) % S
            d = unary[i, b] - unary[i, a]
            for P, v, is_u in inc[i]:
                d = d + ((P[b, x[:, v]] - P[a, x[:, v]]) if is_u else (P[x[:, v], b] - P[x[:, v], a]))
            dE = -d
            take = logU[:, i] < -dE / T[t]
            x[:, i] = np.where(take, b, a)
            E = np.where(take, E + dE, E)
            better = take & (E < best_e)
            best_e = np.where(better, E, best_e)
            best_x[better] = x[better]
        energy[:, t] = E
    return best_x.astype(np.int32), best_e, energy


def gibbs_mrf(unary, edges, pairwise, n_sweeps, *, chains=1, seed=0, init=None, record_every=1,
              chain_offset=0):
    """The twin of :func:`kexue.samplers.gibbs_mrf` (vectorised over chains and
    the nodes of a colour class; a Python loop over sweeps, classes and the
    incidence slots).

    >>> tr = gibbs_mrf(np.zeros((2, 2)), [[0, 1]], np.eye(2), 10, chains=3)
    >>> tr.samples.shape, tr.counts.shape, tr.samples.dtype.name
    ((3, 10, 2), (2, 2), 'int32')
    """
    fn = "gibbs_mrf"
    unary, edges, pairwise = _check_mrf(fn, unary, edges, pairwise)
    N, S = unary.shape
    E = edges.shape[0]
    n_sweeps = _int_arg(fn, "n_sweeps", n_sweeps, 0)
    C = _int_arg(fn, "chains", chains, 0)
    record_every = _int_arg(fn, "record_every", record_every, 1)
    chain_offset = _int_arg(fn, "chain_offset", chain_offset, 0)
    seed = _seed_arg(fn, seed)
    g = np.uint64(chain_offset) + np.arange(C, dtype=_U64)
    if init is None:
        x = _uniform_index(u0(seed, g[:, None], _U64(_INIT_BLOCK) + np.arange(N, dtype=_U64)[None, :]), S)
    else:
        a = np.asarray(init)
        if a.dtype.kind not in "iu":
            raise _err(fn, f"init must be an integer array [chains, N]; got {a.dtype}", TypeError)
        if a.shape != (C, N):
            raise _err(fn, f"init must have shape ({C}, {N}) [chains, N]; got {a.shape}")
        if ((a < 0) | (a >= S)).any():
            c, i = np.argwhere((a < 0) | (a >= S))[0]
            raise _err(fn, f"init states must be in [0, {S}); got {int(a[c, i])} at ({c}, {i})")
        x = a.astype(np.int64)
    x = np.array(x, dtype=np.int64).reshape(C, N)
    # incidence slots: node i's j-th edge (edge order) -> neighbour, matrix
    shared = pairwise.ndim == 2
    P = pairwise[None] if shared else pairwise
    nm = P.shape[0]
    mats = np.concatenate([P, P.transpose(0, 2, 1)], axis=0)  # l[a] += M[x_nb, a]
    inc = [[] for _ in range(N)]
    for e, (u, v) in enumerate(edges):
        m = 0 if shared else e
        inc[u].append((v, nm + m))  # P_e[a, x_v] = P_e^T[x_v, a]
        inc[v].append((u, m))  # P_e[x_u, a]
    dmax = max((len(s) for s in inc), default=0)
    nbr = np.zeros((N, max(dmax, 1)), dtype=np.int64)
    mat = np.zeros_like(nbr)
    valid = np.zeros(nbr.shape, dtype=bool)
    for i, s in enumerate(inc):
        for j, (v, m) in enumerate(s):
            nbr[i, j], mat[i, j], valid[i, j] = v, m, True
    colour = greedy_colouring(N, edges)
    classes = [np.flatnonzero(colour == k) for k in range(int(colour.max()) + 1)]
    R = n_sweeps // record_every
    samples = np.zeros((C, R, N), dtype=np.int32)
    for s in range(n_sweeps):
        for nodes in classes:
            m = nodes.size
            logits = np.broadcast_to(unary[nodes], (C, m, S)).copy()
            for j in range(dmax):
                ok = valid[nodes, j]
                if not ok.any():
                    continue
                rows = mats[mat[nodes, j]]  # [m, S, S]
                xn = x[:, nbr[nodes, j]]  # [C, m]
                contrib = rows[np.arange(m)[None, :], xn, :]  # [C, m, S]
                logits = np.where(ok[None, :, None], logits + contrib, logits)
            u = u0(seed, g[:, None], _U64(s) * _U64(N) + nodes.astype(_U64)[None, :])
            w = np.exp(logits - logits.max(axis=-1, keepdims=True))
            x[:, nodes] = _draw(np.cumsum(w, axis=-1), u)
        if (s + 1) % record_every == 0:
            samples[:, (s + 1) // record_every - 1] = x
    counts = np.zeros((N, S), dtype=np.int64)
    if C * R:
        flat = samples.reshape(-1, N).astype(np.int64)
        np.add.at(counts, (np.broadcast_to(np.arange(N), flat.shape), flat), 1)
    return MRFTrace(samples=samples, counts=counts, state=x.astype(np.int32))


def mrf_exact_marginals(unary, edges, pairwise):
    """float64 [N, S]: the exact marginals by enumerating all S^N states (small N only).

    >>> m = mrf_exact_marginals(np.zeros((2, 2)), [[0, 1]], np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> np.round(m[0], 6).tolist()
    [0.5, 0.5]
    """
    unary, edges, pairwise = _check_mrf("mrf_exact_marginals", unary, edges, pairwise)
    N, S = unary.shape
    if S**N > 2_000_000:
        raise _err("mrf_exact_marginals", f"S^N = {S}^{N} states is too many to enumerate")
    X = np.indices((S,) * N).reshape(N, -1).T  # [S^N, N]
    lp = unary[np.arange(N), X].sum(axis=1)
    for e, (u, v) in enumerate(edges):
        P = pairwise if pairwise.ndim == 2 else pairwise[e]
        lp = lp + P[X[:, u], X[:, v]]
    w = np.exp(lp - lp.max())
    w /= w.sum()
    out = np.zeros((N, S))
    for i in range(N):
        out[i] = np.bincount(X[:, i], weights=w, minlength=S)
    return out


# ============================================================================
# lda


def _corpus(fn, docs, n_words):
    if isinstance(docs, tuple) and len(docs) == 2:
        indptr = np.asarray(docs[0])
        if indptr.dtype.kind not in "iu" or indptr.ndim != 1:
            raise _err(fn, "docs as a pair (indptr, indices) needs a 1-D integer indptr", TypeError)
        indptr = indptr.astype(np.int64)
        indices = np.asarray(docs[1])
        if indices.size == 0:
            indices = np.zeros(0, dtype=np.int64)
        if indices.dtype.kind not in "iu":
            raise _err(fn, f"docs' indices must be an integer array; got {indices.dtype}", TypeError)
        indices = indices.reshape(-1).astype(np.int64)
    elif isinstance(docs, np.ndarray) and docs.ndim == 2:
        if docs.dtype.kind not in "iu":
            raise _err(fn, f"docs must hold integer word ids; got {docs.dtype}", TypeError)
        indptr = np.arange(docs.shape[0] + 1, dtype=np.int64) * docs.shape[1]
        indices = docs.reshape(-1).astype(np.int64)
    else:
        parts = []
        for d, doc in enumerate(docs):
            a = np.asarray(doc)
            if a.size == 0:
                a = np.zeros(0, dtype=np.int64)
            elif a.dtype.kind not in "iu":
                raise _err(fn, f"docs[{d}] must be an integer array of word ids; got {a.dtype}", TypeError)
            elif a.ndim != 1:
                raise _err(fn, f"docs[{d}] must be 1-D (a sequence of word ids); got shape {a.shape}")
            parts.append(a.astype(np.int64))
        indptr = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([p.size for p in parts], out=indptr[1:])
        indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    D = indptr.size - 1
    if D < 1:
        raise _err(fn, "docs must hold at least one document; got 0")
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != indices.size:
        raise _err(fn, "indptr must start at 0, be non-decreasing and end at len(indices)")
    if indices.size == 0:
        raise _err(fn, f"docs must hold at least one token; got {D} empty document{'' if D == 1 else 's'}")
    V = int(indices.max()) + 1 if n_words is None else _int_arg(fn, "n_words", n_words, 1)
    bad = (indices < 0) | (indices >= V)
    if bad.any():
        t = int(np.argmax(bad))
        d = int(np.searchsorted(indptr, t, side="right") - 1)
        raise _err(fn, f"docs must hold word ids in [0, n_words = {V}); got {int(indices[t])} at token "
                       f"{t - int(indptr[d])} of document {d}", IndexError)
    return indptr, indices, V


def lda_loglik(topic_word_counts, eta):
    """``log p(w | z)`` from the topic-word counts n_kw [K, V]:
    ``K (lgamma(V eta) - V lgamma(eta)) + sum_k [sum_w lgamma(n_kw + eta) - lgamma(n_k + V eta)]``.

    >>> round(lda_loglik(np.array([[2, 0], [0, 2]]), 1.0), 6)   # 2 log(2! 1! / 3!) ... per topic
    -2.197225
    """
    n = np.asarray(topic_word_counts, dtype=np.int64)
    K, V = n.shape
    eta = float(eta)
    vals, inv = np.unique(n, return_inverse=True)
    lg = np.array([math.lgamma(float(v) + eta) for v in vals])
    per_topic = lg[inv.reshape(n.shape)].sum(axis=1)
    nk = n.sum(axis=1)
    ll = K * (math.lgamma(V * eta) - V * math.lgamma(eta))
    for k in range(K):
        ll += float(per_topic[k]) - math.lgamma(float(nk[k]) + V * eta)
    return ll


def lda(docs, n_topics, *, alpha=0.1, eta=0.01, n_iter=500, seed=0, progress=False, exact=False,
        n_words=None):
    """The twin of :func:`kexue.samplers.lda` (a Python loop over tokens: small corpora).

    >>> res = lda([np.array([0, 0, 1]), np.array([2, 2, 1])], 2, n_iter=3)
    >>> res.doc_topic.shape, res.topic_word.shape, res.loglik.shape
    ((2, 2), (2, 3), (3,))
    """
    fn = "lda"
    indptr, words, V = _corpus(fn, docs, n_words)
    K = _int_arg(fn, "n_topics", n_topics, 1)
    for name, v in (("alpha", alpha), ("eta", eta)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise _err(fn, f"{name} must be a number; got {type(v).__name__}", TypeError)
        if not (math.isfinite(float(v)) and float(v) > 0):
            raise _err(fn, f"{name} must be a finite number > 0; got {float(v)}")
    alpha, eta = float(alpha), float(eta)
    n_iter = _int_arg(fn, "n_iter", n_iter, 0)
    seed = _seed_arg(fn, seed)
    D, T = indptr.size - 1, words.size
    Veta = V * eta
    z = _uniform_index(u0(seed, 0, _U64(_INIT_BLOCK) + np.arange(T, dtype=_U64)), K)
    doc_of = np.repeat(np.arange(D), np.diff(indptr))
    ndk = np.zeros((D, K), dtype=np.int64)
    np.add.at(ndk, (doc_of, z), 1)
    nwk = np.zeros((V, K), dtype=np.int64)
    np.add.at(nwk, (words, z), 1)
    nk = np.bincount(z, minlength=K).astype(np.int64)
    P = 1 if exact else min(64, D)
    loglik = np.zeros(n_iter)
    for it in range(n_iter):
        u_all = u0(seed, 0, _U64(it) * _U64(T) + np.arange(T, dtype=_U64))
        for b in range(P):
            d0, d1 = b * D // P, (b + 1) * D // P
            if P == 1:
                lw, lk = nwk, nk  # the global counts, updated in place
            else:
                lw, lk = nwk.copy(), nk.copy()  # the block's copy of the iteration's counts
            for t in range(int(indptr[d0]), int(indptr[d1])):
                d, w, k0 = doc_of[t], words[t], z[t]
                nd, nw = ndk[d], lw[w]
                nd[k0] -= 1
                nw[k0] -= 1
                lk[k0] -= 1
                p = ((nd + alpha) * (nw + eta)) * (1.0 / (lk + Veta))
                k1 = int(_draw(np.cumsum(p), u_all[t]))
                nd[k1] += 1
                nw[k1] += 1
                lk[k1] += 1
                z[t] = k1
        if P > 1:  # the blocks' changes added up: the counts of the new assignment
            nwk = np.zeros((V, K), dtype=np.int64)
            np.add.at(nwk, (words, z), 1)
            nk = np.bincount(z, minlength=K).astype(np.int64)
        loglik[it] = lda_loglik(nwk.T, eta)
        if progress:
            sys.stderr.write(f"\r[kexue.samplers.lda] {it + 1}/{n_iter}")
            if it + 1 == n_iter:
                sys.stderr.write("\n")
    dk = ndk.astype(np.int32)
    kw = np.ascontiguousarray(nwk.T).astype(np.int32)
    theta = (dk + alpha) / (dk.sum(axis=1, keepdims=True) + K * alpha)
    phi = (kw + eta) / (kw.sum(axis=1, keepdims=True) + V * eta)
    return LDAResult(doc_topic=theta, topic_word=phi, loglik=loglik, doc_topic_counts=dk,
                     topic_word_counts=kw, topics=z.astype(np.int32))
