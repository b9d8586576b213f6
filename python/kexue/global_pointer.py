"""GlobalPointer: nested and flat entities scored as spans in parallel
(kexue.fm/archives/8373; Efficient GlobalPointer: 8877; GPLinker: 8888).

For each entity type e, the score that tokens i..j (inclusive) form an
entity is

    s[b, e, i, j] = (R_i q[b, i, e]) . (R_j k[b, j, e]) / sqrt(D)

with RoPE R_p at absolute positions (so it depends only on j - i). Cells
that touch a padded position and (``tril_mask``) cells with end < start are
-inf, which the losses here treat as excluded. A cell is an entity iff its
score is > 0 (:func:`decode`); training uses the sparse ZLPR loss
(:func:`loss`, on top of :mod:`kexue.losses`).

Shapes: q, k [B,T,E,D] float32/float64; mask bool [B,T]; scores [B,E,T,T];
spans int64 [n,4] rows (batch, type, start, end). RoPE uses bert4keras'
adjacent-pair layout by default (``interleaved=True``, spec §3.2), so
weights trained there score identically; ``interleaved=False`` is the
rotate-half layout. The products run in the inputs' precision, parallel
over (batch, type). Each function has a numpy twin in
``kexue.reference.global_pointer``.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._util import arr

__all__ = [
    "decode",
    "efficient_scores",
    "efficient_scores_backward",
    "f1",
    "loss",
    "scores",
    "scores_backward",
]


def _kw(mask, rope, rope_base, interleaved, tril_mask):
    return dict(mask=arr(mask), rope=bool(rope), rope_base=float(rope_base),
                interleaved=bool(interleaved), tril_mask=bool(tril_mask))


def scores(q, k, *, mask=None, rope=True, rope_base=10000.0, interleaved=True, tril_mask=True):
    """Span scores [B,E,T,T] from per-type queries and keys q, k [B,T,E,D].

    Parameters
    ----------
    q, k : ndarray [B,T,E,D], float32 or float64 (D even when ``rope``)
    mask : bool ndarray [B,T], optional -- False marks padding
    rope : bool -- rotate q and k by their positions first (essential: without
        it GlobalPointer cannot tell span lengths apart)
    rope_base : float -- frequencies rope_base^(-2r/D)
    interleaved : bool -- adjacent pairs (bert4keras) or rotate-half
    tril_mask : bool -- -inf below the diagonal (end < start)

    Examples
    --------
    >>> import numpy as np, kexue
    >>> q = np.array([[1, 0], [0, 1], [1, 1], [0.5, -1]])[None, :, None, :]
    >>> k = np.array([[1, 0], [1, 1], [0, 1], [-1, 0.5]])[None, :, None, :]
    >>> mask = np.array([[True, True, True, False]])
    >>> s = kexue.global_pointer.scores(q, k, mask=mask, rope_base=1.0)
    >>> s[0, 0, 0].round(6)
    array([ 0.707107, -0.212958, -0.64297 ,      -inf])

    Reference twin: :func:`kexue.reference.global_pointer.scores`.
    """
    return _core.gp_scores(arr(q), arr(k), **_kw(mask, rope, rope_base, interleaved, tril_mask))


def scores_backward(q, k, d_scores, *, mask=None, rope=True, rope_base=10000.0, interleaved=True,
                    tril_mask=True):
    """Gradients (dq, dk) [B,T,E,D] of sum(d_scores * scores(q, k)) over the finite cells.

    ``d_scores`` [B,E,T,T] is the upstream gradient (e.g. from
    :func:`loss` with ``return_grad=True``); masked cells contribute nothing.

    Examples
    --------
    >>> q = np.ones((1, 3, 1, 2)); k = np.ones((1, 3, 1, 2))
    >>> dq, dk = kexue.global_pointer.scores_backward(q, k, np.ones((1, 1, 3, 3)), rope=False)
    >>> dq[0, :, 0, 0].round(6)
    array([2.12132 , 1.414214, 0.707107])

    Reference twin: :func:`kexue.reference.global_pointer.scores_backward`.
    """
    return _core.gp_scores_backward(arr(q), arr(k), arr(d_scores),
                                    **_kw(mask, rope, rope_base, interleaved, tril_mask))


def efficient_scores(h, W, bias=None, *, mask=None, rope=True, rope_base=10000.0, tril_mask=True):
    """Efficient GlobalPointer span scores [B,E,T,T] (spec §3.3).

    Parameters
    ----------
    h : ndarray [B,T,2d] -- the shared projection (bert4keras' ``p_dense``
        output): q = h[..., 0::2] and k = h[..., 1::2], RoPE'd (adjacent pairs)
    W : ndarray [2d, 2E], bias : ndarray [2E] or None -- the per-type
        classifier (``q_dense``) applied to the un-rotated h: c = h @ W + bias
    mask, rope, rope_base, tril_mask : as in :func:`scores`

    s[b,e,i,j] = q~_i . k~_j / sqrt(d) + (c[b,i,2e+1] + c[b,j,2e]) / 2.

    Examples
    --------
    >>> h = np.zeros((1, 2, 4)); W = np.ones((4, 2))
    >>> kexue.global_pointer.efficient_scores(h, W, np.array([0.3, 0.5]))[0, 0]
    array([[ 0.4,  0.4],
           [-inf,  0.4]])

    Reference twin: :func:`kexue.reference.global_pointer.efficient_scores`.
    """
    return _core.gp_efficient_scores(arr(h), arr(W), arr(bias),
                                     **_kw(mask, rope, rope_base, True, tril_mask))


def efficient_scores_backward(h, W, d_scores, bias=None, *, mask=None, rope=True,
                              rope_base=10000.0, tril_mask=True):
    """Gradients (dh [B,T,2d], dW [2d,2E], dbias [2E]) of sum(d_scores * efficient_scores(...)).

    Examples
    --------
    >>> h = np.zeros((1, 2, 4)); W = np.ones((4, 2))
    >>> dh, dW, db = kexue.global_pointer.efficient_scores_backward(h, W, np.ones((1, 1, 2, 2)))
    >>> db
    array([1.5, 1.5])

    Reference twin: :func:`kexue.reference.global_pointer.efficient_scores_backward`.
    """
    return _core.gp_efficient_scores_backward(arr(h), arr(W), arr(d_scores), arr(bias),
                                              **_kw(mask, rope, rope_base, True, tril_mask))


def _scores4(op, s):
    s = arr(s)
    if s.ndim != 4:
        raise ValueError(f"[kexue.{op}] scores must be 4-D [B,E,T,T]; got shape {s.shape}")
    if s.dtype not in (np.float32, np.float64):
        raise TypeError(f"[kexue.{op}] scores must be float32 or float64; got {s.dtype}")
    if s.shape[2] != s.shape[3]:
        raise ValueError(f"[kexue.{op}] scores must be [B,E,T,T] (square); got shape {s.shape}")
    return s


def decode(scores, *, threshold=0.0, mask=None, flat=False):
    """Spans whose score is above ``threshold``: int64 [n,4] rows (batch, type, start, end).

    Scores are compared with ``threshold`` in float64 (NaN and -inf cells never
    decode); the work runs in C++ (``kexue::global_pointer::decode``), parallel
    over batch rows. Rows are sorted lexicographically. Nested and overlapping spans are all
    returned (GlobalPointer's point); ``flat=True`` keeps, per batch row,
    spans greedily by descending score (ties in (type, start, end) order) and
    drops any that overlaps a kept span of any type -- flat NER. ``mask``
    [B,T] excludes spans touching padding (-inf cells never decode).

    Examples
    --------
    >>> s = np.full((1, 1, 3, 3), -1.0); s[0, 0, 0, 1] = 2.0; s[0, 0, 1, 2] = 1.0
    >>> kexue.global_pointer.decode(s).tolist()
    [[0, 0, 0, 1], [0, 0, 1, 2]]
    >>> kexue.global_pointer.decode(s, flat=True).tolist()
    [[0, 0, 0, 1]]

    Reference twin: :func:`kexue.reference.global_pointer.decode`.
    """
    op = "global_pointer.decode"
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise TypeError(f"[kexue.{op}] threshold must be a number; got {type(threshold).__name__}")
    return _core.gp_decode(_scores4(op, scores), threshold=float(threshold), mask=arr(mask), flat=bool(flat))


def _check_spans(op, spans, shape):
    sp = arr(spans)
    if sp.size == 0:
        return np.zeros((0, 4), np.int64)
    if sp.dtype.kind not in "iu":
        raise TypeError(f"[kexue.{op}] spans must be integers; got {sp.dtype}")
    if sp.ndim != 2 or sp.shape[1] != 4:
        raise ValueError(f"[kexue.{op}] spans must be [n,4] rows (batch, type, start, end); "
                         f"got shape {sp.shape}")
    B, E, T = shape
    limits = np.array([B, E, T, T])
    bad = (sp < 0) | (sp >= limits)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        name = ("batch", "type", "start", "end")[c]
        raise IndexError(f"[kexue.{op}] spans {name} must be in [0, {limits[c]}); "
                         f"got {sp[r, c]} in row {r}")
    return sp.astype(np.int64, copy=False)


def loss(scores, spans, *, return_grad=False):
    """The sparse ZLPR loss of each (batch, type) over its T*T span cells: [B,E].

    ``spans`` int [n,4] are the gold spans (batch, type, start, end); duplicates
    count once; -inf cells are excluded (a gold span on one is ignored). With
    ``return_grad`` also d loss.sum() / d scores [B,E,T,T] (C++:
    ``kexue::global_pointer::loss``, the sparse loss on the [B*E, T*T] view). Reduce as your
    recipe says: NER scripts take the mean over all (batch, type); GPLinker
    sums over types and averages over the batch.

    Examples
    --------
    >>> s = np.full((1, 1, 2, 2), -2.0); s[0, 0, 0, 1] = 3.0
    >>> kexue.global_pointer.loss(s, np.array([[0, 0, 0, 1]])).round(6)
    array([[0.38934]])

    Reference twin: :func:`kexue.reference.global_pointer.loss`.
    """
    op = "global_pointer.loss"
    s = _scores4(op, scores)
    B, E, T, _ = s.shape
    sp = _check_spans(op, spans, (B, E, T))
    return _core.gp_loss(s, sp, return_grad=bool(return_grad))


def f1(pred_spans, gold_spans):
    """Entity-level (precision, recall, f1) of predicted vs gold spans.

    Spans are rows (batch, type, start, end); each set counts distinct rows
    (sorted and merged in C++: n log n).
    tp = |pred & gold|; precision = tp/|pred|, recall = tp/|gold|,
    f1 = 2 tp / (|pred| + |gold|); an empty denominator gives 1.0.

    Examples
    --------
    >>> kexue.global_pointer.f1([[0, 0, 1, 2], [0, 1, 3, 3]], [[0, 0, 1, 2]])
    (0.5, 1.0, 0.6666666666666666)

    Reference twin: :func:`kexue.reference.global_pointer.f1`.
    """
    def rows(x, name):
        a = np.asarray(x)
        if a.size and a.dtype.kind == "u":
            if a.max() > np.iinfo(np.int64).max:
                raise ValueError(f"[kexue.global_pointer.f1] {name} holds values beyond int64")
            a = a.astype(np.int64)
        if a.size and a.dtype.kind == "i" and a.dtype.itemsize < 4:
            a = a.astype(np.int32)
        return np.ascontiguousarray(a)

    n_pred, n_gold, tp = _core.gp_f1_counts(rows(pred_spans, "pred_spans"), rows(gold_spans, "gold_spans"))
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_gold if n_gold else 1.0
    f = 2 * tp / (n_pred + n_gold) if (n_pred or n_gold) else 1.0
    return precision, recall, f
