"""Multi-label (ZLPR) losses and GlobalPointer for NER in PyTorch, on kexue's kernels.

- :func:`multilabel_crossentropy` / :func:`sparse_multilabel_crossentropy`:
  :mod:`kexue.losses` behind ``torch.autograd.Function``\\ s. The forward asks
  kexue for the loss *and* d loss.sum() / d logits in one fused pass and saves
  the gradient; the backward only scales it by ``grad_output``.
- :class:`GlobalPointer`: an ``nn.Module`` (bert4keras' ``GlobalPointer`` and
  ``EfficientGlobalPointer`` layers) producing span scores [B, heads, T, T]
  through :func:`kexue.global_pointer.scores` / ``scores_backward`` (or the
  efficient pair), :func:`global_pointer_loss` (also ``GlobalPointer.loss``)
  over :func:`kexue.global_pointer.loss`, and ``GlobalPointer.decode``.

Tensors must be on the CPU, float32 or float64; they are handed to kexue as
numpy views (``t.detach().numpy()``, no copy when contiguous) and the results
come back with ``torch.from_numpy``. Masked span cells are -inf in the scores,
excluded from every loss, and get gradient 0.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .. import global_pointer as _gp
from .. import losses as _losses

__all__ = [
    "GlobalPointer",
    "global_pointer_loss",
    "multilabel_crossentropy",
    "sparse_multilabel_crossentropy",
]

_FLOATS = (torch.float32, torch.float64)
_REDUCTIONS = ("none", "sum", "mean")


# ----------------------------------------------------------------------------
# argument helpers


def _cpu(op, name, t):
    if t.device.type != "cpu":
        raise ValueError(f"[kexue.torch.{op}] {name} must be a CPU tensor; got device {t.device}")
    return t


def _float_tensor(op, name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"[kexue.torch.{op}] {name} must be a torch.Tensor; got {type(t).__name__}")
    _cpu(op, name, t)
    if t.dtype not in _FLOATS:
        raise TypeError(f"[kexue.torch.{op}] {name} must be float32 or float64; got {t.dtype}")
    return t


def _np(t):
    """A CPU tensor as a numpy array sharing its memory (one copy only if strided)."""
    return t.detach().contiguous().numpy()


def _aux(op, name, x):
    """A non-differentiable input (targets, mask, indices, spans): tensor or array-like -> numpy."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return _np(_cpu(op, name, x))
    return np.asarray(x)


def _reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"[kexue.torch.{op}] reduction must be one of {_REDUCTIONS}; "
                         f"got {reduction!r}")
    return reduction


def _reduce(loss, reduction):
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


def _mask_bt(op, mask, B, T):
    """mask [B,T] -> bool numpy (nonzero = real token), or None."""
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor):
        _cpu(op, "mask", mask)
        m = mask if mask.dtype == torch.bool else mask != 0
        m = _np(m)
    else:
        m = np.asarray(mask)
        m = m if m.dtype == np.bool_ else m != 0
    if m.shape != (B, T):
        raise ValueError(f"[kexue.torch.{op}] mask must have shape {(B, T)} [B,T]; "
                         f"got {tuple(m.shape)}")
    return np.ascontiguousarray(m)


# ----------------------------------------------------------------------------
# ZLPR losses


class _RowLossFunction(torch.autograd.Function):
    """loss [...] from logits [..., C] by a kexue call returning (loss, d loss.sum()/d logits)."""

    @staticmethod
    def forward(ctx, logits, call):
        s = _np(logits)
        if ctx.needs_input_grad[0]:
            loss, grad = call(s, True)
            ctx.save_for_backward(torch.from_numpy(grad))
        else:
            loss = call(s, False)
        return torch.from_numpy(np.asarray(loss))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output.unsqueeze(-1) * grad, None


def multilabel_crossentropy(logits, targets, *, mask=None, reduction="none"):
    """ZLPR multi-label loss per row (:func:`kexue.losses.multilabel_crossentropy`).

    loss = log(1 + sum_{negatives} e^{s_i}) + log(1 + sum_{positives} e^{-s_j});
    class i is predicted iff s_i > 0.

    Parameters
    ----------
    logits : Tensor [..., C], float32 or float64, CPU -- raw scores (no sigmoid)
    targets : Tensor or array [..., C] -- bool, 0/1 integers, or 0/1 floats
        (floats are cast to the logits' dtype)
    mask : bool Tensor or array, optional -- broadcastable to [..., C]; False
        excludes a class (as does a -inf logit): it is in neither sum and its
        gradient is 0
    reduction : "none" | "sum" | "mean" -- over the rows

    Returns
    -------
    Tensor: loss [...] ("none") or a scalar, differentiable wrt ``logits``.

    Examples
    --------
    >>> import torch, kexue.torch
    >>> s = torch.tensor([[2.0, -1.0, 0.5, -3.0]], dtype=torch.float64, requires_grad=True)
    >>> loss = kexue.torch.multilabel_crossentropy(s, torch.tensor([[1, 0, 1, 0]]))
    >>> loss.detach().numpy().round(6)
    array([0.903969])
    >>> loss.sum().backward(); s.grad.numpy().round(6)
    array([[-0.077696,  0.259496, -0.348207,  0.035119]])
    """
    op = "multilabel_crossentropy"
    _float_tensor(op, "logits", logits)
    reduction = _reduction(op, reduction)
    t = _aux(op, "targets", targets)
    if t.dtype.kind == "f":
        t = t.astype(np.float32 if logits.dtype == torch.float32 else np.float64, copy=False)
    m = None
    if mask is not None:
        m = _aux(op, "mask", mask)
        if m.dtype != np.bool_:
            raise TypeError(f"[kexue.torch.{op}] mask must have dtype bool; got {m.dtype}")
        try:
            m = np.ascontiguousarray(np.broadcast_to(m, tuple(logits.shape)))
        except ValueError:
            raise ValueError(f"[kexue.torch.{op}] mask must broadcast to the logits' shape "
                             f"{tuple(logits.shape)}; got {m.shape}") from None

    def call(s, grad):
        return _losses.multilabel_crossentropy(s, t, mask=m, return_grad=grad)

    return _reduce(_RowLossFunction.apply(logits, call), reduction)


def sparse_multilabel_crossentropy(logits, positive_index, *, mask_zero=False, reduction="none"):
    """ZLPR loss with the positives as class indices (GPLinker's form).

    The autograd front of :func:`kexue.losses.sparse_multilabel_crossentropy`.

    Parameters
    ----------
    logits : Tensor [..., C], float32 or float64, CPU
    positive_index : int Tensor or array [..., P] -- positive classes per row,
        padded with -1; duplicates count once
    mask_zero : bool -- index 0 is padding too and class 0 is excluded (bert4keras)
    reduction : "none" | "sum" | "mean"

    Equals :func:`multilabel_crossentropy` on the one-hot targets; the
    gradient is dense [..., C] (computed in the same pass as the loss).

    Examples
    --------
    >>> import torch, kexue.torch
    >>> s = torch.tensor([2.0, -1.0, 0.5, -3.0], dtype=torch.float64)
    >>> float(kexue.torch.sparse_multilabel_crossentropy(s, torch.tensor([0, 2])).round(decimals=6))
    0.903969
    """
    op = "sparse_multilabel_crossentropy"
    _float_tensor(op, "logits", logits)
    reduction = _reduction(op, reduction)
    idx = _aux(op, "positive_index", positive_index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"[kexue.torch.{op}] positive_index must be an integer tensor; "
                        f"got {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)

    def call(s, grad):
        return _losses.sparse_multilabel_crossentropy(s, idx, mask_zero=bool(mask_zero),
                                                      return_grad=grad)

    return _reduce(_RowLossFunction.apply(logits, call), reduction)


# ----------------------------------------------------------------------------
# GlobalPointer


class _GPScoresFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, kw):
        qn, kn = _np(q), _np(k)
        ctx.kw = kw
        ctx.save_for_backward(q, k)
        return torch.from_numpy(_gp.scores(qn, kn, **kw))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        q, k = ctx.saved_tensors
        dq, dk = _gp.scores_backward(_np(q), _np(k), _np(grad_output), **ctx.kw)
        return torch.from_numpy(dq), torch.from_numpy(dk), None


class _EGPScoresFunction(torch.autograd.Function):
    """Efficient GP scores from h [B,T,2d] and the q_dense Linear's weight [2E,2d] / bias [2E]."""

    @staticmethod
    def forward(ctx, h, weight, bias, kw):
        W = _np(weight).T  # [2d, 2E]; kexue makes it C-contiguous (one small copy)
        b = None if bias is None else _np(bias)
        ctx.kw = kw
        ctx.has_bias = bias is not None
        ctx.save_for_backward(h, weight, bias if bias is not None else torch.empty(0))
        return torch.from_numpy(_gp.efficient_scores(_np(h), W, b, **kw))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        h, weight, bias = ctx.saved_tensors
        b = _np(bias) if ctx.has_bias else None
        dh, dW, db = _gp.efficient_scores_backward(_np(h), _np(weight).T, _np(grad_output), b,
                                                   **ctx.kw)
        return (torch.from_numpy(dh), torch.from_numpy(np.ascontiguousarray(dW.T)),
                torch.from_numpy(db) if ctx.has_bias else None, None)


class _GPLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, spans):
        s = _np(scores)
        if ctx.needs_input_grad[0]:
            loss, grad = _gp.loss(s, spans, return_grad=True)
            ctx.save_for_backward(torch.from_numpy(grad))
        else:
            loss = _gp.loss(s, spans)
        return torch.from_numpy(loss)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        (grad,) = ctx.saved_tensors
        return grad_output[..., None, None] * grad, None


def global_pointer_loss(scores, spans, *, reduction="mean"):
    """Sparse ZLPR loss of GlobalPointer span scores (:func:`kexue.global_pointer.loss`).

    Parameters
    ----------
    scores : Tensor [B,E,T,T], float32 or float64, CPU -- e.g. a
        :class:`GlobalPointer`'s output; -inf cells are excluded
    spans : int Tensor or array [n,4] -- gold rows (batch, type, start, end)
    reduction : "none" ([B,E]) | "sum" | "mean" -- "mean" over (batch, type)
        is bert4keras' ``global_pointer_crossentropy``

    Examples
    --------
    >>> import torch, kexue.torch
    >>> s = torch.full((1, 1, 2, 2), -2.0, dtype=torch.float64); s[0, 0, 0, 1] = 3.0
    >>> float(kexue.torch.global_pointer_loss(s, torch.tensor([[0, 0, 0, 1]])).round(decimals=6))
    0.38934
    """
    op = "global_pointer_loss"
    _float_tensor(op, "scores", scores)
    reduction = _reduction(op, reduction)
    sp = _aux(op, "spans", spans)
    return _reduce(_GPLossFunction.apply(scores, sp), reduction)


class GlobalPointer(nn.Module):
    """GlobalPointer span scorer (kexue.fm/archives/8373, 8877) as an ``nn.Module``.

    For each entity type e and span i..j: s[b,e,i,j] = (R_i q_i) . (R_j k_j) / sqrt(D),
    -inf where i or j is padding or (``tril_mask``) j < i.

    Parameters
    ----------
    hidden_size : int -- H, the encoder's width
    heads : int -- E, the number of entity types
    head_size : int -- D (even when ``rope``)
    rope : bool -- RoPE in bert4keras' adjacent-pair layout
    tril_mask : bool -- -inf below the diagonal
    efficient : bool -- Efficient GlobalPointer: ``p_dense`` Linear(H, 2D) gives a
        shared q = h[..., 0::2], k = h[..., 1::2]; ``q_dense`` Linear(2D, 2E) adds
        per-type start/end biases (c[i, 2e+1] + c[j, 2e]) / 2. Otherwise ``dense``
        Linear(H, E*2D) whose output viewed [B,T,E,2D] splits into q = [..., :D],
        k = [..., D:] -- bert4keras' layouts, so its weights load directly.
    bias : bool -- biases in the Linear layers
    rope_base : float -- RoPE frequencies rope_base^(-2r/D)

    Shapes: forward(hidden [B,T,H], mask [B,T] bool or 0/1) -> scores [B,E,T,T].

    Examples
    --------
    >>> import torch, kexue.torch
    >>> _ = torch.manual_seed(0)
    >>> gp = kexue.torch.GlobalPointer(8, heads=2, head_size=4)
    >>> x = torch.randn(1, 3, 8); mask = torch.tensor([[True, True, False]])
    >>> s = gp(x, mask)
    >>> tuple(s.shape), bool(torch.isinf(s[0, :, 2]).all())
    ((1, 2, 3, 3), True)
    >>> gp.loss(s, torch.tensor([[0, 1, 0, 1]])).backward()
    >>> gp.decode(s).shape[1]
    4
    """

    def __init__(self, hidden_size, heads, head_size, *, rope=True, tril_mask=True,
                 efficient=False, bias=True, rope_base=10000.0):
        super().__init__()
        for name, v in (("hidden_size", hidden_size), ("heads", heads), ("head_size", head_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"[kexue.torch.GlobalPointer] {name} must be a positive int; "
                                 f"got {v!r}")
        if rope and head_size % 2:
            raise ValueError(f"[kexue.torch.GlobalPointer] head_size must be even with rope=True; "
                             f"got {head_size}")
        self.hidden_size, self.heads, self.head_size = hidden_size, heads, head_size
        self.rope, self.tril_mask, self.efficient = bool(rope), bool(tril_mask), bool(efficient)
        self.rope_base = float(rope_base)
        if self.efficient:
            self.p_dense = nn.Linear(hidden_size, 2 * head_size, bias=bias)
            self.q_dense = nn.Linear(2 * head_size, 2 * heads, bias=bias)
        else:
            self.dense = nn.Linear(hidden_size, heads * 2 * head_size, bias=bias)

    def extra_repr(self):
        return (f"hidden_size={self.hidden_size}, heads={self.heads}, "
                f"head_size={self.head_size}, rope={self.rope}, tril_mask={self.tril_mask}, "
                f"efficient={self.efficient}")

    def forward(self, hidden, mask=None):
        op = "GlobalPointer"
        _float_tensor(op, "hidden", hidden)
        if hidden.ndim != 3 or hidden.shape[-1] != self.hidden_size:
            raise ValueError(f"[kexue.torch.{op}] hidden must be [B,T,{self.hidden_size}]; "
                             f"got shape {tuple(hidden.shape)}")
        B, T, _ = hidden.shape
        kw = dict(mask=_mask_bt(op, mask, B, T), rope=self.rope, rope_base=self.rope_base,
                  tril_mask=self.tril_mask)
        if self.efficient:
            h = self.p_dense(hidden)
            return _EGPScoresFunction.apply(h, self.q_dense.weight, self.q_dense.bias, kw)
        x = self.dense(hidden).view(B, T, self.heads, 2 * self.head_size)
        D = self.head_size
        return _GPScoresFunction.apply(x[..., :D].contiguous(), x[..., D:].contiguous(), kw)

    @staticmethod
    def loss(scores, spans, *, reduction="mean"):
        """:func:`global_pointer_loss` (sparse ZLPR over each (batch, type)'s T*T cells)."""
        return global_pointer_loss(scores, spans, reduction=reduction)

    @staticmethod
    def decode(scores, *, threshold=0.0, mask=None, flat=False):
        """Spans above ``threshold`` as an int64 Tensor [n,4] (batch, type, start, end), sorted.

        :func:`kexue.global_pointer.decode`; ``flat=True`` removes overlaps
        greedily by score (flat NER).
        """
        op = "GlobalPointer.decode"
        _float_tensor(op, "scores", scores)
        m = None
        if mask is not None:
            m = _mask_bt(op, mask, scores.shape[0], scores.shape[-1])
        return torch.from_numpy(_gp.decode(_np(scores), threshold=threshold, mask=m, flat=flat))
