"""Pure-numpy MEMM / Bi-MEMM (Su's formulation): the reference twin of :mod:`kexue.memm`.

Model (spec: decoders §2), on each row's valid steps (masks are compacted as
in the CRF):

    p(y_0 | x)         = softmax(h_0 + log allowed_start)[y_0]
    p(y_t | y_{t-1}, x) = softmax_k(alpha * (h_t[k] + G[y_{t-1}, k]) + log allowed[y_{t-1}, k])[y_t]

with log of a bool = 0 or -inf; a last tag outside allowed_end makes the path
impossible (log-likelihood -inf). G is ``transitions`` [K,K] or
``factors`` = (L, R), G = L @ R.T. Bi-MEMM averages the log-likelihood of this
model and of the same model run right-to-left over each row's valid steps with
G.T, allowed.T, and allowed_start / allowed_end swapped. Everything is
float64 inside; outputs have the emissions' dtype (paths int64).
"""
from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from . import crf as _crf
from .crf import (
    _check_k,
    _log_bool,
    _lse,
    _mask,
    _nbest_chain,
    _out_dtype,
    _split_allowed,
    _viterbi_chain,
)

__all__ = ["MEMMGrad", "log_likelihood", "marginals", "nbest", "nll_grad", "viterbi"]

MEMMGrad = namedtuple("MEMMGrad", ["loss", "d_emissions", "d_transitions", "d_factors"])

_NEG_INF = -np.inf


def _check_alpha(alpha):
    if not (isinstance(alpha, (int, float, np.number)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0; got {alpha!r}")
    return float(alpha)


def _dense_g(transitions, factors):
    if (transitions is None) == (factors is None):
        raise ValueError(
            "give exactly one of transitions ([K,K]) and factors ((L, R), G = L @ R.T)"
        )
    if transitions is not None:
        return np.asarray(transitions, dtype=np.float64)
    left, right = factors
    return np.asarray(left, dtype=np.float64) @ np.asarray(right, dtype=np.float64).T


def _log_softmax(z, axis=-1):
    """z - LSE(z); -inf entries stay -inf (also when every entry is -inf)."""
    lse = np.expand_dims(_lse(z, axis=axis), axis)
    with np.errstate(invalid="ignore"):
        return np.where(np.isneginf(z), _NEG_INF, z - lse)


def _logs(allowed, K):
    """Additive log masks (transitions [K,K], start [K], end [K]) of an ``allowed`` argument."""
    a, a_start, a_end = _split_allowed(allowed)
    la = np.zeros((K, K)) if a is None else _log_bool(a)
    ls = np.zeros(K) if a_start is None else _log_bool(a_start)
    le = np.zeros(K) if a_end is None else _log_bool(a_end)
    return la, ls, le


def _reversed_logs(logs):
    la, ls, le = logs
    return la.T, le, ls


def _chain_ll_grad(h, y, G, alpha, logs):
    """Left-to-right log-likelihood of one compacted row, and the gradients of
    -log-likelihood w.r.t. h [L,K] and G [K,K] (None when it is -inf)."""
    la, ls, le = logs
    L, K = h.shape
    z = np.empty((L, K))
    z[0] = h[0] + ls  # the first step is not scaled by alpha
    z[1:] = alpha * (h[1:] + G[y[:-1]]) + la[y[:-1]]
    logp = _log_softmax(z)
    ll = np.sum(logp[np.arange(L), y]) + le[y[-1]]
    if ll == _NEG_INF:
        return ll, None, None
    dz = np.exp(logp)
    dz[np.arange(L), y] -= 1.0  # softmax - onehot
    dh = dz.copy()
    dh[1:] *= alpha
    dG = np.zeros((K, K))
    np.add.at(dG, y[:-1], alpha * dz[1:])
    return ll, dh, dG


def _row_ll_grad(h, y, G, alpha, logs, bidirectional):
    ll, dh, dG = _chain_ll_grad(h, y, G, alpha, logs)
    if not bidirectional:
        return ll, dh, dG
    ll_b, dh_b, dG_b = _chain_ll_grad(h[::-1], y[::-1], G.T, alpha, _reversed_logs(logs))
    ll = 0.5 * (ll + ll_b)
    if ll == _NEG_INF:
        return ll, None, None
    return ll, 0.5 * (dh + dh_b[::-1]), 0.5 * (dG + dG_b.T)


def _local_logprobs(h, G, alpha, logs):
    """lp0 [K] = log p(y_0); LP [L,K,K] with LP[t, j, k] = log p(y_t = k | y_{t-1} = j) (t >= 1)."""
    la, ls, _ = logs
    lp0 = _log_softmax(h[0] + ls)
    LP = _log_softmax(alpha * (h[:, None, :] + G[None, :, :]) + la[None], axis=-1)
    return lp0, LP


# ----------------------------------------------------------------------------
# public functions


def log_likelihood(
    emissions, tags, transitions=None, *, factors=None, mask=None, allowed=None, alpha=1.0,
    bidirectional=False,
):
    """log p(tags) per row [B] (sum over valid steps); Bi-MEMM: mean of both directions."""
    return -nll_grad(
        emissions, tags, transitions, factors=factors, mask=mask, allowed=allowed, alpha=alpha,
        bidirectional=bidirectional,
    ).loss


def nll_grad(
    emissions, tags, transitions=None, *, factors=None, mask=None, allowed=None, alpha=1.0,
    bidirectional=False,
):
    """loss = -log_likelihood [B] and the gradients of loss.sum().

    d/dz_t = softmax(z_t) - onehot(y_t); d/dh_t = alpha * d/dz_t (1 * at a
    direction's first step); d/dG[y_{t-1}, :] += alpha * d/dz_t. Returns
    MEMMGrad(loss, d_emissions, d_transitions, d_factors): d_transitions for
    dense G (d_factors None), d_factors = (dL, dR) for low-rank G
    (d_transitions None). Rows with loss +inf contribute no gradient.
    """
    alpha = _check_alpha(alpha)
    G = _dense_g(transitions, factors)
    h = np.asarray(emissions, dtype=np.float64)
    y_all = np.asarray(tags)
    B, T, K = h.shape
    m, dt = _mask(mask, B, T), _out_dtype(emissions)
    logs = _logs(allowed, K)
    loss = np.zeros(B)
    dh = np.zeros((B, T, K))
    dG = np.zeros((K, K))
    for b in range(B):
        idx = np.flatnonzero(m[b])
        if idx.size == 0:
            continue
        ll, dhb, dGb = _row_ll_grad(h[b, idx], y_all[b, idx], G, alpha, logs, bidirectional)
        loss[b] = -ll
        if dhb is not None:
            dh[b, idx] = dhb
            dG += dGb
    if factors is None:
        return MEMMGrad(loss.astype(dt), dh.astype(dt), dG.astype(dt), None)
    left = np.asarray(factors[0], dtype=np.float64)
    right = np.asarray(factors[1], dtype=np.float64)
    d_factors = ((dG @ right).astype(dt), (dG.T @ left).astype(dt))
    return MEMMGrad(loss.astype(dt), dh.astype(dt), None, d_factors)


def viterbi(
    emissions, transitions=None, *, factors=None, mask=None, allowed=None, alpha=1.0, mode="map"
):
    """Best path per row: (paths [B,T] int64, scores [B]).

    mode "map": the most probable path under the left-to-right model, score =
    log p(path) (ties to the lowest tag index, as in kexue.crf.viterbi).
    mode "crf_style": kexue.crf.viterbi(emissions, G, mask=mask, allowed=allowed)
    (bert4keras decoding; alpha ignored).
    """
    if mode not in ("map", "crf_style"):
        raise ValueError(f"mode must be 'map' or 'crf_style'; got {mode!r}")
    alpha = _check_alpha(alpha)
    G = _dense_g(transitions, factors)
    if mode == "crf_style":
        return _crf.viterbi(emissions, G, mask=mask, allowed=allowed)
    h = np.asarray(emissions, dtype=np.float64)
    B, T, K = h.shape
    m, dt = _mask(mask, B, T), _out_dtype(emissions)
    logs = _logs(allowed, K)
    paths = np.full((B, T), -1, dtype=np.int64)
    scores = np.zeros(B)
    for b in range(B):
        idx = np.flatnonzero(m[b])
        if idx.size == 0:
            continue
        lp0, LP = _local_logprobs(h[b, idx], G, alpha, logs)
        path, scores[b] = _viterbi_chain(lp0, LP, np.zeros((idx.size, K)), logs[2])
        if path is not None:
            paths[b, idx] = path
    return paths, scores.astype(dt)


def nbest(emissions, transitions, k, *, factors=None, mask=None, allowed=None, alpha=1.0):
    """The k most probable paths of the left-to-right model: (paths [B,k,T] int64, scores [B,k]).

    Scores are log p(path); same ranking, tie and padding rules as kexue.crf.nbest.
    """
    k = _check_k(k)
    alpha = _check_alpha(alpha)
    G = _dense_g(transitions, factors)
    h = np.asarray(emissions, dtype=np.float64)
    B, T, K = h.shape
    m, dt = _mask(mask, B, T), _out_dtype(emissions)
    logs = _logs(allowed, K)
    paths = np.full((B, k, T), -1, dtype=np.int64)
    scores = np.full((B, k), _NEG_INF)
    for b in range(B):
        idx = np.flatnonzero(m[b])
        if idx.size == 0:
            scores[b, 0] = 0.0
            continue
        lp0, LP = _local_logprobs(h[b, idx], G, alpha, logs)
        best = _nbest_chain(lp0, LP, np.zeros((idx.size, K)), logs[2], k)
        for r, (score, path) in enumerate(best):
            scores[b, r] = score
            if path is not None:
                paths[b, r, idx] = path
    return paths, scores.astype(dt)


def marginals(emissions, transitions=None, *, factors=None, mask=None, allowed=None, alpha=1.0):
    """Posterior tag marginals [B,T,K] of the left-to-right model.

    Sum-product over the local log-probabilities; with allowed_end the paths are
    conditioned on ending in an allowed tag (paths into a tag with no allowed
    successor have probability 0 and are conditioned away too). 0 at masked
    steps and on rows where no path is possible.
    """
    alpha = _check_alpha(alpha)
    G = _dense_g(transitions, factors)
    h = np.asarray(emissions, dtype=np.float64)
    B, T, K = h.shape
    m, dt = _mask(mask, B, T), _out_dtype(emissions)
    logs = _logs(allowed, K)
    le = logs[2]
    out = np.zeros((B, T, K))
    for b in range(B):
        idx = np.flatnonzero(m[b])
        L = idx.size
        if L == 0:
            continue
        lp0, LP = _local_logprobs(h[b, idx], G, alpha, logs)
        fwd = np.empty((L, K))
        bwd = np.empty((L, K))
        fwd[0] = lp0
        for t in range(1, L):
            fwd[t] = _lse(fwd[t - 1][:, None] + LP[t], axis=0)
        bwd[L - 1] = le
        for t in range(L - 2, -1, -1):
            bwd[t] = _lse(LP[t + 1] + bwd[t + 1][None, :], axis=1)
        logz = _lse(fwd[L - 1] + le)
        if logz != _NEG_INF:
            out[b, idx] = np.exp(fwd + bwd - logz)
    return out.astype(dt)
