"""Pure-numpy linear-chain CRF: the reference twin of :mod:`kexue.crf`.

Same signatures and semantics as kexue.crf (see docs/spec: decoders §1).
Everything is computed in float64 and returned in the emissions' float dtype
(paths int64). Masks are "compacted": for each row the valid steps, in order,
form one shorter sequence, and the steps on either side of a hole are joined
by a single transition. ``allowed`` constraints add -inf to the forbidden
transitions / start tags / end tags, in training and decoding alike.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

__all__ = [
    "CRFGrad",
    "allowed_transitions",
    "log_likelihood",
    "log_partition",
    "marginals",
    "nbest",
    "nll_grad",
    "viterbi",
]

CRFGrad = namedtuple("CRFGrad", ["loss", "d_emissions", "d_transitions", "d_start", "d_end"])

_NEG_INF = -np.inf


# ----------------------------------------------------------------------------
# shared helpers (memm.py uses them too)


def _lse(x, axis=-1):
    """log(sum(exp(x))) along ``axis``, max-shifted; all -inf gives -inf, never NaN."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isneginf(m), 0.0, m)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def _log_bool(a):
    """log of a bool array: 0 where True, -inf where False."""
    return np.where(np.asarray(a, dtype=bool), 0.0, _NEG_INF)


def _split_allowed(allowed):
    """``allowed`` is None, a bool [K,K] array, or a tuple (allowed, allowed_start, allowed_end)."""
    if allowed is None:
        return None, None, None
    if isinstance(allowed, tuple):
        if len(allowed) != 3:
            raise ValueError(
                "allowed must be a bool [K,K] array or a triple "
                f"(allowed, allowed_start, allowed_end); got a tuple of length {len(allowed)}"
            )
        parts = allowed
    else:
        parts = (allowed, None, None)
    return tuple(None if p is None else np.asarray(p, dtype=bool) for p in parts)


def _out_dtype(emissions):
    dt = np.asarray(emissions).dtype
    return dt if np.issubdtype(dt, np.floating) else np.dtype(np.float64)


def _mask(mask, B, T):
    if mask is None:
        return np.ones((B, T), dtype=bool)
    return np.asarray(mask, dtype=bool)


def _check_k(k):
    if int(k) != k or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}")
    return int(k)


def _insert(top, item, k):
    """Insert ``item`` = (score, ...) into the descending list ``top`` (at most k long).

    Strictly-greater insertion: an item goes below every entry whose score is
    >= its own, so among equal scores the earlier-inserted item ranks first.
    """
    pos = 0
    while pos < len(top) and not item[0] > top[pos][0]:
        pos += 1
    if pos < k:
        top.insert(pos, item)
        del top[k:]


def _per_step(trans, L):
    """A [K,K] matrix used at every step, as a read-only [L,K,K] view; [L,K,K] as is."""
    trans = np.asarray(trans)
    return np.broadcast_to(trans, (L,) + trans.shape) if trans.ndim == 2 else trans


def _has_nan(*arrays):
    return any(np.isnan(np.asarray(a, dtype=np.float64)).any() for a in arrays)


def _viterbi_chain(init, trans, emit, final):
    """Max-product on one compacted chain of length L >= 1.

    delta_0 = init; delta_t(j) = max_i(delta_{t-1}(i) + trans(t)[i,j]) + emit[t,j]
    (in that order); best = max_k(delta_{L-1}(k) + final[k]). Predecessors and
    the final tag are the first index attaining the max (numpy argmax).
    ``trans`` is [K,K] (every step) or [L,K,K] (step t uses trans[t]).
    Returns (path int64 [L] or None, score).
    """
    L, K = emit.shape
    trans = _per_step(trans, L)
    if _has_nan(init, trans, emit, final):
        return None, np.nan  # NaN in, NaN out: no path is chosen
    delta = np.asarray(init, dtype=np.float64)
    psi = np.zeros((L, K), dtype=np.int64)
    cols = np.arange(K)
    for t in range(1, L):
        cand = delta[:, None] + trans[t]  # [i, j]
        psi[t] = np.argmax(cand, axis=0)
        delta = cand[psi[t], cols] + emit[t]
    total = delta + final
    last = int(np.argmax(total))
    score = total[last]
    if score == _NEG_INF:
        return None, score
    path = np.empty(L, dtype=np.int64)
    path[L - 1] = last
    for t in range(L - 1, 0, -1):
        path[t - 1] = psi[t, path[t]]
    return path, score


def _nbest_chain(init, trans, emit, final, k):
    """The k-best version of :func:`_viterbi_chain` (spec §1.5).

    Per (t, j) keep the top-k of the candidates delta_{t-1}(i, r) + trans(t)[i,j],
    visited in ascending (i, r) order with strictly-greater insertion (ties keep
    the earlier candidate); candidates scoring -inf are dropped; the kept entries
    then get + emit[t, j]. The final top-k is over (tag, rank) of
    delta_{L-1}(tag, rank) + final[tag]. Returns a list of (score, path) pairs,
    best first, at most k long, without -inf entries.
    """
    L, K = emit.shape
    trans = _per_step(trans, L)
    if _has_nan(init, trans, emit, final):
        return [(np.nan, None)] * k  # NaN in, NaN out: every slot NaN, path -1
    # lists[t][j] = [(score, prev_tag, prev_rank), ...] best first
    lists = [[[(init[j], -1, -1)] if init[j] != _NEG_INF else [] for j in range(K)]]
    for t in range(1, L):
        A = trans[t]
        prev = lists[-1]
        cur = []
        for j in range(K):
            top = []
            for i in range(K):
                for r, entry in enumerate(prev[i]):
                    c = entry[0] + A[i, j]
                    if c != _NEG_INF:
                        _insert(top, (c, i, r), k)
            cur.append([(c + emit[t, j], i, r) for (c, i, r) in top])
        lists.append(cur)
    top = []
    for j in range(K):
        for r, entry in enumerate(lists[-1][j]):
            c = entry[0] + final[j]
            if c != _NEG_INF:
                _insert(top, (c, j, r), k)
    out = []
    for score, j, r in top:
        path = np.empty(L, dtype=np.int64)
        for t in range(L - 1, -1, -1):
            path[t] = j
            _, j, r = lists[t][j][r]
        out.append((score, path))
    return out


# ----------------------------------------------------------------------------
# CRF internals


def _prepare(emissions, transitions, mask, start, end, allowed):
    h = np.asarray(emissions, dtype=np.float64)
    B, T, K = h.shape
    A = np.array(transitions, dtype=np.float64)
    s = np.zeros(K) if start is None else np.array(start, dtype=np.float64)
    e = np.zeros(K) if end is None else np.array(end, dtype=np.float64)
    a, a_start, a_end = _split_allowed(allowed)
    if a is not None:
        A = A + _log_bool(a)
    if a_start is not None:
        s = s + _log_bool(a_start)
    if a_end is not None:
        e = e + _log_bool(a_end)
    return h, A, s, e, _mask(mask, B, T), _out_dtype(emissions)


def _forward(h, A, s):
    """alpha [L,K]: alpha_0 = s + h_0; alpha_t(j) = h_tj + LSE_i(alpha_{t-1}(i) + A_ij)."""
    L, K = h.shape
    alpha = np.empty((L, K))
    alpha[0] = s + h[0]
    for t in range(1, L):
        alpha[t] = _lse(alpha[t - 1][:, None] + A, axis=0) + h[t]
    return alpha


def _backward(h, A, e):
    """beta [L,K]: beta_{L-1} = e; beta_t(i) = LSE_j(A_ij + h_{t+1,j} + beta_{t+1}(j))."""
    L, K = h.shape
    beta = np.empty((L, K))
    beta[L - 1] = e
    for t in range(L - 2, -1, -1):
        beta[t] = _lse(A + (h[t + 1] + beta[t + 1])[None, :], axis=1)
    return beta


def _path_score(h, A, s, e, y):
    score = s[y[0]] + h[0, y[0]]
    for t in range(1, len(y)):
        score += A[y[t - 1], y[t]] + h[t, y[t]]
    return score + e[y[-1]]


# ----------------------------------------------------------------------------
# public functions


def _host_only(name, stream):
    if stream is not None:
        raise ValueError(f"[kexue.reference.crf.{name}] stream is for GPU arrays; the numpy twin runs on the host")


def log_partition(emissions, transitions, *, mask=None, start=None, end=None, allowed=None,
                  stream=None):
    """log Z per row [B] (0 for a row without valid steps, -inf if every path is forbidden).

    ``stream`` (kexue's GPU argument) must be None: the twin runs on the host.
    """
    _host_only("log_partition", stream)
    h, A, s, e, m, dt = _prepare(emissions, transitions, mask, start, end, allowed)
    out = np.zeros(h.shape[0])
    for b in range(h.shape[0]):
        idx = np.flatnonzero(m[b])
        if idx.size:
            out[b] = _lse(_forward(h[b, idx], A, s)[-1] + e)
    return out.astype(dt)


def log_likelihood(emissions, tags, transitions, *, mask=None, start=None, end=None, allowed=None,
                   stream=None):
    """log p(tags) = score(tags) - log Z per row [B]; -inf when the tag path is forbidden.

    ``stream`` (kexue's GPU argument) must be None: the twin runs on the host.
    """
    _host_only("log_likelihood", stream)
    h, A, s, e, m, dt = _prepare(emissions, transitions, mask, start, end, allowed)
    y = np.asarray(tags)
    out = np.zeros(h.shape[0])
    for b in range(h.shape[0]):
        idx = np.flatnonzero(m[b])
        if idx.size == 0:
            continue
        hb = h[b, idx]
        score = _path_score(hb, A, s, e, y[b, idx])
        if score == _NEG_INF:
            out[b] = _NEG_INF
        else:
            out[b] = score - _lse(_forward(hb, A, s)[-1] + e)
    return out.astype(dt)


def nll_grad(emissions, tags, transitions, *, mask=None, start=None, end=None, allowed=None, stream=None):
    """loss = -log_likelihood [B] and the gradients of loss.sum() (forward-backward, spec §1.4).

    d_emissions is 0 at masked steps; d_start/d_end are returned even when
    start/end are None (gradient w.r.t. zero vectors); a row whose gold path is
    forbidden (loss +inf) contributes no gradient. ``stream`` (kexue's GPU
    argument) must be None: the twin runs on the host.
    """
    _host_only("nll_grad", stream)
    h, A, s, e, m, dt = _prepare(emissions, transitions, mask, start, end, allowed)
    y_all = np.asarray(tags)
    B, T, K = h.shape
    loss = np.zeros(B)
    dh = np.zeros((B, T, K))
    dA = np.zeros((K, K))
    ds = np.zeros(K)
    de = np.zeros(K)
    for b in range(B):
        idx = np.flatnonzero(m[b])
        if idx.size == 0:
            continue
        hb, y = h[b, idx], y_all[b, idx]
        score = _path_score(hb, A, s, e, y)
        if score == _NEG_INF:
            loss[b] = np.inf
            continue
        alpha, beta = _forward(hb, A, s), _backward(hb, A, e)
        logz = _lse(alpha[-1] + e)
        loss[b] = logz - score
        mu = np.exp(alpha + beta - logz)
        onehot = np.zeros_like(mu)
        onehot[np.arange(len(y)), y] = 1.0
        dh[b, idx] = mu - onehot
        ds += mu[0] - onehot[0]
        de += mu[-1] - onehot[-1]
        for t in range(1, len(y)):
            xi = np.exp(alpha[t - 1][:, None] + A + (hb[t] + beta[t])[None, :] - logz)
            dA += xi
            dA[y[t - 1], y[t]] -= 1.0
    return CRFGrad(loss.astype(dt), dh.astype(dt), dA.astype(dt), ds.astype(dt), de.astype(dt))


def marginals(emissions, transitions, *, mask=None, start=None, end=None, allowed=None, stream=None):
    """Posterior tag marginals [B,T,K].

    0 at masked steps and on rows whose every path is forbidden. ``stream``
    (kexue's GPU argument) must be None: the twin runs on the host.
    """
    _host_only("marginals", stream)
    h, A, s, e, m, dt = _prepare(emissions, transitions, mask, start, end, allowed)
    out = np.zeros(h.shape)
    for b in range(h.shape[0]):
        idx = np.flatnonzero(m[b])
        if idx.size == 0:
            continue
        hb = h[b, idx]
        alpha, beta = _forward(hb, A, s), _backward(hb, A, e)
        logz = _lse(alpha[-1] + e)
        if logz != _NEG_INF:
            out[b, idx] = np.exp(alpha + beta - logz)
    return out.astype(dt)


def viterbi(emissions, transitions, *, mask=None, start=None, end=None, allowed=None, stream=None):
    """Best path per row: (paths [B,T] int64, scores [B]).

    -1 at masked steps; ties go to the lowest tag index (numpy argmax); a row
    whose every path is forbidden gets path -1 and score -inf; a row without
    valid steps gets path -1 and score 0 (the empty path). ``stream`` (kexue's
    GPU argument) must be None: the twin runs on the host.
    """
    _host_only("viterbi", stream)
    h, A, s, e, m, dt = _prepare(emissions, transitions, mask, start, end, allowed)
    B, T, K = h.shape
    paths = np.full((B, T), -1, dtype=np.int64)
    scores = np.zeros(B)
    for b in range(B):
        idx = np.flatnonzero(m[b])
        if idx.size == 0:
            continue
        hb = h[b, idx]
        path, scores[b] = _viterbi_chain(s + hb[0], A, hb, e)
        if path is not None:
            paths[b, idx] = path
    return paths, scores.astype(dt)


def nbest(emissions, transitions, k, *, mask=None, start=None, end=None, allowed=None):
    """The k best paths per row, best first: (paths [B,k,T] int64, scores [B,k]).

    Paths scoring -inf are never returned: slots beyond the number of allowed
    paths have path -1 and score -inf. Ties rank by (tag, rank) ascending, so
    nbest(...)[:, 0] equals viterbi(...). A row without valid steps has one
    path, the empty one (all -1), with score 0.
    """
    k = _check_k(k)
    h, A, s, e, m, dt = _prepare(emissions, transitions, mask, start, end, allowed)
    B, T, K = h.shape
    paths = np.full((B, k, T), -1, dtype=np.int64)
    scores = np.full((B, k), _NEG_INF)
    for b in range(B):
        idx = np.flatnonzero(m[b])
        if idx.size == 0:
            scores[b, 0] = 0.0
            continue
        hb = h[b, idx]
        for r, (score, path) in enumerate(_nbest_chain(s + hb[0], A, hb, e, k)):
            scores[b, r] = score
            if path is not None:
                paths[b, r, idx] = path
    return paths, scores.astype(dt)


# ----------------------------------------------------------------------------
# label schemes


def _parse_label(label, prefixes, scheme):
    if label == "O":
        return "O", None
    if isinstance(label, str) and len(label) > 2 and label[1] == "-" and label[0] in prefixes:
        return prefixes[label[0]], label[2:]
    raise ValueError(
        f"labels: {label!r} is not a valid {scheme} label "
        f"(expected 'O' or one of {sorted(prefixes)} followed by '-<type>')"
    )


def allowed_transitions(labels, scheme):
    """Allowed-transition masks of a tagging scheme.

    Returns (allowed [K,K], allowed_start [K], allowed_end [K]), all bool.

    scheme "BIO": start -> O or B-x; anything -> O or B-x; I-x only from B-x or
    I-x; any tag may end. scheme "BIOES" (== "BIOUL"; prefixes B,I,E,S or
    B,I,L,U, with E == L and S == U): start -> O, B-x, S-x; end from O, E-x,
    S-x; from {O, E-*, S-*} -> {O, B-*, S-*}; from B-x or I-x -> I-x or E-x
    (same x). ValueError for an unknown scheme or a label it cannot parse.
    """
    if scheme == "BIO":
        prefixes = {"B": "B", "I": "I"}
    elif scheme in ("BIOES", "BIOUL"):
        prefixes = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}
    else:
        raise ValueError(f"scheme must be 'BIO', 'BIOES' or 'BIOUL'; got {scheme!r}")
    parsed = [_parse_label(lab, prefixes, scheme) for lab in labels]
    K = len(parsed)
    allowed = np.zeros((K, K), dtype=bool)
    a_start = np.zeros(K, dtype=bool)
    a_end = np.zeros(K, dtype=bool)
    for j, (pj, xj) in enumerate(parsed):
        if scheme == "BIO":
            a_start[j] = pj in ("O", "B")
            a_end[j] = True
        else:
            a_start[j] = pj in ("O", "B", "S")
            a_end[j] = pj in ("O", "E", "S")
        for i, (pi, xi) in enumerate(parsed):
            if scheme == "BIO":
                ok = pj in ("O", "B") or (pi in ("B", "I") and xi == xj)
            elif pi in ("O", "E", "S"):
                ok = pj in ("O", "B", "S")
            else:  # pi in (B, I)
                ok = pj in ("I", "E") and xi == xj
            allowed[i, j] = ok
    return allowed, a_start, a_end
