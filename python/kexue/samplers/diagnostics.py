"""Convergence diagnostics for MCMC output: R-hat, effective sample size, summary table.

Pure numpy (no scipy), spec kernels section A8 -- Vehtari, Gelman, Simpson,
Carpenter and Buerkner (2021), "Rank-normalization, folding, and
localization: an improved R-hat", with ArviZ's definitions (the formulas of
``arviz.stats.diagnostics``: ``_split_chains``, ``_z_scale``, ``_rhat``,
``_ess``).

Layout: ``x`` has shape [C, S] or [C, S, ...] -- chain first, then draw, then
any trailing dimensions (ArviZ's layout, and that of :class:`kexue.samplers.Trace`'s
``samples``). Each trailing index is diagnosed on its own; the result has the
trailing shape ([C, S, D] -> [D]), and a Python float for [C, S].

The steps, for one trailing index (``theta`` [C, S]):

* **split**: each chain becomes its first and its last ``S // 2`` draws (the
  middle draw is dropped when S is odd): M' = 2C chains of N' = S // 2 draws.
  One chain (C = 1) is fine: split, it is two.
* **rank normalisation**: the M'N' split draws are ranked together (ties get
  their average rank r, 1-based) and mapped to ``z = Phi^{-1}((r - 3/8) / (M'N' + 1/4))``.
* **R-hat** of [M', N']: ``W`` = mean within-chain variance (ddof 1), ``B`` =
  N' * variance of the chain means (ddof 1), ``R = sqrt((B / W + N' - 1) / N')``.
  ``rhat(x)`` = max(R(z(split)), R(z(|split - median(split)|))) (bulk and folded).
* **ESS** of [M', N']: autocovariances by FFT, Geyer's initial positive and
  initial monotone sequences exactly as Stan/ArviZ, ``tau`` clamped below at
  ``1 / log10(M'N')``, ``ESS = M'N' / tau``. Bulk-ESS is the ESS of z(split),
  tail-ESS the smaller ESS of the split indicators ``x <= quantile_q(x)`` for
  q = 0.05 and 0.95 (quantiles over all C*S draws, numpy's default linear rule).

Special inputs:

* any NaN in a trailing index's draws -> NaN for that index (as ArviZ);
* a constant input (every draw of the index equal) -> NaN for both R-hat and
  ESS: neither is defined. R-hat is NaN in ArviZ too (0/0); ArviZ's ESS of a
  constant array is the draw count instead -- here it is NaN, as in Stan and
  the R ``posterior`` package, so a stuck parameter never looks well mixed;
* inside the computation ArviZ's rules are kept: an intermediate array that is
  constant (e.g. a tail indicator of heavily tied draws) has ESS M'N', and the
  bulk/folded maximum and the 5%/95% minimum follow Python's ``max``/``min``
  (a NaN second operand is ignored, a NaN first operand wins);
* ArviZ's ``rhat`` returns NaN for one chain; here one chain is split in two
  and gets a number, as in Stan.

``+-inf`` draws are allowed: the rank-based methods handle them; ``"split"``
R-hat and ``"plain"`` ESS then come out NaN or inf.

The twin in :mod:`kexue.reference.samplers_diagnostics` computes the same
numbers with loops and direct autocovariance sums; the tests compare the two.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["ess", "rhat", "summary"]

_RHAT_METHODS = ("rank", "split")
_ESS_METHODS = ("bulk", "tail", "plain", "split")
_TAIL_PROBS = (0.05, 0.95)


# --------------------------------------------------------------------------- #
# Phi^{-1}: Wichura's AS241 (PPND16), relative error ~1e-16 -- the algorithm of
# Python's statistics.NormalDist.inv_cdf, vectorised. Arguments in (0, 1).
# --------------------------------------------------------------------------- #
_A = (3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
      1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
      3.3430575583588128105e4, 2.5090809287301226727e3)
_B = (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
      2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
      5.2264952788528545610e3)
_C = (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
      3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
      2.27238449892691845833e-2, 7.74545014278341407640e-4)
_D = (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
      1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
      1.05075007164441684324e-9)
_E = (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
      2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
      2.71155556874348757815e-5, 2.01033439929228813265e-7)
_F = (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
      7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
      2.04426310338993978564e-15)


def _horner(coef, r):
    out = np.full_like(r, coef[-1])
    for c in coef[-2::-1]:
        out = out * r + c
    return out


def _ndtri(p):
    """Phi^{-1}(p) for p in (0, 1), elementwise (float64 array in, same shape out)."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    out = np.empty_like(p)
    central = np.abs(q) <= 0.425
    if central.any():
        qc = q[central]
        r = 0.180625 - qc * qc
        out[central] = qc * _horner(_A, r) / _horner(_B, r)
    tail = ~central
    if tail.any():
        qt = q[tail]
        r = np.sqrt(-np.log(np.where(qt <= 0.0, p[tail], 1.0 - p[tail])))
        near = r <= 5.0
        x = np.empty_like(r)
        rn = r[near] - 1.6
        x[near] = _horner(_C, rn) / _horner(_D, rn)
        rf = r[~near] - 5.0
        x[~near] = _horner(_E, rf) / _horner(_F, rf)
        out[tail] = np.where(qt < 0.0, -x, x)
    return out


# --------------------------------------------------------------------------- #
# building blocks; arrays are [M, N, K]: chains, draws, columns (trailing dims)
# --------------------------------------------------------------------------- #
def _split(a):
    """[C, S, K] -> [2C, S//2, K]: first halves of all chains, then last halves."""
    h = a.shape[1] // 2
    return np.concatenate([a[:, :h], a[:, a.shape[1] - h:]], axis=0)


def _rank_average(v):
    """1-based ranks of a 1-D array, ties sharing their average rank (scipy's 'average')."""
    n = v.size
    order = np.argsort(v, kind="stable")
    s = v[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = s[1:] != s[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    ranks = np.empty(n)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def _z_scale(a):
    """Rank normalisation of [M, N, K], pooling the M*N draws of each column."""
    M, N, K = a.shape
    flat = a.reshape(M * N, K)
    r = np.empty_like(flat)
    for k in range(K):
        r[:, k] = _rank_average(flat[:, k])
    return _ndtri((r - 0.375) / (M * N + 0.25)).reshape(M, N, K)


def _rhat_core(a):
    """Potential scale reduction of [M, N, K] (chains as given) -> [K]."""
    N = a.shape[1]
    between = N * np.var(np.mean(a, axis=1), axis=0, ddof=1)
    within = np.mean(np.var(a, axis=1, ddof=1), axis=0)
    return np.sqrt((between / within + N - 1) / N)


def _autocov(a):
    """gamma[m, t, k] = (1/N) sum_{n < N-t} (a[m,n,k] - mean) (a[m,n+t,k] - mean), by FFT."""
    N = a.shape[1]
    d = a - a.mean(axis=1, keepdims=True)
    nfft = 1 << (2 * N - 1).bit_length()  # >= 2N: no circular wrap-around
    f = np.fft.rfft(d, n=nfft, axis=1)
    return np.fft.irfft(f * np.conj(f), n=nfft, axis=1)[:, :N] / N


def _geyer_tau(rho, N):
    """Integrated autocorrelation time from rho[t] (t = 0..N-1), Geyer as in Stan/ArviZ."""
    r = [0.0] * N
    r[0] = 1.0
    even = 1.0
    odd = rho[1]
    r[1] = odd
    # initial positive sequence
    t = 1
    while t < N - 3 and even + odd > 0.0:
        even = rho[t + 1]
        odd = rho[t + 2]
        if even + odd >= 0.0:
            r[t + 1] = even
            r[t + 2] = odd
        t += 2
    max_t = t - 2
    if even > 0.0:
        r[max_t + 1] = even  # max_t may be -1 (N < 5): then this is r[0]
    # initial monotone sequence
    t = 1
    while t <= max_t - 2:
        if r[t + 1] + r[t + 2] > r[t - 1] + r[t]:
            r[t + 1] = (r[t - 1] + r[t]) / 2.0
            r[t + 2] = r[t + 1]
        t += 2
    if any(v != v for v in r):
        return math.nan
    head = math.fsum(r[: max_t + 1]) if max_t >= 0 else 0.0
    return -1.0 + 2.0 * head + r[max_t + 1]


def _ess_core(a):
    """ESS of [M, N, K] (chains as given, no split, no ranks) -> [K]; ArviZ's ``_ess``."""
    M, N, K = a.shape
    out = np.empty(K)
    with np.errstate(all="ignore"):  # constant columns (0/0) are handled below
        acov = _autocov(a)
        mean_var = np.mean(acov[:, 0], axis=0) * N / (N - 1.0)
        var_plus = mean_var * (N - 1.0) / N
        if M > 1:
            var_plus = var_plus + np.var(np.mean(a, axis=1), axis=0, ddof=1)
        rho = 1.0 - (mean_var - np.mean(acov, axis=0)) / var_plus  # [N, K]
    size = M * N
    floor = 1.0 / math.log10(size)
    for k in range(K):
        col = a[:, :, k]
        if np.isnan(col).any():
            out[k] = math.nan
        elif np.max(col) - np.min(col) < np.finfo(np.float64).resolution:
            out[k] = size  # ArviZ: a constant array counts as independent draws
        else:
            tau = _geyer_tau(rho[:, k].tolist(), N)
            out[k] = size / max(tau, floor) if tau == tau else math.nan
    return out


def _pymax(a, b):
    """Elementwise Python ``max(a, b)``: b only where b > a (a NaN b is ignored)."""
    return np.where(b > a, b, a)


def _pymin(a, b):
    """Elementwise Python ``min(a, b)``: b only where b < a."""
    return np.where(b < a, b, a)


def _rhat_rank(a):
    s = _split(a)
    bulk = _rhat_core(_z_scale(s))
    med = np.median(s.reshape(-1, s.shape[2]), axis=0)
    folded = _rhat_core(_z_scale(np.abs(s - med)))
    return _pymax(bulk, folded)


def _ess_tail(a):
    C, S, K = a.shape
    qs = np.quantile(a.reshape(C * S, K), _TAIL_PROBS, axis=0)  # [2, K]
    low = _ess_core(_split((a <= qs[0]).astype(np.float64)))
    high = _ess_core(_split((a <= qs[1]).astype(np.float64)))
    return _pymin(low, high)


_RHAT = {"rank": _rhat_rank, "split": lambda a: _rhat_core(_split(a))}
_ESS = {
    "bulk": lambda a: _ess_core(_z_scale(_split(a))),
    "tail": _ess_tail,
    "plain": lambda a: _ess_core(_split(a)),
    "split": lambda a: _ess_core(_split(a)),
}


# --------------------------------------------------------------------------- #
# front door
# --------------------------------------------------------------------------- #
def _prepare(fn, name, x):
    """``x`` as float64 [C, S, K] plus its trailing shape, or a clear error."""
    head = f"[kexue.samplers.{fn}] {name} must"
    try:
        a = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - ragged lists and the like
        raise TypeError(f"{head} be a real numeric array; got {type(x).__name__} ({e})") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{head} be a real numeric array; got dtype {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"{head} have shape [C, S] or [C, S, ...] (chain, draw, ...); "
                         f"got shape {a.shape}")
    C, S = a.shape[:2]
    if C < 1:
        raise ValueError(f"{head} have at least 1 chain (axis 0); got shape {a.shape}")
    if S < 4:
        raise ValueError(f"{head} have at least 4 draws per chain (axis 1); "
                         f"got S = {S} in shape {a.shape}")
    tail = a.shape[2:]
    return np.ascontiguousarray(a, dtype=np.float64).reshape(C, S, -1), tail


def _method(fn, method, allowed):
    if not isinstance(method, str):
        raise TypeError(f"[kexue.samplers.{fn}] method must be a str; got {type(method).__name__}")
    if method not in allowed:
        raise ValueError(f"[kexue.samplers.{fn}] method must be one of "
                         f"{', '.join(map(repr, allowed))}; got {method!r}")


def _run(core, a, tail):
    """Apply ``core`` ([C,S,K] -> [K]) with the NaN and constant rules; reshape to ``tail``."""
    K = a.shape[2]
    out = np.full(K, np.nan)
    if K:
        nan = np.isnan(a).any(axis=(0, 1))
        const = np.all(a == a[:1, :1], axis=(0, 1))
        ok = ~(nan | const)
        if ok.any():
            with np.errstate(all="ignore"):
                out[ok] = core(np.ascontiguousarray(a[:, :, ok]))
    if not tail:
        return float(out[0])
    return out.reshape(tail)


def rhat(x, *, method="rank"):
    """Split R-hat per trailing index (spec A8; ArviZ's ``rhat``).

    Parameters
    ----------
    x : array [C, S] or [C, S, ...]
        Draws: C >= 1 chains, S >= 4 draws each, any trailing dimensions.
    method : "rank" (default) or "split"
        "rank": rank-normalised split R-hat, the larger of the bulk
        (z of the split draws) and the folded (z of |split - median|) values
        (Vehtari et al. 2021); flag convergence problems above 1.01.
        "split": the classic split R-hat of the raw draws (no ranks).

    Returns
    -------
    float for x [C, S]; float64 array of x's trailing shape otherwise.
    NaN where an index has a NaN draw or is constant.

    Examples
    --------
    The test array of spec A8 (4 chains, 20 draws, a slow drift per chain):

    >>> import numpy as np, kexue
    >>> m, n = np.meshgrid(np.arange(4), np.arange(20), indexing="ij")
    >>> theta = np.sin(0.9 * n + 1.3 * m) + 0.25 * m * n / 20
    >>> round(kexue.samplers.rhat(theta), 6)
    1.054442
    >>> round(kexue.samplers.rhat(theta, method="split"), 6)
    1.025987
    >>> kexue.samplers.rhat(np.stack([theta, -theta], axis=-1)).shape
    (2,)
    """
    _method("rhat", method, _RHAT_METHODS)
    a, tail = _prepare("rhat", "x", x)
    return _run(_RHAT[method], a, tail)


def ess(x, *, method="bulk"):
    """Effective sample size per trailing index (spec A8; ArviZ's ``ess``).

    Parameters
    ----------
    x : array [C, S] or [C, S, ...]
        Draws: C >= 1 chains, S >= 4 draws each, any trailing dimensions.
    method : "bulk" (default), "tail", "plain" or "split"
        "bulk": ESS of the rank-normalised split draws (for means and medians).
        "tail": the smaller ESS of the split indicators ``x <= q05`` and
        ``x <= q95`` (for the 5% and 95% quantiles).
        "plain" / "split" (synonyms): ESS of the split raw draws, no ranks
        (ArviZ's method "mean").

    Returns
    -------
    float for x [C, S]; float64 array of x's trailing shape otherwise.
    Between 0 and C*S for typical chains, and up to C*S*log10(C*S) for
    antithetic ones. NaN where an index has a NaN draw or is constant.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> m, n = np.meshgrid(np.arange(4), np.arange(20), indexing="ij")
    >>> theta = np.sin(0.9 * n + 1.3 * m) + 0.25 * m * n / 20
    >>> round(kexue.samplers.ess(theta), 6)
    39.326083
    >>> round(kexue.samplers.ess(theta, method="tail"), 6)
    45.351724
    >>> round(kexue.samplers.ess(theta, method="plain"), 6)
    38.573181
    """
    _method("ess", method, _ESS_METHODS)
    a, tail = _prepare("ess", "x", x)
    return _run(_ESS[method], a, tail)


def _fmt(v):
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0 or 1e-3 <= abs(v) < 1e6:
        return f"{v:.3f}"
    return f"{v:.3e}"


def _pct(q):
    s = f"{100 * q:.10g}"
    return f"{s}%"


def summary(samples, *, names=None, quantiles=(0.05, 0.5, 0.95)):
    """A printable table: mean, sd, quantiles, ess_bulk, ess_tail, r_hat per dimension.

    Parameters
    ----------
    samples : array [C, S] or [C, S, ...]
        Draws, as for :func:`ess` (C >= 1 chains, S >= 4 draws).
    names : sequence of str, optional
        One label per trailing index (row-major order); default ``x`` for
        [C, S], ``x[i]`` for [C, S, D], ``x[i,j]`` for [C, S, D1, D2] ...
    quantiles : sequence of float in [0, 1]
        Quantiles of the pooled draws (numpy's default linear rule), one
        column each.

    Returns
    -------
    str: a header line and one line per index. ``mean``, ``sd`` (ddof 1) and
    the quantiles pool all C*S draws; ``ess_bulk``, ``ess_tail`` and
    ``r_hat`` (rank-normalised) are :func:`ess` and :func:`rhat`.

    Examples
    --------
    >>> import numpy as np, kexue
    >>> m, n = np.meshgrid(np.arange(4), np.arange(20), indexing="ij")
    >>> theta = np.sin(0.9 * n + 1.3 * m) + 0.25 * m * n / 20
    >>> print(kexue.samplers.summary(theta[..., None], names=["theta"]))
            mean     sd      5%    50%    95%  ess_bulk  ess_tail  r_hat
    theta  0.169  0.747  -0.934  0.107  1.297        39        45  1.054
    """
    a, tail = _prepare("summary", "samples", samples)
    C, S, K = a.shape
    if names is None:
        if not tail:
            names = ["x"]
        else:
            names = ["x[" + ",".join(map(str, idx)) + "]" for idx in np.ndindex(*tail)]
    else:
        if isinstance(names, str):
            raise TypeError("[kexue.samplers.summary] names must be a sequence of str, not a str")
        names = [str(v) for v in names]
        if len(names) != K:
            raise ValueError("[kexue.samplers.summary] names must have one label per trailing "
                             f"index ({K}); got {len(names)}")
    try:
        qs = [float(q) for q in quantiles]
    except (TypeError, ValueError):
        raise TypeError("[kexue.samplers.summary] quantiles must be a sequence of floats") from None
    if not all(0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"[kexue.samplers.summary] quantiles must be in [0, 1]; got {qs}")

    flat = a.reshape(C * S, K)
    with np.errstate(all="ignore"):
        mean = flat.mean(axis=0)
        sd = flat.std(axis=0, ddof=1)
        qv = np.quantile(flat, qs, axis=0) if qs else np.empty((0, K))
    eb = np.atleast_1d(_run(_ESS["bulk"], a, (K,)))
    et = np.atleast_1d(_run(_ESS["tail"], a, (K,)))
    rh = np.atleast_1d(_run(_RHAT["rank"], a, (K,)))

    header = ["", "mean", "sd"] + [_pct(q) for q in qs] + ["ess_bulk", "ess_tail", "r_hat"]
    rows = []
    for k in range(K):
        cells = [names[k], _fmt(mean[k]), _fmt(sd[k])] + [_fmt(qv[i, k]) for i in range(len(qs))]
        cells += ["nan" if v != v else f"{v:.0f}" for v in (eb[k], et[k])]
        cells.append("nan" if rh[k] != rh[k] else f"{rh[k]:.3f}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = []
    for r in [header] + rows:
        first = r[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join([first] + rest).rstrip())
    return "\n".join(lines)
