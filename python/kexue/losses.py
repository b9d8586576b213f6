"""The multi-label "softmax + cross-entropy" family (ZLPR; kexue.fm/archives/7359, 9064).

For scores ``s`` [..., C] (no sigmoid, no softmax) and positives Omega+:

    loss = log(1 + sum_{i in Omega-} e^{s_i}) + log(1 + sum_{j in Omega+} e^{-s_j})

A class is predicted iff its score is > 0 (:func:`multilabel_predict`). The
loss pushes positives above 0 and negatives below 0 with a single pairwise
softmax per side, which is why it stays well-behaved when C is much larger
than the number of positives (GlobalPointer's T*T span cells).

Conventions: ``logits`` float32 or float64 [..., C] (C >= 1; the leading axes
are rows); results come back in its dtype, computed in float64 with the
max-shift. A class is *excluded* -- in neither sum, gradient 0 -- where
``mask`` is False or its logit is -inf (a masked GlobalPointer cell).
``return_grad=True`` also returns d loss.sum() / d logits [..., C] from the
same pass. Rows run in parallel; each function has a numpy twin in
``kexue.reference.losses``.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._util import arr

__all__ = [
    "multilabel_crossentropy",
    "multilabel_crossentropy_soft",
    "multilabel_predict",
    "sparse_multilabel_crossentropy",
]


def _targets(op, targets):
    t = arr(targets)
    if t.dtype.kind in "iu":  # 0/1 integers: check, then view as bool (lossless)
        if t.size and not np.isin(t, (0, 1)).all():
            bad = t.flat[np.flatnonzero(~np.isin(t, (0, 1)))[0]]
            raise ValueError(f"[kexue.{op}] targets must be 0 or 1; got {bad}")
        t = t.astype(bool)
    return t


def multilabel_crossentropy(logits, targets, *, mask=None, return_grad=False):
    """ZLPR loss per row with hard labels.

    Parameters
    ----------
    logits : ndarray [..., C], float32 or float64
    targets : ndarray [..., C]: bool, 0/1 integers, or 0/1 in the logits' dtype
    mask : bool ndarray [..., C], optional -- False excludes a class
    return_grad : bool -- also return d loss.sum() / d logits [..., C]

    Returns
    -------
    loss [...] (and grad [..., C])

    Examples
    --------
    >>> import numpy as np, kexue
    >>> s = np.array([2.0, -1.0, 0.5, -3.0])
    >>> loss, grad = kexue.losses.multilabel_crossentropy(s, [1, 0, 1, 0], return_grad=True)
    >>> float(loss.round(6)), grad.round(6)
    (0.903969, array([-0.077696,  0.259496, -0.348207,  0.035119]))

    Reference twin: :func:`kexue.reference.losses.multilabel_crossentropy`.
    """
    op = "losses.multilabel_crossentropy"
    return _core.losses_multilabel_crossentropy(
        arr(logits), _targets(op, targets), mask=arr(mask), return_grad=bool(return_grad)
    )


def multilabel_crossentropy_soft(logits, probs, *, mask=None, return_grad=False):
    """ZLPR loss with soft labels ``probs`` in [0, 1] (kexue.fm/archives/9064).

    loss = log(1 + sum (1 - t_i) e^{s_i}) + log(1 + sum t_i e^{-s_i}); equal to
    :func:`multilabel_crossentropy` on 0/1 targets. Its minimiser is
    s* = logit(t) / 2, so the probability read off a score is sigmoid(2 s).
    ``probs`` has the logits' dtype; values outside [0, 1] raise ValueError.

    Examples
    --------
    >>> s = np.array([2.0, -1.0, 0.5, -3.0])
    >>> float(kexue.losses.multilabel_crossentropy_soft(s, np.array([0.9, 0.2, 0.6, 0.0])).round(6))
    1.716593

    Reference twin: :func:`kexue.reference.losses.multilabel_crossentropy_soft`.
    """
    return _core.losses_multilabel_crossentropy(
        arr(logits), arr(probs), mask=arr(mask), return_grad=bool(return_grad), soft=True
    )


def sparse_multilabel_crossentropy(logits, positive_index, *, mask_zero=False, return_grad=False):
    """ZLPR loss with the positives given as class indices (GPLinker's form).

    Parameters
    ----------
    logits : ndarray [..., C]
    positive_index : int32/int64 ndarray [..., P] -- the positive classes of
        each row, padded with -1; duplicates count once
    mask_zero : bool -- index 0 is padding too, and class 0 is excluded
        (bert4keras' convention, where 0 encodes the empty span)
    return_grad : bool -- also return the dense gradient [..., C]

    Equals :func:`multilabel_crossentropy` on the one-hot targets exactly (the
    negatives' sum is computed directly, not as all-minus-positives, so no
    cancellation). Indices outside [-1, C) raise IndexError.

    Examples
    --------
    >>> s = np.array([2.0, -1.0, 0.5, -3.0])
    >>> float(kexue.losses.sparse_multilabel_crossentropy(s, np.array([0, 2])).round(6))
    0.903969

    Reference twin: :func:`kexue.reference.losses.sparse_multilabel_crossentropy`.
    """
    return _core.losses_sparse_multilabel_crossentropy(
        arr(logits), arr(positive_index), mask_zero=bool(mask_zero), return_grad=bool(return_grad)
    )


def multilabel_predict(logits, threshold=0.0):
    """The decision rule of the ZLPR loss: class i is predicted iff s_i > threshold.

    Returns a bool ndarray of the logits' shape.

    Examples
    --------
    >>> kexue.losses.multilabel_predict(np.array([2.0, -1.0, 0.5, -3.0]))
    array([ True, False,  True, False])

    Reference twin: :func:`kexue.reference.losses.multilabel_predict`.
    """
    s = arr(logits)
    if s.dtype.kind != "f":
        raise TypeError(f"[kexue.losses.multilabel_predict] logits must be float32 or float64; "
                        f"got {s.dtype}")
    return s > threshold
