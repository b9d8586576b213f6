"""kexue.samplers.gibbs_mrf and kexue.samplers.lda (issue 5): the core against its numpy
twin kexue.reference.samplers_discrete, both against exact results, determinism
(threads, chain_offset splits), and the front door.

* tests whose names contain ``reference`` need only the twin (numpy):
  ``pytest tests/test_samplers_discrete.py -k reference`` runs them before the core is built.
* every other test needs the compiled core (``kexue._core.smp_gibbs_mrf``, ``smp_lda``).

Statistical checks: MRF marginals against brute-force enumeration of all 3^6 states,
at 4 standard errors from batch means across chains (one frequency per chain after
burn-in, SE = sd / sqrt(C)); LDA: topics planted in a synthetic corpus are recovered
(after matching, every total-variation distance < 0.1). Fixed seeds throughout.
"""
from __future__ import annotations

import doctest
import itertools

import kexue
import numpy as np
import pytest
from kexue.reference import samplers_discrete as ref

SE_TOL = 4.0


def ks():
    """The compiled front door (fails until the core is built)."""
    import kexue.samplers as s

    return s


@pytest.fixture(params=["reference", "core"])
def impl(request):
    return ref if request.param == "reference" else ks()


def threads(n):
    """Context: kexue's thread count set to n, restored after."""

    class _T:
        def __enter__(self):
            self.before = kexue.get_num_threads()
            kexue.set_num_threads(n)

        def __exit__(self, *a):
            kexue.set_num_threads(self.before)

    return _T()


# ============================================================================
# MRF fixtures


def small_mrf(seed=0, shared=False):
    """N=6, S=3: the cycle 0-1-2-3-4-5-0 (some edges reversed) plus the chord (0, 3)."""
    rng = np.random.default_rng(seed)
    N, S = 6, 3
    edges = np.array([[0, 1], [2, 1], [2, 3], [3, 4], [5, 4], [5, 0], [0, 3]])
    unary = 0.7 * rng.standard_normal((N, S))
    pairwise = 0.8 * rng.standard_normal((S, S) if shared else (len(edges), S, S))
    return unary, edges, pairwise


def chain_freq(samples, burn, N, S):
    """[C, N, S]: each chain's state frequencies after burn-in."""
    x = samples[:, burn:, :]
    return np.stack([(x == a).mean(axis=1) for a in range(S)], axis=-1)


def assert_mrf_equal(a, b):
    for f in ("samples", "counts", "state"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape, f
        assert x.tobytes() == y.tobytes(), f


# ============================================================================
# MRF: twin alone


def test_reference_colouring_is_greedy_and_proper():
    rng = np.random.default_rng(3)
    N = 40
    edges = rng.integers(0, N, (120, 2))
    edges = edges[edges[:, 0] != edges[:, 1]]
    col = ref.greedy_colouring(N, edges)
    assert (col[edges[:, 0]] != col[edges[:, 1]]).all()
    for i in range(N):  # greedy: every smaller colour is taken by an earlier neighbour
        nb = set(edges[edges[:, 0] == i, 1]) | set(edges[edges[:, 1] == i, 0])
        earlier = {int(col[j]) for j in nb if j < i}
        assert all(c in earlier for c in range(int(col[i])))
    assert ref.greedy_colouring(3, np.zeros((0, 2), int)).tolist() == [0, 0, 0]


def test_reference_mrf_marginals_match_enumeration():
    unary, edges, pairwise = small_mrf(1)
    exact = ref.mrf_exact_marginals(unary, edges, pairwise)
    tr = ref.gibbs_mrf(unary, edges, pairwise, 600, chains=64, seed=2)
    f = chain_freq(tr.samples, 50, 6, 3)
    se = f.std(axis=0, ddof=1) / np.sqrt(f.shape[0])
    assert (np.abs(f.mean(axis=0) - exact) < SE_TOL * se + 1e-12).all()


def test_reference_mrf_stream_by_hand():
    """The first sweep of chain g written out as scalar loops (the documented addresses)."""
    unary, edges, pairwise = small_mrf(4)
    N, S = unary.shape
    seed, g = 77, 5
    x = [min(int(ref.u0(seed, g, 2**63 + i) * S), S - 1) for i in range(N)]
    col = ref.greedy_colouring(N, edges)
    for k in range(int(col.max()) + 1):
        for i in range(N):
            if col[i] != k:
                continue
            l = unary[i].copy()
            for e, (u, v) in enumerate(edges):
                if u == i:
                    l = l + pairwise[e][:, x[v]]
                elif v == i:
                    l = l + pairwise[e][x[u], :]
            w = np.exp(l - l.max())
            c = np.cumsum(w)
            t = ref.u0(seed, g, 0 * N + i) * c[-1]
            x[i] = int(np.argmax(t < c))
    tr = ref.gibbs_mrf(unary, edges, pairwise, 1, chains=1, seed=seed, chain_offset=g)
    assert tr.samples[0, 0].tolist() == x


# ============================================================================
# MRF: core


def test_mrf_marginals_match_enumeration():
    for shared in (False, True):
        unary, edges, pairwise = small_mrf(0, shared)
        exact = ref.mrf_exact_marginals(unary, edges, pairwise)
        tr = ks().gibbs_mrf(unary, edges, pairwise, 3000, chains=32, seed=11)
        f = chain_freq(tr.samples, 100, 6, 3)
        m = f.mean(axis=0)
        se = f.std(axis=0, ddof=1) / np.sqrt(f.shape[0])
        z = np.abs(m - exact) / se
        assert z.max() < SE_TOL, (shared, z.max(), m, exact)
        # counts are the histogram of the recorded samples
        hist = np.stack([(tr.samples == a).sum(axis=(0, 1)) for a in range(3)], axis=1)
        assert tr.counts.dtype == np.int64 and (tr.counts == hist).all()
        assert np.allclose(tr.marginals.sum(axis=1), 1.0)


@pytest.mark.parametrize("case", ["per_edge", "shared", "init", "record", "offset", "no_edges"])
def test_mrf_core_equals_twin(case):
    unary, edges, pairwise = small_mrf(5, shared=case == "shared")
    kw = dict(chains=3, seed=9)
    if case == "init":
        kw["init"] = np.random.default_rng(1).integers(0, 3, (3, 6))
    if case == "record":
        kw["record_every"] = 4
    if case == "offset":
        kw["chain_offset"] = 2**40 + 7
    if case == "no_edges":
        edges, pairwise = np.zeros((0, 2), np.int64), np.zeros((3, 3))
    a = ks().gibbs_mrf(unary, edges, pairwise, 23, **kw)
    b = ref.gibbs_mrf(unary, edges, pairwise, 23, **kw)
    assert_mrf_equal(a, b)


def test_mrf_larger_graph_core_equals_twin():
    rng = np.random.default_rng(8)
    N, S = 300, 4
    edges = np.concatenate([np.stack([np.arange(N), (np.arange(N) + 1) % N], 1),
                            np.stack([np.arange(N), (7 * np.arange(N) + 13) % N], 1)])
    edges = edges[edges[:, 0] != edges[:, 1]]
    unary = rng.standard_normal((N, S))
    pairwise = rng.standard_normal((len(edges), S, S))
    a = ks().gibbs_mrf(unary, edges.astype(np.int32), pairwise, 6, chains=2, seed=3)
    b = ref.gibbs_mrf(unary, edges, pairwise, 6, chains=2, seed=3)
    assert_mrf_equal(a, b)


def test_mrf_threads_give_identical_results():
    unary, edges, pairwise = small_mrf(2)
    rng = np.random.default_rng(0)
    N2, S2 = 4000, 3  # N*S >= 8192 with one chain: nodes of a class in parallel
    e2 = np.stack([np.arange(N2), (np.arange(N2) + 1) % N2], 1)
    u2 = rng.standard_normal((N2, S2))
    p2 = rng.standard_normal((S2, S2))

    def run():
        return [ks().gibbs_mrf(unary, edges, pairwise, 50, chains=8, seed=1),
                ks().gibbs_mrf(u2, e2, p2, 5, chains=1, seed=1)]

    with threads(1):
        one = run()
    with threads(2):
        two = run()
    for a, b in zip(one, two):
        assert_mrf_equal(a, b)


def test_mrf_chain_offset_split_equals_one_call():
    unary, edges, pairwise = small_mrf(3)
    whole = ks().gibbs_mrf(unary, edges, pairwise, 40, chains=7, seed=4)
    a = ks().gibbs_mrf(unary, edges, pairwise, 40, chains=3, seed=4)
    b = ks().gibbs_mrf(unary, edges, pairwise, 40, chains=4, seed=4, chain_offset=3)
    assert np.array_equal(np.concatenate([a.samples, b.samples]), whole.samples)
    assert np.array_equal(a.counts + b.counts, whole.counts)


def test_mrf_record_every_and_continuation():
    unary, edges, pairwise = small_mrf(6)
    full = ks().gibbs_mrf(unary, edges, pairwise, 12, chains=2, seed=5)
    thin = ks().gibbs_mrf(unary, edges, pairwise, 12, chains=2, seed=5, record_every=5)
    assert thin.samples.shape == (2, 2, 6)
    assert np.array_equal(thin.samples, full.samples[:, [4, 9]])
    assert np.array_equal(thin.state, full.state) and np.array_equal(full.state, full.samples[:, -1])
    # init: the given start is used as is (no random start)
    start = np.array([[0, 1, 2, 0, 1, 2], [2, 2, 2, 2, 2, 2]], dtype=np.int64)
    c = ks().gibbs_mrf(unary, edges, pairwise, 3, chains=2, seed=5, init=start)
    d = ref.gibbs_mrf(unary, edges, pairwise, 3, chains=2, seed=5, init=start)
    assert_mrf_equal(c, d)
    assert start.tolist()[0] == [0, 1, 2, 0, 1, 2]  # the caller's array is not touched
    z = ks().gibbs_mrf(unary, edges, pairwise, 0, chains=2, seed=5, init=start)
    assert z.samples.shape == (2, 0, 6) and z.counts.sum() == 0 and np.array_equal(z.state, start)
    samples, counts = full  # unpacks
    assert samples is full.samples and counts is full.counts


def test_mrf_same_seed_same_output_and_seeds_differ():
    unary, edges, pairwise = small_mrf(7)
    a = ks().gibbs_mrf(unary, edges, pairwise, 30, chains=2, seed=1)
    b = ks().gibbs_mrf(unary, edges, pairwise, 30, chains=2, seed=1)
    c = ks().gibbs_mrf(unary, edges, pairwise, 30, chains=2, seed=2)
    assert_mrf_equal(a, b)
    assert not np.array_equal(a.samples, c.samples)


def _mrf_bad_cases():
    unary, edges, pairwise = small_mrf(0)
    nan_u = unary.copy()
    nan_u[2, 1] = np.nan
    inf_p = pairwise.copy()
    inf_p[1, 0, 0] = np.inf
    e_out = edges.copy()
    e_out[3, 1] = 6
    e_neg = edges.copy()
    e_neg[0, 0] = -1
    e_loop = edges.copy()
    e_loop[2] = [4, 4]
    base = dict(unary=unary, edges=edges, pairwise=pairwise, n_sweeps=5)
    return [
        (dict(edges=e_out), IndexError, r"\[kexue.samplers.gibbs_mrf\] edges .*edges\[3\] = \(3, 6\)"),
        (dict(edges=e_neg), IndexError, r"edges must hold node indices in \[0, 6\)"),
        (dict(edges=e_loop), ValueError, r"edges\[2\] = \(4, 4\) is a self-loop"),
        (dict(edges=edges[:, :1]), ValueError, r"edges must have shape \[E,2\]"),
        (dict(edges=edges.astype(float)), TypeError, r"edges must be"),
        (dict(unary=nan_u), ValueError, r"unary must be finite.*nan at \(2, 1\)"),
        (dict(pairwise=inf_p), ValueError, r"pairwise must be finite.*\(1, 0, 0\)"),
        (dict(unary=unary[:, :1], pairwise=np.zeros((1, 1))), ValueError, r"S >= 2"),
        (dict(unary=unary[0]), ValueError, r"unary must be 2-D \[N,S\]"),
        (dict(unary=unary.astype(np.float32)), TypeError, r"unary must be float64"),
        (dict(pairwise=pairwise[:3]), ValueError, r"pairwise must have shape \(7, 3, 3\)"),
        (dict(pairwise=np.zeros((2, 2))), ValueError, r"pairwise must have shape \(3, 3\)"),
        (dict(pairwise=np.zeros(3)), ValueError, r"pairwise must be 2-D \[S,S\]"),
        (dict(n_sweeps=-1), ValueError, r"n_sweeps must be >= 0"),
        (dict(n_sweeps=2.0), TypeError, r"n_sweeps must be an int"),
        (dict(record_every=0), ValueError, r"record_every must be >= 1"),
        (dict(chain_offset=-1), ValueError, r"chain_offset must be >= 0"),
        (dict(seed=-1), ValueError, r"seed must be in \[0, 2\^64\)"),
        (dict(chains=-1), ValueError, r"chains must be >= 0"),
        (dict(chains=2, init=np.zeros((2, 5), int)), ValueError, r"init must have shape \(2, 6\)"),
        (dict(chains=1, init=np.full((1, 6), 3)), ValueError, r"init states must be in \[0, 3\); got 3 at \(0, 0\)"),
        (dict(chains=1, init=np.zeros((1, 6))), TypeError, r"init must be an integer array"),
    ], base


@pytest.mark.parametrize("i", range(len(_mrf_bad_cases()[0])))
def test_mrf_bad_inputs(i, impl):
    cases, base = _mrf_bad_cases()
    change, exc, pattern = cases[i]
    kw = {**base, **change}
    args = [kw.pop(k) for k in ("unary", "edges", "pairwise", "n_sweeps")]
    with pytest.raises(exc, match=pattern):
        impl.gibbs_mrf(*args, **kw)


# ============================================================================
# LDA fixtures


def planted_corpus(D=300, L=80, K=5, V=50, seed=0):
    """Topics phi [K,V] ~ Dirichlet(0.1), documents theta ~ Dirichlet(0.1), L tokens each."""
    rng = np.random.default_rng(seed)
    phi = rng.dirichlet(np.full(V, 0.1), size=K)
    docs = []
    for _ in range(D):
        theta = rng.dirichlet(np.full(K, 0.1))
        z = rng.choice(K, size=L, p=theta)
        docs.append(np.array([rng.choice(V, p=phi[k]) for k in z], dtype=np.int64))
    return docs, phi


def matched_tv(planted, found):
    """The smallest, over topic matchings, largest total-variation distance."""
    K = planted.shape[0]
    tv = 0.5 * np.abs(planted[:, None, :] - found[None, :, :]).sum(-1)
    return min(max(tv[i, p[i]] for i in range(K)) for p in itertools.permutations(range(K)))


def assert_lda_equal(a, b, ll_rtol=0.0):
    for f in ("topics", "doc_topic_counts", "topic_word_counts", "doc_topic", "topic_word"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape, f
        assert x.tobytes() == y.tobytes(), f
    if ll_rtol:
        np.testing.assert_allclose(a.loglik, b.loglik, rtol=ll_rtol)
    else:
        assert a.loglik.tobytes() == b.loglik.tobytes()


def tiny_corpus(seed=0, D=12):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 9, rng.integers(0, 9)) for _ in range(D)] + [np.array([3, 3, 8])]


# ============================================================================
# LDA: twin alone


def test_reference_lda_counts_and_loglik():
    docs = tiny_corpus(1)
    res = ref.lda(docs, 3, n_iter=4, seed=2)
    words = np.concatenate(docs)
    doc_of = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    kw = np.zeros((3, 9), int)
    np.add.at(kw, (res.topics, words), 1)
    dk = np.zeros((len(docs), 3), int)
    np.add.at(dk, (doc_of, res.topics), 1)
    assert (kw == res.topic_word_counts).all() and (dk == res.doc_topic_counts).all()
    assert res.loglik[-1] == pytest.approx(ref.lda_loglik(kw, 0.01), rel=1e-14)
    assert np.allclose(res.doc_topic.sum(1), 1) and np.allclose(res.topic_word.sum(1), 1)


def test_reference_lda_start_is_the_documented_stream():
    docs = tiny_corpus(2)
    T = sum(len(d) for d in docs)
    res = ref.lda(docs, 4, n_iter=0, seed=123)
    u = ref.u0(123, 0, 2**63 + np.arange(T, dtype=np.uint64))
    assert res.topics.tolist() == np.minimum((u * 4).astype(int), 3).tolist()
    assert res.loglik.shape == (0,)


def test_reference_lda_exact_one_token_by_hand():
    """Iteration 0 of exact LDA on one document: token 0's draw written out."""
    doc = np.array([0, 1, 1, 2, 0])
    K, alpha, eta, V = 3, 0.3, 0.2, 3
    z0 = np.minimum((ref.u0(5, 0, 2**63 + np.arange(5, dtype=np.uint64)) * K).astype(int), K - 1)
    nd = np.bincount(z0, minlength=K)
    nw = np.zeros((V, K), int)
    np.add.at(nw, (doc, z0), 1)
    nk = nw.sum(0)
    nd[z0[0]] -= 1
    nw[0, z0[0]] -= 1
    nk[z0[0]] -= 1
    p = ((nd + alpha) * (nw[0] + eta)) * (1.0 / (nk + V * eta))
    c = np.cumsum(p)
    want = int(np.argmax(ref.u0(5, 0, 0) * c[-1] < c))
    got = ref.lda([doc], K, alpha=alpha, eta=eta, n_iter=1, seed=5, exact=True)
    # token 0 is drawn first; later tokens do not change it
    assert got.topics[0] == want


# ============================================================================
# LDA: core


def test_lda_recovers_planted_topics():
    docs, phi = planted_corpus()
    res = ks().lda(docs, 5, alpha=0.1, eta=0.01, n_iter=300, seed=1)
    assert res.topic_word.shape == (5, 50) and res.doc_topic.shape == (300, 5)
    assert matched_tv(phi, res.topic_word) < 0.1
    ll = res.loglik
    assert ll.shape == (300,) and np.isfinite(ll).all()
    assert ll[-1] > ll[0] and ll[-50:].mean() > ll[:10].mean()
    assert np.allclose(res.doc_topic.sum(1), 1) and np.allclose(res.topic_word.sum(1), 1)
    assert res.loglik[-1] == pytest.approx(ref.lda_loglik(res.topic_word_counts, 0.01), rel=1e-12)


def test_lda_exact_mode():
    docs, _ = planted_corpus(D=60, L=40, seed=3)
    res = ks().lda(docs, 5, n_iter=60, seed=4, exact=True)
    assert res.loglik[-1] > res.loglik[0]
    one = ks().lda(docs, 5, n_iter=60, seed=4, exact=False)
    assert not np.array_equal(one.topics, res.topics)  # AD-LDA with 60 blocks is another chain


@pytest.mark.parametrize("exact", [False, True])
def test_lda_core_equals_twin(exact):
    docs = tiny_corpus(4, D=20)
    a = ks().lda(docs, 3, alpha=0.2, eta=0.05, n_iter=6, seed=8, exact=exact)
    b = ref.lda(docs, 3, alpha=0.2, eta=0.05, n_iter=6, seed=8, exact=exact)
    assert_lda_equal(a, b, ll_rtol=1e-12)


def test_lda_more_documents_than_blocks_core_equals_twin():
    docs, _ = planted_corpus(D=150, L=6, K=4, V=20, seed=6)  # 64 blocks of 2-3 documents
    a = ks().lda(docs, 4, n_iter=3, seed=2, n_words=25)
    b = ref.lda(docs, 4, n_iter=3, seed=2, n_words=25)
    assert_lda_equal(a, b, ll_rtol=1e-12)
    assert a.topic_word.shape == (4, 25) and (a.topic_word_counts[:, 20:] == 0).all()


def test_lda_threads_give_identical_results():
    docs, _ = planted_corpus(D=400, L=30, K=5, V=60, seed=9)

    def run():
        return [ks().lda(docs, 8, n_iter=15, seed=3), ks().lda(docs, 8, n_iter=5, seed=3, exact=True)]

    with threads(1):
        one = run()
    with threads(2):
        two = run()
    for a, b in zip(one, two):
        assert_lda_equal(a, b)


def test_lda_input_forms_agree():
    docs = tiny_corpus(7)
    lengths = [len(d) for d in docs]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.concatenate(docs)
    a = ks().lda(docs, 3, n_iter=4, seed=1)
    b = ks().lda((indptr, flat.astype(np.int32)), 3, n_iter=4, seed=1)
    c = ks().lda([list(map(int, d)) for d in docs], 3, n_iter=4, seed=1)
    for r in (b, c):
        assert_lda_equal(a, r)
    square = np.random.default_rng(0).integers(0, 7, (5, 4))
    d = ks().lda(square, 2, n_iter=3, seed=0)
    e = ks().lda(list(square), 2, n_iter=3, seed=0)
    assert_lda_equal(d, e)
    theta, phi, ll = a  # unpacks
    assert theta is a.doc_topic and phi is a.topic_word and ll is a.loglik
    assert "LDAResult(" in repr(a)


def test_lda_seed_changes_the_chain():
    docs = tiny_corpus(8)
    a = ks().lda(docs, 3, n_iter=5, seed=1)
    b = ks().lda(docs, 3, n_iter=5, seed=1)
    c = ks().lda(docs, 3, n_iter=5, seed=2)
    assert_lda_equal(a, b)
    assert not np.array_equal(a.topics, c.topics)


def test_lda_progress(capsys):
    ks().lda(tiny_corpus(0), 2, n_iter=3, progress=True)
    err = capsys.readouterr().err
    assert "[kexue.samplers.lda]" in err and "3/3" in err


LDA_BAD = [
    (dict(docs=[]), ValueError, r"\[kexue.samplers.lda\] docs must hold at least one document"),
    (dict(docs=[np.array([], int), np.array([], int)]), ValueError, r"at least one token"),
    (dict(docs=[np.array([0, -1, 2])]), IndexError, r"word ids in \[0, n_words = 3\); got -1 at token 1 of document 0"),
    (dict(docs=[np.array([0, 1]), np.array([4])], n_words=3), IndexError, r"got 4 at token 0 of document 1"),
    (dict(docs=[np.array([0.0, 1.0])]), TypeError, r"docs\[0\] must be an integer array"),
    (dict(n_topics=0), ValueError, r"n_topics must be >= 1; got 0"),
    (dict(n_topics=2.5), TypeError, r"n_topics must be an int"),
    (dict(alpha=0.0), ValueError, r"alpha must be a finite number > 0"),
    (dict(alpha=-1.0), ValueError, r"alpha must be a finite number > 0"),
    (dict(alpha=float("nan")), ValueError, r"alpha must be a finite number > 0"),
    (dict(eta=0.0), ValueError, r"eta must be a finite number > 0"),
    (dict(alpha="x"), TypeError, r"alpha must be a number"),
    (dict(n_iter=-1), ValueError, r"n_iter must be >= 0"),
    (dict(n_words=0), ValueError, r"n_words must be >= 1"),
    (dict(seed=2**64), ValueError, r"seed must be in \[0, 2\^64\)"),
    (dict(docs=(np.array([0, 3, 2]), np.array([0, 1, 1]))), ValueError, r"indptr"),
]


@pytest.mark.parametrize("i", range(len(LDA_BAD)))
def test_lda_bad_inputs(i, impl):
    change, exc, pattern = LDA_BAD[i]
    kw = dict(docs=[np.array([0, 1, 2]), np.array([2, 2])], n_topics=2, n_iter=2)
    kw.update(change)
    with pytest.raises(exc, match=pattern):
        impl.lda(kw.pop("docs"), kw.pop("n_topics"), **kw)


# ============================================================================
# docstrings


def test_reference_docstring_examples():
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(ref)
    assert sum(len(t.examples) for t in tests) >= 8
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


def test_docstring_examples():
    from kexue.samplers import _discrete

    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = doctest.DocTestFinder().find(_discrete)
    assert sum(len(t.examples) for t in tests) >= 10
    for t in tests:
        runner.run(t)
    assert runner.failures == 0
