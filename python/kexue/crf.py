"""Linear-chain conditional random fields (kexue.fm/archives/5542).

A path y over the valid steps of a sequence scores

    S(y) = start[y_0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_L-1]

and p(y | x) = exp(S(y)) / Z with Z summed over every path (or every
*allowed* path when ``allowed`` is given: the constraints hold in training
and decoding alike).

Conventions shared by every function here:

* ``emissions`` [B,T,K] float32 or float64; everything float that comes with
  it (``transitions`` [K,K], ``start`` [K], ``end`` [K]) has the same dtype,
  and float results come back in it. Sums run in float64 inside.
* ``transitions[i, j]`` scores tag i followed by tag j (pytorch-crf's
  convention). ``start``/``end`` absent means zero (bert4keras has neither).
* ``tags`` [B,T] int32 or int64, in [0, K) on valid steps (masked steps are
  not read, so any padding value works there).
* ``mask`` bool [B,T], None = every step valid. *Any* mask is allowed, not
  just prefixes: masked steps are removed and the valid steps on either side
  are joined by one transition, so a masked first token ([CLS]) just works.
  A row with no valid step has log Z = 0, log-likelihood 0, path all -1.
* ``allowed``: a bool [K,K] matrix, or the triple ``(allowed[K,K],
  allowed_start[K], allowed_end[K])`` from :func:`allowed_transitions` (items
  may be None). Forbidden moves score -inf: log Z sums over allowed paths
  only, decoding never returns a forbidden path, and a gold path that breaks
  them has log-likelihood -inf.
* NaN in the inputs gives NaN out, never a crash: NaN log Z, loss and
  marginals for the rows it touches, and no decoded path (-1, score NaN)
  for a row with a NaN among its valid emissions or in the parameters.
  +inf emissions are not meaningful scores and also give NaN.

Work is O(B T K^2), parallel over the batch (``kexue.set_num_threads``),
the GIL released. Each function has a numpy twin in ``kexue.reference.crf``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _core
from . import cuda as _kcuda
from ._util import arr, check_int, split_allowed

__all__ = [
    "CRF",
    "CRFGrad",
    "allowed_transitions",
    "log_likelihood",
    "log_partition",
    "marginals",
    "nbest",
    "nll_grad",
    "viterbi",
]


class CRFGrad(NamedTuple):
    """Result of :func:`nll_grad`: the loss and the gradients of ``loss.sum()``."""

    loss: np.ndarray
    d_emissions: np.ndarray
    d_transitions: np.ndarray
    d_start: np.ndarray
    d_end: np.ndarray


def _opts(op, mask, start, end, allowed):
    al, als, ale = split_allowed(op, allowed)
    return dict(
        mask=arr(mask), start=arr(start), end=arr(end), allowed=al, allowed_start=als,
        allowed_end=ale,
    )


def log_partition(emissions, transitions, *, mask=None, start=None, end=None, allowed=None, stream=None):
    """log Z per sequence: the log-sum-exp of the scores of every (allowed) path.

    On the GPU (every array in GPU memory, torch.cuda or CuPy): the result
    comes back there, allocated by the emissions' library, computed in
    float64 whatever the dtype and within rounding of the CPU's (the sums run
    in another order); ``stream`` as in :mod:`kexue.cuda` (None for host arrays).

    Parameters
    ----------
    emissions : ndarray [B,T,K], float32 or float64
    transitions : ndarray [K,K], same dtype
    mask : bool ndarray [B,T], optional
    start, end : ndarray [K], optional
    allowed : bool [K,K] or (allowed, allowed_start, allowed_end), optional

    Returns
    -------
    ndarray [B], the emissions' dtype. 0 for a row with no valid step.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> A = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.crf.log_partition(h, A).round(6)
    array([5.047499])

    Reference twin: :func:`kexue.reference.crf.log_partition`.
    """
    if _kcuda.is_gpu_array(emissions):
        return _kcuda._crf_forward("crf.log_partition", emissions, None, transitions, mask, start, end,
                                   allowed, stream)
    _kcuda._host_stream("crf.log_partition", stream)
    return _core.crf_log_partition(
        arr(emissions), arr(transitions), **_opts("crf.log_partition", mask, start, end, allowed)
    )


def log_likelihood(emissions, tags, transitions, *, mask=None, start=None, end=None, allowed=None,
                   stream=None):
    """log p(tags | emissions) = S(tags) - log Z per sequence (<= 0).

    On the GPU as :func:`log_partition` (tags in GPU memory too; a tag out of
    range raises IndexError before anything is written).

    Parameters
    ----------
    emissions : ndarray [B,T,K], float32 or float64
    tags : int32/int64 ndarray [B,T], in [0, K) on valid steps
    transitions : ndarray [K,K]
    mask, start, end, allowed : see the module docstring

    Returns
    -------
    ndarray [B]; -inf for a path that breaks ``allowed``; 0 for an empty row.

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> A = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.crf.log_likelihood(h, np.array([[0, 1, 1]]), A).round(6)
    array([-1.847499])

    Reference twin: :func:`kexue.reference.crf.log_likelihood`.
    """
    if _kcuda.is_gpu_array(emissions):
        return _kcuda._crf_forward("crf.log_likelihood", emissions, tags, transitions, mask, start, end,
                                   allowed, stream)
    _kcuda._host_stream("crf.log_likelihood", stream)
    return _core.crf_log_likelihood(
        arr(emissions), arr(tags), arr(transitions),
        **_opts("crf.log_likelihood", mask, start, end, allowed),
    )


def nll_grad(emissions, tags, transitions, *, mask=None, start=None, end=None, allowed=None, stream=None):
    """The negative log-likelihood and its gradients in one forward-backward pass.

    On the GPU as :func:`log_partition` (tags in GPU memory too; the five
    results are arrays of the emissions' library on their device; the
    parameter gradients are summed over the batch in a fixed order, so
    repeated calls give the same bits).

    Returns a :class:`CRFGrad` ``(loss[B], d_emissions[B,T,K],
    d_transitions[K,K], d_start[K], d_end[K])`` where ``loss = -log_likelihood``
    and the gradients are those of ``loss.sum()`` (expected minus observed
    counts). ``d_start``/``d_end`` are returned even when ``start``/``end`` are
    None (the gradient at zero). d_emissions is 0 on masked steps. A row whose
    loss is +inf (gold path forbidden by ``allowed``) contributes no gradient.

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> A = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> g = kexue.crf.nll_grad(h, np.array([[0, 1, 1]]), A)
    >>> g.loss.round(6), g.d_transitions.round(6)
    (array([1.847499]), array([[ 0.321195, -0.617184],
           [ 0.477641, -0.181652]]))

    Reference twin: :func:`kexue.reference.crf.nll_grad`.
    """
    if _kcuda.is_gpu_array(emissions):
        return CRFGrad(*_kcuda._crf_nll_grad(emissions, tags, transitions, mask, start, end, allowed, stream))
    _kcuda._host_stream("crf.nll_grad", stream)
    out = _core.crf_nll_grad(
        arr(emissions), arr(tags), arr(transitions),
        **_opts("crf.nll_grad", mask, start, end, allowed),
    )
    return CRFGrad(*out)


def marginals(emissions, transitions, *, mask=None, start=None, end=None, allowed=None, stream=None):
    """Posterior tag probabilities p(y_t = k | x) [B,T,K].

    Each valid step sums to 1; masked steps, and rows whose every path is
    forbidden, are 0. On the GPU as :func:`log_partition`.

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> A = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.crf.marginals(h, A)[0, 0].round(6)
    array([0.483788, 0.516212])

    Reference twin: :func:`kexue.reference.crf.marginals`.
    """
    if _kcuda.is_gpu_array(emissions):
        return _kcuda._crf_marginals(emissions, transitions, mask, start, end, allowed, stream)
    _kcuda._host_stream("crf.marginals", stream)
    return _core.crf_marginals(
        arr(emissions), arr(transitions), **_opts("crf.marginals", mask, start, end, allowed)
    )


def viterbi(emissions, transitions, *, mask=None, start=None, end=None, allowed=None, stream=None):
    """The highest-scoring path of each sequence.

    On the GPU: pass the emissions (and every other array) in GPU memory --
    torch.cuda tensors or CuPy arrays -- and the paths and scores come back
    there, allocated by the same library, equal to the CPU's bit for bit;
    ``stream`` as in :mod:`kexue.cuda` (None for host arrays).

    Returns
    -------
    paths : int64 ndarray [B,T], -1 at masked steps
    scores : ndarray [B], the unnormalised path score S(path) (p = exp(score - log Z))

    Ties go to the lowest tag index (numpy's argmax). A row whose every path
    is forbidden gets path -1 and score -inf; an empty row path -1, score 0.

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> A = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> kexue.crf.viterbi(h, A)
    (array([[1, 1, 0]]), array([3.6]))

    Reference twin: :func:`kexue.reference.crf.viterbi`.
    """
    if _kcuda.is_gpu_array(emissions):
        return _kcuda._crf_viterbi(emissions, transitions, mask, start, end, allowed, stream)
    _kcuda._host_stream("crf.viterbi", stream)
    return _core.crf_viterbi(
        arr(emissions), arr(transitions), **_opts("crf.viterbi", mask, start, end, allowed)
    )


def nbest(emissions, transitions, k, *, mask=None, start=None, end=None, allowed=None):
    """The ``k`` highest-scoring paths of each sequence, best first.

    Returns
    -------
    paths : int64 ndarray [B,k,T], -1 at masked steps
    scores : ndarray [B,k]

    ``nbest(...)[0][:, 0]`` equals :func:`viterbi`'s paths. Fewer than ``k``
    allowed paths: the remaining rows are -1 with score -inf. Ties are broken
    by (tag, rank) ascending. Memory O(T K k) per thread.

    Examples
    --------
    >>> h = np.array([[[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]]])
    >>> A = np.array([[0.4, -0.2], [0.1, 0.6]])
    >>> paths, scores = kexue.crf.nbest(h, A, 3)
    >>> paths[0].tolist(), scores.round(6).tolist()
    ([[1, 1, 0], [1, 1, 1], [0, 1, 0]], [[3.6, 3.5, 3.3]])

    Reference twin: :func:`kexue.reference.crf.nbest`.
    """
    k = check_int("crf.nbest", "k", k)
    if k < 1:
        raise ValueError(f"[kexue.crf.nbest] k must be >= 1; got {k}")
    return _core.crf_nbest(
        arr(emissions), arr(transitions), k, **_opts("crf.nbest", mask, start, end, allowed)
    )


_SCHEMES = {"BIO": "BIO", "BIOES": "BIOES", "BIOUL": "BIOES"}
_ALIASES = {"L": "E", "U": "S"}


def _parse_label(label, scheme, idx):
    if not isinstance(label, str):
        raise ValueError(
            f"[kexue.crf.allowed_transitions] labels must be strings; got {label!r} at {idx}"
        )
    if label == "O":
        return "O", None
    prefix, sep, entity = label.partition("-")
    prefix = _ALIASES.get(prefix, prefix)
    ok = {"BIO": ("B", "I"), "BIOES": ("B", "I", "E", "S")}[scheme]
    if not sep or not entity or prefix not in ok:
        raise ValueError(
            f"[kexue.crf.allowed_transitions] labels must be 'O' or '<P>-<type>' with P in "
            f"{'/'.join(ok)}{' (or L/U)' if scheme == 'BIOES' else ''} for scheme {scheme}; "
            f"got {label!r} at {idx}"
        )
    return prefix, entity


def allowed_transitions(labels, scheme):
    """Transition constraints of a tagging scheme, for ``allowed=``.

    Parameters
    ----------
    labels : sequence of str, e.g. ``["O", "B-PER", "I-PER"]`` (index = tag id)
    scheme : "BIO", "BIOES", or "BIOUL" (the same scheme: L = E, U = S; label
        prefixes may use either letters)

    Returns
    -------
    (allowed bool [K,K], allowed_start bool [K], allowed_end bool [K])

    BIO: any tag may start or end; I-x only after B-x or I-x. BIOES: start at
    O, B-x or S-x; end at O, E-x or S-x; after O, E-* or S-* come O, B-* or
    S-*; after B-x or I-x come I-x or E-x (same type).

    Examples
    --------
    >>> al, st, en = kexue.crf.allowed_transitions(["O", "B-PER", "I-PER"], "BIO")
    >>> al.astype(int).tolist(), st.tolist()
    ([[1, 1, 0], [1, 1, 1], [1, 1, 1]], [True, True, False])

    Reference twin: :func:`kexue.reference.crf.allowed_transitions`.
    """
    if scheme not in _SCHEMES:
        raise ValueError(
            f"[kexue.crf.allowed_transitions] scheme must be one of 'BIO', 'BIOES', 'BIOUL'; "
            f"got {scheme!r}"
        )
    scheme = _SCHEMES[scheme]
    parsed = [_parse_label(lab, scheme, i) for i, lab in enumerate(labels)]
    K = len(parsed)
    allowed = np.zeros((K, K), dtype=bool)
    start = np.zeros(K, dtype=bool)
    end = np.zeros(K, dtype=bool)
    for i, (p, x) in enumerate(parsed):
        if scheme == "BIO":
            start[i] = p in ("O", "B")
            end[i] = True
        else:
            start[i] = p in ("O", "B", "S")
            end[i] = p in ("O", "E", "S")
        for j, (q, y) in enumerate(parsed):
            if scheme == "BIO":
                ok = q in ("O", "B") or (q == "I" and p in ("B", "I") and x == y)
            elif p in ("O", "E", "S"):
                ok = q in ("O", "B", "S")
            else:  # B-x or I-x must continue the same entity
                ok = q in ("I", "E") and x == y
            allowed[i, j] = ok
    return allowed, start, end


class CRF:
    """A CRF layer's parameters as numpy arrays, with the functions as methods.

    Parameters
    ----------
    num_tags : int, K >= 1
    start_end : bool, default True -- hold ``start``/``end`` vectors (False:
        bert4keras' model, with neither)
    dtype : float32 or float64 (default float32)
    seed : int or None -- ``transitions``, ``start``, ``end`` start as
        uniform(-0.1, 0.1) draws (pytorch-crf's initialisation)
    allowed : optional constraints (as for the functions)

    Examples
    --------
    >>> crf = kexue.crf.CRF(3, seed=0)
    >>> em = np.zeros((2, 4, 3), np.float32)
    >>> paths, scores = crf.viterbi(em)
    >>> crf.log_likelihood(em, paths).shape
    (2,)
    """

    def __init__(self, num_tags, *, start_end=True, dtype=np.float32, seed=None, allowed=None):
        num_tags = check_int("crf.CRF", "num_tags", num_tags)
        if num_tags < 1:
            raise ValueError(f"[kexue.crf.CRF] num_tags must be >= 1; got {num_tags}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"[kexue.crf.CRF] dtype must be float32 or float64; got {dtype}")
        rng = np.random.default_rng(seed)
        self.num_tags = num_tags
        self.transitions = rng.uniform(-0.1, 0.1, (num_tags, num_tags)).astype(dtype)
        self.start = rng.uniform(-0.1, 0.1, num_tags).astype(dtype) if start_end else None
        self.end = rng.uniform(-0.1, 0.1, num_tags).astype(dtype) if start_end else None
        self.allowed = allowed

    def __repr__(self):
        return f"CRF(num_tags={self.num_tags})"

    def _kw(self, mask):
        return dict(mask=mask, start=self.start, end=self.end, allowed=self.allowed)

    def log_likelihood(self, emissions, tags, mask=None):
        """:func:`log_likelihood` with this layer's parameters."""
        return log_likelihood(emissions, tags, self.transitions, **self._kw(mask))

    def log_partition(self, emissions, mask=None):
        """:func:`log_partition` with this layer's parameters."""
        return log_partition(emissions, self.transitions, **self._kw(mask))

    def nll_grad(self, emissions, tags, mask=None):
        """:func:`nll_grad` with this layer's parameters."""
        return nll_grad(emissions, tags, self.transitions, **self._kw(mask))

    def marginals(self, emissions, mask=None):
        """:func:`marginals` with this layer's parameters."""
        return marginals(emissions, self.transitions, **self._kw(mask))

    def viterbi(self, emissions, mask=None):
        """:func:`viterbi` with this layer's parameters."""
        return viterbi(emissions, self.transitions, **self._kw(mask))

    def nbest(self, emissions, k, mask=None):
        """:func:`nbest` with this layer's parameters."""
        return nbest(emissions, self.transitions, k, **self._kw(mask))
