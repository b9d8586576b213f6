"""Maximum-entropy Markov models, Su's formulation (kexue.fm/archives/7213).

The MEMM factorises p(y | x) left to right into local softmaxes:

    p(y_0 | x)          = softmax(h_0)[y_0]
    p(y_t | y_{t-1}, x) = softmax_k(alpha * (h_t[k] + G[y_{t-1}, k]))[y_t]

so training needs no partition function and is parallel over time -- that
is the reason to choose it over the CRF (``kexue.crf``). ``alpha=1`` is the
article's form; ``alpha=0.5`` reproduces bert4keras.

Arguments follow ``kexue.crf`` (``emissions`` [B,T,K] float32/float64,
``tags`` [B,T] int, ``mask`` bool [B,T] with any pattern, ``allowed`` as a
[K,K] matrix or the triple from :func:`kexue.crf.allowed_transitions`). A
forbidden transition or start is removed from the local softmax (which
renormalises over the allowed tags); a forbidden end makes the path
impossible. The transition matrix is either dense, ``transitions`` [K,K], or
low-rank, ``factors=(L, R)`` with ``G = L @ R.T`` (L, R [K,d]): training then
costs O(T K d) and touches only the gold row of G per step, which is what
makes very large tag sets feasible.

Each function has a numpy twin in ``kexue.reference.memm``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from . import _core
from ._util import arr, check_int, split_allowed, split_factors

__all__ = ["MEMMGrad", "log_likelihood", "marginals", "nbest", "nll_grad", "viterbi"]


class MEMMGrad(NamedTuple):
    """Result of :func:`nll_grad`: the loss and the gradients of ``loss.sum()``.

    ``d_transitions`` is set for a dense G, ``d_factors = (dL, dR)`` for a
    low-rank one; the other is None.
    """

    loss: np.ndarray
    d_emissions: np.ndarray
    d_transitions: Optional[np.ndarray]
    d_factors: Optional[Tuple[np.ndarray, np.ndarray]]


def _opts(op, transitions, factors, mask, allowed, alpha):
    left, right = split_factors(op, factors)
    al, als, ale = split_allowed(op, allowed)
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"[kexue.{op}] alpha must be a number; got {type(alpha).__name__}") from None
    return (arr(transitions),), dict(
        left=left, right=right, mask=arr(mask), allowed=al, allowed_start=als, allowed_end=ale,
        alpha=alpha,
    )


def log_likelihood(emissions, tags, transitions=None, *, factors=None, mask=None, allowed=None,
                   alpha=1.0, bidirectional=False):
    """log p(tags | emissions) per sequence: the sum of the local log-probabilities.

    Parameters
    ----------
    emissions : ndarray [B,T,K], float32 or float64
    tags : int32/int64 ndarray [B,T]
    transitions : ndarray [K,K] (dense G), or None with ``factors=(L, R)``
    factors : pair of ndarrays [K,d], optional (low-rank G = L @ R.T)
    mask, allowed : as in ``kexue.crf``
    alpha : float > 0, default 1.0 (0.5 = bert4keras)
    bidirectional : bool -- Bi-MEMM: the mean of the left-to-right model and
        the right-to-left one (the reversed valid steps scored with G.T)

    Returns
    -------
    ndarray [B] (<= 0; -inf for a forbidden path; 0 for an empty row)

    Examples
    --------
    >>> import numpy as np, kexue
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> G = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.memm.log_likelihood(h, np.array([[0, 1, 1]]), G, alpha=0.5).round(6)
    array([-1.725919])

    Reference twin: :func:`kexue.reference.memm.log_likelihood`.
    """
    (t,), kw = _opts("memm.log_likelihood", transitions, factors, mask, allowed, alpha)
    return _core.memm_log_likelihood(arr(emissions), arr(tags), t, bidirectional=bool(bidirectional),
                                     **kw)


def nll_grad(emissions, tags, transitions=None, *, factors=None, mask=None, allowed=None,
             alpha=1.0, bidirectional=False):
    """loss = -log_likelihood and its gradients, teacher-forced (parallel over time).

    Returns a :class:`MEMMGrad` ``(loss[B], d_emissions[B,T,K], d_transitions,
    d_factors)``: gradients of ``loss.sum()``; d_emissions is 0 on masked
    steps; a row with loss +inf contributes no gradient.

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> G = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.memm.nll_grad(h, np.array([[0, 1, 1]]), G).loss.round(6)
    array([1.62166])

    Reference twin: :func:`kexue.reference.memm.nll_grad`.
    """
    (t,), kw = _opts("memm.nll_grad", transitions, factors, mask, allowed, alpha)
    loss, de, dG, dL, dR = _core.memm_nll_grad(arr(emissions), arr(tags), t,
                                               bidirectional=bool(bidirectional), **kw)
    return MEMMGrad(loss, de, dG, None if dL is None else (dL, dR))


def viterbi(emissions, transitions=None, *, factors=None, mask=None, allowed=None, alpha=1.0,
            mode="map"):
    """The best path per sequence.

    ``mode="map"``: the most probable path under the left-to-right model
    (Viterbi on local log-probabilities, O(T K^2) exps); scores are
    log p(path). ``mode="crf_style"``: what bert4keras' examples do -- the CRF
    Viterbi on the raw scores h + G (alpha and the local normalisers ignored),
    identical to ``kexue.crf.viterbi(emissions, G, mask=mask, allowed=allowed)``.

    Returns
    -------
    paths : int64 [B,T] (-1 at masked steps), scores : [B]

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> G = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.memm.viterbi(h, G)[0], kexue.memm.viterbi(h, G, mode="crf_style")[0]
    (array([[0, 1, 0]]), array([[1, 1, 0]]))

    Reference twin: :func:`kexue.reference.memm.viterbi`.
    """
    if mode not in ("map", "crf_style"):
        raise ValueError(f"[kexue.memm.viterbi] mode must be 'map' or 'crf_style'; got {mode!r}")
    (t,), kw = _opts("memm.viterbi", transitions, factors, mask, allowed, alpha)
    return _core.memm_viterbi(arr(emissions), t, crf_style=mode == "crf_style", **kw)


def nbest(emissions, transitions, k, *, factors=None, mask=None, allowed=None, alpha=1.0):
    """The ``k`` most probable paths under the left-to-right model, best first.

    Returns paths int64 [B,k,T] and scores (log-probabilities) [B,k]; fewer
    than ``k`` allowed paths leave rows of -1 with score -inf.

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> G = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.memm.nbest(h, G, 2)[1].round(6)
    array([[-1.52166, -1.62166]])

    Reference twin: :func:`kexue.reference.memm.nbest`.
    """
    k = check_int("memm.nbest", "k", k)
    if k < 1:
        raise ValueError(f"[kexue.memm.nbest] k must be >= 1; got {k}")
    (t,), kw = _opts("memm.nbest", transitions, factors, mask, allowed, alpha)
    return _core.memm_nbest(arr(emissions), t, k, **kw)


def marginals(emissions, transitions=None, *, factors=None, mask=None, allowed=None, alpha=1.0):
    """Tag marginals p(y_t = k | x) of the left-to-right model [B,T,K].

    The forward recursion of the local probabilities, conditioned on the
    paths that are possible: ones that end in an allowed tag (``allowed``'s
    end constraint) and never reach a tag without an allowed successor. A
    backward pass does the conditioning, O(T K^2) like the forward one.
    0 on masked steps and on rows with no possible path.

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> G = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.memm.marginals(h, G).sum(-1)
    array([[1., 1., 1.]])

    Reference twin: :func:`kexue.reference.memm.marginals`.
    """
    (t,), kw = _opts("memm.marginals", transitions, factors, mask, allowed, alpha)
    return _core.memm_marginals(arr(emissions), t, **kw)
