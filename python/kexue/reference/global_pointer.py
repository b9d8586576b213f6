"""Pure-numpy GlobalPointer / Efficient GlobalPointer: the twin of :mod:`kexue.global_pointer`.

Spec: decoders §3. Span scores s[b, e, i, j] = score that tokens i..j (inclusive)
form an entity of type e:

* GP: s = (R_i q[b,i,e]) . (R_j k[b,j,e]) / sqrt(D), q, k [B,T,E,D];
* EGP: h [B,T,2d], q = h[..., 0::2], k = h[..., 1::2], c = h @ W + bias [B,T,2E],
  s = (R_i q_i) . (R_j k_j) / sqrt(d) + (c[b,i,2e+1] + c[b,j,2e]) / 2.

R_p is RoPE at the absolute position p with frequencies w_r = base^(-2r/D):
bert4keras' adjacent pairs (2r, 2r+1) (``interleaved=True``) or rotate-half
pairs (r, r + D/2). Cells with mask[b,i] or mask[b,j] False, and (``tril_mask``)
cells with i > j, are -inf; the ``*_backward`` functions give the gradients of
sum(d_scores * scores) over the other cells. The loss is the sparse ZLPR per
(b, e) over the T*T cells (-inf cells excluded). Everything is float64 inside;
outputs have the inputs' float dtype (spans int64).
"""
from __future__ import annotations

import math

import numpy as np

from . import losses as _losses

__all__ = [
    "decode",
    "efficient_scores",
    "efficient_scores_backward",
    "f1",
    "loss",
    "scores",
    "scores_backward",
]

_NEG_INF = -np.inf


# ----------------------------------------------------------------------------
# helpers


def _out_dtype(x):
    dt = np.asarray(x).dtype
    return dt if np.issubdtype(dt, np.floating) else np.dtype(np.float64)


def _rope_pairs(D, interleaved):
    """Index arrays (first, second) of the D/2 rotated pairs, pair r at frequency r."""
    r = np.arange(D // 2)
    if interleaved:
        return 2 * r, 2 * r + 1
    return r, r + D // 2


def _rope(x, rope_base, interleaved, sign=1.0):
    """Rotate x [B,T,..,D] at positions t = 0..T-1 (axis 1) by angle sign * t * w_r.

    sign=-1 applies the inverse (= transposed) rotation, used by the backward.
    """
    x = np.asarray(x, dtype=np.float64)
    T, D = x.shape[1], x.shape[-1]
    first, second = _rope_pairs(D, interleaved)
    w = rope_base ** (-2.0 * np.arange(D // 2) / D)  # [D/2]
    angle = sign * np.arange(T)[:, None] * w[None, :]  # [T, D/2]
    shape = (1, T) + (1,) * (x.ndim - 3) + (D // 2,)
    cos, sin = np.cos(angle).reshape(shape), np.sin(angle).reshape(shape)
    a, b = x[..., first], x[..., second]
    out = np.empty_like(x)
    out[..., first] = a * cos - b * sin
    out[..., second] = b * cos + a * sin
    return out


def _check_rope_dim(name, D, rope):
    if rope and D % 2 != 0:
        raise ValueError(f"{name} must have an even last dimension with rope=True; got {D}")


def _valid_cells(B, T, mask, tril_mask):
    """bool [B,1,T,T]: True where a cell keeps its score (not masked, not below the diagonal)."""
    valid = np.ones((B, 1, T, T), dtype=bool)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != (B, T):
            raise ValueError(f"mask must have shape {(B, T)}; got {m.shape}")
        valid &= m[:, None, :, None] & m[:, None, None, :]
    if tril_mask:
        valid &= ~np.tril(np.ones((T, T), dtype=bool), k=-1)[None, None]
    return valid


def _masked_upstream(d_scores, valid):
    """d_scores as float64 with every masked cell set to 0 (whatever it held)."""
    return np.where(valid, np.asarray(d_scores, dtype=np.float64), 0.0)


# ----------------------------------------------------------------------------
# GlobalPointer


def scores(q, k, *, mask=None, rope=True, rope_base=10000.0, interleaved=True, tril_mask=True):
    """GP span scores [B,E,T,T] from q, k [B,T,E,D] (spec §3.1, §3.2)."""
    dtype = _out_dtype(q)
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if q.ndim != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B,T,E,D] of one shape; got {q.shape}, {k.shape}")
    B, T, E, D = q.shape
    _check_rope_dim("q", D, rope)
    if rope:
        q = _rope(q, rope_base, interleaved)
        k = _rope(k, rope_base, interleaved)
    s = np.einsum("bied,bjed->beij", q, k) / math.sqrt(D)
    s = np.where(_valid_cells(B, T, mask, tril_mask), s, _NEG_INF)
    return s.astype(dtype)


def scores_backward(q, k, d_scores, *, mask=None, rope=True, rope_base=10000.0,
                    interleaved=True, tril_mask=True):
    """(dq, dk) [B,T,E,D]: gradients of sum(d_scores * scores) over the unmasked cells.

    With q~ = R q, k~ = R k: d q~_i = sum_j g_ij k~_j / sqrt(D), d k~_j = sum_i g_ij q~_i / sqrt(D),
    then dq = R^T d q~ (rotation by the negative angle), likewise dk.
    """
    dtype = _out_dtype(q)
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    B, T, E, D = q.shape
    _check_rope_dim("q", D, rope)
    g = _masked_upstream(d_scores, _valid_cells(B, T, mask, tril_mask))  # [B,E,T,T]
    if rope:
        q = _rope(q, rope_base, interleaved)
        k = _rope(k, rope_base, interleaved)
    dq = np.einsum("beij,bjed->bied", g, k) / math.sqrt(D)
    dk = np.einsum("beij,bied->bjed", g, q) / math.sqrt(D)
    if rope:
        dq = _rope(dq, rope_base, interleaved, sign=-1.0)
        dk = _rope(dk, rope_base, interleaved, sign=-1.0)
    return dq.astype(dtype), dk.astype(dtype)


# ----------------------------------------------------------------------------
# Efficient GlobalPointer


def _egp_parts(h, W, bias):
    h = np.asarray(h, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    if h.ndim != 3 or h.shape[-1] % 2 != 0:
        raise ValueError(f"h must be [B,T,2d]; got {h.shape}")
    if W.ndim != 2 or W.shape[0] != h.shape[-1] or W.shape[1] % 2 != 0:
        raise ValueError(f"W must be [{h.shape[-1]}, 2E]; got {W.shape}")
    c = h @ W
    if bias is not None:
        c = c + np.asarray(bias, dtype=np.float64)
    return h, W, c


def efficient_scores(h, W, bias=None, *, mask=None, rope=True, rope_base=10000.0,
                     tril_mask=True):
    """EGP span scores [B,E,T,T] (spec §3.3); RoPE in the adjacent-pair layout."""
    dtype = _out_dtype(h)
    h, W, c = _egp_parts(h, W, bias)
    B, T, two_d = h.shape
    d = two_d // 2
    E = W.shape[1] // 2
    _check_rope_dim("h", d, rope)
    q, k = h[..., 0::2], h[..., 1::2]  # [B,T,d]
    if rope:
        q = _rope(q, rope_base, True)
        k = _rope(k, rope_base, True)
    shared = np.einsum("bid,bjd->bij", q, k) / math.sqrt(d)  # [B,T,T]
    start = c[..., 1::2]  # [B,T,E]: channel 2e+1, the row (start) term
    end = c[..., 0::2]  # [B,T,E]: channel 2e, the column (end) term
    s = np.empty((B, E, T, T))
    for e in range(E):
        s[:, e] = shared + 0.5 * (start[:, :, e, None] + end[:, None, :, e])
    s = np.where(_valid_cells(B, T, mask, tril_mask), s, _NEG_INF)
    return s.astype(dtype)


def efficient_scores_backward(h, W, d_scores, bias=None, *, mask=None, rope=True,
                              rope_base=10000.0, tril_mask=True):
    """(dh [B,T,2d], dW [2d,2E], dbias [2E]) of sum(d_scores * efficient_scores) over
    the unmasked cells. dbias is the gradient wrt the bias also when ``bias`` is None
    (as if it were zero)."""
    dtype = _out_dtype(h)
    h, W, _ = _egp_parts(h, W, bias)
    B, T, two_d = h.shape
    d = two_d // 2
    E = W.shape[1] // 2
    _check_rope_dim("h", d, rope)
    g = _masked_upstream(d_scores, _valid_cells(B, T, mask, tril_mask))  # [B,E,T,T]

    # shared term: every type adds its upstream to the one q~.k~ product
    g_shared = g.sum(axis=1)  # [B,T,T]
    q, k = h[..., 0::2], h[..., 1::2]
    if rope:
        q = _rope(q, rope_base, True)
        k = _rope(k, rope_base, True)
    dq = np.einsum("bij,bjd->bid", g_shared, k) / math.sqrt(d)
    dk = np.einsum("bij,bid->bjd", g_shared, q) / math.sqrt(d)
    if rope:
        dq = _rope(dq, rope_base, True, sign=-1.0)
        dk = _rope(dk, rope_base, True, sign=-1.0)
    dh = np.empty_like(h)
    dh[..., 0::2] = dq
    dh[..., 1::2] = dk

    # bias term: c[b,i,2e+1] / 2 is added to row i, c[b,j,2e] / 2 to column j
    dc = np.empty((B, T, 2 * E))
    dc[..., 1::2] = 0.5 * g.sum(axis=3).transpose(0, 2, 1)  # sum over j -> [B,T(i),E]
    dc[..., 0::2] = 0.5 * g.sum(axis=2).transpose(0, 2, 1)  # sum over i -> [B,T(j),E]
    dh += dc @ W.T
    dW = np.einsum("bti,btc->ic", h, dc)
    dbias = dc.sum(axis=(0, 1))
    return dh.astype(dtype), dW.astype(dtype), dbias.astype(dtype)


# ----------------------------------------------------------------------------
# decoding, loss, metric


def _check_spans(spans, shape):
    """spans int [n,4] rows (b, e, start, end), each within ``shape`` = (B, E, T, T)."""
    spans = np.asarray(spans)
    if spans.size == 0:
        return np.zeros((0, 4), dtype=np.int64)
    if spans.ndim != 2 or spans.shape[1] != 4:
        raise ValueError(f"spans must be an int array [n,4]; got shape {spans.shape}")
    if not np.issubdtype(spans.dtype, np.integer):
        raise TypeError(f"spans must be an int array [n,4]; got {spans.dtype}")
    if np.any(spans < 0) or np.any(spans >= np.array(shape)):
        raise IndexError(f"spans must index into scores of shape {tuple(shape)}; got rows outside")
    return spans.astype(np.int64)


def decode(scores, *, threshold=0.0, mask=None, flat=False):
    """Spans int64 [n,4] (batch, type, start, end), lexicographically sorted.

    A cell is a span iff score > threshold, it is not -inf, and (with ``mask``)
    mask[b,start] and mask[b,end]. ``flat=True``: within each batch row keep spans
    greedily by descending score (ties: ascending (type, start, end)), dropping
    any that overlaps a kept span of any type.
    """
    s = np.asarray(scores, dtype=np.float64)
    B = s.shape[0]
    with np.errstate(invalid="ignore"):
        hit = (s > threshold) & ~np.isneginf(s)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        hit &= m[:, None, :, None] & m[:, None, None, :]
    spans = np.argwhere(hit).astype(np.int64)  # C order = lexicographic
    if not flat:
        return spans.reshape(-1, 4)
    kept = []
    for b in range(B):
        rows = [tuple(int(v) for v in r) for r in spans[spans[:, 0] == b]]
        rows.sort(key=lambda r: (-s[r], r[1], r[2], r[3]))
        chosen = []
        for r in rows:
            if all(not (r[2] <= c[3] and c[2] <= r[3]) for c in chosen):
                chosen.append(r)
        kept.extend(chosen)
    kept.sort()
    return np.array(kept, dtype=np.int64).reshape(-1, 4)


def loss(scores, spans, *, return_grad=False):
    """ZLPR per (b, e) over the flattened T*T scores, positives = the gold spans.

    Returns loss [B,E] (and grad [B,E,T,T] = d loss.sum() / d scores). -inf cells
    are excluded, also when gold; duplicate gold spans count once.
    """
    s = np.asarray(scores)
    if s.ndim != 4 or s.shape[2] != s.shape[3]:
        raise ValueError(f"scores must be [B,E,T,T]; got {s.shape}")
    B, E, T, _ = s.shape
    spans = _check_spans(spans, s.shape)
    gold = np.zeros(s.shape, dtype=bool)
    for b, e, i, j in spans:
        gold[b, e, i, j] = True
    out = _losses.multilabel_crossentropy(
        s.reshape(B, E, T * T), gold.reshape(B, E, T * T), return_grad=return_grad
    )
    if return_grad:
        value, grad = out
        return value, grad.reshape(s.shape)
    return out


def f1(pred_spans, gold_spans):
    """(precision, recall, f1) as Python floats over the sets of distinct span rows.

    precision = tp / |pred| (1.0 when pred is empty), recall = tp / |gold| (1.0 when
    gold is empty), f1 = 2 tp / (|pred| + |gold|) (1.0 when both are empty).
    """
    def as_set(spans):
        spans = np.asarray(spans).reshape(-1, 4)
        return {tuple(int(v) for v in row) for row in spans}

    pred, gold = as_set(pred_spans), as_set(gold_spans)
    tp = len(pred & gold)
    precision = tp / len(pred) if pred else 1.0
    recall = tp / len(gold) if gold else 1.0
    f = 2.0 * tp / (len(pred) + len(gold)) if (pred or gold) else 1.0
    return float(precision), float(recall), float(f)
