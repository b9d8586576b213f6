"""Fused in-place optimizer steps over many numpy arrays.

An optimizer owns a list of parameter arrays (float32 or float64, one dtype,
C-contiguous, writeable) and their state. ``opt.step(grads)`` updates every
parameter in place: one fused, multi-threaded pass per array reads the
parameter, its gradient and its state once and writes the parameter and state
once (LAMB, Adafactor and Amos with scalar state add the read passes their
per-array norms need). Results do not depend on the thread count.

>>> import numpy as np, kexue
>>> w = np.zeros((4, 3), dtype=np.float32)
>>> opt = kexue.optim.AdamW([w], lr=1e-2)
>>> opt.step([np.ones((4, 3), dtype=np.float32)], max_grad_norm=1.0)
True
>>> round(float(w[0, 0]), 6), opt.step_count
(-0.01, 1)

GPU: :class:`SGD`, :class:`Adam`, :class:`AdamW`, :class:`AdaX` and
:class:`Lion` also take torch.cuda tensors (``model.parameters()``) or CuPy
arrays, keep their state beside them (float, made by the same library), and
step on the GPU bit for bit as on the CPU (see :mod:`kexue.cuda`).

Classes: :class:`SGD`, :class:`Adam`, :class:`AdamW`, :class:`AdaX`,
:class:`Lion`, :class:`LAMB`, :class:`Adafactor`, :class:`Amos` -- hyper-
parameters with torch.optim's names and defaults where torch has the
optimizer. Also :func:`clip_grad_norm_`, :func:`child_tuning_`, the update
rules as free functions in :mod:`kexue.optim.functional` and schedules in
:mod:`kexue.optim.schedules`. Twins: :mod:`kexue.reference.optim`.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _core
from .. import cuda as _kcuda
from .._util import arr
from . import functional, schedules
from .functional import _int, _num, _seed

__all__ = [
    "LAMB", "SGD", "Adafactor", "Adam", "AdamW", "AdaX", "Amos", "Lion", "Optimizer",
    "child_tuning_", "clip_grad_norm_", "functional", "schedules",
]


def _grad_list(op, grads):
    if isinstance(grads, np.ndarray) or not isinstance(grads, (list, tuple)):
        raise TypeError(f"[kexue.{op}] grads must be a list of arrays; got {type(grads).__name__}")
    for i, g in enumerate(grads):
        if g is None:
            raise ValueError(f"[kexue.{op}] grads[{i}] is None")
    return [g if _kcuda.is_gpu_array(g) else arr(g) for g in grads]


def clip_grad_norm_(grads, max_norm, *, mode="clip", stream=None):
    """Scale every gradient in place by one factor from their global L2 norm.

    N = sqrt(sum over arrays of sum(g^2)), accumulated in float64 in fixed
    chunks (so 10^9 float32 entries lose nothing and the result does not depend
    on the thread count). ``mode="clip"``: factor min(1, max_norm / N);
    ``mode="smooth"``: max_norm / (N + max_norm) (spec C8; the two step-size
    rules of (L0, L1)-smoothness). When N is NaN or inf the gradients are left
    unchanged and N is returned, so the caller can skip the step.

    Parameters
    ----------
    grads : list of float32/float64 ndarrays (C-contiguous, writeable), or of
        GPU arrays on one device (see :mod:`kexue.cuda`; N then agrees with the
        CPU's to 1e-14 relative, its float64 sum being added in another order)
    max_norm : float >= 0
    stream : CUDA stream for GPU arrays (None: the default stream); the call
        returns a float, so it waits for the norm on that stream

    Returns
    -------
    float -- N, the norm before scaling

    Examples
    --------
    >>> import numpy as np, kexue
    >>> g = [np.array([3.0, 0.0]), np.array([[0.0, 4.0], [12.0, 0.0]])]
    >>> kexue.optim.clip_grad_norm_(g, 5.0)
    13.0
    >>> g[1].round(6).tolist()
    [[0.0, 1.538462], [4.615385, 0.0]]

    Reference twin: :func:`kexue.reference.optim.clip_grad_norm_`.
    """
    op = "optim.clip_grad_norm_"
    if isinstance(grads, np.ndarray):
        grads = [grads]
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"[kexue.{op}] grads must be a list of arrays; got {type(grads).__name__}")
    if not isinstance(mode, str):
        raise TypeError(f"[kexue.{op}] mode must be a str; got {type(mode).__name__}")
    grads = list(grads)
    mod, on_stream = _kcuda._backend(op, _core, grads, stream)
    with on_stream:
        return mod.optim_clip_grad_norm(grads, _num(op, "max_norm", max_norm), mode=mode)


def child_tuning_(grads, p, *, seed, step=0):
    """ChildTuning-F gradient dropout, in place (spec C10).

    Each entry is kept with probability ``p`` and scaled by 1/p, else set to 0,
    so E[g] is unchanged. Deterministic for (seed, step): element e of array a
    is kept iff its Philox word (counter (e // 64 * 16 + e % 16, step,
    a | 2^31), word (e % 64) // 16) is below floor(p * 2^32). Vary ``step``
    (or the seed) between optimizer steps.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> g = [np.ones(100000, dtype=np.float32)]
    >>> kexue.optim.child_tuning_(g, 0.25, seed=1)
    >>> sorted(set(g[0].tolist())), round(float((g[0] > 0).mean()), 2)
    ([0.0, 4.0], 0.25)

    Reference twin: :func:`kexue.reference.optim.child_tuning_`.
    """
    op = "optim.child_tuning_"
    if isinstance(grads, np.ndarray):
        grads = [grads]
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"[kexue.{op}] grads must be a list of arrays; got {type(grads).__name__}")
    grads = list(grads)
    _kcuda._backend(op, _core, grads, None)[0].optim_child_tuning(grads, _num(op, "p", p), seed=_seed(op, seed), step=_int(op, "step", step))


def _betas(op, betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"[kexue.{op}] betas must be a pair (beta1, beta2); got {betas!r}")
    return _num(op, "betas[0]", betas[0]), _num(op, "betas[1]", betas[1])


class Optimizer:
    """The shared machinery: parameters, state, ``step``, ``state_dict``.

    Subclasses name their state slots and call one function of
    :mod:`kexue.optim.functional` over all arrays at once.
    """

    _name = "Optimizer"
    _cuda_ok = False  # whether the update rule has CUDA kernels (kexue.cuda)

    def __init__(self, params, lr):
        op = f"optim.{self._name}"
        if isinstance(params, np.ndarray) or not isinstance(params, (list, tuple)):
            raise TypeError(f"[kexue.{op}] params must be a list of arrays; got {type(params).__name__}")
        params = list(params)
        self._gpu = bool(params) and _kcuda.is_gpu_array(params[0])
        if self._gpu:
            self._check_gpu_params(op, params)
        else:
            self._check_host_params(op, params)
        self.params = params
        self.lr = None if lr is None else self._check_lr(op, lr)
        self.step_count = 0
        self.state = [self._init_state(p) for p in params]
        self._check_hyper()

    @staticmethod
    def _check_host_params(op, params):
        for i, p in enumerate(params):
            if not isinstance(p, np.ndarray):
                raise TypeError(f"[kexue.{op}] params[{i}] must be a numpy array; got {type(p).__name__}")
            if p.dtype not in (np.float32, np.float64):
                raise TypeError(f"[kexue.{op}] params[{i}] must be float32 or float64; got {p.dtype}")
            if p.dtype != params[0].dtype:
                raise TypeError(f"[kexue.{op}] params[{i}] must have dtype {params[0].dtype} "
                                f"(the dtype of params[0]); got {p.dtype}")
            if not p.flags.c_contiguous:
                raise ValueError(f"[kexue.{op}] params[{i}] must be C-contiguous (it is updated in place)")
            if not p.flags.writeable:
                raise ValueError(f"[kexue.{op}] params[{i}] must be writeable; got a read-only array")

    def _check_gpu_params(self, op, params):
        """GPU params (torch.cuda tensors, CuPy arrays): this rule must have CUDA
        kernels; one library, float32/float64, one dtype (the rest -- devices,
        contiguity -- is checked by the first step, before anything changes)."""
        if not self._cuda_ok:
            raise ValueError(f"[kexue.{op}] got parameters in GPU memory, but {self._name} has no CUDA "
                             "kernel yet (SGD, Adam, AdamW, AdaX and Lion have); pass host (numpy) arrays")
        _kcuda._module(op)
        lib = _kcuda._lib(op, params[0])
        d0 = _kcuda._dtype_name(params[0])
        for i, p in enumerate(params):
            if not _kcuda.is_gpu_array(p) or _kcuda._lib(op, p) != lib:
                raise TypeError(f"[kexue.{op}] params[{i}] must be a GPU array of the library of params[0] "
                                f"({lib}); got {type(p).__module__}.{type(p).__name__}")
            d = _kcuda._dtype_name(p)
            if d not in ("float32", "float64"):
                raise TypeError(f"[kexue.{op}] params[{i}] must be float32 or float64; got {d}")
            if d != d0:
                raise TypeError(f"[kexue.{op}] params[{i}] must have dtype {d0} (the dtype of params[0]); got {d}")

    def _zeros(self, p, shape=None, dtype=None):
        """Zero state beside ``p``: numpy, or on ``p``'s GPU by its library."""
        if self._gpu:
            return _kcuda._zeros(f"optim.{self._name}", p, shape, None if dtype is None or dtype == p.dtype else dtype)
        return np.zeros(p.shape if shape is None else shape, p.dtype if dtype is None else dtype)

    def _check_hyper(self):
        """Check the hyper-parameters now, not at the first step: run the update
        on an empty list of arrays (the front door checks them; nothing moves)."""
        saved = self.params, self.state
        self.params, self.state = [], []
        try:
            self._update([], 1, self.lr if self.lr is not None else 0.0, 1.0)
        finally:
            self.params, self.state = saved

    # -- to be provided by subclasses
    def _init_state(self, p):  # pragma: no cover - abstract
        raise NotImplementedError

    def _update(self, grads, step, lr, grad_scale):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _check_lr(op, lr):
        lr = _num(op, "lr", lr)
        if not (math.isfinite(lr) and lr >= 0.0):
            raise ValueError(f"[kexue.{op}] lr must be finite and >= 0; got {lr}")
        return lr

    def _slot(self, name):
        return [s.get(name) for s in self.state]

    def step(self, grads, lr=None, max_grad_norm=None, skip_nonfinite=False):
        """Update every parameter in place from ``grads`` (a list, one per param).

        lr : float, optional -- this step's learning rate (schedules), else ``self.lr``
        max_grad_norm : float, optional -- global-norm clipping folded into the
            update: one read-only pass computes the norm N, then every gradient is
            scaled by min(1, max_norm / N) inside the update (grads are not modified)
        skip_nonfinite : bool -- if any gradient has NaN/inf, change nothing and
            return False

        Returns True when the step was taken. Every argument is checked before
        any array changes.
        """
        op = f"optim.{self._name}.step"
        grads = _grad_list(op, grads)
        if len(grads) != len(self.params):
            raise ValueError(f"[kexue.{op}] grads must have one array per param ({len(self.params)}); "
                             f"got {len(grads)}")
        lr = self.lr if lr is None else self._check_lr(op, lr)
        if max_grad_norm is not None:
            max_grad_norm = _num(op, "max_grad_norm", max_grad_norm)
            if not (math.isfinite(max_grad_norm) and max_grad_norm > 0.0):
                raise ValueError(f"[kexue.{op}] max_grad_norm must be finite and > 0; got {max_grad_norm}")
        scale = 1.0
        if max_grad_norm is not None or skip_nonfinite:
            norm, finite = _kcuda._backend(op, _core, grads, None)[0].optim_grad_norm(grads)
            if skip_nonfinite and not finite:
                return False
            if max_grad_norm is not None and finite and norm > max_grad_norm:
                scale = max_grad_norm / norm
        t = self.step_count + 1
        self._update(grads, t, lr, scale)
        self.step_count = t
        return True

    def state_dict(self):
        """{"step_count": int, "state": [{slot name: array copy} per param]}."""
        copy = _kcuda._copy if self._gpu else np.copy
        return {"step_count": int(self.step_count),
                "state": [{k: copy(v) for k, v in s.items()} for s in self.state]}

    def load_state_dict(self, state_dict):
        """Copy a :meth:`state_dict` in (checked entirely before anything changes)."""
        op = f"optim.{self._name}.load_state_dict"
        try:
            count = _int(op, "step_count", state_dict["step_count"])
            states = state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError(f'[kexue.{op}] state_dict must have keys "step_count" and "state"') from None
        if count < 0:
            raise ValueError(f"[kexue.{op}] step_count must be >= 0; got {count}")
        if len(states) != len(self.state):
            raise ValueError(f"[kexue.{op}] state must have one entry per param ({len(self.state)}); "
                             f"got {len(states)}")
        for i, (mine, theirs) in enumerate(zip(self.state, states)):
            if set(mine) != set(theirs):
                raise ValueError(f"[kexue.{op}] state[{i}] must have slots {sorted(mine)}; got {sorted(theirs)}")
            for k, a in mine.items():
                b = theirs[k] if self._gpu and hasattr(theirs[k], "dtype") else np.asarray(theirs[k])
                da, db = _kcuda._dtype_name(a), _kcuda._dtype_name(b)
                if db != da:
                    raise TypeError(f"[kexue.{op}] state[{i}][{k!r}] must have dtype {da}; got {db}")
                if tuple(b.shape) != tuple(a.shape):
                    raise ValueError(f"[kexue.{op}] state[{i}][{k!r}] must have shape {tuple(a.shape)}; "
                                     f"got {tuple(b.shape)}")
        for mine, theirs in zip(self.state, states):
            for k, a in mine.items():
                if self._gpu:
                    _kcuda._copy_into(a, theirs[k])
                else:
                    np.copyto(a, theirs[k])
        self.step_count = count

    def __repr__(self):
        return f"{type(self).__name__}({len(self.params)} arrays, lr={self.lr}, step_count={self.step_count})"


def _state_dtype(op, state_dtype, p):
    if state_dtype is None:
        return p.dtype
    if state_dtype in ("bfloat16", "bf16"):
        if _kcuda.is_gpu_array(p):
            raise ValueError(f'[kexue.{op}] state_dtype="bfloat16" has no CUDA kernel yet; GPU '
                             'parameters keep float state (state_dtype=None)')
        if p.dtype != np.float32:
            raise TypeError(f'[kexue.{op}] state_dtype="bfloat16" needs float32 params; got {p.dtype}')
        return np.uint16
    raise ValueError(f'[kexue.{op}] state_dtype must be None or "bfloat16"; got {state_dtype!r}')


class SGD(Optimizer):
    """SGD with momentum (torch.optim.SGD; spec C1).

    Examples
    --------
    >>> import numpy as np, kexue
    >>> p = np.array([0.5, -1.0, 2.0])
    >>> opt = kexue.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    >>> opt.step([np.array([0.1, -0.2, 0.3])]); opt.step([np.array([-0.05, 0.1, 0.4])])
    True
    True
    >>> p.round(6)
    array([ 0.4824, -0.9648,  1.8427])
    """

    _name = "SGD"
    _cuda_ok = True

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        op = "optim.SGD"
        self.momentum = _num(op, "momentum", momentum)
        self.dampening = _num(op, "dampening", dampening)
        self.weight_decay = _num(op, "weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.momentum < 0 or self.dampening < 0 or self.weight_decay < 0:
            raise ValueError(f"[kexue.{op}] momentum, dampening and weight_decay must be >= 0")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"[kexue.{op}] nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, lr)

    def _init_state(self, p):
        return {"momentum_buffer": self._zeros(p)} if self.momentum != 0 else {}

    def _update(self, grads, step, lr, grad_scale):
        bufs = self._slot("momentum_buffer") if self.momentum != 0 else None
        functional.sgd_(self.params, grads, bufs, step, lr=lr, momentum=self.momentum,
                        dampening=self.dampening, nesterov=self.nesterov,
                        weight_decay=self.weight_decay, grad_scale=grad_scale)


class Adam(Optimizer):
    """Adam (torch.optim.Adam; spec C2), optionally with bfloat16 moments.

    ``state_dtype="bfloat16"`` stores exp_avg and exp_avg_sq as bfloat16 bits
    (uint16) with seeded stochastic rounding: half the optimizer memory and
    fewer bytes per step (see :mod:`kexue.optim.functional`).

    Examples
    --------
    >>> import numpy as np, kexue
    >>> p = np.array([0.5, -1.0, 2.0])
    >>> opt = kexue.optim.Adam([p])
    >>> opt.step([np.array([0.1, -0.2, 0.3])]); opt.step([np.array([-0.05, 0.1, 0.4])])
    True
    True
    >>> p.round(8)
    array([ 0.49873366, -0.99873366,  1.99800268])
    """

    _name = "Adam"
    _cuda_ok = True
    _fn = staticmethod(functional.adam_)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 state_dtype=None, seed=0):
        op = f"optim.{self._name}"
        self.betas = _betas(op, betas)
        self.eps = _num(op, "eps", eps)
        self.weight_decay = _num(op, "weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)
        self.seed = _seed(op, seed)
        self.state_dtype = state_dtype
        if self.amsgrad and state_dtype is not None:
            raise ValueError(f"[kexue.{op}] amsgrad is not supported with bfloat16 state")
        super().__init__(params, lr)

    def _init_state(self, p):
        dt = _state_dtype(f"optim.{self._name}", self.state_dtype, p)
        s = {"exp_avg": self._zeros(p, dtype=dt), "exp_avg_sq": self._zeros(p, dtype=dt)}
        if self.amsgrad:
            s["max_exp_avg_sq"] = self._zeros(p, dtype=dt)
        return s

    def _update(self, grads, step, lr, grad_scale):
        self._fn(self.params, grads, self._slot("exp_avg"), self._slot("exp_avg_sq"), step, lr=lr,
                 beta1=self.betas[0], beta2=self.betas[1], eps=self.eps, weight_decay=self.weight_decay,
                 amsgrad=self.amsgrad, max_exp_avg_sqs=self._slot("max_exp_avg_sq") if self.amsgrad else None,
                 grad_scale=grad_scale, seed=self.seed)


class AdamW(Adam):
    """AdamW (torch.optim.AdamW; decoupled weight decay, default 0.01).

    Examples
    --------
    >>> import numpy as np, kexue
    >>> p = np.zeros(3, dtype=np.float32)
    >>> opt = kexue.optim.AdamW([p], lr=0.1, state_dtype="bfloat16", seed=7)
    >>> opt.step([np.array([1.0, -1.0, 0.0], dtype=np.float32)])
    True
    >>> p.astype(float).round(6).tolist(), opt.state[0]["exp_avg"].dtype
    ([-0.1, 0.1, 0.0], dtype('uint16'))
    """

    _name = "AdamW"
    _fn = staticmethod(functional.adamw_)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 state_dtype=None, seed=0):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, state_dtype=state_dtype, seed=seed)


class AdaX(Optimizer):
    """AdaX (kexue.fm/archives/7387; spec C3): betas=(beta1, beta2) with beta2 = 1e-4.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> p = np.array([0.5, -1.0, 2.0])
    >>> opt = kexue.optim.AdaX([p])
    >>> opt.step([np.array([0.1, -0.2, 0.3])])
    True
    >>> p.round(8)
    array([ 0.4999, -0.9999,  1.9999])
    """

    _name = "AdaX"
    _cuda_ok = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 1e-4), eps=1e-6, weight_decay=0.0, *, state_dtype=None,
                 seed=0):
        op = "optim.AdaX"
        self.betas = _betas(op, betas)
        self.eps = _num(op, "eps", eps)
        self.weight_decay = _num(op, "weight_decay", weight_decay)
        self.seed = _seed(op, seed)
        self.state_dtype = state_dtype
        super().__init__(params, lr)

    def _init_state(self, p):
        dt = _state_dtype("optim.AdaX", self.state_dtype, p)
        return {"exp_avg": self._zeros(p, dtype=dt), "exp_avg_sq": self._zeros(p, dtype=dt)}

    def _update(self, grads, step, lr, grad_scale):
        functional.adax_(self.params, grads, self._slot("exp_avg"), self._slot("exp_avg_sq"), step, lr=lr,
                         beta1=self.betas[0], beta2=self.betas[1], eps=self.eps,
                         weight_decay=self.weight_decay, grad_scale=grad_scale, seed=self.seed)


class Lion(Optimizer):
    """Lion (spec C6): sign updates; lr 3-10x smaller and weight decay 3-10x larger than AdamW's.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> p = np.array([0.5, -1.0, 2.0])
    >>> opt = kexue.optim.Lion([p])
    >>> opt.step([np.array([0.1, -0.2, 0.3])])
    True
    >>> p.round(8)
    array([ 0.4999, -0.9999,  1.9999])
    """

    _name = "Lion"
    _cuda_ok = True

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, state_dtype=None, seed=0):
        op = "optim.Lion"
        self.betas = _betas(op, betas)
        self.weight_decay = _num(op, "weight_decay", weight_decay)
        self.seed = _seed(op, seed)
        self.state_dtype = state_dtype
        super().__init__(params, lr)

    def _init_state(self, p):
        return {"exp_avg": self._zeros(p, dtype=_state_dtype("optim.Lion", self.state_dtype, p))}

    def _update(self, grads, step, lr, grad_scale):
        functional.lion_(self.params, grads, self._slot("exp_avg"), step, lr=lr, beta1=self.betas[0],
                         beta2=self.betas[1], weight_decay=self.weight_decay, grad_scale=grad_scale,
                         seed=self.seed)


class LAMB(Optimizer):
    """LAMB (spec C5): Adam's direction with a per-array trust ratio ||p|| / ||r||.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> p = np.array([0.5, -1.0, 2.0])
    >>> opt = kexue.optim.LAMB([p])
    >>> opt.step([np.array([0.1, -0.2, 0.3])])
    True
    >>> p.round(8)
    array([ 0.49868587, -0.99867933,  1.99866625])
    """

    _name = "LAMB"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        op = "optim.LAMB"
        self.betas = _betas(op, betas)
        self.eps = _num(op, "eps", eps)
        self.weight_decay = _num(op, "weight_decay", weight_decay)
        super().__init__(params, lr)

    def _init_state(self, p):
        return {"exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)}

    def _update(self, grads, step, lr, grad_scale):
        functional.lamb_(self.params, grads, self._slot("exp_avg"), self._slot("exp_avg_sq"), step, lr=lr,
                         beta1=self.betas[0], beta2=self.betas[1], eps=self.eps,
                         weight_decay=self.weight_decay, grad_scale=grad_scale)


class Adafactor(Optimizer):
    """Adafactor, Su's bert4keras formulation (spec C4).

    lr=None: relative step min(1/sqrt(t), 0.01). beta2=None: 1 - t^-0.8.
    ``eps=(eps1, eps2)`` and ``d`` (the update clipping threshold) follow
    torch.optim.Adafactor's names; the update itself follows the spec (torch's
    Adafactor differs: no parameter-scale factor, eps handled differently).
    Arrays whose second-largest axis is >= min_dim_size_to_factor keep
    factored second moments (``exp_avg_sq_row``, ``exp_avg_sq_col``).

    Examples
    --------
    >>> import numpy as np, kexue
    >>> W = np.array([[0.5, -1.0, 2.0], [0.1, 0.3, -0.4]])
    >>> opt = kexue.optim.Adafactor([W])
    >>> opt.step([np.array([[0.1, -0.2, 0.3], [0.05, 0.0, -0.1]])])
    True
    >>> W.round(8)
    array([[ 0.49041703, -0.99041703,  1.99041703],
           [ 0.09041703,  0.3       , -0.39041703]])
    """

    _name = "Adafactor"

    def __init__(self, params, lr=None, beta1=0.0, beta2=None, eps=(1e-30, 1e-3), d=1.0,
                 multiply_by_parameter_scale=True, min_dim_size_to_factor=128):
        op = "optim.Adafactor"
        self.beta1 = _num(op, "beta1", beta1)
        self.beta2 = None if beta2 is None else _num(op, "beta2", beta2)
        if not isinstance(eps, (tuple, list)) or len(eps) != 2:
            raise ValueError(f"[kexue.{op}] eps must be a pair (eps1, eps2); got {eps!r}")
        self.eps = (_num(op, "eps[0]", eps[0]), _num(op, "eps[1]", eps[1]))
        self.d = _num(op, "d", d)
        self.multiply_by_parameter_scale = bool(multiply_by_parameter_scale)
        self.min_dim_size_to_factor = _int(op, "min_dim_size_to_factor", min_dim_size_to_factor)
        super().__init__(params, lr)

    def _init_state(self, p):
        s = {}
        if self.beta1 > 0:
            s["exp_avg"] = np.zeros_like(p)
        f = functional.adafactor_shapes(p.shape, self.min_dim_size_to_factor)
        if f is None:
            s["exp_avg_sq"] = np.zeros_like(p)
        else:
            s["exp_avg_sq_row"] = np.zeros(f[0], p.dtype)
            s["exp_avg_sq_col"] = np.zeros(f[1], p.dtype)
        return s

    def _update(self, grads, step, lr, grad_scale):
        functional.adafactor_(self.params, grads, self._slot("exp_avg"), self._slot("exp_avg_sq"),
                              self._slot("exp_avg_sq_row"), self._slot("exp_avg_sq_col"), step, lr=lr,
                              beta1=self.beta1, beta2=self.beta2, eps1=self.eps[0], eps2=self.eps[1],
                              d=self.d, multiply_by_parameter_scale=self.multiply_by_parameter_scale,
                              grad_scale=grad_scale)


class Amos(Optimizer):
    """Amos (spec C7): ``lr`` is the global rate xi, ``eta`` the expected entry
    scale (a number or one per param); ``reduce_all=True`` keeps one scalar v
    and b per array instead of one per element.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> p = np.array([0.5, -1.0, 2.0])
    >>> opt = kexue.optim.Amos([p], lr=0.01, eta=0.5)
    >>> opt.step([np.array([0.1, -0.2, 0.3])])
    True
    >>> p.round(6)
    array([ 0.494975, -0.99495 ,  1.9949  ])
    """

    _name = "Amos"

    def __init__(self, params, lr=1e-2, eta=0.5, beta=0.999, zeta=0.25, eps=2**-125, finetune_rate=1.0,
                 reduce_all=False):
        op = "optim.Amos"
        self.eta = [_num(op, "eta", e) for e in eta] if isinstance(eta, (list, tuple)) else _num(op, "eta", eta)
        self.beta = _num(op, "beta", beta)
        self.zeta = _num(op, "zeta", zeta)
        self.eps = _num(op, "eps", eps)
        self.finetune_rate = _num(op, "finetune_rate", finetune_rate)
        self.reduce_all = bool(reduce_all)
        if isinstance(self.eta, list) and isinstance(params, (list, tuple)) and len(self.eta) != len(params):
            raise ValueError(f"[kexue.{op}] eta must be one number or one per param ({len(params)}); "
                             f"got {len(self.eta)}")
        super().__init__(params, lr)

    def _init_state(self, p):
        shape = () if self.reduce_all else p.shape
        return {"exp_avg_sq": np.zeros(shape, p.dtype), "decay": np.zeros(shape, p.dtype)}

    def _update(self, grads, step, lr, grad_scale):
        eta = self.eta
        if isinstance(eta, list) and not self.params:  # the hyper-parameter check runs on no arrays
            eta = eta[0] if eta else 0.5
        functional.amos_(self.params, grads, self._slot("exp_avg_sq"), self._slot("decay"), step, lr=lr,
                         eta=eta, beta=self.beta, zeta=self.zeta, eps=self.eps,
                         finetune_rate=self.finetune_rate, grad_scale=grad_scale)
