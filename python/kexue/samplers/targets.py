"""Built-in targets of :func:`kexue.samplers.metropolis`, evaluated in C++.

Each target is a small description object; ``metropolis`` runs its log
density in the compiled core (no Python call per step). ``target.logp(x)``
evaluates the same density in numpy for x [C, D] -- in the same arithmetic
order as the core -- so it can be passed as a callable target, plotted, or
checked. Constants are included (the densities are normalised where they
can be).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Funnel", "Gaussian", "GaussianMixture", "LogisticRegression", "MRF", "Rosenbrock",
           "SpinGlass"]

_LOG2PI = 1.8378770664093453


def _f64(op, name, x, ndim):
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"[kexue.samplers.targets.{op}] {name} must be {ndim}-D; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"[kexue.samplers.targets.{op}] {name} must be finite")
    return np.ascontiguousarray(a)


def _chol(op, name, cov):
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError(f"[kexue.samplers.targets.{op}] {name} must be symmetric positive definite") from None


def _x(x):
    x = np.asarray(x, dtype=np.float64)
    return x[None] if x.ndim == 1 else x


def gaussian_logp(x, mean, chol):
    """log N(x; mean, L L^T) for x [C, D] by forward substitution (the core's order)."""
    x = _x(x)
    C, D = x.shape
    z = np.zeros((C, D))
    q = np.zeros(C)
    ld = 0.0
    for i in range(D):
        r = x[:, i] - mean[i]
        for k in range(i):
            r = r - chol[i, k] * z[:, k]
        z[:, i] = r * (1.0 / chol[i, i])
        q = q + z[:, i] * z[:, i]
        ld = ld + math.log(chol[i, i])
    return -0.5 * q - ld - 0.5 * D * _LOG2PI


class Gaussian:
    """N(mean, cov): mean [D], cov [D, D] symmetric positive definite.

    >>> import numpy as np
    >>> t = kexue.samplers.targets.Gaussian(np.zeros(2), np.eye(2))
    >>> round(float(t.logp(np.zeros((1, 2)))[0]), 6)   # -log(2 pi)
    -1.837877
    """

    kind = "gaussian"

    def __init__(self, mean, cov):
        self.mean = _f64("Gaussian", "mean", mean, 1)
        self.cov = _f64("Gaussian", "cov", cov, 2)
        D = self.mean.shape[0]
        if self.cov.shape != (D, D):
            raise ValueError(f"[kexue.samplers.targets.Gaussian] cov must have shape ({D}, {D}); got {self.cov.shape}")
        self.chol = _chol("Gaussian", "cov", self.cov)
        self.dim = D

    def logp(self, x):
        return gaussian_logp(x, self.mean, self.chol)

    def _core_args(self):
        return dict(mean=self.mean, chol=self.chol.ravel())


class Rosenbrock:
    """logp = -sum_{i<D-1} [(a - x_i)^2 + b (x_{i+1} - x_i^2)^2], any D >= 2.

    >>> import numpy as np
    >>> float(kexue.samplers.targets.Rosenbrock().logp(np.zeros((1, 2)))[0])   # -(1 - 0)^2
    -1.0
    """

    kind = "rosenbrock"

    def __init__(self, a=1.0, b=100.0):
        self.a, self.b = float(a), float(b)
        self.dim = None

    def logp(self, x):
        x = _x(x)
        s = np.zeros(x.shape[0])
        for i in range(x.shape[1] - 1):
            u = self.a - x[:, i]
            v = x[:, i + 1] - x[:, i] * x[:, i]
            s = s + (u * u + self.b * v * v)
        return -s

    def _core_args(self):
        return dict(a=self.a, b=self.b)


class GaussianMixture:
    """sum_k w_k N(means_k, covs_k): weights [K] (normalised here), means [K, D], covs [K, D, D].

    >>> import numpy as np
    >>> t = kexue.samplers.targets.GaussianMixture([1, 1], [[-2.0], [2.0]], [[[1.0]], [[1.0]]])
    >>> round(float(t.logp(np.array([[2.0]]))[0]), 6)
    -1.61175
    """

    kind = "mixture"

    def __init__(self, weights, means, covs):
        w = _f64("GaussianMixture", "weights", weights, 1)
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError("[kexue.samplers.targets.GaussianMixture] weights must be >= 0 with a positive sum")
        self.weights = w / w.sum()
        self.means = _f64("GaussianMixture", "means", means, 2)
        self.covs = _f64("GaussianMixture", "covs", covs, 3)
        K, D = self.means.shape
        if self.weights.shape[0] != K or self.covs.shape != (K, D, D):
            raise ValueError(f"[kexue.samplers.targets.GaussianMixture] weights [K], means [K,D] and covs "
                             f"[K,D,D] must agree; got {self.weights.shape}, {self.means.shape}, {self.covs.shape}")
        self.chols = np.stack([_chol("GaussianMixture", "covs", c) for c in self.covs])
        with np.errstate(divide="ignore"):
            self.logw = np.log(self.weights)
        self.dim = D

    def logp(self, x):
        x = _x(x)
        lk = np.stack([self.logw[k] + gaussian_logp(x, self.means[k], self.chols[k])
                       for k in range(len(self.logw))])
        m = lk.max(axis=0)
        s = np.zeros(x.shape[0])
        for k in range(len(self.logw)):
            s = s + np.exp(lk[k] - m)
        return m + np.log(s)

    def _core_args(self):
        return dict(logw=self.logw, means=self.means.ravel(), chols=self.chols.ravel())


class LogisticRegression:
    """Bayesian logistic regression: X [n, D], y [n] of 0/1, prior N(0, prior_scale^2 I).

    logp(w) = sum_i log sigmoid(+-eta_i) - |w|^2 / (2 prior_scale^2), eta = X w.

    >>> import numpy as np
    >>> t = kexue.samplers.targets.LogisticRegression(np.ones((2, 1)), [1, 0])
    >>> round(float(t.logp(np.zeros((1, 1)))[0]), 6)   # 2 log(1/2)
    -1.386294
    """

    kind = "logistic"

    def __init__(self, X, y, prior_scale=1.0):
        self.X = _f64("LogisticRegression", "X", X, 2)
        self.y = _f64("LogisticRegression", "y", y, 1)
        if self.y.shape[0] != self.X.shape[0]:
            raise ValueError(f"[kexue.samplers.targets.LogisticRegression] y must have n = {self.X.shape[0]} "
                             f"entries; got {self.y.shape[0]}")
        if not np.all((self.y == 0) | (self.y == 1)):
            raise ValueError("[kexue.samplers.targets.LogisticRegression] y must be 0 or 1")
        self.prior_scale = float(prior_scale)
        if not (math.isfinite(self.prior_scale) and self.prior_scale > 0):
            raise ValueError(f"[kexue.samplers.targets.LogisticRegression] prior_scale must be > 0; got {prior_scale}")
        self.dim = self.X.shape[1]

    def logp(self, x):
        w = _x(x)
        C, D = w.shape
        ll = np.zeros(C)
        for i in range(self.X.shape[0]):
            eta = np.zeros(C)
            for d in range(D):
                eta = eta + self.X[i, d] * w[:, d]
            sp = np.log1p(np.exp(-np.abs(eta)))
            ll = ll - (sp + (np.maximum(-eta, 0) if self.y[i] != 0 else np.maximum(eta, 0)))
        pr = np.zeros(C)
        for d in range(D):
            pr = pr + w[:, d] * w[:, d]
        return ll - 0.5 * pr / (self.prior_scale * self.prior_scale)

    def _core_args(self):
        return dict(X=self.X.ravel(), y=self.y, prior_scale=self.prior_scale)


class Funnel:
    """Neal's funnel in ``dim`` >= 2 dimensions: v ~ N(0, 9), x_i | v ~ N(0, e^v).

    logp = -v^2/18 - sum_{i>=1} (x_i^2 e^{-v} / 2 + v / 2) (constants dropped).

    >>> import numpy as np
    >>> float(kexue.samplers.targets.Funnel(3).logp(np.array([[0.0, 1.0, 1.0]]))[0])
    -1.0
    """

    kind = "funnel"

    def __init__(self, dim):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
            raise ValueError(f"[kexue.samplers.targets.Funnel] dim must be an int >= 2; got {dim!r}")
        self.dim = int(dim)

    def logp(self, x):
        x = _x(x)
        v = x[:, 0]
        ev = np.exp(-v)
        s = -v * v / 18.0
        for i in range(1, x.shape[1]):
            s = s - (0.5 * x[:, i] * x[:, i] * ev + 0.5 * v)
        return s

    def _core_args(self):
        return {}


class SpinGlass:
    """An Ising spin glass over s in {-1, +1}^N: E(s) = -sum_{i<j} J_ij s_i s_j - sum_i h_i s_i.

    J [N, N] symmetric with a zero diagonal (any signs: frustrated problems
    welcome), h [N] (default 0). For :func:`kexue.samplers.anneal` with int8
    spins x0 [C, N] (single-spin Metropolis flips in C++).

    >>> import numpy as np
    >>> t = kexue.samplers.targets.SpinGlass(np.array([[0.0, -1.0], [-1.0, 0.0]]))   # antiferromagnetic pair
    >>> t.energy(np.array([[1, -1], [1, 1]], dtype=np.int8))
    array([-1.,  1.])
    """

    kind = "spin_glass"

    def __init__(self, J, h=None):
        self.J = _f64("SpinGlass", "J", J, 2)
        N = self.J.shape[0]
        if self.J.shape != (N, N) or not np.array_equal(self.J, self.J.T) or np.any(np.diag(self.J) != 0):
            raise ValueError("[kexue.samplers.targets.SpinGlass] J must be square, symmetric, with a zero diagonal")
        self.h = np.zeros(N) if h is None else _f64("SpinGlass", "h", h, 1)
        if self.h.shape != (N,):
            raise ValueError(f"[kexue.samplers.targets.SpinGlass] h must have shape ({N},); got {self.h.shape}")
        self.dim = N

    def energy(self, s):
        """E(s) for spins s [C, N] (or [N]), the core's order: row i sums j > i."""
        s = np.asarray(s, dtype=np.float64)
        s = s[None] if s.ndim == 1 else s
        E = np.zeros(s.shape[0])
        N = self.dim
        for i in range(N):
            f = np.zeros(s.shape[0])
            for j in range(i + 1, N):
                f = f + self.J[i, j] * s[:, j]
            E = E - (s[:, i] * f + self.h[i] * s[:, i])
        return E

    def logp(self, s):
        return -self.energy(s)


class MRF:
    """A pairwise discrete Markov random field as an energy for :func:`kexue.samplers.anneal`:
    ``E(x) = -(sum_i unary[i, x_i] + sum_e P_e[x_u, x_v])`` over states x in {0..S-1}^N,
    ``edges[e] = (u, v)``, ``P_e = pairwise`` [S, S] (shared) or ``pairwise[e]`` [E, S, S]
    (the log-potentials of :func:`kexue.samplers.gibbs_mrf`, so annealing finds its mode).
    For ``anneal`` with integer states x0 [C, N] (single-site Metropolis moves in C++).

    >>> import numpy as np
    >>> m = kexue.samplers.targets.MRF(np.zeros((2, 2)), [[0, 1]], np.eye(2))   # agree: +1
    >>> m.energy(np.array([[0, 0], [0, 1]]))
    array([-1., -0.])
    """

    kind = "mrf"

    def __init__(self, unary, edges, pairwise):
        self.unary = _f64("MRF", "unary", unary, 2)
        N, S = self.unary.shape
        if N < 1 or S < 2:
            raise ValueError(f"[kexue.samplers.targets.MRF] unary must be [N, S] with N >= 1, S >= 2; "
                             f"got shape {self.unary.shape}")
        e = np.asarray(edges)
        e = np.zeros((0, 2), dtype=np.int64) if e.size == 0 else e
        if e.dtype.kind not in "iu" or e.ndim != 2 or e.shape[1] != 2:
            raise ValueError(f"[kexue.samplers.targets.MRF] edges must be integer [E, 2]; got {e.dtype} "
                             f"{e.shape}")
        self.edges = np.ascontiguousarray(e, dtype=np.int64)
        p = np.asarray(pairwise, dtype=np.float64)
        if p.ndim not in (2, 3):
            raise ValueError("[kexue.samplers.targets.MRF] pairwise must be [S, S] or [E, S, S]; got "
                             f"shape {p.shape}")
        self.pairwise = np.ascontiguousarray(p)
        self.dim = N

    def energy(self, x):
        """E(x) for states x [C, N] (or [N]), the core's order (unary terms by node, then
        the edges in order, from 0.0). float64 [C]."""
        x = np.asarray(x, dtype=np.int64)
        x = x[None] if x.ndim == 1 else x
        tot = np.zeros(x.shape[0])
        for i in range(self.dim):
            tot = tot + self.unary[i, x[:, i]]
        for k, (u, v) in enumerate(self.edges):
            P = self.pairwise if self.pairwise.ndim == 2 else self.pairwise[k]
            tot = tot + P[x[:, u], x[:, v]]
        return -tot

    def logp(self, x):
        return -self.energy(x)
