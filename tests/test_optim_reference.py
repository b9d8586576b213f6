"""Oracles for kexue.reference.optim, the numpy twin of kexue.optim (spec kernels §C).

Runs without kexue.optim: the reference is held to independent oracles here
(the spec's worked numbers, hand-computed schedules, Random123's known-answer
vectors, statistical properties of the random numbers, and torch.optim when it
is installed). Core-vs-reference agreement is tests/test_optim.py's job.
"""

from __future__ import annotations

import doctest
import inspect
import math
import pathlib
import re

import numpy as np
import pytest
from kexue.reference import optim as ref
from kexue.testing import assert_close

# spec §C1-C7 shared inputs
TH0 = np.array([0.5, -1.0, 2.0])
G1 = np.array([0.1, -0.2, 0.3])
G2 = np.array([-0.05, 0.1, 0.4])

U32 = 2.0**-24  # float32 unit roundoff (half an ulp at 1)


def assert_8dp(actual, expected):
    """The spec's optimizer numbers are rounded to 8 decimals (6 where it prints 6)."""
    assert_close(np.asarray(actual, dtype=np.float64), expected, rtol=0, atol=5e-9)


def assert_6dp(actual, expected):
    assert_close(np.asarray(actual, dtype=np.float64), expected, rtol=0, atol=5e-7)


def two_steps(fn, n_state, **kw):
    """Run fn on TH0 with G1 then G2; returns (theta after 1, theta after 2, states)."""
    p = TH0.copy()
    states = [np.zeros(3) for _ in range(n_state)]
    out = []
    for t, g in enumerate([G1, G2], start=1):
        fn(p, g.copy(), *states, t, **kw)
        out.append(p.copy())
    return out[0], out[1], states


# ============================================================================
# spec worked numbers


def test_spec_sgd_momentum_and_nesterov():
    _, p2, _ = two_steps(ref.sgd_, 1, lr=0.1, momentum=0.9)
    assert_8dp(p2, [0.486, -0.972, 1.903])
    _, p2, _ = two_steps(ref.sgd_, 1, lr=0.1, momentum=0.9, nesterov=True)
    assert_8dp(p2, [0.4824, -0.9648, 1.8427])
    # Keras form v = mu v - lr g; theta += v is the same for constant lr (spec §C1)
    p, v = TH0.copy(), np.zeros(3)
    for g in (G1, G2):
        v = 0.9 * v - 0.1 * g
        p = p + v
    assert_8dp(p, [0.486, -0.972, 1.903])


def test_spec_sgd_plain():
    p = TH0.copy()
    ref.sgd_(p, G1, None, 1, lr=0.1)
    assert_8dp(p, TH0 - 0.1 * G1)


def test_spec_adam_adamw():
    p1, p2, _ = two_steps(ref.adam_, 2)
    assert_8dp(p1, [0.499, -0.999, 1.999])
    assert_8dp(p2, [0.49873366, -0.99873366, 1.99800268])
    _, p2, _ = two_steps(ref.adamw_, 2, weight_decay=0.01)
    assert_8dp(p2, [0.49872367, -0.99871367, 1.99796269])


def test_spec_adax():
    p1, p2, (m, v) = two_steps(ref.adax_, 2)
    assert_8dp(p1, [0.4999, -0.9999, 1.9999])
    assert_8dp(p2, [0.49984941, -0.99984941, 1.99971049])
    assert_8dp(v / ((1 + 1e-4) ** 2 - 1), [0.00625019, 0.02500075, 0.12499825])
    # after step 1: m = 0.1 g1, vhat = g1^2
    p = TH0.copy()
    m, v = np.zeros(3), np.zeros(3)
    ref.adax_(p, G1, m, v, 1)
    assert_close(m, 0.1 * G1)
    assert_close(v / 1e-4, G1**2, rtol=1e-11)  # (1+b2)^1 - 1 = b2 up to rounding of 1 + 1e-4


def test_spec_adax_time_varying_beta():
    # v-hat is an EMA with beta2_t = 1 - b2/((1+b2)^t - 1) (spec §C3)
    b2 = 1e-4
    for t, want in ((1, 0.0), (10, 0.900045), (1000, 0.999049)):
        assert_6dp(1 - b2 / ((1 + b2) ** t - 1), want)


def test_spec_lion():
    p1, p2, _ = two_steps(ref.lion_, 1)
    assert_8dp(p1, [0.4999, -0.9999, 1.9999])
    assert_8dp(p2, [0.5, -1.0, 1.9998])
    # sign(0) = 0: a zero gradient on a zero momentum leaves p alone (no decay)
    p, m = np.array([0.7]), np.zeros(1)
    ref.lion_(p, np.zeros(1), m, 1, lr=0.1)
    assert p[0] == 0.7


def test_spec_lamb_with_trust_ratios():
    p = TH0.copy()
    m, v = np.zeros(3), np.zeros(3)
    for t, g, tau_want, p_want in (
        (1, G1, 1.3076031239, [0.49868587, -0.99867933, 1.99866625]),
        (2, G2, 2.1030895336, [0.49811526, -0.9980982, 1.99652676]),
    ):
        old = p.copy()
        ref.lamb_(p, g, m, v, t)
        assert_8dp(p, p_want)
        # r from the spec's formula, independently of the reference
        r = (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-6) + 0.01 * old
        tau = np.linalg.norm(old) / np.linalg.norm(r)
        assert abs(tau - tau_want) < 5e-11
        assert_close((old - p) / (1e-3 * r), np.full(3, tau))  # the step is lr * tau * r


def test_lamb_trust_ratio_is_one_for_zero_param():
    p, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    ref.lamb_(p, G1, m, v, 1, weight_decay=0.0)
    r = G1 / (np.abs(G1) + 1e-6)
    assert_close(p, -1e-3 * r)  # tau = 1 since ||p|| = 0


AF_W = np.array([[0.5, -1.0, 2.0], [0.1, 0.3, -0.4]])
AF_G1 = np.array([[0.1, -0.2, 0.3], [0.05, 0.0, -0.1]])
AF_G2 = np.array([[-0.05, 0.1, 0.4], [0.2, -0.1, 0.0]])


def test_spec_adafactor_factored():
    assert ref.adafactor_shapes((2, 3), 1) == ((2,), (3,))
    p = AF_W.copy()
    row, col = np.zeros(2), np.zeros(3)
    ref.adafactor_(p, AF_G1, None, None, row, col, 1)
    vhat = np.outer(row, col) / row.mean()
    assert_8dp(vhat, [[0.01147541, 0.03672131, 0.09180328], [0.00102459, 0.00327869, 0.00819672]])
    assert_8dp(p, [[0.49147127, -0.99046459, 1.99095391], [0.0857287, 0.3, -0.38990867]])
    # beta2_2 = 1 - 2^-0.8
    assert_8dp(1 - 2**-0.8, 0.42565082)
    ref.adafactor_(p, AF_G2, None, None, row, col, 2)
    assert_8dp(p, [[0.49366119, -0.99493696, 1.98271591], [0.0668162, 0.30965602, -0.38990867]])
    # the class with min_dim_size_to_factor=1 does the same
    q = AF_W.copy()
    opt = ref.Adafactor([q], min_dim_size_to_factor=1)
    assert set(opt.state[0]) == {"exp_avg_sq_row", "exp_avg_sq_col"}
    opt.step([AF_G1])
    opt.step([AF_G2])
    assert_close(q, p)


def test_spec_adafactor_unfactored():
    assert ref.adafactor_shapes((2, 3)) is None  # default 128
    p = AF_W.copy()
    v = np.zeros((2, 3))
    ref.adafactor_(p, AF_G1, None, v, None, None, 1)
    assert_8dp(p, [[0.49041703, -0.99041703, 1.99041703], [0.09041703, 0.3, -0.39041703]])
    q = AF_W.copy()
    opt = ref.Adafactor(q)
    assert set(opt.state[0]) == {"exp_avg_sq"}
    opt.step(AF_G1)
    assert_close(q, p)


def test_spec_amos_elementwise_and_reduced():
    p1, p2, _ = two_steps(ref.amos_, 2, lr=0.01, eta=0.5)
    assert_6dp(p1, [0.494975, -0.99495, 1.9949])
    assert_8dp(p2, [0.49812784, -0.99809284, 1.9891159])
    p = TH0.copy()
    v, b = np.zeros(()), np.zeros(())
    ref.amos_(p, G1, v, b, 1, lr=0.01, eta=0.5)
    assert_8dp(p, [0.49766045, -0.9953209, 1.99295635])
    ref.amos_(p, G2, v, b, 2, lr=0.01, eta=0.5)
    assert_8dp(p, [0.4987284, -0.99745679, 1.98408303])
    q = TH0.copy()
    opt = ref.Amos([q], lr=0.01, eta=0.5, reduce_all=True)
    assert opt.state[0]["exp_avg_sq"].shape == ()
    opt.step([G1])
    opt.step([G2])
    assert_close(q, p)


def test_amos_eta_per_array():
    a, b = TH0.copy(), TH0.copy() * 2
    st = [np.zeros(3) for _ in range(4)]
    ref.amos_([a, b], [G1, G1], [st[0], st[1]], [st[2], st[3]], 1, lr=0.01, eta=[0.5, 0.25])
    a1, b1 = TH0.copy(), TH0.copy() * 2
    ref.amos_(a1, G1, np.zeros(3), np.zeros(3), 1, lr=0.01, eta=0.5)
    ref.amos_(b1, G1, np.zeros(3), np.zeros(3), 1, lr=0.01, eta=0.25)
    assert np.array_equal(a, a1) and np.array_equal(b, b1)


# ============================================================================
# Adafactor: shapes and an independent bert4keras-style oracle for ndim > 2


def test_adafactor_shapes_rules():
    f = ref.adafactor_shapes
    assert f((5,), 1) is None and f((), 1) is None
    assert f((4, 4), 1) == ((4,), (4,))  # a1 = axis 1 (the later of equals), a2 = axis 0
    assert f((5, 3, 5), 1) == ((5, 3), (3, 5))  # sorted (3,1),(5,0),(5,2): a1 = 2, a2 = 0
    assert f((300, 200)) == ((200,), (300,))  # a1 = axis 0
    assert f((300, 127)) is None and f((300, 128)) == ((128,), (300,))
    assert f((2, 200, 150, 3)) == ((2, 150, 3), (2, 200, 3))


def _bert4keras_adafactor_step(w, g, state, t, min_dim):
    """bert4keras AdaFactorBase/V1 restated with keepdims arrays, defaults (lr None, beta1 0)."""
    shape = np.array(w.shape)
    lr = min(1 / math.sqrt(t), 0.01)
    beta2 = 1 - t**-0.8
    g2 = g * g + 1e-30
    order = sorted(range(len(shape)), key=lambda i: (shape[i], i))  # contract's tie rule
    if len(shape) >= 2 and shape[order[-2]] >= min_dim:
        a1, a2 = order[-1], order[-2]
        vr = state.setdefault(
            "vr", np.zeros(tuple(np.where(np.arange(len(shape)) == a1, 1, shape)))
        )
        vc = state.setdefault(
            "vc", np.zeros(tuple(np.where(np.arange(len(shape)) == a2, 1, shape)))
        )
        vr[...] = beta2 * vr + (1 - beta2) * g2.mean(axis=a1, keepdims=True)
        vc[...] = beta2 * vc + (1 - beta2) * g2.mean(axis=a2, keepdims=True)
        v = vr * vc / vr.mean(axis=a2, keepdims=True)
    else:
        v = state.setdefault("v", np.zeros(w.shape))
        v[...] = beta2 * v + (1 - beta2) * g2
    u = g / np.sqrt(v + 1e-30)
    u = u / max(1.0, np.sqrt(np.mean(u * u)))
    u = u * max(np.sqrt(np.mean(w * w)), 1e-3)
    return w - lr * u


@pytest.mark.parametrize(
    "shape,min_dim",
    [((4, 5, 6), 1), ((6, 4, 6), 2), ((3, 7), 1), ((3, 7), 8), ((2, 3, 4, 5), 3), ((9,), 1)],
)
def test_adafactor_matches_bert4keras_form(shape, min_dim):
    rng = np.random.default_rng(5)
    w = rng.normal(size=shape)
    p = w.copy()
    opt = ref.Adafactor([p], min_dim_size_to_factor=min_dim)
    state = {}
    for t in range(1, 6):
        g = rng.normal(size=shape)
        w = _bert4keras_adafactor_step(w, g, state, t, min_dim)
        opt.step([g])
        assert_close(p, w)


def test_adafactor_beta1_and_relative_step():
    rng = np.random.default_rng(6)
    w = rng.normal(size=(5, 4))
    p = w.copy()
    assert ref.adafactor_shapes((5, 4), 1) == ((4,), (5,))  # a1 = axis 0, the longer one
    row, col, m = np.zeros(4), np.zeros(5), np.zeros((5, 4))
    g = rng.normal(size=(5, 4))
    ref.adafactor_(p, g, m, None, row, col, 1, beta1=0.9)
    # step 1: beta2_1 = 0 so Vhat = r c / mean(r) from this gradient alone; M = 0.1 U
    g2 = g * g + 1e-30
    r, c = g2.mean(axis=1), g2.mean(axis=0)
    u = g / np.sqrt(np.outer(r, c) / r.mean() + 1e-30)
    u /= max(1.0, np.sqrt(np.mean(u * u)))
    assert_close(m, 0.1 * u)
    assert_close(p, w - 0.01 * 0.1 * u * np.sqrt(np.mean(w * w)))
    # relative step: min(1/sqrt(t), 1e-2), x0.05 without parameter scaling
    p = w.copy()
    ref.adafactor_(
        p,
        g,
        None,
        np.zeros((5, 4)),
        None,
        None,
        40000,
        multiply_by_parameter_scale=False,
        beta2=0.0,
    )
    u = g / np.sqrt(g2 + 1e-30)
    u /= max(1.0, np.sqrt(np.mean(u * u)))
    assert_close(p, w - (1 / 200) * 0.05 * u)


# ============================================================================
# gradient clipping (spec §C8)


def test_spec_clipping_single_vector():
    g = np.array([3.0, 4.0])
    assert ref.clip_grad_norm_(g, 1.0) == 5.0
    assert_close(g, [0.6, 0.8])
    g = np.array([3.0, 4.0])
    assert ref.clip_grad_norm_(g, 1.0, mode="smooth") == 5.0
    assert_6dp(g, [0.5, 0.666667])


def test_spec_clipping_global_norm():
    gs = [np.array([3.0, 0.0]), np.array([[0.0, 4.0], [12.0, 0.0]])]
    assert ref.clip_grad_norm_(gs, 5.0) == 13.0
    assert_close(gs[0], [3 * 5 / 13, 0.0])
    assert_close(gs[1], [[0.0, 4 * 5 / 13], [12 * 5 / 13, 0.0]])
    gs = [np.array([3.0, 0.0], np.float32), np.array([[0.0, 4.0], [12.0, 0.0]], np.float32)]
    assert ref.clip_grad_norm_(gs, 5.0, mode="smooth") == 13.0
    assert gs[0].dtype == np.float32
    assert_close(gs[1], np.float32([[0.0, 4 * 5 / 18], [12 * 5 / 18, 0.0]]))


def test_clipping_below_threshold_zero_and_nonfinite():
    g = np.array([0.3, 0.4])
    assert ref.clip_grad_norm_(g, 1.0) == 0.5
    assert np.array_equal(g, [0.3, 0.4])  # factor 1: untouched
    z = [np.zeros(3), np.zeros((2, 2), np.float32)]
    assert ref.clip_grad_norm_(z, 1.0) == 0.0
    assert ref.clip_grad_norm_(z, 1.0, mode="smooth") == 0.0
    assert all(not a.any() for a in z)
    bad = [np.array([1.0, np.inf]), np.array([2.0])]
    assert ref.clip_grad_norm_(bad, 1.0) == np.inf
    assert bad[0][0] == 1.0 and bad[1][0] == 2.0
    nan = np.array([np.nan, 1.0])
    assert math.isnan(ref.clip_grad_norm_(nan, 1.0)) and nan[1] == 1.0


def test_clipping_norm_accumulates_in_float64():
    # float32 values whose squares need float64 to sum exactly: 2^24 + 1 ones
    g = np.ones(2**12, np.float32) * np.float32(3.0)
    n = ref.clip_grad_norm_(g, 1e9)
    assert n == math.sqrt(9.0 * 2**12)


# ============================================================================
# schedules, by hand


def test_warmup_linear_by_hand():
    kw = dict(lr=0.1, warmup_steps=10, total_steps=110, min_lr=0.01)
    for step, want in (
        (0, 0.0),
        (5, 0.05),
        (10, 0.1),
        (60, 0.055),
        (85, 0.0325),
        (110, 0.01),
        (500, 0.01),
    ):
        assert abs(ref.warmup_linear(step, **kw) - want) < 1e-15
    steps = np.array([[0, 5], [60, 500]])
    out = ref.warmup_linear(steps, **kw)
    assert out.shape == (2, 2)
    assert_close(out, [[0.0, 0.05], [0.055, 0.01]])
    assert isinstance(ref.warmup_linear(3, **kw), float)
    # no warmup
    assert ref.warmup_linear(0, lr=1.0, warmup_steps=0, total_steps=4) == 1.0
    assert ref.warmup_linear(1, lr=1.0, warmup_steps=0, total_steps=4) == 0.75
    # degenerate W == T: the peak at step W, min_lr strictly after
    for fn in (ref.warmup_linear, ref.warmup_cosine):
        got = fn(np.array([0, 5, 10, 11]), lr=1.0, warmup_steps=10, total_steps=10, min_lr=0.1)
        assert_close(got, [0.0, 0.5, 1.0, 0.1])
        assert fn(0, lr=1.0, warmup_steps=0, total_steps=0, min_lr=0.1) == 1.0
        with pytest.raises(ValueError, match="warmup_steps"):
            fn(1, lr=1.0, warmup_steps=5, total_steps=3)


def test_warmup_cosine_by_hand():
    kw = dict(lr=0.1, warmup_steps=10, total_steps=110, min_lr=0.01)
    # progress 1/4: 0.01 + 0.09 (1 + cos(pi/4))/2 = 0.01 + 0.09 * 0.85355339
    for step, want in (
        (5, 0.05),
        (10, 0.1),
        (35, 0.0868198052),
        (60, 0.055),
        (110, 0.01),
        (111, 0.01),
    ):
        assert abs(ref.warmup_cosine(step, **kw) - want) < 1e-10
    assert_close(ref.warmup_cosine(np.array([10, 60, 110]), **kw), [0.1, 0.055, 0.01])


def test_inverse_decays_and_alchemy_by_hand():
    # halving time T: alpha0 p = (sqrt2 - 1)/T gives decay_T = 1/2 (spec §C7)
    T, a0 = 1000, 1e-3
    assert (
        abs(ref.inverse_square_decay(T, alpha0=a0, p=(math.sqrt(2) - 1) / (a0 * T)) - 0.5) < 1e-15
    )
    assert ref.inverse_square_decay(500, alpha0=1e-3, p=2.0) == 0.25
    assert ref.inverse_time_decay(1000, alpha0=1e-3, p0=0.5) == 0.5
    assert ref.inverse_time_decay(0, alpha0=1e-3, p0=0.5) == 1.0
    alpha, rho = ref.alchemy(1000, alpha0=1e-3, p=0.5)
    assert abs(alpha - 5e-4) < 1e-18 and abs(rho - 2.5e-7) < 1e-21
    alpha, rho = ref.alchemy(500, alpha0=1e-3, p=2.0, kind="inverse_square", q=2.0)
    assert abs(alpha - 2.5e-4) < 1e-18 and abs(rho - 1e-6 / 4 * 0.25) < 1e-21
    a, r = ref.alchemy(np.arange(4), alpha0=0.1, p=1.0)
    assert_close(a, 0.1 / (0.2 * np.arange(4) + 1))
    assert_close(r, 0.005 / (0.2 * np.arange(4) + 1))
    # weight decay is second order in the learning rate: rho = alpha^2 / (2 q alpha0 ... ) * decay
    assert_close(r, a**2 / (2 * 1.0) / (a / 0.1))
    with pytest.raises(ValueError, match="kind"):
        ref.alchemy(1, alpha0=0.1, p=1.0, kind="cosine")


# ============================================================================
# Philox and the random-word layout


KAT = [  # Random123 tests/kat_vectors: philox4x32 <rounds> ctr[4] key[2] -> out[4]
    (10, (0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (10, (0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        10,
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
    # 7 rounds: the same file; checks the key schedule independently of the round count
    (7, (0, 0, 0, 0), (0, 0), (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    (7, (0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662)),
    (
        7,
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A),
    ),
]


@pytest.mark.parametrize("rounds,ctr,key,want", KAT)
def test_philox_known_answers(rounds, ctr, key, want):
    got = ref._philox4x32(ctr, key, rounds) if rounds != 10 else ref.philox4x32_10(ctr, key)
    assert got.dtype == np.uint32 and got.shape == (4,)
    assert [int(w) for w in got] == list(want)


def test_philox_vectorised():
    ctr = np.array(
        [
            [0, 0xFFFFFFFF, 0x243F6A88],
            [0, 0xFFFFFFFF, 0x85A308D3],
            [0, 0xFFFFFFFF, 0x13198A2E],
            [0, 0xFFFFFFFF, 0x03707344],
        ],
        dtype=np.uint32,
    )
    key = np.array([[0, 0xFFFFFFFF, 0xA4093822], [0, 0xFFFFFFFF, 0x299F31D0]], dtype=np.uint64)
    out = ref.philox4x32_10(ctr, key)
    assert out.shape == (4, 3)
    for j, (_, _, _, want) in enumerate(KAT[:3]):
        assert [int(w) for w in out[:, j]] == list(want)


def test_random_words_layout():
    n, a, step, seed = 200, 3, 0x1_0000_0007, 0x1234_5678_9ABC_DEF0  # step wraps to 7
    w = ref.random_words(n, a, step, seed)
    assert w.dtype == np.uint32 and w.shape == (n,)
    for e in (0, 1, 15, 16, 17, 31, 32, 48, 63, 64, 65, 127, 128, 199):
        blk, k, lane = e // 64, (e % 64) // 16, e % 16
        ctr = blk * 16 + lane
        out = ref.philox4x32_10(
            (ctr & 0xFFFFFFFF, ctr >> 32, 7, a), (seed & 0xFFFFFFFF, seed >> 32)
        )
        assert w[e] == out[k], e
    # ChildTuning's tag goes into bit 31 of counter word 3
    wt = ref.random_words(n, a, 7, seed, ref.CHILD_TUNING_TAG)
    out = ref.philox4x32_10((0, 0, 7, a | 0x80000000), (seed & 0xFFFFFFFF, seed >> 32))
    assert wt[0] == out[0] and wt[16] == out[1]
    # a prefix of a longer array's words is the shorter array's words
    assert np.array_equal(ref.random_words(1000, 0, 1, 5)[:n], ref.random_words(n, 0, 1, 5))
    assert ref.random_words(0, 0, 1, 5).shape == (0,)


def test_random_words_look_uniform():
    # 2^16 words: each of the 16 bit positions is set with frequency 1/2 within 5 standard errors
    w = ref.random_words(2**16, 0, 1, 42)
    bits = (w[:, None] >> np.arange(32, dtype=np.uint32)) & 1
    se = math.sqrt(0.25 / w.size)
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 5 * se)
    assert len(np.unique(w)) > w.size * 0.99


# ============================================================================
# bfloat16


def test_bf16_decode_and_exact_values_round_trip():
    bits = np.array([0x0000, 0x8000, 0x3F80, 0xBF80, 0x4049, 0x7F80, 0xFF80, 0x0001], np.uint16)
    x = ref.bf16_decode(bits)
    assert x.dtype == np.float32
    assert x[2] == 1.0 and x[3] == -1.0 and x[4] == np.float32(3.140625)
    assert np.isposinf(x[5]) and np.isneginf(x[6]) and x[7] > 0
    assert np.signbit(x[1]) and x[1] == 0
    # values exactly representable in bf16 come back bitwise for any r
    rng = np.random.default_rng(0)
    for r in (0, 1, 0x7FFF, 0xFFFF):
        got = ref.bf16_stochastic_round(x, np.full(x.shape, r, np.uint32))
        assert np.array_equal(got, bits)
    many = rng.integers(0, 2**16, 10_000).astype(np.uint16)
    many = many[~np.isnan(ref.bf16_decode(many))]
    r = rng.integers(0, 2**16, many.size).astype(np.uint32)
    assert np.array_equal(ref.bf16_stochastic_round(ref.bf16_decode(many), r), many)


def test_bf16_nan_and_overflow():
    x = np.array([np.nan, -np.nan, np.float32(3.0e38)], np.float32)
    x[0] = np.uint32(0x7F800001).view(np.float32)  # a signalling NaN whose payload is all low bits
    got = ref.bf16_stochastic_round(x, np.array([0xFFFF] * 3, np.uint32))
    d = ref.bf16_decode(got)
    assert np.isnan(d[0]) and np.isnan(d[1])  # stays NaN (quiet bit set), never becomes inf
    assert got[0] == 0x7FC0 and got[1] == 0xFFC0
    assert np.isfinite(d[2]) or np.isposinf(d[2])  # rounding up near FLT_MAX may give inf


def test_bf16_stochastic_rounding_exactly_unbiased_over_all_r():
    """Averaged over all 65536 values of r, the rounded value equals x exactly:
    up with probability lo/65536, and the bf16 step is linear within a binade."""
    rng = np.random.default_rng(1)
    xs = np.concatenate(
        [rng.normal(size=20), rng.normal(size=10) * 1e-30, [1.9999999, -0.99999994, 2.0**-126]]
    )
    xs = xs.astype(np.float32)
    r = np.arange(2**16, dtype=np.uint32)
    for x in xs:
        got = ref.bf16_decode(ref.bf16_stochastic_round(np.full(r.shape, x), r)).astype(np.float64)
        assert math.fsum(got) / got.size == float(x)


def test_bf16_stochastic_rounding_unbiased_with_philox_words():
    """With r from the Philox words the mean of N roundings is within 5 standard errors.

    x lies between the bf16 neighbours lo < x < hi = lo + s; it rounds up with
    probability q = (x - lo)/s, so one rounding is lo + s*B with B ~ Bernoulli(q):
    mean x, variance s^2 q(1-q). The mean of N independent roundings has standard
    error SE = s*sqrt(q(1-q)/N); |mean - x| > 5 SE has probability < 6e-7 for a
    fair generator (normal approximation, N = 2^17), while a biased rule fails:
    round-to-nearest is off by s*min(q, 1-q), with q in {0.30, 0.80, 0.07, 0.91} here that is
    100 to 240 SE; truncation is off by s*q.
    """
    N = 2**17
    w = ref.random_words(N, 0, 1, 2024)
    for x in np.float32([1.0 + 0.3 * 2**-7, -3.7, 1e-3, 123.456]):
        b = int(np.array(x).view(np.uint32))
        lo = float(ref.bf16_decode(np.uint16(b >> 16)))
        hi = float(ref.bf16_decode(np.uint16((b >> 16) + 1)))
        s, q = abs(hi - lo), (abs(float(x)) - abs(lo)) / abs(hi - lo)
        se = s * math.sqrt(q * (1 - q) / N)
        for r in (w & np.uint32(0xFFFF), w >> np.uint32(16)):  # the m and v halves
            mean = (
                math.fsum(
                    ref.bf16_decode(ref.bf16_stochastic_round(np.full(N, x), r)).astype(np.float64)
                )
                / N
            )
            assert abs(mean - float(x)) < 5 * se, (x, mean, se)


# ============================================================================
# bfloat16 optimizer state: the contract's float32 orders, checked bitwise


def _bf16_setup(rng, shape):
    p = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    m = ref.bf16_stochastic_round(rng.normal(size=shape).astype(np.float32) * 0.1, 0)
    v = ref.bf16_stochastic_round(rng.random(size=shape).astype(np.float32), 0)
    return p, g, m, v


def test_bf16_adam_state_follows_contract_order():
    rng = np.random.default_rng(3)
    p, g, m, v = _bf16_setup(rng, (3, 50))
    lr, b1, b2, eps, wd, gs, t, seed = 1e-2, 0.8, 0.99, 1e-6, 0.1, 0.5, 7, 99
    p0, m0, v0 = p.copy(), m.copy(), v.copy()
    ref.adam_(
        p, g, m, v, t, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, grad_scale=gs, seed=seed
    )
    d32 = g * np.float32(gs) + np.float32(wd) * p0
    mf, vf = ref.bf16_decode(m0), ref.bf16_decode(v0)
    m32 = mf + np.float32(1 - b1) * (d32 - mf)
    v32 = np.float32(b2) * vf + (np.float32(1 - b2) * d32) * d32
    w = ref.random_words(p.size, 0, t, seed).reshape(p.shape)
    assert np.array_equal(m, ref.bf16_stochastic_round(m32, w & np.uint32(0xFFFF)))
    assert np.array_equal(v, ref.bf16_stochastic_round(v32, w >> np.uint32(16)))
    # p uses the unrounded moments
    want = p0.astype(np.float64) - lr / (1 - b1**t) * m32.astype(np.float64) / (
        np.sqrt(v32.astype(np.float64)) / math.sqrt(1 - b2**t) + eps
    )
    assert_close(p, want.astype(np.float32), rtol=0, atol=0)


def test_bf16_adax_and_lion_state_follow_contract_order():
    rng = np.random.default_rng(4)
    p, g, m, v = _bf16_setup(rng, (70,))
    b1, b2, t, seed = 0.9, 1e-4, 3, 5
    m0, v0 = m.copy(), v.copy()
    ref.adax_(
        [np.zeros(3, np.float32), p],
        [np.zeros(3, np.float32), g],
        [np.zeros(3, np.uint16), m],
        [np.zeros(3, np.uint16), v],
        t,
        seed=seed,
    )
    mf, vf = ref.bf16_decode(m0), ref.bf16_decode(v0)
    m32 = np.float32(b1) * mf + np.float32(1 - b1) * g
    v32 = np.float32(1 + b2) * vf + (np.float32(b2) * g) * g
    w = ref.random_words(p.size, 1, t, seed)  # array index 1
    assert np.array_equal(m, ref.bf16_stochastic_round(m32, w & np.uint32(0xFFFF)))
    assert np.array_equal(v, ref.bf16_stochastic_round(v32, w >> np.uint32(16)))

    p, g, m, _ = _bf16_setup(rng, (70,))
    p0, m0 = p.copy(), m.copy()
    ref.lion_(
        p, g, m, t, lr=1e-3, beta1=0.9, beta2=0.99, weight_decay=0.1, grad_scale=2.0, seed=seed
    )
    mf = ref.bf16_decode(m0)
    c = 0.9 * mf.astype(np.float64) + (1 - 0.9) * (g.astype(np.float64) * 2.0)
    p_want = p0.astype(np.float64) - 1e-3 * (np.sign(c) + 0.1 * p0.astype(np.float64))
    assert np.array_equal(p, p_want.astype(np.float32))
    m32 = np.float32(0.99) * mf + np.float32(1 - 0.99) * (g * np.float32(2.0))
    w = ref.random_words(p.size, 0, t, seed)
    assert np.array_equal(m, ref.bf16_stochastic_round(m32, w & np.uint32(0xFFFF)))


# decay factor of each slot's error: an error e in the stored moment is multiplied by it each step
_SLOT_DECAY = {
    "Adam": {"exp_avg": 0.9, "exp_avg_sq": 0.999},
    "AdamW": {"exp_avg": 0.9, "exp_avg_sq": 0.999},
    "AdaX": {"exp_avg": 0.9, "exp_avg_sq": 1 + 1e-4},
    "Lion": {"exp_avg": 0.99},
}


@pytest.mark.parametrize("name", sorted(_SLOT_DECAY))
def test_bf16_state_tracks_float32_state(name):
    """bf16 moments are the float32 moments up to the accumulated rounding errors.

    Each stochastic rounding errs by less than one bf16 spacing, <= 2^-7 |x| (7 stored
    mantissa bits), and the moment recursions are linear in the old moment with factor
    w (beta for an EMA, 1 + beta2 for AdaX's v): after T steps |m16 - m32| <=
    2^-7 M sum_{k<T} w^k with M = the largest |moment| seen (float32 roundings are
    2^16 times smaller). The step is normalised, so the params stay close too."""
    rng = np.random.default_rng(8)
    shape, T = (40, 25), 50
    p0 = rng.normal(size=shape).astype(np.float32)
    a, b = p0.copy(), p0.copy()
    cls = getattr(ref, name)
    o32, o16 = cls([a], lr=1e-3), cls([b], lr=1e-3, state_dtype="bfloat16", seed=3)
    assert all(s.dtype == np.uint16 for s in o16.state[0].values())
    biggest = dict.fromkeys(o16.state[0], 0.0)
    for _ in range(T):
        g = rng.normal(size=shape).astype(np.float32)
        o32.step([g])
        o16.step([g])
        for k, s in o16.state[0].items():
            biggest[k] = max(biggest[k], float(np.abs(ref.bf16_decode(s)).max()))
    moved = np.abs(a - p0).max()
    assert np.abs(a - b).max() < 0.05 * moved
    for k, s in o16.state[0].items():
        w = _SLOT_DECAY[name][k]
        bound = 2**-7 * biggest[k] * sum(w**i for i in range(T))
        err = np.abs(ref.bf16_decode(s).astype(np.float64) - o32.state[0][k])
        assert err.max() <= bound, k
        # unbiased: the mean error is far below the worst case (it is a sum of
        # zero-mean terms over 1000 elements)
        assert (
            abs(float(np.mean(ref.bf16_decode(s).astype(np.float64) - o32.state[0][k])))
            < 0.05 * bound
        )


def test_bf16_state_rejections():
    with pytest.raises(TypeError, match="float32"):
        ref.Adam([np.zeros(3)], state_dtype="bfloat16")
    with pytest.raises(ValueError, match="amsgrad"):
        ref.AdamW([np.zeros(3, np.float32)], amsgrad=True, state_dtype="bfloat16")
    with pytest.raises(ValueError, match="state_dtype"):
        ref.Lion([np.zeros(3, np.float32)], state_dtype="float16")


# ============================================================================
# ChildTuning-F (spec §C10)


def test_child_tuning_keep_fraction_and_scale():
    """K kept of n ~ Binomial(n, p') with p' = floor(p 2^32)/2^32 (|p - p'| < 2^-32);
    |K/n - p| < 5 sqrt(p(1-p)/n) fails with probability < 6e-7 for a fair generator."""
    n = 100_003
    for p, dtype in ((0.2, np.float32), (0.5, np.float64), (0.9, np.float32)):
        g0 = (np.random.default_rng(1).normal(size=n) + 3.0).astype(dtype)  # no zeros
        g = g0.copy()
        ref.child_tuning_(g, p, seed=11, step=4)
        kept = g != 0
        assert abs(kept.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
        assert np.array_equal(g[kept], g0[kept] * np.asarray(1 / p, dtype))  # one multiply in dtype
        # the mask is exactly the contract's threshold on the tagged words
        w = ref.random_words(n, 0, 4, 11, ref.CHILD_TUNING_TAG)
        assert np.array_equal(kept, w < math.floor(p * 2**32))
    # expectation preserved: E[g M / p] = g  (mean over the array within 5 SE)
    g = np.ones(n)
    ref.child_tuning_(g, 0.25, seed=3)
    assert abs(g.mean() - 1.0) < 5 * math.sqrt(0.75 / 0.25 / n)


def test_child_tuning_determinism_and_independence():
    gs = [np.ones(500), np.ones((10, 50))]
    ref.child_tuning_(gs, 0.5, seed=7)
    again = [np.ones(500), np.ones((10, 50))]
    ref.child_tuning_(again, 0.5, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(gs, again))
    # different arrays, steps and seeds draw different masks
    assert not np.array_equal(gs[0], gs[1].ravel())
    other = np.ones(500)
    ref.child_tuning_(other, 0.5, seed=7, step=1)
    assert not np.array_equal(other, gs[0])
    other = np.ones(500)
    ref.child_tuning_(other, 0.5, seed=8)
    assert not np.array_equal(other, gs[0])
    # p = 1 keeps everything unchanged
    g = np.random.default_rng(0).normal(size=300)
    g0 = g.copy()
    ref.child_tuning_(g, 1.0, seed=1)
    assert np.array_equal(g, g0)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="p must"):
            ref.child_tuning_(np.ones(3), bad, seed=0)


# ============================================================================
# classes: step semantics


def _grads(rng, shapes, dtype):
    return [rng.normal(size=s).astype(dtype) for s in shapes]


def test_max_grad_norm_equals_manual_scaling():
    rng = np.random.default_rng(9)
    shapes = [(7,), (3, 4)]
    for dtype in (np.float64, np.float32):
        p0 = _grads(rng, shapes, dtype)
        a, b = [x.copy() for x in p0], [x.copy() for x in p0]
        oa, ob = ref.AdamW(a, lr=0.1), ref.AdamW(b, lr=0.1)
        for _ in range(5):
            g = _grads(rng, shapes, dtype)
            g_copy = [x.copy() for x in g]
            oa.step(g, max_grad_norm=0.5)
            assert all(np.array_equal(x, y) for x, y in zip(g, g_copy))  # grads not rewritten
            ref.clip_grad_norm_(g_copy, 0.5)
            ob.step(g_copy)
        for x, y in zip(a, b):
            if dtype == np.float64:
                assert np.array_equal(x, y)  # the same one float64 multiply g*factor
            else:
                assert_close(x, y)  # manual scaling rounds g*factor to float32 first


def test_skip_nonfinite_changes_nothing():
    rng = np.random.default_rng(10)
    p = [rng.normal(size=5), rng.normal(size=(2, 2))]
    opt = ref.Adam(p, amsgrad=True)
    opt.step(_grads(rng, [(5,), (2, 2)], np.float64))
    before = [x.tobytes() for x in p], opt.state_dict()
    bad = _grads(rng, [(5,), (2, 2)], np.float64)
    bad[1][1, 0] = np.nan
    assert opt.step(bad, skip_nonfinite=True) is False
    assert opt.step_count == 1
    assert [x.tobytes() for x in p] == before[0]
    for s, t in zip(opt.state_dict()["state"], before[1]["state"]):
        assert all(s[k].tobytes() == t[k].tobytes() for k in s)
    assert opt.step(_grads(rng, [(5,), (2, 2)], np.float64), skip_nonfinite=True) is True
    assert opt.step_count == 2


def test_lr_override_and_attribute():
    rng = np.random.default_rng(11)
    p0 = rng.normal(size=6)
    g = rng.normal(size=6)
    a, b = p0.copy(), p0.copy()
    oa, ob = ref.SGD([a], lr=0.1, momentum=0.9), ref.SGD([b], lr=0.5, momentum=0.9)
    oa.step([g], lr=0.5)
    ob.step([g])
    assert np.array_equal(a, b) and oa.lr == 0.1
    oa.lr = 0.25
    ob.step([g], lr=0.25)
    oa.step([g])
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="grads"):
        oa.step([g, g])


# ============================================================================
# classes vs torch.optim


SHAPES = [(1,), (7,), (1000,), (31, 33), (2, 3, 4, 5)]

TORCH_CASES = [
    ("SGD", dict(lr=0.01)),
    ("SGD", dict(lr=0.01, momentum=0.9)),
    ("SGD", dict(lr=0.01, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
]
_case_ids = [
    f"{n}-{'-'.join(f'{k}{v}' for k, v in kw.items()) or 'defaults'}" for n, kw in TORCH_CASES
]


def max_rel_diff(actual, expected, floor):
    """max over all arrays of |a - b| / max(|b|, floor), in float64."""
    worst = 0.0
    for a, b in zip(actual, expected):
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor))))
    return worst


def run_vs_torch(
    torch, name, kw, dtype, *, torch_dtype, requantize, steps=100, shapes=SHAPES, seed=0
):
    """Run the reference class and torch.optim.<name> (foreach=False, the per-tensor loop)
    on the same start values and gradients; returns (reference params, torch params).

    ``torch_dtype`` is the dtype torch computes in. ``requantize``: after every torch step
    round its params and state to float32 and back (torch in float64 with float32 storage:
    exactly the arithmetic the contract prescribes for float32 params, float64 inside and
    one rounding per stored value)."""
    rng = np.random.default_rng(seed)
    p0 = [rng.normal(size=s).astype(dtype) for s in shapes]
    ours = [p.copy() for p in p0]
    theirs = [torch.tensor(p.astype(torch_dtype), requires_grad=True) for p in p0]
    opt = getattr(ref, name)(ours, **kw)
    topt = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for _ in range(steps):
        gs = [rng.normal(size=s).astype(dtype) for s in shapes]
        assert opt.step(gs) is True
        for t, g in zip(theirs, gs):
            t.grad = torch.from_numpy(g.astype(torch_dtype))
        topt.step()
        if requantize:
            with torch.no_grad():
                for t in theirs:
                    t.copy_(t.float().double())
                    for v in topt.state[t].values():
                        if torch.is_tensor(v) and v.dtype == torch.float64:
                            v.copy_(v.float().double())
    assert opt.step_count == steps
    return ours, [t.detach().numpy() for t in theirs]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=_case_ids)
def test_reference_matches_torch_float64(torch, name, kw):
    """float64 vs torch float64 over 100 steps: max |a-b|/max(|b|, 1e-3) < 1e-12.

    Both compute the same recursion in float64 with a different grouping of a few
    operations (torch's lerp and addcmul, ** 0.5 vs sqrt), i.e. a few ulps per step;
    over 100 steps that stays near 1e-14 relative. The 1e-3 floor keeps elements that
    cross zero (the random walk ends anywhere near 0) from dividing by a tiny |b|:
    their error is absolute at the scale of the values the updates combined."""
    ours, theirs = run_vs_torch(
        torch, name, kw, np.float64, torch_dtype=np.float64, requantize=False
    )
    assert max_rel_diff(ours, theirs, 1e-3) < 1e-12


@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=_case_ids)
def test_reference_matches_torch_float32(torch, name, kw):
    """float32 params (float32 state) vs torch's recursion in float64 with float32
    storage after every step: max |a-b|/max(|b|, 1) < 1e-6.

    Why not plain torch float32: torch rounds every intermediate op to float32 (AdamW
    even rounds p after the decay multiply and before the update, with the decay factor
    itself quantised to float32), so plain torch float32 drifts from the exact recursion
    by several T*u (u = 2^-24, T = 100 steps; see the next test). The reference does the
    contract's arithmetic: float64 inside, one rounding per stored value, which is what
    torch-in-float64-rounded-to-float32-per-step computes too. The two then agree to the
    last bit except where an exact result lies on a float32 rounding midpoint (common for
    EMAs of float32 inputs with beta = 0.9: (9m + g)/10 can be a dyadic midpoint) and
    the two float64 groupings round it to different sides: a 1-ulp flip that the later
    steps carry along. Floor 1 = the scale of the start values (standard normal): an
    element that wanders near 0 keeps the absolute error of an O(1) computation."""
    ours, theirs = run_vs_torch(
        torch, name, kw, np.float32, torch_dtype=np.float64, requantize=True
    )
    assert all(a.dtype == np.float32 for a in ours)
    assert max_rel_diff(ours, theirs, 1.0) < 1e-6


@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=_case_ids)
def test_reference_vs_plain_torch_float32(torch, name, kw):
    """Plain torch float32 vs the reference: within 4 T u (floor 1).

    Each step rounds p once in the reference and at most 3 times in torch (AdamW: the
    decay multiply with a float32-quantised factor, then addcdiv; SGD/Adam: the update's
    scaled term and the add), each rounding at most u relative, and these optimizers
    do not amplify an error in p (d p_{t+1}/d p_t = 1 - lr*wd <= 1 and the normalised
    step depends on p only through the small L2 term): |a - b| <= (1 + 3) T u max(|b|, 1).
    Observed: up to 0.9e-6 for SGD/Adam, 6.6e-6 for AdamW (torch's drift)."""
    ours, theirs = run_vs_torch(
        torch, name, kw, np.float32, torch_dtype=np.float32, requantize=False
    )
    assert max_rel_diff(ours, theirs, 1.0) < 4 * 100 * U32


@pytest.mark.parametrize("kw", [dict(), dict(lr=0.01, weight_decay=0.1)])
def test_reference_closer_to_exact_than_torch_float32_adamw(torch, kw):
    """The exact recursion = torch AdamW in float64 on the same float32 inputs. The
    reference (one rounding a step) stays within T u of it; torch float32's systematic
    decay-rounding drift is larger."""
    exact = run_vs_torch(torch, "AdamW", kw, np.float32, torch_dtype=np.float64, requantize=False)[
        1
    ]
    ours = run_vs_torch(torch, "AdamW", kw, np.float32, torch_dtype=np.float64, requantize=True)[0]
    plain = run_vs_torch(torch, "AdamW", kw, np.float32, torch_dtype=np.float32, requantize=False)[
        1
    ]
    err_ours = max_rel_diff(ours, exact, 1.0)
    err_torch = max_rel_diff(plain, exact, 1.0)
    assert err_ours < 100 * U32
    assert err_ours < err_torch


# ============================================================================
# state round trip


def _class_cases():
    return [
        ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), np.float64),
        ("SGD", dict(lr=0.05), np.float32),
        ("Adam", dict(amsgrad=True, weight_decay=0.1), np.float64),
        ("Adam", dict(state_dtype="bfloat16", seed=4), np.float32),
        ("AdamW", dict(), np.float32),
        ("AdamW", dict(state_dtype="bfloat16", seed=5), np.float32),
        ("AdaX", dict(weight_decay=0.01), np.float64),
        ("AdaX", dict(state_dtype="bfloat16"), np.float32),
        ("Lion", dict(weight_decay=0.1), np.float32),
        ("Lion", dict(state_dtype="bfloat16", seed=2**40 + 3), np.float32),
        ("LAMB", dict(), np.float64),
        ("Adafactor", dict(min_dim_size_to_factor=4, beta1=0.9), np.float32),
        ("Adafactor", dict(lr=1e-3, beta2=0.99, multiply_by_parameter_scale=False), np.float64),
        ("Amos", dict(eta=[0.5, 0.1, 0.2]), np.float64),
        ("Amos", dict(reduce_all=True), np.float32),
    ]


@pytest.mark.parametrize(
    "name,kw,dtype", _class_cases(), ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(_class_cases())]
)
def test_state_round_trip_is_bitwise(name, kw, dtype):
    shapes = [(7,), (6, 5), (2, 3, 4)]
    rng = np.random.default_rng(12)
    p0 = [rng.normal(size=s).astype(dtype) for s in shapes]
    grads = [[rng.normal(size=s).astype(dtype) for s in shapes] for _ in range(100)]
    cls = getattr(ref, name)

    full = [p.copy() for p in p0]
    opt_full = cls(full, **kw)
    for t in range(100):
        opt_full.step(grads[t])

    half = [p.copy() for p in p0]
    opt = cls(half, **kw)
    for t in range(50):
        opt.step(grads[t])
    sd = opt.state_dict()
    assert sd["step_count"] == 50 and isinstance(sd["step_count"], int)
    assert all(isinstance(v, np.ndarray) for s in sd["state"] for v in s.values())
    fresh = [p.copy() for p in half]
    opt.step(grads[50])  # the saved dict holds copies: later steps do not touch it
    opt2 = cls(fresh, **kw)
    opt2.load_state_dict(sd)
    assert opt2.step_count == 50
    for t in range(50, 100):
        opt2.step(grads[t])
    assert opt2.step_count == 100
    for a, b in zip(fresh, full):
        assert a.tobytes() == b.tobytes()
    for s, t in zip(opt2.state_dict()["state"], opt_full.state_dict()["state"]):
        assert s.keys() == t.keys()
        assert all(s[k].dtype == t[k].dtype and s[k].tobytes() == t[k].tobytes() for k in s)


def test_load_state_dict_validates():
    opt = ref.Adam([np.zeros(3), np.zeros((2, 2))])
    sd = opt.state_dict()
    bad = {"step_count": 1, "state": sd["state"][:1]}
    with pytest.raises(ValueError, match="entries"):
        opt.load_state_dict(bad)
    sd["state"][1]["exp_avg"] = np.zeros(4)
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(sd)
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"] = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="dtype"):
        opt.load_state_dict(sd)
    sd = opt.state_dict()
    del sd["state"][0]["exp_avg_sq"]
    with pytest.raises(ValueError, match="slots"):
        opt.load_state_dict(sd)
    assert opt.step_count == 0


# ============================================================================
# API shape: the contract's signatures, list/single-array forms, docs


# copied from the contract (inspect renders 1e-3 as 0.001 and 2**-125 by its repr)
_SIG_TEXT = """
sgd_ (params, grads, momentum_buffers, step, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
      weight_decay=0.0, grad_scale=1.0, stream=None)
adam_ (params, grads, exp_avgs, exp_avg_sqs, step, *, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08,
       weight_decay=0.0, amsgrad=False, max_exp_avg_sqs=None, grad_scale=1.0, seed=0, stream=None)
adamw_ (params, grads, exp_avgs, exp_avg_sqs, step, *, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08,
        weight_decay=0.01, amsgrad=False, max_exp_avg_sqs=None, grad_scale=1.0, seed=0, stream=None)
adax_ (params, grads, exp_avgs, exp_avg_sqs, step, *, lr=0.001, beta1=0.9, beta2=0.0001, eps=1e-06,
       weight_decay=0.0, grad_scale=1.0, seed=0, stream=None)
lion_ (params, grads, exp_avgs, step, *, lr=0.0001, beta1=0.9, beta2=0.99, weight_decay=0.0,
       grad_scale=1.0, seed=0, stream=None)
lamb_ (params, grads, exp_avgs, exp_avg_sqs, step, *, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-06,
       weight_decay=0.01, grad_scale=1.0)
adafactor_ (params, grads, exp_avgs, exp_avg_sqs, exp_avg_sq_rows, exp_avg_sq_cols, step, *,
            lr=None, beta1=0.0, beta2=None, eps1=1e-30, eps2=0.001, d=1.0,
            multiply_by_parameter_scale=True, grad_scale=1.0)
adafactor_shapes (shape, min_dim_size_to_factor=128)
amos_ (params, grads, exp_avg_sqs, decays, step, *, lr, eta, beta=0.999, zeta=0.25,
       eps=2.350988701644575e-38, finetune_rate=1.0, grad_scale=1.0)
clip_grad_norm_ (grads, max_norm, *, mode='clip', stream=None)
child_tuning_ (grads, p, *, seed, step=0)
warmup_linear (step, *, lr, warmup_steps, total_steps, min_lr=0.0)
warmup_cosine (step, *, lr, warmup_steps, total_steps, min_lr=0.0)
inverse_square_decay (step, *, alpha0, p)
inverse_time_decay (step, *, alpha0, p0)
alchemy (step, *, alpha0, p, kind='inverse_time', q=1.0)
SGD (params, lr=0.001, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False)
Adam (params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, *,
      state_dtype=None, seed=0)
AdamW (params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=False, *,
       state_dtype=None, seed=0)
AdaX (params, lr=0.001, betas=(0.9, 0.0001), eps=1e-06, weight_decay=0.0, *, state_dtype=None,
      seed=0)
Lion (params, lr=0.0001, betas=(0.9, 0.99), weight_decay=0.0, *, state_dtype=None, seed=0)
LAMB (params, lr=0.001, betas=(0.9, 0.999), eps=1e-06, weight_decay=0.01)
Adafactor (params, lr=None, beta1=0.0, beta2=None, eps=(1e-30, 0.001), d=1.0,
           multiply_by_parameter_scale=True, min_dim_size_to_factor=128)
Amos (params, lr=0.01, eta=0.5, beta=0.999, zeta=0.25, eps=2.350988701644575e-38,
      finetune_rate=1.0, reduce_all=False)
"""
CONTRACT_SIGNATURES = {
    m.group(1): " ".join(m.group(2).split()).replace("( ", "(")
    for m in re.finditer(r"^(\w+) (\(.*?\))$", _SIG_TEXT, re.M | re.S)
}
STEP_SIGNATURE = "(self, grads, lr=None, max_grad_norm=None, skip_nonfinite=False)"


def test_contract_signature_table_is_complete():
    assert len(CONTRACT_SIGNATURES) == 24
    assert set(CONTRACT_SIGNATURES) | {
        "philox4x32_10",
        "random_words",
        "bf16_decode",
        "bf16_stochastic_round",
    } == set(ref.__all__)


@pytest.mark.parametrize("name", sorted(CONTRACT_SIGNATURES))
def test_signatures_are_the_contracts(name):
    obj = getattr(ref, name)
    assert name in ref.__all__
    assert str(inspect.signature(obj)) == CONTRACT_SIGNATURES[name]
    if inspect.isclass(obj):
        assert str(inspect.signature(obj.step)) == STEP_SIGNATURE
    assert obj.__doc__


def test_single_array_and_list_forms_agree():
    rng = np.random.default_rng(13)
    p0, g = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    a, b = p0.copy(), p0.copy()
    ma, va, mb, vb = (np.zeros((4, 5)) for _ in range(4))
    ref.adamw_(a, g, ma, va, 1)
    ref.adamw_([b], [g], [mb], [vb], 1)
    assert np.array_equal(a, b) and np.array_equal(va, vb)
    with pytest.raises(ValueError, match="grads"):
        ref.adamw_([a, b], [g], [ma, mb], [va, vb], 1)


def test_write_back_keeps_dtype_and_identity():
    for fn, n_state in ((ref.adam_, 2), (ref.adax_, 2), (ref.lamb_, 2), (ref.lion_, 1)):
        p = np.ones(4, np.float32)
        states = [np.zeros(4, np.float32) for _ in range(n_state)]
        ids = [id(p)] + [id(s) for s in states]
        fn(p, np.ones(4, np.float32), *states, 1)
        assert p.dtype == np.float32 and all(s.dtype == np.float32 for s in states)
        assert ids == [id(p)] + [id(s) for s in states]
        assert np.all(p != 1.0)


def test_docstring_examples():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(ref)  # the module's own globals (np included)
    assert sum(len(t.examples) for t in tests) >= 20
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


def test_reference_imports_nothing_from_kexue():
    text = pathlib.Path(ref.__file__).read_text()
    assert not re.search(r"^\s*(import|from)\s+(kexue|\.)", text, re.M)
    assert not re.search(r"\b_core\b|import_module|__import__", text)
