"""Pure-numpy multilabel "softmax + cross-entropy" (ZLPR): the twin of :mod:`kexue.losses`.

Spec: decoders §4. For scores s [..., C], positives Omega+ and negatives Omega-:

    loss = log(1 + sum_{i in Omega-} e^{s_i}) + log(1 + sum_{j in Omega+} e^{-s_j})

computed as in bert4keras (§4.2): two vectors of length C+1,
neg = [s_i or -inf] ++ [0] and pos = [-s_j or -inf] ++ [0], loss = LSE(neg) + LSE(pos),
where the appended 0 is the "1 +" (so the LSE max is >= 0 and never all -inf).
The gradient is softmax(neg) - softmax(pos) without the last slot.

A class is EXCLUDED when ``mask`` is False there or its logit is -inf: it is in
neither sum and gets gradient 0. Everything is float64 inside; outputs have the
logits' float dtype.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "multilabel_crossentropy",
    "multilabel_crossentropy_soft",
    "multilabel_predict",
    "sparse_multilabel_crossentropy",
]

_NEG_INF = -np.inf


# ----------------------------------------------------------------------------
# helpers


def _out_dtype(logits):
    dt = np.asarray(logits).dtype
    return dt if np.issubdtype(dt, np.floating) else np.dtype(np.float64)


def _excluded(s, mask):
    """bool [..., C]: True where the class takes no part (mask False or logit -inf)."""
    excluded = np.isneginf(s)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != s.shape:
            raise ValueError(f"mask must have the logits' shape {s.shape}; got {mask.shape}")
        excluded = excluded | ~mask.astype(bool)
    return excluded


def _lse_with_zero(x):
    """LSE over the last axis of ``x`` [..., C] with one more entry 0 appended,
    and the softmax weights of the first C entries. NaN in a row gives NaN."""
    z = np.concatenate([x, np.zeros(x.shape[:-1] + (1,))], axis=-1)
    m = np.max(z, axis=-1, keepdims=True)  # >= 0 thanks to the appended 0 (or NaN)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(z - m)  # exp(-inf) = 0
        total = np.sum(e, axis=-1, keepdims=True)
        lse = np.log(total) + m
        weights = e / total
    return lse[..., 0], weights[..., :-1]


def _zlpr(neg, pos, excluded, return_grad, dtype):
    """loss = LSE(neg ++ [0]) + LSE(pos ++ [0]); excluded entries are -inf in both."""
    neg = np.where(excluded, _NEG_INF, neg)
    pos = np.where(excluded, _NEG_INF, pos)
    lse_neg, w_neg = _lse_with_zero(neg)
    lse_pos, w_pos = _lse_with_zero(pos)
    with np.errstate(invalid="ignore"):
        loss = lse_neg + lse_pos
        grad = np.where(excluded, 0.0, w_neg - w_pos)
    loss = loss.astype(dtype)
    if return_grad:
        return loss, grad.astype(dtype)
    return loss


def _check_binary(name, t):
    t = np.asarray(t)
    if t.dtype == np.bool_:
        return t
    if np.issubdtype(t.dtype, np.integer) or np.issubdtype(t.dtype, np.floating):
        if not np.all((t == 0) | (t == 1)):
            raise ValueError(f"{name} must hold only 0 and 1; got other values")
        return t == 1
    raise TypeError(f"{name} must be bool, integer or float; got {t.dtype}")


# ----------------------------------------------------------------------------
# public functions


def multilabel_crossentropy(logits, targets, *, mask=None, return_grad=False):
    """ZLPR loss [...] of logits [..., C] against 0/1 targets [..., C] (spec §4.1, §4.2).

    With ``return_grad`` returns (loss, grad) where grad [..., C] = d loss.sum() / d logits:
    e^{s_i} / (1 + sum_neg) for negatives, -e^{-s_j} / (1 + sum_pos) for positives,
    0 for excluded classes.
    """
    dtype = _out_dtype(logits)
    s = np.asarray(logits, dtype=np.float64)
    t = _check_binary("targets", targets)
    if t.shape != s.shape:
        raise ValueError(f"targets must have the logits' shape {s.shape}; got {t.shape}")
    excluded = _excluded(s, mask)
    neg = np.where(t, _NEG_INF, s)  # negatives: s_i
    pos = np.where(t, -s, _NEG_INF)  # positives: -s_j
    return _zlpr(neg, pos, excluded, return_grad, dtype)


def multilabel_predict(logits, threshold=0.0):
    """bool [..., C]: class i is predicted iff logits[..., i] > threshold."""
    return np.asarray(logits) > threshold


def multilabel_crossentropy_soft(logits, probs, *, mask=None, return_grad=False):
    """Soft-label ZLPR (spec §4.3), probs t in [0, 1]:

        loss = log(1 + sum_i (1 - t_i) e^{s_i}) + log(1 + sum_i t_i e^{-s_i})

    over the non-excluded classes; equals :func:`multilabel_crossentropy` on 0/1
    targets. A weight of exactly 0 removes the term (log 0 = -inf); NaN in
    probs gives NaN.
    """
    dtype = _out_dtype(logits)
    s = np.asarray(logits, dtype=np.float64)
    t = np.asarray(probs, dtype=np.float64)
    if t.shape != s.shape:
        raise ValueError(f"probs must have the logits' shape {s.shape}; got {t.shape}")
    if np.any((t < 0) | (t > 1)):
        raise ValueError("probs must lie in [0, 1]; got values outside")
    excluded = _excluded(s, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        # (1 - t) e^{s} = e^{s + log(1 - t)}, t e^{-s} = e^{-s + log t}
        neg = np.where(t == 1, _NEG_INF, s + np.log1p(-t))
        pos = np.where(t == 0, _NEG_INF, -s + np.log(t))
    return _zlpr(neg, pos, excluded, return_grad, dtype)


def sparse_multilabel_crossentropy(logits, positive_index, *, mask_zero=False, return_grad=False):
    """ZLPR with the positives given as indices (spec §4.4).

    positive_index [..., P] int, -1 = padding, duplicates count once. Equals
    ``multilabel_crossentropy(logits, onehot(positive_index))`` exactly: the
    reference builds the dense positive set and never subtracts sums.
    ``mask_zero=True``: index 0 is padding too and class 0 is excluded altogether
    (bert4keras / GPLinker). Returns loss [...] (and the dense grad [..., C]).
    """
    logits = np.asarray(logits)
    s = logits
    idx = np.asarray(positive_index)
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"positive_index must be an integer array; got {idx.dtype}")
    if s.ndim < 1:
        raise ValueError("logits must have at least one axis [..., C]")
    C = s.shape[-1]
    if idx.ndim != s.ndim or idx.shape[:-1] != s.shape[:-1]:
        raise ValueError(
            f"positive_index must have shape {s.shape[:-1]} + (P,); got {idx.shape}"
        )
    if np.any((idx < -1) | (idx >= C)):
        raise IndexError(f"positive_index must lie in [-1, {C}); got values outside")

    positive = np.zeros(s.shape, dtype=bool)
    for lead in np.ndindex(s.shape[:-1]):
        for i in idx[lead]:
            if i >= 0:
                positive[lead + (int(i),)] = True
    mask = None
    if mask_zero:
        positive[..., 0] = False
        mask = np.ones(s.shape, dtype=bool)
        mask[..., 0] = False
    return multilabel_crossentropy(logits, positive, mask=mask, return_grad=return_grad)
