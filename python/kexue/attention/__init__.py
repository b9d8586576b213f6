"""Attention: scaled dot-product attention in O(N) extra memory on the CPU,
forward and backward, with every mask of kexue.fm (spec B1-B6).

Shapes: q [B,H,N,D], k [B,Hkv,M,D], v [B,Hkv,M,Dv] with H a multiple of Hkv
(query head h reads kv head ``h // (H // Hkv)``: grouped- and multi-query
attention with no copy of k/v); float32 or float64, all three alike;
out [B,H,N,Dv], lse [B,H,N]. Key j sits at position j and query i at
``i + M - N`` (the last query is aligned with the last key: N = 1 against a
cache is one decoding step, N == M is the usual square case).

Query i may see key j when every mask given allows it:

- ``causal``: j <= i + M - N;
- ``window=w``: |i + M - N - j| < w (local attention; with ``causal`` the
  last w keys up to the query: Su's "super baseline", kexue.fm/archives/9431);
- ``segment_ids`` [B,N] (UniLM, kexue.fm/archives/6933): with c = cumsum(s),
  c_j <= c_i -- source tokens (0) see the whole source, target tokens (1)
  see the source and the target up to themselves;
- ``mask``: bool (True = may attend) or a float bias (q's dtype; -inf = may
  not), broadcastable to [B,H,N,M] and never expanded.

The logit is ``scale_i * (R q_i).(R k_j) + bias_ij - slope_h |i + M - N - j|``
with RoPE R when ``rope`` (q at i + M - N, k at j), ``scale`` 1/sqrt(D) by
default, times log(n_i)/log(logn) with ``logn`` (n_i = keys query i may
see: the entropy-invariant scale of kexue.fm/archives/8823, windowed
variant of 9708), and ALiBi slopes. A query that may see no key gets out 0
and lse -inf, never NaN. NaN inputs give NaN outputs, not exceptions.

The kernels never form an N x M matrix: queries go in blocks of 64 against
blocks of 64 keys with FlashAttention-2's online softmax; blocks the causal
or window mask rules out entirely are skipped. Results are bitwise identical
for any thread count. The numpy twin is :mod:`kexue.reference.attention`;
:mod:`kexue.attention.masks` builds the dense masks for inspection.
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .._util import arr, check_int
from . import masks

__all__ = ["decode", "masks", "rope", "sdpa", "sdpa_backward"]


def _window(op, window):
    if window is None:
        return 0
    w = check_int(op, "window", window)
    if w < 1:
        raise ValueError(f"[kexue.{op}] window must be >= 1; got {w}")
    return w


def _opt_float(op, name, x):
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"[kexue.{op}] {name} must be a number; got {type(x).__name__}")
    return float(x)


def _slopes(op, alibi_slopes):
    if alibi_slopes is None:
        return None
    a = np.asarray(alibi_slopes)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"[kexue.{op}] alibi_slopes must be a float array [H]; got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def _mask4(op, mask, q):
    """The mask as a 4-D C-contiguous array (axes of size 1 broadcast)."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.ndim > 4:
        raise ValueError(f"[kexue.{op}] mask must broadcast to [B,H,N,M]; got {m.ndim}-D shape {m.shape}")
    if m.ndim < 4:
        m = m.reshape((1,) * (4 - m.ndim) + m.shape)
    if m.dtype != np.bool_ and m.dtype.kind != "f":
        raise TypeError(f"[kexue.{op}] mask must be bool or a float bias of q's dtype; got {m.dtype}")
    # a broadcast view (stride 0 on an axis of size > 1) is reduced to size 1
    idx = tuple(slice(0, 1) if (m.shape[a] > 1 and m.strides[a] == 0) else slice(None)
                for a in range(4))
    return arr(m[idx])


def _attn_kwargs(op, q, causal, mask, segment_ids, window, scale, logn, alibi_slopes, rope,
                 rope_base, rope_interleaved):
    return dict(
        causal=bool(causal), mask=_mask4(op, mask, q), segment_ids=arr(segment_ids),
        window=_window(op, window), scale=_opt_float(op, "scale", scale),
        logn=_opt_float(op, "logn", logn), alibi_slopes=_slopes(op, alibi_slopes),
        rope=bool(rope), rope_base=float(rope_base), rope_interleaved=bool(rope_interleaved))


def sdpa(q, k, v, *, causal=False, mask=None, segment_ids=None, window=None, scale=None,
         logn=None, alibi_slopes=None, rope=False, rope_base=10000.0, rope_interleaved=False,
         return_lse=False):
    """Scaled dot-product attention ``softmax(scale q k^T + masks) v``.

    Parameters
    ----------
    q : ndarray [B,H,N,D], float32 or float64
    k : ndarray [B,Hkv,M,D] (H % Hkv == 0), v : ndarray [B,Hkv,M,Dv], q's dtype
    causal : bool -- query i sees keys j <= i + M - N
    mask : bool or float ndarray broadcastable to [B,H,N,M] -- True / a bias
    segment_ids : int ndarray [B,N] of 0/1 (N == M) -- the UniLM mask
    window : int >= 1 -- local attention |i + M - N - j| < window
    scale : float -- default 1/sqrt(D)
    logn : float > 1 -- scale each query by log(n_i)/log(logn)
    alibi_slopes : float array [H] -- ALiBi bias -slope_h |i + M - N - j|
    rope, rope_base, rope_interleaved -- rotate q and k first (see :func:`rope`)
    return_lse : bool -- also return the log-sum-exp of each query's logits

    Returns
    -------
    out : ndarray [B,H,N,Dv] (and lse [B,H,N] when ``return_lse``), q's dtype

    Examples
    --------
    >>> import numpy as np, kexue
    >>> q = np.array([[[[1., 0.], [0., 1.]]]]); v = np.array([[[[1., 2.], [3., 4.]]]])
    >>> kexue.attention.sdpa(q, q, v, causal=True)[0, 0, 0]
    array([1., 2.])
    >>> out, lse = kexue.attention.sdpa(q, q, v, causal=True, return_lse=True)
    >>> round(float(lse[0, 0, 0]), 6)  # one visible key: its logit 1/sqrt(2)
    0.707107
    """
    op = "attention.sdpa"
    kw = _attn_kwargs(op, q, causal, mask, segment_ids, window, scale, logn, alibi_slopes, rope,
                      rope_base, rope_interleaved)
    out, lse = _core.attn_sdpa(arr(q), arr(k), arr(v), return_lse=bool(return_lse), **kw)
    return (out, lse) if return_lse else out


def sdpa_backward(q, k, v, out, lse, dout, *, causal=False, mask=None, segment_ids=None,
                  window=None, scale=None, logn=None, alibi_slopes=None, rope=False,
                  rope_base=10000.0, rope_interleaved=False):
    """Gradients (dq, dk, dv) of ``sum(sdpa(q, k, v, ...) * dout)``.

    ``out`` and ``lse`` come from the forward (``sdpa(..., return_lse=True)``)
    with the same keyword arguments. FlashAttention-2's backward: the
    probabilities are recomputed block by block from lse, so the extra
    memory is O(N), never N x M. dk and dv sum over the query heads that
    share a kv head. Gradients are with respect to the unrotated q and k;
    a float mask and the logn factor are treated as constants.

    Shapes: dq like q [B,H,N,D], dk like k [B,Hkv,M,D], dv like v [B,Hkv,M,Dv].

    Examples
    --------
    >>> import numpy as np, kexue
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = (rng.standard_normal((1, 2, 5, 4)) for _ in range(3))
    >>> out, lse = kexue.attention.sdpa(q, k, v, causal=True, return_lse=True)
    >>> dq, dk, dv = kexue.attention.sdpa_backward(q, k, v, out, lse, np.ones_like(out), causal=True)
    >>> bool(np.allclose(dv.sum(axis=2), np.ones((1, 2, 4)) * 5))
    True
    """
    op = "attention.sdpa_backward"
    kw = _attn_kwargs(op, q, causal, mask, segment_ids, window, scale, logn, alibi_slopes, rope,
                      rope_base, rope_interleaved)
    return _core.attn_sdpa_backward(arr(q), arr(k), arr(v), arr(out), arr(lse), arr(dout), **kw)


def decode(q, k_cache, v_cache, lengths, *, scale=None, logn=None, window=None,
           alibi_slopes=None, return_lse=False):
    """One decoding step: each sequence's new query against its KV cache.

    Parameters
    ----------
    q : ndarray [B,H,D], float32 or float64
    k_cache : ndarray [B,Hkv,Mmax,D], v_cache : ndarray [B,Hkv,Mmax,Dv]
    lengths : int ndarray [B], 0 <= lengths[b] <= Mmax -- valid cache rows;
        the query sits at position lengths[b] - 1 and sees keys
        [0, lengths[b]) (the last ``window`` of them with ``window``)
    scale, logn, window, alibi_slopes : as in :func:`sdpa`
    return_lse : bool

    Returns
    -------
    out : ndarray [B,H,Dv] (and lse [B,H]); a sequence of length 0 gets 0 / -inf.

    Equals ``sdpa(q[:, :, None], k[:, :, :L], v[:, :, :L], causal=True)[:, :, 0]``
    per sequence with L = lengths[b]. The cache is split into chunks of 512
    keys processed in parallel and merged by their log-sum-exp (split-K), so
    one long sequence still uses every thread.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> kc = np.zeros((1, 1, 8, 2)); vc = np.arange(16.).reshape(1, 1, 8, 2)
    >>> kexue.attention.decode(np.ones((1, 1, 2)), kc, vc, np.array([2]))
    array([[[1., 2.]]])
    """
    op = "attention.decode"
    out, lse = _core.attn_decode(
        arr(q), arr(k_cache), arr(v_cache), arr(lengths), scale=_opt_float(op, "scale", scale),
        logn=_opt_float(op, "logn", logn), window=_window(op, window),
        alibi_slopes=_slopes(op, alibi_slopes), return_lse=bool(return_lse))
    return (out, lse) if return_lse else out


def rope(x, positions=None, *, base=10000.0, interleaved=False):
    """Rotary position embedding (RoPE, kexue.fm/archives/8265) of x [..., N, D].

    Feature pair r (0 <= r < D/2) at position p is rotated by the angle
    ``p * base**(-2r/D)`` (computed in float64). ``interleaved=False`` pairs
    (r, r + D/2) (rotate-half: GPT-NeoX, LLaMA); ``True`` pairs (2r, 2r+1)
    (RoFormer, bert4keras). The two differ by a fixed permutation of features.

    Parameters
    ----------
    x : ndarray [..., N, D], float32 or float64, D even
    positions : None (0..N-1) or an int or float array broadcastable to x.shape[:-1]
    base : float > 0

    Returns
    -------
    ndarray like x

    Examples
    --------
    >>> import numpy as np, kexue
    >>> y = kexue.attention.rope(np.array([[1., 2., 3., 4.]]), np.array([2]))
    >>> np.round(y, 6)
    array([[-3.144039,  1.919605, -0.339143,  4.039197]])
    """
    op = "attention.rope"
    xa = arr(x)
    if xa.ndim < 2:
        raise ValueError(f"[kexue.{op}] x must be at least 2-D [..., N, D]; got shape {xa.shape}")
    lead, N, D = xa.shape[:-2], xa.shape[-2], xa.shape[-1]
    R = int(np.prod(lead, dtype=np.int64)) if lead else 1
    if positions is None:
        pos = np.arange(N, dtype=np.float64).reshape(1, N)
    else:
        p = np.asarray(positions)
        if p.dtype.kind not in "fiu":
            raise TypeError(f"[kexue.{op}] positions must be an int or float array; got {p.dtype}")
        try:
            p = np.broadcast_to(p, xa.shape[:-1])
        except ValueError:
            raise ValueError(f"[kexue.{op}] positions must broadcast to x.shape[:-1] = "
                             f"{xa.shape[:-1]}; got shape {p.shape}") from None
        pos = np.ascontiguousarray(p, dtype=np.float64).reshape(R, N)
    if isinstance(base, (bool, np.bool_)) or not isinstance(base, (int, float, np.integer, np.floating)):
        raise TypeError(f"[kexue.{op}] base must be a number; got {type(base).__name__}")
    y = _core.attn_rope(xa.reshape(R, N, D), pos, base=float(base), interleaved=bool(interleaved))
    return y.reshape(xa.shape)
