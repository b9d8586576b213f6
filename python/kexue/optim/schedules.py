"""Learning-rate and weight-decay schedules, as plain functions of the step.

Every function takes ``step`` as a number or a numpy array of steps and
returns the same (float or float64 array), so a whole schedule can be
tabulated at once. Twins: :mod:`kexue.reference.optim` (same names).

- :func:`warmup_linear`, :func:`warmup_cosine`: linear warm-up to ``lr`` over
  ``warmup_steps``, then linear or cosine decay to ``min_lr`` at ``total_steps``.
- :func:`inverse_square_decay`, :func:`inverse_time_decay`, :func:`alchemy`:
  the schedules Su derives from Amos (kexue.fm/archives/9344, spec C7): the
  update size alpha_t and a weight decay rho_t = O(alpha_t^2).
"""
from __future__ import annotations

import numpy as np

__all__ = ["alchemy", "inverse_square_decay", "inverse_time_decay", "warmup_cosine", "warmup_linear"]


def _out(x, like):
    return float(x) if np.ndim(like) == 0 else np.asarray(x, dtype=np.float64)


def _check(op, warmup_steps, total_steps):
    if warmup_steps < 0 or total_steps < warmup_steps:
        raise ValueError(f"[kexue.optim.schedules.{op}] need 0 <= warmup_steps <= total_steps; "
                         f"got warmup_steps={warmup_steps}, total_steps={total_steps}")


def _warmup(step, lr, warmup_steps):
    t = np.asarray(step, dtype=np.float64)
    return t, (lr * t / warmup_steps if warmup_steps > 0 else np.full_like(t, lr))


def warmup_linear(step, *, lr, warmup_steps, total_steps, min_lr=0.0):
    """lr * step / warmup_steps while step < warmup_steps, then linear from lr
    (at warmup_steps) to min_lr (at total_steps), min_lr after.

    >>> from kexue.optim.schedules import warmup_linear
    >>> [warmup_linear(s, lr=1.0, warmup_steps=10, total_steps=110) for s in (5, 10, 60, 200)]
    [0.5, 1.0, 0.5, 0.0]
    """
    _check("warmup_linear", warmup_steps, total_steps)
    t, warm = _warmup(step, lr, warmup_steps)
    span = max(total_steps - warmup_steps, 1)
    frac = np.clip((t - warmup_steps) / span, 0.0, 1.0)
    return _out(np.where(t < warmup_steps, warm, lr + (min_lr - lr) * frac), step)


def warmup_cosine(step, *, lr, warmup_steps, total_steps, min_lr=0.0):
    """Linear warm-up as :func:`warmup_linear`, then
    min_lr + (lr - min_lr) (1 + cos(pi * progress)) / 2 with progress from 0 to 1.

    >>> from kexue.optim.schedules import warmup_cosine
    >>> [round(warmup_cosine(s, lr=1.0, warmup_steps=10, total_steps=110), 6) for s in (10, 60, 110)]
    [1.0, 0.5, 0.0]
    """
    _check("warmup_cosine", warmup_steps, total_steps)
    t, warm = _warmup(step, lr, warmup_steps)
    span = max(total_steps - warmup_steps, 1)
    frac = np.clip((t - warmup_steps) / span, 0.0, 1.0)
    return _out(np.where(t < warmup_steps, warm, min_lr + (lr - min_lr) * 0.5 * (1.0 + np.cos(np.pi * frac))),
                step)


def inverse_square_decay(step, *, alpha0, p):
    """decay_t = 1 / (alpha0 p t + 1)^2: a constant convergence rate p; to halve
    the distance to the optimum every T steps choose alpha0 p = (sqrt(2) - 1) / T.

    >>> from kexue.optim.schedules import inverse_square_decay
    >>> inverse_square_decay(1000, alpha0=1e-3, p=1.0)
    0.25
    """
    t = np.asarray(step, dtype=np.float64)
    return _out(1.0 / (alpha0 * p * t + 1.0) ** 2, step)


def inverse_time_decay(step, *, alpha0, p0):
    """decay_t = 1 / (2 alpha0 p0 t + 1): the rate slows as the error shrinks
    (Su's preferred form).

    >>> from kexue.optim.schedules import inverse_time_decay
    >>> inverse_time_decay(500, alpha0=1e-3, p0=1.0)
    0.5
    """
    t = np.asarray(step, dtype=np.float64)
    return _out(1.0 / (2.0 * alpha0 * p0 * t + 1.0), step)


def alchemy(step, *, alpha0, p, kind="inverse_time", q=1.0):
    """Su's "alchemy" schedule: (alpha_t, rho_t) = (alpha0 decay_t, alpha0^2 / (2 q) decay_t).

    The update is theta <- theta - (alpha_t u_t ||eps_0|| / ||u_t|| + rho_t theta):
    multiply alpha_t by ||eps_0|| / ||u_t|| (the expected initial error over the
    update norm; ||theta_t|| in place of ||eps_0|| gives LAMB). The weight decay
    is second order in the rate. ``kind``: "inverse_time" (p is p0) or
    "inverse_square".

    >>> from kexue.optim.schedules import alchemy
    >>> alchemy(500, alpha0=1e-3, p=1.0)
    (0.0005, 2.5e-07)
    """
    if kind == "inverse_time":
        d = inverse_time_decay(step, alpha0=alpha0, p0=p)
    elif kind == "inverse_square":
        d = inverse_square_decay(step, alpha0=alpha0, p=p)
    else:
        raise ValueError(f'[kexue.optim.schedules.alchemy] kind must be "inverse_time" or '
                         f'"inverse_square"; got {kind!r}')
    return alpha0 * d, alpha0**2 / (2.0 * q) * d
