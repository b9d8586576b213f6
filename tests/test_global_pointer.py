"""Oracles for kexue.global_pointer (spec decoders §3): the spec's worked numbers,
RoPE written out as explicit rotation matrices in the relative form
q_i^T R_{j-i} k_j, finite differences for the backward functions, decode round
trips, brute-force loss sums, hand-made F1 cases, and properties.

Every test runs twice through the ``impl`` fixture: on the compiled core
(``kexue.global_pointer``) and on its numpy twin
(``kexue.reference.global_pointer``). Core-vs-reference agreement on random
inputs is the generic registry test's job; here both are held to independent
oracles.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kexue.global_pointer as core
from kexue.reference import global_pointer as ref
from kexue.testing import assert_close

NEG_INF = -np.inf
SQRT2 = math.sqrt(2.0)


@pytest.fixture(scope="module", params=["core", "reference"])
def impl(request):
    return ref if request.param == "reference" else core


def assert_6dp(actual, expected):
    """The spec's worked numbers are rounded to 6 decimals."""
    assert_close(np.asarray(actual, dtype=np.float64), expected, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------
# oracles written from the spec


def rotation(p, D, base=10000.0, interleaved=True):
    """The D x D RoPE matrix R_p (spec §3.2): pair r rotated by the angle p * base^(-2r/D);
    pairs (2r, 2r+1) when interleaved, (r, r + D/2) otherwise."""
    R = np.eye(D)
    for r in range(D // 2):
        a, b = (2 * r, 2 * r + 1) if interleaved else (r, r + D // 2)
        theta = p * base ** (-2.0 * r / D)
        R[a, a], R[a, b] = math.cos(theta), -math.sin(theta)
        R[b, a], R[b, b] = math.sin(theta), math.cos(theta)
    return R


def valid_cells(B, T, mask, tril_mask):
    """bool [B,T,T]: cell (i, j) of row b keeps its score."""
    out = np.ones((B, T, T), bool)
    for b in range(B):
        for i in range(T):
            for j in range(T):
                if mask is not None and not (mask[b, i] and mask[b, j]):
                    out[b, i, j] = False
                if tril_mask and i > j:
                    out[b, i, j] = False
    return out


def gp_oracle(q, k, mask=None, rope=True, rope_base=10000.0, interleaved=True, tril_mask=True):
    """s[b,e,i,j] = q_i^T R_{j-i} k_j / sqrt(D) (the relative form of spec §3.1),
    -inf off the valid cells."""
    B, T, E, D = q.shape
    rel = {n: (rotation(n, D, rope_base, interleaved) if rope else np.eye(D))
           for n in range(-T + 1, T)}
    valid = valid_cells(B, T, mask, tril_mask)
    s = np.full((B, E, T, T), NEG_INF)
    for b in range(B):
        for e in range(E):
            for i in range(T):
                for j in range(T):
                    if valid[b, i, j]:
                        s[b, e, i, j] = q[b, i, e] @ rel[j - i] @ k[b, j, e] / math.sqrt(D)
    return s


def egp_oracle(h, W, bias=None, mask=None, rope=True, rope_base=10000.0, tril_mask=True):
    """Spec §3.3: q = h[0::2], k = h[1::2], c = h W + bias,
    s[b,e,i,j] = q_i^T R_{j-i} k_j / sqrt(d) + (c[b,i,2e+1] + c[b,j,2e]) / 2."""
    B, T, two_d = h.shape
    d = two_d // 2
    E = W.shape[1] // 2
    q, k = h[..., 0::2], h[..., 1::2]
    c = np.einsum("btx,xc->btc", h, W) + (0.0 if bias is None else bias)
    rel = {n: (rotation(n, d, rope_base) if rope else np.eye(d)) for n in range(-T + 1, T)}
    valid = valid_cells(B, T, mask, tril_mask)
    s = np.full((B, E, T, T), NEG_INF)
    for b in range(B):
        for i in range(T):
            for j in range(T):
                if valid[b, i, j]:
                    shared = q[b, i] @ rel[j - i] @ k[b, j] / math.sqrt(d)
                    for e in range(E):
                        s[b, e, i, j] = shared + 0.5 * (c[b, i, 2 * e + 1] + c[b, j, 2 * e])
    return s


def zlpr_brute(cells, gold):
    """log(1 + sum_{neg} e^s) + log(1 + sum_{pos} e^{-s}) over the finite cells, in
    Python floats with an explicit max shift; returns (loss, {cell: grad})."""
    def term(xs):
        m = max([0.0] + xs)
        z = math.exp(-m) + sum(math.exp(x - m) for x in xs)
        return m + math.log(z), [math.exp(x - m) / z for x in xs]

    live = [c for c, v in cells.items() if v != NEG_INF]
    neg = [c for c in live if c not in gold]
    pos = [c for c in live if c in gold]
    neg_loss, neg_w = term([cells[c] for c in neg])
    pos_loss, pos_w = term([-cells[c] for c in pos])
    grad = dict(zip(neg, neg_w))
    grad.update({c: -w for c, w in zip(pos, pos_w)})
    return neg_loss + pos_loss, grad


def loss_brute(scores, spans):
    B, E, T, _ = scores.shape
    gold = {tuple(int(v) for v in r) for r in np.asarray(spans).reshape(-1, 4)}
    loss = np.zeros((B, E))
    grad = np.zeros(scores.shape)
    for b in range(B):
        for e in range(E):
            cells = {(i, j): float(scores[b, e, i, j]) for i in range(T) for j in range(T)}
            mine = {(i, j) for (bb, ee, i, j) in gold if (bb, ee) == (b, e)}
            loss[b, e], g = zlpr_brute(cells, mine)
            for (i, j), v in g.items():
                grad[b, e, i, j] = v
    return loss, grad


def _finite_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        if not np.isfinite(x[i]):
            continue
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


# ----------------------------------------------------------------------------
# spec §3.5 worked example: one head, d = 2 (w_0 = 1, angle = position), n = 4

Q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -1.0]])
K = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.5]])
Q_ROPE = [[1, 0], [-0.841471, 0.540302], [-1.325444, 0.493151], [-0.353876, 1.060553]]
K_ROPE = [[1, 0], [-0.301169, 1.381773], [-0.909297, -0.416147], [0.919432, -0.636116]]
RAW = [[0.707107, -0.212958, -0.642970, 0.650137],
       [-0.595010, 0.707107, 0.382051, -0.790101],
       [-0.937231, 0.764103, 0.707107, -1.083540],
       [-0.250228, 1.111586, -0.084547, -0.707107]]
PAD_LAST = np.array([[True, True, True, False]])
FINITE = {(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)}


def _one_head(x):
    """[T, D] -> [1, T, 1, D]"""
    return np.asarray(x, dtype=np.float64)[None, :, None, :]


def test_worked_rope_vectors(impl):
    """R_p q_p read back through the scores: a key e_c at position 0 (unrotated)
    gives s(i, 0) = (R_i q_i)[c] / sqrt(2); likewise a query e_c at position 0."""
    rng = np.random.default_rng(0)
    for interleaved in (True, False):  # one pair when D = 2: both layouts agree
        q_rope = np.zeros((4, 2))
        k_rope = np.zeros((4, 2))
        for c in range(2):
            probe = rng.normal(size=(4, 2))
            probe[0] = np.eye(2)[c]
            s = impl.scores(_one_head(Q), _one_head(probe), tril_mask=False,
                            interleaved=interleaved)
            q_rope[:, c] = s[0, 0, :, 0] * SQRT2
            s = impl.scores(_one_head(probe), _one_head(K), tril_mask=False,
                            interleaved=interleaved)
            k_rope[:, c] = s[0, 0, 0, :] * SQRT2
        assert_6dp(q_rope, Q_ROPE)
        assert_6dp(k_rope, K_ROPE)


def test_worked_raw_scores(impl):
    s = impl.scores(_one_head(Q), _one_head(K), tril_mask=False)
    assert s.shape == (1, 1, 4, 4) and s.dtype == np.float64
    assert_6dp(s[0, 0], RAW)
    assert_6dp(s[0, 0, 0, 2], -0.642970)
    # s(0,2) = q_0^T R(2) k_2 / sqrt(2)
    assert_6dp(Q[0] @ rotation(2, 2) @ K[2] / SQRT2, -0.642970)


def test_worked_masking_decode_loss(impl):
    s = impl.scores(_one_head(Q), _one_head(K), mask=PAD_LAST)
    finite = {(i, j) for i in range(4) for j in range(4) if np.isfinite(s[0, 0, i, j])}
    assert finite == FINITE
    assert np.all(np.isneginf(s[0, 0][~np.isfinite(s[0, 0])]))
    for i, j in FINITE:
        assert_6dp(s[0, 0, i, j], RAW[i][j])
    spans = impl.decode(s)
    assert spans.dtype == np.int64
    assert spans.tolist() == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 2], [0, 0, 2, 2]]
    gold = np.array([[0, 0, 0, 0], [0, 0, 1, 2]])
    loss = impl.loss(s, gold)
    assert loss.shape == (1, 1)
    assert_6dp(loss, [[2.632029]])
    loss, grad = impl.loss(s, gold, return_grad=True)
    assert_6dp(loss, [[2.632029]])
    assert np.all(grad[0, 0][~np.isfinite(s[0, 0])] == 0)


def _egp_inputs():
    """h = interleave(q, k) of the §3.5 vectors; W, bias with b_0 = [0.3,0.5], b_1 = [0.2,0.6]."""
    h = np.zeros((1, 4, 4))
    h[0, :, 0::2] = Q
    h[0, :, 1::2] = K
    # h_0 = [1, 1, 0, 0], h_1 = [0, 1, 1, 1]; with bias [0.1, -0.1]:
    # b_0 = W[0] + W[1] + bias, b_1 = W[1] + W[2] + W[3] + bias
    W = np.array([[0.2, 0.6], [0.0, 0.0], [0.1, 0.7], [0.0, 0.0]])
    bias = np.array([0.1, -0.1])
    return h, W, bias


def test_worked_egp(impl):
    h, W, bias = _egp_inputs()
    s = impl.efficient_scores(h, W, bias, tril_mask=False)
    assert s.shape == (1, 1, 4, 4)
    assert_6dp(s[0, 0, 0, 0], 1.107107)
    assert_6dp(s[0, 0, 0, 1], 0.137042)
    # the same through W alone (no bias)
    W2 = W.copy()
    W2[0] += bias
    W2[2] += bias
    s2 = impl.efficient_scores(h, W2, tril_mask=False)
    assert_6dp(s2[0, 0, 0, 0], 1.107107)
    assert_6dp(s2[0, 0, 0, 1], 0.137042)
    # with W = 0 the scores are GP's raw scores of the same q, k
    s0 = impl.efficient_scores(h, np.zeros((4, 2)), tril_mask=False)
    assert_6dp(s0[0, 0], RAW)


# ----------------------------------------------------------------------------
# scores against the oracle; RoPE layouts


SCORE_CASES = [
    pytest.param({"rope": True, "interleaved": True}, id="rope-interleaved"),
    pytest.param({"rope": True, "interleaved": False}, id="rope-half"),
    pytest.param({"rope": True, "interleaved": True, "rope_base": 100.0}, id="rope-base100"),
    pytest.param({"rope": False}, id="norope"),
]


@pytest.mark.parametrize("kw", SCORE_CASES)
@pytest.mark.parametrize("masking", ["none", "mask", "mask-notril"])
def test_scores_match_oracle(impl, kw, masking):
    rng = np.random.default_rng(1)
    B, T, E, D = 2, 5, 2, 6
    q = rng.normal(size=(B, T, E, D))
    k = rng.normal(size=(B, T, E, D))
    mkw = dict(kw)
    if masking != "none":
        mkw["mask"] = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], bool)
    if masking == "mask-notril":
        mkw["tril_mask"] = False
    got = impl.scores(q, k, **mkw)
    assert got.shape == (B, E, T, T) and got.dtype == np.float64
    assert_close(got, gp_oracle(q, k, **mkw))


def test_rope_layouts(impl):
    rng = np.random.default_rng(2)
    B, T, E, D = 2, 6, 1, 8
    q = rng.normal(size=(B, T, E, D))
    k = rng.normal(size=(B, T, E, D))
    inter = impl.scores(q, k, tril_mask=False, interleaved=True)
    half = impl.scores(q, k, tril_mask=False, interleaved=False)
    assert not np.allclose(inter, half)
    # rotate-half == adjacent pairs after moving dims (r, r + D/2) next to each other
    perm = np.stack([np.arange(D // 2), np.arange(D // 2) + D // 2], axis=1).ravel()
    assert_close(impl.scores(q[..., perm], k[..., perm], tril_mask=False, interleaved=True), half)
    # rope=False: plain q . k / sqrt(D), whatever the layout or base
    plain = np.einsum("bied,bjed->beij", q, k) / math.sqrt(D)
    for kw in ({}, {"interleaved": False}, {"rope_base": 7.0}):
        assert_close(impl.scores(q, k, rope=False, tril_mask=False, **kw), plain)
    assert not np.allclose(inter, plain)


@pytest.mark.parametrize("interleaved", [True, False])
def test_rope_depends_only_on_offset(impl, interleaved):
    """Shifting every token one position later shifts the score matrix along its
    diagonal: s'(i+1, j+1) = s(i, j)."""
    rng = np.random.default_rng(3)
    B, T, E, D = 2, 6, 2, 4
    q = rng.normal(size=(B, T, E, D))
    k = rng.normal(size=(B, T, E, D))
    s = impl.scores(q, k, tril_mask=False, interleaved=interleaved)
    rolled = impl.scores(np.roll(q, 1, axis=1), np.roll(k, 1, axis=1), tril_mask=False,
                         interleaved=interleaved)
    assert_close(rolled[..., 1:, 1:], s[..., :-1, :-1])
    # the same vector at every position: s(i, j) depends on j - i alone (Toeplitz)
    same = impl.scores(np.repeat(q[:, :1], T, axis=1), np.repeat(k[:, :1], T, axis=1),
                       tril_mask=False, interleaved=interleaved)
    for n in range(-T + 1, T):
        diag = np.diagonal(same, offset=n, axis1=2, axis2=3)
        assert_close(diag, np.repeat(diag[..., :1], diag.shape[-1], axis=-1))
    assert not np.allclose(np.diagonal(same, 1, 2, 3)[..., 0], np.diagonal(same, 2, 2, 3)[..., 0])


def test_scores_float32(impl):
    rng = np.random.default_rng(4)
    q = rng.normal(size=(2, 7, 3, 8)).astype(np.float32)
    k = rng.normal(size=(2, 7, 3, 8)).astype(np.float32)
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3], bool)
    got = impl.scores(q, k, mask=mask)
    assert got.dtype == np.float32
    assert_close(got, gp_oracle(q.astype(np.float64), k.astype(np.float64), mask=mask),
                 rtol=1e-4, atol=1e-4)
    h = rng.normal(size=(2, 7, 8)).astype(np.float32)
    W = rng.normal(size=(8, 6)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    got = impl.efficient_scores(h, W, b, mask=mask)
    assert got.dtype == np.float32
    want = egp_oracle(h.astype(np.float64), W.astype(np.float64), b.astype(np.float64), mask=mask)
    assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_scores_errors(impl):
    q = np.zeros((1, 3, 1, 3))
    with pytest.raises(ValueError, match="q"):
        impl.scores(q, q)  # odd D with rope
    assert impl.scores(q, q, rope=False).shape == (1, 1, 3, 3)
    q = np.zeros((1, 3, 1, 4))
    with pytest.raises(ValueError, match="mask"):
        impl.scores(q, q, mask=np.ones((1, 4), bool))
    with pytest.raises(ValueError, match="mask"):
        impl.efficient_scores(np.zeros((1, 3, 4)), np.zeros((4, 2)), mask=np.ones((1, 2), bool))


# ----------------------------------------------------------------------------
# Efficient GlobalPointer


@pytest.mark.parametrize("rope", [True, False], ids=["rope", "norope"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_efficient_scores_match_oracle(impl, rope, with_bias):
    rng = np.random.default_rng(5)
    B, T, d, E = 2, 5, 4, 3
    h = rng.normal(size=(B, T, 2 * d))
    W = rng.normal(size=(2 * d, 2 * E))
    bias = rng.normal(size=2 * E) if with_bias else None
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 1, 1]], bool)
    for kw in ({}, {"mask": mask}, {"mask": mask, "tril_mask": False}):
        got = impl.efficient_scores(h, W, bias, rope=rope, **kw)
        assert got.shape == (B, E, T, T)
        assert_close(got, egp_oracle(h, W, bias, rope=rope, **kw))


def test_efficient_equals_gp_with_shared_heads(impl):
    """With W = 0, EGP is GP with q = h[0::2], k = h[1::2] shared by every type."""
    rng = np.random.default_rng(6)
    B, T, d, E = 2, 6, 4, 3
    h = rng.normal(size=(B, T, 2 * d))
    q = np.repeat(h[..., 0::2][:, :, None], E, axis=2)
    k = np.repeat(h[..., 1::2][:, :, None], E, axis=2)
    mask = np.array([[1] * 6, [1] * 3 + [0] * 3], bool)
    assert_close(impl.efficient_scores(h, np.zeros((2 * d, 2 * E)), mask=mask),
                 impl.scores(q, k, mask=mask))


# ----------------------------------------------------------------------------
# backward functions against central finite differences


BACKWARD_CASES = [
    pytest.param({"rope": True, "interleaved": True}, id="rope"),
    pytest.param({"rope": True, "interleaved": False, "tril_mask": False}, id="rope-half-notril"),
    pytest.param({"rope": False}, id="norope"),
]


def _weighted_sum(s, d_scores):
    return float(np.sum(np.where(np.isfinite(s), d_scores * np.where(np.isfinite(s), s, 0), 0)))


@pytest.mark.parametrize("kw", BACKWARD_CASES)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_scores_backward_finite_differences(impl, kw, masked):
    rng = np.random.default_rng(7)
    B, T, E, D = 2, 4, 2, 4
    q = rng.normal(size=(B, T, E, D))
    k = rng.normal(size=(B, T, E, D))
    g = rng.normal(size=(B, E, T, T))
    kw = dict(kw)
    if masked:
        kw["mask"] = np.array([[1, 1, 0, 1], [1, 1, 1, 0]], bool)
    dq, dk = impl.scores_backward(q, k, g, **kw)
    assert dq.shape == dk.shape == q.shape and dq.dtype == np.float64

    def f():
        return _weighted_sum(gp_oracle(q, k, **kw), g)

    assert_close(dq, _finite_difference(f, q), rtol=1e-6, atol=1e-8)
    assert_close(dk, _finite_difference(f, k), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("rope", [True, False], ids=["rope", "norope"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_efficient_scores_backward_finite_differences(impl, rope, with_bias):
    rng = np.random.default_rng(8)
    B, T, d, E = 2, 4, 2, 2
    h = rng.normal(size=(B, T, 2 * d))
    W = rng.normal(size=(2 * d, 2 * E))
    bias = rng.normal(size=2 * E)
    g = rng.normal(size=(B, E, T, T))
    mask = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], bool)
    kw = {"mask": mask, "rope": rope}
    dh, dW, db = impl.efficient_scores_backward(h, W, g, bias if with_bias else None, **kw)
    assert dh.shape == h.shape and dW.shape == W.shape and db.shape == (2 * E,)
    b_used = bias if with_bias else np.zeros(2 * E)  # dbias without a bias: at bias = 0

    def f():
        return _weighted_sum(egp_oracle(h, W, b_used, **kw), g)

    assert_close(dh, _finite_difference(f, h), rtol=1e-6, atol=1e-8)
    assert_close(dW, _finite_difference(f, W), rtol=1e-6, atol=1e-8)
    assert_close(db, _finite_difference(f, b_used), rtol=1e-6, atol=1e-8)


def test_backward_ignores_upstream_on_masked_cells(impl):
    """Masked cells contribute nothing, whatever d_scores holds there (NaN included)."""
    rng = np.random.default_rng(9)
    B, T, E, D = 2, 5, 2, 4
    q = rng.normal(size=(B, T, E, D))
    k = rng.normal(size=(B, T, E, D))
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], bool)
    s = impl.scores(q, k, mask=mask)
    g = rng.normal(size=s.shape)
    clean = np.where(np.isfinite(s), g, 0.0)
    dirty = np.where(np.isfinite(s), g, np.nan)
    for x, y in zip(impl.scores_backward(q, k, dirty, mask=mask),
                    impl.scores_backward(q, k, clean, mask=mask)):
        assert_close(x, y)
        assert np.all(np.isfinite(x))
    h = rng.normal(size=(B, T, 2 * D))
    W = rng.normal(size=(2 * D, 2 * E))
    for x, y in zip(impl.efficient_scores_backward(h, W, dirty, mask=mask),
                    impl.efficient_scores_backward(h, W, clean, mask=mask)):
        assert_close(x, y)
        assert np.all(np.isfinite(x))


def test_backward_float32(impl):
    rng = np.random.default_rng(10)
    q = rng.normal(size=(2, 6, 2, 4)).astype(np.float32)
    k = rng.normal(size=(2, 6, 2, 4)).astype(np.float32)
    g = rng.normal(size=(2, 2, 6, 6)).astype(np.float32)
    got = impl.scores_backward(q, k, g)
    want = impl.scores_backward(q.astype(np.float64), k.astype(np.float64), g.astype(np.float64))
    for x32, x64 in zip(got, want):
        assert x32.dtype == np.float32
        assert_close(x32, x64, rtol=1e-4, atol=1e-4)
    h = rng.normal(size=(2, 6, 8)).astype(np.float32)
    W = rng.normal(size=(8, 4)).astype(np.float32)
    got = impl.efficient_scores_backward(h, W, g)
    want = impl.efficient_scores_backward(h.astype(np.float64), W.astype(np.float64),
                                          g.astype(np.float64))
    for x32, x64 in zip(got, want):
        assert x32.dtype == np.float32
        assert_close(x32, x64, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------
# decode


def _spans_scores(rng, B, E, T, spans, *, tril=True):
    """Scores with +5..+8 at the given spans, -8..-5 elsewhere, -inf below the diagonal."""
    s = -rng.uniform(5, 8, size=(B, E, T, T))
    for b, e, i, j in spans:
        s[b, e, i, j] = rng.uniform(5, 8)
    if tril:
        s[..., np.tril_indices(T, -1)[0], np.tril_indices(T, -1)[1]] = NEG_INF
    return s


def test_decode_round_trip(impl):
    rng = np.random.default_rng(11)
    B, E, T = 3, 2, 7
    cells = [(b, e, i, j) for b in range(B) for e in range(E) for i in range(T)
             for j in range(i, T)]
    for n in (0, 1, 5, 20):
        pick = rng.choice(len(cells), size=n, replace=False)
        spans = sorted(cells[p] for p in pick)
        s = _spans_scores(rng, B, E, T, spans)
        got = impl.decode(s)
        assert got.dtype == np.int64 and got.shape == (n, 4)
        assert got.tolist() == [list(x) for x in spans]
        # float32 scores decode the same
        assert impl.decode(s.astype(np.float32)).tolist() == got.tolist()


def test_decode_sorted_lexicographically(impl):
    rng = np.random.default_rng(12)
    s = rng.normal(size=(3, 4, 6, 6))
    got = impl.decode(s)
    assert len(got) > 10
    rows = [tuple(r) for r in got.tolist()]
    assert rows == sorted(rows)
    want = sorted((b, e, i, j) for b, e, i, j in zip(*np.nonzero(s > 0)))
    assert rows == [tuple(int(v) for v in r) for r in want]


def test_decode_threshold_and_neg_inf(impl):
    s = np.array([[[[0.5, 0.0, -0.5], [NEG_INF, 1.0, 0.2], [NEG_INF, NEG_INF, -2.0]]]])
    assert impl.decode(s).tolist() == [[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 2]]
    assert impl.decode(s, threshold=0.5).tolist() == [[0, 0, 1, 1]]  # strictly greater
    assert impl.decode(s, threshold=-1.0).tolist() == [
        [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 2], [0, 0, 1, 1], [0, 0, 1, 2]]
    got = impl.decode(s, threshold=-np.inf)  # -inf cells are never spans
    assert got.shape == (6, 4) and all(r[2] <= r[3] for r in got.tolist())
    empty = impl.decode(np.full((2, 3, 4, 4), -1.0))
    assert empty.shape == (0, 4) and empty.dtype == np.int64


def test_decode_mask_excludes_padding(impl):
    s = np.full((2, 1, 4, 4), 3.0)  # every cell a span
    mask = np.array([[1, 1, 1, 0], [0, 1, 1, 1]], bool)
    got = {tuple(r) for r in impl.decode(s, mask=mask).tolist()}
    want = {(b, 0, i, j) for b in range(2) for i in range(4) for j in range(4)
            if mask[b, i] and mask[b, j]}
    assert got == want
    # mask and flat together
    flat = impl.decode(s, mask=mask, flat=True).tolist()
    for b, _, i, j in flat:
        assert mask[b, i] and mask[b, j]


def test_decode_flat_nested(impl):
    T = 8
    s = np.full((2, 2, T, T), -1.0)
    s[0, 1, 0, 3] = 5.0  # outer span, type 1
    s[0, 0, 1, 2] = 6.0  # nested inside it, higher score: kept, the outer one dropped
    s[0, 0, 5, 6] = 4.0  # kept
    s[0, 1, 4, 5] = 3.0  # overlaps (5,6) of another type, lower: dropped
    s[0, 0, 7, 7] = 0.5  # adjacent to (5,6), no overlap: kept
    s[1, 1, 0, 3] = 5.0  # batch row 1 alone: kept whatever row 0 holds
    assert impl.decode(s).tolist() == [
        [0, 0, 1, 2], [0, 0, 5, 6], [0, 0, 7, 7], [0, 1, 0, 3], [0, 1, 4, 5], [1, 1, 0, 3]]
    assert impl.decode(s, flat=True).tolist() == [
        [0, 0, 1, 2], [0, 0, 5, 6], [0, 0, 7, 7], [1, 1, 0, 3]]


def test_decode_flat_ties(impl):
    """Equal scores: the lexicographically smaller (type, start, end) is kept first."""
    s = np.full((1, 2, 4, 4), -1.0)
    s[0, 1, 0, 1] = 2.0
    s[0, 0, 1, 2] = 2.0  # ties with (1, 0, 1), smaller type: kept
    s[0, 0, 3, 3] = 2.0
    s[0, 1, 2, 3] = 2.0  # overlaps both kept ones
    assert impl.decode(s, flat=True).tolist() == [[0, 0, 1, 2], [0, 0, 3, 3]]
    s[0, 1, 0, 1] = 2.5  # now (1, 0, 1) goes first and (0, 1, 2) overlaps it
    assert impl.decode(s, flat=True).tolist() == [[0, 0, 3, 3], [0, 1, 0, 1]]


def _flat_greedy(s, threshold=0.0):
    """Spec: per batch row, candidates by descending score then (type, start, end);
    keep one unless it overlaps an already kept span of any type."""
    B, E, T, _ = s.shape
    kept = []
    for b in range(B):
        cand = [(e, i, j) for e in range(E) for i in range(T) for j in range(T)
                if s[b, e, i, j] > threshold and s[b, e, i, j] != NEG_INF]
        cand.sort(key=lambda c: (-s[b][c], c))
        mine = []
        for e, i, j in cand:
            if not any(i <= j2 and i2 <= j for _, i2, j2 in mine):
                mine.append((e, i, j))
        kept += [(b,) + c for c in mine]
    return sorted(kept)


def test_decode_flat_random(impl):
    rng = np.random.default_rng(13)
    for _ in range(5):
        s = rng.normal(size=(3, 3, 6, 6)) + 0.5
        s[..., np.tril_indices(6, -1)[0], np.tril_indices(6, -1)[1]] = NEG_INF
        got = [tuple(r) for r in impl.decode(s, flat=True, threshold=0.2).tolist()]
        assert got == _flat_greedy(s, threshold=0.2)
        every = {tuple(r) for r in impl.decode(s, threshold=0.2).tolist()}
        assert set(got) <= every
        for b in range(3):  # kept spans of a row never overlap; each dropped span
            mine = [r for r in got if r[0] == b]  # overlaps a kept span scoring at least as much
            for x in mine:
                for y in mine:
                    assert x == y or not (x[2] <= y[3] and y[2] <= x[3])
            for r in every - set(got):
                if r[0] == b:
                    assert any(r[2] <= y[3] and y[2] <= r[3] and s[y] >= s[r] for y in mine)


# ----------------------------------------------------------------------------
# loss


def _loss_case(rng, B=2, E=3, T=4, n=5, masked=True, scale=2.0):
    s = rng.normal(size=(B, E, T, T)) * scale
    s[..., np.tril_indices(T, -1)[0], np.tril_indices(T, -1)[1]] = NEG_INF
    if masked:
        s[0, :, T - 1, :] = NEG_INF
        s[0, :, :, T - 1] = NEG_INF
    cells = [(b, e, i, j) for b in range(B) for e in range(E) for i in range(T)
             for j in range(i, T)]
    spans = np.array([cells[p] for p in rng.choice(len(cells), size=n, replace=False)],
                     dtype=np.int64).reshape(-1, 4)
    return s, spans


@pytest.mark.parametrize("n", [0, 1, 6, 30])
def test_loss_brute(impl, n):
    rng = np.random.default_rng(14 + n)
    s, spans = _loss_case(rng, n=n)
    want_loss, want_grad = loss_brute(s, spans)
    got = impl.loss(s, spans)
    assert got.shape == (2, 3) and got.dtype == np.float64
    assert_close(got, want_loss)
    loss, grad = impl.loss(s, spans, return_grad=True)
    assert grad.shape == s.shape and grad.dtype == np.float64
    assert_close(loss, want_loss)
    assert_close(grad, want_grad)
    assert np.all(grad[np.isneginf(s)] == 0)


def test_loss_all_gold_and_t1(impl):
    rng = np.random.default_rng(15)
    s = rng.normal(size=(2, 2, 3, 3))
    spans = np.array([(b, e, i, j) for b in range(2) for e in range(2) for i in range(3)
                      for j in range(3)])
    for ss, sp in ((s, spans), (s[:, :, :1, :1], spans[(spans[:, 2] == 0) & (spans[:, 3] == 0)])):
        loss, grad = impl.loss(ss, sp, return_grad=True)
        want_loss, want_grad = loss_brute(ss, sp)
        assert_close(loss, want_loss)
        assert_close(grad, want_grad)
        assert np.all(grad <= 0)


def test_loss_gold_on_masked_cell_and_duplicates(impl):
    rng = np.random.default_rng(16)
    s, spans = _loss_case(rng, n=4)
    base = impl.loss(s, spans, return_grad=True)
    # a gold span on a -inf cell (below the diagonal / on padding) is excluded
    extra = np.concatenate([spans, [[0, 1, 2, 1], [0, 2, 3, 3]]])
    got = impl.loss(s, extra, return_grad=True)
    assert_close(got[0], base[0])
    assert_close(got[1], base[1])
    # duplicates count once, in any order
    dup = np.concatenate([spans, spans[::-1], spans[:1]])
    got = impl.loss(s, dup, return_grad=True)
    assert_close(got[0], base[0])
    assert_close(got[1], base[1])
    # an empty span list and a list of lists
    assert_close(impl.loss(s, np.zeros((0, 4), np.int64)), loss_brute(s, np.zeros((0, 4)))[0])
    assert_close(impl.loss(s, spans.astype(np.int32)), base[0])


def test_loss_grad_finite_differences(impl):
    rng = np.random.default_rng(17)
    s, spans = _loss_case(rng, n=6)
    _, grad = impl.loss(s, spans, return_grad=True)
    fd = _finite_difference(lambda: loss_brute(s, spans)[0].sum(), s)
    assert_close(grad, fd, rtol=1e-6, atol=1e-8)


def test_loss_through_scores_backward(impl):
    """The training step: scores -> loss grad -> scores_backward equals finite
    differences of loss(scores(q, k)) in q."""
    rng = np.random.default_rng(18)
    B, T, E, D = 1, 4, 2, 4
    q = rng.normal(size=(B, T, E, D))
    k = rng.normal(size=(B, T, E, D))
    mask = np.array([[1, 1, 1, 0]], bool)
    spans = np.array([[0, 0, 0, 1], [0, 1, 2, 2], [0, 1, 0, 0]])
    s = impl.scores(q, k, mask=mask)
    _, g = impl.loss(s, spans, return_grad=True)
    dq, _ = impl.scores_backward(q, k, g, mask=mask)
    fd = _finite_difference(lambda: loss_brute(gp_oracle(q, k, mask=mask), spans)[0].sum(), q)
    assert_close(dq, fd, rtol=1e-6, atol=1e-8)


def test_loss_large_scores_and_float32(impl):
    rng = np.random.default_rng(19)
    s, spans = _loss_case(rng, n=8, scale=1e4)
    loss, grad = impl.loss(s, spans, return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    want_loss, want_grad = loss_brute(s, spans)
    assert_close(loss, want_loss)
    assert_close(grad, want_grad)
    s32 = _loss_case(rng, n=8, scale=3.0)[0].astype(np.float32)
    for x32 in (s32, (s32 * np.float32(1e4)).astype(np.float32)):
        loss32, grad32 = impl.loss(x32, spans, return_grad=True)
        loss64, grad64 = loss_brute(x32.astype(np.float64), spans)
        assert loss32.dtype == grad32.dtype == np.float32
        assert np.all(np.isfinite(loss32)) and np.all(np.isfinite(grad32))
        assert_close(loss32, loss64, rtol=1e-4, atol=1e-4)
        assert_close(grad32, grad64, rtol=1e-4, atol=1e-4)


def test_loss_errors(impl):
    s = np.zeros((2, 3, 4, 4))
    for bad in ([[2, 0, 0, 0]], [[0, 3, 0, 0]], [[0, 0, 4, 0]], [[0, 0, 0, 4]],
                [[-1, 0, 0, 0]], [[0, 0, 0, -1]]):
        with pytest.raises(IndexError, match="spans"):
            impl.loss(s, np.array(bad))


# ----------------------------------------------------------------------------
# f1


def test_f1_hand_cases(impl):
    a, b, c, d = [0, 0, 1, 2], [0, 1, 1, 2], [1, 0, 0, 0], [0, 0, 3, 3]
    empty = np.zeros((0, 4), np.int64)

    def f1(pred, gold):
        out = impl.f1(np.array(pred, np.int64).reshape(-1, 4),
                      np.array(gold, np.int64).reshape(-1, 4))
        assert len(out) == 3 and all(isinstance(x, float) for x in out)
        return out

    assert f1(empty, empty) == (1.0, 1.0, 1.0)
    assert f1(empty, [a, b]) == (1.0, 0.0, 0.0)
    assert f1([a, b], empty) == (0.0, 1.0, 0.0)
    assert f1([a, b], [a, b]) == (1.0, 1.0, 1.0)
    assert f1([a, b], [c, d]) == (0.0, 0.0, 0.0)
    # partial overlap: tp = 1, |pred| = 2, |gold| = 3 (b differs from a only in type)
    p, r, f = f1([a, b], [a, c, d])
    assert (p, r) == (0.5, 1 / 3) and abs(f - 2 / 5) < 1e-15
    # duplicates count once, on either side
    assert f1([a, a, b, a], [a, c, c]) == f1([a, b], [a, c])
    p, r, f = f1([a, a, b, a], [a, c, c])
    assert (p, r, f) == (0.5, 0.5, 0.5)
    # order does not matter
    assert f1([b, a], [d, c, a]) == f1([a, b], [a, c, d])


def test_f1_of_decode(impl):
    rng = np.random.default_rng(20)
    s = rng.normal(size=(2, 2, 5, 5))
    pred = impl.decode(s)
    p, r, f = impl.f1(pred, pred)
    assert (p, r, f) == (1.0, 1.0, 1.0)
    gold = pred[::2]
    p, r, f = impl.f1(pred, gold)
    assert p == len(gold) / len(pred) and r == 1.0


# ----------------------------------------------------------------------------
# properties (hypothesis)


@st.composite
def gp_problems(draw):
    B = draw(st.integers(1, 2))
    E = draw(st.integers(1, 3))
    T = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    s = rng.normal(size=(B, E, T, T)) * draw(st.sampled_from([0.5, 3.0]))
    s[..., np.tril_indices(T, -1)[0], np.tril_indices(T, -1)[1]] = NEG_INF
    mask = rng.random((B, T)) < 0.8
    s = np.where(mask[:, None, :, None] & mask[:, None, None, :], s, NEG_INF)
    n = draw(st.integers(0, 6))
    spans = np.stack([rng.integers(0, B, n), rng.integers(0, E, n), rng.integers(0, T, n),
                      rng.integers(0, T, n)], axis=1).astype(np.int64).reshape(-1, 4)
    return s, spans


PROPERTY = settings(max_examples=30, deadline=None)


@PROPERTY
@given(p=gp_problems())
def test_prop_loss_nonnegative_and_grad_groups(impl, p):
    s, spans = p
    loss, grad = impl.loss(s, spans, return_grad=True)
    assert np.all(loss >= 0)
    gold = np.zeros(s.shape, bool)
    for b, e, i, j in spans:
        gold[b, e, i, j] = True
    live = np.isfinite(s)
    assert np.all(grad[~live] == 0)
    pos_sum = np.where(live & gold, grad, 0).sum((-1, -2))
    neg_sum = np.where(live & ~gold, grad, 0).sum((-1, -2))
    assert np.all((pos_sum > -1) & (pos_sum <= 0))
    assert np.all((neg_sum >= 0) & (neg_sum < 1))


@PROPERTY
@given(p=gp_problems())
def test_prop_decode_is_positive_cells(impl, p):
    s, _ = p
    got = impl.decode(s)
    want = np.argwhere(s > 0)
    assert got.tolist() == want.tolist()
    flat = impl.decode(s, flat=True)
    assert [tuple(r) for r in flat.tolist()] == _flat_greedy(s)
