"""kexue.samplers.diagnostics (R-hat, ESS, summary; spec A8) against the spec's
worked numbers, against its plain twin kexue.reference.samplers_diagnostics
(direct autocovariance sums, counted ranks, the stdlib's inverse normal CDF),
against processes whose answer is known (AR(1), iid normal, shifted chains),
and against ArviZ when it is installed. Also the Trace / IsingTrace containers.

Only numpy is needed; the file runs in well under 5 s.
"""
from __future__ import annotations

import doctest
import math
import statistics
import warnings

import numpy as np
import pytest
from kexue.reference import samplers_diagnostics as twin
from kexue.samplers import _trace, diagnostics
from kexue.samplers._trace import IsingTrace, Trace
from kexue.samplers.diagnostics import ess, rhat, summary

ESS_METHODS = ("bulk", "tail", "plain", "split")
RHAT_METHODS = ("rank", "split")


def spec_theta():
    """Spec A8's test array: M=4 chains, N=20 draws, theta[m,n] = sin(0.9n + 1.3m) + 0.25 m n / 20."""
    m, n = np.meshgrid(np.arange(4), np.arange(20), indexing="ij")
    return np.sin(0.9 * n + 1.3 * m) + 0.25 * m * n / 20


def ar1(rng, C, S, phi):
    """C stationary AR(1) chains x_t = phi x_{t-1} + e_t (tau = (1+phi)/(1-phi))."""
    e = rng.normal(size=(C, S))
    x = np.empty((C, S))
    x[:, 0] = e[:, 0] / math.sqrt(1 - phi * phi)
    for t in range(1, S):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def walk(rng, shape):
    """Autocorrelated draws with some chain-to-chain spread (a random walk plus noise)."""
    return 0.3 * rng.normal(size=shape).cumsum(axis=1) + rng.normal(size=shape)


# --------------------------------------------------------------------------- #
# the spec's worked numbers
# --------------------------------------------------------------------------- #
SPEC = [
    (rhat, "split", 1.025987),
    (rhat, "rank", 1.054442),
    (ess, "plain", 38.573181),
    (ess, "split", 38.573181),
    (ess, "bulk", 39.326083),
    (ess, "tail", 45.351724),
]


@pytest.mark.parametrize("impl", ["fast", "twin"])
@pytest.mark.parametrize("fn,method,want", SPEC, ids=[f"{f.__name__}-{m}" for f, m, _ in SPEC])
def test_spec_numbers(impl, fn, method, want):
    f = fn if impl == "fast" else getattr(twin, fn.__name__)
    got = f(spec_theta(), method=method)
    assert isinstance(got, float)
    assert abs(got - want) < 1e-6


def test_defaults_are_rank_rhat_and_bulk_ess():
    th = spec_theta()
    assert rhat(th) == rhat(th, method="rank")
    assert ess(th) == ess(th, method="bulk")


def test_inverse_normal_cdf():
    """Phi^{-1} (AS241, vectorised) against the stdlib and against Phi itself (erfc)."""
    p = np.concatenate([np.linspace(0, 1, 20001)[1:-1], np.logspace(-300, -1, 300),
                        1 - np.logspace(-16, -1, 100), [0.425 + 0.5, 0.5 - 0.425, 0.5]])
    z = diagnostics._ndtri(p)
    nd = statistics.NormalDist()
    want = np.array([nd.inv_cdf(float(v)) for v in p])
    assert np.max(np.abs(z - want) / np.maximum(1.0, np.abs(want))) < 4e-15
    back = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in z])
    assert np.max(np.abs(back - p) / np.minimum(p, 1 - p)) < 1e-12
    assert diagnostics._ndtri(np.array([0.5]))[0] == 0.0


def test_average_ranks():
    v = np.array([3.0, 1.0, 3.0, 2.0, 3.0, -np.inf, 1.0])
    assert diagnostics._rank_average(v).tolist() == [6.0, 2.5, 6.0, 4.0, 6.0, 1.0, 2.5]
    assert twin._ranks(v).tolist() == [6.0, 2.5, 6.0, 4.0, 6.0, 1.0, 2.5]


# --------------------------------------------------------------------------- #
# processes with a known answer
# --------------------------------------------------------------------------- #
def test_ar1_ess_is_draws_over_tau():
    """AR(1) with phi = 0.8: tau = (1 + phi) / (1 - phi) = 9, so ESS ~ C S / 9."""
    C, S = 4, 20000
    x = ar1(np.random.default_rng(0), C, S, 0.8)
    want = C * S / 9
    for method in ("bulk", "plain"):
        assert abs(ess(x, method=method) / want - 1) < 0.10, method
    assert rhat(x) < 1.01


def test_iid_normal():
    C, S = 4, 10000
    x = np.random.default_rng(1).normal(size=(C, S))
    for method in ("bulk", "tail", "plain"):
        assert abs(ess(x, method=method) / (C * S) - 1) < 0.10, method
    assert rhat(x) < 1.01
    assert rhat(x, method="split") < 1.01


def test_antithetic_chains_exceed_the_draw_count():
    """Negatively correlated draws: ESS > C*S, capped by the tau floor 1/log10(M'N')."""
    rng = np.random.default_rng(2)
    x = ar1(rng, 4, 2000, -0.5)
    e = ess(x, method="plain")
    assert 4 * 2000 < e <= 4 * 2000 * math.log10(4 * 2000)


@pytest.mark.parametrize("impl", ["fast", "twin"])
def test_chains_with_different_means_are_flagged(impl):
    mod = diagnostics if impl == "fast" else twin
    x = np.random.default_rng(3).normal(size=(4, 500))
    x[3] += 2.0
    assert mod.rhat(x) > 1.1
    assert mod.rhat(x, method="split") > 1.1


def test_drift_within_chains_is_flagged_by_the_split():
    """One chain drifting from -1 to 1: plain R-hat would miss it, split R-hat does not."""
    x = np.random.default_rng(4).normal(size=(1, 1000)) * 0.1 + np.linspace(-1, 1, 1000)
    assert rhat(x) > 1.5 and rhat(x, method="split") > 1.5


def test_folded_rhat_catches_a_scale_difference():
    """Same location, different scales: the bulk part barely moves, the folded one does."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 1000))
    x[0] *= 3.0
    assert rhat(x, method="split") < 1.01
    assert rhat(x) > 1.05


# --------------------------------------------------------------------------- #
# the twin: same numbers by loops, direct sums and counted ranks
# --------------------------------------------------------------------------- #
TWIN_SHAPES = [(4, 50), (1, 37), (3, 51, 2, 2), (2, 300), (2, 9, 3), (2, 4), (3, 5), (1, 8, 2)]


@pytest.mark.parametrize("shape", TWIN_SHAPES, ids=str)
def test_twin_agrees(shape):
    rng = np.random.default_rng(sum(shape))
    x = walk(rng, shape)
    for method in ESS_METHODS:
        a, b = np.asarray(ess(x, method=method)), np.asarray(twin.ess(x, method=method))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=0, err_msg=method)
    for method in RHAT_METHODS:
        a, b = np.asarray(rhat(x, method=method)), np.asarray(twin.rhat(x, method=method))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=0, err_msg=method)
    assert summary(x) == twin.summary(x)


def test_twin_agrees_on_ties_and_infinities():
    rng = np.random.default_rng(6)
    ties = rng.poisson(1.5, size=(3, 60, 2)).astype(np.int64)  # integer draws, many ties
    binary = (rng.random((4, 40)) < 0.97).astype(np.float64)     # a tail indicator is constant
    inf = rng.normal(size=(2, 40))
    inf[0, 3], inf[1, 7] = np.inf, -np.inf
    for x in (ties, binary, inf):
        for method in ESS_METHODS:
            np.testing.assert_allclose(np.asarray(ess(x, method=method)),
                                       np.asarray(twin.ess(x, method=method)), rtol=1e-10, equal_nan=True)
        for method in RHAT_METHODS:
            np.testing.assert_allclose(np.asarray(rhat(x, method=method)),
                                       np.asarray(twin.rhat(x, method=method)), rtol=1e-10, equal_nan=True)
    # rank methods see only the order: +-inf draws are fine
    assert np.isfinite(ess(inf)) and np.isfinite(rhat(inf)) and np.isfinite(ess(inf, method="tail"))
    # ArviZ's rule for a constant indicator (q95 = 1 when > 95% of the draws are 1): ESS = its size
    q05, q95 = np.quantile(binary, [0.05, 0.95])
    assert q95 == 1.0
    low = diagnostics._ess_core(diagnostics._split((binary <= q05).astype(np.float64)[..., None]))[0]
    assert ess(binary, method="tail") == min(low, binary.size)


# --------------------------------------------------------------------------- #
# shapes and special inputs
# --------------------------------------------------------------------------- #
def test_trailing_dims_are_independent_columns():
    x = walk(np.random.default_rng(7), (3, 40, 2, 3))
    for fn, methods in ((ess, ESS_METHODS), (rhat, RHAT_METHODS)):
        for method in methods:
            out = fn(x, method=method)
            assert out.shape == (2, 3) and out.dtype == np.float64
            for i in range(2):
                for j in range(3):
                    assert out[i, j] == pytest.approx(fn(x[:, :, i, j], method=method), rel=1e-12)  # FFT batching: ulps
    one = ess(x[:, :, :1, 0])
    assert isinstance(one, np.ndarray) and one.shape == (1,)
    assert isinstance(ess(x[:, :, 0, 0]), float) and isinstance(rhat(x[:, :, 0, 0]), float)


def test_one_chain_is_split_in_two():
    rng = np.random.default_rng(8)
    x = walk(rng, (1, 200))
    halves = x.reshape(2, 100)  # what the split makes of it
    N = 100
    B = N * np.var(halves.mean(axis=1), ddof=1)
    W = np.mean(np.var(halves, axis=1, ddof=1))
    assert rhat(x, method="split") == pytest.approx(math.sqrt((B / W + N - 1) / N), rel=1e-12)
    assert np.isfinite(rhat(x)) and np.isfinite(ess(x)) and np.isfinite(ess(x, method="tail"))
    # an odd draw count drops the middle draw
    y = np.concatenate([x[:, :100], [[1e6]], x[:, 100:]], axis=1)
    for method in ("split", "plain", "bulk"):
        f = rhat if method == "split" else ess
        assert f(y, method=method) == pytest.approx(f(x, method=method), rel=1e-12)


def test_constant_input_is_nan():
    """A constant parameter has no R-hat or ESS: NaN (Stan/posterior; ArviZ gives NaN for R-hat
    but the draw count for ESS -- documented in the module)."""
    c = np.full((3, 10), 2.5)
    for method in ESS_METHODS:
        assert math.isnan(ess(c, method=method)) and math.isnan(twin.ess(c, method=method))
    for method in RHAT_METHODS:
        assert math.isnan(rhat(c, method=method)) and math.isnan(twin.rhat(c, method=method))
    x = np.random.default_rng(9).normal(size=(3, 10, 3))
    x[:, :, 1] = -1.0
    e, r = ess(x), rhat(x)
    assert math.isnan(e[1]) and math.isnan(r[1])
    assert np.isfinite(e[[0, 2]]).all() and np.isfinite(r[[0, 2]]).all()
    assert summary(x).splitlines()[2].split()[-3:] == ["nan", "nan", "nan"]


def test_constant_chains_at_different_values():
    """Each chain stuck at its own value: W = 0, so R-hat is inf (no warning escapes)."""
    x = np.repeat(np.arange(3.0)[:, None], 10, axis=1)
    assert rhat(x) == math.inf and rhat(x, method="split") == math.inf
    assert ess(x) == twin.ess(x) and 0 < ess(x) < 30


def test_nan_gives_nan_for_that_index_only():
    x = np.random.default_rng(10).normal(size=(4, 30, 3))
    x[2, 5, 1] = np.nan
    for fn, methods in ((ess, ESS_METHODS), (rhat, RHAT_METHODS)):
        for method in methods:
            out = fn(x, method=method)
            assert math.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()
    assert math.isnan(ess(x[:, :, 1]))


def test_input_is_not_modified_and_dtypes_accepted():
    x = walk(np.random.default_rng(11), (2, 30))
    before = x.copy()
    ess(x), rhat(x), summary(x)
    assert np.array_equal(x, before)
    assert ess(x.astype(np.float32)) == pytest.approx(ess(x.astype(np.float32).astype(np.float64)))
    assert ess(x.tolist()) == ess(x)
    assert np.isfinite(ess(np.asarray(x > 0)))           # bool draws (indicators)
    assert ess(np.asfortranarray(x)) == ess(x)
    assert ess(x[:, ::2]) == ess(np.ascontiguousarray(x[:, ::2]))


def test_rank_methods_are_invariant_to_monotone_maps():
    x = np.random.default_rng(12).poisson(3, size=(4, 80)).astype(np.float64)  # with ties
    y = x ** 3 + 2 * x - 7
    assert ess(x) == ess(y)
    assert ess(x, method="tail") == ess(y, method="tail")
    # the bulk half of rank R-hat too (the folded half is not: |x - median| is not monotone in x)
    assert diagnostics._rhat_core(diagnostics._z_scale(diagnostics._split(x[..., None]))) == \
        diagnostics._rhat_core(diagnostics._z_scale(diagnostics._split(y[..., None])))


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
BAD = [
    (np.zeros(10), ValueError, r"\] x must have shape \[C, S\] or \[C, S, \.\.\.\]"),
    (np.float64(1.0), ValueError, r"\] x must have shape"),
    (np.zeros((4, 3)), ValueError, r"\] x must have at least 4 draws per chain \(axis 1\); got S = 3"),
    (np.zeros((0, 10)), ValueError, r"\] x must have at least 1 chain"),
    (np.array([["a", "b", "c", "d"]]), TypeError, r"\] x must be a real numeric array; got dtype <U1"),
    (np.zeros((2, 8), dtype=complex), TypeError, r"\] x must be a real numeric array; got dtype complex128"),
    (np.array([[1.0, None, 2.0, 3.0]], dtype=object), TypeError, r"\] x must be a real numeric array"),
    ([[1.0, 2.0], [3.0]], TypeError, r"\] x must be a real numeric array"),
]


@pytest.mark.parametrize("fn", [ess, rhat], ids=lambda f: f.__name__)
@pytest.mark.parametrize("x,exc,msg", BAD, ids=range(len(BAD)))
def test_bad_x(fn, x, exc, msg):
    with pytest.raises(exc, match=r"^\[kexue\.samplers\." + fn.__name__ + msg):
        fn(x)


def test_bad_arguments():
    x = np.zeros((2, 10)) + np.arange(10)
    with pytest.raises(ValueError, match=r"^\[kexue\.samplers\.ess\] method must be one of 'bulk', 'tail', 'plain', 'split'; got 'mean'"):
        ess(x, method="mean")
    with pytest.raises(ValueError, match=r"^\[kexue\.samplers\.rhat\] method must be one of 'rank', 'split'; got 'bulk'"):
        rhat(x, method="bulk")
    with pytest.raises(TypeError, match=r"^\[kexue\.samplers\.rhat\] method must be a str"):
        rhat(x, method=1)
    with pytest.raises(TypeError):
        ess(x, "bulk")  # method is keyword-only
    with pytest.raises(ValueError, match=r"^\[kexue\.samplers\.summary\] samples must have at least 4 draws"):
        summary(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^\[kexue\.samplers\.summary\] names must have one label per trailing index \(1\); got 2"):
        summary(x, names=["a", "b"])
    with pytest.raises(TypeError, match=r"^\[kexue\.samplers\.summary\] names must be a sequence of str"):
        summary(x, names="a")
    with pytest.raises(ValueError, match=r"^\[kexue\.samplers\.summary\] quantiles must be in \[0, 1\]"):
        summary(x, quantiles=(0.5, 1.5))
    with pytest.raises(TypeError, match=r"^\[kexue\.samplers\.summary\] quantiles must be a sequence of floats"):
        summary(x, quantiles=("low",))


# --------------------------------------------------------------------------- #
# summary and the trace containers
# --------------------------------------------------------------------------- #
def test_summary_table():
    x = walk(np.random.default_rng(13), (4, 100, 3))
    lines = summary(x, names=["a", "bb", "c[0]"], quantiles=(0.025, 0.5, 0.975)).splitlines()
    assert lines[0].split() == ["mean", "sd", "2.5%", "50%", "97.5%", "ess_bulk", "ess_tail", "r_hat"]
    assert len(lines) == 4 and len({len(s) for s in lines}) <= 2
    flat = x.reshape(400, 3)
    eb, et, rh = ess(x), ess(x, method="tail"), rhat(x)
    for k, line in enumerate(lines[1:]):
        cells = line.split()
        assert cells[0] == ["a", "bb", "c[0]"][k]
        assert float(cells[1]) == pytest.approx(flat[:, k].mean(), abs=6e-4)
        assert float(cells[2]) == pytest.approx(flat[:, k].std(ddof=1), abs=6e-4)
        assert float(cells[3]) == pytest.approx(np.quantile(flat[:, k], 0.025), abs=6e-4)
        assert cells[6:] == [f"{eb[k]:.0f}", f"{et[k]:.0f}", f"{rh[k]:.3f}"]
    assert summary(x[:, :, 0]).splitlines()[1].split()[0] == "x"
    assert [s.split()[0] for s in summary(x[..., None]).splitlines()[1:]] == ["x[0,0]", "x[1,0]", "x[2,0]"]


def test_trace():
    rng = np.random.default_rng(14)
    samples = walk(rng, (4, 200, 3))
    tr = Trace(samples=samples, logp=rng.normal(size=(4, 200)), accept_rate=np.array([0.2, 0.3, 0.25, 0.25]),
               step_size=np.ones(4))
    assert repr(tr) == "Trace(samples=[4, 200, 3], logp=[4, 200], mean accept_rate=0.250)"
    assert tr.ess().shape == (3,) and np.array_equal(tr.ess(), ess(samples))
    assert np.array_equal(tr.rhat(), rhat(samples))
    assert np.array_equal(tr.ess("tail"), ess(samples, method="tail"))
    assert tr.summary() == summary(samples)
    assert tr.summary(names=["u", "v", "w"]).splitlines()[3].split()[0] == "w"
    assert "arviz.from_dict" in Trace.__doc__


def test_ising_trace():
    rng = np.random.default_rng(15)
    tr = IsingTrace(spins=np.ones((2, 4, 6), np.int8), magnetization=walk(rng, (2, 50)), energy=walk(rng, (2, 50)))
    assert repr(tr) == "IsingTrace(spins=[2, 4, 6] int8, magnetization=[2, 50], energy=[2, 50])"
    assert tr.ess() == {"energy": ess(tr.energy), "magnetization": ess(tr.magnetization)}
    assert tr.rhat() == {"energy": rhat(tr.energy), "magnetization": rhat(tr.magnetization)}
    frozen = IsingTrace(spins=np.ones((2, 4, 4), np.int8), magnetization=np.ones((2, 10)), energy=np.full((2, 10), -2.0))
    assert all(math.isnan(v) for v in frozen.rhat().values())


@pytest.mark.parametrize("module", [diagnostics, _trace, twin], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module)
    assert sum(len(t.examples) for t in tests) >= 3
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) of {module.__name__} failed"


# --------------------------------------------------------------------------- #
# ArviZ, when installed (the issue: equal within 1%)
# --------------------------------------------------------------------------- #
def test_against_arviz():
    with warnings.catch_warnings():  # arviz's own import-time deprecations are not ours
        warnings.simplefilter("ignore")
        az = pytest.importorskip("arviz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compare_with_arviz(az)


def _compare_with_arviz(az):
    rng = np.random.default_rng(16)
    for shape in [(4, 100), (2, 501), (3, 64)]:
        x = walk(rng, shape)
        for ours, theirs in (("bulk", "bulk"), ("tail", "tail"), ("plain", "mean")):
            want = float(np.asarray(az.ess(x, method=theirs)))
            assert ess(x, method=ours) == pytest.approx(want, rel=1e-2), (shape, ours)
        for method in RHAT_METHODS:
            want = float(np.asarray(az.rhat(x, method=method)))
            assert rhat(x, method=method) == pytest.approx(want, rel=1e-2), (shape, method)
    th = spec_theta()
    assert float(np.asarray(az.rhat(th))) == pytest.approx(rhat(th), rel=1e-9)
