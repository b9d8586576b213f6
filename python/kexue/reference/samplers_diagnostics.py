"""Plain twin of :mod:`kexue.samplers.diagnostics`: R-hat, ESS, summary (spec A8).

The same functions, signatures and results as the fast module, written the
slow and obvious way so the tests can hold one against the other:

* autocovariances are direct sums ``(1/N) sum_n d[n] d[n+t]`` for every lag
  (no FFT);
* ranks are counts: ``rank(v) = #{u < v} + (#{u == v} + 1) / 2`` (the
  average rank of a tie group, 1-based);
* ``Phi^{-1}`` is Python's ``statistics.NormalDist().inv_cdf``, one value at a
  time;
* quantiles are written out (type 7: ``h = (n-1) q``, linear between the
  order statistics around h);
* Geyer's initial positive and monotone sequences are ArviZ's ``_ess`` loop,
  line for line.

Rules (as the fast module): a NaN draw or a constant input gives NaN; an
internal constant array (a tail indicator) has ESS = its size; bulk/folded
R-hat combine with Python's ``max``, the two tail ESS with ``min``; one chain
is split into two.

This module never imports anything from kexue.
"""
from __future__ import annotations

import math
import statistics

import numpy as np

__all__ = ["ess", "rhat", "summary"]

_INV_CDF = statistics.NormalDist().inv_cdf


def _check(fn, name, x):
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"[kexue.samplers.{fn}] {name} must be a real numeric array; got dtype {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"[kexue.samplers.{fn}] {name} must have shape [C, S] or [C, S, ...] (chain, draw, ...); got shape {a.shape}")
    if a.shape[0] < 1:
        raise ValueError(f"[kexue.samplers.{fn}] {name} must have at least 1 chain (axis 0); got shape {a.shape}")
    if a.shape[1] < 4:
        raise ValueError(f"[kexue.samplers.{fn}] {name} must have at least 4 draws per chain (axis 1); got S = {a.shape[1]} in shape {a.shape}")
    return a.astype(np.float64)


def _columns(a):
    """[C, S, ...] -> list of [C, S] float64 arrays (row-major over the trailing dims)."""
    C, S = a.shape[:2]
    flat = a.reshape(C, S, -1)
    return [flat[:, :, k].copy() for k in range(flat.shape[2])]


def _split(a):
    """[C, S] -> [2C, S//2]: the first halves of all chains, then the last halves."""
    C, S = a.shape
    h = S // 2
    rows = [a[c, :h] for c in range(C)] + [a[c, S - h:] for c in range(C)]
    return np.array(rows)


def _ranks(a):
    """Average 1-based ranks over all entries of ``a`` (same shape)."""
    v = a.ravel()
    r = np.empty(v.size)
    for i in range(v.size):
        r[i] = np.sum(v < v[i]) + (np.sum(v == v[i]) + 1) / 2.0
    return r.reshape(a.shape)


def _z_scale(a):
    r = _ranks(a)
    n = a.size
    z = np.empty(a.shape)
    for idx in np.ndindex(*a.shape):
        z[idx] = _INV_CDF((r[idx] - 3.0 / 8.0) / (n + 1.0 / 4.0))
    return z


def _mean(v):
    return sum(v) / len(v)


def _var(v):
    m = _mean(v)
    return sum((x - m) ** 2 for x in v) / (len(v) - 1)


def _quantile(v, q):
    s = sorted(v)
    h = (len(s) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def _median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def _rhat_of(a):
    """R-hat of [M, N] with the chains as given (spec A8)."""
    M, N = a.shape
    means = [_mean(list(a[m])) for m in range(M)]
    variances = [_var(list(a[m])) for m in range(M)]
    B = N * _var(means)
    W = _mean(variances)
    with np.errstate(all="ignore"):
        return float(np.sqrt((np.float64(B) / np.float64(W) + N - 1) / N))


def _ess_of(a):
    """ESS of [M, N] with the chains as given (ArviZ's ``_ess``), direct autocovariances."""
    M, N = a.shape
    if np.isnan(a).any():
        return math.nan
    if float(np.max(a)) - float(np.min(a)) < np.finfo(np.float64).resolution:
        return float(M * N)
    acov = np.zeros((M, N))
    means = []
    for m in range(M):
        mu = _mean(list(a[m]))
        means.append(mu)
        d = a[m] - mu
        for t in range(N):
            acov[m, t] = float(np.dot(d[: N - t], d[t:])) / N
    mean_var = _mean(list(acov[:, 0])) * N / (N - 1.0)
    var_plus = mean_var * (N - 1.0) / N
    if M > 1:
        var_plus += _var(means)

    def rho(t):
        with np.errstate(all="ignore"):
            return float(1.0 - (np.float64(mean_var) - _mean(list(acov[:, t]))) / np.float64(var_plus))

    r = [0.0] * N
    even = 1.0
    r[0] = even
    odd = rho(1)
    r[1] = odd
    t = 1
    while t < N - 3 and even + odd > 0.0:
        even = rho(t + 1)
        odd = rho(t + 2)
        if even + odd >= 0:
            r[t + 1] = even
            r[t + 2] = odd
        t += 2
    max_t = t - 2
    if even > 0:
        r[max_t + 1] = even
    t = 1
    while t <= max_t - 2:
        if r[t + 1] + r[t + 2] > r[t - 1] + r[t]:
            r[t + 1] = (r[t - 1] + r[t]) / 2.0
            r[t + 2] = r[t + 1]
        t += 2
    if any(math.isnan(v) for v in r):
        return math.nan
    tau = -1.0
    for i in range(0, max_t + 1):
        tau += 2.0 * r[i]
    tau += r[max_t + 1]
    size = M * N
    tau = max(tau, 1.0 / math.log10(size))
    return size / tau


def _rhat_column(a, method):
    s = _split(a)
    if method == "split":
        return _rhat_of(s)
    bulk = _rhat_of(_z_scale(s))
    med = _median(list(s.ravel()))
    folded = _rhat_of(_z_scale(np.abs(s - med)))
    return max(bulk, folded)


def _ess_column(a, method):
    if method in ("plain", "split"):
        return _ess_of(_split(a))
    if method == "bulk":
        return _ess_of(_z_scale(_split(a)))
    v = list(a.ravel())
    low = _ess_of(_split((a <= _quantile(v, 0.05)).astype(np.float64)))
    high = _ess_of(_split((a <= _quantile(v, 0.95)).astype(np.float64)))
    return min(low, high)


def _apply(fn, x, per_column):
    a = _check(fn, "x", x)
    out = []
    for col in _columns(a):
        if np.isnan(col).any() or np.all(col == col[0, 0]):
            out.append(math.nan)
        else:
            with np.errstate(all="ignore"):
                out.append(per_column(col))
    if a.ndim == 2:
        return float(out[0])
    return np.array(out, dtype=np.float64).reshape(a.shape[2:])


def rhat(x, *, method="rank"):
    """Split R-hat of x [C, S] or [C, S, ...] per trailing index ("rank" or "split").

    >>> import numpy as np
    >>> m, n = np.meshgrid(np.arange(4), np.arange(20), indexing="ij")
    >>> theta = np.sin(0.9 * n + 1.3 * m) + 0.25 * m * n / 20
    >>> round(rhat(theta), 6), round(rhat(theta, method="split"), 6)
    (1.054442, 1.025987)
    """
    if method not in ("rank", "split"):
        raise ValueError(f"[kexue.samplers.rhat] method must be one of 'rank', 'split'; got {method!r}")
    return _apply("rhat", x, lambda col: _rhat_column(col, method))


def ess(x, *, method="bulk"):
    """Effective sample size of x [C, S] or [C, S, ...] ("bulk", "tail", "plain"/"split").

    >>> import numpy as np
    >>> m, n = np.meshgrid(np.arange(4), np.arange(20), indexing="ij")
    >>> theta = np.sin(0.9 * n + 1.3 * m) + 0.25 * m * n / 20
    >>> [round(ess(theta, method=k), 6) for k in ("bulk", "tail", "plain")]
    [39.326083, 45.351724, 38.573181]
    """
    if method not in ("bulk", "tail", "plain", "split"):
        raise ValueError(f"[kexue.samplers.ess] method must be one of 'bulk', 'tail', 'plain', 'split'; got {method!r}")
    return _apply("ess", x, lambda col: _ess_column(col, method))


def _fmt(v):
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0 or 1e-3 <= abs(v) < 1e6:
        return f"{v:.3f}"
    return f"{v:.3e}"


def summary(samples, *, names=None, quantiles=(0.05, 0.5, 0.95)):
    """The table of :func:`kexue.samplers.summary`, computed with the plain functions above."""
    a = _check("summary", "samples", samples)
    cols = _columns(a)
    if names is None:
        names = ["x"] if a.ndim == 2 else ["x[" + ",".join(map(str, i)) + "]" for i in np.ndindex(*a.shape[2:])]
    names = [str(v) for v in names]
    if len(names) != len(cols):
        raise ValueError(f"[kexue.samplers.summary] names must have one label per trailing index ({len(cols)}); got {len(names)}")
    qs = [float(q) for q in quantiles]
    header = ["", "mean", "sd"] + [f"{100 * q:.10g}%" for q in qs] + ["ess_bulk", "ess_tail", "r_hat"]
    rows = []
    for name, col in zip(names, cols):
        v = list(col.ravel())
        bad = any(math.isnan(u) for u in v)
        cells = [name, _fmt(math.nan if bad else _mean(v)), _fmt(math.nan if bad else math.sqrt(_var(v)))]
        cells += [_fmt(math.nan if bad else _quantile(v, q)) for q in qs]
        const = (not bad) and all(u == v[0] for u in v)
        eb = math.nan if bad or const else _ess_column(col, "bulk")
        et = math.nan if bad or const else _ess_column(col, "tail")
        rh = math.nan if bad or const else _rhat_column(col, "rank")
        cells += ["nan" if e != e else f"{e:.0f}" for e in (eb, et)]
        cells.append("nan" if rh != rh else f"{rh:.3f}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join(
        "  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip()
        for r in [header] + rows
    )
