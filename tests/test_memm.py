"""Oracles for kexue.memm (Su's MEMM and Bi-MEMM): the spec's worked numbers,
brute-force enumeration of every path, finite differences, identities between
the dense, low-rank, bidirectional and crf_style forms, and properties.

Every test runs twice through the ``impl`` fixture: on the compiled core
(``kexue.memm``) and on its numpy twin
(``kexue.reference.memm``).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kexue.crf as core_crf
import kexue.memm as core_memm
from kexue.reference import crf as ref_crf
from kexue.reference import memm as ref
from kexue.testing import assert_close

NEG_INF = -np.inf


def _core():
    return core_memm, core_crf


@pytest.fixture(scope="module", params=["core", "reference"])
def impls(request):
    """(memm module, the crf module of the same implementation)."""
    return (ref, ref_crf) if request.param == "reference" else _core()


@pytest.fixture(scope="module")
def impl(impls):
    return impls[0]


def assert_6dp(actual, expected):
    """The spec's worked numbers are rounded to 6 decimals."""
    assert_close(np.asarray(actual, dtype=np.float64), expected, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------
# spec §2.6 worked example: the CRF example's h, G = A, gold (0, 1, 1)

H = np.array([[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]])
G = np.array([[0.4, -0.2], [0.1, 0.6]])
GOLD = np.array([0, 1, 1])
LEFT = np.array([[0.5, -0.2], [0.3, 0.8]])
RIGHT = np.array([[0.6, 0.1], [-0.4, 0.7]])

WORKED = {  # alpha: (forward per-token CE, backward per-token CE, MAP 3-best paths, their log p)
    0.5: ([0.474077, 0.533382, 0.718460], [0.770957, 0.300058, 1.037488],
          [[0, 1, 0], [0, 1, 1], [0, 0, 0]], [-1.675919, -1.725919, -1.794947]),
    1.0: ([0.474077, 0.403186, 0.744397], [0.854355, 0.115520, 1.037488],
          [[0, 1, 0], [0, 1, 1], [1, 1, 0]], [-1.521660, -1.621660, -1.771451]),
}
WORKED_MEANS = {0.5: (0.575306, 0.702834, 0.639070), 1.0: (0.540553, 0.669121, 0.604837)}


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_worked_losses(impl, alpha):
    fwd_ce, bwd_ce, _, _ = WORKED[alpha]
    fwd_mean, bwd_mean, bi_mean = WORKED_MEANS[alpha]
    h, y = np.repeat(H[None], 4, axis=0), np.repeat(GOLD[None], 4, axis=0)
    ll = impl.log_likelihood(H[None], GOLD[None], G, alpha=alpha)
    bi = impl.log_likelihood(H[None], GOLD[None], G, alpha=alpha, bidirectional=True)
    assert_6dp(-ll / 3, [fwd_mean])
    assert_6dp(-bi / 3, [bi_mean])
    assert_6dp(-(2 * bi - ll) / 3, [bwd_mean])
    # forward per-token CE: differences of the log-likelihoods of prefixes of length 0..3
    prefixes = np.arange(3)[None, :] < np.arange(4)[:, None]
    ll_prefix = impl.log_likelihood(h, y, G, mask=prefixes, alpha=alpha)
    assert_6dp(-np.diff(ll_prefix), fwd_ce)
    # backward per-token CE: differences over suffixes (backward ll = 2 * bi - forward ll)
    suffixes = np.arange(3)[None, :] >= np.arange(4)[:, None]
    fwd_s = impl.log_likelihood(h, y, G, mask=suffixes, alpha=alpha)
    bi_s = impl.log_likelihood(h, y, G, mask=suffixes, alpha=alpha, bidirectional=True)
    assert_6dp(np.diff(2 * bi_s - fwd_s), bwd_ce)
    # nll_grad's loss is the same number
    assert_6dp(impl.nll_grad(H[None], GOLD[None], G, alpha=alpha).loss, -ll)
    assert_6dp(impl.nll_grad(H[None], GOLD[None], G, alpha=alpha, bidirectional=True).loss, -bi)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_worked_decoding(impl, alpha):
    _, _, best3, logp3 = WORKED[alpha]
    path, score = impl.viterbi(H[None], G, alpha=alpha)
    assert path.dtype == np.int64 and path.tolist() == [best3[0]]
    assert_6dp(score, logp3[:1])
    paths, scores = impl.nbest(H[None], G, 3, alpha=alpha)
    assert paths[0].tolist() == best3
    assert_6dp(scores[0], logp3)
    # the gold path (0,1,1) is second: its log p is the log-likelihood
    assert_6dp(impl.log_likelihood(H[None], GOLD[None], G, alpha=alpha), logp3[1:2])
    # bert4keras decoding ignores alpha and the normalisers: the CRF answer (1,1,0), 3.6
    path, score = impl.viterbi(H[None], G, alpha=alpha, mode="crf_style")
    assert path.tolist() == [[1, 1, 0]]
    assert_6dp(score, [3.6])


def test_worked_low_rank(impl):
    dense = np.array([[0.28, -0.34], [0.26, 0.44]])
    assert_6dp(LEFT @ RIGHT.T, dense)
    for alpha in (0.5, 1.0):
        for bi in (False, True):
            assert_close(
                impl.log_likelihood(H[None], GOLD[None], factors=(LEFT, RIGHT), alpha=alpha,
                                    bidirectional=bi),
                impl.log_likelihood(H[None], GOLD[None], dense, alpha=alpha, bidirectional=bi))


# ----------------------------------------------------------------------------
# brute force: every one of the K^L paths


def _triple(allowed, K):
    if allowed is None:
        parts = (None, None, None)
    elif isinstance(allowed, tuple):
        parts = allowed
    else:
        parts = (allowed, None, None)
    a, a_start, a_end = parts
    return (np.ones((K, K), bool) if a is None else a,
            np.ones(K, bool) if a_start is None else a_start,
            np.ones(K, bool) if a_end is None else a_end)


def _log_softmax_at(z, k):
    if z[k] == NEG_INF:
        return NEG_INF
    return float(z[k] - np.logaddexp.reduce(z))


def memm_logp(h, path, g, alpha, allowed):
    """log p(path) under the left-to-right model, straight from spec §2.1 / the contract."""
    K = h.shape[1]
    a, a_start, a_end = _triple(allowed, K)
    log = lambda x: np.where(x, 0.0, NEG_INF)  # noqa: E731
    total = _log_softmax_at(h[0] + log(a_start), path[0])
    for t in range(1, len(path)):
        prev = path[t - 1]
        total += _log_softmax_at(alpha * (h[t] + g[prev]) + log(a[prev]), path[t])
    return total + (0.0 if a_end[path[-1]] else NEG_INF)


def memm_brute(h, g, alpha, allowed):
    """{path: log p(path)} of one compacted row, L >= 1."""
    L, K = h.shape
    return {path: memm_logp(h, path, g, alpha, allowed)
            for path in itertools.product(range(K), repeat=L)}


def reverse_allowed(allowed, K):
    a, a_start, a_end = _triple(allowed, K)
    return a.T, a_end, a_start


def make_problem(rng, B, T, K, *, low_rank, constraints, mask_kind, alpha):
    p = {
        "emissions": rng.normal(size=(B, T, K)) * 1.5,
        "tags": rng.integers(0, K, size=(B, T)),
        "alpha": alpha,
        "mask": None,
        "allowed": None,
    }
    if low_rank:
        p["factors"] = (rng.normal(size=(K, 2)), rng.normal(size=(K, 2)))
        p["G"] = p["factors"][0] @ p["factors"][1].T
    else:
        p["factors"] = None
        p["G"] = rng.normal(size=(K, K))
    if mask_kind == "random":
        p["mask"] = rng.random((B, T)) < 0.7
        p["mask"][0] = True
    if constraints == "matrix":
        p["allowed"] = rng.random((K, K)) < 0.7
    elif constraints == "triple":
        matrix = rng.random((K, K)) < 0.7 if rng.random() < 0.7 else None
        p["allowed"] = (matrix, rng.random(K) < 0.8, rng.random(K) < 0.8)
    return p


def g_args(p):
    """(transitions, factors keyword) of a problem: dense or low-rank."""
    if p["factors"] is None:
        return p["G"], {}
    return None, {"factors": p["factors"]}


def kw(p):
    return {"mask": p["mask"], "allowed": p["allowed"], "alpha": p["alpha"]}


def _brute_rows(p):
    h = p["emissions"]
    B, T, _ = h.shape
    for b in range(B):
        idx = np.arange(T) if p["mask"] is None else np.flatnonzero(p["mask"][b])
        if idx.size == 0:
            yield b, idx, None
        else:
            yield b, idx, memm_brute(h[b, idx], p["G"], p["alpha"], p["allowed"])


def _cases():
    rng = np.random.default_rng(20240602)
    variants = {
        "dense_half": {"low_rank": False, "constraints": "none", "mask_kind": "none", "alpha": 0.5},
        "dense_triple": {"low_rank": False, "constraints": "triple", "mask_kind": "random",
                         "alpha": 1.0},
        "lowrank": {"low_rank": True, "constraints": "none", "mask_kind": "random", "alpha": 1.0},
        "lowrank_matrix": {"low_rank": True, "constraints": "matrix", "mask_kind": "random",
                           "alpha": 0.7},
    }
    return [pytest.param(make_problem(rng, 3, T, K, **v), id=f"K{K}-T{T}-{name}")
            for K in (1, 2, 3) for T in (0, 1, 2, 3, 4) for name, v in variants.items()]


CASES = _cases()


@pytest.mark.parametrize("p", CASES)
def test_brute_log_likelihood(impl, p):
    h, tags = p["emissions"], p["tags"]
    trans, fkw = g_args(p)
    ll = impl.log_likelihood(h, tags, trans, **fkw, **kw(p))
    bi = impl.log_likelihood(h, tags, trans, **fkw, **kw(p), bidirectional=True)
    loss = impl.nll_grad(h, tags, trans, **fkw, **kw(p)).loss
    assert ll.dtype == np.float64
    K = h.shape[2]
    for b, idx, brute in _brute_rows(p):
        if brute is None:
            assert ll[b] == 0 and bi[b] == 0 and loss[b] == 0
            continue
        y = tuple(tags[b, idx])
        want = brute[y]
        back = memm_logp(h[b, idx][::-1], y[::-1], p["G"].T, p["alpha"],
                         reverse_allowed(p["allowed"], K))
        assert_close(ll[b], want)
        assert_close(loss[b], -want)
        assert_close(bi[b], 0.5 * (want + back))


@pytest.mark.parametrize("p", CASES)
def test_brute_viterbi_nbest(impl, p):
    h = p["emissions"]
    B, T, K = h.shape
    trans, fkw = g_args(p)
    vpaths, vscores = impl.viterbi(h, trans, **fkw, **kw(p))
    k = K**T + 2  # every path, and two slots more than there are
    paths, scores = impl.nbest(h, trans, k, **fkw, **kw(p))
    assert np.array_equal(paths[:, 0], vpaths)
    assert_close(scores[:, 0], vscores)
    for b, idx, brute in _brute_rows(p):
        masked = np.setdiff1d(np.arange(T), idx)
        assert np.all(vpaths[b, masked] == -1) and np.all(paths[b][:, masked] == -1)
        if brute is None:
            assert vscores[b] == 0 and scores[b, 0] == 0 and np.all(np.isneginf(scores[b, 1:]))
            assert np.all(paths[b] == -1)
            continue
        ranked = sorted((v for v in brute.values() if v != NEG_INF), reverse=True)
        if not ranked:
            assert vscores[b] == NEG_INF and np.all(vpaths[b] == -1)
            assert np.all(np.isneginf(scores[b])) and np.all(paths[b] == -1)
            continue
        # MAP
        assert_close(vscores[b], ranked[0])
        assert_close(brute[tuple(vpaths[b, idx])], ranked[0])
        # full ranking
        n = len(ranked)
        assert_close(scores[b, :n], np.array(ranked))
        assert np.all(np.isneginf(scores[b, n:])) and np.all(paths[b, n:] == -1)
        got = [tuple(paths[b, r, idx]) for r in range(n)]
        assert len(set(got)) == n, "a path is returned twice"
        for r, path in enumerate(got):
            assert_close(brute[path], scores[b, r])  # each path carries its own score
            same = [q for q, v in brute.items() if abs(v - ranked[r]) < 1e-9]
            if len(same) == 1:
                assert path == same[0]


@pytest.mark.parametrize("p", CASES)
def test_brute_marginals(impl, p):
    """Posterior marginals: sum over the possible paths (log p > -inf), normalised."""
    h = p["emissions"]
    trans, fkw = g_args(p)
    mu = impl.marginals(h, trans, **fkw, **kw(p))
    want = np.zeros_like(h)
    for b, idx, brute in _brute_rows(p):
        possible = {q: v for q, v in ({} if brute is None else brute).items() if v != NEG_INF}
        if not possible:
            continue
        logz = np.logaddexp.reduce(list(possible.values()))
        for path, v in possible.items():
            want[b, idx, list(path)] += np.exp(v - logz)
    assert_close(mu, want)


def test_marginals_condition_on_possible_paths(impl):
    """Tag 1 has no allowed successor, so a path can only visit it last. Posterior
    marginals renormalise over the possible paths, and an allowed_end that allows
    every tag changes nothing."""
    h = np.array([[[0.3, -0.2], [0.5, 0.1], [0.2, 0.4]]])
    g = np.array([[0.1, 0.2], [0.3, -0.1]])
    dead_end = np.array([[True, True], [False, False]])
    mu = impl.marginals(h, g, allowed=dead_end)
    assert_close(mu, impl.marginals(h, g, allowed=(dead_end, None, np.array([True, True]))))
    # only (0,0,0) and (0,0,1) are possible
    paths, scores = impl.nbest(h, g, 4, allowed=dead_end)
    assert paths[0, :2].tolist() == [[0, 0, 1], [0, 0, 0]] and np.all(np.isneginf(scores[0, 2:]))
    p001 = np.exp(scores[0, 0] - np.logaddexp(scores[0, 0], scores[0, 1]))
    assert_close(mu[0], [[1, 0], [1, 0], [1 - p001, p001]])


# ----------------------------------------------------------------------------
# identities: low-rank == dense, crf_style == crf.viterbi, Bi == fwd + reversed fwd


def _random(seed, B=3, T=5, K=3, d=2):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(B, T, K))
    tags = rng.integers(0, K, size=(B, T))
    mask = rng.random((B, T)) < 0.75
    mask[0] = True
    mask[1, :2] = [False, True]
    left, right = rng.normal(size=(K, d)), rng.normal(size=(K, d))
    allowed = (rng.random((K, K)) < 0.7, rng.random(K) < 0.8, rng.random(K) < 0.8)
    return h, tags, mask, left, right, allowed


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("with_allowed", [False, True], ids=["free", "allowed"])
def test_low_rank_equals_dense(impl, alpha, with_allowed):
    h, tags, mask, left, right, allowed = _random(31)
    g = left @ right.T
    kw_ = {"mask": mask, "alpha": alpha, "allowed": allowed if with_allowed else None}
    lr = {"factors": (left, right)}
    for bi in (False, True):
        assert_close(impl.log_likelihood(h, tags, **lr, **kw_, bidirectional=bi),
                     impl.log_likelihood(h, tags, g, **kw_, bidirectional=bi))
        got = impl.nll_grad(h, tags, **lr, **kw_, bidirectional=bi)
        want = impl.nll_grad(h, tags, g, **kw_, bidirectional=bi)
        assert got.d_transitions is None and want.d_factors is None
        assert_close(got.loss, want.loss)
        assert_close(got.d_emissions, want.d_emissions)
        d_left, d_right = got.d_factors
        assert_close(d_left, want.d_transitions @ right)  # dG/dL: dG R
        assert_close(d_right, want.d_transitions.T @ left)  # dG/dR: dG^T L
    for mode in ("map", "crf_style"):
        want = impl.viterbi(h, g, **kw_, mode=mode)
        for x, y in zip(impl.viterbi(h, **lr, **kw_, mode=mode), want):
            assert_close(x, y)
    for x, y in zip(impl.nbest(h, None, 4, **lr, **kw_), impl.nbest(h, g, 4, **kw_)):
        assert_close(x, y)
    assert_close(impl.marginals(h, **lr, **kw_), impl.marginals(h, g, **kw_))


def test_crf_style_is_crf_viterbi(impls):
    memm, crf = impls
    h, _, mask, left, right, allowed = _random(32)
    g = left @ right.T
    for a in (None, allowed[0], allowed):
        want = crf.viterbi(h, g, mask=mask, allowed=a)
        for alpha in (0.3, 1.0):  # alpha is ignored
            for x, y in zip(memm.viterbi(h, g, mask=mask, allowed=a, alpha=alpha,
                                         mode="crf_style"), want):
                assert_close(x, y)
        for x, y in zip(memm.viterbi(h, factors=(left, right), mask=mask, allowed=a,
                                     mode="crf_style"), want):
            assert_close(x, y)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_bidirectional_is_mean_of_forward_and_reversed(impl, alpha):
    """Bi-MEMM = 0.5 * (forward + forward on each row reversed, with G.T, allowed.T
    and allowed_start / allowed_end swapped). Reversing the whole padded row
    reverses its valid steps, whatever the mask."""
    h, tags, mask, left, right, allowed = _random(33)
    g = left @ right.T
    K = h.shape[2]
    for a in (None, allowed):
        fwd = {"mask": mask, "allowed": a, "alpha": alpha}
        rev = {"mask": mask[:, ::-1], "allowed": None if a is None else reverse_allowed(a, K),
               "alpha": alpha}
        hr, yr = h[:, ::-1], tags[:, ::-1]
        bi = impl.log_likelihood(h, tags, g, **fwd, bidirectional=True)
        assert_close(bi, 0.5 * (impl.log_likelihood(h, tags, g, **fwd)
                                + impl.log_likelihood(hr, yr, g.T, **rev)))
        gb = impl.nll_grad(h, tags, g, **fwd, bidirectional=True)
        gf = impl.nll_grad(h, tags, g, **fwd)
        gr = impl.nll_grad(hr, yr, g.T, **rev)
        ok = np.isfinite(gf.loss) & np.isfinite(gr.loss)  # rows with -inf contribute nothing
        assert_close(gb.loss, 0.5 * (gf.loss + gr.loss))
        assert_close(gb.d_emissions[ok], 0.5 * (gf.d_emissions + gr.d_emissions[:, ::-1])[ok])
        assert np.all(gb.d_emissions[~ok] == 0)
        if ok.all():
            assert_close(gb.d_transitions, 0.5 * (gf.d_transitions + gr.d_transitions.T))


# ----------------------------------------------------------------------------
# gradients against central finite differences of the reference log-likelihood


def _finite_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["fwd", "bi"])
@pytest.mark.parametrize("low_rank", [False, True], ids=["dense", "factors"])
def test_nll_grad_finite_differences(impl, low_rank, bidirectional, alpha):
    rng = np.random.default_rng(41 + 4 * low_rank + 2 * bidirectional + int(alpha == 1.0))
    B, T, K, d = 3, 4, 3, 2
    h = rng.normal(size=(B, T, K))
    tags = rng.integers(0, K, size=(B, T))
    mask = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 0, 0]], dtype=bool)
    a, a_s, a_e = rng.random((K, K)) < 0.5, rng.random(K) < 0.5, rng.random(K) < 0.5
    for b in range(B):  # constraints that the gold paths obey
        y = tags[b, mask[b]]
        a[y[:-1], y[1:]] = True
        a_s[y[0]] = a_e[y[-1]] = True
    kw_ = {"mask": mask, "allowed": (a, a_s, a_e), "alpha": alpha, "bidirectional": bidirectional}
    left, right = rng.normal(size=(K, d)), rng.normal(size=(K, d))
    g = rng.normal(size=(K, K))
    if low_rank:
        args, fkw, params = (None,), {"factors": (left, right)}, (left, right)
    else:
        args, fkw, params = (g,), {}, (g,)

    def loss():
        return -ref.log_likelihood(h, tags, *args, **fkw, **kw_).sum()

    got = impl.nll_grad(h, tags, *args, **fkw, **kw_)
    assert np.all(np.isfinite(got.loss))
    assert_close(got.loss.sum(), loss())
    d_params = got.d_factors if low_rank else (got.d_transitions,)
    assert (got.d_transitions is None) == low_rank and (got.d_factors is None) != low_rank
    for d_x, x in zip((got.d_emissions,) + tuple(d_params), (h,) + params):
        assert_close(d_x, _finite_difference(loss, x), rtol=1e-6, atol=1e-8)
    assert np.all(got.d_emissions[~mask] == 0)


def test_impossible_rows_contribute_no_gradient(impl):
    rng = np.random.default_rng(43)
    h = rng.normal(size=(3, 4, 3))
    g = rng.normal(size=(3, 3))
    allowed = (np.ones((3, 3), bool), None, np.array([True, True, False]))
    tags = np.array([[0, 1, 2, 0], [1, 1, 0, 2], [0, 0, 0, 0]])  # row 1 ends in a forbidden tag
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    for bi in (False, True):
        got = impl.nll_grad(h, tags, g, mask=mask, allowed=allowed, bidirectional=bi)
        assert got.loss[1] == np.inf and got.loss[2] == 0 and np.isfinite(got.loss[0])
        assert np.all(got.d_emissions[1:] == 0)
        one = impl.nll_grad(h[:1], tags[:1], g, mask=mask[:1], allowed=allowed, bidirectional=bi)
        assert_close(got.d_transitions, one.d_transitions)
        assert impl.log_likelihood(h, tags, g, mask=mask, allowed=allowed,
                                   bidirectional=bi)[1] == NEG_INF


# ----------------------------------------------------------------------------
# arguments the contract names


def test_argument_errors(impl):
    h, y = H[None], GOLD[None]
    with pytest.raises(ValueError, match="factors|transitions"):
        impl.log_likelihood(h, y)
    with pytest.raises(ValueError, match="factors|transitions"):
        impl.log_likelihood(h, y, G, factors=(LEFT, RIGHT))
    for alpha in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="alpha"):
            impl.log_likelihood(h, y, G, alpha=alpha)
    with pytest.raises(ValueError, match="mode"):
        impl.viterbi(h, G, mode="greedy")
    with pytest.raises(ValueError, match="k"):
        impl.nbest(h, G, 0)


# ----------------------------------------------------------------------------
# properties (hypothesis)


@st.composite
def problems(draw, constraints=None):
    B = draw(st.integers(1, 3))
    T = draw(st.integers(0, 5))
    K = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return make_problem(
        rng, B, T, K,
        low_rank=draw(st.booleans()),
        constraints=constraints or draw(st.sampled_from(["none", "matrix", "triple"])),
        mask_kind=draw(st.sampled_from(["none", "random"])),
        alpha=draw(st.sampled_from([0.5, 1.0, 2.0])),
    )


PROPERTY = settings(max_examples=30, deadline=None)


@PROPERTY
@given(p=problems(), bidirectional=st.booleans())
def test_prop_log_likelihood_at_most_zero(impl, p, bidirectional):
    trans, fkw = g_args(p)
    ll = impl.log_likelihood(p["emissions"], p["tags"], trans, **fkw, **kw(p),
                             bidirectional=bidirectional)
    assert np.all(ll <= 1e-9)


@PROPERTY
@given(p=problems())
def test_prop_marginals_sum_to_one(impl, p):
    h = p["emissions"]
    trans, fkw = g_args(p)
    mu = impl.marginals(h, trans, **fkw, **kw(p))
    _, vscores = impl.viterbi(h, trans, **fkw, **kw(p))
    mask = np.ones(h.shape[:2], bool) if p["mask"] is None else p["mask"]
    assert np.all(mu >= 0) and np.all(mu <= 1 + 1e-12)
    assert np.all(mu[~mask] == 0)
    sums = mu.sum(-1)
    for b in range(h.shape[0]):
        want = 1.0 if np.isfinite(vscores[b]) else 0.0  # some path possible
        assert_close(sums[b, mask[b]], np.full(mask[b].sum(), want))


@PROPERTY
@given(p=problems(), k=st.integers(1, 4))
def test_prop_nbest_first_is_viterbi(impl, p, k):
    trans, fkw = g_args(p)
    paths, scores = impl.nbest(p["emissions"], trans, k, **fkw, **kw(p))
    vpaths, vscores = impl.viterbi(p["emissions"], trans, **fkw, **kw(p))
    assert np.array_equal(paths[:, 0], vpaths)
    assert_close(scores[:, 0], vscores)
    assert np.all(scores[:, :-1] >= scores[:, 1:])  # best first
    assert np.all(scores <= 1e-9)  # log-probabilities


def _obeys(path, allowed, K):
    a, a_start, a_end = _triple(allowed, K)
    y = path[path >= 0]
    if y.size == 0:
        return True
    return bool(a_start[y[0]] and a_end[y[-1]] and np.all(a[y[:-1], y[1:]]))


@PROPERTY
@given(p=problems(constraints="triple"), mode=st.sampled_from(["map", "crf_style"]))
def test_prop_decoded_paths_obey_constraints(impl, p, mode):
    h = p["emissions"]
    trans, fkw = g_args(p)
    K = h.shape[2]
    vpaths, vscores = impl.viterbi(h, trans, **fkw, **kw(p), mode=mode)
    paths, scores = impl.nbest(h, trans, 3, **fkw, **kw(p))
    for b in range(h.shape[0]):
        assert _obeys(vpaths[b], p["allowed"], K)
        if vscores[b] == NEG_INF:
            assert np.all(vpaths[b] == -1)
        for r in range(3):
            assert _obeys(paths[b, r], p["allowed"], K)
            if scores[b, r] == NEG_INF:
                assert np.all(paths[b, r] == -1)


@PROPERTY
@given(p=problems(), bidirectional=st.booleans())
def test_prop_float32_close_to_float64(impl, p, bidirectional):
    # float32 against float64 on the same (float32-representable) inputs; the
    # bound is 1e-4 rather than 1e-5 because the log-likelihood sums T terms.
    h32 = p["emissions"].astype(np.float32)
    h64 = h32.astype(np.float64)
    if p["factors"] is None:
        g32 = p["G"].astype(np.float32)
        a32, a64, f32, f64 = (g32,), (g32.astype(np.float64),), {}, {}
    else:
        lr32 = tuple(x.astype(np.float32) for x in p["factors"])
        a32 = a64 = (None,)
        f32 = {"factors": lr32}
        f64 = {"factors": tuple(x.astype(np.float64) for x in lr32)}
    tags = p["tags"]

    def close(x32, x64):
        assert x32.dtype == np.float32
        assert_close(x32, x64, rtol=1e-4, atol=1e-4)

    close(impl.log_likelihood(h32, tags, *a32, **f32, **kw(p), bidirectional=bidirectional),
          impl.log_likelihood(h64, tags, *a64, **f64, **kw(p), bidirectional=bidirectional))
    got = impl.nll_grad(h32, tags, *a32, **f32, **kw(p), bidirectional=bidirectional)
    want = impl.nll_grad(h64, tags, *a64, **f64, **kw(p), bidirectional=bidirectional)
    close(got.d_emissions, want.d_emissions)
    close(impl.marginals(h32, *a32, **f32, **kw(p)), impl.marginals(h64, *a64, **f64, **kw(p)))
    close(impl.viterbi(h32, *a32, **f32, **kw(p))[1], impl.viterbi(h64, *a64, **f64, **kw(p))[1])
