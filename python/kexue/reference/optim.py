"""Pure-numpy optimizer steps: the twin of :mod:`kexue.optim` (spec kernels §C).

Everything the core offers, written for clarity: the functional in-place
updates (``sgd_``, ``adam_``, ``adamw_``, ``adax_``, ``lion_``, ``lamb_``,
``adafactor_``, ``amos_``), global-norm clipping (``clip_grad_norm_``),
ChildTuning-F gradient dropout (``child_tuning_``), the learning-rate
schedules, the stateful classes (``SGD`` ... ``Amos``), and the counter-based
random numbers behind bfloat16 state (``philox4x32_10``, ``random_words``,
``bf16_decode``, ``bf16_stochastic_round``).

Conventions (the contract of issue 4):

* ``params`` is one array or a list of arrays (float32 or float64,
  C-contiguous, writeable); every other per-array argument has the same
  structure. Updates are IN PLACE and return None.
* ``step`` is the 1-based number of THIS update (torch style).
* ``grad_scale`` multiplies every gradient inside the update (global-norm
  clipping folded into the step); the grads themselves are never modified.
  Below, ``g`` means ``grad * grad_scale``.
* Arithmetic is float64 inside; results are written back in the array's own
  dtype (``p[...] = new.astype(p.dtype)``). Two exceptions, prescribed so the
  core can match bitwise: bfloat16 moments are computed in float32 (in a
  fixed order), and Lion's ``c`` is always evaluated in float64.
* The parameter update always uses the freshly computed (unrounded) moments;
  the stored state is their rounding to the state dtype.

bfloat16 state (``adam_``, ``adamw_``, ``adax_``, ``lion_`` with float32
params): the state arrays are uint16 arrays holding bfloat16 bits; new moments
are rounded stochastically with Philox4x32-10 words (see :func:`random_words`),
so ``E[stored] = exact`` and the error does not accumulate as a bias.

This module never imports the compiled core nor anything else from kexue.
Validation is minimal; the checked front door is the core.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    # random numbers and bfloat16
    "philox4x32_10",
    "random_words",
    "bf16_decode",
    "bf16_stochastic_round",
    # functional updates
    "sgd_",
    "adam_",
    "adamw_",
    "adax_",
    "lion_",
    "lamb_",
    "adafactor_",
    "adafactor_shapes",
    "amos_",
    # gradient transforms
    "clip_grad_norm_",
    "child_tuning_",
    # schedules
    "warmup_linear",
    "warmup_cosine",
    "inverse_square_decay",
    "inverse_time_decay",
    "alchemy",
    # classes
    "SGD",
    "Adam",
    "AdamW",
    "AdaX",
    "Lion",
    "LAMB",
    "Adafactor",
    "Amos",
]

# ============================================================================
# Philox4x32-10 (Salmon, Moraes, Dror, Shaw, SC11; Random123 constants)

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)

#: ``tag`` of :func:`random_words` for ChildTuning masks (bit 31 of counter word 3)
CHILD_TUNING_TAG = 0x80000000


def _u64(x):
    return np.asarray(x).astype(np.uint64) & _MASK32


def _philox4x32(counter, key, rounds):
    """Philox4x32 with ``rounds`` rounds; see :func:`philox4x32_10`."""
    if len(counter) != 4 or len(key) != 2:
        raise ValueError("counter must have 4 words and key 2 words")
    c0, c1, c2, c3 = (_u64(c) for c in counter)
    k0, k1 = (_u64(k) for k in key)
    c0, c1, c2, c3, k0, k1 = np.broadcast_arrays(c0, c1, c2, c3, k0, k1)
    for r in range(rounds):
        if r:  # the key is bumped between rounds, not after the last
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        p0 = _M0 * c0  # < 2^64: exact in uint64
        p1 = _M1 * c2
        hi0, lo0 = p0 >> _SHIFT32, p0 & _MASK32
        hi1, lo1 = p1 >> _SHIFT32, p1 & _MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def philox4x32_10(counter, key):
    """The Philox4x32-10 bijection (Random123), vectorised over numpy arrays.

    counter: 4 words (a sequence of 4 ints/arrays, or an array [4, ...]);
    key: 2 words (sequence or array [2, ...]); uint32 or uint64 values (only
    the low 32 bits count), broadcast against each other.
    Returns uint32 [4, ...]: the 4 output words.

    One round: ``(hi0, lo0) = mulhilo(M0, c0); (hi1, lo1) = mulhilo(M1, c2);
    c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)``; the key is bumped by
    (W0, W1) mod 2^32 between rounds.

    >>> [hex(w) for w in philox4x32_10((0, 0, 0, 0), (0, 0))]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    return _philox4x32(counter, key, 10)


def random_words(n, array_index, step, seed, tag=0):
    """uint32 [n]: the Philox word of each element of a flat (C order) array.

    Element e of the array at position ``array_index`` of the list, at
    optimizer step ``step`` with ``seed`` (uint64), uses::

        blk = e // 64; k = (e % 64) // 16; lane = e % 16; ctr = blk*16 + lane
        out = philox4x32_10((ctr & 0xffffffff, ctr >> 32, step & 0xffffffff,
                             array_index | tag), (seed & 0xffffffff, seed >> 32))
        w[e] = out[k]

    i.e. each block of 64 elements takes the 4 words of 16 consecutive counters,
    word-major. ``tag`` = 0 for bfloat16 state rounding, 0x80000000
    (:data:`CHILD_TUNING_TAG`) for ChildTuning masks.

    >>> random_words(3, 0, 1, 0).dtype, random_words(3, 0, 1, 0).shape
    (dtype('uint32'), (3,))
    """
    n = int(n)
    seed = int(seed)
    if seed < 0 or seed >= 2**64:
        raise ValueError(f"seed must be in [0, 2**64); got {seed}")
    nblk = -(-n // 64)
    ctr = np.arange(nblk * 16, dtype=np.uint64)
    out = philox4x32_10(
        (
            ctr & _MASK32,
            ctr >> _SHIFT32,
            int(step) & 0xFFFFFFFF,
            (int(array_index) | int(tag)) & 0xFFFFFFFF,
        ),
        (seed & 0xFFFFFFFF, seed >> 32),
    )
    e = np.arange(n, dtype=np.int64)
    return out[(e % 64) // 16, (e // 64) * 16 + e % 16]


# ============================================================================
# bfloat16 (stored as uint16 bit patterns)


def bf16_decode(bits):
    """float32 array of the bfloat16 bit patterns ``bits`` (uint16): ``bits << 16``.

    >>> bf16_decode(np.array([0x3F80, 0xC000], dtype=np.uint16))
    array([ 1., -2.], dtype=float32)
    """
    bits = np.asarray(bits)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def bf16_stochastic_round(x, r):
    """uint16 bfloat16 bits of float32 ``x`` rounded stochastically with ``r``.

    b = float32 bits of x; NaN -> ``(b >> 16) | 0x0040`` (stays a quiet NaN);
    otherwise ``((b + r) mod 2^32) >> 16``. With r uniform in [0, 65536) the
    result rounds up (away from zero) with probability (b & 0xffff)/65536, so
    ``E[decode(result)] = x`` exactly (the low 16 bits are linear in x within
    a binade, and one bf16 step past the top of a binade is the next power of 2).
    Infinities stay infinite; values within one bf16 step of FLT_MAX may round to inf.

    >>> x = np.float32([1.00390625, 1.00390625])   # half-way between bf16 1 and 1 + 2**-7
    >>> bf16_decode(bf16_stochastic_round(x, np.uint32([0x7fff, 0x8000])))
    array([1.       , 1.0078125], dtype=float32)
    """
    x = np.asarray(x, dtype=np.float32)
    b = x.view(np.uint32).astype(np.uint64)
    r = np.asarray(r).astype(np.uint64) & np.uint64(0xFFFF)
    rounded = ((b + r) & _MASK32) >> np.uint64(16)
    nan = (b >> np.uint64(16)) | np.uint64(0x0040)
    return np.where(np.isnan(x), nan, rounded).astype(np.uint16)


# ============================================================================
# helpers


def _as_list(x):
    """(list, was_single): one ndarray -> [x]; a list/tuple -> list."""
    if isinstance(x, np.ndarray):
        return [x], True
    return list(x), False


def _per_array(name, value, n, single):
    """The per-array argument ``value`` as a list of length n (None -> [None]*n)."""
    if value is None:
        return [None] * n
    if single:
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise ValueError(f"{name} must have 1 entry; got {len(value)}")
            return list(value)
        return [value]
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} must have {n} entries (one per param); got {len(value)}")
    return value


def _is_bf16_state(arr):
    return arr is not None and arr.dtype == np.uint16


def _check_bf16(op, param, *states):
    if any(_is_bf16_state(s) for s in states):
        if param.dtype != np.float32:
            raise TypeError(
                f"[{op}] bfloat16 (uint16) state needs float32 params; got {param.dtype}"
            )
        if not all(_is_bf16_state(s) for s in states):
            raise TypeError(f"[{op}] the state arrays must be all bfloat16 (uint16) or none")
        return True
    return False


def _g64(grad, grad_scale):
    """g = grad * grad_scale in float64."""
    g = np.asarray(grad, dtype=np.float64)
    return g * grad_scale if grad_scale != 1.0 else g


def _g32(grad, grad_scale):
    """g32 = grad (float32) * float32(grad_scale), the multiply skipped when 1."""
    g = np.asarray(grad, dtype=np.float32)
    return g * np.float32(grad_scale) if grad_scale != 1.0 else g


def _write(dst, value):
    """Write float64 ``value`` into ``dst`` in dst's own dtype."""
    dst[...] = np.asarray(value).astype(dst.dtype)


def _f64(a):
    return np.asarray(a, dtype=np.float64)


# ============================================================================
# functional updates


def _host_only(op, stream):
    """The twins run on the host: ``stream`` (kexue's GPU argument) must be None."""
    if stream is not None:
        raise ValueError(f"[kexue.reference.{op}] stream is for GPU arrays; the numpy twin runs on the host")


def sgd_(
    params,
    grads,
    momentum_buffers,
    step,
    *,
    lr,
    momentum=0.0,
    dampening=0.0,
    nesterov=False,
    weight_decay=0.0,
    grad_scale=1.0,
    stream=None,
):
    """SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD).

    Per array (all of one shape)::

        d = g + wd*p
        if momentum != 0:
            buf = d if step == 1 else momentum*buf + (1 - dampening)*d
            d = d + momentum*buf if nesterov else buf
        p = p - lr*d

    ``momentum_buffers`` (param-shaped, param dtype) may be None when momentum == 0.

    >>> p = np.array([0.5, -1.0, 2.0]); buf = np.zeros(3)
    >>> sgd_(p, np.array([0.1, -0.2, 0.3]), buf, 1, lr=0.1, momentum=0.9)
    >>> p
    array([ 0.49, -0.98,  1.97])
    """
    _host_only("optim.sgd_", stream)
    ps, single = _as_list(params)
    gs = _per_array("grads", grads, len(ps), single)
    bufs = _per_array("momentum_buffers", momentum_buffers, len(ps), single)
    for p, grad, buf in zip(ps, gs, bufs):
        d = _g64(grad, grad_scale)
        pv = _f64(p)
        if weight_decay != 0:
            d = d + weight_decay * pv
        if momentum != 0:
            if buf is None:
                raise ValueError("momentum_buffers must be given when momentum != 0")
            b = d if step == 1 else momentum * _f64(buf) + (1 - dampening) * d
            _write(buf, b)
            d = d + momentum * b if nesterov else b
        _write(p, pv - lr * d)


def _adam_update(
    op,
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    step,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    amsgrad,
    max_exp_avg_sqs,
    grad_scale,
    seed,
    decoupled,
):
    ps, single = _as_list(params)
    n = len(ps)
    gs = _per_array("grads", grads, n, single)
    ms = _per_array("exp_avgs", exp_avgs, n, single)
    vs = _per_array("exp_avg_sqs", exp_avg_sqs, n, single)
    vmaxs = _per_array("max_exp_avg_sqs", max_exp_avg_sqs, n, single)
    bc1 = 1 - beta1**step
    bc2 = 1 - beta2**step
    step_size = lr / bc1
    bc2_sqrt = math.sqrt(bc2)
    for a, (p, grad, m_arr, v_arr, vmax_arr) in enumerate(zip(ps, gs, ms, vs, vmaxs)):
        pv = _f64(p)
        if decoupled and weight_decay != 0:
            pv = pv * (1 - lr * weight_decay)
        if _check_bf16(op, p, m_arr, v_arr):
            if amsgrad:
                raise ValueError(f"[{op}] amsgrad is not supported with bfloat16 state")
            # float32 arithmetic in exactly the contract's order (core matches bitwise)
            d32 = _g32(grad, grad_scale)
            if not decoupled and weight_decay != 0:
                d32 = d32 + np.float32(weight_decay) * p
            m = bf16_decode(m_arr)
            v = bf16_decode(v_arr)
            m32 = m + np.float32(1 - beta1) * (d32 - m)
            v32 = np.float32(beta2) * v + (np.float32(1 - beta2) * d32) * d32
            w = random_words(p.size, a, step, seed).reshape(p.shape)
            m_arr[...] = bf16_stochastic_round(m32, w & np.uint32(0xFFFF))
            v_arr[...] = bf16_stochastic_round(v32, w >> np.uint32(16))
            m_new, v_use = _f64(m32), _f64(v32)
        else:
            d = _g64(grad, grad_scale)
            if not decoupled and weight_decay != 0:
                d = d + weight_decay * pv
            m = _f64(m_arr)
            m_new = m + (1 - beta1) * (d - m)
            v_new = beta2 * _f64(v_arr) + ((1 - beta2) * d) * d
            _write(m_arr, m_new)
            _write(v_arr, v_new)
            v_use = v_new
            if amsgrad:
                if vmax_arr is None:
                    raise ValueError(f"[{op}] max_exp_avg_sqs must be given when amsgrad is True")
                v_use = np.maximum(_f64(vmax_arr), v_new)
                _write(vmax_arr, v_use)
        denom = np.sqrt(v_use) / bc2_sqrt + eps
        _write(p, pv - step_size * m_new / denom)


def adam_(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    step,
    *,
    lr=1e-3,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    max_exp_avg_sqs=None,
    grad_scale=1.0,
    seed=0,
    stream=None,
):
    """Adam with L2 weight decay (torch.optim.Adam), spec §C2.

    Per array::

        d = g + wd*p
        m = m + (1-beta1)*(d - m);  v = beta2*v + (1-beta2)*d*d
        if amsgrad: vmax = max(vmax, v), used in place of v
        p = p - (lr/(1-beta1**step)) * m / (sqrt(v)/sqrt(1-beta2**step) + eps)

    exp_avgs, exp_avg_sqs (and max_exp_avg_sqs when amsgrad): param-shaped, the
    param's dtype, or uint16 (bfloat16 state, float32 params only; see the
    module docstring; ``seed`` feeds its stochastic rounding).

    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3); v = np.zeros(3)
    >>> adam_(p, np.array([0.1, -0.2, 0.3]), m, v, 1)
    >>> p.round(8)
    array([ 0.499, -0.999,  1.999])
    """
    _host_only("optim.adam_", stream)
    _adam_update(
        "kexue.optim.adam_",
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        step,
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        amsgrad,
        max_exp_avg_sqs,
        grad_scale,
        seed,
        decoupled=False,
    )


def adamw_(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    step,
    *,
    lr=1e-3,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    weight_decay=1e-2,
    amsgrad=False,
    max_exp_avg_sqs=None,
    grad_scale=1.0,
    seed=0,
    stream=None,
):
    """AdamW (torch.optim.AdamW), spec §C2: ``p = p*(1 - lr*wd)`` first, then
    :func:`adam_` without the L2 term. Same state arrays and bfloat16 option.

    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3); v = np.zeros(3)
    >>> for t, g in enumerate([[0.1, -0.2, 0.3], [-0.05, 0.1, 0.4]], start=1):
    ...     adamw_(p, np.array(g), m, v, t)
    >>> p.round(8)
    array([ 0.49872367, -0.99871367,  1.99796269])
    """
    _host_only("optim.adamw_", stream)
    _adam_update(
        "kexue.optim.adamw_",
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        step,
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        amsgrad,
        max_exp_avg_sqs,
        grad_scale,
        seed,
        decoupled=True,
    )


def adax_(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    step,
    *,
    lr=1e-3,
    beta1=0.9,
    beta2=1e-4,
    eps=1e-6,
    weight_decay=0.0,
    grad_scale=1.0,
    seed=0,
    stream=None,
):
    """AdaX (Li et al. 2020; Su's tf.keras code), spec §C3, epsilon OUTSIDE the sqrt.

    Per array::

        p = p*(1 - lr*wd)                                  (decoupled, default 0)
        m = beta1*m + (1-beta1)*g                          (no bias correction)
        v = (1+beta2)*v + beta2*g*g
        vhat = v / ((1+beta2)**step - 1)
        p = p - lr*m/(sqrt(vhat) + eps)

    Note beta2 is small (1e-4): v GROWS by (1+beta2) per step and the
    correction turns it into an average with a time-varying weight.
    State: param dtype or uint16 (bfloat16, float32 params).

    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3); v = np.zeros(3)
    >>> adax_(p, np.array([0.1, -0.2, 0.3]), m, v, 1)
    >>> p.round(8)
    array([ 0.4999, -0.9999,  1.9999])
    """
    _host_only("optim.adax_", stream)
    op = "kexue.optim.adax_"
    ps, single = _as_list(params)
    n = len(ps)
    gs = _per_array("grads", grads, n, single)
    ms = _per_array("exp_avgs", exp_avgs, n, single)
    vs = _per_array("exp_avg_sqs", exp_avg_sqs, n, single)
    corr = (1 + beta2) ** step - 1
    for a, (p, grad, m_arr, v_arr) in enumerate(zip(ps, gs, ms, vs)):
        pv = _f64(p)
        if weight_decay != 0:
            pv = pv * (1 - lr * weight_decay)
        if _check_bf16(op, p, m_arr, v_arr):
            g32 = _g32(grad, grad_scale)
            m = bf16_decode(m_arr)
            v = bf16_decode(v_arr)
            m32 = np.float32(beta1) * m + np.float32(1 - beta1) * g32
            v32 = np.float32(1 + beta2) * v + (np.float32(beta2) * g32) * g32
            w = random_words(p.size, a, step, seed).reshape(p.shape)
            m_arr[...] = bf16_stochastic_round(m32, w & np.uint32(0xFFFF))
            v_arr[...] = bf16_stochastic_round(v32, w >> np.uint32(16))
            m_new, v_new = _f64(m32), _f64(v32)
        else:
            g = _g64(grad, grad_scale)
            m_new = beta1 * _f64(m_arr) + (1 - beta1) * g
            v_new = (1 + beta2) * _f64(v_arr) + (beta2 * g) * g
            _write(m_arr, m_new)
            _write(v_arr, v_new)
        vhat = v_new / corr
        _write(p, pv - lr * m_new / (np.sqrt(vhat) + eps))


def lion_(
    params,
    grads,
    exp_avgs,
    step,
    *,
    lr=1e-4,
    beta1=0.9,
    beta2=0.99,
    weight_decay=0.0,
    grad_scale=1.0,
    seed=0,
    stream=None,
):
    """Lion (Chen et al. 2023), spec §C6.

    Per array::

        c = beta1*m + (1-beta1)*g        (float64, this order, for both dtypes)
        p = p - lr*(sign(c) + wd*p)      (sign(0) = 0)
        m = beta2*m + (1-beta2)*g        (after p)

    ``step`` only feeds the bfloat16 state's random words. With bfloat16 state
    c is computed in float64 from the decoded m, and the new m in float32:
    ``m32 = float32(beta2)*m + float32(1-beta2)*g32``.

    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3)
    >>> lion_(p, np.array([0.1, -0.2, 0.3]), m, 1)
    >>> p
    array([ 0.4999, -0.9999,  1.9999])
    """
    _host_only("optim.lion_", stream)
    op = "kexue.optim.lion_"
    ps, single = _as_list(params)
    n = len(ps)
    gs = _per_array("grads", grads, n, single)
    ms = _per_array("exp_avgs", exp_avgs, n, single)
    for a, (p, grad, m_arr) in enumerate(zip(ps, gs, ms)):
        pv = _f64(p)
        g = _g64(grad, grad_scale)
        bf16 = _check_bf16(op, p, m_arr)
        m = _f64(bf16_decode(m_arr)) if bf16 else _f64(m_arr)
        c = beta1 * m + (1 - beta1) * g
        new_p = pv - lr * (np.sign(c) + weight_decay * pv)
        if bf16:
            m32 = np.float32(beta2) * bf16_decode(m_arr) + np.float32(1 - beta2) * _g32(
                grad, grad_scale
            )
            w = random_words(p.size, a, step, seed).reshape(p.shape)
            m_arr[...] = bf16_stochastic_round(m32, w & np.uint32(0xFFFF))
        else:
            _write(m_arr, beta2 * m + (1 - beta2) * g)
        _write(p, new_p)


def lamb_(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    step,
    *,
    lr=1e-3,
    beta1=0.9,
    beta2=0.999,
    eps=1e-6,
    weight_decay=0.01,
    grad_scale=1.0,
):
    """LAMB (You et al. 2019), spec §C5; norms per array.

    Per array::

        m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g
        r = (m/bc1) / (sqrt(v/bc2) + eps) + wd*p       bc_i = 1 - beta_i**step
        tau = ||p|| / ||r||   (1 if either norm is 0)
        p = p - lr*tau*r

    >>> p = np.array([0.5, -1.0, 2.0]); m = np.zeros(3); v = np.zeros(3)
    >>> lamb_(p, np.array([0.1, -0.2, 0.3]), m, v, 1)
    >>> p.round(8)
    array([ 0.49868587, -0.99867933,  1.99866625])
    """
    ps, single = _as_list(params)
    n = len(ps)
    gs = _per_array("grads", grads, n, single)
    ms = _per_array("exp_avgs", exp_avgs, n, single)
    vs = _per_array("exp_avg_sqs", exp_avg_sqs, n, single)
    bc1 = 1 - beta1**step
    bc2 = 1 - beta2**step
    for p, grad, m_arr, v_arr in zip(ps, gs, ms, vs):
        pv = _f64(p)
        g = _g64(grad, grad_scale)
        m = beta1 * _f64(m_arr) + (1 - beta1) * g
        v = beta2 * _f64(v_arr) + ((1 - beta2) * g) * g
        _write(m_arr, m)
        _write(v_arr, v)
        r = (m / bc1) / (np.sqrt(v / bc2) + eps) + weight_decay * pv
        tau = _trust_ratio(pv, r)
        _write(p, pv - lr * tau * r)


def _trust_ratio(p, r):
    """||p|| / ||r|| over the whole array; 1 if either norm is 0."""
    pn = math.sqrt(float(np.sum(p * p)))
    rn = math.sqrt(float(np.sum(r * r)))
    return pn / rn if pn > 0 and rn > 0 else 1.0


def adafactor_shapes(shape, min_dim_size_to_factor=128):
    """(row_shape, col_shape) of the factored second moment of a param of ``shape``, or None.

    None (unfactored, full second moment) if ndim < 2 or the second-largest
    axis is shorter than ``min_dim_size_to_factor``. Axes are sorted by
    (size, axis index): a1 = the last (largest; the later one among equals),
    a2 = the one before. row_shape = shape without a1 (the statistic
    ``mean over a1`` of g^2), col_shape = shape without a2.

    >>> adafactor_shapes((2, 3), 1)
    ((2,), (3,))
    >>> adafactor_shapes((300, 200)), adafactor_shapes((300, 20)), adafactor_shapes((5,))
    (((200,), (300,)), None, None)
    """
    a = _factored_axes(tuple(shape), min_dim_size_to_factor)
    if a is None:
        return None
    a1, a2 = a
    shape = tuple(int(s) for s in shape)
    return shape[:a1] + shape[a1 + 1 :], shape[:a2] + shape[a2 + 1 :]


def _factored_axes(shape, min_dim_size_to_factor):
    if len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda i: (shape[i], i))
    a1, a2 = order[-1], order[-2]
    if shape[a2] < min_dim_size_to_factor:
        return None
    return a1, a2


def _rms(x):
    return math.sqrt(float(np.mean(x * x))) if x.size else 0.0


def adafactor_(
    params,
    grads,
    exp_avgs,
    exp_avg_sqs,
    exp_avg_sq_rows,
    exp_avg_sq_cols,
    step,
    *,
    lr=None,
    beta1=0.0,
    beta2=None,
    eps1=1e-30,
    eps2=1e-3,
    d=1.0,
    multiply_by_parameter_scale=True,
    grad_scale=1.0,
):
    """Adafactor in Su's bert4keras formulation (AdaFactorBase), spec §C4.

    Per array: EITHER factored (exp_avg_sqs entry None; exp_avg_sq_rows /
    exp_avg_sq_cols entries of :func:`adafactor_shapes`' shapes) OR full
    (exp_avg_sqs entry param-shaped; row/col None). exp_avgs entry
    (param-shaped) only when beta1 > 0, else None. All state in the param dtype.
    ::

        lr_t = lr if lr is not None else min(1/sqrt(step), 1e-2) * (1 if scale_by_rms_p else 0.05)
        beta2_t = beta2 if beta2 is not None else 1 - step**-0.8
        G2 = g*g + eps1
        factored: R = beta2_t*R + (1-beta2_t)*mean_a1(G2); C = beta2_t*C + (1-beta2_t)*mean_a2(G2)
                  Vhat = R (x) C / mean_a2(R)
        full:     V = beta2_t*V + (1-beta2_t)*G2; Vhat = V
        U = g/sqrt(Vhat + eps1);  U = U/max(1, RMS(U)/d)
        if beta1 > 0: M = beta1*M + (1-beta1)*U; U = M
        if scale_by_rms_p: U = U*max(RMS(p), eps2)   (scale_by_rms_p: multiply_by_parameter_scale)
        p = p - lr_t*U

    >>> p = np.array([[0.5, -1.0, 2.0], [0.1, 0.3, -0.4]])
    >>> row, col = np.zeros(2), np.zeros(3)
    >>> adafactor_(p, np.array([[0.1, -0.2, 0.3], [0.05, 0.0, -0.1]]), None, None, row, col, 1)
    >>> p.round(8)
    array([[ 0.49147127, -0.99046459,  1.99095391],
           [ 0.0857287 ,  0.3       , -0.38990867]])
    """
    ps, single = _as_list(params)
    n = len(ps)
    gs = _per_array("grads", grads, n, single)
    ms = _per_array("exp_avgs", exp_avgs, n, single)
    vs = _per_array("exp_avg_sqs", exp_avg_sqs, n, single)
    rows = _per_array("exp_avg_sq_rows", exp_avg_sq_rows, n, single)
    cols = _per_array("exp_avg_sq_cols", exp_avg_sq_cols, n, single)
    if lr is None:
        lr_t = min(1 / math.sqrt(step), 1e-2) * (1.0 if multiply_by_parameter_scale else 0.05)
    else:
        lr_t = lr
    beta2_t = beta2 if beta2 is not None else 1 - step**-0.8
    for p, grad, m_arr, v_arr, r_arr, c_arr in zip(ps, gs, ms, vs, rows, cols):
        pv = _f64(p)
        g = _g64(grad, grad_scale)
        g2 = g * g + eps1
        if v_arr is None:
            if r_arr is None or c_arr is None:
                raise ValueError(
                    "adafactor_ needs exp_avg_sqs or both exp_avg_sq_rows and exp_avg_sq_cols"
                )
            a1, a2 = _axes_of_factors(p.shape, r_arr.shape, c_arr.shape)
            R = beta2_t * _f64(r_arr) + (1 - beta2_t) * np.mean(g2, axis=a1)
            C = beta2_t * _f64(c_arr) + (1 - beta2_t) * np.mean(g2, axis=a2)
            _write(r_arr, R)
            _write(c_arr, C)
            Rk = np.expand_dims(R, a1)  # param rank, a1 of size 1
            Ck = np.expand_dims(C, a2)  # param rank, a2 of size 1
            vhat = Rk * Ck / np.mean(Rk, axis=a2, keepdims=True)
        else:
            vhat = beta2_t * _f64(v_arr) + (1 - beta2_t) * g2
            _write(v_arr, vhat)
        u = g / np.sqrt(vhat + eps1)
        u = u / max(1.0, _rms(u) / d)
        if beta1 > 0:
            if m_arr is None:
                raise ValueError("adafactor_ needs exp_avgs when beta1 > 0")
            u = beta1 * _f64(m_arr) + (1 - beta1) * u
            _write(m_arr, u)
        if multiply_by_parameter_scale:
            u = u * max(_rms(pv), eps2)
        _write(p, pv - lr_t * u)


def _axes_of_factors(shape, row_shape, col_shape):
    """(a1, a2) of :func:`adafactor_shapes` for ``shape``, checking the state shapes fit."""
    shape = tuple(int(s) for s in shape)
    a = _factored_axes(shape, 0)
    if a is None or (shape[: a[0]] + shape[a[0] + 1 :], shape[: a[1]] + shape[a[1] + 1 :]) != (
        tuple(row_shape),
        tuple(col_shape),
    ):
        raise ValueError(
            f"row/col state shapes {tuple(row_shape)}, {tuple(col_shape)} are not the factors "
            f"of a param of shape {shape} (see adafactor_shapes)"
        )
    return a


def amos_(
    params,
    grads,
    exp_avg_sqs,
    decays,
    step,
    *,
    lr,
    eta,
    beta=0.999,
    zeta=0.25,
    eps=2**-125,
    finetune_rate=1.0,
    grad_scale=1.0,
):
    """Amos (Tian & Parikh 2022; google-research/jestimator), spec §C7.

    ``lr`` = xi (global learning rate), ``eta`` = eta_tilde, the expected scale
    of the entries: a float or a list (one per array). ``exp_avg_sqs`` (v) and
    ``decays`` (b) per array: param-shaped (elementwise, gbar2 = g*g) or shape
    () (reduced over all axes, gbar2 = mean(g*g)); the param's dtype. ::

        v = beta*v + (1-beta)*gbar2
        r = (1 - beta**step) / max(v, eps)
        c = (1 + zeta*sqrt(xi)*b)**-0.5
        gamma = sqrt(fr)*c*xi**2*r*gbar2
        a0 = xi*eta;  dd = 1/(1 + zeta*sqrt(a0)*b)
        p = p + fr*dd*(-a0*sqrt(r)*g - 0.5*gamma*p)
        b = b + gamma*(fr + b)                 (c and dd use the old b)

    >>> p = np.array([0.5, -1.0, 2.0]); v = np.zeros(3); b = np.zeros(3)
    >>> amos_(p, np.array([0.1, -0.2, 0.3]), v, b, 1, lr=0.01, eta=0.5)
    >>> p.round(6)
    array([ 0.494975, -0.99495 ,  1.9949  ])
    """
    ps, single = _as_list(params)
    n = len(ps)
    gs = _per_array("grads", grads, n, single)
    vs = _per_array("exp_avg_sqs", exp_avg_sqs, n, single)
    bs = _per_array("decays", decays, n, single)
    etas = [eta] * n if np.ndim(eta) == 0 else _per_array("eta", eta, n, single)
    xi = lr
    fr = finetune_rate
    for p, grad, v_arr, b_arr, eta_i in zip(ps, gs, vs, bs, etas):
        pv = _f64(p)
        g = _g64(grad, grad_scale)
        if v_arr.shape == p.shape:
            gbar2 = g * g  # elementwise (also for 0-d params)
        elif v_arr.shape == ():
            gbar2 = np.mean(g * g) if g.size else 0.0  # reduced over all axes
        else:
            raise ValueError(
                f"exp_avg_sqs entries must have the param's shape {p.shape} or (); "
                f"got {v_arr.shape}"
            )
        v = beta * _f64(v_arr) + (1 - beta) * gbar2
        b = _f64(b_arr)
        r = (1 - beta**step) / np.maximum(v, eps)
        c = (1 + zeta * math.sqrt(xi) * b) ** -0.5
        gamma = math.sqrt(fr) * c * xi**2 * r * gbar2
        a0 = xi * float(eta_i)
        dd = 1 / (1 + zeta * math.sqrt(a0) * b)
        new_p = pv + fr * dd * (-a0 * np.sqrt(r) * g - 0.5 * gamma * pv)
        _write(v_arr, v)
        _write(b_arr, b + gamma * (fr + b))
        _write(p, new_p)


# ============================================================================
# gradient transforms


def clip_grad_norm_(grads, max_norm, *, mode="clip", stream=None):
    """Global L2-norm clipping in place (spec §C8); returns the total norm (float).

    ``N = sqrt(sum_i sum(g_i.astype(float64)**2))``; ``mode="clip"``: factor =
    min(1, max_norm/N) (1 when N == 0); ``mode="smooth"``: factor =
    max_norm/(N + max_norm). Every grad is multiplied by the factor in its
    own dtype (skipped when the factor is 1). Non-finite N: grads untouched.

    >>> g = [np.array([3.0, 0.0]), np.array([[0.0, 4.0], [12.0, 0.0]])]
    >>> clip_grad_norm_(g, 5.0)
    13.0
    >>> g[1]
    array([[0.        , 1.53846154],
           [4.61538462, 0.        ]])
    """
    _host_only("optim.clip_grad_norm_", stream)
    if mode not in ("clip", "smooth"):
        raise ValueError(f"mode must be 'clip' or 'smooth'; got {mode!r}")
    gs, _ = _as_list(grads)
    total = 0.0
    for g in gs:
        g64 = _f64(g)
        total += float(np.sum(g64 * g64))
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        return norm
    if mode == "clip":
        factor = 1.0 if norm == 0 else min(1.0, max_norm / norm)
    else:
        factor = max_norm / (norm + max_norm)
    if factor != 1.0:
        for g in gs:
            g *= np.asarray(factor, dtype=g.dtype)  # one multiply in the grad's dtype
    return norm


def child_tuning_(grads, p, *, seed, step=0):
    """ChildTuning-F gradient dropout in place (spec §C10); returns None.

    Keeps element e of array a iff ``w < floor(p * 2**32)`` with w the
    :func:`random_words` word (tag 0x80000000, step ``step``, ``seed``); kept
    entries are multiplied by ``1/p`` (computed in float64, cast to the grad
    dtype, one multiply), dropped entries become 0. 0 < p <= 1 (1 keeps all).

    >>> g = np.ones(8)
    >>> child_tuning_(g, 0.5, seed=1)
    >>> sorted(set(g.tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    """
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1]; got {p}")
    gs, _ = _as_list(grads)
    threshold = math.floor(p * 2**32)
    scale = 1.0 / p
    for a, g in enumerate(gs):
        w = random_words(g.size, a, step, seed, CHILD_TUNING_TAG).reshape(g.shape)
        keep = (
            w.astype(np.uint64) < np.uint64(threshold)
            if threshold < 2**32
            else np.ones(g.shape, bool)
        )
        g[...] = np.where(keep, g * np.asarray(scale, dtype=g.dtype), np.zeros((), g.dtype))


# ============================================================================
# schedules (vectorised over numpy step arrays; a scalar step gives a float)


def _out(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def _warmup_progress(step, warmup_steps, total_steps):
    """(step as float64, in_warmup mask, decay progress in [0, 1]).

    progress = (step - W)/(T - W) clipped to [0, 1]; at step == W it is 0 (the peak
    lr), also when W == T; min_lr only strictly after W.
    """
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps; got warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}"
        )
    t = np.asarray(step, dtype=np.float64)
    in_warmup = t < warmup_steps
    span = total_steps - warmup_steps
    if span > 0:
        prog = (t - warmup_steps) / span
    else:
        prog = np.where(t > warmup_steps, 1.0, 0.0)
    return t, in_warmup, np.clip(prog, 0.0, 1.0)


def warmup_linear(step, *, lr, warmup_steps, total_steps, min_lr=0.0):
    """Linear warmup then linear decay: ``lr*step/warmup_steps`` for step <
    warmup_steps, then linear from lr (at warmup_steps) to min_lr (at
    total_steps), min_lr afterwards.

    >>> warmup_linear(np.array([0, 5, 10, 55, 100, 200]), lr=1.0, warmup_steps=10, total_steps=100)
    array([0. , 0.5, 1. , 0.5, 0. , 0. ])
    """
    t, in_warmup, prog = _warmup_progress(step, warmup_steps, total_steps)
    warm = lr * t / warmup_steps if warmup_steps > 0 else np.zeros_like(t)
    return _out(np.where(in_warmup, warm, lr + (min_lr - lr) * prog))


def warmup_cosine(step, *, lr, warmup_steps, total_steps, min_lr=0.0):
    """Linear warmup then cosine decay ``min_lr + (lr-min_lr)*(1+cos(pi*progress))/2``
    with progress = (step-warmup_steps)/(total_steps-warmup_steps) clipped to [0, 1].

    >>> warmup_cosine(np.array([5, 10, 55, 100]), lr=1.0, warmup_steps=10, total_steps=100)
    array([0.5, 1. , 0.5, 0. ])
    """
    t, in_warmup, prog = _warmup_progress(step, warmup_steps, total_steps)
    warm = lr * t / warmup_steps if warmup_steps > 0 else np.zeros_like(t)
    cos = min_lr + (lr - min_lr) * (1 + np.cos(np.pi * prog)) / 2
    return _out(np.where(in_warmup, warm, cos))


def inverse_square_decay(step, *, alpha0, p):
    """``1/(alpha0*p*step + 1)**2`` (spec §C7: constant convergence rate p).

    >>> inverse_square_decay(np.array([0, 1000]), alpha0=1e-3, p=1.0)
    array([1.  , 0.25])
    """
    t = np.asarray(step, dtype=np.float64)
    return _out(1.0 / (alpha0 * p * t + 1) ** 2)


def inverse_time_decay(step, *, alpha0, p0):
    """``1/(2*alpha0*p0*step + 1)`` (spec §C7, the preferred form).

    >>> inverse_time_decay(np.array([0, 500]), alpha0=1e-3, p0=1.0)
    array([1. , 0.5])
    """
    t = np.asarray(step, dtype=np.float64)
    return _out(1.0 / (2 * alpha0 * p0 * t + 1))


def alchemy(step, *, alpha0, p, kind="inverse_time", q=1.0):
    """Su's learning-rate / weight-decay pair (spec §C7): ``(alpha_t, rho_t) =
    (alpha0*decay_t, alpha0**2/(2q)*decay_t)`` with decay_t =
    inverse_time_decay(step, alpha0, p0=p) (kind "inverse_time") or
    inverse_square_decay(step, alpha0, p) (kind "inverse_square"). The caller
    still multiplies alpha_t by ||eps_0||/||u_t||.

    >>> alchemy(500, alpha0=1e-3, p=1.0)
    (0.0005, 2.5e-07)
    """
    if kind == "inverse_time":
        decay = inverse_time_decay(step, alpha0=alpha0, p0=p)
    elif kind == "inverse_square":
        decay = inverse_square_decay(step, alpha0=alpha0, p=p)
    else:
        raise ValueError(f"kind must be 'inverse_time' or 'inverse_square'; got {kind!r}")
    decay = np.asarray(decay, dtype=np.float64)
    return _out(alpha0 * decay), _out(alpha0**2 / (2 * q) * decay)


# ============================================================================
# classes


class _Optimizer:
    """Shared machinery: parameter list, per-parameter state slots, step logic."""

    _slots: tuple = ()

    def __init__(self, params, lr):
        ps, _ = _as_list(params)
        for p in ps:
            if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
                raise TypeError("params must be float32 or float64 numpy arrays")
        self.params = ps
        self.lr = lr
        self.step_count = 0
        self.state = [dict() for _ in ps]

    def _zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def _slot_list(self, name):
        return [s.get(name) for s in self.state]

    def step(self, grads, lr=None, max_grad_norm=None, skip_nonfinite=False):
        """One update of every param in place; returns True when the step was taken.

        ``lr`` overrides self.lr for this step; ``max_grad_norm`` folds global
        L2-norm clipping into the update (grad_scale = min(1, max_norm/norm); the
        grads are not modified); ``skip_nonfinite``: if any grad has NaN/Inf,
        change nothing and return False.
        """
        gs, _ = _as_list(grads)
        if len(gs) != len(self.params):
            raise ValueError(
                f"grads must have {len(self.params)} arrays (one per param); got {len(gs)}"
            )
        if skip_nonfinite and not all(bool(np.all(np.isfinite(g))) for g in gs):
            return False
        grad_scale = 1.0
        if max_grad_norm is not None:
            norm = math.sqrt(sum(float(np.sum(_f64(g) ** 2)) for g in gs))
            if math.isfinite(norm) and norm > 0:
                grad_scale = min(1.0, max_grad_norm / norm)
        t = self.step_count + 1
        self._update(gs, t, self.lr if lr is None else lr, grad_scale)
        self.step_count = t
        return True

    def state_dict(self):
        """``{"step_count": int, "state": [{slot name: ndarray copy} per param]}``."""
        return {
            "step_count": int(self.step_count),
            "state": [{k: v.copy() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, sd):
        """Copy the arrays of ``sd`` (from :meth:`state_dict`) into the state."""
        states = sd["state"]
        if len(states) != len(self.state):
            raise ValueError(f"state must have {len(self.state)} entries; got {len(states)}")
        for mine, theirs in zip(self.state, states):
            if set(mine) != set(theirs):
                raise ValueError(f"state slots must be {sorted(mine)}; got {sorted(theirs)}")
            for k, arr in mine.items():
                src = np.asarray(theirs[k])
                if src.shape != arr.shape:
                    raise ValueError(f"state {k!r} must have shape {arr.shape}; got {src.shape}")
                if src.dtype != arr.dtype:
                    raise TypeError(f"state {k!r} must have dtype {arr.dtype}; got {src.dtype}")
        for mine, theirs in zip(self.state, states):
            for k, arr in mine.items():
                arr[...] = theirs[k]
        self.step_count = int(sd["step_count"])


def _state_dtype(params, state_dtype, amsgrad=False):
    if state_dtype is None:
        return None
    if state_dtype != "bfloat16":
        raise ValueError(f"state_dtype must be None or 'bfloat16'; got {state_dtype!r}")
    for p in params:
        if p.dtype != np.float32:
            raise TypeError(f"state_dtype='bfloat16' needs float32 params; got {p.dtype}")
    if amsgrad:
        raise ValueError("amsgrad is not supported with state_dtype='bfloat16'")
    return np.dtype(np.uint16)


class SGD(_Optimizer):
    """SGD with momentum / dampening / Nesterov / L2 weight decay (torch.optim.SGD); state
    slot "momentum_buffer" (only when momentum != 0). See :func:`sgd_`."""

    def __init__(
        self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False
    ):
        super().__init__(params, lr)
        self.momentum, self.dampening = momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov
        if momentum != 0:
            for s, p in zip(self.state, self.params):
                s["momentum_buffer"] = np.zeros_like(p)

    def _update(self, grads, t, lr, grad_scale):
        bufs = self._slot_list("momentum_buffer") if self.momentum != 0 else None
        sgd_(
            self.params,
            grads,
            bufs,
            t,
            lr=lr,
            momentum=self.momentum,
            dampening=self.dampening,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            grad_scale=grad_scale,
        )


class Adam(_Optimizer):
    """Adam (torch.optim.Adam, L2 weight decay); slots "exp_avg", "exp_avg_sq"
    (+ "max_exp_avg_sq" with amsgrad). ``state_dtype="bfloat16"``: uint16 moments
    with stochastic rounding seeded by ``seed``. See :func:`adam_`."""

    _fn = staticmethod(adam_)

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        *,
        state_dtype=None,
        seed=0,
    ):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay, self.amsgrad = (
            tuple(betas),
            eps,
            weight_decay,
            amsgrad,
        )
        self.seed = seed
        sdt = _state_dtype(self.params, state_dtype, amsgrad)
        for s, p in zip(self.state, self.params):
            dt = sdt or p.dtype
            s["exp_avg"] = np.zeros(p.shape, dt)
            s["exp_avg_sq"] = np.zeros(p.shape, dt)
            if amsgrad:
                s["max_exp_avg_sq"] = np.zeros(p.shape, dt)

    def _update(self, grads, t, lr, grad_scale):
        self._fn(
            self.params,
            grads,
            self._slot_list("exp_avg"),
            self._slot_list("exp_avg_sq"),
            t,
            lr=lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            amsgrad=self.amsgrad,
            max_exp_avg_sqs=self._slot_list("max_exp_avg_sq") if self.amsgrad else None,
            grad_scale=grad_scale,
            seed=self.seed,
        )


class AdamW(Adam):
    """AdamW (torch.optim.AdamW, decoupled weight decay); as :class:`Adam`. See :func:`adamw_`."""

    _fn = staticmethod(adamw_)

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        state_dtype=None,
        seed=0,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, state_dtype=state_dtype, seed=seed
        )


class AdaX(_Optimizer):
    """AdaX; slots "exp_avg", "exp_avg_sq"; bfloat16 state option. See :func:`adax_`."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 1e-4),
        eps=1e-6,
        weight_decay=0.0,
        *,
        state_dtype=None,
        seed=0,
    ):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay, self.seed = tuple(betas), eps, weight_decay, seed
        sdt = _state_dtype(self.params, state_dtype)
        for s, p in zip(self.state, self.params):
            s["exp_avg"] = np.zeros(p.shape, sdt or p.dtype)
            s["exp_avg_sq"] = np.zeros(p.shape, sdt or p.dtype)

    def _update(self, grads, t, lr, grad_scale):
        adax_(
            self.params,
            grads,
            self._slot_list("exp_avg"),
            self._slot_list("exp_avg_sq"),
            t,
            lr=lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            grad_scale=grad_scale,
            seed=self.seed,
        )


class Lion(_Optimizer):
    """Lion; slot "exp_avg"; bfloat16 state option. See :func:`lion_`."""

    def __init__(
        self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, state_dtype=None, seed=0
    ):
        super().__init__(params, lr)
        self.betas, self.weight_decay, self.seed = tuple(betas), weight_decay, seed
        sdt = _state_dtype(self.params, state_dtype)
        for s, p in zip(self.state, self.params):
            s["exp_avg"] = np.zeros(p.shape, sdt or p.dtype)

    def _update(self, grads, t, lr, grad_scale):
        lion_(
            self.params,
            grads,
            self._slot_list("exp_avg"),
            t,
            lr=lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            weight_decay=self.weight_decay,
            grad_scale=grad_scale,
            seed=self.seed,
        )


class LAMB(_Optimizer):
    """LAMB; slots "exp_avg", "exp_avg_sq". See :func:`lamb_`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay
        for s, p in zip(self.state, self.params):
            s["exp_avg"] = np.zeros_like(p)
            s["exp_avg_sq"] = np.zeros_like(p)

    def _update(self, grads, t, lr, grad_scale):
        lamb_(
            self.params,
            grads,
            self._slot_list("exp_avg"),
            self._slot_list("exp_avg_sq"),
            t,
            lr=lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            grad_scale=grad_scale,
        )


class Adafactor(_Optimizer):
    """Adafactor (bert4keras); slots "exp_avg" (beta1 > 0) and "exp_avg_sq" (full)
    or "exp_avg_sq_row", "exp_avg_sq_col" (factored, per :func:`adafactor_shapes`).
    ``lr=None``: relative step size. See :func:`adafactor_`."""

    def __init__(
        self,
        params,
        lr=None,
        beta1=0.0,
        beta2=None,
        eps=(1e-30, 1e-3),
        d=1.0,
        multiply_by_parameter_scale=True,
        min_dim_size_to_factor=128,
    ):
        super().__init__(params, lr)
        self.beta1, self.beta2, self.eps, self.d = beta1, beta2, tuple(eps), d
        self.multiply_by_parameter_scale = multiply_by_parameter_scale
        self.min_dim_size_to_factor = min_dim_size_to_factor
        for s, p in zip(self.state, self.params):
            if beta1 > 0:
                s["exp_avg"] = np.zeros_like(p)
            shapes = adafactor_shapes(p.shape, min_dim_size_to_factor)
            if shapes is None:
                s["exp_avg_sq"] = np.zeros_like(p)
            else:
                s["exp_avg_sq_row"] = np.zeros(shapes[0], p.dtype)
                s["exp_avg_sq_col"] = np.zeros(shapes[1], p.dtype)

    def _update(self, grads, t, lr, grad_scale):
        adafactor_(
            self.params,
            grads,
            self._slot_list("exp_avg"),
            self._slot_list("exp_avg_sq"),
            self._slot_list("exp_avg_sq_row"),
            self._slot_list("exp_avg_sq_col"),
            t,
            lr=lr,
            beta1=self.beta1,
            beta2=self.beta2,
            eps1=self.eps[0],
            eps2=self.eps[1],
            d=self.d,
            multiply_by_parameter_scale=self.multiply_by_parameter_scale,
            grad_scale=grad_scale,
        )


class Amos(_Optimizer):
    """Amos; slots "exp_avg_sq" and "decay", param-shaped or (``reduce_all=True``)
    shape (). ``lr`` = xi, ``eta`` = eta_tilde (float or one per param). See :func:`amos_`."""

    def __init__(
        self,
        params,
        lr=1e-2,
        eta=0.5,
        beta=0.999,
        zeta=0.25,
        eps=2**-125,
        finetune_rate=1.0,
        reduce_all=False,
    ):
        super().__init__(params, lr)
        self.eta, self.beta, self.zeta, self.eps = eta, beta, zeta, eps
        self.finetune_rate, self.reduce_all = finetune_rate, reduce_all
        for s, p in zip(self.state, self.params):
            shape = () if reduce_all else p.shape
            s["exp_avg_sq"] = np.zeros(shape, p.dtype)
            s["decay"] = np.zeros(shape, p.dtype)

    def _update(self, grads, t, lr, grad_scale):
        amos_(
            self.params,
            grads,
            self._slot_list("exp_avg_sq"),
            self._slot_list("decay"),
            t,
            lr=lr,
            eta=self.eta,
            beta=self.beta,
            zeta=self.zeta,
            eps=self.eps,
            finetune_rate=self.finetune_rate,
            grad_scale=grad_scale,
        )
