"""Pure-numpy MCMC samplers: the twin of :mod:`kexue.samplers` (spec kernels §A3, §A7).

Same signatures, defaults and outputs as the core:

* :func:`metropolis` — random-walk ("gaussian") and independence Metropolis-Hastings
  over C chains at once (vectorised over chains, a Python loop over steps), with
  Robbins-Monro step adaptation during burn-in;
* :func:`gibbs_ising`, :func:`gibbs_potts` — checkerboard heat-bath sweeps on
  periodic H x W lattices (vectorised over chains and over all sites of a colour);
* :func:`anneal` (with :func:`temperatures`) — simulated annealing with the
  Metropolis kernel at falling temperatures (continuous targets) or with
  single-spin flips (``targets.SpinGlass``), keeping the best state;
* :func:`gibbs` — Gibbs sweeps with the caller's full conditionals
  (systematic or random scan), vectorised over chains;
* the log densities of the built-in targets as plain functions
  (:func:`gaussian_logp`, :func:`rosenbrock_logp`, :func:`mixture_logp`,
  :func:`logistic_logp`, :func:`funnel_logp`), each written in the same
  arithmetic order as the core's ``kexue/samplers/targets.hpp``;
* the random stream itself: :func:`philox_words`, :func:`philox_uniforms`,
  :func:`philox_normals`, :func:`uniform53`.

Randomness (the contract of issue 5; the twin reproduces the core bit for bit,
except that numpy's ``log``/``sin``/``cos``/``exp`` may differ from libm's in the
last bit, so Metropolis samples agree to ~1e-12 while lattices agree exactly):

* ``key = (seed & 0xffffffff, seed >> 32)``; global chain ``g = chain_offset + c``;
  block ``n`` of chain ``g`` is ``philox4x32_10((n_lo, n_hi, g_lo, g_hi), key)``
  -> words ``w0..w3``.
* ``uniform53(wa, wb) = ((wa >> 5) * 2^26 + (wb >> 6)) * 2^-53`` in [0, 1);
  a block gives ``U0 = uniform53(w0, w1)``, ``U1 = uniform53(w2, w3)`` and the
  Box-Muller normals ``Z0 = r cos(2 pi U1)``, ``Z1 = r sin(2 pi U1)``,
  ``r = sqrt(-2 log(1 - U0))``.
* metropolis, step ``t`` (burn-in steps first), ``P = ceil(D / 2)``:
  ``z[2i], z[2i+1]`` = the normals of block ``t (P + 1) + i`` (z cut to D),
  ``u`` = ``U0`` of block ``t (P + 1) + P``.
* lattices: sweep ``s`` updates colour 0 then colour 1 (colour of (r, c) =
  (r + c) % 2); the sites of a stream are taken in groups of 64, group j
  reading the 4 words of the 16 blocks ``base + 16 j .. base + 16 j + 15``
  word-major (the core generates 16 blocks at once): site ``q`` uses word
  ``(q % 64) // 16`` of block ``base + 16 (q // 64) + q % 16``. Site
  ``q = r (W/2) + c // 2`` of colour ``col`` in sweep ``s``:
  ``base = (2 s + col) NB``, ``NB = 16 ceil(H W / 128)`` (16 blocks per group
  of the H W / 2 sites of a colour); ``init="random"``: site ``q' = r W + c``
  with ``base = 2^63``.
* anneal (continuous): the metropolis blocks of step ``t`` (no adaptation);
  spin glass: site ``i`` of sweep ``t`` uses ``U0`` of block ``t N + i``.
* gibbs: update ``j`` of sweep ``t`` draws with ``U0`` of block ``t N + j``;
  the random scan's coordinate is ``floor(U1 N)`` of that block of the shared
  chain ``2^64 - 1``.

This module imports only numpy and :mod:`kexue.reference.optim` (Philox); its
results are small dataclasses with the fields of kexue.samplers' Trace,
IsingTrace and AnnealResult. Validation covers the
arguments the contract names, with the core's messages.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from . import samplers_diagnostics
from .optim import philox4x32_10


# The twin's own result types (this package never imports kexue._core), with
# the fields of kexue.samplers' Trace and IsingTrace.
@dataclass
class Trace:
    """The twin of kexue.samplers.Trace: samples [C,S,D], logp [C,S],
    accept_rate [C], step_size [C] (float64)."""

    samples: np.ndarray
    logp: np.ndarray
    accept_rate: np.ndarray
    step_size: np.ndarray

    def ess(self):
        return samplers_diagnostics.ess(self.samples)

    def rhat(self):
        return samplers_diagnostics.rhat(self.samples)


@dataclass
class IsingTrace:
    """The twin of kexue.samplers.IsingTrace: spins [C,H,W] int8 (final),
    magnetization [C,S], energy [C,S] float64 per site."""

    spins: np.ndarray
    magnetization: np.ndarray
    energy: np.ndarray


__all__ = [
    "Trace",
    "IsingTrace",
    # the stream
    "uniform53",
    "philox_words",
    "philox_uniforms",
    "philox_normals",
    # samplers
    "metropolis",
    "gibbs_ising",
    "gibbs_potts",
    "anneal",
    "temperatures",
    "gibbs",
    "AnnealResult",
    # target log densities
    "gaussian_logp",
    "rosenbrock_logp",
    "mixture_logp",
    "logistic_logp",
    "funnel_logp",
    # exact results (spec A7)
    "ising_exact_magnetization",
    "ising_exact_energy",
    "ellipk",
]

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_INIT_BLOCK = 1 << 63
_TWO_M53 = 2.0**-53
_TWO_M32 = 2.0**-32
_TWO_PI = 6.283185307179586  # 2 * pi as a double (the core's constant)
_ACCEPT_TARGET = 0.234
# Philox elements per vectorised call (memory ~ 100 B per element).
_CHUNK = 1 << 18


def _err(fn, msg, exc=ValueError):
    return exc(f"[kexue.samplers.{fn}] {msg}")


def _int_arg(fn, name, v, lo=None):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise _err(fn, f"{name} must be an int; got {type(v).__name__}", TypeError)
    v = int(v)
    if lo is not None and v < lo:
        raise _err(fn, f"{name} must be >= {lo}; got {v}")
    return v


def _seed_arg(fn, seed):
    seed = _int_arg(fn, "seed", seed)
    if not 0 <= seed < 1 << 64:
        raise _err(fn, f"seed must be in [0, 2^64); got {seed}")
    return seed


# ============================================================================
# the random stream


def uniform53(wa, wb):
    """``((wa >> 5) * 2^26 + (wb >> 6)) * 2^-53``: a float64 in [0, 1) from two words.

    Exact: the 53-bit integer converts to float64 without rounding.

    >>> float(uniform53(0, 0)), float(uniform53(0xFFFFFFFF, 0xFFFFFFFF)) == 1 - 2.0**-53
    (0.0, True)
    """
    a = np.asarray(wa).astype(_U64) >> _U64(5)
    b = np.asarray(wb).astype(_U64) >> _U64(6)
    return (a * _U64(67108864) + b).astype(np.float64) * _TWO_M53


def _words(seed, g, n):
    """uint32 [..., 4]: the words of blocks ``n`` of global chains ``g`` (uint64
    arrays, broadcast against each other) under ``seed``."""
    g = np.asarray(g, dtype=_U64)
    n = np.asarray(n, dtype=_U64)
    g, n = np.broadcast_arrays(g, n)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    out = philox4x32_10((n & _MASK32, n >> _U64(32), g & _MASK32, g >> _U64(32)), key)
    return np.moveaxis(out, 0, -1)


def philox_words(seed, chain, blocks):
    """uint32 [..., 4]: the 4 words of block(s) ``blocks`` of global chain(s) ``chain``.

    ``chain`` and ``blocks`` are ints or integer arrays in [0, 2^64) (broadcast);
    ``out[..., k] = philox4x32_10((n & 0xffffffff, n >> 32, g & 0xffffffff, g >> 32),
    (seed & 0xffffffff, seed >> 32))[k]``.
    """
    seed = _seed_arg("philox_words", seed)
    return _words(seed, _as_u64(chain), _as_u64(blocks))


def _as_u64(v):
    if isinstance(v, (int, np.integer)):
        return np.asarray(int(v), dtype=_U64)
    return np.asarray(v, dtype=_U64)


def philox_uniforms(seed, chain, blocks):
    """float64 [..., 2]: ``(U0, U1)`` of each block: ``uniform53(w0, w1)``, ``uniform53(w2, w3)``."""
    w = philox_words(seed, chain, blocks)
    return np.stack([uniform53(w[..., 0], w[..., 1]), uniform53(w[..., 2], w[..., 3])], axis=-1)


def _normals_from_words(w):
    u0 = uniform53(w[..., 0], w[..., 1])
    u1 = uniform53(w[..., 2], w[..., 3])
    r = np.sqrt(-2.0 * np.log(1.0 - u0))  # 1 - u0 is exact and > 0
    t = _TWO_PI * u1
    return r * np.cos(t), r * np.sin(t)


def philox_normals(seed, chain, blocks):
    """float64 [..., 2]: the Box-Muller pair ``(Z0, Z1)`` of each block:
    ``r = sqrt(-2 log(1 - U0))``, ``Z0 = r cos(2 pi U1)``, ``Z1 = r sin(2 pi U1)``."""
    z0, z1 = _normals_from_words(philox_words(seed, chain, blocks))
    return np.stack([z0, z1], axis=-1)


# ============================================================================
# target log densities (x [C, D] -> [C]); the arithmetic order of targets.hpp


def _x2(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D [C, D]; got shape {x.shape}")
    return x


def _chol(cov):
    cov = np.asarray(cov, dtype=np.float64)
    return np.linalg.cholesky(cov)


def _gaussian_logp_chol(x, mean, L):
    """log N(x; mean, L L^T) by forward substitution, row by row as the core does."""
    C, D = x.shape
    z = np.empty((C, D))
    q = np.zeros(C)
    ld = 0.0
    for i in range(D):
        r = x[:, i] - mean[i]
        for k in range(i):
            r = r - L[i, k] * z[:, k]
        z[:, i] = r * (1.0 / L[i, i])  # the core multiplies by the reciprocal
        q = q + z[:, i] * z[:, i]
        ld = ld + math.log(L[i, i])
    return -0.5 * q - ld - 0.5 * float(D) * 1.8378770664093453  # log(2 pi)


def gaussian_logp(x, mean, cov):
    """log N(x; mean, cov), normalised: ``-0.5 |z|^2 - sum_i log L_ii - (D/2) log(2 pi)``
    where ``cov = L L^T`` (Cholesky, L lower) and ``z = L^{-1} (x - mean)`` by forward
    substitution. x [C, D], mean [D], cov [D, D] -> [C]."""
    x = _x2(x)
    return _gaussian_logp_chol(x, np.asarray(mean, dtype=np.float64), _chol(cov))


def rosenbrock_logp(x, a=1.0, b=100.0):
    """Rosenbrock's banana, unnormalised: ``-sum_{i<D-1} [(a - x_i)^2 + b (x_{i+1} - x_i^2)^2]``
    (D = 2: ``-((a - x0)^2 + b (x1 - x0^2)^2)``, the contract's form). x [C, D >= 2] -> [C]."""
    x = _x2(x)
    s = np.zeros(x.shape[0])
    for i in range(x.shape[1] - 1):
        u = a - x[:, i]
        v = x[:, i + 1] - x[:, i] * x[:, i]
        s = s + (u * u + b * v * v)
    return -s


def mixture_logp(x, weights, means, covs):
    """Gaussian mixture, normalised: ``logsumexp_k (log w_k + log N(x; mu_k, S_k))`` with
    ``w = weights / sum(weights)``. Max-shifted: ``m + log(sum_k exp(l_k - m))``
    (all components -inf gives -inf). weights [K], means [K, D], covs [K, D, D] -> [C]."""
    x = _x2(x)
    w = np.asarray(weights, dtype=np.float64)
    logw = np.log(w / np.sum(w))
    means = np.asarray(means, dtype=np.float64)
    covs = np.asarray(covs, dtype=np.float64)
    lk = np.stack(
        [logw[k] + _gaussian_logp_chol(x, means[k], _chol(covs[k])) for k in range(len(w))],
        axis=1,
    )
    m = np.max(lk, axis=1)
    safe = np.where(np.isneginf(m), 0.0, m)
    s = np.zeros(x.shape[0])
    with np.errstate(invalid="ignore"):
        for k in range(lk.shape[1]):
            s = s + np.exp(lk[:, k] - safe)
        out = m + np.log(np.where(np.isneginf(m), 1.0, s))
    return np.where(np.isneginf(m), -np.inf, out)


def logistic_logp(x, X, y, prior_scale=1.0):
    """Bayesian logistic regression posterior (unnormalised) at weights ``w = x[c]``:
    ``sum_n [y_n log s_n + (1 - y_n) log(1 - s_n)] - |w|^2 / (2 prior_scale^2)``,
    ``s_n = sigmoid(X_n . w)``, y in {0, 1}. Stable form: ``log s = -softplus(-eta)``,
    ``log(1 - s) = -softplus(eta)``, ``softplus(e) = log1p(exp(-|e|)) + max(e, 0)``.
    X [n, D], y [n] -> [C]."""
    x = _x2(x)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    C, D = x.shape
    ll = np.zeros(C)
    for i in range(X.shape[0]):
        eta = np.zeros(C)
        for d in range(D):
            eta = eta + X[i, d] * x[:, d]
        sp = np.log1p(np.exp(-np.abs(eta)))
        if y[i] != 0.0:
            ll = ll - (sp + np.where(eta < 0.0, -eta, 0.0))
        else:
            ll = ll - (sp + np.where(eta > 0.0, eta, 0.0))
    pr = np.zeros(C)
    for d in range(D):
        pr = pr + x[:, d] * x[:, d]
    return ll - 0.5 * pr / (prior_scale * prior_scale)


def funnel_logp(x):
    """Neal's funnel, x = [v, x_1 .. x_{D-1}], v ~ N(0, 3^2), x_i | v ~ N(0, e^v);
    without the constant -(D/2) log(2 pi) - log 3:
    ``-v^2 / 18 - sum_{i>=1} (x_i^2 e^{-v} / 2 + v / 2)``. x [C, D >= 2] -> [C]."""
    x = _x2(x)
    v = x[:, 0]
    with np.errstate(over="ignore"):
        ev = np.exp(-v)
    s = -v * v / 18.0
    with np.errstate(invalid="ignore"):
        for i in range(1, x.shape[1]):
            s = s - (0.5 * x[:, i] * x[:, i] * ev + 0.5 * v)
    return s


# ============================================================================
# Metropolis-Hastings


def _resolve_target(target):
    fn = getattr(target, "logp", None)
    if fn is not None and callable(fn):
        return fn
    if callable(target):
        return target
    raise _err(
        "metropolis",
        "target must be a callable f(x[C, D]) -> logp[C] or a kexue.samplers.targets object; "
        f"got {type(target).__name__}",
        TypeError,
    )


def _eval(fn, x, t, C):
    """Call the target on x [C, D]; check its output; ``t`` = step (-1: the start)."""
    out = fn(x.copy())
    try:
        out = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise _err(
            "metropolis", f"target must return float64 log densities; got {type(out).__name__}",
            TypeError,
        ) from None
    where = "at the start (x0)" if t < 0 else f"at step {t}"
    if out.shape != (C,):
        raise _err(
            "metropolis", f"target returned an array of shape {out.shape} {where}; expected ({C},)"
        )
    bad = np.flatnonzero(np.isnan(out))
    if bad.size:
        raise _err("metropolis", f"target returned NaN {where} for chain {int(bad[0])}")
    return out


def _parse_proposal(proposal, D):
    if isinstance(proposal, str):
        if proposal != "gaussian":
            raise _err("metropolis", f"proposal must be 'gaussian' or ('independent', mean, cov); "
                       f"got {proposal!r}")
        return None
    if isinstance(proposal, (tuple, list)) and len(proposal) == 3 and proposal[0] == "independent":
        mu = np.asarray(proposal[1], dtype=np.float64).reshape(-1)
        cov = np.asarray(proposal[2], dtype=np.float64)
        if mu.shape != (D,) or cov.shape != (D, D):
            raise _err("metropolis", f"proposal's mean must be [{D}] and cov [{D}, {D}]; got "
                       f"{mu.shape} and {cov.shape}")
        try:
            L = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise _err("metropolis", "proposal's cov must be positive definite") from None
        return mu, L
    raise _err("metropolis", f"proposal must be 'gaussian' or ('independent', mean, cov); got "
               f"{proposal!r}")


def _indep_lq(x, mu, L):
    """-0.5 |L^{-1} (x - mu)|^2 by forward substitution (the core's order)."""
    C, D = x.shape
    z = np.empty((C, D))
    q = np.zeros(C)
    for i in range(D):
        r = x[:, i] - mu[i]
        for k in range(i):
            r = r - L[i, k] * z[:, k]
        z[:, i] = r / L[i, i]
        q = q + z[:, i] * z[:, i]
    return -0.5 * q


def metropolis(
    target,
    x0,
    n_steps,
    *,
    step_size=0.1,
    proposal="gaussian",
    seed=0,
    burn=0,
    thin=1,
    adapt=True,
    chain_offset=0,
    progress=False,
):
    """Metropolis-Hastings on C chains (spec A3); returns a :class:`Trace`.

    target: a callable ``f(x [C, D]) -> logp [C]`` (called once per step for all
    chains, on a copy) or an object with such a ``.logp`` (the built-in targets).
    x0 [C, D] float64. Steps ``t = 0 .. burn + n_steps - 1``, burn-in first.

    Step t of chain c (global ``g = chain_offset + c``), ``P = ceil(D / 2)``:
    ``z`` = the normals of blocks ``t (P+1) .. t (P+1) + P - 1`` (z[2i] = Z0 and
    z[2i+1] = Z1 of block ``t (P+1) + i``), ``u`` = U0 of block ``t (P+1) + P``.

    * "gaussian": ``y = x + (f_c * s) * z`` (s = step_size, a number or [D]
      elementwise; f_c the chain's adapted factor, 1 at the start);
    * ``("independent", mu, S)``: ``y = mu + L z`` (``S = L L^T``), log q(y) =
      ``-0.5 |z|^2`` (= ``-0.5 |L^{-1}(y - mu)|^2``; at x0 by forward substitution).

    Accept iff ``log(u) < logp(y) - logp(x)`` (``+ log q(x) - log q(y)`` for the
    independence proposal); ``logp(y) = -inf`` never accepts (the difference is
    -inf or NaN). A NaN from the target raises ValueError naming the step and
    chain. Adaptation (``adapt``, "gaussian" only, steps ``t < burn``):
    ``f *= exp((a_t - 0.234) / (t + 1)^0.6)`` with ``a_t = min(1, exp(logp(y) - logp(x)))``
    (0 when ``logp(y) = -inf``); frozen after burn-in.

    Recorded: the state after steps ``t >= burn`` with ``(t - burn) % thin == 0``,
    ``S = ceil(n_steps / thin)``. ``accept_rate`` = accepted / n_steps over the
    recorded phase (0 when n_steps = 0); ``step_size`` [C] = ``f * mean(s)``
    (the independence proposal ignores ``step_size`` and reports 1).
    """
    fn = "metropolis"
    logp_fn = _resolve_target(target)
    x0 = np.asarray(x0)
    if x0.dtype != np.float64:
        raise _err(fn, f"x0 must be float64; got {x0.dtype}", TypeError)
    if x0.ndim != 2:
        raise _err(fn, f"x0 must be 2-D [C, D]; got shape {x0.shape}")
    x = np.array(x0, dtype=np.float64)
    C, D = x.shape
    if D < 1:
        raise _err(fn, f"x0 must have D >= 1 coordinates; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise _err(fn, "x0 must be finite")
    n_steps = _int_arg(fn, "n_steps", n_steps, 0)
    burn = _int_arg(fn, "burn", burn, 0)
    thin = _int_arg(fn, "thin", thin, 1)
    chain_offset = _int_arg(fn, "chain_offset", chain_offset, 0)
    seed = _seed_arg(fn, seed)
    indep = _parse_proposal(proposal, D)
    if indep is None:
        s = np.asarray(step_size, dtype=np.float64).reshape(-1)
        if s.size not in (1, D) or np.ndim(step_size) > 1:
            raise _err(fn, f"step_size must be a number or have D = {D} entries; got shape "
                       f"{np.shape(step_size)}")
        if not np.all(np.isfinite(s) & (s > 0)):
            raise _err(fn, f"step_size must be finite and > 0; got {step_size!r}")
    else:  # unused; Trace.step_size is then 1 (the core's convention)
        s = np.ones(1)

    S = -(-n_steps // thin)
    samples = np.empty((C, S, D))
    logps = np.empty((C, S))
    accepted = np.zeros(C, dtype=np.int64)
    f = np.ones(C)
    g = np.arange(C, dtype=_U64) + _U64(chain_offset)
    P = (D + 1) // 2
    T = burn + n_steps
    do_adapt = bool(adapt) and indep is None

    lp = _eval(logp_fn, x, -1, C) if C else np.zeros(0)
    lq = _indep_lq(x, *indep) if indep is not None else None
    if C == 0:
        return Trace(samples=samples, logp=logps, accept_rate=np.zeros(0), step_size=np.zeros(0))

    per_step = C * (P + 1)
    chunk = max(1, _CHUNK // per_step)
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        blocks = np.arange(t0 * (P + 1), t1 * (P + 1), dtype=_U64)
        w = _words(seed, g[:, None], blocks[None, :]).reshape(C, t1 - t0, P + 1, 4)
        z0, z1 = _normals_from_words(w[:, :, :P, :])  # [C, steps, P]
        Z = np.stack([z0, z1], axis=-1).reshape(C, t1 - t0, 2 * P)[:, :, :D]
        U = uniform53(w[:, :, P, 0], w[:, :, P, 1])  # [C, steps]
        with np.errstate(divide="ignore"):
            logU = np.log(U)
        for t in range(t0, t1):
            z = Z[:, t - t0, :]
            if indep is None:
                y = x + (f[:, None] * s[None, :]) * z
                lqy = None
            else:
                mu, L = indep
                y = np.empty((C, D))
                for i in range(D):
                    acc = np.full(C, mu[i])
                    for k in range(i + 1):
                        acc = acc + L[i, k] * z[:, k]
                    y[:, i] = acc
                q = np.zeros(C)
                for i in range(D):  # sequential sum, the core's order
                    q = q + z[:, i] * z[:, i]
                lqy = -0.5 * q
            lpy = _eval(logp_fn, y, t, C)
            with np.errstate(invalid="ignore"):
                dl = lpy - lp
                lr = dl if indep is None else dl + (lq - lqy)
                take = logU[:, t - t0] < lr
            if do_adapt and t < burn:
                with np.errstate(over="ignore", invalid="ignore"):
                    a = np.where(lpy == -np.inf, 0.0, np.minimum(1.0, np.exp(lr)))
                f = f * np.exp((a - _ACCEPT_TARGET) / (float(t + 1) ** 0.6))
            x = np.where(take[:, None], y, x)
            lp = np.where(take, lpy, lp)
            if indep is not None:
                lq = np.where(take, lqy, lq)
            r = t - burn
            if r >= 0:
                accepted += take
                if r % thin == 0:
                    samples[:, r // thin] = x
                    logps[:, r // thin] = lp
            if progress and (t + 1) % max(1, T // 20) == 0:
                print(f"\rmetropolis {t + 1}/{T}", end="", file=sys.stderr, flush=True)
    if progress and T:
        print(file=sys.stderr)
    rate = accepted / n_steps if n_steps > 0 else np.zeros(C)
    step_out = f * (np.sum(s) / float(s.size))
    return Trace(samples=samples, logp=logps, accept_rate=np.asarray(rate, dtype=np.float64),
                 step_size=step_out)


# ============================================================================
# lattices: heat-bath Gibbs with checkerboard sweeps


def _lattice_args(fn, shape, beta, n_sweeps, chains, seed, record_every, chain_offset):
    try:
        H, W = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise _err(fn, f"shape must be (H, W); got {shape!r}") from None
    if H < 2 or W < 2 or H % 2 or W % 2:
        raise _err(fn, "shape must be even in both axes and >= 2 (a checkerboard on a periodic "
                   f"lattice); got ({H}, {W})")
    beta = float(beta)
    if not (math.isfinite(beta) and beta >= 0.0):
        raise _err(fn, f"beta must be a finite number >= 0; got {beta}")
    n_sweeps = _int_arg(fn, "n_sweeps", n_sweeps, 0)
    chains = _int_arg(fn, "chains", chains, 0)
    seed = _seed_arg(fn, seed)
    record_every = _int_arg(fn, "record_every", record_every, 1)
    chain_offset = _int_arg(fn, "chain_offset", chain_offset, 0)
    return H, W, beta, n_sweeps, chains, seed, record_every, chain_offset


def _lattice_init(fn, init, C, H, W, q, seed, g):
    """int8 [C, H, W]: the start (q == 0: Ising spins +-1; else Potts states)."""
    if isinstance(init, str):
        if init == "random":
            ng = -(-(H * W) // 64)
            blocks = np.arange(16 * ng, dtype=_U64) + _U64(_INIT_BLOCK)
            w = _group_words(_words(seed, g[:, None], blocks[None, :]))[..., : H * W]
            if q == 0:
                s = np.where(w < np.uint32(1 << 31), 1, -1)
            else:
                s = (w.astype(_U64) * _U64(q)) >> _U64(32)
            return s.astype(np.int8).reshape(C, H, W)
        if init in ("up", "down"):
            v = (1 if init == "up" else -1) if q == 0 else (0 if init == "up" else q - 1)
            return np.full((C, H, W), v, dtype=np.int8)
        raise _err(fn, f"init must be 'random', 'up', 'down' or an array; got {init!r}")
    a = np.asarray(init)
    if a.dtype != np.int8:
        raise _err(fn, f"init must be an int8 array [C, H, W]; got dtype {a.dtype}", TypeError)
    if a.shape != (C, H, W):
        raise _err(fn, f"init must have shape ({C}, {H}, {W}); got {a.shape}")
    if q == 0 and not np.all((a == 1) | (a == -1)):
        raise _err(fn, "init spins must be +1 or -1")
    if q and not np.all((a >= 0) & (a < q)):
        raise _err(fn, f"init states must be in [0, {q})")
    return a.copy()


class _Colours:
    """Index arrays of the two colours: site q = r (W/2) + k of colour col is
    (r, 2k + (r + col) % 2); its four neighbours."""

    def __init__(self, H, W):
        half = W // 2
        r = np.repeat(np.arange(H), half).reshape(H, half)
        k = np.tile(np.arange(half), H).reshape(H, half)
        self.idx = []
        for col in (0, 1):
            c = 2 * k + (r + col) % 2
            nbrs = [((r - 1) % H, c), ((r + 1) % H, c), (r, (c - 1) % W), (r, (c + 1) % W)]
            self.idx.append(((r, c), nbrs))


def _group_words(w):
    """Words [..., 16 G, 4] of consecutive blocks -> the sites' words [..., 64 G]:
    site 64 j + 16 k + b takes word k of block 16 j + b."""
    lead = w.shape[:-2]
    G = w.shape[-2] // 16
    w = w.reshape(*lead, G, 16, 4)
    return np.swapaxes(w, -1, -2).reshape(*lead, G * 64)


def _sweep_words(seed, g, NB, s0, s1):
    """uint32 [C, sweeps, 2, 4 NB]: the sites' words of sweeps s0..s1-1 (both colours)."""
    blocks = np.arange(2 * s0 * NB, 2 * s1 * NB, dtype=_U64)
    w = _words(seed, g[:, None], blocks[None, :])  # [C, 2 (s1-s0) NB, 4]
    return _group_words(w.reshape(g.size, s1 - s0, 2, NB, 4))


def _run_lattice(fn, spins, q, beta, h, n_sweeps, seed, g, record_every):
    C, H, W = spins.shape
    half = W // 2
    nsite = H * half
    NB = 16 * -(-nsite // 64)
    cols = _Colours(H, W)
    n = float(H * W)
    S = n_sweeps // record_every
    mag = np.empty((C, S))
    en = np.empty((C, S))
    if q == 0:
        # T[(ns + 4) / 2] for neighbour sums ns = -4, -2, 0, 2, 4 (math.exp: libm, as the core)
        table = np.empty(5, dtype=_U64)
        for i in range(5):
            field = float(2 * i - 4) + h
            p = 1.0 / (1.0 + math.exp(-2.0 * beta * field))
            t = math.floor(p * 4294967296.0)
            table[i] = min(int(t), 1 << 32)
    else:
        E = np.array([math.exp(beta * float(i)) for i in range(5)])
    per_sweep = max(1, C * 2 * NB)
    chunk = max(1, _CHUNK // per_sweep)
    for s0 in range(0, n_sweeps, chunk):
        s1 = min(n_sweeps, s0 + chunk)
        words = _sweep_words(seed, g, NB, s0, s1)
        for sw in range(s0, s1):
            for col in (0, 1):
                (r, c), nbrs = cols.idx[col]
                w = words[:, sw - s0, col, :nsite].reshape(C, H, half)
                if q == 0:
                    ns = sum(spins[:, a, b].astype(np.int16) for a, b in nbrs)
                    thr = table[(ns + 4) >> 1]
                    spins[:, r, c] = np.where(w.astype(_U64) < thr, 1, -1).astype(np.int8)
                else:
                    nb = [spins[:, a, b] for a, b in nbrs]
                    wts = np.empty((C, H, half, q))
                    for a in range(q):
                        cnt = sum((v == a).astype(np.int64) for v in nb)
                        wts[..., a] = E[cnt]
                    cum = np.empty_like(wts)
                    acc = np.zeros((C, H, half))
                    for a in range(q):  # sequential: the core's order
                        acc = acc + wts[..., a]
                        cum[..., a] = acc
                    Z = cum[..., q - 1]
                    tgt = (w.astype(np.float64) + 0.5) * _TWO_M32 * Z
                    hit = tgt[..., None] < cum
                    pick = np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), q - 1)
                    spins[:, r, c] = pick.astype(np.int8)
            if (sw + 1) % record_every == 0:
                k = (sw + 1) // record_every - 1
                if k < S:
                    mag[:, k], en[:, k] = _measure(spins, q, h, n)
    return IsingTrace(spins=spins, magnetization=mag, energy=en)


def _measure(spins, q, h, n):
    """Per-site magnetization and energy of every chain (exact integer sums)."""
    right = np.roll(spins, -1, axis=2)
    down = np.roll(spins, -1, axis=1)
    if q == 0:
        s = spins.astype(np.int64)
        m = s.sum(axis=(1, 2))
        b = (s * (right.astype(np.int64) + down.astype(np.int64))).sum(axis=(1, 2))
        mag = m.astype(np.float64) / n
        return mag, -b.astype(np.float64) / n - h * mag
    b = ((spins == right).astype(np.int64) + (spins == down)).sum(axis=(1, 2))
    cnt = np.stack([(spins == a).sum(axis=(1, 2)) for a in range(q)], axis=1)
    mx = cnt.max(axis=1).astype(np.float64)
    mag = (float(q) * (mx / n) - 1.0) / float(q - 1)
    return mag, -b.astype(np.float64) / n


def gibbs_ising(shape, beta, n_sweeps, *, h=0.0, chains=1, seed=0, init="random",
                record_every=1, chain_offset=0):
    """Heat-bath Gibbs on the periodic H x W Ising lattice (spec A7); returns an
    :class:`IsingTrace`.

    Each sweep updates colour 0 ((r + c) even) then colour 1. Site q of a colour
    (row-major over that colour, ``q = r (W/2) + c // 2``) takes word
    ``(q % 64) // 16`` of block ``(2 sweep + col) NB + 16 (q // 64) + q % 16``
    (``NB = 16 ceil(H W / 128)``); with ``f`` = the sum of its 4 neighbours + h,
    ``p = 1 / (1 + exp(-2 beta f))`` and ``T = min(floor(p 2^32), 2^32)`` the spin
    becomes +1 iff ``word < T``. init: "random" (site ``q' = r W + c`` takes word
    ``(q' % 64) // 16`` of block ``2^63 + 16 (q' // 64) + q' % 16``: +1 iff
    word < 2^31), "up", "down" or an int8 array [C, H, W] of +-1.
    Recorded after sweep s when ``(s + 1) % record_every == 0``:
    ``magnetization = mean(spins)``, ``energy = -(sum over right and down bonds
    s_i s_j) / (H W) - h magnetization``; S = n_sweeps // record_every.
    """
    fn = "gibbs_ising"
    H, W, beta, n_sweeps, C, seed, record_every, chain_offset = _lattice_args(
        fn, shape, beta, n_sweeps, chains, seed, record_every, chain_offset)
    h = float(h)
    if not math.isfinite(h):
        raise _err(fn, f"h must be finite; got {h}")
    g = np.arange(C, dtype=_U64) + _U64(chain_offset)
    spins = _lattice_init(fn, init, C, H, W, 0, seed, g)
    return _run_lattice(fn, spins, 0, beta, h, n_sweeps, seed, g, record_every)


def gibbs_potts(shape, q, beta, n_sweeps, *, chains=1, seed=0, init="random", record_every=1,
                chain_offset=0):
    """Heat-bath Gibbs on the periodic H x W q-state Potts lattice; returns an
    :class:`IsingTrace` (``spins`` = states 0..q-1, int8).

    Same colours and words as :func:`gibbs_ising`. With ``n_a`` = the number of
    neighbours in state a and ``e_a = exp(beta n_a)``: ``cum_a = e_0 + .. + e_a``
    (float64, in order), ``Z = cum_{q-1}``, ``u = (word + 0.5) 2^-32``; the new state
    is the smallest a with ``u Z < cum_a`` (q - 1 if none). init "random": state
    ``(word q) >> 32`` with the init words; "up": all 0; "down": all q - 1; or an
    int8 array. Recorded: energy = -(equal right/down bonds) / (H W);
    magnetization = ``(q (max_a count_a / (H W)) - 1) / (q - 1)``.
    """
    fn = "gibbs_potts"
    qi = _int_arg(fn, "q", q)
    if not 2 <= qi <= 127:
        raise _err(fn, f"q must be in [2, 127]; got {qi}")
    H, W, beta, n_sweeps, C, seed, record_every, chain_offset = _lattice_args(
        fn, shape, beta, n_sweeps, chains, seed, record_every, chain_offset)
    g = np.arange(C, dtype=_U64) + _U64(chain_offset)
    spins = _lattice_init(fn, init, C, H, W, qi, seed, g)
    return _run_lattice(fn, spins, qi, beta, 0.0, n_sweeps, seed, g, record_every)


# ============================================================================
# exact Ising results (spec A7), without scipy


def ellipk(m):
    """Complete elliptic integral of the first kind K(m), parameter m = k^2 < 1:
    ``K(m) = pi / (2 AGM(1, sqrt(1 - m)))`` (arithmetic-geometric mean)."""
    if m >= 1.0:
        return math.inf
    a, b = 1.0, math.sqrt(1.0 - m)
    for _ in range(64):
        if abs(a - b) <= 1e-16 * a:
            break
        a, b = 0.5 * (a + b), math.sqrt(a * b)
    return math.pi / (2.0 * a)


def ising_exact_magnetization(beta):
    """Onsager/Yang spontaneous magnetization per site of the infinite 2-D Ising
    model: ``(1 - sinh(2 beta)^-4)^(1/8)`` below T_c, 0 above."""
    x = 1.0 - math.sinh(2.0 * beta) ** -4
    return x ** 0.125 if x > 0 else 0.0


def ising_exact_energy(beta):
    """Energy per site of the infinite 2-D Ising model (J = 1, h = 0):
    ``u = -coth(2b) [1 + (2/pi) (2 tanh^2(2b) - 1) K(k^2)]``, ``k = 2 sinh(2b) / cosh^2(2b)``."""
    t = 2.0 * beta
    k = 2.0 * math.sinh(t) / math.cosh(t) ** 2
    # k^2 <= 1 (= 1 at T_c, where K's log singularity meets a factor 0): keep it below 1
    m = min(k * k, 1.0 - 2.0**-52)
    return -(1.0 / math.tanh(t)) * (
        1.0 + (2.0 / math.pi) * (2.0 * math.tanh(t) ** 2 - 1.0) * ellipk(m)
    )


# ============================================================================
# simulated annealing (spec A5) and Gibbs with the caller's conditionals (spec A4)

@dataclass
class AnnealResult:
    """The twin of kexue.samplers.AnnealResult: best_x [C, D] float64 (int8 spins
    [C, N] for a spin glass), best_energy [C], energy [C, n_steps] (after each step
    or sweep), accept_rate [C] (NaN for a spin glass), temperatures [n_steps]."""

    best_x: np.ndarray
    best_energy: np.ndarray
    energy: np.ndarray
    accept_rate: np.ndarray
    temperatures: np.ndarray


_SHARED_CHAIN = (1 << 64) - 1  # gibbs' random scan: one stream for all chains


def _schedule_error(schedule):
    return _err("anneal", "schedule must be ('geometric', T0, T1), ('linear', T0, T1), "
                f"('log', c) or an array; got {schedule!r}")


def temperatures(schedule, n_steps):
    """The temperature of each step, float64 [n_steps] (spec A5), with ``frac_t = t / (n - 1)``
    (0 when n = 1):

    * ``("geometric", T0, T1)``: ``T0 * (T1 / T0) ** frac_t`` (T0, T1 > 0);
    * ``("linear", T0, T1)``: ``T0 + (T1 - T0) * frac_t``;
    * ``("log", c)``: ``c / log(t + 2)``;
    * an array of ``n_steps`` temperatures (taken as is).

    Anything else raises ValueError naming ``schedule``. (Positivity of linear, log
    and explicit schedules is checked by :func:`anneal`.)

    >>> temperatures(("geometric", 1.0, 0.01), 3)
    array([1.  , 0.1 , 0.01])
    """
    n = int(n_steps)
    if not isinstance(schedule, tuple):
        try:
            T = np.asarray(schedule, dtype=np.float64)
        except (TypeError, ValueError):
            raise _schedule_error(schedule) from None
        if T.shape != (n,):
            raise _err("anneal", f"schedule must be a tuple or an array of {n} temperatures; got "
                       f"shape {T.shape}")
        return np.ascontiguousarray(T)
    t = np.arange(n, dtype=np.float64)
    frac = t / (n - 1) if n > 1 else np.zeros(n)
    kind = schedule[0] if schedule else None
    try:
        if kind == "geometric" and len(schedule) == 3:
            T0, T1 = float(schedule[1]), float(schedule[2])
            if not (T0 > 0 and T1 > 0):
                raise _err("anneal", f"schedule temperatures must be > 0; got {T0}, {T1}")
            return T0 * (T1 / T0) ** frac
        if kind == "linear" and len(schedule) == 3:
            T0, T1 = float(schedule[1]), float(schedule[2])
            return T0 + (T1 - T0) * frac
        if kind == "log" and len(schedule) == 2:
            return float(schedule[1]) / np.log(t + 2.0)
    except (TypeError, ValueError) as e:
        if str(e).startswith("[kexue."):
            raise
        raise _schedule_error(schedule) from None
    raise _schedule_error(schedule)


def _check_temperatures(T):
    for t in range(T.size):
        v = float(T[t])
        if not (math.isfinite(v) and v > 0.0):
            raise _err("anneal", f"temperatures must be finite and > 0; got {v:g} at step {t}")


def _add_sequential(terms):
    """Row sums of terms [C, K] left to right from 0.0 (the core's scalar loop)."""
    C, K = terms.shape
    buf = np.zeros((C, K + 1))
    buf[:, 1:] = terms
    return np.add.accumulate(buf, axis=1)[:, -1]


def _anneal_spins(J, h, x0, T, seed, chain_offset, progress):
    fn = "anneal"
    J = np.asarray(J)
    if J.ndim != 2 or J.dtype != np.float64 or J.shape[1] != J.shape[0]:
        raise _err(fn, f"energy's J must be square [N,N] float64; got {J.dtype} {J.shape}")
    N = J.shape[0]
    if not np.all(np.isfinite(J)):
        raise _err(fn, "energy's J must be finite")
    bad = np.argwhere(J != J.T)
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise _err(fn, f"energy's J must be symmetric; J[{i}, {j}] != J[{j}, {i}]")
    if np.any(np.diag(J) != 0.0):
        raise _err(fn, "energy's J must have a zero diagonal")
    h = np.asarray(h, dtype=np.float64)
    if h.shape != (N,):
        raise _err(fn, f"energy's h must have shape ({N},) [N]; got {h.shape}")
    if not np.all(np.isfinite(h)):
        raise _err(fn, "energy's h must be finite")
    if x0.dtype != np.int8:
        raise _err(fn, f"x0 must be int8 spins [C, N] for a SpinGlass; got {x0.dtype}", TypeError)
    if x0.ndim != 2 or x0.shape[1] != N:
        raise _err(fn, f"x0 must have shape (C, {N}) [C,N]; got {x0.shape}")
    wrong = x0[(x0 != 1) & (x0 != -1)]
    if wrong.size:
        raise _err(fn, f"x0 spins must be +1 or -1; got {int(wrong[0])}")
    _check_temperatures(T)
    C, nT = x0.shape[0], T.size
    s = x0.astype(np.float64)  # +-1 exactly; the core's int8 * double
    # E = -sum_{i<j} J_ij s_i s_j - sum_i h_i s_i, row i summing j > i in order
    E = np.zeros(C)
    for i in range(N):
        f = _add_sequential(J[i, i + 1:][None, :] * s[:, i + 1:])
        E = E - (s[:, i] * f + h[i] * s[:, i])
    best_e = E.copy()
    best_s = s.copy()
    energy = np.empty((C, nT))
    g = np.arange(C, dtype=_U64) + _U64(chain_offset)
    per_sweep = max(1, C * N)
    chunk = max(1, _CHUNK // per_sweep)
    for t0 in range(0, nT, chunk):
        t1 = min(nT, t0 + chunk)
        blocks = np.arange(t0 * N, t1 * N, dtype=_U64)
        w = _words(seed, g[:, None], blocks[None, :])  # [C, (t1 - t0) N, 4]
        with np.errstate(divide="ignore"):
            logU = np.log(uniform53(w[..., 0], w[..., 1])).reshape(C, t1 - t0, N)
        for t in range(t0, t1):
            temp = T[t]
            for i in range(N):
                f = _add_sequential(J[i][None, :] * s) + h[i]
                dE = 2.0 * s[:, i] * f
                take = logU[:, t - t0, i] < -dE / temp
                s[:, i] = np.where(take, -s[:, i], s[:, i])
                E = np.where(take, E + dE, E)
                better = take & (E < best_e)
                best_e = np.where(better, E, best_e)
                best_s[better] = s[better]
            energy[:, t] = E
            if progress and (t + 1) % max(1, nT // 20) == 0:
                print(f"\ranneal {t + 1}/{nT}", end="", file=sys.stderr, flush=True)
    if progress and nT:
        print(file=sys.stderr)
    return AnnealResult(best_s.astype(np.int8), best_e, energy, np.full(C, np.nan), T)


def _anneal_eval(fn, x, t, C):
    """log p = -E at x [C, D] (fn: the target's logp); NaN raises naming the step."""
    out = fn(x.copy())
    try:
        out = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise _err("anneal", f"energy must return float64 values; got {type(out).__name__}",
                   TypeError) from None
    where = "at the start (x0)" if t < 0 else f"at step {t}"
    if out.shape != (C,):
        raise _err("anneal", f"energy returned an array of shape {out.shape} {where}; "
                   f"expected ({C},)")
    bad = np.flatnonzero(np.isnan(out))
    if bad.size:
        raise _err("anneal", f"energy returned NaN {where} for chain {int(bad[0])}")
    return out


def anneal(energy, x0, n_steps, *, schedule=("geometric", 1.0, 0.01), step_size=0.1, seed=0,
           chain_offset=0, progress=False):
    """Simulated annealing over C chains (spec A5); returns an :class:`AnnealResult`.

    Temperatures ``T = temperatures(schedule, n_steps)`` (all finite and > 0).

    Continuous (``energy`` a callable ``E(x [C, D]) -> [C]`` or a built-in target
    with ``E = -logp``; x0 float64 [C, D]): step t is the random-walk Metropolis step
    of :func:`metropolis` without adaptation (the same blocks: normals of
    ``t (P + 1) + i``, u = U0 of ``t (P + 1) + P``, ``P = ceil(D / 2)``):
    ``y = x + step_size * z``, accept iff ``log(u) < (logp(y) - logp(x)) / T_t``
    (logp = -E). The best state is the accepted one of highest logp (strictly
    higher; x0 to start). ``energy[:, t] = -logp(x)`` after step t,
    ``best_energy = -best logp``, ``accept_rate`` = accepted / n_steps.

    Spin glass (``energy`` a ``targets.SpinGlass(J, h)``, x0 int8 +-1 [C, N];
    ``n_steps`` sweeps): E starts as ``-sum_i (s_i f_i + h_i s_i)``,
    ``f_i = sum_{j>i} J_ij s_j`` (j ascending); sweep t visits i = 0..N-1:
    ``f = sum_j J_ij s_j + h_i`` (j ascending), ``dE = 2 s_i f``, flip iff
    ``log(U0) < -dE / T_t`` with U0 of block ``t N + i``; then ``E += dE`` and
    the best (lowest E, strictly) state is kept. ``energy[:, t]`` = E after sweep
    t (a running sum, as the core's), ``accept_rate`` NaN.

    Pairwise MRF (``energy`` a ``targets.MRF(unary, edges, pairwise)``, x0 integer
    states [C, N] in [0, S); ``n_steps`` sweeps): E starts as
    ``-(sum_i unary[i, x_i] + sum_e P_e[x_u, x_v])`` (index order); sweep t visits
    i = 0..N-1 with block ``t N + i``: ``b = (a + 1 + min(floor(U1 (S - 1)), S - 2)) % S``,
    ``d = (unary[i, b] - unary[i, a]) + sum over the edges touching i (edge order) of
    P_e[b, x_v] - P_e[a, x_v]`` (i = u) or ``P_e[x_u, b] - P_e[x_u, a]`` (i = v),
    ``dE = -d``, move iff ``log(U0) < -dE / T_t``; E, the best state and
    ``energy`` as for the spin glass (best_x int32).
    """
    fn = "anneal"
    n_steps = _int_arg(fn, "n_steps", n_steps, 0)
    T = temperatures(schedule, n_steps)
    seed = _seed_arg(fn, seed)
    chain_offset = _int_arg(fn, "chain_offset", chain_offset)
    x0 = np.asarray(x0)
    if getattr(energy, "kind", None) == "spin_glass":
        if chain_offset < 0:
            raise _err(fn, f"chain_offset must be >= 0; got {chain_offset}")
        return _anneal_spins(energy.J, energy.h, x0, T, seed, chain_offset, progress)
    if getattr(energy, "kind", None) == "mrf":
        from .samplers_discrete import _anneal_mrf  # that module imports this one

        _check_temperatures(T)
        best, be, en = _anneal_mrf(energy.unary, energy.edges, energy.pairwise, x0, T, seed,
                                   chain_offset)
        return AnnealResult(best, be, en, np.full(best.shape[0], np.nan), T)
    if x0.dtype != np.float64:
        raise _err(fn, f"x0 must be float64; got {x0.dtype}", TypeError)
    if hasattr(energy, "kind") and callable(getattr(energy, "logp", None)):
        logp_fn = energy.logp
    elif callable(energy):
        def logp_fn(x):
            return -np.asarray(energy(x), dtype=np.float64)
    else:
        raise _err(fn, "energy must be callable or a kexue.samplers.targets object; got "
                   f"{type(energy).__name__}", TypeError)
    _check_temperatures(T)
    if x0.ndim != 2:
        raise _err(fn, f"x0 must be 2-D [C,D]; got shape {x0.shape}")
    x = np.array(x0, dtype=np.float64)
    C, D = x.shape
    if D < 1:
        raise _err(fn, f"x0 must have D >= 1 coordinates; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise _err(fn, "x0 must be finite")
    if chain_offset < 0:
        raise _err(fn, f"chain_offset must be >= 0; got {chain_offset}")
    s = np.asarray(step_size, dtype=np.float64).reshape(-1)
    if s.size not in (1, D) or np.ndim(step_size) > 1:
        raise _err(fn, f"step_size must be a number or have D = {D} entries; got shape "
                   f"{np.shape(step_size)}")
    if not np.all(np.isfinite(s) & (s > 0)):
        raise _err(fn, f"step_size must be finite and > 0; got {step_size!r}")
    energies = np.empty((C, n_steps))
    if C == 0:
        return AnnealResult(np.empty((0, D)), np.empty(0), energies, np.empty(0), T)
    lp = _anneal_eval(logp_fn, x, -1, C)
    best, best_x = lp.copy(), x.copy()
    accepted = np.zeros(C, dtype=np.int64)
    g = np.arange(C, dtype=_U64) + _U64(chain_offset)
    P = (D + 1) // 2
    chunk = max(1, _CHUNK // (C * (P + 1)))
    for t0 in range(0, n_steps, chunk):
        t1 = min(n_steps, t0 + chunk)
        blocks = np.arange(t0 * (P + 1), t1 * (P + 1), dtype=_U64)
        w = _words(seed, g[:, None], blocks[None, :]).reshape(C, t1 - t0, P + 1, 4)
        z0, z1 = _normals_from_words(w[:, :, :P, :])
        Z = np.stack([z0, z1], axis=-1).reshape(C, t1 - t0, 2 * P)[:, :, :D]
        with np.errstate(divide="ignore"):
            logU = np.log(uniform53(w[:, :, P, 0], w[:, :, P, 1]))
        for t in range(t0, t1):
            y = x + s[None, :] * Z[:, t - t0, :]
            lpy = _anneal_eval(logp_fn, y, t, C)
            with np.errstate(invalid="ignore"):
                take = logU[:, t - t0] < (lpy - lp) / T[t]
            x = np.where(take[:, None], y, x)
            lp = np.where(take, lpy, lp)
            accepted += take
            better = take & (lp > best)
            best = np.where(better, lp, best)
            best_x[better] = x[better]
            energies[:, t] = -lp
            if progress and (t + 1) % max(1, n_steps // 20) == 0:
                print(f"\ranneal {t + 1}/{n_steps}", end="", file=sys.stderr, flush=True)
    if progress and n_steps:
        print(file=sys.stderr)
    rate = accepted / n_steps if n_steps > 0 else np.zeros(C)
    return AnnealResult(best_x, -best, energies, np.asarray(rate, dtype=np.float64), T)


def gibbs(conditional, x0, n_sweeps, n_states, *, scan="systematic", seed=0, chain_offset=0,
          record_every=1):
    """Gibbs sampling with the caller's full conditionals (spec A4); returns samples
    int64 [C, n_sweeps // record_every, N] (the state after every record_every-th sweep).

    ``conditional(x, i) -> logits [C, n_states]`` (x int64 [C, N], a copy; -inf:
    impossible). Sweep t makes N updates j = 0..N-1 of coordinate ``i = j``
    ("systematic") or ``i = min(floor(U1 N), N - 1)`` with U1 of block ``t N + j``
    of the shared chain ``2^64 - 1`` ("random": the same i for every chain). Chain
    g draws with ``u = U0`` of block ``t N + j``: ``m = max_a l_a``,
    ``e_a = exp(l_a - m)``, ``cum_a = e_0 + .. + e_a`` (in order), ``Z = cum_{S-1}``;
    the new state is the smallest a with ``u Z < cum_a`` and ``e_a > 0`` (else the
    last a with ``e_a > 0``). NaN logits, or none finite (all -inf) or +inf,
    raise ValueError naming the coordinate, sweep and chain.
    """
    fn = "gibbs"
    if not callable(conditional):
        raise _err(fn, f"conditional must be callable; got {type(conditional).__name__}", TypeError)
    if scan not in ("systematic", "random"):
        raise _err(fn, f"scan must be 'systematic' or 'random'; got {scan!r}")
    x = np.asarray(x0)
    if x.dtype.kind not in "iu":
        raise _err(fn, f"x0 must be an integer array [C, N]; got {x.dtype}", TypeError)
    n_sweeps = _int_arg(fn, "n_sweeps", n_sweeps)
    S = _int_arg(fn, "n_states", n_states)
    seed = _seed_arg(fn, seed)
    chain_offset = _int_arg(fn, "chain_offset", chain_offset)
    record_every = _int_arg(fn, "record_every", record_every)
    if x.ndim != 2:
        raise _err(fn, f"x0 must be 2-D [C,N]; got shape {x.shape}")
    if S < 2:
        raise _err(fn, f"n_states must be >= 2; got {S}")
    if n_sweeps < 0:
        raise _err(fn, f"n_sweeps must be >= 0; got {n_sweeps}")
    if record_every < 1:
        raise _err(fn, f"record_every must be >= 1; got {record_every}")
    if chain_offset < 0:
        raise _err(fn, f"chain_offset must be >= 0; got {chain_offset}")
    x = np.array(x, dtype=np.int64)
    out = x[(x < 0) | (x >= S)]
    if out.size:
        raise _err(fn, f"x0 must be in [0, n_states = {S}); got {int(out[0])}", IndexError)
    C, N = x.shape
    R = n_sweeps // record_every
    samples = np.empty((C, R, N), dtype=np.int64)
    if C == 0 or N == 0:
        return samples
    g = np.arange(C, dtype=_U64) + _U64(chain_offset)
    rows = np.arange(C)
    chunk = max(1, _CHUNK // (C * N))
    for t0 in range(0, n_sweeps, chunk):
        t1 = min(n_sweeps, t0 + chunk)
        blocks = np.arange(t0 * N, t1 * N, dtype=_U64)
        w = _words(seed, g[:, None], blocks[None, :])
        U = uniform53(w[..., 0], w[..., 1]).reshape(C, t1 - t0, N)
        if scan == "random":
            ws = _words(seed, _U64(_SHARED_CHAIN), blocks)
            pick_i = (uniform53(ws[:, 2], ws[:, 3]) * float(N)).astype(np.int64)
            pick_i = np.minimum(pick_i, N - 1).reshape(t1 - t0, N)
        for t in range(t0, t1):
            for j in range(N):
                i = int(pick_i[t - t0, j]) if scan == "random" else j
                got = conditional(x.copy(), i)
                arr = np.asarray(got)
                if arr.ndim != 2 or arr.shape != (C, S):
                    raise _err(fn, f"conditional must return logits of shape ({C}, {S}) "
                               f"[C,n_states]; got {arr.shape} for coordinate {i}")
                try:
                    lg = arr.astype(np.float64)
                except (TypeError, ValueError):
                    raise _err(fn, "conditional must return float logits", TypeError) from None
                nan = np.isnan(lg).any(axis=1)
                m = np.max(np.where(np.isnan(lg), -np.inf, lg), axis=1)
                bad = nan | np.isinf(m)
                if bad.any():
                    c = int(np.argmax(bad))
                    what = ("NaN" if nan[c] else "+inf" if m[c] > 0 else "no finite logit")
                    raise _err(fn, f"conditional returned {what} for coordinate {i} at sweep {t} "
                               f"(chain {c})")
                e = np.exp(lg - m[:, None])
                cum = np.add.accumulate(e, axis=1)
                target = U[:, t - t0, j] * cum[:, -1]
                pos = e > 0.0
                hit = (target[:, None] < cum) & pos
                last = S - 1 - np.argmax(pos[:, ::-1], axis=1)
                x[rows, i] = np.where(hit.any(axis=1), np.argmax(hit, axis=1), last)
            if (t + 1) % record_every == 0:
                samples[:, (t + 1) // record_every - 1] = x
    return samples
