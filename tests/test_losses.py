"""Oracles for kexue.losses (ZLPR, spec decoders §4): the spec's worked numbers,
brute-force sums over the classes, finite differences, equivalences between the
three losses, and properties.

Every test runs twice through the ``impl`` fixture: on the compiled core
(``kexue.losses``) and on its numpy twin (``kexue.reference.losses``).
Core-vs-reference agreement on random inputs is the generic registry test's
job; here both are held to independent oracles.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kexue.losses as core
from kexue.reference import losses as ref
from kexue.testing import assert_close

NEG_INF = -np.inf


@pytest.fixture(scope="module", params=["core", "reference"])
def impl(request):
    return ref if request.param == "reference" else core


def assert_6dp(actual, expected):
    """The spec's worked numbers are rounded to 6 decimals."""
    assert_close(np.asarray(actual, dtype=np.float64), expected, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------
# brute force: explicit Python sums over the classes, float64, own max shift


def _log1p_weighted(items):
    """log(1 + sum_k w_k e^{x_k}) over items (w_k > 0, x_k finite), and the
    derivatives w_k e^{x_k} / (1 + sum), computed with an explicit max shift."""
    m = max([0.0] + [x for _, x in items])
    terms = [w * math.exp(x - m) for w, x in items]
    z = math.exp(-m) + sum(terms)
    return m + math.log(z), [t / z for t in terms]


def brute_row(s, t, keep):
    """(loss, grad) of one row: s logits, t targets/probs in [0,1], keep = not masked.

    loss = log(1 + sum (1-t_i) e^{s_i}) + log(1 + sum t_i e^{-s_i}) over the kept
    classes with finite logits (spec §4.1 / §4.3); a zero weight drops the term.
    """
    C = len(s)
    live = [i for i in range(C) if keep[i] and s[i] != NEG_INF]
    neg = [i for i in live if 1.0 - t[i] > 0]
    pos = [i for i in live if t[i] > 0]
    neg_loss, neg_w = _log1p_weighted([(1.0 - t[i], float(s[i])) for i in neg])
    pos_loss, pos_w = _log1p_weighted([(float(t[i]), -float(s[i])) for i in pos])
    grad = [0.0] * C
    for i, w in zip(neg, neg_w):
        grad[i] += w
    for j, w in zip(pos, pos_w):
        grad[j] -= w
    return neg_loss + pos_loss, grad


def brute(logits, targets, mask=None):
    """Row-wise :func:`brute_row` over the leading dims: (loss [...], grad [..., C])."""
    s = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    keep = np.ones(s.shape, bool) if mask is None else np.asarray(mask, bool)
    loss = np.zeros(s.shape[:-1])
    grad = np.zeros(s.shape)
    for lead in np.ndindex(s.shape[:-1]):
        loss[lead], grad[lead] = brute_row(s[lead], t[lead], keep[lead])
    return loss, grad


def onehot(positive_index, C, mask_zero=False):
    """Dense 0/1 targets [..., C] of a positive-index array [..., P] (-1 = padding)."""
    idx = np.asarray(positive_index)
    out = np.zeros(idx.shape[:-1] + (C,), dtype=np.int64)
    for lead in np.ndindex(idx.shape[:-1]):
        for i in idx[lead]:
            if i >= 0 and not (mask_zero and i == 0):
                out[lead + (int(i),)] = 1
    return out


def _finite_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        if not np.isfinite(x[i]):
            continue  # -inf logits are excluded: no derivative to take
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


# ----------------------------------------------------------------------------
# spec §4.5 worked example

S = np.array([2.0, -1.0, 0.5, -3.0])
T = np.array([1, 0, 1, 0])
GRAD = [-0.077696, 0.259496, -0.348207, 0.035119]


def test_worked_hard(impl):
    loss = impl.multilabel_crossentropy(S, T)
    assert loss.shape == () and loss.dtype == np.float64
    assert_6dp(loss, 0.903969)
    loss, grad = impl.multilabel_crossentropy(S, T, return_grad=True)
    assert_6dp(loss, 0.903969)
    assert_6dp(grad, GRAD)
    # the two terms on their own: mask away the other group
    assert_6dp(impl.multilabel_crossentropy(S, T, mask=T == 0), 0.349012)
    assert_6dp(impl.multilabel_crossentropy(S, T, mask=T == 1), 0.554957)
    # bool and float targets give the same
    assert_6dp(impl.multilabel_crossentropy(S, T.astype(bool)), 0.903969)
    assert_6dp(impl.multilabel_crossentropy(S, T.astype(np.float64)), 0.903969)


def test_worked_sparse(impl):
    for idx in ([0, 2], [2, 0], [0, 2, -1, 2]):
        loss, grad = impl.sparse_multilabel_crossentropy(S, np.array(idx), return_grad=True)
        assert_6dp(loss, 0.903969)
        assert_6dp(grad, GRAD)
    s1 = np.concatenate([[5.0], S])
    loss, grad = impl.sparse_multilabel_crossentropy(s1, np.array([1, 3, 0]), mask_zero=True,
                                                     return_grad=True)
    assert_6dp(loss, 0.903969)
    assert_6dp(grad, [0.0] + GRAD)
    assert grad[0] == 0


def test_worked_masked_class(impl):
    s = S.copy()
    s[3] = NEG_INF
    assert_6dp(impl.multilabel_crossentropy(s, T), 0.868219)
    assert_6dp(impl.sparse_multilabel_crossentropy(s, np.array([0, 2])), 0.868219)
    assert_6dp(impl.multilabel_crossentropy(S, T, mask=np.array([1, 1, 1, 0], bool)), 0.868219)
    _, grad = impl.multilabel_crossentropy(s, T, return_grad=True)
    assert grad[3] == 0 and np.all(np.isfinite(grad))


def test_worked_soft(impl):
    t = np.array([0.9, 0.2, 0.6, 0.0])
    loss, grad = impl.multilabel_crossentropy_soft(S, t, return_grad=True)
    assert_6dp(loss, 1.716593)
    assert_6dp(grad, [0.209410, -0.160581, 0.061146, 0.018154])
    assert_6dp(impl.multilabel_crossentropy_soft(S, t), 1.716593)


def test_soft_optimum_is_half_logit(impl):
    t = np.array([0.9, 0.2, 0.6, 0.3])
    s_star = 0.5 * np.log(t / (1 - t))
    assert_6dp(s_star, [1.098612, -0.693147, 0.202733, -0.423649])
    _, grad = impl.multilabel_crossentropy_soft(s_star, t, return_grad=True)
    assert_close(grad, np.zeros(4), atol=1e-12)
    # and it is a minimum: any small step raises the loss
    base = impl.multilabel_crossentropy_soft(s_star, t)
    rng = np.random.default_rng(0)
    for _ in range(5):
        step = rng.normal(size=4) * 1e-3
        assert impl.multilabel_crossentropy_soft(s_star + step, t) > base


# ----------------------------------------------------------------------------
# brute force on random inputs


def _random_case(rng, lead, C, *, pos="random", neg_inf=False, masked=False, scale=2.0):
    s = rng.normal(size=lead + (C,)) * scale
    if pos == "none":
        t = np.zeros(s.shape, np.int64)
    elif pos == "all":
        t = np.ones(s.shape, np.int64)
    else:
        t = (rng.random(s.shape) < 0.4).astype(np.int64)
    if neg_inf:
        s[rng.random(s.shape) < 0.25] = NEG_INF
    mask = rng.random(s.shape) < 0.7 if masked else None
    return s, t, mask


def _cases():
    rng = np.random.default_rng(20240606)
    cases = []
    for lead in ((), (1,), (3,), (2, 3)):
        for C in (1, 2, 5):
            for pos in ("random", "none", "all"):
                for neg_inf, masked in ((False, False), (True, False), (False, True), (True, True)):
                    flags = ("inf" if neg_inf else "") + ("m" if masked else "")
                    name = f"lead{len(lead)}-C{C}-{pos}-{flags}"
                    cases.append(pytest.param(
                        _random_case(rng, lead, C, pos=pos, neg_inf=neg_inf, masked=masked),
                        id=name))
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", CASES)
def test_brute_hard(impl, case):
    s, t, mask = case
    want_loss, want_grad = brute(s, t, mask)
    loss = impl.multilabel_crossentropy(s, t, mask=mask)
    assert loss.shape == s.shape[:-1] and loss.dtype == np.float64
    assert_close(loss, want_loss)
    loss, grad = impl.multilabel_crossentropy(s, t, mask=mask, return_grad=True)
    assert grad.shape == s.shape and grad.dtype == np.float64
    assert_close(loss, want_loss)
    assert_close(grad, want_grad)
    excluded = np.isneginf(s) if mask is None else np.isneginf(s) | ~mask
    assert np.all(grad[excluded] == 0)


@pytest.mark.parametrize("case", CASES)
def test_brute_soft(impl, case):
    s, t, mask = case
    rng = np.random.default_rng(zlib.crc32(s.tobytes()))
    probs = rng.random(s.shape)
    probs[rng.random(s.shape) < 0.2] = 0.0
    probs[rng.random(s.shape) < 0.2] = 1.0
    want_loss, want_grad = brute(s, probs, mask)
    loss, grad = impl.multilabel_crossentropy_soft(s, probs, mask=mask, return_grad=True)
    assert loss.shape == s.shape[:-1] and grad.shape == s.shape
    assert_close(loss, want_loss)
    assert_close(grad, want_grad)
    assert_close(impl.multilabel_crossentropy_soft(s, probs, mask=mask), want_loss)


@pytest.mark.parametrize("case", CASES)
def test_brute_sparse(impl, case):
    s, t, _ = case
    rng = np.random.default_rng(7)
    # positive indices of t, shuffled, with duplicates and -1 padding
    P = s.shape[-1] + 3
    idx = np.full(s.shape[:-1] + (P,), -1, dtype=np.int64)
    for lead in np.ndindex(s.shape[:-1]):
        pos = list(np.flatnonzero(t[lead]))
        pos += pos[:1]  # a duplicate
        rng.shuffle(pos)
        idx[lead][: len(pos)] = pos
    want_loss, want_grad = brute(s, t)
    loss, grad = impl.sparse_multilabel_crossentropy(s, idx, return_grad=True)
    assert loss.shape == s.shape[:-1] and grad.shape == s.shape
    assert_close(loss, want_loss)
    assert_close(grad, want_grad)
    assert_close(impl.sparse_multilabel_crossentropy(s, idx), want_loss)


def test_c_equals_one(impl):
    for s, t, want in (([0.7], [1], math.log1p(math.exp(-0.7))),
                       ([0.7], [0], math.log1p(math.exp(0.7))),
                       ([NEG_INF], [1], 0.0), ([NEG_INF], [0], 0.0)):
        s = np.array([s], dtype=np.float64)
        loss, grad = impl.multilabel_crossentropy(s, np.array([t]), return_grad=True)
        assert loss.shape == (1,)
        assert_close(loss, [want])
        idx = np.array([[0 if t[0] else -1]])
        assert_close(impl.sparse_multilabel_crossentropy(s, idx), [want])
    # C = 1 with mask_zero: the only class is excluded, the loss is 0
    loss, grad = impl.sparse_multilabel_crossentropy(np.array([[3.0]]), np.array([[0]]),
                                                     mask_zero=True, return_grad=True)
    assert loss.tolist() == [0.0] and grad.tolist() == [[0.0]]


def test_everything_excluded_gives_zero(impl):
    s = np.array([[NEG_INF, NEG_INF, NEG_INF], [1.0, -2.0, 3.0]])
    t = np.array([[1, 0, 1], [0, 1, 1]])
    mask = np.array([[True, True, True], [False, False, False]])
    loss, grad = impl.multilabel_crossentropy(s, t, mask=mask, return_grad=True)
    assert loss.tolist() == [0.0, 0.0] and np.all(grad == 0)
    loss, grad = impl.multilabel_crossentropy_soft(s, t * 0.5, mask=mask, return_grad=True)
    assert loss.tolist() == [0.0, 0.0] and np.all(grad == 0)


def _check_masked_garbage(impl, values):
    rng = np.random.default_rng(1)
    s = rng.normal(size=(4, 6))
    t = rng.random((4, 6)) < 0.5
    mask = rng.random((4, 6)) < 0.6
    garbage = s.copy()
    garbage[~mask] = np.resize(np.array(values), (~mask).sum())
    for fn, y in ((impl.multilabel_crossentropy, t), (impl.multilabel_crossentropy_soft, t * 0.7)):
        want = fn(s, y, mask=mask, return_grad=True)
        got = fn(garbage, y, mask=mask, return_grad=True)
        assert_close(got[0], want[0])
        assert_close(got[1], want[1])
        assert np.all(got[1][~mask] == 0)


def test_masked_classes_ignore_their_logits(impl):
    """A masked class changes nothing, whatever its logit (huge or infinite)."""
    _check_masked_garbage(impl, [1e300, -1e300, np.inf, -np.inf])


def test_masked_nan_logit_is_excluded(impl):
    """Contract: a masked class "appears in neither sum and gets gradient 0" --
    also when its logit is NaN (NaN in a class that takes part gives NaN)."""
    _check_masked_garbage(impl, [np.nan])
    loss = impl.multilabel_crossentropy(np.array([[0.5, np.nan]]), np.array([[1, 0]]))
    assert np.isnan(loss[0])


# ----------------------------------------------------------------------------
# gradients against central finite differences of the brute-force loss


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_grad_finite_differences_hard(impl, masked):
    rng = np.random.default_rng(30 + masked)
    s, t, mask = _random_case(rng, (3, 2), 5, neg_inf=True, masked=masked)
    _, grad = impl.multilabel_crossentropy(s, t, mask=mask, return_grad=True)
    fd = _finite_difference(lambda: brute(s, t, mask)[0].sum(), s)
    assert_close(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_grad_finite_differences_soft(impl, masked):
    rng = np.random.default_rng(40 + masked)
    s, _, mask = _random_case(rng, (3, 2), 5, neg_inf=True, masked=masked)
    probs = rng.random(s.shape)
    probs[0, 0, :2] = [0.0, 1.0]
    _, grad = impl.multilabel_crossentropy_soft(s, probs, mask=mask, return_grad=True)
    fd = _finite_difference(lambda: brute(s, probs, mask)[0].sum(), s)
    assert_close(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mask_zero", [False, True], ids=["plain", "mask_zero"])
def test_grad_finite_differences_sparse(impl, mask_zero):
    rng = np.random.default_rng(50 + mask_zero)
    s = rng.normal(size=(3, 2, 6)) * 2
    s[0, 1, 3] = NEG_INF
    idx = rng.integers(-1, 6, size=(3, 2, 4))
    _, grad = impl.sparse_multilabel_crossentropy(s, idx, mask_zero=mask_zero, return_grad=True)
    keep = np.ones(s.shape, bool)
    if mask_zero:
        keep[..., 0] = False
    y = onehot(idx, 6, mask_zero)
    fd = _finite_difference(lambda: brute(s, y, keep)[0].sum(), s)
    assert_close(grad, fd, rtol=1e-6, atol=1e-8)
    if mask_zero:
        assert np.all(grad[..., 0] == 0)


# ----------------------------------------------------------------------------
# equivalences


def test_sparse_equals_dense(impl):
    rng = np.random.default_rng(60)
    for lead, C, P in (((5,), 7, 4), ((2, 3), 4, 6), ((), 9, 3), ((4,), 3, 0)):
        s = rng.normal(size=lead + (C,)) * 3
        s[rng.random(s.shape) < 0.1] = NEG_INF
        idx = rng.integers(-1, C, size=lead + (P,))
        if P >= 2:
            idx[..., 1] = idx[..., 0]  # duplicates count once
        for mask_zero in (False, True):
            got = impl.sparse_multilabel_crossentropy(s, idx, mask_zero=mask_zero,
                                                      return_grad=True)
            mask = None
            if mask_zero:
                mask = np.ones(s.shape, bool)
                mask[..., 0] = False
            want = impl.multilabel_crossentropy(s, onehot(idx, C, mask_zero), mask=mask,
                                                return_grad=True)
            assert_close(got[0], want[0])
            assert_close(got[1], want[1])


def test_sparse_has_no_cancellation(impl):
    """Positives far above every negative: bert4keras' a + log(1 - e^{b-a}) would lose
    the negative term to cancellation; the contract asks for the exact value."""
    s = np.array([[-20.0, 40.0, 40.0, 40.0, -25.0], [30.0, 35.0, -18.0, 33.0, 31.0]])
    idx = np.array([[1, 2, 3], [0, 1, 3]])
    want_loss, want_grad = brute(s, onehot(idx, 5))
    assert_close(want_loss[0], math.log1p(math.exp(-20) + math.exp(-25))
                 + math.log1p(3 * math.exp(-40)))
    loss, grad = impl.sparse_multilabel_crossentropy(s, idx, return_grad=True)
    assert_close(loss, want_loss)
    assert_close(grad, want_grad)


def test_sparse_index_dtypes(impl):
    s = np.array([[0.3, -1.2, 2.0, 0.1]])
    want = impl.multilabel_crossentropy(s, np.array([[1, 0, 0, 1]]))
    for dt in (np.int32, np.int64):
        assert_close(impl.sparse_multilabel_crossentropy(s, np.array([[3, 0, -1]], dtype=dt)),
                     want)


def test_mask_zero_semantics(impl):
    """mask_zero: index 0 is padding and class 0 takes no part, whatever its logit."""
    s = np.array([[4.0, 1.0, -2.0, 0.5], [-9.0, 1.0, -2.0, 0.5]])
    idx = np.array([[2, 0, 0], [0, 2, -1]])
    loss, grad = impl.sparse_multilabel_crossentropy(s, idx, mask_zero=True, return_grad=True)
    rest = impl.multilabel_crossentropy(s[:, 1:], np.array([[0, 1, 0], [0, 1, 0]]),
                                        return_grad=True)
    assert_close(loss, rest[0])
    assert_close(grad[:, 1:], rest[1])
    assert np.all(grad[:, 0] == 0)
    assert_close(loss[0], loss[1])  # class 0's logit does not matter
    # without mask_zero, 0 is a real class index and class 0 a real class
    plain = impl.sparse_multilabel_crossentropy(s, idx)
    assert_close(plain, impl.multilabel_crossentropy(s, np.array([[1, 0, 1, 0], [1, 0, 1, 0]])))


def test_soft_equals_hard_on_binary(impl):
    rng = np.random.default_rng(70)
    for lead, C in (((6,), 5), ((2, 2), 1), ((), 8)):
        s = rng.normal(size=lead + (C,)) * 3
        s[rng.random(s.shape) < 0.15] = NEG_INF
        t = rng.random(s.shape) < 0.5
        mask = rng.random(s.shape) < 0.8
        for m in (None, mask):
            soft = impl.multilabel_crossentropy_soft(s, t.astype(np.float64), mask=m,
                                                     return_grad=True)
            hard = impl.multilabel_crossentropy(s, t, mask=m, return_grad=True)
            assert_close(soft[0], hard[0])
            assert_close(soft[1], hard[1])


def test_target_encodings_agree(impl):
    rng = np.random.default_rng(71)
    s = rng.normal(size=(5, 4))
    t = rng.random((5, 4)) < 0.5
    want = impl.multilabel_crossentropy(s, t)
    for y in (t.astype(np.int32), t.astype(np.int64), t.astype(np.float64)):
        assert_close(impl.multilabel_crossentropy(s, y), want)


# ----------------------------------------------------------------------------
# large logits, float32


@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_large_logits_stay_finite(impl, scale):
    rng = np.random.default_rng(80)
    s = rng.normal(size=(6, 7)) * scale
    t = rng.random((6, 7)) < 0.5
    t[0] = True
    t[1] = False
    want_loss, want_grad = brute(s, t)
    for loss, grad in (impl.multilabel_crossentropy(s, t, return_grad=True),
                       impl.sparse_multilabel_crossentropy(
                           s, np.where(t, np.arange(7), -1), return_grad=True),
                       impl.multilabel_crossentropy_soft(s, t * 1.0, return_grad=True)):
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
        assert_close(loss, want_loss)
        assert_close(grad, want_grad)
    # the loss is the hinge max(0, max_neg s) + max(0, -min_pos s) up to log C
    hinge = np.where(t, NEG_INF, s).max(-1).clip(0) + np.where(t, -s, NEG_INF).max(-1).clip(0)
    assert np.all(want_loss >= hinge) and np.all(want_loss <= hinge + 2 * math.log(8))
    # float32
    s32 = s.astype(np.float32)
    loss32, grad32 = impl.multilabel_crossentropy(s32, t, return_grad=True)
    loss64, grad64 = brute(s32.astype(np.float64), t)
    assert loss32.dtype == grad32.dtype == np.float32
    assert np.all(np.isfinite(loss32)) and np.all(np.isfinite(grad32))
    assert_close(loss32, loss64, rtol=1e-4, atol=1e-4)
    assert_close(grad32, grad64, rtol=1e-4, atol=1e-4)


def test_float32_close_to_float64(impl):
    rng = np.random.default_rng(81)
    s32 = (rng.normal(size=(8, 3, 11)) * 4).astype(np.float32)
    s32[rng.random(s32.shape) < 0.1] = NEG_INF
    s64 = s32.astype(np.float64)
    t = rng.random(s32.shape) < 0.3
    p32 = rng.random(s32.shape).astype(np.float32)
    idx = rng.integers(-1, 11, size=(8, 3, 5))
    mask = rng.random(s32.shape) < 0.9
    pairs = [
        (impl.multilabel_crossentropy(s32, t, mask=mask, return_grad=True),
         impl.multilabel_crossentropy(s64, t, mask=mask, return_grad=True)),
        (impl.multilabel_crossentropy_soft(s32, p32, mask=mask, return_grad=True),
         impl.multilabel_crossentropy_soft(s64, p32.astype(np.float64), mask=mask,
                                           return_grad=True)),
        (impl.sparse_multilabel_crossentropy(s32, idx, mask_zero=True, return_grad=True),
         impl.sparse_multilabel_crossentropy(s64, idx, mask_zero=True, return_grad=True)),
    ]
    for got, want in pairs:
        for x32, x64 in zip(got, want):
            assert x32.dtype == np.float32
            assert_close(x32, x64, rtol=1e-4, atol=1e-4)
    # float32 targets of the logits' dtype are accepted
    assert_close(impl.multilabel_crossentropy(s32, t.astype(np.float32)),
                 impl.multilabel_crossentropy(s32, t))


# ----------------------------------------------------------------------------
# predict, NaN, errors


def test_predict(impl):
    s = np.array([[2.0, -1.0, 0.0, NEG_INF, 1e-30], [0.3, 0.5, -0.2, np.inf, np.nan]])
    got = impl.multilabel_predict(s)
    assert got.dtype == np.bool_
    assert got.tolist() == [[True, False, False, False, True], [True, True, False, True, False]]
    assert impl.multilabel_predict(s, threshold=0.4).tolist() == [
        [True, False, False, False, False], [False, True, False, True, False]]
    assert impl.multilabel_predict(s.astype(np.float32)).tolist() == got.tolist()


def test_nan_probs_give_nan(impl):
    s = np.array([[0.3, -0.4, 1.0], [0.3, -0.4, 1.0]])
    p = np.array([[0.5, np.nan, 0.2], [0.5, 0.1, 0.2]])
    loss = impl.multilabel_crossentropy_soft(s, p)
    assert np.isnan(loss[0]) and np.isfinite(loss[1])


def test_errors(impl):
    s = np.zeros((2, 3))
    with pytest.raises(ValueError, match="targets"):
        impl.multilabel_crossentropy(s, np.array([[0, 1, 2], [0, 0, 0]]))
    with pytest.raises(ValueError, match="targets"):
        impl.multilabel_crossentropy(s, np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="mask"):
        impl.multilabel_crossentropy(s, np.zeros((2, 3), bool), mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="probs"):
        impl.multilabel_crossentropy_soft(s, np.full((2, 3), 1.5))
    with pytest.raises(ValueError, match="probs"):
        impl.multilabel_crossentropy_soft(s, np.full((2, 3), -0.1))
    for bad in ([[3, -1], [0, 0]], [[0, -2], [0, 0]]):
        with pytest.raises(IndexError, match="positive_index"):
            impl.sparse_multilabel_crossentropy(s, np.array(bad))
    with pytest.raises(TypeError, match="positive_index"):
        impl.sparse_multilabel_crossentropy(s, np.array([[0.0, 1.0], [0.0, 1.0]]))


# ----------------------------------------------------------------------------
# properties (hypothesis)


@st.composite
def problems(draw):
    lead = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    C = draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    s = rng.normal(size=lead + (C,)) * draw(st.sampled_from([0.5, 3.0]))
    if draw(st.booleans()):
        s[rng.random(s.shape) < 0.2] = NEG_INF
    t = rng.random(s.shape) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    mask = (rng.random(s.shape) < 0.8) if draw(st.booleans()) else None
    return s, t, mask


PROPERTY = settings(max_examples=30, deadline=None)


@PROPERTY
@given(p=problems())
def test_prop_loss_nonnegative(impl, p):
    s, t, mask = p
    assert np.all(impl.multilabel_crossentropy(s, t, mask=mask) >= 0)
    probs = np.where(t, 0.8, 0.1)
    assert np.all(impl.multilabel_crossentropy_soft(s, probs, mask=mask) >= 0)
    idx = np.where(t, np.arange(s.shape[-1]), -1)
    assert np.all(impl.sparse_multilabel_crossentropy(s, idx) >= 0)


@PROPERTY
@given(p=problems())
def test_prop_gradient_groups(impl, p):
    """Spec §4.1: each group's gradients sum to less than 1 in size: positives'
    in (-1, 0], negatives' in [0, 1); excluded classes get 0."""
    s, t, mask = p
    _, grad = impl.multilabel_crossentropy(s, t, mask=mask, return_grad=True)
    live = ~np.isneginf(s) if mask is None else ~np.isneginf(s) & mask
    assert np.all(grad[~live] == 0)
    assert np.all(grad[live & t] <= 0) and np.all(grad[live & ~t] >= 0)
    pos_sum = np.where(live & t, grad, 0).sum(-1)
    neg_sum = np.where(live & ~t, grad, 0).sum(-1)
    assert np.all((pos_sum > -1) & (pos_sum <= 0))
    assert np.all((neg_sum >= 0) & (neg_sum < 1))


@PROPERTY
@given(p=problems())
def test_prop_predict_is_positive_logit(impl, p):
    s, _, _ = p
    assert np.array_equal(impl.multilabel_predict(s), s > 0)
