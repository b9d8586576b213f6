"""Oracles for kexue.crf: the spec's worked numbers, brute-force enumeration of
every path, finite differences, and properties.

Every test runs twice through the ``impl`` fixture: on the compiled core
(``kexue.crf``) and on its numpy twin
(``kexue.reference.crf``). Core-vs-reference agreement on random inputs is the
generic registry test's job; here both are held to independent oracles.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kexue.crf as core
from kexue.reference import crf as ref
from kexue.testing import assert_close

NEG_INF = -np.inf


def _core():
    return core


@pytest.fixture(scope="module", params=["core", "reference"])
def impl(request):
    return ref if request.param == "reference" else _core()


def assert_6dp(actual, expected):
    """The spec's worked numbers are rounded to 6 decimals."""
    assert_close(np.asarray(actual, dtype=np.float64), expected, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------
# spec §1.7 worked example: K=2, L=3

H = np.array([[1.0, 0.5], [0.2, 1.5], [0.9, 0.3]])
A = np.array([[0.4, -0.2], [0.1, 0.6]])
GOLD = np.array([0, 1, 1])
S = np.array([0.5, -0.5])
E = np.array([-0.3, 0.4])
ONLY0 = np.array([True, False])


def test_worked_a_partition_and_likelihood(impl):
    assert_6dp(impl.log_partition(H[None], A), [5.047499])
    assert_6dp(impl.log_likelihood(H[None], GOLD[None], A), [-1.847499])
    g = impl.nll_grad(H[None], GOLD[None], A)
    assert_6dp(g.loss, [1.847499])
    # every path score: log p(path) + log Z
    paths = {(1, 1, 0): 3.6, (1, 1, 1): 3.5, (0, 1, 0): 3.3, (0, 1, 1): 3.2,
             (0, 0, 0): 2.9, (1, 0, 0): 2.1, (0, 0, 1): 1.7, (1, 0, 1): 0.9}
    tags = np.array(list(paths))
    ll = impl.log_likelihood(np.repeat(H[None], 8, axis=0), tags, A)
    assert_6dp(ll + 5.047499, list(paths.values()))


def test_worked_a_decoding(impl):
    path, score = impl.viterbi(H[None], A)
    assert path.dtype == np.int64
    assert path.tolist() == [[1, 1, 0]]
    assert_6dp(score, [3.6])
    assert_6dp(np.exp(score - impl.log_partition(H[None], A)), [0.235158])
    paths, scores = impl.nbest(H[None], A, 3)
    assert paths.dtype == np.int64 and paths.shape == (1, 3, 3)
    assert paths[0].tolist() == [[1, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert_6dp(scores[0], [3.6, 3.5, 3.3])
    # bert4keras ViterbiDecoder(starts=[0], ends=[0]), as constraints and as -inf scores
    for kw in ({"allowed": (None, ONLY0, ONLY0)},
               {"start": np.array([0.0, NEG_INF]), "end": np.array([0.0, NEG_INF])}):
        path, score = impl.viterbi(H[None], A, **kw)
        assert path.tolist() == [[0, 1, 0]]
        assert_6dp(score, [3.3])


def test_worked_a_marginals_and_gradient(impl):
    mu = [[0.483788, 0.516212], [0.220223, 0.779777], [0.578613, 0.421387]]
    assert_6dp(impl.marginals(H[None], A)[0], mu)
    g = impl.nll_grad(H[None], GOLD[None], A)
    assert_6dp(g.d_emissions[0], [[-0.516212, 0.516212], [0.220223, -0.220223],
                                  [0.578613, -0.578613]])
    assert_6dp(g.d_transitions, [[0.321195, -0.617184], [0.477641, -0.181652]])
    # expected pair counts sum_t xi_t = d_transitions + empirical counts of (0,1,1)
    assert_6dp(g.d_transitions + [[0, 1], [0, 1]], [[0.321195, 0.382816], [0.477641, 0.818348]])
    # d_start / d_end without start/end vectors: mu_0 - onehot(y_0), mu_2 - onehot(y_2)
    assert_6dp(g.d_start, [-0.516212, 0.516212])
    assert_6dp(g.d_end, [0.578613, -0.578613])


def test_worked_a_messages(impl):
    """alpha, beta and xi_1 of the worked example through the public API."""
    # alpha_t(k) = log Z of the prefix 0..t forced to end in k
    alpha = np.empty((3, 2))
    for t in range(3):
        mask = (np.arange(3) <= t)[None]
        for k in range(2):
            alpha[t, k] = impl.log_partition(H[None], A, mask=mask,
                                             allowed=(None, None, np.arange(2) == k))[0]
    assert_6dp(alpha, [[1.0, 0.5], [1.971101, 3.154355], [4.500378, 4.183294]])
    # beta_t(i) = log Z of the suffix t+1.. entered from tag i (start = A[i])
    beta = np.zeros((3, 2))
    for t in range(2):
        for i in range(2):
            beta[t, i] = impl.log_partition(H[None, t + 1:], A, start=A[i])[0]
    assert_6dp(beta, [[3.321391, 3.886261], [1.563282, 1.644397], [0.0, 0.0]])
    # xi_1(i, j) = P(y_0 = i, y_1 = j): pin the tags with -inf emissions
    logz = impl.log_partition(H[None], A)[0]
    xi = np.empty((2, 2))
    for i, j in itertools.product(range(2), repeat=2):
        h = H.copy()
        h[0, np.arange(2) != i] = NEG_INF
        h[1, np.arange(2) != j] = NEG_INF
        xi[i, j] = np.exp(impl.log_partition(h[None], A)[0] - logz)
    assert_6dp(xi, [[0.151948, 0.331840], [0.068275, 0.447937]])


def test_worked_b_start_end(impl):
    kw = {"start": S, "end": E}
    assert_6dp(impl.log_partition(H[None], A, **kw), [5.200820])
    assert_6dp(impl.log_likelihood(H[None], GOLD[None], A, **kw), [-1.100820])
    path, score = impl.viterbi(H[None], A, **kw)
    assert path.tolist() == [[0, 1, 1]]
    assert_6dp(score, [4.1])
    assert_6dp(np.exp(score - impl.log_partition(H[None], A, **kw)), [0.332598])
    paths, scores = impl.nbest(H[None], A, 3, **kw)
    assert paths[0].tolist() == [[0, 1, 1], [0, 1, 0], [1, 1, 1]]
    assert_6dp(scores[0], [4.1, 3.5, 3.4])
    mu = impl.marginals(H[None], A, **kw)[0]
    assert_6dp(mu[0], [0.711701, 0.288299])
    assert_6dp(mu[2], [0.415759, 0.584241])
    g = impl.nll_grad(H[None], GOLD[None], A, **kw)
    assert_6dp(g.loss, [1.100820])
    assert_6dp(g.d_start, [-0.288299, 0.288299])
    assert_6dp(g.d_end, [0.415759, -0.415759])
    assert_6dp(g.d_transitions, [[0.339150, -0.398388], [0.305670, -0.246432]])


def test_worked_c_batch_of_lengths(impl):
    """Lengths 3, 2, 0. The spec's third NLL, ln 2, is bert4keras' empty-sequence
    artefact; kexue (contract, spec §1.8) gives 0 for a row without valid steps."""
    h = np.repeat(H[None], 3, axis=0)
    tags = np.repeat(GOLD[None], 3, axis=0)
    mask = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=bool)
    assert_6dp(impl.nll_grad(h, tags, A, mask=mask).loss, [1.847499, 1.121539, 0.0])
    assert_6dp(-impl.log_likelihood(h, tags, A, mask=mask), [1.847499, 1.121539, 0.0])
    assert_6dp(impl.log_partition(h, A, mask=mask), [5.047499, 3.421539, 0.0])
    one = np.array([[True, False, False]])
    assert_6dp(impl.log_partition(H[None], A, mask=one), [1.474077])


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


def crf_brute(h, transitions, start, end, allowed):
    """{path: score} of one compacted row, L >= 1, written straight from spec §1.2."""
    L, K = h.shape
    a, a_start, a_end = _triple(allowed, K)
    s = np.zeros(K) if start is None else start
    e = np.zeros(K) if end is None else end
    out = {}
    for path in itertools.product(range(K), repeat=L):
        pairs = list(zip(path, path[1:]))
        if not (a_start[path[0]] and a_end[path[-1]] and all(a[p, q] for p, q in pairs)):
            out[path] = NEG_INF
            continue
        score = s[path[0]] + e[path[-1]]
        score += sum(h[t, y] for t, y in enumerate(path)) + sum(transitions[p, q] for p, q in pairs)
        out[path] = float(score)
    return out


def make_problem(rng, B, T, K, *, start_end, constraints, mask_kind, neg_inf=False):
    """Random CRF inputs. constraints: none | matrix | triple; mask_kind: none | random."""
    h = rng.normal(size=(B, T, K)) * 1.5
    if neg_inf:
        h[rng.random(h.shape) < 0.1] = NEG_INF
    p = {
        "emissions": h,
        "tags": rng.integers(0, K, size=(B, T)),
        "transitions": rng.normal(size=(K, K)),
        "kw": {"mask": None, "start": None, "end": None, "allowed": None},
    }
    kw = p["kw"]
    if start_end:
        kw["start"], kw["end"] = rng.normal(size=K), rng.normal(size=K)
    if mask_kind == "random":
        mask = rng.random((B, T)) < 0.7
        mask[0] = True
        kw["mask"] = mask
    if constraints == "matrix":
        kw["allowed"] = rng.random((K, K)) < 0.7
    elif constraints == "triple":
        matrix = rng.random((K, K)) < 0.7 if rng.random() < 0.7 else None
        kw["allowed"] = (matrix, rng.random(K) < 0.8, rng.random(K) < 0.8)
    return p


def _valid_steps(p):
    B, T, _ = p["emissions"].shape
    mask = p["kw"]["mask"]
    for b in range(B):
        yield b, (np.arange(T) if mask is None else np.flatnonzero(mask[b]))


def _brute_rows(p):
    """(b, idx, {path: score}) per row; the dict is None for a row without valid steps."""
    kw = p["kw"]
    for b, idx in _valid_steps(p):
        if idx.size == 0:
            yield b, idx, None
        else:
            yield b, idx, crf_brute(p["emissions"][b, idx], p["transitions"], kw["start"],
                                    kw["end"], kw["allowed"])


def _logsumexp(values):
    return float(np.logaddexp.reduce(np.array(list(values), dtype=np.float64)))


def _cases():
    rng = np.random.default_rng(20240601)
    variants = {
        "plain": {"start_end": False, "constraints": "none", "mask_kind": "none"},
        "start_end_mask": {"start_end": True, "constraints": "none", "mask_kind": "random"},
        "matrix": {"start_end": True, "constraints": "matrix", "mask_kind": "random"},
        "triple_neginf": {"start_end": False, "constraints": "triple", "mask_kind": "random",
                          "neg_inf": True},
    }
    cases = []
    for K in (1, 2, 3):
        for T in (0, 1, 2, 3, 4):
            for name, v in variants.items():
                cases.append(pytest.param(make_problem(rng, 3, T, K, **v), id=f"K{K}-T{T}-{name}"))
    return cases


CASES = _cases()


@pytest.mark.parametrize("p", CASES)
def test_brute_partition_likelihood_loss(impl, p):
    h, tags, trans, kw = p["emissions"], p["tags"], p["transitions"], p["kw"]
    logz = impl.log_partition(h, trans, **kw)
    ll = impl.log_likelihood(h, tags, trans, **kw)
    g = impl.nll_grad(h, tags, trans, **kw)
    assert logz.dtype == ll.dtype == g.loss.dtype == np.float64
    for b, idx, brute in _brute_rows(p):
        if brute is None:
            assert logz[b] == 0 and ll[b] == 0 and g.loss[b] == 0
            assert np.all(g.d_emissions[b] == 0)
            continue
        want_z = _logsumexp(brute.values())
        gold = brute[tuple(tags[b, idx])]
        assert_close(logz[b], want_z)
        if gold == NEG_INF:  # forbidden gold path (also when every path is forbidden)
            assert ll[b] == NEG_INF and g.loss[b] == np.inf
            assert np.all(g.d_emissions[b] == 0)
        else:
            assert_close(ll[b], gold - want_z)
            assert_close(g.loss[b], want_z - gold)
        masked = np.setdiff1d(np.arange(h.shape[1]), idx)
        assert np.all(g.d_emissions[b, masked] == 0)


@pytest.mark.parametrize("p", CASES)
def test_brute_marginals(impl, p):
    h, trans, kw = p["emissions"], p["transitions"], p["kw"]
    mu = impl.marginals(h, trans, **kw)
    want = np.zeros_like(h)
    for b, idx, brute in _brute_rows(p):
        if brute is None:
            continue
        logz = _logsumexp(brute.values())
        if logz == NEG_INF:
            continue
        for path, score in brute.items():
            want[b, idx, list(path)] += np.exp(score - logz)
    assert_close(mu, want)


@pytest.mark.parametrize("p", CASES)
def test_brute_viterbi(impl, p):
    h, trans, kw = p["emissions"], p["transitions"], p["kw"]
    paths, scores = impl.viterbi(h, trans, **kw)
    assert paths.dtype == np.int64 and paths.shape == h.shape[:2]
    for b, idx, brute in _brute_rows(p):
        masked = np.setdiff1d(np.arange(h.shape[1]), idx)
        assert np.all(paths[b, masked] == -1)
        if brute is None:
            assert scores[b] == 0  # the empty path
            continue
        best = max(brute.values())
        if best == NEG_INF:
            assert scores[b] == NEG_INF and np.all(paths[b] == -1)
            continue
        assert_close(scores[b], best)
        assert_close(brute[tuple(paths[b, idx])], best)
        winners = [q for q, v in brute.items() if v > best - 1e-9]
        if len(winners) == 1:
            assert tuple(paths[b, idx]) == winners[0]


def check_nbest_against_brute(paths, scores, idx, T, brute, k):
    """paths [k,T], scores [k] of one row against {path: score}."""
    masked = np.setdiff1d(np.arange(T), idx)
    assert np.all(paths[:, masked] == -1)
    if brute is None:  # one path, the empty one
        assert scores[0] == 0 and np.all(paths == -1) and np.all(np.isneginf(scores[1:]))
        return
    ranked = sorted((v for v in brute.values() if v != NEG_INF), reverse=True)
    n = min(k, len(ranked))
    assert_close(scores[:n], np.array(ranked[:n]))
    assert np.all(np.isneginf(scores[n:])) and np.all(paths[n:] == -1)
    got = [tuple(paths[r, idx]) for r in range(n)]
    assert len(set(got)) == n, "a path is returned twice"
    for r, path in enumerate(got):
        assert_close(brute[path], scores[r])  # each path carries its own score
        same = [q for q, v in brute.items() if abs(v - ranked[r]) < 1e-9]
        if len(same) == 1:
            assert path == same[0]


@pytest.mark.parametrize("p", CASES)
def test_brute_nbest_full_ranking(impl, p):
    h, trans, kw = p["emissions"], p["transitions"], p["kw"]
    B, T, K = h.shape
    k = K**T + 2  # every path, and two slots more than there are
    paths, scores = impl.nbest(h, trans, k, **kw)
    assert paths.dtype == np.int64 and paths.shape == (B, k, T) and scores.shape == (B, k)
    for b, idx, brute in _brute_rows(p):
        check_nbest_against_brute(paths[b], scores[b], idx, T, brute, k)
    vpaths, vscores = impl.viterbi(h, trans, **kw)
    assert np.array_equal(paths[:, 0], vpaths)
    assert_close(scores[:, 0], vscores)


# ----------------------------------------------------------------------------
# ties, empty rows, masked steps, forbidden rows


def test_ties_go_to_the_lowest_index(impl):
    zeros = np.zeros((1, 4, 3))
    path, score = impl.viterbi(zeros, np.zeros((3, 3)))
    assert path.tolist() == [[0, 0, 0, 0]] and score[0] == 0
    # predecessor tie: both tags reach tag 1 at t=1 with score 1 + 0 -> first (0)
    path, _ = impl.viterbi(np.array([[[1.0, 1.0], [0.0, 2.0]]]), np.zeros((2, 2)))
    assert path.tolist() == [[0, 1]]
    # n-best ties rank by (last tag, rank) ascending
    paths, scores = impl.nbest(np.zeros((1, 2, 2)), np.zeros((2, 2)), 6)
    assert paths[0].tolist() == [[0, 0], [1, 0], [0, 1], [1, 1], [-1, -1], [-1, -1]]
    assert scores[0].tolist() == [0, 0, 0, 0, NEG_INF, NEG_INF]


def test_empty_rows(impl):
    """A row without valid steps: log Z 0, loss 0, zero grads, path -1, marginals 0.
    Resolution of the contract's silence on scores: the row has exactly one path,
    the empty one, so viterbi scores it 0 and nbest returns it first (score 0)."""
    rng = np.random.default_rng(3)
    h = rng.normal(size=(2, 3, 2))
    mask = np.array([[True, False, True], [False, False, False]])
    kw = {"mask": mask, "start": S, "end": E, "allowed": (None, ONLY0, None)}
    tags = np.zeros((2, 3), dtype=np.int64)
    assert impl.log_partition(h, A, **kw)[1] == 0
    assert impl.log_likelihood(h, tags, A, **kw)[1] == 0
    g = impl.nll_grad(h, tags, A, **kw)
    assert g.loss[1] == 0 and np.all(g.d_emissions[1] == 0)
    assert np.all(impl.marginals(h, A, **kw)[1] == 0)
    paths, scores = impl.viterbi(h, A, **kw)
    assert paths[1].tolist() == [-1, -1, -1] and scores[1] == 0
    paths, scores = impl.nbest(h, A, 2, **kw)
    assert np.all(paths[1] == -1) and scores[1].tolist() == [0, NEG_INF]
    # all rows empty, and T = 0
    for hh, m in ((h, np.zeros((2, 3), bool)), (np.zeros((2, 0, 2)), None)):
        g = impl.nll_grad(hh, np.zeros(hh.shape[:2], np.int64), A, mask=m, start=S, end=E)
        assert np.all(g.loss == 0) and np.all(g.d_transitions == 0)
        assert np.all(g.d_start == 0) and np.all(g.d_end == 0)


def test_masked_steps_never_change_a_result(impl):
    rng = np.random.default_rng(5)
    B, T, K = 3, 6, 3
    h = rng.normal(size=(B, T, K))
    mask = rng.random((B, T)) < 0.6
    mask[0] = [False, True, True, False, True, False]
    tags = rng.integers(0, K, size=(B, T))
    trans = rng.normal(size=(K, K))
    h2, tags2 = h.copy(), tags.copy()
    h2[~mask] = 1e3  # garbage under the mask
    tags2[~mask] = -1
    kw = {"mask": mask, "start": rng.normal(size=K), "end": rng.normal(size=K)}
    assert_close(impl.log_partition(h2, trans, **kw), impl.log_partition(h, trans, **kw))
    assert_close(impl.log_likelihood(h2, tags2, trans, **kw),
                 impl.log_likelihood(h, tags, trans, **kw))
    for x, y in zip(impl.nll_grad(h2, tags2, trans, **kw), impl.nll_grad(h, tags, trans, **kw)):
        assert_close(x, y)
    assert_close(impl.marginals(h2, trans, **kw), impl.marginals(h, trans, **kw))
    for x, y in zip(impl.viterbi(h2, trans, **kw), impl.viterbi(h, trans, **kw)):
        assert_close(x, y)
    for x, y in zip(impl.nbest(h2, trans, 4, **kw), impl.nbest(h, trans, 4, **kw)):
        assert_close(x, y)
    # compaction: the masked row equals the same valid steps packed to the front
    packed = np.zeros((1, T, K))
    n = mask[0].sum()
    packed[0, :n] = h[0, mask[0]]
    pmask = (np.arange(T) < n)[None]
    assert_close(impl.log_partition(h[:1], trans, **{**kw, "mask": mask[:1]}),
                 impl.log_partition(packed, trans, **{**kw, "mask": pmask}))


def test_every_path_forbidden(impl):
    rng = np.random.default_rng(11)
    h = rng.normal(size=(2, 3, 2))
    allowed = (None, np.array([True, True]), np.array([True, True]))
    dead = (None, np.array([False, False]), None)  # no tag may start
    tags = np.zeros((2, 3), dtype=np.int64)
    for kw in ({"allowed": dead}, {"allowed": allowed, "start": np.array([NEG_INF, NEG_INF])}):
        assert np.all(impl.log_partition(h, A, **kw) == NEG_INF)
        assert np.all(impl.log_likelihood(h, tags, A, **kw) == NEG_INF)
        g = impl.nll_grad(h, tags, A, **kw)
        assert np.all(g.loss == np.inf)
        for d in g[1:]:
            assert np.all(d == 0)
        assert np.all(impl.marginals(h, A, **kw) == 0)
        paths, scores = impl.viterbi(h, A, **kw)
        assert np.all(paths == -1) and np.all(scores == NEG_INF)
        paths, scores = impl.nbest(h, A, 3, **kw)
        assert np.all(paths == -1) and np.all(scores == NEG_INF)


S3 = np.array([0.3, -0.2, 0.1])
E3 = np.array([-0.1, 0.4, 0.0])


def test_forbidden_gold_row_contributes_no_gradient(impl):
    rng = np.random.default_rng(12)
    h = rng.normal(size=(2, 4, 3))
    trans = rng.normal(size=(3, 3))
    allowed = np.ones((3, 3), bool)
    allowed[0, 1] = False
    tags = np.array([[0, 0, 2, 1], [2, 0, 1, 1]])  # row 1 uses 0 -> 1
    g = impl.nll_grad(h, tags, trans, allowed=allowed, start=S3, end=E3)
    one = impl.nll_grad(h[:1], tags[:1], trans, allowed=allowed, start=S3, end=E3)
    assert g.loss[1] == np.inf and np.isfinite(g.loss[0])
    assert np.all(g.d_emissions[1] == 0)
    for x, y in zip(g[2:], one[2:]):
        assert_close(x, y)


def test_allowed_matrix_equals_triple_and_neg_inf_scores(impl):
    rng = np.random.default_rng(13)
    h = rng.normal(size=(2, 4, 3))
    trans = rng.normal(size=(3, 3))
    a = rng.random((3, 3)) < 0.6
    a_s, a_e = np.array([True, False, True]), np.array([False, True, True])
    scores_kw = {"start": np.where(a_s, S3, NEG_INF), "end": np.where(a_e, E3, NEG_INF)}
    allowed_kw = {"start": S3, "end": E3, "allowed": (a, a_s, a_e)}
    for fn in (impl.log_partition, impl.marginals, impl.viterbi):
        x = fn(h, trans, **allowed_kw)
        y = fn(h, np.where(a, trans, NEG_INF), **scores_kw)
        for u, v in zip(x if isinstance(x, tuple) else (x,), y if isinstance(y, tuple) else (y,)):
            assert_close(u, v)
    assert_close(impl.log_partition(h, trans, allowed=a),
                 impl.log_partition(h, trans, allowed=(a, None, None)))


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


@pytest.mark.parametrize("start_end", [False, True], ids=["no_start_end", "start_end"])
@pytest.mark.parametrize("constrained", [False, True], ids=["free", "allowed"])
def test_nll_grad_finite_differences(impl, start_end, constrained):
    rng = np.random.default_rng(17 + 2 * start_end + constrained)
    B, T, K = 3, 4, 3
    h = rng.normal(size=(B, T, K))
    trans = rng.normal(size=(K, K))
    s = rng.normal(size=K) if start_end else np.zeros(K)
    e = rng.normal(size=K) if start_end else np.zeros(K)
    tags = rng.integers(0, K, size=(B, T))
    mask = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [0, 1, 0, 1]], dtype=bool)
    allowed = None
    if constrained:  # random constraints that the gold paths obey
        a, a_s, a_e = rng.random((K, K)) < 0.5, rng.random(K) < 0.5, rng.random(K) < 0.5
        for b in range(B):
            y = tags[b, mask[b]]
            a[y[:-1], y[1:]] = True
            a_s[y[0]] = a_e[y[-1]] = True
        allowed = (a, a_s, a_e)
    kw = {"mask": mask, "allowed": allowed}

    def loss():
        return -ref.log_likelihood(h, tags, trans, start=s, end=e, **kw).sum()

    g = impl.nll_grad(h, tags, trans, start=s if start_end else None,
                      end=e if start_end else None, **kw)
    assert np.all(np.isfinite(g.loss))
    assert_close(g.loss.sum(), loss())
    for got, x in ((g.d_emissions, h), (g.d_transitions, trans), (g.d_start, s), (g.d_end, e)):
        assert_close(got, _finite_difference(loss, x), rtol=1e-6, atol=1e-8)
    assert np.all(g.d_emissions[~mask] == 0)


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
        start_end=draw(st.booleans()),
        constraints=constraints or draw(st.sampled_from(["none", "matrix", "triple"])),
        mask_kind=draw(st.sampled_from(["none", "random"])),
    )


PROPERTY = settings(max_examples=30, deadline=None)


@PROPERTY
@given(p=problems())
def test_prop_log_likelihood_at_most_zero(impl, p):
    ll = impl.log_likelihood(p["emissions"], p["tags"], p["transitions"], **p["kw"])
    assert np.all(ll <= 1e-9)


@PROPERTY
@given(p=problems())
def test_prop_marginals_sum_to_one(impl, p):
    h, kw = p["emissions"], p["kw"]
    mu = impl.marginals(h, p["transitions"], **kw)
    logz = impl.log_partition(h, p["transitions"], **kw)
    mask = np.ones(h.shape[:2], bool) if kw["mask"] is None else kw["mask"]
    assert np.all(mu >= 0) and np.all(mu <= 1 + 1e-12)
    assert np.all(mu[~mask] == 0)
    sums = mu.sum(-1)
    for b in range(h.shape[0]):
        want = 1.0 if np.isfinite(logz[b]) else 0.0
        assert_close(sums[b, mask[b]], np.full(mask[b].sum(), want))


@PROPERTY
@given(p=problems(), k=st.integers(1, 4))
def test_prop_nbest_first_is_viterbi(impl, p, k):
    h, trans, kw = p["emissions"], p["transitions"], p["kw"]
    paths, scores = impl.nbest(h, trans, k, **kw)
    vpaths, vscores = impl.viterbi(h, trans, **kw)
    assert np.array_equal(paths[:, 0], vpaths)
    assert_close(scores[:, 0], vscores)
    assert np.all(scores[:, :-1] >= scores[:, 1:])  # best first


def _obeys(path, allowed, K):
    a, a_start, a_end = _triple(allowed, K)
    y = path[path >= 0]
    if y.size == 0:
        return True
    return bool(a_start[y[0]] and a_end[y[-1]] and np.all(a[y[:-1], y[1:]]))


@PROPERTY
@given(p=problems(constraints="triple"))
def test_prop_decoded_paths_obey_constraints(impl, p):
    h, trans, kw = p["emissions"], p["transitions"], p["kw"]
    K = h.shape[2]
    vpaths, vscores = impl.viterbi(h, trans, **kw)
    paths, scores = impl.nbest(h, trans, 3, **kw)
    for b in range(h.shape[0]):
        assert _obeys(vpaths[b], kw["allowed"], K)
        for r in range(3):
            assert _obeys(paths[b, r], kw["allowed"], K)
            if scores[b, r] == NEG_INF:
                assert np.all(paths[b, r] == -1)


@PROPERTY
@given(p=problems())
def test_prop_float32_close_to_float64(impl, p):
    # float32 against float64 on the same (float32-representable) inputs; the
    # bound is 1e-4 rather than 1e-5 because log Z accumulates over T steps.
    h32 = p["emissions"].astype(np.float32)
    t32 = p["transitions"].astype(np.float32)
    kw32 = dict(p["kw"])
    for name in ("start", "end"):
        if kw32[name] is not None:
            kw32[name] = kw32[name].astype(np.float32)
    h64, t64 = h32.astype(np.float64), t32.astype(np.float64)
    kw64 = {n: (v.astype(np.float64) if n in ("start", "end") and v is not None else v)
            for n, v in kw32.items()}
    tags = p["tags"]

    def close(x32, x64):
        assert x32.dtype == np.float32
        assert_close(x32, x64, rtol=1e-4, atol=1e-4)

    close(impl.log_partition(h32, t32, **kw32), impl.log_partition(h64, t64, **kw64))
    close(impl.log_likelihood(h32, tags, t32, **kw32),
          impl.log_likelihood(h64, tags, t64, **kw64))
    close(impl.marginals(h32, t32, **kw32), impl.marginals(h64, t64, **kw64))
    close(impl.nll_grad(h32, tags, t32, **kw32).d_emissions,
          impl.nll_grad(h64, tags, t64, **kw64).d_emissions)
    close(impl.viterbi(h32, t32, **kw32)[1], impl.viterbi(h64, t64, **kw64)[1])


# ----------------------------------------------------------------------------
# allowed_transitions


BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_allowed_transitions_bio(impl):
    a, a_start, a_end = impl.allowed_transitions(BIO, "BIO")
    assert a.dtype == a_start.dtype == a_end.dtype == np.bool_
    assert a.shape == (5, 5)
    assert a_start.tolist() == [True, True, False, True, False]
    assert a_end.tolist() == [True] * 5
    # into O and B-x from anything
    assert np.all(a[:, [0, 1, 3]])
    # I-PER only from B-PER or I-PER; I-LOC only from B-LOC or I-LOC
    assert a[:, 2].tolist() == [False, True, True, False, False]
    assert a[:, 4].tolist() == [False, False, False, True, True]


BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


@pytest.mark.parametrize("scheme,labels", [
    ("BIOES", BIOES),
    ("BIOUL", ["O", "B-PER", "I-PER", "L-PER", "U-PER", "B-LOC", "I-LOC", "L-LOC", "U-LOC"]),
    ("BIOES", ["O", "B-PER", "I-PER", "L-PER", "U-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]),
])
def test_allowed_transitions_bioes(impl, scheme, labels):
    a, a_start, a_end = impl.allowed_transitions(labels, scheme)
    o, bp, ip, ep, sp, bl, il, el, sl = range(9)
    assert a_start.tolist() == [True, True, False, False, True, True, False, False, True]
    assert a_end.tolist() == [True, False, False, True, True, False, False, True, True]
    want = np.zeros((9, 9), bool)
    for src in (o, ep, sp, el, sl):
        want[src, [o, bp, sp, bl, sl]] = True
    want[[bp, ip], ip] = want[[bp, ip], ep] = True
    want[[bl, il], il] = want[[bl, il], el] = True
    assert np.array_equal(a, want)
    # a few entries spelled out
    assert a[bp, ip] and a[ip, ep] and a[ep, o] and a[sp, bl]
    assert not a[bp, o] and not a[bp, il] and not a[o, ip] and not a[ep, ip] and not a[ip, bl]


def test_allowed_transitions_bioul_equals_bioes(impl):
    bioul = [lab.replace("E-", "L-").replace("S-", "U-") for lab in BIOES]
    got = impl.allowed_transitions(bioul, "BIOUL")
    for x, y in zip(got, impl.allowed_transitions(BIOES, "BIOES")):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("labels,scheme", [
    (BIO, "XYZ"),
    (["O", "X-PER"], "BIO"),
    (["O", "E-PER"], "BIO"),
    (["O", "PER"], "BIO"),
    (["O", "B-PER", "M-PER"], "BIOES"),
])
def test_allowed_transitions_rejects(impl, labels, scheme):
    with pytest.raises(ValueError):
        impl.allowed_transitions(labels, scheme)


def test_allowed_transitions_decode(impl):
    """Constrained decoding with a scheme never yields an I- after O."""
    rng = np.random.default_rng(21)
    allowed = impl.allowed_transitions(BIO, "BIO")
    h = rng.normal(size=(4, 7, 5))
    h[:, :, 2] += 2.0  # emissions push towards I-PER everywhere
    paths, scores = impl.viterbi(h, np.zeros((5, 5)), allowed=allowed)
    assert np.all(np.isfinite(scores))
    for b in range(4):
        assert _obeys(paths[b], allowed, 5)


def test_nbest_k_must_be_positive(impl):
    with pytest.raises(ValueError, match="k"):
        impl.nbest(H[None], A, 0)


# ----------------------------------------------------------------------------
# the CRF class (core only)


def test_crf_class():
    core = _core()
    K = 4
    m = core.CRF(K, seed=7)
    assert m.transitions.shape == (K, K) and m.start.shape == (K,) and m.end.shape == (K,)
    for x in (m.transitions, m.start, m.end):
        assert np.all(np.abs(x) <= 0.1)
    assert m.allowed is None
    again, other = core.CRF(K, seed=7), core.CRF(K, seed=8)
    assert np.array_equal(again.transitions, m.transitions) and np.array_equal(again.end, m.end)
    assert not np.array_equal(other.transitions, m.transitions)

    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 5, K)).astype(m.transitions.dtype)  # the layer's dtype
    tags = rng.integers(0, K, size=(3, 5))
    mask = rng.random((3, 5)) < 0.8
    for allowed in (None, core.allowed_transitions(["O", "B-X", "I-X", "B-Y"], "BIO")):
        m.allowed = allowed
        kw = {"mask": mask, "start": m.start, "end": m.end, "allowed": allowed}
        pairs = [
            (m.log_likelihood(h, tags, mask=mask),
             ref.log_likelihood(h, tags, m.transitions, **kw)),
            (m.log_partition(h, mask=mask), ref.log_partition(h, m.transitions, **kw)),
            (m.marginals(h, mask=mask), ref.marginals(h, m.transitions, **kw)),
        ]
        pairs += list(zip(m.nll_grad(h, tags, mask=mask),
                          ref.nll_grad(h, tags, m.transitions, **kw)))
        pairs += list(zip(m.viterbi(h, mask=mask), ref.viterbi(h, m.transitions, **kw)))
        pairs += list(zip(m.nbest(h, 3, mask=mask), ref.nbest(h, m.transitions, 3, **kw)))
        pairs.append((m.log_partition(h, mask=mask), core.log_partition(h, m.transitions, **kw)))
        for got, want in pairs:
            assert_close(got, want)

    plain = core.CRF(K, start_end=False, seed=1)
    for x in (plain.start, plain.end):
        assert x is None or np.all(x == 0)
    assert_close(plain.log_partition(h, mask=mask),
                 ref.log_partition(h, plain.transitions, mask=mask))
