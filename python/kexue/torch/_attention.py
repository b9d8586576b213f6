"""``torch.nn.functional.scaled_dot_product_attention`` on kexue's attention kernels.

:func:`scaled_dot_product_attention` has torch's signature and semantics and
runs :func:`kexue.attention.sdpa` / :func:`kexue.attention.sdpa_backward`
behind a ``torch.autograd.Function``: when a gradient is needed the forward
asks kexue for the output and its log-sum-exp and saves both; the backward recomputes the attention
weights block by block (FlashAttention-2 style), so neither pass builds an
N x M matrix. Tensors must be on the CPU, float32 or float64; contiguous
tensors are handed to kexue as numpy views (``t.detach().numpy()``, no copy),
strided ones (e.g. ``x.view(B, N, H, D).transpose(1, 2)``) are made
contiguous first (one copy).

What matches torch (checked against torch 2.13):

- shapes: query [..., L, E], key [..., S, E], value [..., S, Ev]; the leading
  dimensions broadcast against each other, the head dimension (-3) too;
- ``attn_mask``: bool (True = may attend) or a float additive bias of the
  query's dtype, broadcastable to [..., L, S];
- ``is_causal``: query i sees key j iff j <= i, **top-left aligned** as in
  torch (``torch.ones(L, S, dtype=torch.bool).tril()``). kexue.attention's own
  ``causal`` is aligned to the end (j <= i + S - L, the decoding convention);
  the two agree when L == S, and then ``causal=True`` goes to the kernel (it
  skips the masked blocks). When L != S the drop-in passes the explicit
  top-left [L, S] bool mask instead (combined with ``attn_mask``; bytes
  L * S). ``is_causal`` together with ``attn_mask`` applies both: torch
  documents an error for that, which its math path raises (e.g. for 3-D or
  broadcast inputs), while its fused CPU kernel (4-D inputs) applies both;
  the drop-in always applies both;
- ``scale`` (default 1/sqrt(E)); ``enable_gqa=True``: key/value may have fewer
  heads than the query, a divisor of them (query head h uses key/value head
  h // (Hq // Hkv), torch's ``repeat_interleave``), read in place without
  copying; without it the head counts must match or broadcast (a key/value
  head count of 1 is also read in place) and anything else raises torch's
  RuntimeError;
- rows that may see no key give output 0 and gradient 0 (no NaN);
- the error types torch raises for mismatched dtypes, shapes and mask dtypes
  (RuntimeError).

Differences:

- ``dropout_p`` other than 0 raises NotImplementedError (kexue's kernel has no
  dropout); float16/bfloat16 raise TypeError; non-CPU tensors raise ValueError;
- a float ``attn_mask`` that requires grad raises NotImplementedError while
  grad mode is on: kexue gives the bias no gradient (``attn_mask.detach()``
  treats it as a constant);
- key and value must have the same length (torch does not always check);
  kexue's own checks apply (e.g. head dimensions of at least 1) and its
  ValueErrors pass through;
- ``torch.compile`` / TorchScript cannot trace into kexue; only first-order
  gradients (no double backward).

Beyond torch, keyword-only, with kexue.attention's semantics (see
:func:`kexue.attention.sdpa`: query positions are aligned to the end there,
i' = i + S - L, also when ``is_causal`` uses torch's top-left rule):
``window`` (local attention, |i' - j| < window), ``segment_ids`` [B, L]
(the UniLM mask; L == S), ``logn`` (log-n scaling, base n0 > 1) and
``alibi_slopes`` [H] (ALiBi). For inputs with more than one batch dimension
``segment_ids`` has shape [*batch, L]; ``alibi_slopes`` always has one entry
per query head.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .. import attention as _att

__all__ = ["scaled_dot_product_attention"]

_OP = "scaled_dot_product_attention"
_FLOATS = (torch.float32, torch.float64)


def _err(msg):
    return f"[kexue.torch.{_OP}] {msg}"


def _np(t):
    """A CPU tensor as a numpy array sharing its memory (one copy only if strided)."""
    return t.detach().contiguous().numpy()


def _check_tensor(name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(_err(f"{name} must be a torch.Tensor; got {type(t).__name__}"))
    if t.device.type != "cpu":
        raise ValueError(_err(
            f"{name} must be a CPU tensor; got device {t.device} (kexue runs on the CPU: "
            "use torch.nn.functional.scaled_dot_product_attention on other devices)"))


def _squeeze_broadcast(t):
    """Size-1 views of dimensions broadcast by stride 0 (``expand``): a mask built
    with ``expand`` reaches kexue at its real size, not materialised."""
    for d in range(t.ndim):
        if t.shape[d] > 1 and t.stride(d) == 0:
            t = t.narrow(d, 0, 1)
    return t


def _flatten_batch(t, bshape, B):
    """t [*b, x, y, z] with len(b) == len(bshape), b broadcastable to bshape ->
    [B or 1, x, y, z]. A batch part that is all ones stays one (no copy)."""
    tail = tuple(t.shape[-3:])
    if all(s == 1 for s in t.shape[:-3]):
        return t.reshape((1,) + tail)
    if tuple(t.shape[:-3]) != bshape:
        t = t.expand(bshape + tail)
    return t.reshape((B,) + tail)


def _pad_to(t, ndim):
    return t.reshape((1,) * (ndim - t.ndim) + tuple(t.shape))


def _float_param(name, x):
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        x = x.item()
    return float(x)


def _aux_array(name, x):
    """segment_ids / alibi_slopes: a CPU tensor or array-like -> numpy."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        if x.device.type != "cpu":
            raise ValueError(_err(f"{name} must be a CPU tensor; got device {x.device}"))
        return _np(x)
    return np.asarray(x)


def _broadcast_lead(shapes):
    """The broadcast of the query's, key's and value's leading dimensions (all of
    the same length, the head dimension last), with torch's error for a mismatch."""
    out = []
    for d in range(len(shapes[0])):
        sizes = [s[d] for s in shapes]
        big = [x for x in sizes if x != 1]
        if any(x != big[0] for x in big):
            hint = ("; pass enable_gqa=True for grouped-query attention"
                    if d == len(shapes[0]) - 1 else "")
            raise RuntimeError(_err(
                f"The size of tensor a ({big[0]}) must match the size of tensor b "
                f"({next(x for x in big if x != big[0])}) at non-singleton dimension {d} "
                f"(leading dimensions of query, key, value: {list(shapes)}){hint}"))
        out.append(big[0] if big else 1)
    return tuple(out)


class _SDPAFunction(torch.autograd.Function):
    """out [B,H,N,Dv] from contiguous q [B,H,N,D], k [B,Hkv,M,D], v [B,Hkv,M,Dv].

    ``kw``: kexue.attention's keyword arguments (causal, mask, segment_ids,
    window, scale, logn, alibi_slopes), numpy arrays and Python scalars.
    """

    @staticmethod
    def forward(ctx, q, k, v, kw):
        ctx.kw = kw
        B, H, N, _ = q.shape
        M, Dv = k.shape[2], v.shape[3]
        ctx.empty = q.numel() == 0 or M == 0
        if ctx.empty:  # nothing to attend to (or nobody asking): zeros, as torch gives
            ctx.save_for_backward(q, k, v)
            return q.new_zeros((B, H, N, Dv))
        qn, kn, vn = _np(q), _np(k), _np(v)
        if any(ctx.needs_input_grad[:3]):
            out, lse = _att.sdpa(qn, kn, vn, return_lse=True, **kw)
            out = torch.from_numpy(out)
            ctx.save_for_backward(q, k, v, out, torch.from_numpy(lse))
            return out
        return torch.from_numpy(_att.sdpa(qn, kn, vn, **kw))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        if ctx.empty:
            q, k, v = ctx.saved_tensors
            return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v), None
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _att.sdpa_backward(_np(q), _np(k), _np(v), _np(out), _np(lse),
                                        _np(grad_out), **ctx.kw)
        return torch.from_numpy(dq), torch.from_numpy(dk), torch.from_numpy(dv), None


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False, *,
                                 window=None, segment_ids=None, logn=None, alibi_slopes=None):
    """torch's ``F.scaled_dot_product_attention`` on kexue.attention (CPU, float32/float64).

    Parameters
    ----------
    query : Tensor [..., L, E]
    key : Tensor [..., S, E]
    value : Tensor [..., S, Ev]
    attn_mask : Tensor, optional -- bool (True = may attend) or an additive
        float bias of the query's dtype, broadcastable to [..., L, S]; gets no
        gradient
    dropout_p : float -- must be 0.0 (NotImplementedError otherwise)
    is_causal : bool -- query i sees key j iff j <= i (torch's top-left
        alignment when L != S)
    scale : float, optional -- default 1/sqrt(E)
    enable_gqa : bool -- key/value may have Hkv heads, a divisor of the
        query's H (grouped-query attention, no copies)
    window, segment_ids, logn, alibi_slopes -- kexue's extras, keyword-only
        (:func:`kexue.attention.sdpa`)

    Returns
    -------
    Tensor [..., L, Ev] in the query's dtype, differentiable w.r.t. query,
    key and value.

    Examples
    --------
    >>> import torch, torch.nn.functional as F, kexue.torch
    >>> g = torch.Generator().manual_seed(0)
    >>> q, k, v = (torch.randn(2, 4, 16, 8, dtype=torch.float64, generator=g) for _ in range(3))
    >>> _ = q.requires_grad_()
    >>> out = kexue.torch.scaled_dot_product_attention(q, k, v, is_causal=True)
    >>> bool(torch.allclose(out, F.scaled_dot_product_attention(q, k, v, is_causal=True)))
    True
    >>> out.sum().backward(); tuple(q.grad.shape)
    (2, 4, 16, 8)
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_tensor(name, t)
        if t.ndim < 2:
            raise RuntimeError(_err(f"{name} must have at least 2 dimensions [..., length, dim]; "
                                    f"got shape {tuple(t.shape)}"))
    if dropout_p != 0.0:
        raise NotImplementedError(_err(
            f"dropout_p={dropout_p!r} is not supported: kexue's attention kernel has no dropout. "
            "Pass dropout_p=0.0 (e.g. dropout_p=self.dropout if self.training else 0.0 only "
            "at eval time), or use torch.nn.functional.scaled_dot_product_attention when "
            "training with attention dropout."))
    if query.dtype not in _FLOATS:
        raise TypeError(_err(f"query must be float32 or float64; got {query.dtype}"))
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise RuntimeError(_err(
            "Expected query, key, and value to have the same dtype, but got "
            f"query.dtype: {query.dtype} key.dtype: {key.dtype} and value.dtype: {value.dtype} "
            "instead."))
    if key.shape[-1] != query.shape[-1]:
        raise RuntimeError(_err(f"query and key must have the same last dimension E; got "
                                f"{query.shape[-1]} and {key.shape[-1]}"))
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(_err(f"key and value must have the same length S (dimension -2); got "
                                f"{key.shape[-2]} and {value.shape[-2]}"))

    L, S, Ev = query.shape[-2], key.shape[-2], value.shape[-1]

    # -- heads and batch dimensions (torch's broadcasting; GQA on dimension -3)
    ndim = max(query.ndim, key.ndim, value.ndim, 3)
    q, k, v = (_pad_to(t, ndim) for t in (query, key, value))
    Hq, Hk, Hv = q.shape[-3], k.shape[-3], v.shape[-3]
    gqa = enable_gqa and (Hk != Hq or Hv != Hq)
    if gqa and (Hk == 0 or Hv == 0 or Hq % Hk or Hq % Hv):
        raise RuntimeError(_err(
            "Number of heads in key and value must divide the number of heads in query; got "
            f"query {Hq}, key {Hk}, value {Hv} heads"))
    hk_b = Hq if gqa else Hk
    hv_b = Hq if gqa else Hv
    lead = _broadcast_lead(
        (tuple(q.shape[:-2]), tuple(k.shape[:-3]) + (hk_b,), tuple(v.shape[:-3]) + (hv_b,)))
    bshape, H = tuple(lead[:-1]), lead[-1]
    B = math.prod(bshape)
    out_shape = tuple(lead)[len(lead) - (max(query.ndim, key.ndim, value.ndim) - 2):] + (L, Ev)

    if Hk != Hv and (Hk != H or Hv != H):  # kexue needs one kv head count: give both H
        k = k.repeat_interleave(H // Hk, dim=-3) if Hk not in (1, H) else k
        v = v.repeat_interleave(H // Hv, dim=-3) if Hv not in (1, H) else v
        k = k.expand(k.shape[:-3] + (H,) + k.shape[-2:])
        v = v.expand(v.shape[:-3] + (H,) + v.shape[-2:])
    if q.shape[-3] != H:
        q = q.expand(q.shape[:-3] + (H,) + q.shape[-2:])
    q4 = _flatten_batch(q, bshape, B)
    k4 = _flatten_batch(k, bshape, B)
    v4 = _flatten_batch(v, bshape, B)
    # kexue's batch must match: expand a batch of one (a copy, as torch's math path does)
    if q4.shape[0] != B:
        q4 = q4.expand((B,) + tuple(q4.shape[1:]))
    if k4.shape[0] != B:
        k4 = k4.expand((B,) + tuple(k4.shape[1:]))
    if v4.shape[0] != B:
        v4 = v4.expand((B,) + tuple(v4.shape[1:]))

    # -- the mask (bool or float) and is_causal
    mask = None
    if attn_mask is not None:
        _check_tensor("attn_mask", attn_mask)
        if attn_mask.dtype != torch.bool and attn_mask.dtype != query.dtype:
            raise RuntimeError(_err(
                "Expected attn_mask dtype to be bool or float or to match query dtype, but got "
                f"attn_mask.dtype: {attn_mask.dtype} and query.dtype: {query.dtype} instead."))
        if attn_mask.dtype != torch.bool and attn_mask.requires_grad and torch.is_grad_enabled():
            raise NotImplementedError(_err(
                "a float attn_mask that requires grad is not supported: kexue gives the additive "
                "bias no gradient. Pass attn_mask.detach() to treat it as a constant, or use "
                "torch.nn.functional.scaled_dot_product_attention to train the bias."))
        full = bshape + (H, L, S)
        m = attn_mask.detach()
        try:
            ok = torch.broadcast_shapes(tuple(m.shape), full) == full
        except RuntimeError:
            ok = False
        if not ok or m.ndim > len(full):
            raise RuntimeError(_err(f"attn_mask of shape {tuple(attn_mask.shape)} does not "
                                    f"broadcast to {full} [..., L, S]"))
        mask = _squeeze_broadcast(_pad_to(m, len(full)))
    causal = False
    if is_causal:
        if L == S:
            causal = True  # kexue's end-aligned causal equals torch's here
        else:  # torch's top-left rule as an explicit mask
            tril = torch.ones(L, S, dtype=torch.bool).tril()
            if mask is None:
                mask = tril
            elif mask.dtype == torch.bool:
                mask = mask & tril
            else:
                mask = mask.masked_fill(~tril, float("-inf"))
            mask = _pad_to(mask, len(bshape) + 3)
    if mask is not None:
        mask = _np(_flatten_batch(mask, bshape, B))

    kw = dict(causal=causal, mask=mask, scale=_float_param("scale", scale),
              window=window.item() if isinstance(window, torch.Tensor) else window,
              logn=_float_param("logn", logn))
    if segment_ids is not None:
        sid = _aux_array("segment_ids", segment_ids)
        if sid.shape == bshape + (L,):
            sid = sid.reshape(B, L)
        kw["segment_ids"] = sid
    if alibi_slopes is not None:
        kw["alibi_slopes"] = _aux_array("alibi_slopes", alibi_slopes).astype(np.float64)

    out = _SDPAFunction.apply(q4.contiguous(), k4.contiguous(), v4.contiguous(), kw)
    return out.reshape(out_shape)
