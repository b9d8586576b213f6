"""MCMC over many chains at once (kexue.fm/archives/8084, spec A3-A8).

- :func:`metropolis` -- random-walk or independence Metropolis-Hastings on
  C chains of x [C, D], with a built-in target (:mod:`.targets`, evaluated in
  C++, chains in parallel) or any Python callable ``f(x [C,D]) -> logp [C]``
  (called once per step for all chains; only that call holds the GIL).
- :func:`gibbs_ising`, :func:`gibbs_potts` -- checkerboard heat-bath Gibbs
  sweeps of the 2-D periodic Ising and q-state Potts models.
- :func:`gibbs_mrf` -- any pairwise discrete MRF (greedy colouring, colour
  classes in parallel); :func:`lda` -- collapsed Gibbs for LDA (AD-LDA over a
  fixed partition of the documents, or exact sequential).
- :func:`gibbs` -- Gibbs with your own full conditionals; :func:`anneal` --
  simulated annealing.
- :func:`ess`, :func:`rhat`, :func:`summary` -- Vehtari et al. (2021)
  rank-normalised split R-hat and bulk/tail ESS (ArviZ's definitions).

Randomness is Philox4x32-10, addressed by (seed, global chain index
``chain_offset + c``, draw): a chain's draws never depend on the thread
count or on the other chains of the call, so 512 chains with
``chain_offset=0`` and 512 with ``chain_offset=512`` are exactly the 1024
chains of one call. The numpy twin :mod:`kexue.reference.samplers`
reproduces every chain bit for bit.
"""
from __future__ import annotations


import numpy as np

from .. import _core
from .._util import check_int
from ._args import progress_arg, seed_arg
from . import targets
from ._discrete import LDAResult, MRFTrace, gibbs_mrf, lda
from ._trace import IsingTrace, Trace
from .diagnostics import ess, rhat, summary

__all__ = ["AnnealResult", "IsingTrace", "LDAResult", "MRFTrace", "Trace", "anneal", "ess", "gibbs",
           "gibbs_ising", "gibbs_mrf", "gibbs_potts", "lda", "metropolis", "rhat", "summary",
           "targets", "temperatures"]


def metropolis(target, x0, n_steps, *, step_size=0.1, proposal="gaussian", seed=0, burn=0,
               thin=1, adapt=True, chain_offset=0, progress=False):
    """Metropolis-Hastings on C chains.

    Parameters
    ----------
    target : a :mod:`kexue.samplers.targets` object (run in C++), or a callable
        ``f(x) -> logp`` taking x [C, D] float64 and returning [C] (called
        once per step for all chains; -inf rejects, NaN raises)
    x0 : float64 array [C, D] -- the chains' starting points
    n_steps : int -- recorded steps (after ``burn`` warm-up steps)
    step_size : float or [D] -- the random-walk scale (``proposal="gaussian"``)
    proposal : "gaussian" (y = x + f * step_size * z) or ("independent", mean, cov)
        (y ~ N(mean, cov) whatever x; the asymmetric correction is applied)
    seed : int in [0, 2^64); chain_offset : int -- global index of chain 0
    burn : int -- warm-up steps, not recorded (adaptation happens there)
    thin : int -- keep every thin-th recorded step (S = ceil(n_steps / thin) draws)
    adapt : bool -- tune each chain's step factor f toward acceptance 0.234
        during burn-in (Robbins-Monro, f *= exp((a_t - 0.234) / (t+1)^0.6)),
        then freeze it
    progress : bool -- a plain-text progress line on stderr (steps done, averaged over the
        chains for built-in targets, whose chains run in parallel)

    Returns
    -------
    :class:`Trace` -- samples [C,S,D], logp [C,S], accept_rate [C] (over the
    recorded steps), step_size [C] (the final f times the mean step_size).

    Examples
    --------
    >>> import numpy as np, kexue
    >>> t = kexue.samplers.targets.Gaussian(np.zeros(2), np.eye(2))
    >>> tr = kexue.samplers.metropolis(t, np.zeros((8, 2)), 2000, step_size=1.0, burn=500, seed=1)
    >>> tr.samples.shape, bool(abs(tr.samples.mean()) < 0.1)
    ((8, 2000, 2), True)
    """
    op = "samplers.metropolis"
    x0 = np.asarray(x0)
    if x0.dtype != np.float64:
        raise TypeError(f"[kexue.{op}] x0 must be float64; got {x0.dtype}")
    x0 = np.ascontiguousarray(x0)
    n_steps = check_int(op, "n_steps", n_steps)
    burn = check_int(op, "burn", burn)
    thin = check_int(op, "thin", thin)
    chain_offset = check_int(op, "chain_offset", chain_offset)
    kw = {}
    if hasattr(target, "kind") and hasattr(target, "_core_args"):
        kind, fn = target.kind, None
        kw.update(target._core_args())
    elif callable(target):
        kind, fn = "callable", target
    else:
        raise TypeError(f"[kexue.{op}] target must be callable or a kexue.samplers.targets object; "
                        f"got {type(target).__name__}")
    independent = False
    if isinstance(proposal, str):
        if proposal != "gaussian":
            raise ValueError(f"[kexue.{op}] proposal must be 'gaussian' or ('independent', mean, cov); got {proposal!r}")
        st = np.atleast_1d(np.asarray(step_size, dtype=np.float64))
        if st.ndim != 1:
            raise ValueError(f"[kexue.{op}] step_size must be a number or [D]; got shape {st.shape}")
        kw["step_size"] = st
    else:
        if not (isinstance(proposal, tuple) and len(proposal) == 3 and proposal[0] == "independent"):
            raise ValueError(f"[kexue.{op}] proposal must be 'gaussian' or ('independent', mean, cov)")
        g = targets.Gaussian(proposal[1], proposal[2])
        independent = True
        kw.update(prop_mean=g.mean, prop_chol=g.chol.ravel(), step_size=np.ones(1))
    samples, logp, acc, st = _core.smp_metropolis(
        kind, fn, x0, n_steps, independent=independent, seed=seed_arg(op, seed), burn=burn, thin=thin,
        adapt=bool(adapt), chain_offset=chain_offset, progress=progress_arg(op, progress), **kw)
    return Trace(samples=samples, logp=logp, accept_rate=acc, step_size=st)


def _lattice(op, shape, q, beta, n_sweeps, h, chains, seed, init, record_every, chain_offset):
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2):
        raise ValueError(f"[kexue.{op}] shape must be a pair (H, W); got {shape!r}")
    H, W = (check_int(op, "shape", s) for s in shape)
    chains = check_int(op, "chains", chains)
    if chains < 0:
        raise ValueError(f"[kexue.{op}] chains must be >= 0; got {chains}")
    modes = {"random": 0, "up": 1, "down": 2}
    if isinstance(init, str):
        if init not in modes:
            raise ValueError(f"[kexue.{op}] init must be 'random', 'up', 'down' or an int8 array; got {init!r}")
        if H < 0 or W < 0:
            raise ValueError(f"[kexue.{op}] shape must be even in both axes and >= 2; got ({H}, {W})")
        spins = np.zeros((chains, H, W), dtype=np.int8)
        mode = modes[init]
    else:
        a = np.asarray(init)
        if a.dtype != np.int8:
            raise TypeError(f"[kexue.{op}] init must be an int8 array [chains, H, W]; got {a.dtype}")
        if a.shape != (chains, H, W):
            raise ValueError(f"[kexue.{op}] init must have shape ({chains}, {H}, {W}); got {a.shape}")
        spins = np.array(a, order="C", copy=True)
        mode = 3
    if isinstance(beta, (bool, np.bool_)) or not isinstance(beta, (int, float, np.integer, np.floating)):
        raise TypeError(f"[kexue.{op}] beta must be a number; got {type(beta).__name__}")
    mag, en = _core.smp_lattice(
        spins, q, beta=float(beta), h=float(h), n_sweeps=check_int(op, "n_sweeps", n_sweeps),
        record_every=check_int(op, "record_every", record_every),
        chain_offset=check_int(op, "chain_offset", chain_offset), seed=seed_arg(op, seed), init=mode)
    return IsingTrace(spins=spins, magnetization=mag, energy=en)


def gibbs_ising(shape, beta, n_sweeps, *, h=0.0, chains=1, seed=0, init="random", record_every=1,
                chain_offset=0):
    """Heat-bath Gibbs sweeps of the 2-D periodic Ising model, E = -sum s_i s_j - h sum s_i.

    Each sweep updates the sites with (r + c) even, then the odd ones (a
    checkerboard: each colour is conditionally independent given the other);
    P(s = +1 | neighbours) = 1 / (1 + exp(-2 beta (sum of the 4 neighbours + h))).

    Parameters
    ----------
    shape : (H, W), both even
    beta : float >= 0 (inverse temperature; critical 0.4406868)
    n_sweeps : int; h : float (external field)
    chains : int; seed, chain_offset : as in :func:`metropolis`
    init : "random" | "up" | "down" | int8 array [chains, H, W] of +-1
    record_every : int -- record magnetisation and energy after every k-th sweep

    Returns
    -------
    :class:`IsingTrace` -- spins [chains,H,W] int8 (the last state),
    magnetization and energy [chains, n_sweeps // record_every] per site
    (the burn-in included: discard what you need).

    Examples
    --------
    >>> import kexue
    >>> tr = kexue.samplers.gibbs_ising((16, 16), 0.6, 200, chains=2, init="up", seed=0)
    >>> bool(abs(tr.magnetization[:, 100:]).mean() > 0.9)   # ordered phase: M = 0.9856
    True
    """
    return _lattice("samplers.gibbs_ising", shape, 0, beta, n_sweeps, h, chains, seed, init,
                    record_every, chain_offset)


def gibbs_potts(shape, q, beta, n_sweeps, *, chains=1, seed=0, init="random", record_every=1,
                chain_offset=0):
    """Heat-bath Gibbs sweeps of the q-state Potts model, E = -sum delta(s_i, s_j).

    As :func:`gibbs_ising` with states 0..q-1 (int8) and P(s = a | neighbours)
    proportional to exp(beta * #neighbours in state a). "magnetization" is
    (q * max_a fraction_a - 1) / (q - 1); energy is per site. ``init="up"``
    starts all sites in state 0, ``"down"`` in state q-1.

    Examples
    --------
    >>> import kexue
    >>> tr = kexue.samplers.gibbs_potts((16, 16), 3, 0.3, 50, chains=2, seed=0)
    >>> tr.energy.shape
    (2, 50)
    """
    q = check_int("samplers.gibbs_potts", "q", q)
    if not 2 <= q <= 127:
        raise ValueError(f"[kexue.samplers.gibbs_potts] q must be in [2, 127]; got {q}")
    return _lattice("samplers.gibbs_potts", shape, q, beta, n_sweeps, 0.0, chains, seed, init,
                    record_every, chain_offset)


def temperatures(schedule, n_steps):
    """The temperature of each step of a schedule (spec A5), float64 [n_steps].

    schedule: ("geometric", T0, T1) -- T_t = T0 (T1/T0)^(t/(n-1)) (practical);
    ("linear", T0, T1); ("log", c) -- T_t = c / log(t + 2) (the slow schedule
    with the asymptotic guarantee); or an explicit array [n_steps] of T > 0.

    >>> kexue.samplers.temperatures(("geometric", 1.0, 0.01), 3)
    array([1.  , 0.1 , 0.01])
    """
    op = "samplers.anneal"
    n = check_int(op, "n_steps", n_steps)
    bad = (f"[kexue.{op}] schedule must be ('geometric', T0, T1), ('linear', T0, T1), "
           f"('log', c) or an array of {n} temperatures; got {schedule!r}")
    if not isinstance(schedule, tuple):
        try:
            T = np.asarray(schedule, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(bad) from None
        if T.shape != (n,):
            raise ValueError(bad)
        return np.ascontiguousarray(T)
    try:
        kind, args = schedule[0], [float(a) for a in schedule[1:]]
    except (TypeError, ValueError, IndexError):
        raise ValueError(bad) from None
    t = np.arange(n, dtype=np.float64)
    frac = t / (n - 1) if n > 1 else np.zeros(n)
    if kind == "geometric" and len(args) == 2:
        T0, T1 = args
        if not (T0 > 0 and T1 > 0):
            raise ValueError(f"[kexue.{op}] schedule temperatures must be > 0; got {T0}, {T1}")
        return T0 * (T1 / T0) ** frac
    if kind == "linear" and len(args) == 2:
        T0, T1 = args
        return T0 + (T1 - T0) * frac
    if kind == "log" and len(args) == 1:
        return args[0] / np.log(t + 2.0)
    raise ValueError(bad)


class AnnealResult:
    """What :func:`anneal` returns: best_x [C, D] (or int8 spins [C, N]), best_energy [C],
    energy [C, n_steps] (the current energy after each step or sweep), accept_rate [C]
    (continuous targets) and temperatures [n_steps]."""

    def __init__(self, best_x, best_energy, energy, accept_rate, temperatures):
        self.best_x, self.best_energy, self.energy = best_x, best_energy, energy
        self.accept_rate, self.temperatures = accept_rate, temperatures

    def __repr__(self):
        return (f"AnnealResult(best_x={list(self.best_x.shape)}, best_energy min "
                f"{float(np.min(self.best_energy)) if self.best_energy.size else float('nan'):.6g})")


def anneal(energy, x0, n_steps, *, schedule=("geometric", 1.0, 0.01), step_size=0.1, seed=0,
           chain_offset=0, progress=False):
    """Simulated annealing (spec A5): MH on exp(-E(x) / T_t) while T_t falls; the best state is kept.

    Parameters
    ----------
    energy : a callable E(x [C,D]) -> [C]; a :mod:`.targets` density (E = -logp,
        run in C++); :class:`targets.SpinGlass` with int8 spins x0 [C, N]
        (sweeps of single-spin flips in C++; n_steps counts sweeps); or
        :class:`targets.MRF` with integer states x0 [C, N] in [0, S) (sweeps of
        single-site moves to a uniformly drawn other state, in C++)
    x0 : float64 [C, D] (int8 +-1 [C, N] for a spin glass, int [C, N] for an MRF)
    n_steps : int; schedule : see :func:`temperatures`
    step_size : random-walk scale (continuous targets; the proposal ratio is not tempered)
    seed, chain_offset : as in :func:`metropolis`
    progress : bool -- a progress line on stderr (continuous energies, callable or built-in;
        not the spin glass)

    The spin glass's and the MRF's energy traces are running sums of the accepted
    moves' dE (the core and the twin alike), so with non-integer potentials they can
    differ from ``.energy(state)`` in the last bits. For an MRF, ``best_x`` is int32
    and ``accept_rate`` NaN; the exact move rule is in the twin's docstring
    (:func:`kexue.reference.samplers.anneal`).

    Returns
    -------
    :class:`AnnealResult`

    Examples
    --------
    >>> import numpy as np, kexue
    >>> r = kexue.samplers.anneal(lambda x: ((x - 3.0) ** 2).sum(1), np.zeros((4, 2)), 3000,
    ...                           schedule=("geometric", 1.0, 1e-3), step_size=0.3, seed=0)
    >>> bool(np.allclose(r.best_x, 3.0, atol=0.1))
    True
    """
    op = "samplers.anneal"
    n_steps = check_int(op, "n_steps", n_steps)
    if n_steps < 0:
        raise ValueError(f"[kexue.{op}] n_steps must be >= 0; got {n_steps}")
    T = temperatures(schedule, n_steps)
    seed = seed_arg(op, seed)
    chain_offset = check_int(op, "chain_offset", chain_offset)
    x0 = np.asarray(x0)
    if isinstance(energy, targets.SpinGlass):
        if x0.dtype != np.int8:
            raise TypeError(f"[kexue.{op}] x0 must be int8 spins [C, N] for a SpinGlass; got {x0.dtype}")
        best, be, en, _last = _core.smp_anneal_spins(energy.J, energy.h, np.ascontiguousarray(x0), T,
                                                     seed=seed, chain_offset=chain_offset)
        return AnnealResult(best, be, en, np.full(best.shape[0], np.nan), T)
    if isinstance(energy, targets.MRF):
        if x0.dtype.kind not in "iu":
            raise TypeError(f"[kexue.{op}] x0 must be integer states [C, N] for an MRF; got {x0.dtype}")
        # the core checks the range; here only what int32 cannot hold (a cast would wrap)
        i32 = np.iinfo(np.int32)
        if x0.ndim == 2 and x0.size and (x0.min() < i32.min or x0.max() > i32.max):
            c, i = (int(v) for v in np.argwhere((x0 < i32.min) | (x0 > i32.max))[0])
            raise IndexError(f"[kexue.{op}] x0 states must be in [0, {energy.unary.shape[1]}); got "
                             f"{int(x0[c, i])} at ({c}, {i})")
        states = np.ascontiguousarray(x0, dtype=np.int32)
        best, be, en = _core.smp_anneal_mrf(energy.unary, energy.edges, energy.pairwise, states, T,
                                            seed=seed, chain_offset=chain_offset)
        return AnnealResult(best, be, en, np.full(best.shape[0], np.nan), T)
    if x0.dtype != np.float64:
        raise TypeError(f"[kexue.{op}] x0 must be float64; got {x0.dtype}")
    kw = {}
    if hasattr(energy, "kind") and hasattr(energy, "_core_args"):
        kind, fn = energy.kind, None
        kw.update(energy._core_args())
    elif callable(energy):
        kind = "callable"

        def fn(x):
            return -np.asarray(energy(x), dtype=np.float64)
    else:
        raise TypeError(f"[kexue.{op}] energy must be callable or a kexue.samplers.targets object; "
                        f"got {type(energy).__name__}")
    st = np.atleast_1d(np.asarray(step_size, dtype=np.float64))
    bx, be, en, acc = _core.smp_anneal(kind, fn, np.ascontiguousarray(x0), T, step_size=st, seed=seed,
                                       chain_offset=chain_offset, progress=progress_arg(op, progress), **kw)
    return AnnealResult(bx, be, en, acc, T)


def gibbs(conditional, x0, n_sweeps, n_states, *, scan="systematic", seed=0, chain_offset=0,
          record_every=1):
    """Gibbs sampling with your own full conditionals (spec A4), C chains at once.

    Parameters
    ----------
    conditional : callable ``f(x, i) -> logits`` -- x int64 [C, N] (the chains'
        current states, a copy), i the coordinate to update; returns float
        logits [C, n_states] of p(x_i | x_-i) up to a constant (-inf: impossible)
    x0 : int array [C, N] with values in [0, n_states)
    n_sweeps : int -- N updates each
    scan : "systematic" (i = 0..N-1) or "random" (i uniform each update; the same
        i for all chains of the call, drawn from a stream shared by all chains)
    seed, chain_offset : as in :func:`metropolis`
    record_every : int

    Returns
    -------
    samples : int64 [C, n_sweeps // record_every, N]

    Examples
    --------
    >>> import numpy as np, kexue
    >>> cond = lambda x, i: np.tile([0.0, np.log(3.0)], (x.shape[0], 1))   # p(1) = 3/4, independent
    >>> s = kexue.samplers.gibbs(cond, np.zeros((64, 2), np.int64), 200, 2, seed=0)
    >>> bool(abs(s.mean() - 0.75) < 0.02)
    True
    """
    op = "samplers.gibbs"
    if not callable(conditional):
        raise TypeError(f"[kexue.{op}] conditional must be callable; got {type(conditional).__name__}")
    if scan not in ("systematic", "random"):
        raise ValueError(f"[kexue.{op}] scan must be 'systematic' or 'random'; got {scan!r}")
    x = np.asarray(x0)
    if x.dtype.kind not in "iu":
        raise TypeError(f"[kexue.{op}] x0 must be an integer array [C, N]; got {x.dtype}")
    if x.dtype.kind == "u" and x.size and x.max() > np.iinfo(np.int64).max:
        raise IndexError(f"[kexue.{op}] x0 must be in [0, n_states); got {x.max()}")
    x = np.ascontiguousarray(x, dtype=np.int64)
    return _core.smp_gibbs(conditional, x, check_int(op, "n_sweeps", n_sweeps),
                           check_int(op, "n_states", n_states), random_scan=scan == "random",
                           seed=seed_arg(op, seed), chain_offset=check_int(op, "chain_offset", chain_offset),
                           record_every=check_int(op, "record_every", record_every))
