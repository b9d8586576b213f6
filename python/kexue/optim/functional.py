"""Optimizer updates as free functions over explicit state arrays.

Each function updates ``params`` and its state arrays **in place** and returns
None. Pass one array, or lists of arrays (one call then updates them all in
one fused, multi-threaded pass per array -- the classes in :mod:`kexue.optim`
do this). Conventions shared by every function:

- ``params``: float32 or float64 numpy arrays (all of one dtype), C-contiguous
  and writeable -- they are never copied. ``grads``: the same shapes and dtype
  (a non-contiguous gradient is copied once, never written). State arrays:
  the param's shape and dtype (Adafactor and Amos document their own shapes),
  or ``uint16`` holding bfloat16 bits where a function says so.
- ``step``: the 1-based number of this update (the first update is step 1).
- ``grad_scale`` (> 0) multiplies every gradient inside the update; the
  classes use it to fold ``max_grad_norm`` clipping into the step.
- Everything is checked before anything is written: a call that raises has
  changed no byte of any array.
- Arithmetic runs in the params' precision (float32 for float32 params, as
  torch does), in torch's operation order for SGD/Adam/AdamW.

bfloat16 state (adam_, adamw_, adax_, lion_; float32 params only): pass
``uint16`` arrays as the moments. New moments are computed in float32 from the
decoded state, the parameter is updated from those float32 values, and the
stored moments are rounded to bfloat16 *stochastically*: 16 random bits are
added below the kept mantissa before truncation, so the rounding is unbiased
and small updates are not lost the way they are with round-to-nearest. The
bits are Philox4x32-10 words keyed by ``seed``, with counter (element block,
step, position of the array in the list): element e of array a uses word
(e % 64) // 16 of the draw with counter (e // 64 * 16 + e % 16, step, a); m
takes its low 16 bits, v its high 16. Results are thus reproducible and
independent of the thread count. Effect on accuracy: the moments carry 8
mantissa bits (relative rounding noise up to 2^-8 per step, zero mean);
parameters stay float32. Measured (tests/test_optim.py): AdamW on a 512x256
least-squares problem follows the float32-state run to 0.2-0.3% of the
parameters after 300 steps and reaches the same point (2e-7) after 2000.

GPU arrays (sgd_, adam_, adamw_, adax_, lion_): pass arrays exposing
``__cuda_array_interface__`` (CuPy, torch.cuda tensors) -- params, grads
and float state, C-contiguous, all on one device -- and the step runs there
in place, bitwise equal to the CPU's, on ``stream`` (see :mod:`kexue.cuda`).
``stream`` must be None for host arrays.

Every function has a numpy twin of the same name in
:mod:`kexue.reference.optim`. Formulas: the issue's spec, section C.
"""
from __future__ import annotations

import operator

import numpy as np

from .. import _core
from .. import cuda as _kcuda
from .._util import arr

__all__ = [
    "adafactor_",
    "adafactor_shapes",
    "adam_",
    "adamw_",
    "adax_",
    "amos_",
    "lamb_",
    "lion_",
    "sgd_",
]


def _is_list(x):
    return isinstance(x, (list, tuple))


def _lists(op, params, grads, *states):
    """params, grads and each state as lists of the same structure."""
    single = not _is_list(params)
    if single:
        params = [params]
    if single != (not _is_list(grads)):
        raise TypeError(
            f"[kexue.{op}] grads must be " + ("one array (params is one array)" if single
                                              else "a list (params is a list)")
            + f"; got {type(grads).__name__}")
    grads = [grads] if single else list(grads)
    grads = [g if g is None or _kcuda.is_gpu_array(g) else arr(g) for g in grads]
    out = []
    for s in states:
        if s is None:
            out.append(None)
        elif single:
            out.append([s])
        elif not _is_list(s):
            raise TypeError(f"[kexue.{op}] state arguments must be lists when params is a list; "
                            f"got {type(s).__name__}")
        else:
            out.append(list(s))
    return list(params), grads, out


def _num(op, name, x):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"[kexue.{op}] {name} must be a number; got {type(x).__name__}")
    return float(x)


def _int(op, name, x):
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"[kexue.{op}] {name} must be an int; got bool")
    try:
        return operator.index(x)
    except TypeError:
        raise TypeError(f"[kexue.{op}] {name} must be an int; got {type(x).__name__}") from None


def _seed(op, seed):
    s = _int(op, "seed", seed)
    if not 0 <= s < 2**64:
        raise ValueError(f"[kexue.{op}] seed must be in [0, 2**64); got {s}")
    return s


def _step(op, step):
    t = _int(op, "step", step)
    if t < 1:
        raise ValueError(f"[kexue.{op}] step must be >= 1 (the 1-based number of this update); got {t}")
    if t >= 2**63:
        raise ValueError(f"[kexue.{op}] step is too large; got {t}")
    return t


def sgd_(params, grads, momentum_buffers, step, *, lr, momentum=0.0, dampening=0.0,
         nesterov=False, weight_decay=0.0, grad_scale=1.0, stream=None):
    """SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD).

    d = g + weight_decay * p; with momentum: buf = d at step 1, else
    momentum * buf + (1 - dampening) * d; d = d + momentum * buf (Nesterov) or buf;
    p = p - lr * d.

    Parameters
    ----------
    params, grads : ndarray or list of ndarrays, float32/float64, any shapes
    momentum_buffers : same structure (None when momentum == 0)
    step : int >= 1

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.optim import functional as F
    >>> p = np.array([0.5, -1.0, 2.0]); buf = np.zeros(3)
    >>> F.sgd_(p, np.array([0.1, -0.2, 0.3]), buf, 1, lr=0.1, momentum=0.9)
    >>> F.sgd_(p, np.array([-0.05, 0.1, 0.4]), buf, 2, lr=0.1, momentum=0.9)
    >>> p.round(6)
    array([ 0.486, -0.972,  1.903])

    Reference twin: :func:`kexue.reference.optim.sgd_`.
    """
    op = "optim.sgd_"
    p, g, (b,) = _lists(op, params, grads, momentum_buffers)
    mod, on_stream = _kcuda._backend(op, _core, p, stream)
    with on_stream:
        mod.optim_sgd(p, g, b, _step(op, step), lr=_num(op, "lr", lr),
                      momentum=_num(op, "momentum", momentum), dampening=_num(op, "dampening", dampening),
                      weight_decay=_num(op, "weight_decay", weight_decay), nesterov=bool(nesterov),
                      grad_scale=_num(op, "grad_scale", grad_scale))


def _adam(op, decoupled, params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
          weight_decay, amsgrad, max_exp_avg_sqs, grad_scale, seed, stream):
    if amsgrad and max_exp_avg_sqs is None:
        raise ValueError(f"[kexue.{op}] max_exp_avg_sqs is required with amsgrad=True; got None")
    p, g, (m, v, vm) = _lists(op, params, grads, exp_avgs, exp_avg_sqs,
                              max_exp_avg_sqs if amsgrad else None)
    mod, on_stream = _kcuda._backend(op, _core, p, stream)
    with on_stream:
        mod.optim_adam(p, g, m, v, vm, _step(op, step), lr=_num(op, "lr", lr),
                       beta1=_num(op, "beta1", beta1), beta2=_num(op, "beta2", beta2),
                       eps=_num(op, "eps", eps), weight_decay=_num(op, "weight_decay", weight_decay),
                       amsgrad=bool(amsgrad), decoupled=decoupled,
                       grad_scale=_num(op, "grad_scale", grad_scale), seed=_seed(op, seed))


def adam_(params, grads, exp_avgs, exp_avg_sqs, step, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
          weight_decay=0.0, amsgrad=False, max_exp_avg_sqs=None, grad_scale=1.0, seed=0, stream=None):
    """Adam (torch.optim.Adam): L2 weight decay added to the gradient.

    d = g + weight_decay * p; m = lerp(m, d, 1 - beta1); v = beta2 v + (1 - beta2) d^2;
    (amsgrad: vmax = max(vmax, v), used for v); p = p - lr / (1 - beta1^t) *
    m / (sqrt(v) / sqrt(1 - beta2^t) + eps).

    Parameters
    ----------
    params, grads : ndarray or list, float32/float64
    exp_avgs, exp_avg_sqs : state, the params' shapes; the params' dtype or uint16
        (bfloat16, float32 params only -- see the module docstring)
    max_exp_avg_sqs : state for amsgrad (not with bfloat16 state)
    seed : int in [0, 2**64), the stochastic rounding of bfloat16 state
    stream : CUDA stream for GPU arrays (None: the default stream); see :mod:`kexue.cuda`

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.optim import functional as F
    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3); v = np.zeros(3)
    >>> F.adam_(p, np.array([0.1, -0.2, 0.3]), m, v, 1)
    >>> F.adam_(p, np.array([-0.05, 0.1, 0.4]), m, v, 2)
    >>> p.round(8)
    array([ 0.49873366, -0.99873366,  1.99800268])

    Reference twin: :func:`kexue.reference.optim.adam_`.
    """
    _adam("optim.adam_", False, params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
          weight_decay, amsgrad, max_exp_avg_sqs, grad_scale, seed, stream)


def adamw_(params, grads, exp_avgs, exp_avg_sqs, step, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=1e-2, amsgrad=False, max_exp_avg_sqs=None, grad_scale=1.0, seed=0, stream=None):
    """AdamW (torch.optim.AdamW): p = p * (1 - lr * weight_decay), then Adam without L2.

    Arguments as :func:`adam_`; bfloat16 state is supported the same way.

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.optim import functional as F
    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3); v = np.zeros(3)
    >>> F.adamw_(p, np.array([0.1, -0.2, 0.3]), m, v, 1)
    >>> F.adamw_(p, np.array([-0.05, 0.1, 0.4]), m, v, 2)
    >>> p.round(8)
    array([ 0.49872367, -0.99871367,  1.99796269])

    Reference twin: :func:`kexue.reference.optim.adamw_`.
    """
    _adam("optim.adamw_", True, params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps,
          weight_decay, amsgrad, max_exp_avg_sqs, grad_scale, seed, stream)


def adax_(params, grads, exp_avgs, exp_avg_sqs, step, *, lr=1e-3, beta1=0.9, beta2=1e-4, eps=1e-6,
          weight_decay=0.0, grad_scale=1.0, seed=0, stream=None):
    """AdaX (kexue.fm/archives/7387): Adam with an exponentially *growing* second moment.

    p = p (1 - lr weight_decay); m = beta1 m + (1 - beta1) g; v = (1 + beta2) v + beta2 g^2;
    p = p - lr m / (sqrt(v / ((1 + beta2)^t - 1)) + eps). eps sits outside the
    square root, as in the tf.keras code (the article writes it inside). The
    bias correction makes v-hat an average with weight 1 - beta2/((1+beta2)^t - 1):
    full correction early, SGD-like late. bfloat16 state as in :func:`adam_`.

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.optim import functional as F
    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3); v = np.zeros(3)
    >>> F.adax_(p, np.array([0.1, -0.2, 0.3]), m, v, 1)
    >>> F.adax_(p, np.array([-0.05, 0.1, 0.4]), m, v, 2)
    >>> p.round(8)
    array([ 0.49984941, -0.99984941,  1.99971049])

    Reference twin: :func:`kexue.reference.optim.adax_`.
    """
    op = "optim.adax_"
    p, g, (m, v) = _lists(op, params, grads, exp_avgs, exp_avg_sqs)
    mod, on_stream = _kcuda._backend(op, _core, p, stream)
    with on_stream:
        mod.optim_adax(p, g, m, v, _step(op, step), lr=_num(op, "lr", lr), beta1=_num(op, "beta1", beta1),
                       beta2=_num(op, "beta2", beta2), eps=_num(op, "eps", eps),
                       weight_decay=_num(op, "weight_decay", weight_decay),
                       grad_scale=_num(op, "grad_scale", grad_scale), seed=_seed(op, seed))


def lion_(params, grads, exp_avgs, step, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0,
          grad_scale=1.0, seed=0, stream=None):
    """Lion (Chen et al. 2023): the sign of an interpolated momentum.

    c = beta1 m + (1 - beta1) g (in float64 for either dtype, so the sign never
    depends on the precision); p = p - lr (sign(c) + weight_decay p), sign(0) = 0;
    then m = beta2 m + (1 - beta2) g, also in float64 and rounded once (so a
    float32 m is exactly the twin's, and sign(c) cannot flip on an ulp; bfloat16
    state uses the float32 recipe of the module docstring). ``step`` only keys
    the bfloat16 rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.optim import functional as F
    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3)
    >>> F.lion_(p, np.array([0.1, -0.2, 0.3]), m, 1)
    >>> F.lion_(p, np.array([-0.05, 0.1, 0.4]), m, 2)
    >>> p.round(8)
    array([ 0.5   , -1.    ,  1.9998])

    Reference twin: :func:`kexue.reference.optim.lion_`.
    """
    op = "optim.lion_"
    p, g, (m,) = _lists(op, params, grads, exp_avgs)
    mod, on_stream = _kcuda._backend(op, _core, p, stream)
    with on_stream:
        mod.optim_lion(p, g, m, _step(op, step), lr=_num(op, "lr", lr), beta1=_num(op, "beta1", beta1),
                       beta2=_num(op, "beta2", beta2), weight_decay=_num(op, "weight_decay", weight_decay),
                       grad_scale=_num(op, "grad_scale", grad_scale), seed=_seed(op, seed))


def lamb_(params, grads, exp_avgs, exp_avg_sqs, step, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6,
          weight_decay=0.01, grad_scale=1.0):
    """LAMB (You et al. 2020): Adam's direction scaled by a per-array trust ratio.

    r = m-hat / (sqrt(v-hat) + eps) + weight_decay p; tau = ||p|| / ||r|| (1 if
    either is 0), per array; p = p - lr tau r. Two passes per array (the norms
    first); r is recomputed, not stored.

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.optim import functional as F
    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3); v = np.zeros(3)
    >>> F.lamb_(p, np.array([0.1, -0.2, 0.3]), m, v, 1)
    >>> p.round(8)
    array([ 0.49868587, -0.99867933,  1.99866625])

    Reference twin: :func:`kexue.reference.optim.lamb_`.
    """
    op = "optim.lamb_"
    p, g, (m, v) = _lists(op, params, grads, exp_avgs, exp_avg_sqs)
    mod = _kcuda._backend(op, _core, p, None)[0]
    mod.optim_lamb(p, g, m, v, _step(op, step), lr=_num(op, "lr", lr), beta1=_num(op, "beta1", beta1),
                   beta2=_num(op, "beta2", beta2), eps=_num(op, "eps", eps),
                   weight_decay=_num(op, "weight_decay", weight_decay),
                   grad_scale=_num(op, "grad_scale", grad_scale))


def adafactor_shapes(shape, min_dim_size_to_factor=128):
    """The factored state shapes for a parameter of ``shape``, or None.

    Returns (row_shape, col_shape): ``shape`` with its largest axis a1 removed,
    and with its second-largest axis a2 removed (ties: the later axis is a1).
    None when ndim < 2 or size(a2) < min_dim_size_to_factor: keep the full
    second moment (the param's shape) instead.

    Examples
    --------
    >>> from kexue.optim.functional import adafactor_shapes
    >>> adafactor_shapes((512, 1024))
    ((512,), (1024,))
    >>> adafactor_shapes((3, 1024)) is None
    True

    Reference twin: :func:`kexue.reference.optim.adafactor_shapes`.
    """
    op = "optim.adafactor_shapes"
    try:
        shp = [_int(op, "shape", s) for s in shape]
    except TypeError:
        raise TypeError(f"[kexue.{op}] shape must be a sequence of ints; got {shape!r}") from None
    return _core.optim_adafactor_shapes(shp, _int(op, "min_dim_size_to_factor", min_dim_size_to_factor))


def adafactor_(params, grads, exp_avgs, exp_avg_sqs, exp_avg_sq_rows, exp_avg_sq_cols, step, *, lr=None,
               beta1=0.0, beta2=None, eps1=1e-30, eps2=1e-3, d=1.0, multiply_by_parameter_scale=True,
               grad_scale=1.0):
    """Adafactor, Su's bert4keras formulation (spec C4).

    Each array keeps either the full second moment (``exp_avg_sqs`` entry, the
    param's shape; row/col entries None) or the factored pair (row/col entries
    with :func:`adafactor_shapes`; ``exp_avg_sqs`` entry None). ``exp_avgs``
    entries are used only when beta1 > 0 (else pass None).

    lr None: relative step min(1/sqrt(t), 0.01) (x 0.05 without parameter
    scaling). beta2 None: beta2_t = 1 - t^-0.8. G2 = g^2 + eps1; factored:
    R, C = EMAs of the means of G2 over a1 and a2, V = R (x) C / mean_a2(R);
    U = g / sqrt(V + eps1), clipped to RMS(U) <= d; momentum if beta1 > 0;
    U *= max(RMS(p), eps2) with parameter scaling; p = p - lr_t U. Three reads
    of g (the global RMS(U) clip needs the finished V first).

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.optim import functional as F
    >>> W = np.array([[0.5, -1.0, 2.0], [0.1, 0.3, -0.4]])
    >>> G = np.array([[0.1, -0.2, 0.3], [0.05, 0.0, -0.1]])
    >>> r, c = F.adafactor_shapes(W.shape, 1)
    >>> R, C = np.zeros(r), np.zeros(c)
    >>> F.adafactor_(W, G, None, None, R, C, 1)
    >>> W.round(8)
    array([[ 0.49147127, -0.99046459,  1.99095391],
           [ 0.0857287 ,  0.3       , -0.38990867]])

    Reference twin: :func:`kexue.reference.optim.adafactor_`.
    """
    op = "optim.adafactor_"
    p, g, (m, v, vr, vc) = _lists(op, params, grads, exp_avgs, exp_avg_sqs, exp_avg_sq_rows,
                                  exp_avg_sq_cols)
    n = len(p)
    m, v, vr, vc = ([None] * n if s is None else s for s in (m, v, vr, vc))
    mod = _kcuda._backend(op, _core, p, None)[0]
    mod.optim_adafactor(p, g, m, v, vr, vc, _step(op, step),
                        lr=None if lr is None else _num(op, "lr", lr), beta1=_num(op, "beta1", beta1),
                        beta2=None if beta2 is None else _num(op, "beta2", beta2),
                        eps1=_num(op, "eps1", eps1), eps2=_num(op, "eps2", eps2), d=_num(op, "d", d),
                        multiply_by_parameter_scale=bool(multiply_by_parameter_scale),
                        grad_scale=_num(op, "grad_scale", grad_scale))


def amos_(params, grads, exp_avg_sqs, decays, step, *, lr, eta, beta=0.999, zeta=0.25, eps=2**-125,
          finetune_rate=1.0, grad_scale=1.0):
    """Amos (Tian and Parikh 2022; jestimator), spec C7.

    ``lr`` is the global rate xi (about 1/sqrt(number of batches)), ``eta`` the
    expected scale of the entries (one number, or one per array). State v
    (``exp_avg_sqs``) and b (``decays``), per array, either the param's shape
    (elementwise) or shape () (one scalar: g^2 averaged over the array).
    v = beta v + (1 - beta) g2; r = (1 - beta^t) / max(v, eps);
    gamma = sqrt(fr) (1 + zeta sqrt(xi) b)^-1/2 xi^2 r g2; a0 = xi eta;
    p = p + fr / (1 + zeta sqrt(a0) b) (-a0 sqrt(r) g - gamma p / 2);
    b = b + gamma (fr + b). The weight decay is thus second order in the rate.

    Examples
    --------
    >>> import numpy as np
    >>> from kexue.optim import functional as F
    >>> p = np.array([0.5, -1.0, 2.0]); v = np.zeros(3); b = np.zeros(3)
    >>> F.amos_(p, np.array([0.1, -0.2, 0.3]), v, b, 1, lr=0.01, eta=0.5)
    >>> p.round(6)
    array([ 0.494975, -0.99495 ,  1.9949  ])

    Reference twin: :func:`kexue.reference.optim.amos_`.
    """
    op = "optim.amos_"
    p, g, (v, b) = _lists(op, params, grads, exp_avg_sqs, decays)
    if _is_list(eta):
        if len(eta) != len(p):
            raise ValueError(f"[kexue.{op}] eta must be one number or a list with one per array ({len(p)}); "
                             f"got a list of {len(eta)}")
        etas = [_num(op, "eta", e) for e in eta]
    else:
        etas = [_num(op, "eta", eta)]
    mod = _kcuda._backend(op, _core, p, None)[0]
    mod.optim_amos(p, g, v, b, _step(op, step), lr=_num(op, "lr", lr), eta=etas,
                   beta=_num(op, "beta", beta), zeta=_num(op, "zeta", zeta), eps=_num(op, "eps", eps),
                   finetune_rate=_num(op, "finetune_rate", finetune_rate),
                   grad_scale=_num(op, "grad_scale", grad_scale))
