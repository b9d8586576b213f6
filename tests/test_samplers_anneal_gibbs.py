"""kexue.samplers.anneal / temperatures / gibbs (issue 5, spec A4 and A5): exact
optima and exact marginals by enumeration, the core against its numpy twin
kexue.reference.samplers (spin glass and Gibbs bitwise, continuous annealing to
1e-12), determinism (threads, chain_offset splits) and bad inputs.

Standard errors for the Gibbs marginals are batch means across chains: one
post-burn-in frequency per chain, SE = sd / sqrt(C); every check is at 4 SE
with a fixed seed.
"""

from __future__ import annotations

import inspect
import itertools
import math

import kexue
import numpy as np
import pytest
from kexue.reference import samplers as ref

SE_TOL = 4.0


def core():
    import kexue.samplers as ks

    return ks


@pytest.fixture(params=["reference", "core"])
def impl(request):
    return ref if request.param == "reference" else core()


def spin_glass_problem(seed=2, N=12):
    """A dense frustrated +-1 spin glass and its exact ground energy (2^N states)."""
    rng = np.random.default_rng(seed)
    J = np.triu(rng.choice([-1.0, 1.0], (N, N)), 1)
    J = J + J.T
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=N)))
    E = -0.5 * np.einsum("si,ij,sj->s", states, J, states)
    x0 = np.where(rng.random((8, N)) < 0.5, 1, -1).astype(np.int8)
    return J, float(E.min()), x0


def brute_energy(J, h, s):
    s = np.asarray(s, dtype=np.float64)
    return -0.5 * np.einsum("ci,ij,cj->c", s, J, s) - s @ h


class MRF:
    """A pairwise MRF over N nodes with S states on the complete graph:
    log p(x) = sum_i unary[i, x_i] + sum_{i<k} W[i, k][x_i, x_k] (+ const)."""

    def __init__(self, seed=0, N=5, S=3, scale=0.8):
        rng = np.random.default_rng(seed)
        self.N, self.S = N, S
        self.unary = rng.standard_normal((N, S)) * scale
        W = np.zeros((N, N, S, S))
        for i in range(N):
            for k in range(i + 1, N):
                P = rng.standard_normal((S, S)) * scale
                W[i, k], W[k, i] = P, P.T
        self.W = W

    def conditional(self, x, i):
        """logits [C, S] of x_i given the others (numpy)."""
        lg = np.tile(self.unary[i], (x.shape[0], 1))
        for k in range(self.N):
            if k != i:
                lg = lg + self.W[i, k][:, x[:, k]].T
        return lg

    def marginals(self):
        """Exact p(x_i = a) [N, S] by enumeration of all S^N states."""
        X = np.array(list(itertools.product(range(self.S), repeat=self.N)))
        lp = self.unary[np.arange(self.N), X].sum(axis=1)
        for i in range(self.N):
            for k in range(i + 1, self.N):
                lp = lp + self.W[i, k][X[:, i], X[:, k]]
        p = np.exp(lp - lp.max())
        p /= p.sum()
        return np.stack([np.bincount(X[:, i], weights=p, minlength=self.S) for i in range(self.N)])


# ============================================================================
# temperatures


def test_temperatures_values(impl):
    n = 11
    t = np.arange(n) / (n - 1)
    g = impl.temperatures(("geometric", 2.0, 0.02), n)
    assert g.dtype == np.float64 and g.shape == (n,)
    assert g[0] == 2.0
    np.testing.assert_allclose(g, 2.0 * 0.01**t, rtol=1e-14)
    np.testing.assert_allclose(g, np.geomspace(2.0, 0.02, n), rtol=1e-14)
    np.testing.assert_allclose(impl.temperatures(("linear", 1.0, 0.1), n), np.linspace(1.0, 0.1, n),
                               rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(impl.temperatures(("log", 3.0), n), 3.0 / np.log(np.arange(n) + 2.0),
                               rtol=1e-15)
    arr = np.array([3.0, 2.0, 1.0])
    np.testing.assert_array_equal(impl.temperatures(arr, 3), arr)
    np.testing.assert_array_equal(impl.temperatures([3, 2, 1], 3), arr)
    assert impl.temperatures(("geometric", 1.0, 0.01), 1).tolist() == [1.0]
    assert impl.temperatures(("geometric", 1.0, 0.01), 0).shape == (0,)


def test_temperatures_core_equals_twin():
    ks = core()
    for sch in [("geometric", 5.0, 1e-3), ("linear", 2.0, 0.5), ("log", 1.5)]:
        assert ks.temperatures(sch, 257).tobytes() == ref.temperatures(sch, 257).tobytes(), sch


BAD_SCHEDULES = {
    "unknown kind": ("cubic", 1.0, 0.1),
    "geometric arity": ("geometric", 1.0),
    "log arity": ("log",),
    "empty tuple": (),
    "geometric T0 <= 0": ("geometric", -1.0, 0.1),
    "geometric T1 = 0": ("geometric", 1.0, 0.0),
    "array length": np.ones(4),
    "2-D array": np.ones((5, 1)),
    "None": None,
    "a string": "geometric",
    "a list": ["geometric", 1.0, 0.01],
    "non-numeric T0": ("geometric", "hot", 0.1),
}


@pytest.mark.parametrize("case", list(BAD_SCHEDULES))
def test_temperatures_bad_schedule(impl, case):
    with pytest.raises(ValueError, match=r"\[kexue\.samplers\.anneal\] schedule"):
        impl.temperatures(BAD_SCHEDULES[case], 5)


# ============================================================================
# annealing: exact optima


def test_anneal_finds_spin_glass_ground_state():
    ks = core()
    J, e0, x0 = spin_glass_problem()
    assert e0 > -np.abs(np.triu(J, 1)).sum()  # frustrated: no state satisfies every bond
    sg = ks.targets.SpinGlass(J)
    n = 200
    r = ks.anneal(sg, x0, n, schedule=("geometric", 3.0, 0.05), seed=0)
    assert r.best_x.dtype == np.int8 and r.best_x.shape == x0.shape
    assert r.energy.shape == (8, n) and r.best_energy.shape == (8,)
    np.testing.assert_array_equal(r.temperatures, ks.temperatures(("geometric", 3.0, 0.05), n))
    assert r.best_energy.min() == e0
    assert int((r.best_energy == e0).sum()) >= 6, r.best_energy
    # best_energy is the energy of best_x, the lowest seen (x0 included)
    np.testing.assert_array_equal(brute_energy(J, np.zeros(12), r.best_x), r.best_energy)
    np.testing.assert_array_equal(sg.energy(r.best_x), r.best_energy)
    assert np.all(r.best_energy <= r.energy.min(axis=1))
    assert np.all(r.best_energy <= sg.energy(x0))
    assert np.all(r.best_energy >= e0)


def test_anneal_quadratic_minimum(impl):
    mu = np.array([1.0, -2.0, 0.5])
    x0 = np.random.default_rng(1).standard_normal((16, 3)) * 2.0
    n = 2000
    r = impl.anneal(lambda x: ((x - mu) ** 2).sum(axis=1), x0, n,
                    schedule=("geometric", 1.0, 1e-4), step_size=0.1, seed=3)
    assert r.best_x.shape == (16, 3) and r.energy.shape == (16, n)
    np.testing.assert_allclose(r.best_x, np.broadcast_to(mu, (16, 3)), atol=0.05)
    assert np.all(r.best_energy < 2e-3)
    np.testing.assert_allclose(((r.best_x - mu) ** 2).sum(axis=1), r.best_energy,
                               rtol=1e-12, atol=1e-15)
    assert np.all(r.best_energy[:, None] <= r.energy)
    assert np.all((r.accept_rate > 0) & (r.accept_rate < 1))


def test_anneal_rosenbrock_builtin_minimum(impl):
    t = core().targets.Rosenbrock()  # energy = -logp = (1 - x0)^2 + 100 (x1 - x0^2)^2
    x0 = np.random.default_rng(2).uniform(-1.5, 1.5, (16, 2))
    n = 3000
    r = impl.anneal(t, x0, n, schedule=("geometric", 1.0, 1e-4), step_size=[0.05, 0.1], seed=2)
    assert r.energy.shape == (16, n)
    np.testing.assert_allclose(r.best_x, np.ones((16, 2)), atol=0.08)
    assert np.all(r.best_energy < 2e-3)
    assert r.best_energy.min() < 1e-4
    np.testing.assert_allclose(-t.logp(r.best_x), r.best_energy, rtol=1e-12, atol=1e-15)
    assert np.all(r.best_energy[:, None] <= r.energy)
    assert np.all(r.best_energy <= -t.logp(x0))


# ============================================================================
# Gibbs: exact marginals of a small MRF


@pytest.mark.parametrize("scan", ["systematic", "random"])
def test_gibbs_mrf_marginals(scan):
    ks = core()
    mrf = MRF(seed=0)
    exact = mrf.marginals()
    C, n, burn = 256, 300, 50
    x0 = np.random.default_rng(5).integers(0, mrf.S, (C, mrf.N))
    s = ks.gibbs(mrf.conditional, x0, n, mrf.S, scan=scan, seed=11)
    assert s.dtype == np.int64 and s.shape == (C, n, mrf.N)
    post = s[:, burn:]
    for i in range(mrf.N):
        for a in range(mrf.S):
            per_chain = (post[:, :, i] == a).mean(axis=1)
            m, se = per_chain.mean(), per_chain.std(ddof=1) / math.sqrt(C)
            assert abs(m - exact[i, a]) <= SE_TOL * se, (
                f"{scan} p(x_{i} = {a}): {m:.4f} vs exact {exact[i, a]:.4f} "
                f"({abs(m - exact[i, a]) / se:.1f} SE)")


def test_gibbs_record_every_and_shapes(impl):
    mrf = MRF(seed=1)
    x0 = np.random.default_rng(0).integers(0, mrf.S, (6, mrf.N))
    full = impl.gibbs(mrf.conditional, x0, 12, mrf.S, seed=4)
    every3 = impl.gibbs(mrf.conditional, x0, 12, mrf.S, seed=4, record_every=3)
    np.testing.assert_array_equal(every3, full[:, 2::3])
    every5 = impl.gibbs(mrf.conditional, x0, 12, mrf.S, seed=4, record_every=5)
    assert every5.shape == (6, 2, mrf.N)
    np.testing.assert_array_equal(every5, full[:, [4, 9]])
    assert impl.gibbs(mrf.conditional, x0, 0, mrf.S).shape == (6, 0, mrf.N)
    # x0 of any integer dtype; the conditional sees int64 [C, N]
    seen = []

    def cond(x, i):
        seen.append((x.dtype, x.shape, i))
        return mrf.conditional(x, i)

    np.testing.assert_array_equal(impl.gibbs(cond, x0.astype(np.int32), 12, mrf.S, seed=4), full)
    assert all(d == np.int64 and sh == (6, mrf.N) for d, sh, _ in seen)
    assert [i for _, _, i in seen[: mrf.N]] == list(range(mrf.N))


def test_gibbs_random_scan_visits_coordinates_uniformly(impl):
    visits = []

    def cond(x, i):
        visits.append(i)
        return np.zeros((x.shape[0], 2))

    impl.gibbs(cond, np.zeros((2, 4), np.int64), 500, 2, scan="random", seed=0)
    counts = np.bincount(visits, minlength=4)
    assert len(visits) == 2000 and counts.min() > 400  # ~500 each; systematic would be exactly 500
    assert not np.all(counts == 500)


def test_gibbs_impossible_states_never_drawn(impl):
    def cond(x, i):  # state 1 impossible everywhere
        lg = np.zeros((x.shape[0], 3))
        lg[:, 1] = -np.inf
        return lg

    s = impl.gibbs(cond, np.zeros((32, 3), np.int64), 50, 3, seed=2)
    assert not np.any(s == 1)
    assert np.any(s == 0) and np.any(s == 2)


# ============================================================================
# core == twin


@pytest.mark.parametrize("variant", ["pm1", "real_field"])
def test_core_equals_twin_spin_glass(variant):
    ks = core()
    if variant == "pm1":
        J, _, x0 = spin_glass_problem()
        sg, kw = ks.targets.SpinGlass(J), dict(schedule=("geometric", 3.0, 0.05), seed=5)
        n = 120
    else:
        rng = np.random.default_rng(9)
        N = 10
        J = np.triu(rng.standard_normal((N, N)), 1)
        J = J + J.T
        sg = ks.targets.SpinGlass(J, rng.standard_normal(N))
        x0 = np.where(rng.random((9, N)) < 0.5, 1, -1).astype(np.int8)
        kw = dict(schedule=("linear", 2.0, 0.05), seed=2**40 + 7, chain_offset=13)
        n = 80
    a = ks.anneal(sg, x0, n, **kw)
    b = ref.anneal(sg, x0, n, **kw)
    assert a.best_x.dtype == b.best_x.dtype == np.int8
    for f in ("best_x", "best_energy", "energy", "temperatures"):
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f
    assert np.all(np.isnan(a.accept_rate)) and np.all(np.isnan(b.accept_rate))


@pytest.mark.parametrize("case", ["callable", "rosenbrock", "gaussian_vector_step"])
def test_core_equals_twin_continuous_anneal(case):
    ks = core()
    rng = np.random.default_rng(4)
    if case == "callable":
        mu = np.array([0.5, -1.0, 2.0])
        energy, x0, kw = (lambda x: ((x - mu) ** 2).sum(axis=1) + np.sin(3 * x[:, 0]),
                          rng.standard_normal((12, 3)), dict(step_size=0.3, seed=1))
    elif case == "rosenbrock":
        energy, x0, kw = (ks.targets.Rosenbrock(a=1.0, b=20.0), rng.standard_normal((19, 2)),
                          dict(step_size=0.2, seed=8, chain_offset=5,
                               schedule=("log", 0.5)))
    else:
        energy = ks.targets.Gaussian(np.arange(1.0, 6.0), np.diag([1.0, 2.0, 0.5, 1.0, 3.0]))
        x0, kw = rng.standard_normal((10, 5)), dict(step_size=[0.1, 0.2, 0.3, 0.4, 0.5], seed=3,
                                                    schedule=("linear", 2.0, 0.01))
    a = ks.anneal(energy, x0, 400, **kw)
    b = ref.anneal(energy, x0, 400, **kw)
    for f in ("best_x", "best_energy", "energy"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-12, atol=1e-12, err_msg=f)
    np.testing.assert_array_equal(a.accept_rate, b.accept_rate)
    np.testing.assert_array_equal(a.temperatures, b.temperatures)


@pytest.mark.parametrize("scan", ["systematic", "random"])
def test_core_equals_twin_gibbs(scan):
    mrf = MRF(seed=3, N=5, S=4)
    x0 = np.random.default_rng(1).integers(0, mrf.S, (40, mrf.N))
    kw = dict(scan=scan, seed=2**33 + 1, chain_offset=7, record_every=2)
    a = core().gibbs(mrf.conditional, x0, 60, mrf.S, **kw)
    b = ref.gibbs(mrf.conditional, x0, 60, mrf.S, **kw)
    assert a.dtype == b.dtype == np.int64
    np.testing.assert_array_equal(a, b)


def test_names_and_signatures_match_the_twin():
    ks = core()
    for name in ("anneal", "temperatures", "gibbs"):
        assert inspect.signature(getattr(ks, name)) == inspect.signature(getattr(ref, name)), name


# ============================================================================
# determinism: threads and chain_offset splits


def test_threads_give_identical_results():
    ks = core()
    mrf = MRF(seed=2)
    J, _, _ = spin_glass_problem()
    rng = np.random.default_rng(0)
    spins = np.where(rng.random((64, 12)) < 0.5, 1, -1).astype(np.int8)
    xg = rng.integers(0, mrf.S, (600, mrf.N))  # > 2 x 256: chains split across threads
    xc = rng.standard_normal((80, 2))

    def run():
        return [
            ks.anneal(ks.targets.SpinGlass(J), spins, 30, seed=1),
            ks.anneal(ks.targets.Rosenbrock(), xc, 100, seed=1),
            ks.anneal(lambda x: (x**2).sum(axis=1), xc, 100, seed=1),
            ks.gibbs(mrf.conditional, xg, 8, mrf.S, seed=1),
            ks.gibbs(mrf.conditional, xg, 8, mrf.S, scan="random", seed=1),
        ]

    before = kexue.get_num_threads()
    try:
        kexue.set_num_threads(1)
        one = run()
        kexue.set_num_threads(2)
        two = run()
    finally:
        kexue.set_num_threads(before)
    for a, b in zip(one[:3], two[:3]):
        for f in ("best_x", "best_energy", "energy", "accept_rate"):
            assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f
    for a, b in zip(one[3:], two[3:]):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("scan", ["systematic", "random"])
def test_gibbs_chain_offset_split_equals_one_call(impl, scan):
    mrf = MRF(seed=4)
    x0 = np.random.default_rng(3).integers(0, mrf.S, (20, mrf.N))
    one = impl.gibbs(mrf.conditional, x0, 15, mrf.S, scan=scan, seed=6)
    lo = impl.gibbs(mrf.conditional, x0[:7], 15, mrf.S, scan=scan, seed=6)
    hi = impl.gibbs(mrf.conditional, x0[7:], 15, mrf.S, scan=scan, seed=6, chain_offset=7)
    np.testing.assert_array_equal(np.concatenate([lo, hi]), one)


def test_anneal_chain_offset_split_equals_one_call(impl):
    J, _, x0 = spin_glass_problem()
    sg = core().targets.SpinGlass(J)
    xc = np.random.default_rng(0).standard_normal((8, 2))
    for energy, x in ((sg, x0), (lambda y: (y**2).sum(axis=1), xc)):
        one = impl.anneal(energy, x, 40, seed=4)
        lo = impl.anneal(energy, x[:3], 40, seed=4)
        hi = impl.anneal(energy, x[3:], 40, seed=4, chain_offset=3)
        for f in ("best_x", "best_energy", "energy"):
            split = np.concatenate([getattr(lo, f), getattr(hi, f)])
            assert split.tobytes() == getattr(one, f).tobytes(), f


# ============================================================================
# bad inputs (both implementations)


def _anneal_cases():
    """case -> (exception, the argument the message names, energy, x0, n_steps, kwargs)."""
    t = core().targets
    J, _, spins = spin_glass_problem()
    sg = t.SpinGlass(J)
    asym = t.SpinGlass(J)
    asym.J = J.copy()
    asym.J[0, 1] = -asym.J[0, 1]  # not symmetric any more (the constructor checks too)
    zero = spins.copy()
    zero[1, 3] = 0

    def f(x):
        return (x**2).sum(axis=1)

    def nan(x):
        return np.full(x.shape[0], np.nan)

    def long(x):
        return np.zeros(x.shape[0] + 1)

    xc = np.zeros((4, 2))
    neg = dict(schedule=np.array([1.0, -0.5, 0.1]))
    return {
        "x0 int, continuous": (TypeError, "x0", f, xc.astype(np.int64), 5, {}),
        "x0 float spins": (TypeError, "x0", sg, spins.astype(np.float64), 5, {}),
        "x0 int32 spins": (TypeError, "x0", sg, spins.astype(np.int32), 5, {}),
        "x0 1-D": (ValueError, "x0", f, np.zeros(4), 5, {}),
        "x0 spins wrong N": (ValueError, "x0", sg, spins[:, :5], 5, {}),
        "J not symmetric": (ValueError, "energy's J", asym, spins, 5, {}),
        "spins not +-1": (ValueError, "x0 spins", sg, zero, 5, {}),
        "negative temperature": (ValueError, "temperatures", f, xc, 3, neg),
        "negative temperature, spins": (ValueError, "temperatures", sg, spins, 3, neg),
        "linear down to 0": (ValueError, "temperatures", f, xc, 5,
                             dict(schedule=("linear", 1.0, 0.0))),
        "negative log c": (ValueError, "temperatures", sg, spins, 5, dict(schedule=("log", -1.0))),
        "geometric T1 < 0": (ValueError, "schedule", f, xc, 5,
                             dict(schedule=("geometric", 1.0, -0.1))),
        "n_steps < 0": (ValueError, "n_steps", f, xc, -1, {}),
        "step_size <= 0": (ValueError, "step_size", f, xc, 5, dict(step_size=0.0)),
        "chain_offset < 0": (ValueError, "chain_offset", sg, spins, 5, dict(chain_offset=-1)),
        "energy not callable": (TypeError, "energy", 3.0, xc, 5, {}),
        "energy returns NaN": (ValueError, "energy", nan, xc, 5, {}),
        "energy returns wrong shape": (ValueError, "energy", long, xc, 5, {}),
    }


ANNEAL_CASES = [
    "x0 int, continuous", "x0 float spins", "x0 int32 spins", "x0 1-D", "x0 spins wrong N",
    "J not symmetric", "spins not +-1", "negative temperature", "negative temperature, spins",
    "linear down to 0", "negative log c", "geometric T1 < 0", "n_steps < 0", "step_size <= 0",
    "chain_offset < 0", "energy not callable", "energy returns NaN", "energy returns wrong shape",
]


@pytest.mark.parametrize("case", ANNEAL_CASES)
def test_bad_anneal_inputs(impl, case):
    exc, arg, energy, x0, n, kw = _anneal_cases()[case]
    with pytest.raises(exc, match=r"\[kexue\.samplers\.anneal\] " + arg):
        impl.anneal(energy, x0, n, **kw)


def test_spin_glass_constructor_checks_J():
    t = core().targets
    with pytest.raises(ValueError, match=r"\[kexue\.samplers\.targets\.SpinGlass\] J"):
        t.SpinGlass(np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\[kexue\.samplers\.targets\.SpinGlass\] J"):
        t.SpinGlass(np.array([[1.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\[kexue\.samplers\.targets\.SpinGlass\] h"):
        t.SpinGlass(np.zeros((2, 2)), np.zeros(3))


def _bad_conditional(mrf, i, what):
    """mrf.conditional, except at coordinate i: wrong shape, or a NaN / -inf / +inf."""

    def cond(x, j):
        lg = mrf.conditional(x, j)
        if j != i:
            return lg
        if what == "shape":
            return lg[:, :2]
        if what == "1d":
            return lg[:, 0]
        if what == "nan":
            lg[2, 1] = np.nan
        elif what == "-inf":
            lg[1, :] = -np.inf
        elif what == "+inf":
            lg[3, 0] = np.inf
        return lg

    return cond


def _gibbs_cases():
    """case -> (exception, message pattern, conditional, x0, n_states, kwargs)."""
    mrf = MRF(seed=0)
    N, S, c = mrf.N, mrf.S, mrf.conditional
    x0 = np.zeros((4, N), np.int64)
    return {
        "wrong shape": (ValueError, r"logits of shape \(4, 3\).*coordinate 2",
                        _bad_conditional(mrf, 2, "shape"), x0, S, {}),
        "1-D logits": (ValueError, r"logits of shape.*coordinate 3",
                       _bad_conditional(mrf, 3, "1d"), x0, S, {}),
        "NaN": (ValueError, r"NaN for coordinate 2 at sweep 0 \(chain 2\)",
                _bad_conditional(mrf, 2, "nan"), x0, S, {}),
        "all -inf": (ValueError, r"no finite logit for coordinate 4 at sweep 0 \(chain 1\)",
                     _bad_conditional(mrf, 4, "-inf"), x0, S, {}),
        "+inf": (ValueError, r"\+inf for coordinate 1",
                 _bad_conditional(mrf, 1, "+inf"), x0, S, {}),
        "x0 too large": (IndexError, r"x0 must be in \[0, n_states = 3\); got 3", c,
                         np.full((4, N), 3), S, {}),
        "x0 negative": (IndexError, "x0", c, np.full((4, N), -1), S, {}),
        "n_states 1": (ValueError, "n_states", c, x0, 1, {}),
        "n_states 0": (ValueError, "n_states", c, x0, 0, {}),
        "x0 float": (TypeError, "x0", c, np.zeros((4, N)), S, {}),
        "x0 1-D": (ValueError, "x0", c, np.zeros(N, np.int64), S, {}),
        "scan": (ValueError, "scan", c, x0, S, dict(scan="checkerboard")),
        "record_every 0": (ValueError, "record_every", c, x0, S, dict(record_every=0)),
        "n_sweeps < 0": (ValueError, "n_sweeps", c, x0, S, dict(n_sweeps=-1)),
        "conditional not callable": (TypeError, "conditional", None, x0, S, {}),
    }


GIBBS_CASES = ["wrong shape", "1-D logits", "NaN", "all -inf", "+inf", "x0 too large",
               "x0 negative", "n_states 1", "n_states 0", "x0 float", "x0 1-D", "scan",
               "record_every 0", "n_sweeps < 0", "conditional not callable"]


@pytest.mark.parametrize("case", GIBBS_CASES)
def test_bad_gibbs_inputs(impl, case):
    exc, pattern, cond, x0, S, kw = _gibbs_cases()[case]
    n_sweeps = kw.pop("n_sweeps", 3)
    with pytest.raises(exc, match=r"\[kexue\.samplers\.gibbs\] .*" + pattern):
        impl.gibbs(cond, x0, n_sweeps, S, **kw)


def test_gibbs_conditional_exception_propagates(impl):
    def cond(x, i):
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        impl.gibbs(cond, np.zeros((2, 2), np.int64), 1, 2)


# ============================================================================
# annealing a pairwise MRF (targets.MRF)


def mrf_problem(seed=3, N=6, S=3, shared=False):
    """A frustrated MRF on a 6-cycle with two chords, its exact ground energy (S^N states)."""
    rng = np.random.default_rng(seed)
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0], [0, 3], [4, 1]][: N + 2])
    unary = rng.standard_normal((N, S)) * 0.5
    pairwise = rng.standard_normal((S, S) if shared else (len(edges), S, S))
    states = np.array(list(itertools.product(range(S), repeat=N)))
    m = core().targets.MRF(unary, edges, pairwise)
    return m, float(m.energy(states).min()), rng.integers(0, S, (8, N))


def test_mrf_energy_by_enumeration_formula():
    from kexue.reference.samplers_discrete import mrf_energy

    m, _, x = mrf_problem(shared=True)
    want = -np.array([sum(m.unary[i, s[i]] for i in range(m.dim))
                      + sum(m.pairwise[s[u], s[v]] for u, v in m.edges) for s in x])
    np.testing.assert_allclose(m.energy(x), want, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(mrf_energy(m.unary, m.edges, m.pairwise, x), m.energy(x))


@pytest.mark.parametrize("shared", [False, True])
def test_anneal_finds_mrf_ground_state(shared):
    m, e0, x0 = mrf_problem(shared=shared)
    r = core().anneal(m, x0, 150, schedule=("geometric", 3.0, 0.02), seed=0)
    assert r.best_x.dtype == np.int32 and r.best_x.shape == x0.shape
    assert r.energy.shape == (8, 150) and np.all(np.isnan(r.accept_rate))
    assert int((np.abs(r.best_energy - e0) < 1e-9).sum()) >= 6, (r.best_energy, e0)
    assert np.all(r.best_energy >= e0 - 1e-9)
    # best_energy is a running sum of dE: equal to the energy of best_x up to rounding
    np.testing.assert_allclose(r.best_energy, m.energy(r.best_x), rtol=0, atol=1e-12)
    assert np.all(r.best_energy <= r.energy.min(axis=1))
    assert np.all(r.best_energy <= m.energy(x0))


@pytest.mark.parametrize("variant", ["per-edge", "shared", "two-states", "no-edges"])
def test_core_equals_twin_mrf_anneal(variant):
    ks = core()
    rng = np.random.default_rng(21)
    if variant == "two-states":
        m, _, x0 = mrf_problem(seed=4, S=2)
    elif variant == "no-edges":
        m = ks.targets.MRF(rng.standard_normal((5, 4)), np.zeros((0, 2), np.int64),
                           rng.standard_normal((4, 4)))
        x0 = rng.integers(0, 4, (3, 5))
    else:
        m, _, x0 = mrf_problem(seed=5, S=4, shared=variant == "shared")
    kw = dict(schedule=("linear", 2.0, 0.05), seed=2**40 + 9, chain_offset=11)
    a = ks.anneal(m, x0, 40, **kw)
    b = ref.anneal(m, x0, 40, **kw)
    for f in ("best_x", "best_energy", "energy", "temperatures"):
        assert getattr(a, f).dtype == getattr(b, f).dtype, f
        assert getattr(a, f).tobytes() == getattr(b, f).tobytes(), f
    assert np.all(np.isnan(a.accept_rate)) and np.all(np.isnan(b.accept_rate))


def test_mrf_anneal_chain_offset_and_threads():
    ks = core()
    m, _, x0 = mrf_problem(seed=6)
    kw = dict(schedule=("geometric", 2.0, 0.1), seed=8)
    a = ks.anneal(m, x0, 30, **kw)
    b = ks.anneal(m, x0[:3], 30, **kw)
    c = ks.anneal(m, x0[3:], 30, chain_offset=3, **kw)
    for f in ("best_x", "best_energy", "energy"):
        np.testing.assert_array_equal(getattr(a, f), np.concatenate([getattr(b, f), getattr(c, f)]))
    n = kexue.get_num_threads()
    try:
        kexue.set_num_threads(1)
        d = ks.anneal(m, x0, 30, **kw)
    finally:
        kexue.set_num_threads(n)
    np.testing.assert_array_equal(a.energy, d.energy)
    e = ks.anneal(m, x0, 0, **kw)  # no sweeps: the start is the best
    assert e.energy.shape == (8, 0)
    np.testing.assert_array_equal(e.best_x, x0)
    np.testing.assert_array_equal(e.best_energy, m.energy(x0))


def _mrf_anneal_cases():
    m, _, x0 = mrf_problem(seed=7)
    loop = core().targets.MRF(m.unary, np.array([[0, 1], [2, 2]]), m.pairwise[:2])
    far = core().targets.MRF(m.unary, np.array([[0, 1], [1, 9]]), m.pairwise[:2])
    inf = core().targets.MRF(m.unary, m.edges, m.pairwise)
    inf.unary = m.unary.copy()
    inf.unary[2, 1] = np.inf  # past the constructor's own check
    big, neg = x0.copy(), x0.copy()
    big[2, 4], neg[1, 0] = 3, -1
    return {
        "x0 float": (TypeError, "x0", m, x0.astype(np.float64)),
        "x0 state too large": (IndexError, "x0 states", m, big),
        "x0 state negative": (IndexError, "x0 states", m, neg),
        "x0 wrong N": (ValueError, "x0", m, x0[:, :4]),
        "self-loop": (ValueError, "edges", loop, x0),
        "edge out of range": (IndexError, "edges", far, x0),
        "unary inf": (ValueError, "unary", inf, x0),
    }


@pytest.mark.parametrize("case", list(_mrf_anneal_cases()))
def test_bad_mrf_anneal_inputs(impl, case):
    exc, arg, m, x0 = _mrf_anneal_cases()[case]
    with pytest.raises(exc, match=r"\[kexue\.samplers\.anneal\] " + arg):
        impl.anneal(m, x0, 5)


def test_mrf_target_refuses_bad_arrays():
    t = core().targets
    with pytest.raises(ValueError, match=r"\[kexue\.samplers\.targets\.MRF\] unary"):
        t.MRF(np.zeros((3, 1)), [[0, 1]], np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"\[kexue\.samplers\.targets\.MRF\] edges"):
        t.MRF(np.zeros((3, 2)), [[0.5, 1.0]], np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\[kexue\.samplers\.targets\.MRF\] pairwise"):
        t.MRF(np.zeros((3, 2)), [[0, 1]], np.zeros(2))
