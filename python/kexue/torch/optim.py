"""``torch.optim.Optimizer`` subclasses stepping CPU tensors through kexue's fused kernels.

A one-line change of import::

    from kexue.torch.optim import AdamW      # was: from torch.optim import AdamW
    opt = AdamW(model.parameters(), lr=1e-3)
    loss.backward(); opt.step(); opt.zero_grad()

Classes: :class:`SGD`, :class:`Adam`, :class:`AdamW` (torch's names, defaults
and state layout -- a ``state_dict`` loads into ``torch.optim.AdamW`` and
back), :class:`AdaX`, :class:`Lion`, :class:`LAMB`, :class:`Adafactor`,
:class:`Amos` (the hyper-parameters of :mod:`kexue.optim`'s classes, whose
updates they reproduce bit for bit), and :func:`clip_grad_norm_` with
``torch.nn.utils.clip_grad_norm_``'s signature.

What is the same as torch.optim: param groups (per-group hyper-parameters,
``add_param_group``), ``state_dict``/``load_state_dict`` (``state[param] =
{"step": tensor, "exp_avg": tensor, ...}``, torch's slot names where torch has
the optimizer; the dict goes through ``torch.save``/``torch.load``),
``zero_grad``, ``step(closure)`` returning the closure's loss, params whose
``.grad`` is None are skipped, a per-param step count, LR schedulers
(``torch.optim.lr_scheduler``) and optimizer hooks.

How it steps: ``p.detach().numpy()`` shares the parameter's memory, so each
param group makes one fused, multi-threaded :mod:`kexue.optim.functional` call
per (dtype, step count) -- normally one call per group -- over all its
parameters, gradients and state tensors (created with ``torch.zeros`` and
viewed as numpy the same way). No copies; the parameters' autograd version
counters are bumped as torch's own in-place updates do.

Restrictions (each raises a clear error naming the argument):

- CPU tensors only (ValueError); float32 or float64 parameters only
  (TypeError) -- one call per dtype, so a group may mix the two.
- Parameters must be contiguous (ValueError): the update is written in place
  through a numpy view of the tensor's memory, and a non-contiguous tensor
  (e.g. ``W.t()`` or a slice) cannot be given to the fused kernels without a
  copy, which would silently drop the update. Optimize the base tensor, or
  wrap ``t.contiguous()`` in the ``nn.Parameter``.
- Sparse gradients raise RuntimeError (as torch's dense optimizers do).
- ``capturable=True`` / ``differentiable=True`` raise NotImplementedError;
  ``foreach`` and ``fused`` are accepted and ignored (kexue always fuses).

Beyond torch: ``state_dtype="bfloat16"`` (AdamW, Adam, AdaX, Lion; float32
params) keeps the moments as ``torch.bfloat16`` tensors with kexue's seeded
stochastic rounding (see :mod:`kexue.optim.functional`); ``seed`` keys that
rounding (group i > 0 mixes i into the seed, so groups draw independent bits).
kexue.optim's ``max_grad_norm``/``skip_nonfinite`` step options are not
torch.optim concepts: call :func:`clip_grad_norm_` before ``step()``.

Examples
--------
>>> import torch
>>> from kexue.torch.optim import AdamW
>>> w = torch.nn.Parameter(torch.zeros(4, 3))
>>> opt = AdamW([w], lr=1e-2)
>>> w.grad = torch.ones(4, 3)
>>> opt.step()
>>> round(w[0, 0].item(), 6), sorted(opt.state[w])
(-0.01, ['exp_avg', 'exp_avg_sq', 'step'])
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..optim import clip_grad_norm_ as _np_clip_grad_norm_
from ..optim import functional as F

__all__ = ["LAMB", "SGD", "Adafactor", "Adam", "AdamW", "AdaX", "Amos", "Lion", "clip_grad_norm_"]

_FLOATS = (torch.float32, torch.float64)
_BF16_NAMES = ("bfloat16", "bf16")


def _scalar_dtype():
    try:
        from torch.optim.optimizer import _get_scalar_dtype
        return _get_scalar_dtype()
    except Exception:  # pragma: no cover - private helper moved
        return torch.float32


def _float(op, name, x, allow_none=False):
    """A hyper-parameter as a Python float (1-element tensors accepted, as torch does)."""
    if x is None and allow_none:
        return None
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"[kexue.{op}] {name} must be a number or a 1-element tensor; "
                             f"got a tensor of shape {tuple(x.shape)}")
        return float(x.item())
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"[kexue.{op}] {name} must be a number; got {type(x).__name__}")
    return float(x)


def _lr(op, x, allow_none=False):
    lr = _float(op, "lr", x, allow_none)
    if lr is not None and not (math.isfinite(lr) and lr >= 0.0):
        raise ValueError(f"[kexue.{op}] lr must be finite and >= 0; got {lr}")
    return lr


def _betas(op, betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"[kexue.{op}] betas must be a pair (beta1, beta2); got {betas!r}")
    return _float(op, "betas[0]", betas[0]), _float(op, "betas[1]", betas[1])


def _np(t):
    """The numpy view of a CPU tensor's memory (bfloat16 as its uint16 bits)."""
    if t.dtype == torch.bfloat16:
        t = t.view(torch.uint16)
    return t.detach().numpy()


def _mix_seed(seed, gi):
    return seed if gi == 0 else (seed + gi * 0x9E3779B97F4A7C15) % 2**64


def _where(gi, i):
    return f"params[{i}]" if gi == 0 else f"param_groups[{gi}]['params'][{i}]"


def _check_tensor(op, name, t):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"[kexue.{op}] {name} must be a torch.Tensor; got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"[kexue.{op}] {name} must be a CPU tensor (kexue steps tensors "
                         f"through numpy views of their memory); got device {t.device}")
    if t.layout != torch.strided:
        raise ValueError(f"[kexue.{op}] {name} must be a dense (strided) tensor; "
                         f"got layout {t.layout}")
    if t.dtype not in _FLOATS:
        raise TypeError(f"[kexue.{op}] {name} must be float32 or float64; got {t.dtype}")


def _check_param(op, name, p):
    _check_tensor(op, name, p)
    if not p.is_contiguous():
        raise ValueError(
            f"[kexue.{op}] {name} must be contiguous: kexue updates it in place through a "
            f"numpy view of its memory, and a non-contiguous tensor (a transpose, a slice) "
            f"could only be updated through a copy that would drop the update; got shape "
            f"{tuple(p.shape)} with strides {p.stride()} -- optimize the base tensor or wrap "
            f"t.contiguous() in the nn.Parameter")


class _KexueOptimizer(torch.optim.Optimizer):
    """Shared machinery. Subclasses define ``_slots(group, p)`` -> {name: (shape, dtype)},
    ``_update(group, gi, idx, params, grads, states, step)`` (one functional call over
    lists of numpy arrays; called on empty lists to check a group's hyper-parameters) and
    ``_check_group(group)``."""

    _name = "Optimizer"
    _has_step = True  # state["step"] (torch's SGD keeps none)

    @property
    def _op(self):
        return f"torch.optim.{self._name}"

    # -- groups ---------------------------------------------------------------
    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        gi = len(self.param_groups) - 1
        group = self.param_groups[gi]
        try:
            for i, p in enumerate(group["params"]):
                _check_param(self._op, _where(gi, i), p)
            self._validate_group(group, gi)
        except Exception:
            self.param_groups.pop()
            raise

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # groups saved by torch.optim's class lack kexue's keys
            for k, v in self.defaults.items():
                group.setdefault(k, v)

    def _validate_group(self, group, gi):
        op = self._op
        for k in ("capturable", "differentiable"):
            if group.get(k, False):
                raise NotImplementedError(
                    f"[kexue.{op}] {k}=True is not supported (kexue steps CPU tensors "
                    f"through numpy); use torch.optim.{self._name} for it")
        self._check_group(group, gi)
        if group.get("state_dtype") is not None:
            for i, p in enumerate(group["params"]):
                if p.dtype != torch.float32:
                    raise TypeError(f'[kexue.{op}] state_dtype="bfloat16" needs float32 params; '
                                    f"{_where(gi, i)} is {p.dtype}")
        # the functional front door checks every hyper-parameter on an empty list
        self._update(group, gi, [], [], [], [], 1)

    def _check_group(self, group, gi):
        _lr(self._op, group["lr"])

    def _state_dtype(self, group, p):
        sd = group.get("state_dtype")
        if sd is None:
            return p.dtype
        return torch.bfloat16

    # -- state ----------------------------------------------------------------
    def _fix_state(self, group, p, state, where, copy=False):
        """Create missing slots as zeros; check shapes; convert dtypes (and clone when ``copy``)."""
        op = self._op
        for k, (shape, dt) in self._slots(group, p).items():
            t = state.get(k)
            if t is None:
                state[k] = torch.zeros(shape, dtype=dt)
                continue
            if not isinstance(t, torch.Tensor):
                t = torch.as_tensor(t)
            if tuple(t.shape) != tuple(shape):
                raise ValueError(f"[kexue.{op}] state of {where}: {k!r} must have shape "
                                 f"{tuple(shape)}; got {tuple(t.shape)}")
            if t.dtype != dt or t.device.type != "cpu" or not t.is_contiguous() or copy:
                t = t.to(device="cpu", dtype=dt, memory_format=torch.contiguous_format, copy=True)
            state[k] = t
        if self._has_step:
            s = state.get("step")
            if s is None:
                state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
            elif not isinstance(s, torch.Tensor) or not s.is_floating_point() or copy:
                state["step"] = torch.tensor(float(s), dtype=_scalar_dtype())

    def _prepare(self, group, p, state, where):
        """Ready the state for one update; returns this update's 1-based step number."""
        self._fix_state(group, p, state, where)
        return int(state["step"].item()) + 1

    def load_state_dict(self, state_dict):
        """torch.optim's ``load_state_dict``; then every state tensor is copied (no aliasing of
        ``state_dict``), checked against its param's shape and given the dtype kexue steps it in
        (torch's loader casts floating state to the param's dtype, bfloat16 state included)."""
        saved = self.state, self.param_groups
        super().load_state_dict(state_dict)
        try:
            for gi, group in enumerate(self.param_groups):
                self._validate_group(group, gi)
                for i, p in enumerate(group["params"]):
                    if p in self.state and self.state[p]:
                        self._fix_state(group, p, self.state[p], _where(gi, i), copy=True)
        except Exception:
            self.state, self.param_groups = saved
            raise

    # -- step -----------------------------------------------------------------
    def step(self, closure=None):
        """One update of every parameter that has a gradient.

        closure : callable, optional -- re-evaluates the model and returns the loss
            (run with grad enabled, before the update, as torch does)

        Returns the closure's loss, else None. Everything is checked before any
        tensor changes.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        op = f"{self._op}.step"
        plan = []
        for gi, group in enumerate(self.param_groups):
            self._validate_group(group, gi)
            buckets = {}
            for i, p in enumerate(group["params"]):
                g = p.grad
                if g is None:
                    continue
                where = _where(gi, i)
                _check_param(op, where, p)
                if g.is_sparse or g.layout != torch.strided:
                    raise RuntimeError(
                        f"[kexue.{op}] {where} has a sparse gradient; kexue's optimizers take "
                        f"dense gradients only (torch.optim.SparseAdam handles sparse ones)")
                _check_tensor(op, f"{where}.grad", g)
                if g.dtype != p.dtype or g.shape != p.shape:
                    raise ValueError(f"[kexue.{op}] {where}.grad must match its param ({p.dtype}, "
                                     f"{tuple(p.shape)}); got {g.dtype}, {tuple(g.shape)}")
                t = self._prepare(group, p, self.state[p], where)
                buckets.setdefault((p.dtype, t), []).append(i)
            plan.append((gi, group, buckets))
        for gi, group, buckets in plan:
            maximize = bool(group.get("maximize", False))
            ps = group["params"]
            for (_, t), idx in buckets.items():
                params = [_np(ps[i]) for i in idx]
                grads = [_np(ps[i].grad) for i in idx]
                if maximize:
                    grads = [np.negative(g) for g in grads]
                states = [{k: _np(v) for k, v in self.state[ps[i]].items()
                           if k != "step" and isinstance(v, torch.Tensor)} for i in idx]
                self._update(group, gi, idx, params, grads, states, t)
                touched = [ps[i] for i in idx]
                if self._has_step:
                    for q in touched:
                        self.state[q]["step"] += 1
                torch.autograd.graph.increment_version(touched)
        return loss

    def _update(self, group, gi, idx, params, grads, states, step):  # pragma: no cover - abstract
        raise NotImplementedError

    def _slots(self, group, p):  # pragma: no cover - abstract
        raise NotImplementedError


def _slot(states, name):
    return [s[name] for s in states]


def _check_state_dtype(op, sd):
    if sd is None:
        return
    if sd in _BF16_NAMES or sd is torch.bfloat16:
        return
    raise ValueError(f'[kexue.{op}] state_dtype must be None or "bfloat16"; got {sd!r}')


def _torch_kw(maximize, foreach, capturable, differentiable, fused):
    return dict(maximize=bool(maximize), foreach=foreach, capturable=capturable,
                differentiable=differentiable, fused=fused)


class SGD(_KexueOptimizer):
    """SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD).

    Same arguments, defaults and state (``momentum_buffer``, only when
    momentum != 0; no step count) as torch.optim.SGD.

    Examples
    --------
    >>> import torch
    >>> from kexue.torch.optim import SGD
    >>> p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    >>> opt = SGD([p], lr=0.1, momentum=0.9)
    >>> for g in ([0.1, -0.2, 0.3], [-0.05, 0.1, 0.4]):
    ...     p.grad = torch.tensor(g, dtype=torch.float64); opt.step()
    >>> p.detach().numpy().round(6)
    array([ 0.486, -0.972,  1.903])
    """

    _name = "SGD"
    _has_step = False

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False, fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=bool(maximize), foreach=foreach,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _check_group(self, group, gi):
        op = self._op
        _lr(op, group["lr"])
        m = _float(op, "momentum", group["momentum"])
        d = _float(op, "dampening", group["dampening"])
        wd = _float(op, "weight_decay", group["weight_decay"])
        if m < 0 or d < 0 or wd < 0:
            raise ValueError(f"[kexue.{op}] momentum, dampening and weight_decay must be >= 0; "
                             f"got {m}, {d}, {wd}")
        if group["nesterov"] and (m <= 0 or d != 0):
            raise ValueError(f"[kexue.{op}] nesterov needs momentum > 0 and dampening 0; "
                             f"got {m}, {d}")

    def _slots(self, group, p):
        return {"momentum_buffer": (p.shape, p.dtype)} if group["momentum"] != 0 else {}

    def _prepare(self, group, p, state, where):
        if group["momentum"] == 0:
            return 1
        fresh = state.get("momentum_buffer") is None  # torch: buf = d at its first step
        self._fix_state(group, p, state, where)
        return 1 if fresh else 2

    def _update(self, group, gi, idx, params, grads, states, step):
        op = self._op
        m = _float(op, "momentum", group["momentum"])
        F.sgd_(params, grads, _slot(states, "momentum_buffer") if m != 0 else None, step,
               lr=_lr(op, group["lr"]), momentum=m,
               dampening=_float(op, "dampening", group["dampening"]),
               nesterov=bool(group["nesterov"]),
               weight_decay=_float(op, "weight_decay", group["weight_decay"]))


class Adam(_KexueOptimizer):
    """Adam (torch.optim.Adam): arguments, defaults and state (``step``, ``exp_avg``,
    ``exp_avg_sq``, ``max_exp_avg_sq`` with amsgrad) as torch's, including
    ``decoupled_weight_decay=True`` (= AdamW).

    ``state_dtype="bfloat16"`` (float32 params, not with amsgrad) stores the
    moments as bfloat16 tensors rounded stochastically with ``seed``.

    Examples
    --------
    >>> import torch
    >>> from kexue.torch.optim import Adam
    >>> p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    >>> opt = Adam([p])
    >>> for g in ([0.1, -0.2, 0.3], [-0.05, 0.1, 0.4]):
    ...     p.grad = torch.tensor(g, dtype=torch.float64); opt.step()
    >>> p.detach().numpy().round(8)
    array([ 0.49873366, -0.99873366,  1.99800268])
    """

    _name = "Adam"
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False, state_dtype=None,
                 seed=0):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        **_torch_kw(maximize, foreach, capturable, differentiable, fused),
                        decoupled_weight_decay=bool(decoupled_weight_decay),
                        state_dtype=state_dtype, seed=seed)
        super().__init__(params, defaults)

    def _check_group(self, group, gi):
        op = self._op
        _lr(op, group["lr"])
        _betas(op, group["betas"])
        _check_state_dtype(op, group.get("state_dtype"))
        if group["amsgrad"] and group.get("state_dtype") is not None:
            raise ValueError(f"[kexue.{op}] amsgrad is not supported with bfloat16 state")

    def _slots(self, group, p):
        dt = self._state_dtype(group, p)
        s = {"exp_avg": (p.shape, dt), "exp_avg_sq": (p.shape, dt)}
        if group["amsgrad"]:
            s["max_exp_avg_sq"] = (p.shape, p.dtype)
        return s

    def _update(self, group, gi, idx, params, grads, states, step):
        op = self._op
        b1, b2 = _betas(op, group["betas"])
        fn = F.adamw_ if (self._decoupled or group.get("decoupled_weight_decay")) else F.adam_
        amsgrad = bool(group["amsgrad"])
        fn(params, grads, _slot(states, "exp_avg"), _slot(states, "exp_avg_sq"), step,
           lr=_lr(op, group["lr"]), beta1=b1, beta2=b2, eps=_float(op, "eps", group["eps"]),
           weight_decay=_float(op, "weight_decay", group["weight_decay"]), amsgrad=amsgrad,
           max_exp_avg_sqs=_slot(states, "max_exp_avg_sq") if amsgrad else None,
           seed=_mix_seed(group["seed"], gi))


class AdamW(Adam):
    """AdamW (torch.optim.AdamW): decoupled weight decay, default 0.01; torch's
    arguments, defaults and state layout. ``state_dtype="bfloat16"`` as in :class:`Adam`.

    Examples
    --------
    >>> import torch
    >>> from kexue.torch.optim import AdamW
    >>> p = torch.nn.Parameter(torch.zeros(3))
    >>> opt = AdamW([p], lr=0.1, state_dtype="bfloat16", seed=7)
    >>> p.grad = torch.tensor([1.0, -1.0, 0.0]); opt.step()
    >>> p.tolist(), opt.state[p]["exp_avg"].dtype
    ([-0.10000000149011612, 0.10000000149011612, 0.0], torch.bfloat16)
    """

    _name = "AdamW"
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, state_dtype=None, seed=0):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        **_torch_kw(maximize, foreach, capturable, differentiable, fused),
                        state_dtype=state_dtype, seed=seed)
        _KexueOptimizer.__init__(self, params, defaults)


class AdaX(_KexueOptimizer):
    """AdaX (kexue.fm/archives/7387), as :class:`kexue.optim.AdaX`: betas=(beta1, beta2)
    with beta2 = 1e-4 (the growth rate of the second moment). State: ``step``,
    ``exp_avg``, ``exp_avg_sq``; ``state_dtype="bfloat16"`` as in :class:`Adam`.

    Examples
    --------
    >>> import torch
    >>> from kexue.torch.optim import AdaX
    >>> p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    >>> opt = AdaX([p]); p.grad = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64); opt.step()
    >>> p.detach().numpy().round(8)
    array([ 0.4999, -0.9999,  1.9999])
    """

    _name = "AdaX"

    def __init__(self, params, lr=1e-3, betas=(0.9, 1e-4), eps=1e-6, weight_decay=0.0, *,
                 maximize=False, state_dtype=None, seed=0):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=bool(maximize), state_dtype=state_dtype, seed=seed)
        super().__init__(params, defaults)

    def _check_group(self, group, gi):
        _lr(self._op, group["lr"])
        _betas(self._op, group["betas"])
        _check_state_dtype(self._op, group.get("state_dtype"))

    def _slots(self, group, p):
        dt = self._state_dtype(group, p)
        return {"exp_avg": (p.shape, dt), "exp_avg_sq": (p.shape, dt)}

    def _update(self, group, gi, idx, params, grads, states, step):
        op = self._op
        b1, b2 = _betas(op, group["betas"])
        F.adax_(params, grads, _slot(states, "exp_avg"), _slot(states, "exp_avg_sq"), step,
                lr=_lr(op, group["lr"]), beta1=b1, beta2=b2, eps=_float(op, "eps", group["eps"]),
                weight_decay=_float(op, "weight_decay", group["weight_decay"]),
                seed=_mix_seed(group["seed"], gi))


class Lion(_KexueOptimizer):
    """Lion (Chen et al. 2023), as :class:`kexue.optim.Lion`: sign updates; lr 3-10x
    smaller and weight decay 3-10x larger than AdamW's. State: ``step``,
    ``exp_avg``; ``state_dtype="bfloat16"`` as in :class:`Adam`.

    Examples
    --------
    >>> import torch
    >>> from kexue.torch.optim import Lion
    >>> p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    >>> opt = Lion([p]); p.grad = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64); opt.step()
    >>> p.detach().numpy().round(8)
    array([ 0.4999, -0.9999,  1.9999])
    """

    _name = "Lion"

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False,
                 state_dtype=None, seed=0):
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=bool(maximize),
                        state_dtype=state_dtype, seed=seed)
        super().__init__(params, defaults)

    def _check_group(self, group, gi):
        _lr(self._op, group["lr"])
        _betas(self._op, group["betas"])
        _check_state_dtype(self._op, group.get("state_dtype"))

    def _slots(self, group, p):
        return {"exp_avg": (p.shape, self._state_dtype(group, p))}

    def _update(self, group, gi, idx, params, grads, states, step):
        op = self._op
        b1, b2 = _betas(op, group["betas"])
        F.lion_(params, grads, _slot(states, "exp_avg"), step, lr=_lr(op, group["lr"]),
                beta1=b1, beta2=b2, weight_decay=_float(op, "weight_decay", group["weight_decay"]),
                seed=_mix_seed(group["seed"], gi))


class LAMB(_KexueOptimizer):
    """LAMB (You et al. 2020), as :class:`kexue.optim.LAMB`: Adam's direction with a
    per-tensor trust ratio ||p|| / ||r||. State: ``step``, ``exp_avg``, ``exp_avg_sq``.

    Examples
    --------
    >>> import torch
    >>> from kexue.torch.optim import LAMB
    >>> p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    >>> opt = LAMB([p]); p.grad = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64); opt.step()
    >>> p.detach().numpy().round(8)
    array([ 0.49868587, -0.99867933,  1.99866625])
    """

    _name = "LAMB"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, *,
                 maximize=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=bool(maximize))
        super().__init__(params, defaults)

    def _check_group(self, group, gi):
        _lr(self._op, group["lr"])
        _betas(self._op, group["betas"])

    def _slots(self, group, p):
        return {"exp_avg": (p.shape, p.dtype), "exp_avg_sq": (p.shape, p.dtype)}

    def _update(self, group, gi, idx, params, grads, states, step):
        op = self._op
        b1, b2 = _betas(op, group["betas"])
        F.lamb_(params, grads, _slot(states, "exp_avg"), _slot(states, "exp_avg_sq"), step,
                lr=_lr(op, group["lr"]), beta1=b1, beta2=b2, eps=_float(op, "eps", group["eps"]),
                weight_decay=_float(op, "weight_decay", group["weight_decay"]))


class Adafactor(_KexueOptimizer):
    """Adafactor, Su's bert4keras formulation, as :class:`kexue.optim.Adafactor`.

    lr=None: relative step min(1/sqrt(t), 0.01) (give a number to use an LR
    scheduler). beta2=None: 1 - t^-0.8. ``eps=(eps1, eps2)`` and ``d`` follow
    torch.optim.Adafactor's names, but the update is kexue's (parameter-scale
    factor, factoring over the two largest axes when the second-largest is >=
    ``min_dim_size_to_factor``), not torch's, so results and state differ from
    torch.optim.Adafactor's. State: ``step``, ``exp_avg`` (beta1 > 0), and
    ``exp_avg_sq`` or the factored ``exp_avg_sq_row``/``exp_avg_sq_col`` (shapes
    from :func:`kexue.optim.functional.adafactor_shapes`).

    Examples
    --------
    >>> import torch
    >>> from kexue.torch.optim import Adafactor
    >>> f64 = torch.float64
    >>> W = torch.nn.Parameter(torch.tensor([[0.5, -1.0, 2.0], [0.1, 0.3, -0.4]], dtype=f64))
    >>> opt = Adafactor([W])
    >>> W.grad = torch.tensor([[0.1, -0.2, 0.3], [0.05, 0.0, -0.1]], dtype=f64); opt.step()
    >>> W.detach().numpy().round(8)
    array([[ 0.49041703, -0.99041703,  1.99041703],
           [ 0.09041703,  0.3       , -0.39041703]])
    """

    _name = "Adafactor"

    def __init__(self, params, lr=None, beta1=0.0, beta2=None, eps=(1e-30, 1e-3), d=1.0,
                 multiply_by_parameter_scale=True, min_dim_size_to_factor=128, *, maximize=False):
        defaults = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, d=d,
                        multiply_by_parameter_scale=multiply_by_parameter_scale,
                        min_dim_size_to_factor=min_dim_size_to_factor, maximize=bool(maximize))
        super().__init__(params, defaults)

    def _eps(self, group):
        eps = group["eps"]
        if not isinstance(eps, (tuple, list)) or len(eps) != 2:
            raise ValueError(f"[kexue.{self._op}] eps must be a pair (eps1, eps2); got {eps!r}")
        return _float(self._op, "eps[0]", eps[0]), _float(self._op, "eps[1]", eps[1])

    def _check_group(self, group, gi):
        _lr(self._op, group["lr"], allow_none=True)
        self._eps(group)
        F.adafactor_shapes((1, 1), group["min_dim_size_to_factor"])  # checks the int

    def _slots(self, group, p):
        s = {}
        if _float(self._op, "beta1", group["beta1"]) > 0:
            s["exp_avg"] = (p.shape, p.dtype)
        f = F.adafactor_shapes(tuple(p.shape), group["min_dim_size_to_factor"])
        if f is None:
            s["exp_avg_sq"] = (p.shape, p.dtype)
        else:
            s["exp_avg_sq_row"] = (f[0], p.dtype)
            s["exp_avg_sq_col"] = (f[1], p.dtype)
        return s

    def _update(self, group, gi, idx, params, grads, states, step):
        op = self._op
        eps1, eps2 = self._eps(group)
        m, v, vr, vc = ([s.get(k) for s in states]
                        for k in ("exp_avg", "exp_avg_sq", "exp_avg_sq_row", "exp_avg_sq_col"))
        F.adafactor_(params, grads, m, v, vr, vc, step, lr=_lr(op, group["lr"], allow_none=True),
                     beta1=_float(op, "beta1", group["beta1"]),
                     beta2=_float(op, "beta2", group["beta2"], allow_none=True),
                     eps1=eps1, eps2=eps2, d=_float(op, "d", group["d"]),
                     multiply_by_parameter_scale=bool(group["multiply_by_parameter_scale"]))

    def _fix_state(self, group, p, state, where, copy=False):
        super()._fix_state(group, p, state, where, copy)
        for k in ("exp_avg", "exp_avg_sq", "exp_avg_sq_row", "exp_avg_sq_col"):
            if k in state and k not in self._slots(group, p):  # a slot of another configuration
                del state[k]


class Amos(_KexueOptimizer):
    """Amos (Tian and Parikh 2022), as :class:`kexue.optim.Amos`: ``lr`` is the global
    rate xi, ``eta`` the expected entry scale (a number, or a list with one per
    param of the group); ``reduce_all=True`` keeps one scalar v and b per tensor.
    State: ``step``, ``exp_avg_sq``, ``decay`` (the param's shape, or shape ()).

    Examples
    --------
    >>> import torch
    >>> from kexue.torch.optim import Amos
    >>> p = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    >>> opt = Amos([p], lr=0.01, eta=0.5)
    >>> p.grad = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64); opt.step()
    >>> p.detach().numpy().round(6)
    array([ 0.494975, -0.99495 ,  1.9949  ])
    """

    _name = "Amos"

    def __init__(self, params, lr=1e-2, eta=0.5, beta=0.999, zeta=0.25, eps=2**-125,
                 finetune_rate=1.0, reduce_all=False, *, maximize=False):
        defaults = dict(lr=lr, eta=eta, beta=beta, zeta=zeta, eps=eps, finetune_rate=finetune_rate,
                        reduce_all=reduce_all, maximize=bool(maximize))
        super().__init__(params, defaults)

    def _check_group(self, group, gi):
        _lr(self._op, group["lr"])
        eta = group["eta"]
        if isinstance(eta, (list, tuple)) and len(eta) != len(group["params"]):
            raise ValueError(f"[kexue.{self._op}] eta must be one number or a list with one per "
                             f"param of the group ({len(group['params'])}); "
                             f"got a list of {len(eta)}")

    def _slots(self, group, p):
        shape = () if group["reduce_all"] else p.shape
        return {"exp_avg_sq": (shape, p.dtype), "decay": (shape, p.dtype)}

    def _update(self, group, gi, idx, params, grads, states, step):
        op = self._op
        eta = group["eta"]
        if isinstance(eta, (list, tuple)):
            if idx:
                eta = [_float(op, "eta", eta[i]) for i in idx]
            else:  # the hyper-parameter check on no arrays
                eta = _float(op, "eta", eta[0]) if eta else 0.5
        else:
            eta = _float(op, "eta", eta)
        F.amos_(params, grads, _slot(states, "exp_avg_sq"), _slot(states, "decay"), step,
                lr=_lr(op, group["lr"]), eta=eta, beta=_float(op, "beta", group["beta"]),
                zeta=_float(op, "zeta", group["zeta"]), eps=_float(op, "eps", group["eps"]),
                finetune_rate=_float(op, "finetune_rate", group["finetune_rate"]))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None, *,
                    mode="clip"):
    """Scale the gradients of ``parameters`` in place by one factor from their global L2 norm.

    ``torch.nn.utils.clip_grad_norm_``'s signature, computed by
    :func:`kexue.optim.clip_grad_norm_` (one fused pass, the norm accumulated
    in float64 whatever the dtype, independent of the thread count).

    Parameters
    ----------
    parameters : Tensor or iterable of Tensors (CPU, float32/float64 grads; those
        whose ``.grad`` is None are skipped)
    max_norm : float >= 0
    norm_type : 2 only (kexue computes L2 norms); anything else raises
        NotImplementedError -- use torch.nn.utils.clip_grad_norm_ for those
    error_if_nonfinite : bool -- raise RuntimeError (gradients unchanged) when the
        norm is NaN or inf. When False, a non-finite norm leaves the gradients
        unchanged (torch would multiply them by a NaN/0 factor) and is returned.
    foreach : ignored (accepted for torch's signature)
    mode : "clip" -- factor min(1, max_norm / N); "smooth" -- max_norm / (N + max_norm),
        always applied (kexue.fm's (L0, L1)-smoothness step size)

    Returns
    -------
    Tensor, shape () -- the total norm N before scaling (float64 if any grad is
    float64, else float32; ``tensor(0.)`` when no parameter has a gradient)

    Notes
    -----
    torch clips by max_norm / (N + 1e-6) clamped to 1; "clip" mode uses
    max_norm / N exactly, so where N > max_norm the two factors differ by a
    relative 1e-6 / N (below float32 resolution for N >~ 1). Where N <= max_norm
    both leave the gradients unchanged.

    Examples
    --------
    >>> import torch
    >>> from kexue.torch import clip_grad_norm_
    >>> f64 = torch.float64
    >>> a, b = (torch.nn.Parameter(torch.zeros(2, dtype=f64)) for _ in range(2))
    >>> a.grad = torch.tensor([3.0, 0.0], dtype=f64); b.grad = torch.tensor([0.0, 4.0], dtype=f64)
    >>> clip_grad_norm_([a, b], 1.0)
    tensor(5., dtype=torch.float64)
    >>> a.grad.tolist(), b.grad.tolist()
    ([0.6000000000000001, 0.0], [0.0, 0.8])
    """
    op = "torch.clip_grad_norm_"
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    try:
        nt = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"[kexue.{op}] norm_type must be a number; got {norm_type!r}") from None
    if nt != 2.0:
        raise NotImplementedError(
            f"[kexue.{op}] norm_type must be 2 (kexue computes the L2 norm only); got "
            f"{norm_type!r} -- use torch.nn.utils.clip_grad_norm_ for other norms")
    if mode not in ("clip", "smooth"):
        raise ValueError(f'[kexue.{op}] mode must be "clip" or "smooth"; got {mode!r}')
    max_norm = _float(op, "max_norm", max_norm)
    if not (max_norm >= 0.0):
        raise ValueError(f"[kexue.{op}] max_norm must be >= 0; got {max_norm}")
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"[kexue.{op}] parameters[{i}] must be a torch.Tensor; "
                            f"got {type(p).__name__}")
        if p.grad is None:
            continue
        g = p.grad
        if g.is_sparse or g.layout != torch.strided:
            raise RuntimeError(f"[kexue.{op}] parameters[{i}] has a sparse gradient; "
                               f"only dense ones are supported")
        _check_tensor(op, f"parameters[{i}].grad", g)
        grads.append(g)
    if not grads:
        return torch.tensor(0.0)
    work = [g if g.is_contiguous() else g.contiguous() for g in grads]
    n = _np_clip_grad_norm_([_np(w) for w in work], max_norm, mode=mode)
    if error_if_nonfinite and not math.isfinite(n):
        raise RuntimeError(f"[kexue.{op}] the total norm of order 2.0 for gradients from "
                           f"`parameters` is non-finite ({n}), so it cannot be clipped (gradients "
                           f"unchanged); set error_if_nonfinite=False to get the norm back instead")
    for g, w in zip(grads, work):
        if w is not g:
            g.copy_(w)
    torch.autograd.graph.increment_version(grads)
    dtype = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
    return torch.tensor(n, dtype=dtype)
