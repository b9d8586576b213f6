"""Result containers: :class:`Trace` (Metropolis) and :class:`IsingTrace` (lattices).

Plain dataclasses over numpy arrays, chain first and draw second -- ArviZ's
layout -- with the diagnostics of :mod:`kexue.samplers.diagnostics` as methods.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import diagnostics

__all__ = ["IsingTrace", "Trace"]


@dataclass(repr=False, eq=False)
class Trace:
    """The draws of :func:`kexue.samplers.metropolis`.

    Attributes
    ----------
    samples : float64 [C, S, D]
        C chains, S recorded draws each (after burn-in and thinning), D dims.
    logp : float64 [C, S]
        The target's log density at each draw.
    accept_rate : float64 [C]
        Accepted proposals / recorded steps, per chain.
    step_size : float64 [C]
        The random-walk scale each chain ended with (after adaptation).

    ``samples`` is in ArviZ's (chain, draw, *shape) layout, so
    ``arviz.from_dict({"x": tr.samples})`` (or ``posterior={"x": ...}``)
    takes it as is, no transpose.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tr = Trace(samples=rng.normal(size=(4, 500, 2)), logp=np.zeros((4, 500)),
    ...            accept_rate=np.full(4, 0.25), step_size=np.ones(4))
    >>> tr
    Trace(samples=[4, 500, 2], logp=[4, 500], mean accept_rate=0.250)
    >>> tr.ess().shape, bool((tr.rhat() < 1.01).all())
    ((2,), True)
    """

    samples: np.ndarray
    logp: np.ndarray
    accept_rate: np.ndarray
    step_size: np.ndarray

    def ess(self, method="bulk"):
        """Effective sample size per dimension, [D] (see :func:`~kexue.samplers.ess`)."""
        return np.asarray(diagnostics.ess(self.samples, method=method))

    def rhat(self, method="rank"):
        """Rank-normalised split R-hat per dimension, [D] (see :func:`~kexue.samplers.rhat`)."""
        return np.asarray(diagnostics.rhat(self.samples, method=method))

    def summary(self, names=None, quantiles=(0.05, 0.5, 0.95)):
        """A printable table: mean, sd, quantiles, ess_bulk, ess_tail, r_hat per dimension.

        ``names``: one label per dimension (default ``x[0]``, ``x[1]``, ...);
        see :func:`~kexue.samplers.summary`.
        """
        return diagnostics.summary(self.samples, names=names, quantiles=quantiles)

    def __repr__(self):
        shp = lambda a: "[" + ", ".join(map(str, np.shape(a))) + "]"  # noqa: E731
        acc = np.asarray(self.accept_rate, dtype=np.float64)
        mean = f"{acc.mean():.3f}" if acc.size else "nan"
        return f"Trace(samples={shp(self.samples)}, logp={shp(self.logp)}, mean accept_rate={mean})"


@dataclass(repr=False, eq=False)
class IsingTrace:
    """The output of :func:`kexue.samplers.gibbs_ising` and :func:`~.gibbs_potts`.

    Attributes
    ----------
    spins : int8 [C, H, W]
        The final state of each chain (+-1 spins; Potts: states 0..q-1).
    magnetization : float64 [C, S]
        Per site, after each recorded sweep (Potts: (q * max_a frac_a - 1) / (q - 1)).
    energy : float64 [C, S]
        Per site, after each recorded sweep.

    The recorded sweeps include the burn-in: slice ``[:, burn:]`` first when
    diagnosing, e.g. ``kexue.samplers.ess(tr.energy[:, 100:])``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tr = IsingTrace(spins=np.ones((2, 4, 4), np.int8), magnetization=rng.normal(size=(2, 100)),
    ...                 energy=rng.normal(size=(2, 100)))
    >>> tr
    IsingTrace(spins=[2, 4, 4] int8, magnetization=[2, 100], energy=[2, 100])
    >>> sorted(tr.ess())
    ['energy', 'magnetization']
    """

    spins: np.ndarray
    magnetization: np.ndarray
    energy: np.ndarray

    def ess(self, method="bulk"):
        """``{"energy": float, "magnetization": float}``: ESS of the [C, S] series."""
        return {"energy": diagnostics.ess(self.energy, method=method),
                "magnetization": diagnostics.ess(self.magnetization, method=method)}

    def rhat(self, method="rank"):
        """``{"energy": float, "magnetization": float}``: R-hat of the [C, S] series."""
        return {"energy": diagnostics.rhat(self.energy, method=method),
                "magnetization": diagnostics.rhat(self.magnetization, method=method)}

    def __repr__(self):
        shp = lambda a: "[" + ", ".join(map(str, np.shape(a))) + "]"  # noqa: E731
        dt = getattr(self.spins, "dtype", None)
        return (f"IsingTrace(spins={shp(self.spins)}{'' if dt is None else ' ' + str(dt)}, "
                f"magnetization={shp(self.magnetization)}, energy={shp(self.energy)})")
