"""CRF and MEMM layers for PyTorch, computed by :mod:`kexue.crf` / :mod:`kexue.memm`.

:class:`CRF` is a drop-in for pytorch-crf's ``torchcrf.CRF``: the same
constructor, parameter names (so ``state_dict``\\ s load either way), the same
initialisation (consuming torch's RNG in the same order), ``forward`` returning
the log-likelihood with the same reductions, ``decode`` returning lists of tag
lists, and the same ``ValueError`` messages for bad arguments. The work runs in
kexue's compiled forward-backward (one pass gives the loss and every gradient)
through a ``torch.autograd.Function``; CPU float32/float64 tensors are handed
to kexue as numpy views, without copies where their layout allows.

Differences from pytorch-crf (both documented on the classes):

* any mask is accepted, including a masked first step ([CLS]); masked steps
  are removed and the valid steps on either side joined by one transition
  (pytorch-crf raises ``mask of the first timestep must all be on``);
* TorchScript cannot compile these modules (they call into kexue), and the
  gradient is once-differentiable (no double backward).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .. import crf as _kcrf
from .. import memm as _kmemm

__all__ = ["CRF", "MEMM"]

_REDUCTIONS = ("none", "sum", "mean", "token_mean")
_FLOATS = (torch.float32, torch.float64)


# ----------------------------------------------------------------------------
# tensors <-> numpy


def _np(t):
    """A CPU tensor as a numpy array sharing its memory (copied only if strided)."""
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    return t.numpy()


def _check_cpu(op, name, t):
    if t.device.type != "cpu":
        raise ValueError(f"[kexue.torch.{op}] {name} must be a CPU tensor; got device {t.device}")


def _dtype(op, emissions, params):
    """The dtype the computation runs in: torch's promotion of emissions and parameters."""
    dt = emissions.dtype
    for p in params:
        dt = torch.promote_types(dt, p.dtype)
    if dt not in _FLOATS:
        raise TypeError(
            f"[kexue.torch.{op}] emissions and parameters must be float32 or float64; "
            f"got {emissions.dtype} emissions with {params[0].dtype} parameters"
        )
    return dt


def _allowed_np(allowed):
    """``allowed`` (a [K,K] bool matrix or the (allowed, start, end) triple) as numpy."""
    if allowed is None:
        return None

    def one(a):
        if a is None:
            return None
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        return np.ascontiguousarray(a, dtype=bool)

    if isinstance(allowed, (tuple, list)):
        return tuple(one(a) for a in allowed)
    return one(allowed)


# ----------------------------------------------------------------------------
# the autograd Function


class _NegNLL(torch.autograd.Function):
    """log-likelihood [B] of a kexue sequence model, with kexue's analytic gradients.

    ``run(em, params, rows)`` takes batch-first numpy emissions [B,T,K], the
    parameters as numpy arrays and an optional row selection, and returns
    ``(loss[B], d_emissions[B,T,K], d_params)`` with ``loss = -log p`` and the
    gradients of ``loss.sum()`` (kexue's ``nll_grad``). Forward calls it once
    and keeps the gradients; backward scales them by ``-grad_output``: per row
    for the emissions; for the parameters (whose kexue gradients are summed
    over the batch) directly when ``grad_output`` is the same for every row --
    the case of the "sum", "mean" and "token_mean" reductions -- and otherwise
    by re-running kexue once per distinct ``grad_output`` value on its rows.
    """

    @staticmethod
    def forward(ctx, run, emissions, *params):
        em = _np(emissions)
        ps = [_np(p) for p in params]
        loss, d_em, d_ps = run(em, ps, None)
        ctx.run = run
        ctx.d_em = torch.from_numpy(d_em)
        ctx.d_ps = [torch.from_numpy(d) for d in d_ps]
        ctx.save_for_backward(emissions, *params)
        return torch.from_numpy(0.0 - loss)  # -loss, but +0.0 (not -0.0) for empty rows

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        saved = ctx.saved_tensors  # also checks that no input was modified in place
        neg = -grad
        grad_em = None
        if ctx.needs_input_grad[1]:
            grad_em = ctx.d_em * neg.view(-1, 1, 1)
        need = ctx.needs_input_grad[2:]
        grads = [None] * len(need)
        if any(need):
            B = neg.shape[0]
            if B == 0 or neg.stride(0) == 0 or bool((neg == neg[0]).all()):
                s = neg[0] if B else neg.new_zeros(())
                grads = [d * s if n else None for d, n in zip(ctx.d_ps, need)]
            else:  # rows weighted differently (reduction="none" + a weighted sum)
                em = _np(saved[0])
                ps = [_np(p) for p in saved[1:]]
                w = neg.detach().contiguous().numpy()
                acc = [np.zeros_like(p) for p in ps]
                for v in np.unique(w):
                    rows = np.flatnonzero(np.isnan(w) if np.isnan(v) else w == v)
                    if v == 0 or rows.size == 0:
                        continue
                    _, _, d_ps = ctx.run(em, ps, rows)
                    for a, d in zip(acc, d_ps):
                        a += v * d
                grads = [torch.from_numpy(a) if n else None for a, n in zip(acc, need)]
        return (None, grad_em, *grads)


# ----------------------------------------------------------------------------
# shared argument handling


class _SeqModule(nn.Module):
    """What CRF and MEMM share: pytorch-crf's validation, layouts and reductions."""

    _op = "CRF"

    def _params(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _validate(self, emissions, tags=None, mask=None):
        # pytorch-crf's checks and messages, in its order -- but any mask pattern is fine
        if emissions.dim() != 3:
            raise ValueError(f"emissions must have dimension of 3, got {emissions.dim()}")
        if emissions.size(2) != self.num_tags:
            raise ValueError(
                f"expected last dimension of emissions is {self.num_tags}, "
                f"got {emissions.size(2)}"
            )
        if tags is not None and emissions.shape[:2] != tags.shape:
            raise ValueError(
                "the first two dimensions of emissions and tags must match, "
                f"got {tuple(emissions.shape[:2])} and {tuple(tags.shape)}"
            )
        if mask is not None and emissions.shape[:2] != mask.shape:
            raise ValueError(
                "the first two dimensions of emissions and mask must match, "
                f"got {tuple(emissions.shape[:2])} and {tuple(mask.shape)}"
            )
        _check_cpu(self._op, "emissions", emissions)
        if tags is not None:
            _check_cpu(self._op, "tags", tags)
            if tags.dtype.is_floating_point or tags.dtype.is_complex or tags.dtype == torch.bool:
                raise TypeError(
                    f"[kexue.torch.{self._op}] tags must be an integer tensor; got {tags.dtype}"
                )
        if mask is not None:
            _check_cpu(self._op, "mask", mask)

    def _batch_first(self, x):
        """[T,B,...] -> [B,T,...] unless batch_first (a view; autograd maps it back)."""
        return x if self.batch_first else x.transpose(0, 1)

    def _prepare(self, emissions, tags=None, mask=None):
        """(emissions [B,T,K] in the compute dtype, params, tags_np, mask_np, dtype)."""
        params = self._params()
        dt = _dtype(self._op, emissions, params)
        em = self._batch_first(emissions).to(dt)
        params = [p.to(dt) for p in params]
        tags_np = None
        if tags is not None:
            t = self._batch_first(tags)
            if t.dtype not in (torch.int32, torch.int64):
                t = t.long()
            tags_np = _np(t)
        mask_np = None
        if mask is not None:
            mask_np = _np(self._batch_first(mask).to(torch.bool))
        return em, params, tags_np, mask_np, dt

    @staticmethod
    def _reduce(llh, reduction, mask, shape):
        if reduction == "none":
            return llh
        if reduction == "sum":
            return llh.sum()
        if reduction == "mean":
            return llh.mean()
        count = shape[0] * shape[1] if mask is None else int(mask.to(torch.bool).sum())
        return llh.sum() / count

    @staticmethod
    def _paths_to_lists(paths, mask_np):
        """kexue paths [B,T] (-1 at masked steps) -> per row, the tags of its valid steps."""
        if mask_np is None:
            return paths.tolist()
        return [row[m].tolist() for row, m in zip(paths, mask_np)]

    def _decode_lists(self, paths, scores, mask_np, nbest):
        if nbest is None:
            return self._paths_to_lists(paths, mask_np)
        out = []
        for b in range(paths.shape[0]):
            ok = scores[b] != -np.inf  # fewer than k allowed paths: drop the missing ones
            m = None if mask_np is None else mask_np[b : b + 1].repeat(int(ok.sum()), 0)
            out.append(self._paths_to_lists(paths[b][ok], m))
        return out

    def _allowed(self, allowed):
        return self.allowed if allowed is None else _allowed_np(allowed)

    @staticmethod
    def _check_nbest(op, nbest):
        if nbest is None:
            return None
        if isinstance(nbest, bool) or not isinstance(nbest, (int, np.integer)):
            raise TypeError(f"[kexue.torch.{op}] nbest must be an int; got {type(nbest).__name__}")
        if nbest < 1:
            raise ValueError(f"[kexue.torch.{op}] nbest must be >= 1; got {nbest}")
        return int(nbest)


# ----------------------------------------------------------------------------
# CRF


class CRF(_SeqModule):
    """Linear-chain conditional random field: pytorch-crf's ``CRF``, computed by :mod:`kexue.crf`.

    Parameters
    ----------
    num_tags : int
        Number of tags K (>= 1).
    batch_first : bool, default False
        Whether emissions, tags and masks are [B,T,...] (True) or [T,B,...] (False).
    allowed : optional
        Transition constraints, a bool [K,K] matrix or the triple
        ``(allowed[K,K], allowed_start[K], allowed_end[K])`` from
        :func:`kexue.crf.allowed_transitions`; forbidden moves score -inf in
        training (log Z sums over allowed paths only; a gold path that breaks
        them has log-likelihood -inf) and decoding. ``forward``, ``decode`` and
        ``marginals`` take an ``allowed=`` that overrides it for one call.
        (Beyond pytorch-crf.)

    Attributes
    ----------
    start_transitions : nn.Parameter [K]
    end_transitions : nn.Parameter [K]
    transitions : nn.Parameter [K,K] -- ``transitions[i, j]`` scores tag i followed by tag j

    All start as uniform(-0.1, 0.1) draws (:meth:`reset_parameters`), drawn in
    pytorch-crf's order, so the same seed gives the same initial parameters.

    Notes
    -----
    Differences from pytorch-crf:

    * **Any mask is accepted.** pytorch-crf requires the first step of every
      sequence to be on (``ValueError: mask of the first timestep must all be
      on``) and reads masks as prefixes. Here masked steps are removed and the
      valid steps on either side are joined by one transition, so a masked
      first token ([CLS]) or a hole just works. With prefix masks whose first
      step is on -- everything pytorch-crf accepts -- the results are the same.
      A sequence with no valid step has log-likelihood 0 and decodes to ``[]``.
    * **TorchScript cannot compile it** (``torch.jit.script`` fails: the
      computation calls into kexue, outside TorchScript); tracing is not
      supported either. The gradient is once-differentiable (no double backward).
    * Tensors must be on the CPU (else ValueError naming the argument) and the
      computation dtype -- torch's promotion of the emissions' and the
      parameters' dtypes -- float32 or float64 (else TypeError).
    * Beyond pytorch-crf: ``decode(..., nbest=k)``, :meth:`marginals` and
      ``allowed`` constraints.

    Examples
    --------
    >>> import torch, kexue.torch
    >>> _ = torch.manual_seed(0)
    >>> crf = kexue.torch.CRF(3, batch_first=True)
    >>> crf
    CRF(num_tags=3)
    >>> emissions = torch.randn(2, 4, 3)
    >>> tags = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
    >>> mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    >>> llh = crf(emissions, tags, mask=mask)          # log-likelihood, summed
    >>> llh.shape, bool(llh < 0)
    (torch.Size([]), True)
    >>> (-llh).backward()
    >>> crf.transitions.grad.shape
    torch.Size([3, 3])
    >>> [len(p) for p in crf.decode(emissions, mask=mask)]
    [4, 3]
    >>> [len(ps) for ps in crf.decode(emissions, mask=mask, nbest=2)]
    [2, 2]
    >>> crf.marginals(emissions, mask=mask).sum(-1).round().tolist()
    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]]
    """

    _op = "CRF"

    def __init__(self, num_tags: int, batch_first: bool = False, *, allowed=None) -> None:
        if num_tags <= 0:
            raise ValueError(f"invalid number of tags: {num_tags}")
        super().__init__()
        self.num_tags = num_tags
        self.batch_first = batch_first
        self.allowed = _allowed_np(allowed)
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every parameter from uniform(-0.1, 0.1) (pytorch-crf's order)."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_tags={self.num_tags})"

    def _params(self):
        return [self.transitions, self.start_transitions, self.end_transitions]

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor,
                mask: Optional[torch.Tensor] = None, reduction: str = "sum", *,
                allowed=None) -> torch.Tensor:
        """The conditional log-likelihood of ``tags`` given ``emissions``.

        Parameters
        ----------
        emissions : Tensor [T,B,K] ([B,T,K] if batch_first), float32 or float64
        tags : integer Tensor [T,B] ([B,T]), in [0, K) on valid steps
        mask : bool/uint8 Tensor [T,B] ([B,T]), optional -- any pattern
        reduction : "none" | "sum" | "mean" | "token_mean"
            "none": [B]; "sum"/"mean": over the batch; "token_mean": the sum
            divided by the number of valid steps.
        allowed : optional, overrides the module's constraints for this call

        Returns
        -------
        Tensor [B] for "none", else a scalar; differentiable w.r.t. the
        emissions and every parameter. Maximise it (minimise its negative).

        Examples
        --------
        >>> import torch, kexue.torch
        >>> crf = kexue.torch.CRF(2)
        >>> crf(torch.zeros(3, 1, 2), torch.zeros(3, 1, dtype=torch.long), reduction="none").shape
        torch.Size([1])
        """
        self._validate(emissions, tags=tags, mask=mask)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"invalid reduction: {reduction}")
        em, params, tags_np, mask_np, _ = self._prepare(emissions, tags, mask)
        al = self._allowed(allowed)

        def run(e, ps, rows):
            t, m = tags_np, mask_np
            if rows is not None:
                e, t, m = e[rows], t[rows], (None if m is None else m[rows])
            tr, st, en = ps
            r = _kcrf.nll_grad(e, t, tr, mask=m, start=st, end=en, allowed=al)
            return r.loss, r.d_emissions, (r.d_transitions, r.d_start, r.d_end)

        llh = _NegNLL.apply(run, em, *params)
        return self._reduce(llh, reduction, mask, em.shape)

    def _numpy_params(self, emissions):
        dt = _dtype(self._op, emissions, self._params())
        em = _np(self._batch_first(emissions).to(dt))
        tr, st, en = (_np(p.to(dt)) for p in self._params())
        return em, tr, st, en, dt

    def decode(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
               nbest: Optional[int] = None, allowed=None):
        """The best tag sequence of each sequence (Viterbi), or its ``nbest`` best.

        Parameters
        ----------
        emissions : Tensor [T,B,K] ([B,T,K] if batch_first)
        mask : Tensor [T,B] ([B,T]), optional -- any pattern
        nbest : int, optional (beyond pytorch-crf)
        allowed : optional, overrides the module's constraints for this call

        Returns
        -------
        ``nbest=None``: ``List[List[int]]``, per sequence the tags of its valid
        steps (pytorch-crf's result). ``nbest=k``: ``List[List[List[int]]]``,
        per sequence its k best paths, best first (fewer when fewer than k
        paths are allowed).

        Examples
        --------
        >>> import torch, kexue.torch
        >>> crf = kexue.torch.CRF(2, batch_first=True)
        >>> crf.decode(torch.tensor([[[5.0, 0.0], [0.0, 5.0]]]))
        [[0, 1]]
        >>> crf.decode(torch.tensor([[[5.0, 0.0], [0.0, 5.0]]]), nbest=2)[0][0]
        [0, 1]
        """
        self._validate(emissions, mask=mask)
        nbest = self._check_nbest(self._op, nbest)
        em, tr, st, en, _ = self._numpy_params(emissions)
        mask_np = None if mask is None else _np(self._batch_first(mask).to(torch.bool))
        kw = dict(mask=mask_np, start=st, end=en, allowed=self._allowed(allowed))
        if nbest is None:
            paths, scores = _kcrf.viterbi(em, tr, **kw)
        else:
            paths, scores = _kcrf.nbest(em, tr, nbest, **kw)
        return self._decode_lists(paths, scores, mask_np, nbest)

    def marginals(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
                  allowed=None) -> torch.Tensor:
        """Posterior tag probabilities p(y_t = k | x), in the emissions' layout [..., K].

        Each valid step sums to 1; masked steps are 0. Not differentiable
        (computed without autograd). Beyond pytorch-crf.

        Examples
        --------
        >>> import torch, kexue.torch
        >>> crf = kexue.torch.CRF(2)
        >>> crf.marginals(torch.zeros(3, 2, 2)).shape
        torch.Size([3, 2, 2])
        """
        self._validate(emissions, mask=mask)
        em, tr, st, en, _ = self._numpy_params(emissions)
        mask_np = None if mask is None else _np(self._batch_first(mask).to(torch.bool))
        m = _kcrf.marginals(em, tr, mask=mask_np, start=st, end=en,
                            allowed=self._allowed(allowed))
        return self._batch_first(torch.from_numpy(m))


# ----------------------------------------------------------------------------
# MEMM


class MEMM(_SeqModule):
    """Maximum-entropy Markov model layer (Su's formulation), computed by :mod:`kexue.memm`.

    p(y | x) factorises into local softmaxes, ``p(y_0) = softmax(h_0)`` and
    ``p(y_t | y_{t-1}) = softmax_k(alpha * (h_t[k] + G[y_{t-1}, k]))``, so
    training needs no partition function. The module has :class:`CRF`'s
    shape: ``forward`` returns the log-likelihood (same reductions, same
    ValueErrors), ``decode`` lists of tag lists, plus ``nbest``,
    :meth:`marginals` and ``allowed``.

    Parameters
    ----------
    num_tags : int
        Number of tags K (>= 1).
    batch_first : bool, default False
    alpha : float > 0, default 1.0 (0.5 reproduces bert4keras)
    bidirectional : bool, default False
        Bi-MEMM in training: the log-likelihood is the mean of the
        left-to-right model and the right-to-left one (scored with G.T).
        Decoding and marginals use the left-to-right model.
    rank : int or None
        None: a dense transition matrix ``transitions`` [K,K]. An int r: the
        low-rank ``G = L @ R.T`` with parameters ``L`` and ``R`` [K,r]
        (training costs O(T K r)).
    allowed : optional -- as for :class:`CRF`

    Attributes
    ----------
    transitions : nn.Parameter [K,K] (rank None), or
    L, R : nn.Parameter [K,r] (rank r)

    All start as uniform(-0.1, 0.1) draws. The same notes as :class:`CRF`
    apply (any mask, CPU only, float32/float64, no TorchScript, no double
    backward).

    Examples
    --------
    >>> import torch, kexue.torch
    >>> _ = torch.manual_seed(0)
    >>> memm = kexue.torch.MEMM(4, batch_first=True, rank=2)
    >>> emissions = torch.randn(2, 5, 4, requires_grad=True)
    >>> tags = torch.randint(0, 4, (2, 5))
    >>> loss = -memm(emissions, tags, reduction="mean")
    >>> loss.backward()
    >>> memm.L.grad.shape, emissions.grad.shape
    (torch.Size([4, 2]), torch.Size([2, 5, 4]))
    >>> len(memm.decode(emissions)[0])
    5
    """

    _op = "MEMM"

    def __init__(self, num_tags: int, batch_first: bool = False, alpha: float = 1.0,
                 bidirectional: bool = False, rank: Optional[int] = None, *, allowed=None) -> None:
        if num_tags <= 0:
            raise ValueError(f"invalid number of tags: {num_tags}")
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise TypeError(
                f"[kexue.torch.MEMM] alpha must be a number; got {type(alpha).__name__}"
            ) from None
        if not alpha > 0 or not np.isfinite(alpha):
            raise ValueError(f"[kexue.torch.MEMM] alpha must be a finite number > 0; got {alpha}")
        if rank is not None:
            if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)):
                raise TypeError(
                    f"[kexue.torch.MEMM] rank must be None or an int; got {type(rank).__name__}"
                )
            if rank < 1:
                raise ValueError(f"[kexue.torch.MEMM] rank must be >= 1; got {rank}")
            rank = int(rank)
        super().__init__()
        self.num_tags = num_tags
        self.batch_first = batch_first
        self.alpha = alpha
        self.bidirectional = bool(bidirectional)
        self.rank = rank
        self.allowed = _allowed_np(allowed)
        if rank is None:
            self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        else:
            self.L = nn.Parameter(torch.empty(num_tags, rank))
            self.R = nn.Parameter(torch.empty(num_tags, rank))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every parameter from uniform(-0.1, 0.1)."""
        for p in self._params():
            nn.init.uniform_(p, -0.1, 0.1)

    def __repr__(self) -> str:
        extra = ""
        if self.alpha != 1.0:
            extra += f", alpha={self.alpha}"
        if self.bidirectional:
            extra += ", bidirectional=True"
        if self.rank is not None:
            extra += f", rank={self.rank}"
        return f"{self.__class__.__name__}(num_tags={self.num_tags}{extra})"

    def _params(self):
        return [self.transitions] if self.rank is None else [self.L, self.R]

    def _kw(self, ps):
        if self.rank is None:
            return (ps[0],), {}
        return (None,), {"factors": (ps[0], ps[1])}

    def forward(self, emissions: torch.Tensor, tags: torch.Tensor,
                mask: Optional[torch.Tensor] = None, reduction: str = "sum", *,
                allowed=None) -> torch.Tensor:
        """The log-likelihood of ``tags`` given ``emissions`` (as :meth:`CRF.forward`).

        Examples
        --------
        >>> import torch, kexue.torch
        >>> memm = kexue.torch.MEMM(2)
        >>> memm(torch.zeros(3, 1, 2), torch.zeros(3, 1, dtype=torch.long)).shape
        torch.Size([])
        """
        self._validate(emissions, tags=tags, mask=mask)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"invalid reduction: {reduction}")
        em, params, tags_np, mask_np, _ = self._prepare(emissions, tags, mask)
        al = self._allowed(allowed)
        alpha, bidi = self.alpha, self.bidirectional

        def run(e, ps, rows):
            t, m = tags_np, mask_np
            if rows is not None:
                e, t, m = e[rows], t[rows], (None if m is None else m[rows])
            (g,), kw = self._kw(ps)
            r = _kmemm.nll_grad(e, t, g, mask=m, allowed=al, alpha=alpha, bidirectional=bidi,
                                **kw)
            d = (r.d_transitions,) if self.rank is None else tuple(r.d_factors)
            return r.loss, r.d_emissions, d

        llh = _NegNLL.apply(run, em, *params)
        return self._reduce(llh, reduction, mask, em.shape)

    def _numpy_params(self, emissions):
        dt = _dtype(self._op, emissions, self._params())
        em = _np(self._batch_first(emissions).to(dt))
        return em, [_np(p.to(dt)) for p in self._params()]

    def decode(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
               nbest: Optional[int] = None, allowed=None, mode: str = "map"):
        """The best path of each sequence, or its ``nbest`` best, as lists of tags.

        ``mode="map"``: the most probable path of the left-to-right model;
        ``mode="crf_style"``: bert4keras' decoding, the CRF Viterbi on the raw
        scores h + G. Returns like :meth:`CRF.decode`.

        Examples
        --------
        >>> import torch, kexue.torch
        >>> memm = kexue.torch.MEMM(2, batch_first=True)
        >>> memm.decode(torch.tensor([[[5.0, 0.0], [0.0, 5.0]]]))
        [[0, 1]]
        """
        self._validate(emissions, mask=mask)
        nbest = self._check_nbest(self._op, nbest)
        if mode not in ("map", "crf_style"):
            raise ValueError(f"[kexue.torch.MEMM] mode must be 'map' or 'crf_style'; got {mode!r}")
        em, ps = self._numpy_params(emissions)
        mask_np = None if mask is None else _np(self._batch_first(mask).to(torch.bool))
        al = self._allowed(allowed)
        (g,), kw = self._kw(ps)
        if nbest is None:
            paths, scores = _kmemm.viterbi(em, g, mask=mask_np, allowed=al, alpha=self.alpha,
                                           mode=mode, **kw)
        elif mode == "map":
            paths, scores = _kmemm.nbest(em, g, nbest, mask=mask_np, allowed=al,
                                         alpha=self.alpha, **kw)
        else:
            G = g if g is not None else ps[0] @ ps[1].T
            paths, scores = _kcrf.nbest(em, G, nbest, mask=mask_np, allowed=al)
        return self._decode_lists(paths, scores, mask_np, nbest)

    def marginals(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
                  allowed=None) -> torch.Tensor:
        """Tag marginals of the left-to-right model, in the emissions' layout [..., K].

        Examples
        --------
        >>> import torch, kexue.torch
        >>> kexue.torch.MEMM(2).marginals(torch.zeros(3, 1, 2)).sum(-1).round().tolist()
        [[1.0], [1.0], [1.0]]
        """
        self._validate(emissions, mask=mask)
        em, ps = self._numpy_params(emissions)
        mask_np = None if mask is None else _np(self._batch_first(mask).to(torch.bool))
        (g,), kw = self._kw(ps)
        m = _kmemm.marginals(em, g, mask=mask_np, allowed=self._allowed(allowed),
                             alpha=self.alpha, **kw)
        return self._batch_first(torch.from_numpy(m))
