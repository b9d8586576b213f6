"""Pure-numpy scaled dot-product attention: the twin of :mod:`kexue.attention`.

Spec: kernels §B. Shapes q [B,H,N,D], k [B,Hkv,M,D], v [B,Hkv,M,Dv],
H % Hkv == 0, query head h reads kv head h // (H // Hkv). Query i sits at
position i' = i + (M - N), key j at position j. Query i may see key j iff
every given condition holds:

* ``causal``: j <= i';
* ``window=w``: |i' - j| < w (with causal: i' - w < j <= i');
* ``segment_ids`` [B,N] (N == M, values 0/1): c = cumsum(s), c[b,j] <= c[b,i] (UniLM);
* ``mask`` bool (broadcastable to [B,H,N,M]): True;
* ``mask`` float (q's dtype): the additive bias is not -inf.

With n_i the number of keys query i may see, the logits are

    s_ij = scale_i * (R_{i'} q_i) . (R_j k_j) + bias_ij - slope_h * |i' - j|,

scale_i = scale (default 1/sqrt(D)), times log(n_i)/log(logn) with ``logn``;
R_p is RoPE (only with ``rope=True``); s_ij = -inf where not allowed.
out_i = softmax(s_i) @ v, lse_i = logsumexp(s_i); a row with no allowed key
gives out 0 and lse -inf. Everything here materialises the [B,H,N,M] logits
in float64; outputs have q's dtype. The backward differentiates sum(out * dout)
through the materialised softmax w.r.t. the unrotated q, k and v (the bias,
ALiBi and logn's factor are constants).

Unlike the other twins this one checks its arguments with the core's messages
("[kexue.attention.<fn>] <argument> ..."), so both front doors can be held to
the same errors.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["decode", "rope", "sdpa", "sdpa_backward"]

_NEG_INF = -np.inf
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------------
# argument checks (messages shared with the core)


def _pre(fn):
    return f"[kexue.attention.{fn}] "


def _float_array(fn, name, x):
    a = np.asarray(x)
    if a.dtype not in _FLOATS:
        raise TypeError(f"{_pre(fn)}{name} must be float32 or float64; got {a.dtype}")
    return a


def _same_dtype(fn, name, x, dtype):
    a = np.asarray(x)
    if a.dtype != dtype:
        raise TypeError(f"{_pre(fn)}{name} must have dtype {dtype} (q's); got {a.dtype}")
    return a


def _real(fn, name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{_pre(fn)}{name} must be a number; got {type(value).__name__}")
    return float(value)


def _check_scale(fn, scale, D):
    if scale is None:
        return 1.0 / math.sqrt(D)
    s = _real(fn, "scale", scale)
    if not math.isfinite(s):
        raise ValueError(f"{_pre(fn)}scale must be finite; got {s}")
    return s


def _check_logn(fn, logn):
    if logn is None:
        return None
    n0 = _real(fn, "logn", logn)
    if not (math.isfinite(n0) and n0 > 1):
        raise ValueError(f"{_pre(fn)}logn must be a finite number > 1; got {n0:g}")
    return n0


def _check_window(fn, window):
    if window is None:
        return None
    if isinstance(window, (bool, np.bool_)) or not isinstance(window, numbers.Integral):
        raise TypeError(f"{_pre(fn)}window must be an int; got {type(window).__name__}")
    if window < 1:
        raise ValueError(f"{_pre(fn)}window must be >= 1; got {int(window)}")
    return int(window)


def _check_base(fn, name, base):
    b = _real(fn, name, base)
    if not (math.isfinite(b) and b > 0):
        raise ValueError(f"{_pre(fn)}{name} must be a finite number > 0; got {b:g}")
    return b


def _check_alibi(fn, alibi_slopes, H):
    if alibi_slopes is None:
        return None
    a = np.asarray(alibi_slopes)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{_pre(fn)}alibi_slopes must be a float array; got dtype {a.dtype}")
    if a.shape != (H,):
        raise ValueError(f"{_pre(fn)}alibi_slopes must have shape ({H},) ([H]); got {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{_pre(fn)}alibi_slopes must be finite")
    return a


def _check_qkv(fn, q, k, v, *, q_ndim=4, k_name="k", v_name="v"):
    """(q, k, v) as arrays after the shape/dtype checks.

    q [B,H,N,D] (decode: [B,H,D]), k [B,Hkv,M,D], v [B,Hkv,M,Dv].
    """
    q = _float_array(fn, "q", q)
    if q.ndim != q_ndim:
        layout = "[B,H,N,D]" if q_ndim == 4 else "[B,H,D]"
        raise ValueError(f"{_pre(fn)}q must be {q_ndim}-D {layout}; got shape {q.shape}")
    k = np.asarray(k)
    v = np.asarray(v)
    B, H, D = q.shape[0], q.shape[1], q.shape[-1]
    if k.ndim != 4:
        raise ValueError(f"{_pre(fn)}{k_name} must be 4-D [B,Hkv,M,D]; got shape {k.shape}")
    if v.ndim != 4:
        raise ValueError(f"{_pre(fn)}{v_name} must be 4-D [B,Hkv,M,Dv]; got shape {v.shape}")
    _same_dtype(fn, k_name, k, q.dtype)
    _same_dtype(fn, v_name, v, q.dtype)
    if k.shape[0] != B or k.shape[3] != D:
        raise ValueError(f"{_pre(fn)}{k_name} must have shape [B,Hkv,M,D] with B={B} and D={D} "
                         f"(q's); got {k.shape}")
    Hkv = k.shape[1]
    if Hkv == 0 or H % Hkv != 0:
        raise ValueError(f"{_pre(fn)}{k_name} must have a number of heads Hkv that divides q's "
                         f"H={H}; got Hkv={Hkv}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"{_pre(fn)}{v_name} must have shape [B,Hkv,M,Dv] with "
                         f"[B,Hkv,M]={list(k.shape[:3])} ({k_name}'s); got {v.shape}")
    if D == 0:
        raise ValueError(f"{_pre(fn)}q must have a head size D >= 1; got shape {q.shape}")
    if v.shape[3] == 0:
        raise ValueError(f"{_pre(fn)}{v_name} must have a value size Dv >= 1; got shape {v.shape}")
    return q, k, v


def _check_masks(fn, q, k, causal, mask, segment_ids, window, scale, logn, alibi_slopes, rope,
                 rope_base):
    """Check the mask arguments; return them normalised (mask split into bool / float bias)."""
    B, H, N, D = q.shape
    M = k.shape[2]
    mask_bool = bias = None
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype == np.bool_:
            mask_bool = m
        elif np.issubdtype(m.dtype, np.floating):
            if m.dtype != q.dtype:
                raise TypeError(f"{_pre(fn)}mask must be bool or have q's dtype {q.dtype}; "
                                f"got {m.dtype}")
            bias = m
        else:
            raise TypeError(f"{_pre(fn)}mask must be bool or have q's dtype {q.dtype}; "
                            f"got {m.dtype}")
        try:
            ok = m.ndim <= 4 and np.broadcast_shapes(m.shape, (B, H, N, M)) == (B, H, N, M)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{_pre(fn)}mask must be broadcastable to [B,H,N,M]="
                             f"{[B, H, N, M]}; got shape {m.shape}")
    if segment_ids is not None:
        s = np.asarray(segment_ids)
        if not np.issubdtype(s.dtype, np.integer):
            raise TypeError(f"{_pre(fn)}segment_ids must be int32 or int64; got {s.dtype}")
        if s.shape != (B, N):
            raise ValueError(f"{_pre(fn)}segment_ids must have shape ({B}, {N}) ([B,N]); "
                             f"got {s.shape}")
        if N != M:
            raise ValueError(f"{_pre(fn)}segment_ids needs as many keys as queries (N == M); "
                             f"got N={N}, M={M}")
        if s.size and not np.isin(s, (0, 1)).all():
            bad = s[~np.isin(s, (0, 1))].flat[0]
            raise ValueError(f"{_pre(fn)}segment_ids must be 0 or 1; got {int(bad)}")
        segment_ids = s.astype(np.int64)
    window = _check_window(fn, window)
    scale = _check_scale(fn, scale, D)
    logn = _check_logn(fn, logn)
    alibi = _check_alibi(fn, alibi_slopes, H)
    if rope:
        if D % 2 != 0:
            raise ValueError(f"{_pre(fn)}q must have an even head size D with rope=True; got {D}")
        rope_base = _check_base(fn, "rope_base", rope_base)
    return dict(causal=bool(causal), mask_bool=mask_bool, bias=bias, segment_ids=segment_ids,
                window=window, scale=scale, logn=logn, alibi=alibi, rope=bool(rope),
                rope_base=float(rope_base))


# ----------------------------------------------------------------------------
# RoPE


def _rope_pairs(D, interleaved):
    """Index arrays (first, second) of the D/2 rotated pairs, pair r at frequency r."""
    r = np.arange(D // 2)
    if interleaved:
        return 2 * r, 2 * r + 1
    return r, r + D // 2


def _rotate(x, positions, base, interleaved):
    """Rotate float64 x [..., D] by the angles positions[...] * base^(-2r/D).

    positions broadcasts against x.shape[:-1]; negative positions give the inverse rotation.
    """
    D = x.shape[-1]
    first, second = _rope_pairs(D, interleaved)
    theta = base ** (-2.0 * np.arange(D // 2) / D)
    angle = np.asarray(positions, dtype=np.float64)[..., None] * theta
    cos, sin = np.cos(angle), np.sin(angle)
    a, b = x[..., first], x[..., second]
    out = np.empty(np.broadcast_shapes(x.shape, angle.shape[:-1] + (D,)), dtype=np.float64)
    out[..., first] = a * cos - b * sin
    out[..., second] = b * cos + a * sin
    return out


def rope(x, positions=None, *, base=10000.0, interleaved=False):
    """Rotary position embedding of x [..., N, D] (D even), same shape and dtype.

    theta_r = base^(-2r/D), r = 0..D/2-1; the pair (a, b) of frequency r at
    position p becomes (a cos - b sin, b cos + a sin) with angle p * theta_r
    (float64). Pairs: (2r, 2r+1) with ``interleaved=True`` (RoFormer,
    bert4keras), (r, r + D/2) otherwise (rotate-half, GPT-NeoX / LLaMA).
    positions: None -> 0..N-1, or an int/float array broadcastable to
    x.shape[:-1]. rope(rope(x, p), -p) == x.

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.reference.attention import rope
    >>> rope(np.array([[1.0, 2, 3, 4]]), 2, interleaved=True).round(6)
    array([[-2.234742,  0.077004,  2.919405,  4.059196]])
    >>> rope(np.array([[1.0, 2, 3, 4]]), 2).round(6)
    array([[-3.144039,  1.919605, -0.339143,  4.039197]])
    """
    fn = "rope"
    x = _float_array(fn, "x", x)
    if x.ndim < 2:
        raise ValueError(f"{_pre(fn)}x must have at least 2 axes [..., N, D]; got shape {x.shape}")
    N, D = x.shape[-2], x.shape[-1]
    if D % 2 != 0:
        raise ValueError(f"{_pre(fn)}x must have an even last dimension D; got {D}")
    base = _check_base(fn, "base", base)
    if positions is None:
        p = np.arange(N, dtype=np.float64)
    else:
        p = np.asarray(positions)
        if p.dtype == np.bool_ or not (np.issubdtype(p.dtype, np.integer)
                                       or np.issubdtype(p.dtype, np.floating)):
            raise TypeError(f"{_pre(fn)}positions must be an int or float array; got {p.dtype}")
        try:
            ok = np.broadcast_shapes(p.shape, x.shape[:-1]) == x.shape[:-1]
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{_pre(fn)}positions must be broadcastable to x.shape[:-1]="
                             f"{x.shape[:-1]}; got shape {p.shape}")
        p = p.astype(np.float64)
        if not np.isfinite(p).all():
            raise ValueError(f"{_pre(fn)}positions must be finite")
    return _rotate(x.astype(np.float64), p, base, interleaved).astype(x.dtype)


# ----------------------------------------------------------------------------
# the materialised forward


def _allowed(B, H, N, M, c):
    """bool [B,H,N,M]: query i may see key j."""
    qpos = np.arange(N, dtype=np.int64)[:, None] + (M - N)
    kpos = np.arange(M, dtype=np.int64)[None, :]
    ok = np.ones((B, H, N, M), dtype=bool)
    if c["causal"]:
        ok &= kpos <= qpos
    if c["window"] is not None:
        ok &= np.abs(qpos - kpos) < c["window"]
    if c["segment_ids"] is not None:
        cs = np.cumsum(c["segment_ids"], axis=1)  # [B,N]
        ok &= (cs[:, None, :] <= cs[:, :, None])[:, None]
    if c["mask_bool"] is not None:
        ok &= c["mask_bool"]
    if c["bias"] is not None:
        ok &= ~np.isneginf(c["bias"])
    return ok


def _expand_kv(x, H):
    """[B,Hkv,M,*] -> [B,H,M,*]: query head h reads kv head h // (H // Hkv)."""
    return np.repeat(x, H // x.shape[1], axis=1)


def _reduce_kv(dx, Hkv):
    """[B,H,M,*] -> [B,Hkv,M,*]: sum over the query heads that share a kv head."""
    B, H = dx.shape[:2]
    return dx.reshape((B, Hkv, H // Hkv) + dx.shape[2:]).sum(axis=2)


def _forward(q, k, v, c):
    """float64 pieces of the forward: P [B,H,N,M], out, lse, scale_i [B,H,N], and q, k, v as used
    (rotated, k and v expanded to H heads), qpos, kpos."""
    B, H, N, D = q.shape
    M = k.shape[2]
    q64 = q.astype(np.float64)
    k64 = _expand_kv(k.astype(np.float64), H)
    v64 = _expand_kv(v.astype(np.float64), H)
    qpos = np.arange(N, dtype=np.float64) + (M - N)
    kpos = np.arange(M, dtype=np.float64)
    if c["rope"]:
        q64 = _rotate(q64, qpos, c["rope_base"], c["rope_interleaved"])
        k64 = _rotate(k64, kpos, c["rope_base"], c["rope_interleaved"])
    ok = _allowed(B, H, N, M, c)
    n = ok.sum(axis=-1)  # [B,H,N]
    scale_i = np.full((B, H, N), c["scale"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        if c["logn"] is not None:
            factor = np.log(np.maximum(n, 1)) / math.log(c["logn"])
            scale_i = np.where(n > 0, c["scale"] * factor, 0.0)
        s = scale_i[..., None] * np.einsum("bhid,bhjd->bhij", q64, k64)
        if c["bias"] is not None:
            s = s + c["bias"].astype(np.float64)
        if c["alibi"] is not None:
            dist = np.abs(qpos[:, None] - kpos[None, :])
            s = s - c["alibi"][None, :, None, None] * dist
        s = np.where(ok, s, _NEG_INF)
        m = np.max(s, axis=-1, initial=_NEG_INF) if M else np.full((B, H, N), _NEG_INF)
        m_safe = np.where(np.isneginf(m), 0.0, m)
        p = np.exp(s - m_safe[..., None])
        ell = p.sum(axis=-1)
        empty = ell == 0
        denom = np.where(empty, 1.0, ell)
        P = np.where(empty[..., None], 0.0, p / denom[..., None])
        out = np.einsum("bhij,bhjd->bhid", P, v64)
        lse = np.where(empty, _NEG_INF, m_safe + np.log(denom))
    return dict(P=P, out=out, lse=lse, scale_i=scale_i, q=q64, k=k64, v=v64, qpos=qpos, kpos=kpos)


def sdpa(q, k, v, *, causal=False, mask=None, segment_ids=None, window=None, scale=None,
         logn=None, alibi_slopes=None, rope=False, rope_base=10000.0, rope_interleaved=False,
         return_lse=False):
    """Attention out [B,H,N,Dv] (and lse [B,H,N] with ``return_lse``), by the materialised softmax.

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.reference.attention import sdpa
    >>> q = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0.5, -0.5, 1]])[None, None]
    >>> k = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [-1, 0.5, 0.5]])[None, None]
    >>> v = np.array([[1.0, 2], [0, 1], [-1, 0], [2, -1]])[None, None]
    >>> sdpa(q, k, v, segment_ids=np.array([[0, 0, 1, 1]]))[0, 0].round(6)
    array([[0.5     , 1.5     ],
           [0.5     , 1.5     ],
           [0.206625, 1.206625],
           [0.063422, 0.442667]])
    """
    fn = "sdpa"
    q, k, v = _check_qkv(fn, q, k, v)
    c = _check_masks(fn, q, k, causal, mask, segment_ids, window, scale, logn, alibi_slopes, rope,
                     rope_base)
    c["rope_interleaved"] = bool(rope_interleaved)
    f = _forward(q, k, v, c)
    out = f["out"].astype(q.dtype)
    if return_lse:
        return out, f["lse"].astype(q.dtype)
    return out


def sdpa_backward(q, k, v, out, lse, dout, *, causal=False, mask=None, segment_ids=None,
                  window=None, scale=None, logn=None, alibi_slopes=None, rope=False,
                  rope_base=10000.0, rope_interleaved=False):
    """(dq, dk, dv): gradients of sum(out * dout) w.r.t. the unrotated q, k and v.

    With P the softmax, dv = P^T dout, dP = dout v^T, dS = P * (dP - rowsum(P * dP)),
    dq~_i = scale_i sum_j dS_ij k~_j, dk~_j = sum_i scale_i dS_ij q~_i (k~, q~ rotated), then
    dq = R^T dq~ (rotation by the negative angle), likewise dk; dk and dv are summed over
    the query heads that share a kv head. ``out`` and ``lse`` (from :func:`sdpa`) are checked
    but this twin recomputes the softmax from q, k in float64 rather than reading them.
    """
    fn = "sdpa_backward"
    q, k, v = _check_qkv(fn, q, k, v)
    B, H, N, D = q.shape
    Dv = v.shape[3]
    for name, x, shape in (("out", out, (B, H, N, Dv)), ("lse", lse, (B, H, N)),
                           ("dout", dout, (B, H, N, Dv))):
        a = np.asarray(x)
        _same_dtype(fn, name, a, q.dtype)
        if a.shape != shape:
            raise ValueError(f"{_pre(fn)}{name} must have shape {shape}; got {a.shape}")
    c = _check_masks(fn, q, k, causal, mask, segment_ids, window, scale, logn, alibi_slopes, rope,
                     rope_base)
    c["rope_interleaved"] = bool(rope_interleaved)
    f = _forward(q, k, v, c)
    g = np.asarray(dout).astype(np.float64)
    P = f["P"]
    with np.errstate(invalid="ignore", over="ignore"):
        dv = np.einsum("bhij,bhid->bhjd", P, g)
        dP = np.einsum("bhid,bhjd->bhij", g, f["v"])
        Dd = np.sum(P * dP, axis=-1, keepdims=True)
        dS = P * (dP - Dd) * f["scale_i"][..., None]
        dq = np.einsum("bhij,bhjd->bhid", dS, f["k"])
        dk = np.einsum("bhij,bhid->bhjd", dS, f["q"])
    if c["rope"]:
        dq = _rotate(dq, -f["qpos"], c["rope_base"], c["rope_interleaved"])
        dk = _rotate(dk, -f["kpos"], c["rope_base"], c["rope_interleaved"])
    Hkv = k.shape[1]
    return (dq.astype(q.dtype), _reduce_kv(dk, Hkv).astype(q.dtype),
            _reduce_kv(dv, Hkv).astype(q.dtype))


def decode(q, k_cache, v_cache, lengths, *, scale=None, logn=None, window=None,
           alibi_slopes=None, return_lse=False):
    """One query per sequence against a KV cache: out [B,H,Dv] (and lse [B,H]).

    Row b equals sdpa(q[b:b+1, :, None], k_cache[b:b+1, :, :L], v_cache[b:b+1, :, :L],
    causal=True, ...)[0, :, 0] with L = lengths[b] (the query at position L - 1);
    L = 0 gives out 0 and lse -inf.
    """
    fn = "decode"
    q, k, v = _check_qkv(fn, q, k_cache, v_cache, q_ndim=3, k_name="k_cache", v_name="v_cache")
    B, H, D = q.shape
    Mmax, Dv = k.shape[2], v.shape[3]
    L = np.asarray(lengths)
    if not np.issubdtype(L.dtype, np.integer):
        raise TypeError(f"{_pre(fn)}lengths must be int32 or int64; got {L.dtype}")
    if L.shape != (B,):
        raise ValueError(f"{_pre(fn)}lengths must have shape ({B},) ([B]); got {L.shape}")
    bad = (L < 0) | (L > Mmax)
    if bad.any():
        raise IndexError(f"{_pre(fn)}lengths must be in [0, {Mmax}]; got {int(L[bad][0])}")
    _check_window(fn, window)
    _check_scale(fn, scale, D)
    _check_logn(fn, logn)
    _check_alibi(fn, alibi_slopes, H)
    out = np.zeros((B, H, Dv), dtype=q.dtype)
    lse = np.full((B, H), _NEG_INF, dtype=q.dtype)
    for b in range(B):
        n = int(L[b])
        if n == 0:
            continue
        o, s = sdpa(q[b:b + 1, :, None], k[b:b + 1, :, :n], v[b:b + 1, :, :n], causal=True,
                    window=window, scale=scale, logn=logn, alibi_slopes=alibi_slopes,
                    return_lse=True)
        out[b] = o[0, :, 0]
        lse[b] = s[0, :, 0]
    if return_lse:
        return out, lse
    return out
