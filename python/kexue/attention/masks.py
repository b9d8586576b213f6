"""Dense boolean attention masks (spec B2, "Transformer如戏，全靠Mask",
kexue.fm/archives/6933).

Pure numpy, for looking at masks and for passing them as ``mask=`` to
:func:`kexue.attention.sdpa` (which builds the same patterns on the fly from
``causal=``, ``window=`` and ``segment_ids=`` without materialising them).
Every builder returns a bool array with True = "the query (row) may attend to
the key (column)".

Queries and keys are aligned to the end, as in :func:`kexue.attention.sdpa`:
with N queries and M keys, query i sits at position i' = i + (M - N) and key
j at position j (N == M: i' = i; N = 1: the last position, i.e. decoding).

* :func:`causal` -- j <= i'                                    [N, M]
* :func:`window` -- |i' - j| < w (causal: i' - w < j <= i')    [N, M]
* :func:`unilm` -- seq2seq from segment ids, c = cumsum(s): c_j <= c_i   [..., N, N]
* :func:`prefix_lm` -- row i sees j < prefix or j <= i          [B, N, N]
* :func:`padding` -- key j valid iff j < lengths[b]             [B, 1, 1, M]
* :func:`permutation` -- XLNet-style permutation LM             [..., N, N]

Combine them with ``&`` (numpy broadcasting), e.g.
``masks.unilm(seg)[:, None] & masks.padding(lengths, N)``.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["causal", "padding", "permutation", "prefix_lm", "unilm", "window"]


def _pre(fn):
    return f"[kexue.attention.masks.{fn}] "


def _size(fn, name, value, minimum=0):
    """A Python/numpy int >= minimum (bool rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{_pre(fn)}{name} must be an int; got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{_pre(fn)}{name} must be >= {minimum}; got {value}")
    return value


def _int_array(fn, name, value):
    a = np.asarray(value)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{_pre(fn)}{name} must be integers; got dtype {a.dtype}")
    return a.astype(np.int64)


def _positions(N, M):
    """(query positions i' [N,1], key positions j [1,M]) aligned to the end."""
    qpos = np.arange(N, dtype=np.int64)[:, None] + (M - N)
    kpos = np.arange(M, dtype=np.int64)[None, :]
    return qpos, kpos


def causal(N, M=None):
    """Causal mask [N, M]: query i sees key j iff j <= i + (M - N).

    Parameters
    ----------
    N : int >= 0 -- number of queries
    M : int >= 0, optional -- number of keys (default N). With M > N the
        queries are the last N positions (a prefix of M - N cached keys is
        visible to all); with M < N the first N - M rows are empty.

    Examples
    --------
    >>> from kexue.attention import masks
    >>> masks.causal(3).astype(int)
    array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 1]])
    >>> masks.causal(2, 4).astype(int)
    array([[1, 1, 1, 0],
           [1, 1, 1, 1]])
    """
    N = _size("causal", "N", N)
    M = N if M is None else _size("causal", "M", M)
    qpos, kpos = _positions(N, M)
    return kpos <= qpos


def window(N, w, M=None, causal=False):
    """Local-attention mask [N, M]: query i sees key j iff |i' - j| < w,
    i' = i + (M - N); with ``causal=True``: i' - w < j <= i' (the "super
    baseline" of spec B4: the last w keys, itself included).

    Parameters
    ----------
    N : int >= 0 -- number of queries
    w : int >= 1 -- window size (w = 1: only j = i')
    M : int >= 0, optional -- number of keys (default N)
    causal : bool -- keep only keys at or before the query

    Examples
    --------
    >>> from kexue.attention import masks
    >>> masks.window(4, 2).astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 1, 0],
           [0, 1, 1, 1],
           [0, 0, 1, 1]])
    >>> masks.window(4, 2, causal=True).astype(int)
    array([[1, 0, 0, 0],
           [1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    N = _size("window", "N", N)
    w = _size("window", "w", w, minimum=1)
    M = N if M is None else _size("window", "M", M)
    qpos, kpos = _positions(N, M)
    d = qpos - kpos
    out = np.abs(d) < w
    if causal:
        out &= d >= 0
    return out


def unilm(segment_ids):
    """UniLM sequence-to-sequence mask [..., N, N] from segment ids [..., N].

    ``segment_ids`` holds 0 for source tokens (``[CLS] ... [SEP]``) and 1 for
    target tokens; with c = cumsum(s) along the last axis, query i sees key j
    iff c[j] <= c[i]: source tokens see the whole source, target tokens see
    the source and the target up to themselves (bert4keras ``UniLM_Mask``).

    Parameters
    ----------
    segment_ids : int array [..., N] with values 0 or 1 (1-D gives [N, N],
        [B, N] gives [B, N, N]; add ``[:, None]`` for a head axis)

    Examples
    --------
    >>> from kexue.attention import masks
    >>> masks.unilm([0, 0, 1, 1]).astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 0, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 1]])
    """
    s = _int_array("unilm", "segment_ids", segment_ids)
    if s.ndim < 1:
        raise ValueError(
            f"{_pre('unilm')}segment_ids must have at least 1 axis [..., N]; got a scalar")
    if s.size and not np.isin(s, (0, 1)).all():
        bad = s[~np.isin(s, (0, 1))].flat[0]
        raise ValueError(f"{_pre('unilm')}segment_ids must be 0 or 1; got {int(bad)}")
    c = np.cumsum(s, axis=-1)
    return c[..., None, :] <= c[..., :, None]


def prefix_lm(prefix_lengths, N):
    """Prefix-LM mask [B, N, N]: row i sees key j iff j < prefix_lengths[b] or j <= i
    (bidirectional over the prefix, causal after it).

    Parameters
    ----------
    prefix_lengths : int array [B], values in [0, N] (0: plain causal,
        N: fully bidirectional)
    N : int >= 0 -- sequence length

    Examples
    --------
    >>> from kexue.attention import masks
    >>> masks.prefix_lm([2], 4)[0].astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 0, 0],
           [1, 1, 1, 0],
           [1, 1, 1, 1]])
    """
    N = _size("prefix_lm", "N", N)
    p = _int_array("prefix_lm", "prefix_lengths", prefix_lengths)
    if p.ndim != 1:
        raise ValueError(f"{_pre('prefix_lm')}prefix_lengths must be 1-D [B]; got shape {p.shape}")
    bad = (p < 0) | (p > N)
    if bad.any():
        raise ValueError(
            f"{_pre('prefix_lm')}prefix_lengths must be in [0, {N}]; got {int(p[bad][0])}")
    i = np.arange(N)[:, None]
    j = np.arange(N)[None, :]
    return (j[None] < p[:, None, None]) | (j <= i)[None]


def padding(lengths, M):
    """Key-padding mask [B, 1, 1, M]: key j is valid iff j < lengths[b].

    The shape broadcasts against [B, H, N, M], so it can be passed as
    ``mask=`` directly or ANDed with another mask (spec B1: the padding mask is
    ANDed with the structural one; padded query rows are computed but ignored).

    Parameters
    ----------
    lengths : int array [B], values in [0, M]
    M : int >= 0 -- number of keys

    Examples
    --------
    >>> from kexue.attention import masks
    >>> m = masks.padding([1, 3], 3)
    >>> m.shape
    (2, 1, 1, 3)
    >>> m[:, 0, 0].astype(int)
    array([[1, 0, 0],
           [1, 1, 1]])
    """
    M = _size("padding", "M", M)
    n = _int_array("padding", "lengths", lengths)
    if n.ndim != 1:
        raise ValueError(f"{_pre('padding')}lengths must be 1-D [B]; got shape {n.shape}")
    bad = (n < 0) | (n > M)
    if bad.any():
        raise ValueError(f"{_pre('padding')}lengths must be in [0, {M}]; got {int(n[bad][0])}")
    return (np.arange(M)[None, :] < n[:, None])[:, None, None, :]


def permutation(order, stream="content"):
    """XLNet-style permutation-LM mask [..., N, N] from a factorization order (spec B2).

    ``order[t]`` is the position generated at step t, so position j has rank
    r(j) = t iff order[t] = j. Row j (a position) may see key k iff
    r(k) <= r(j) (``stream="content"``) or r(k) < r(j) (``stream="query"``:
    predicting x_j without seeing it; the first-generated row is empty).

    Parameters
    ----------
    order : int array [..., N], each row a permutation of 0..N-1
    stream : "content" or "query"

    Examples
    --------
    >>> from kexue.attention import masks
    >>> masks.permutation([2, 0, 3, 1]).astype(int)
    array([[1, 0, 1, 0],
           [1, 1, 1, 1],
           [0, 0, 1, 0],
           [1, 0, 1, 1]])
    >>> masks.permutation([2, 0, 3, 1], stream="query").astype(int)
    array([[0, 0, 1, 0],
           [1, 0, 1, 1],
           [0, 0, 0, 0],
           [1, 0, 1, 0]])
    """
    if stream not in ("content", "query"):
        raise ValueError(
            f"{_pre('permutation')}stream must be 'content' or 'query'; got {stream!r}")
    o = _int_array("permutation", "order", order)
    if o.ndim < 1:
        raise ValueError(
            f"{_pre('permutation')}order must have at least 1 axis [..., N]; got a scalar")
    N = o.shape[-1]
    if not (np.sort(o, axis=-1) == np.arange(N)).all():
        raise ValueError(f"{_pre('permutation')}order must be a permutation of 0..{N - 1} "
                         "along its last axis")
    rank = np.argsort(o, axis=-1)  # rank[j] = t with order[t] = j
    rj, rk = rank[..., :, None], rank[..., None, :]
    return rk <= rj if stream == "content" else rk < rj
