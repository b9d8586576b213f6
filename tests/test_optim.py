"""kexue.optim (the compiled core) against its numpy twin kexue.reference.optim,
against torch.optim, and against itself (threads, SIMD levels, state round trip),
plus the front door: every bad input raises a clear error and changes no byte.

The reference itself is held to the spec's worked numbers, Random123's vectors
and torch in tests/test_optim_reference.py; here the core must agree with it.
Tolerances come from kexue.testing.assert_close (float64 ~1e-12, float32 ~1e-5);
every other tolerance says why next to it.
"""

from __future__ import annotations

import inspect
import math
import re

import kexue
import numpy as np
import pytest
from kexue import _core, optim
from kexue.optim import functional, schedules
from kexue.reference import optim as ref
from kexue.testing import assert_close

DTYPES = (np.float32, np.float64)
SHAPES = [(1,), (7,), (1000,), (31, 33), (2, 3, 4, 5)]
BIG = 2**20 + 3
U32 = 2.0**-24  # float32 unit roundoff

FUNCTIONAL = [
    "sgd_",
    "adam_",
    "adamw_",
    "adax_",
    "lion_",
    "lamb_",
    "adafactor_",
    "adafactor_shapes",
    "amos_",
]
SCHEDULES = [
    "warmup_linear",
    "warmup_cosine",
    "inverse_square_decay",
    "inverse_time_decay",
    "alchemy",
]
CLASSES = ["SGD", "Adam", "AdamW", "AdaX", "Lion", "LAMB", "Adafactor", "Amos"]


# ============================================================================
# helpers


def state_bytes(opt):
    return [
        {k: (v.dtype, v.shape, v.tobytes()) for k, v in s.items()}
        for s in opt.state_dict()["state"]
    ]


def all_bytes(arrays):
    return [(a.dtype, a.shape, a.tobytes()) for a in arrays]


def grads_for(rng, shapes, dtype):
    return [rng.normal(size=s).astype(dtype) for s in shapes]


def compare_states(core_sd, ref_sd, *, bf16_bitwise, what=""):
    """Core and reference state dicts: same slots, shapes and dtypes; float slots within
    the dtype tolerance; bfloat16 slots bitwise (see the callers for when that holds)."""
    assert len(core_sd["state"]) == len(ref_sd["state"])
    assert core_sd["step_count"] == ref_sd["step_count"]
    for i, (c, r) in enumerate(zip(core_sd["state"], ref_sd["state"])):
        assert c.keys() == r.keys(), f"{what} param {i}: slots {sorted(c)} != {sorted(r)}"
        for k in c:
            assert c[k].dtype == r[k].dtype and c[k].shape == r[k].shape, f"{what} {i} {k}"
            if c[k].dtype == np.uint16:
                if bf16_bitwise:
                    assert np.array_equal(c[k], r[k]), (
                        f"{what} param {i} slot {k}: bf16 bits differ"
                    )
                else:
                    # one stochastic rounding may land on the other bf16 neighbour (2^-7 apart)
                    assert_close(
                        ref.bf16_decode(c[k]), ref.bf16_decode(r[k]), rtol=2**-6, atol=1e-30
                    )
            else:
                assert_close(c[k], r[k])


def run_pair(name, kw, shapes, dtype, steps, *, seed=0, grad_pool=None, step_kw=None):
    """Core and reference optimizers from the same start values, stepped with the same grads."""
    rng = np.random.default_rng(seed)
    p0 = [rng.normal(size=s).astype(dtype) for s in shapes]
    cp, rp = [p.copy() for p in p0], [p.copy() for p in p0]
    co, ro = getattr(optim, name)(cp, **kw), getattr(ref, name)(rp, **kw)
    for t in range(steps):
        if grad_pool is None:
            gs = grads_for(rng, shapes, dtype)
        else:  # big arrays: rotate a few pre-drawn gradients, rescaled so no two steps agree
            gs = [(grad_pool[t % len(grad_pool)] * dtype(1 + 0.01 * t)).astype(dtype)]
        kws = step_kw(t) if step_kw else {}
        assert co.step(gs, **kws) is True
        assert ro.step(gs, **kws) is True
    assert co.step_count == ro.step_count == steps
    return co, ro, cp, rp


# ============================================================================
# API: the contract's names and signatures


def test_names_and_signatures_match_the_twin():
    for name in FUNCTIONAL:
        fn, twin = getattr(functional, name), getattr(ref, name)
        assert inspect.signature(fn) == inspect.signature(twin), name
        assert fn.__doc__, name
    for name in SCHEDULES:
        fn, twin = getattr(schedules, name), getattr(ref, name)
        assert inspect.signature(fn) == inspect.signature(twin), name
    for name in ("clip_grad_norm_", "child_tuning_"):
        assert inspect.signature(getattr(optim, name)) == inspect.signature(getattr(ref, name)), (
            name
        )
    for name in CLASSES:
        cls, twin = getattr(optim, name), getattr(ref, name)
        assert inspect.signature(cls) == inspect.signature(twin), name
        assert inspect.signature(cls.step) == inspect.signature(twin.step), name
        assert cls.__doc__, name


@pytest.mark.parametrize(
    "shape,k",
    [
        ((5,), 1),
        ((2, 3), 1),
        ((2, 3), 128),
        ((4, 4), 1),
        ((5, 3, 5), 1),
        ((300, 200), 128),
        ((300, 127), 128),
        ((2, 200, 150, 3), 128),
        ((), 1),
    ],
)
def test_adafactor_shapes(shape, k):
    assert functional.adafactor_shapes(shape, k) == ref.adafactor_shapes(shape, k)


# ============================================================================
# core vs reference, every optimizer and option


CASES = [
    ("SGD", dict(lr=0.01)),
    ("SGD", dict(lr=0.01, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdaX", dict()),
    ("AdaX", dict(lr=0.01, betas=(0.8, 1e-3), eps=1e-8, weight_decay=0.01)),
    ("Lion", dict(lr=1e-3)),
    ("Lion", dict(lr=1e-3, betas=(0.95, 0.98), weight_decay=0.1)),
    ("LAMB", dict()),
    ("LAMB", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.0)),
    ("Adafactor", dict()),  # default 128: every SHAPES entry unfactored
    ("Adafactor", dict(min_dim_size_to_factor=2)),  # (31,33) and (2,3,4,5) factored
    ("Adafactor", dict(min_dim_size_to_factor=3, beta1=0.9, lr=1e-3)),
    (
        "Adafactor",
        dict(
            min_dim_size_to_factor=2,
            beta2=0.99,
            eps=(1e-30, 1e-2),
            d=0.5,
            multiply_by_parameter_scale=False,
        ),
    ),
    ("Amos", dict()),
    ("Amos", dict(reduce_all=True)),
    ("Amos", dict(lr=0.02, eta=[0.5, 0.1, 0.2, 0.3, 0.4], finetune_rate=0.5)),
]
_ids = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", CASES, ids=_ids)
def test_core_matches_reference(name, kw, dtype):
    co, ro, cp, rp = run_pair(name, kw, SHAPES, dtype, 100)
    for a, b in zip(cp, rp):
        assert a.dtype == dtype
        assert_close(a, b)
    compare_states(co.state_dict(), ro.state_dict(), bf16_bitwise=True, what=name)


BF16_CASES = [
    # the moments do not depend on p here, so core and reference round the same float32
    # values with the same words: the stored bits agree exactly
    ("Adam", dict(lr=0.01), True),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, seed=7), True),
    ("AdaX", dict(lr=0.01), True),
    ("Lion", dict(lr=1e-3, weight_decay=0.1, seed=2**40 + 1), True),
    # Adam's L2 term feeds p into d32 = g32 + wd*p: a 1-ulp difference in p (core and
    # reference may round p's update differently) can, rarely, move m32 across a bf16
    # rounding threshold, so the bits are compared within one bf16 step
    ("Adam", dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.99)), False),
]


@pytest.mark.parametrize(
    "name,kw,bitwise", BF16_CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BF16_CASES)]
)
def test_core_matches_reference_bf16_state(name, kw, bitwise):
    kw = dict(kw, state_dtype="bfloat16")
    co, ro, cp, rp = run_pair(name, kw, SHAPES, np.float32, 100)
    for a, b in zip(cp, rp):
        assert_close(a, b)
    sd = co.state_dict()
    assert all(v.dtype == np.uint16 for s in sd["state"] for v in s.values())
    compare_states(sd, ro.state_dict(), bf16_bitwise=bitwise, what=name)


def test_core_matches_reference_big_arrays():
    rng = np.random.default_rng(1)
    pool = [rng.normal(size=BIG).astype(np.float32) for _ in range(3)]
    co, ro, cp, rp = run_pair(
        "AdamW", dict(lr=0.01, weight_decay=0.1), [(BIG,)], np.float32, 30, grad_pool=pool
    )
    assert_close(cp[0], rp[0])
    compare_states(co.state_dict(), ro.state_dict(), bf16_bitwise=True)
    co, ro, cp, rp = run_pair(
        "AdamW",
        dict(lr=0.01, state_dtype="bfloat16", seed=3),
        [(BIG,)],
        np.float32,
        30,
        grad_pool=pool,
    )
    assert_close(cp[0], rp[0])
    compare_states(co.state_dict(), ro.state_dict(), bf16_bitwise=True)


def test_functional_matches_reference_with_grad_scale_and_single_arrays():
    """The functional API directly: single arrays (not lists), grad_scale != 1, None entries."""
    rng = np.random.default_rng(2)
    for dtype in DTYPES:
        p0, g = rng.normal(size=(5, 6)).astype(dtype), rng.normal(size=(5, 6)).astype(dtype)
        for fn, n_state, kw in (
            (("adam_"), 2, dict(weight_decay=0.1)),
            ("adamw_", 2, {}),
            ("adax_", 2, {}),
            ("lion_", 1, dict(lr=1e-2)),
            ("lamb_", 2, {}),
        ):
            a, b = p0.copy(), p0.copy()
            sa = [np.full_like(p0, 0.1) for _ in range(n_state)]
            sb = [s.copy() for s in sa]
            getattr(functional, fn)(a, g, *sa, 3, grad_scale=0.25, **kw)
            getattr(ref, fn)(b, g, *sb, 3, grad_scale=0.25, **kw)
            assert_close(a, b)
            for x, y in zip(sa, sb):
                assert_close(x, y)
        # SGD without momentum: momentum_buffers None
        a, b = p0.copy(), p0.copy()
        functional.sgd_(a, g, None, 1, lr=0.1, weight_decay=0.01, grad_scale=2.0)
        ref.sgd_(b, g, None, 1, lr=0.1, weight_decay=0.01, grad_scale=2.0)
        assert_close(a, b)
        # Adafactor: one factored and one full array in a list, explicit lr and beta2
        ps = [p0.copy(), rng.normal(size=4).astype(dtype)]
        qs = [p.copy() for p in ps]
        gs = [g, rng.normal(size=4).astype(dtype)]
        # (5, 6): a1 = axis 1, row = (5,), col = (6,); the 1-D array keeps a full second moment
        st_c = [None, np.zeros(4, dtype)], [np.zeros(5, dtype), None], [np.zeros(6, dtype), None]
        st_r = tuple([None if x is None else x.copy() for x in s] for s in st_c)
        functional.adafactor_(ps, gs, None, *st_c, 2, lr=0.01, beta2=0.9, grad_scale=0.5)
        ref.adafactor_(qs, gs, None, *st_r, 2, lr=0.01, beta2=0.9, grad_scale=0.5)
        for x, y in zip(
            ps + [s for s in sum(st_c, []) if s is not None],
            qs + [s for s in sum(st_r, []) if s is not None],
        ):
            assert_close(x, y)
        # Amos with a 0-d state
        a, b = p0.copy(), p0.copy()
        va, ba, vb, bb = (np.zeros((), dtype) for _ in range(4))
        for t in (1, 2):
            functional.amos_(a, g, va, ba, t, lr=0.01, eta=0.5, grad_scale=0.5)
            ref.amos_(b, g, vb, bb, t, lr=0.01, eta=0.5, grad_scale=0.5)
        assert_close(a, b)
        assert_close(ba, bb)


def test_functional_spec_numbers():
    """Two of the spec's worked examples through the core's functional API (all of them
    are asserted on the reference in test_optim_reference.py)."""
    p, m, v = np.array([0.5, -1.0, 2.0]), np.zeros(3), np.zeros(3)
    functional.adamw_(p, np.array([0.1, -0.2, 0.3]), m, v, 1)
    functional.adamw_(p, np.array([-0.05, 0.1, 0.4]), m, v, 2)
    assert_close(
        p, [0.49872367, -0.99871367, 1.99796269], rtol=0, atol=5e-9
    )  # spec prints 8 decimals
    w = np.array([[0.5, -1.0, 2.0], [0.1, 0.3, -0.4]])
    row, col = np.zeros(2), np.zeros(3)
    functional.adafactor_(
        w, np.array([[0.1, -0.2, 0.3], [0.05, 0.0, -0.1]]), None, None, row, col, 1
    )
    assert_close(
        w, [[0.49147127, -0.99046459, 1.99095391], [0.0857287, 0.3, -0.38990867]], rtol=0, atol=5e-9
    )


# ============================================================================
# core vs torch.optim


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
_torch_ids = [f"{n}-{i}" for i, (n, _) in enumerate(TORCH_CASES)]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def max_rel_diff(actual, expected, floor):
    """max over all arrays of |a - b| / max(|b|, floor), in float64."""
    worst = 0.0
    for a, b in zip(actual, expected):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor))))
    return worst


def run_core_vs_torch(
    torch, name, kw, dtype, *, torch_dtype, requantize, steps=100, shapes=SHAPES, grad_pool=None
):
    """The core optimizer and torch.optim.<name> (foreach=False) on the same start values and
    grads. ``requantize``: round torch's params and state to float32 after every step (torch
    computing in float64 with float32 storage; see test_optim_reference.py for why that, not
    plain torch float32, is the recursion a float32 core must reproduce to 1e-6)."""
    rng = np.random.default_rng(0)
    p0 = [rng.normal(size=s).astype(dtype) for s in shapes]
    ours = [p.copy() for p in p0]
    theirs = [torch.tensor(p.astype(torch_dtype), requires_grad=True) for p in p0]
    opt = getattr(optim, name)(ours, **kw)
    topt = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for t in range(steps):
        if grad_pool is None:
            gs = grads_for(rng, shapes, dtype)
        else:
            gs = [(grad_pool[t % len(grad_pool)] * dtype(1 + 0.01 * t)).astype(dtype)]
        opt.step(gs)
        for x, g in zip(theirs, gs):
            x.grad = torch.from_numpy(g.astype(torch_dtype))
        topt.step()
        if requantize:
            with torch.no_grad():
                for x in theirs:
                    x.copy_(x.float().double())
                    for s in topt.state[x].values():
                        if torch.is_tensor(s) and s.dtype == torch.float64:
                            s.copy_(s.float().double())
    return ours, [x.detach().numpy() for x in theirs]


@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=_torch_ids)
def test_core_matches_torch_float64(torch, name, kw):
    # 1e-12 relative with a 1e-3 floor: elements that end near 0 carry the absolute
    # error of O(1) arithmetic; the reference sits at <= 3e-13 on the same runs
    ours, theirs = run_core_vs_torch(
        torch, name, kw, np.float64, torch_dtype=np.float64, requantize=False
    )
    assert max_rel_diff(ours, theirs, 1e-3) < 1e-12


@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=_torch_ids)
def test_core_matches_torch_float32(torch, name, kw):
    """The issue's bound: max |a-b|/max(|b|, 1) < 1e-6 against torch float32.

    Floor 1 = the scale of the standard-normal start values: an element that wanders near 0
    keeps the absolute error of O(1) arithmetic (float32 steps of size lr on values of size 1),
    so a pure relative measure would divide that by a tiny |b|.

    1e-6 is about 17 float32 ulps at 1, below the T*u = 6e-6 that 100 steps of float32
    storage may accumulate, so it holds only for an implementation that rounds where torch
    does; torch float32 itself drifts from the exact recursion by up to ~6e-6 for AdamW (the
    decay factor quantised to float32, p rounded after the decay and again after the update;
    see test_optim_reference.py). The reference (float64 inside) sits at up to 6.6e-6 from
    torch float32 on AdamW for that reason and is not held to this bound."""
    ours, plain = run_core_vs_torch(
        torch, name, kw, np.float32, torch_dtype=np.float32, requantize=False
    )
    assert max_rel_diff(ours, plain, 1.0) < 1e-6
    # and the core stays near the exact recursion (torch in float64 on the same float32
    # inputs): within the float32 rounding budget of 100 steps, <= 3 roundings of p each
    # plus the decay factor's quantisation, (3 + 1) T u
    ours, exact = run_core_vs_torch(
        torch, name, kw, np.float32, torch_dtype=np.float64, requantize=False
    )
    assert max_rel_diff(ours, exact, 1.0) < 4 * 100 * U32


def test_core_matches_torch_big_array(torch):
    rng = np.random.default_rng(4)
    pool = [rng.normal(size=BIG).astype(np.float32) for _ in range(3)]
    kw = dict(lr=0.01, weight_decay=0.1, amsgrad=True)
    ours, theirs = run_core_vs_torch(
        torch,
        "AdamW",
        kw,
        np.float32,
        torch_dtype=np.float32,
        requantize=False,
        shapes=[(BIG,)],
        grad_pool=pool,
    )
    assert max_rel_diff(ours, theirs, 1.0) < 1e-6  # as test_core_matches_torch_float32


# ============================================================================
# step options: max_grad_norm, skip_nonfinite, lr override


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", CLASSES)
def test_max_grad_norm_is_manual_clipping(name, dtype):
    shapes = [(7,), (6, 5)]
    rng = np.random.default_rng(5)
    p0 = grads_for(rng, shapes, dtype)
    a, b, c = ([p.copy() for p in p0] for _ in range(3))
    kw = dict(lr=1e-2) if name != "Adafactor" else {}
    oa, ob, oc = (
        getattr(optim, name)(a, **kw),
        getattr(optim, name)(b, **kw),
        getattr(ref, name)(c, **kw),
    )
    for _ in range(5):
        g = [x * dtype(3) for x in grads_for(rng, shapes, dtype)]  # norm ~ 3 sqrt(37) > 1
        before = all_bytes(g)
        oa.step(g, max_grad_norm=1.0)
        assert all_bytes(g) == before  # the grads themselves are not rewritten
        oc.step(g, max_grad_norm=1.0)
        manual = [x.copy() for x in g]
        norm = ref.clip_grad_norm_(manual, 1.0)
        assert norm > 1.0
        ob.step(manual)
    for x, y, z in zip(a, b, c):
        assert_close(x, y)  # manual scaling rounds g*factor to the grad dtype first
        assert_close(x, z)


@pytest.mark.parametrize("name", CLASSES)
def test_max_grad_norm_above_the_norm_changes_nothing(name):
    rng = np.random.default_rng(6)
    p0 = grads_for(rng, [(9,), (4, 3)], np.float32)
    a, b = [p.copy() for p in p0], [p.copy() for p in p0]
    oa, ob = getattr(optim, name)(a), getattr(optim, name)(b)
    for _ in range(3):
        g = grads_for(rng, [(9,), (4, 3)], np.float32)
        oa.step(g, max_grad_norm=1e6)  # grad_scale = 1: the very same step
        ob.step(g)
    assert all_bytes(a) == all_bytes(b)
    assert state_bytes(oa) == state_bytes(ob)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", CLASSES)
def test_skip_nonfinite_changes_nothing(name, bad):
    rng = np.random.default_rng(7)
    shapes = [(9,), (4, 3), (2, 2, 2)]
    ps = grads_for(rng, shapes, np.float32)
    opt = getattr(optim, name)(ps)
    opt.step(grads_for(rng, shapes, np.float32))
    before = all_bytes(ps), state_bytes(opt)
    g = grads_for(rng, shapes, np.float32)
    g[2][1, 0, 1] = bad  # in the last array: the earlier ones must not be updated either
    assert opt.step(g, skip_nonfinite=True) is False
    assert opt.step(g, skip_nonfinite=True, max_grad_norm=1.0) is False
    assert opt.step_count == 1
    assert (all_bytes(ps), state_bytes(opt)) == before
    g[2][1, 0, 1] = 0.5
    assert opt.step(g, skip_nonfinite=True) is True
    assert opt.step_count == 2


@pytest.mark.parametrize("name", CLASSES)
def test_lr_override_and_attribute(name):
    rng = np.random.default_rng(8)
    p0 = grads_for(rng, [(11,), (3, 4)], np.float64)
    a, b = [p.copy() for p in p0], [p.copy() for p in p0]
    oa, ob = getattr(optim, name)(a, lr=0.003), getattr(optim, name)(b, lr=0.007)
    g = grads_for(rng, [(11,), (3, 4)], np.float64)
    oa.step(g, lr=0.007)
    ob.step(g)
    assert all_bytes(a) == all_bytes(b)  # the override is exactly the attribute's effect
    assert oa.lr == 0.003
    oa.lr = 0.001
    ob.step(g, lr=0.001)
    oa.step(g)
    assert all_bytes(a) == all_bytes(b)
    assert state_bytes(oa) == state_bytes(ob)


# ============================================================================
# clip_grad_norm_


def numpy_norm(gs):
    return math.sqrt(math.fsum(float(np.sum(g.astype(np.float64) ** 2)) for g in gs))


@pytest.mark.parametrize("mode", ["clip", "smooth"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_clip_grad_norm_matches_numpy_and_reference(mode, dtype):
    rng = np.random.default_rng(9)
    for scale in (0.01, 1.0, 100.0):
        gs = [x * dtype(scale) for x in grads_for(rng, SHAPES, dtype)]
        rs = [x.copy() for x in gs]
        want = numpy_norm(gs)
        n = optim.clip_grad_norm_(gs, 5.0, mode=mode)
        assert isinstance(n, float)
        assert abs(n - want) <= 1e-13 * want  # float64 accumulation: the summation order only
        assert abs(ref.clip_grad_norm_(rs, 5.0, mode=mode) - want) <= 1e-13 * want
        for a, b in zip(gs, rs):
            assert a.dtype == dtype
            assert_close(a, b)


def test_clip_grad_norm_spec_and_edges():
    gs = [np.array([3.0, 0.0]), np.array([[0.0, 4.0], [12.0, 0.0]])]
    assert optim.clip_grad_norm_(gs, 5.0) == 13.0
    assert_close(gs[1], [[0.0, 20 / 13], [60 / 13, 0.0]])
    g = np.array([3.0, 4.0], np.float32)
    assert optim.clip_grad_norm_(g, 1.0, mode="smooth") == 5.0  # one array, not a list
    assert_close(g, np.float32([0.5, 2 / 3]))
    # below the threshold (clip): factor 1, bytes untouched
    g = [np.array([0.3, 0.4])]
    before = all_bytes(g)
    assert optim.clip_grad_norm_(g, 1.0) == 0.5
    assert all_bytes(g) == before
    # zero gradients: norm 0, nothing changes, both modes
    z = [np.zeros(5, np.float32), np.zeros((3, 2))]
    for mode in ("clip", "smooth"):
        assert optim.clip_grad_norm_(z, 1.0, mode=mode) == 0.0
        assert all(not a.any() for a in z)
    # non-finite norm: grads untouched
    bad = [np.array([1.0, 2.0]), np.array([np.inf, 1.0], np.float32)]
    before = all_bytes(bad)
    assert optim.clip_grad_norm_(bad, 1.0) == np.inf
    assert all_bytes(bad) == before
    bad[1][0] = np.nan
    assert math.isnan(optim.clip_grad_norm_(bad, 1.0))


def test_clip_grad_norm_one_huge_array():
    n = 2**24
    g = np.full(n, 3.0, np.float32)
    # exact in float64 (sum 9 * 2^24); float32 accumulation would stall past 2^27
    assert optim.clip_grad_norm_(g, 1e9) == 3.0 * 2**12
    rng = np.random.default_rng(10)
    g = rng.random(n, dtype=np.float32)
    g0 = g.copy()
    norm = optim.clip_grad_norm_(g, 10.0)
    want = math.sqrt(math.fsum((g0.astype(np.float64) ** 2).reshape(-1, 4096).sum(axis=1)))
    assert abs(norm - want) <= 1e-12 * want  # float64 accumulation over 2^24 terms
    assert_close(g, g0 * np.float32(10.0 / norm))


# ============================================================================
# child_tuning_


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_child_tuning_bitwise_reference(dtype):
    rng = np.random.default_rng(11)
    for p in (0.1, 0.5, 0.999, 1.0):
        for seed, step in ((0, 0), (3, 17), (2**40 + 5, 2**33 + 1)):
            gs = grads_for(rng, SHAPES + [(100_003,)], dtype)
            rs = [x.copy() for x in gs]
            assert optim.child_tuning_(gs, p, seed=seed, step=step) is None
            ref.child_tuning_(rs, p, seed=seed, step=step)
            for a, b in zip(gs, rs):
                assert a.dtype == dtype and a.tobytes() == b.tobytes()
    g = rng.normal(size=(4, 6)).astype(dtype)
    r = g.copy()
    optim.child_tuning_(g, 0.3, seed=1)  # one array
    ref.child_tuning_(r, 0.3, seed=1)
    assert g.tobytes() == r.tobytes()


# ============================================================================
# schedules


def test_schedules_match_reference():
    steps = np.array([0, 1, 5, 10, 11, 50, 99, 100, 101, 1000])
    for name in ("warmup_linear", "warmup_cosine"):
        for kw in (
            dict(lr=0.1, warmup_steps=10, total_steps=100),
            dict(lr=1.0, warmup_steps=0, total_steps=50, min_lr=0.1),
            dict(lr=1.0, warmup_steps=10, total_steps=10, min_lr=0.1),  # degenerate W == T
            dict(lr=1.0, warmup_steps=0, total_steps=0, min_lr=0.1),
        ):
            fn, twin = getattr(schedules, name), getattr(ref, name)
            assert_close(np.asarray(fn(steps, **kw), np.float64), twin(steps, **kw))
            for s in (0, 7, 10, 60, 100, 500):
                v = fn(s, **kw)
                assert isinstance(v, float)
                assert_close(v, twin(s, **kw))
    for s in (0, 1, 1000, steps):
        assert_close(
            np.asarray(schedules.inverse_square_decay(s, alpha0=1e-3, p=2.0), np.float64),
            ref.inverse_square_decay(s, alpha0=1e-3, p=2.0),
        )
        assert_close(
            np.asarray(schedules.inverse_time_decay(s, alpha0=1e-3, p0=0.5), np.float64),
            ref.inverse_time_decay(s, alpha0=1e-3, p0=0.5),
        )
        for kind in ("inverse_time", "inverse_square"):
            a, r = schedules.alchemy(s, alpha0=1e-3, p=0.5, kind=kind, q=2.0)
            a2, r2 = ref.alchemy(s, alpha0=1e-3, p=0.5, kind=kind, q=2.0)
            assert_close(np.asarray(a, np.float64), a2)
            assert_close(np.asarray(r, np.float64), r2)
    assert schedules.inverse_time_decay(1000, alpha0=1e-3, p0=0.5) == 0.5
    for name in ("warmup_linear", "warmup_cosine"):
        with pytest.raises(ValueError, match=rf"\[kexue\.optim\.[\w.]*{name}\] .*warmup_steps"):
            getattr(schedules, name)(1, lr=1.0, warmup_steps=5, total_steps=3)


# ============================================================================
# state round trip


RT_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), np.float64),
    ("Adam", dict(amsgrad=True, weight_decay=0.1), np.float32),
    ("Adam", dict(state_dtype="bfloat16", seed=4), np.float32),
    ("AdamW", dict(), np.float64),
    ("AdamW", dict(state_dtype="bfloat16", seed=5), np.float32),
    ("AdaX", dict(state_dtype="bfloat16"), np.float32),
    ("AdaX", dict(weight_decay=0.01), np.float64),
    ("Lion", dict(state_dtype="bfloat16", seed=2**40 + 3), np.float32),
    ("Lion", dict(weight_decay=0.1), np.float64),
    ("LAMB", dict(), np.float32),
    ("Adafactor", dict(min_dim_size_to_factor=4, beta1=0.9), np.float32),
    ("Adafactor", dict(), np.float64),
    ("Amos", dict(reduce_all=True), np.float32),
    ("Amos", dict(eta=[0.5, 0.1, 0.2]), np.float64),
]


@pytest.mark.parametrize(
    "name,kw,dtype", RT_CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(RT_CASES)]
)
def test_state_round_trip(name, kw, dtype):
    shapes = [(7,), (6, 5), (2, 3, 4)]
    rng = np.random.default_rng(12)
    p0 = grads_for(rng, shapes, dtype)
    grads = [grads_for(rng, shapes, dtype) for _ in range(100)]
    cls = getattr(optim, name)

    full = [p.copy() for p in p0]
    o_full = cls(full, **kw)
    for t in range(100):
        o_full.step(grads[t])

    half = [p.copy() for p in p0]
    o = cls(half, **kw)
    for t in range(50):
        o.step(grads[t])
    sd = o.state_dict()
    assert sd["step_count"] == 50 and type(sd["step_count"]) is int
    assert all(type(v) is np.ndarray for s in sd["state"] for v in s.values())
    # the slots are the contract's (the reference implements the same names)
    ref_sd = getattr(ref, name)([p.copy() for p in p0], **kw).state_dict()
    assert [sorted(s) for s in sd["state"]] == [sorted(s) for s in ref_sd["state"]]
    fresh = [p.copy() for p in half]
    o.step(grads[50])  # the dict holds copies: later steps leave it alone
    o2 = cls(fresh, **kw)
    o2.load_state_dict(sd)
    assert o2.step_count == 50
    for t in range(50, 100):
        o2.step(grads[t])
    assert o2.step_count == 100
    assert all_bytes(fresh) == all_bytes(full)
    assert state_bytes(o2) == state_bytes(o_full)


def test_state_dict_moves_between_core_and_reference():
    """Plain numpy arrays and ints: the reference's dict loads into the core and back."""
    rng = np.random.default_rng(13)
    shapes = [(5,), (4, 3)]
    p0 = grads_for(rng, shapes, np.float64)
    rp = [p.copy() for p in p0]
    ro = ref.AdamW(rp, amsgrad=True)
    for _ in range(10):
        ro.step(grads_for(rng, shapes, np.float64))
    cp = [p.copy() for p in rp]
    co = optim.AdamW(cp, amsgrad=True)
    co.load_state_dict(ro.state_dict())
    for _ in range(10):
        g = grads_for(rng, shapes, np.float64)
        co.step(g)
        ro.step(g)
    for a, b in zip(cp, rp):
        assert_close(a, b)
    ro2 = ref.AdamW([p.copy() for p in cp], amsgrad=True)
    ro2.load_state_dict(co.state_dict())
    assert ro2.step_count == 20


def test_load_state_dict_rejects_mismatch_and_changes_nothing():
    ps = [np.zeros(3), np.zeros((2, 2))]
    o = optim.Adam(ps)
    o.step([np.ones(3), np.ones((2, 2))])
    before = state_bytes(o)
    good = o.state_dict()
    first = {
        k: v + 1 for k, v in good["state"][0].items()
    }  # valid, and different from the live state
    bad = {"step_count": 7, "state": [first, {**good["state"][1], "exp_avg": np.zeros(4)}]}
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.[\w.]+\] .*(state|exp_avg)"):
        o.load_state_dict(bad)
    bad = {
        "step_count": 7,
        "state": [first, {**good["state"][1], "exp_avg": np.zeros((2, 2), np.float32)}],
    }
    with pytest.raises(TypeError, match=r"\[kexue\.optim\.[\w.]+\] .*(state|exp_avg)"):
        o.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.[\w.]+\] .*state"):
        o.load_state_dict({"step_count": 7, "state": [first]})
    assert (
        state_bytes(o) == before and o.step_count == 1
    )  # the first entry was not copied in either


# ============================================================================
# determinism: threads and SIMD levels


DET_CASES = [
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict(amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(state_dtype="bfloat16")),
    ("AdamW", dict()),
    ("AdaX", dict(state_dtype="bfloat16")),
    ("AdaX", dict()),
    ("Lion", dict(lr=1e-3, weight_decay=0.1)),
    ("Lion", dict(lr=1e-3, state_dtype="bfloat16")),
    ("LAMB", dict()),
    ("Adafactor", dict(beta1=0.9)),
    ("Amos", dict()),
    ("Amos", dict(reduce_all=True)),
]
DET_SHAPES = [(100_003,), (300, 257), (7,), (2, 3, 4, 5)]  # several chunks each for the big ones


def _run_core(name, kw, dtype, steps=4, seed=14):
    rng = np.random.default_rng(seed)
    ps = grads_for(rng, DET_SHAPES, dtype)
    o = getattr(optim, name)(ps, **kw)
    for t in range(steps):
        o.step(grads_for(rng, DET_SHAPES, dtype), max_grad_norm=50.0 if t == 2 else None)
    return ps, o


@pytest.mark.parametrize(
    "name,kw", DET_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(DET_CASES)]
)
def test_threads_bitwise_equal(name, kw):
    before = kexue.get_num_threads()
    dtypes = (np.float32,) if kw.get("state_dtype") else DTYPES
    try:
        for dtype in dtypes:
            kexue.set_num_threads(1)
            p1, o1 = _run_core(name, kw, dtype)
            kexue.set_num_threads(2)
            p2, o2 = _run_core(name, kw, dtype)
            assert all_bytes(p1) == all_bytes(p2)
            assert state_bytes(o1) == state_bytes(o2)
        rng = np.random.default_rng(15)
        g = grads_for(rng, DET_SHAPES, np.float32)
        norms, outs = [], []
        for n in (1, 2):
            kexue.set_num_threads(n)
            gc = [x.copy() for x in g]
            norms.append(optim.clip_grad_norm_(gc, 1.0))
            optim.child_tuning_(gc, 0.3, seed=9)
            outs.append(all_bytes(gc))
        assert norms[0] == norms[1] and outs[0] == outs[1]
    finally:
        kexue.set_num_threads(before)


def _simd_levels():
    order = ["scalar", "avx2", "avx512"]
    best = _core.simd_level_supported()
    return [
        lvl
        for lvl in _core.simd_levels_built().split()
        if lvl in order and order.index(lvl) <= order.index(best)
    ]


@pytest.mark.parametrize(
    "name,kw", DET_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(DET_CASES)]
)
def test_simd_levels_agree_with_scalar(name, kw):
    levels = _simd_levels()
    assert "scalar" in levels
    start = _core.simd_level()
    dtypes = (np.float32,) if kw.get("state_dtype") else DTYPES
    try:
        for dtype in dtypes:
            results = {}
            for lvl in levels:
                _core.set_simd_level(lvl)
                results[lvl] = _run_core(name, kw, dtype)
            ps, os_ = results["scalar"]
            for lvl in levels[1:]:
                qs, oq = results[lvl]
                for a, b in zip(qs, ps):
                    assert_close(a, b)  # FMA / lane order differ between levels: rounding only
                compare_states(
                    oq.state_dict(), os_.state_dict(), bf16_bitwise=False, what=f"{name} {lvl}"
                )  # bf16: within one step
    finally:
        _core.set_simd_level(start)


# ============================================================================
# bad inputs: the right exception, a message naming the argument, and no byte changed


def _adam_args(dtype=np.float32, state_dtype=None, n=3):
    rng = np.random.default_rng(16)
    shapes = [(4,), (3, 5), (2, 3, 2)][:n]
    params = grads_for(rng, shapes, dtype)
    grads = grads_for(rng, shapes, dtype)
    sdt = dtype if state_dtype is None else state_dtype
    m = [np.full(s, 1, sdt) for s in shapes]
    v = [np.full(s, 2, sdt) for s in shapes]
    return params, grads, m, v


def _noncontiguous(shape, dtype):
    base = np.random.default_rng(0).normal(size=shape[:-1] + (2 * shape[-1],)).astype(dtype)
    view = base[..., ::2]
    assert not view.flags.c_contiguous
    return view


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


# (description, mutate(params, grads, m, v, kw) -> (params, grads, m, v, kw), exception,
#  argument regex)
ADAM_BAD = [
    ("too few grads", lambda p, g, m, v, kw: (p, g[:-1], m, v, kw), ValueError, "grads"),
    ("too many grads", lambda p, g, m, v, kw: (p, g + g[:1], m, v, kw), ValueError, "grads"),
    (
        "grad shape",
        lambda p, g, m, v, kw: (p, g[:-1] + [g[-1].reshape(3, 2, 2)], m, v, kw),
        ValueError,
        "grads",
    ),
    (
        "grad dtype",
        lambda p, g, m, v, kw: (p, g[:-1] + [g[-1].astype(np.float64)], m, v, kw),
        TypeError,
        "grads",
    ),
    (
        "grad int",
        lambda p, g, m, v, kw: (p, g[:-1] + [g[-1].astype(np.int32)], m, v, kw),
        TypeError,
        "grads",
    ),
    (
        "read-only param",
        lambda p, g, m, v, kw: (p[:-1] + [_readonly(p[-1])], g, m, v, kw),
        ValueError,
        "params",
    ),
    (
        "non-contiguous param",
        lambda p, g, m, v, kw: (p[:-1] + [_noncontiguous((2, 3, 2), np.float32)], g, m, v, kw),
        ValueError,
        "params",
    ),
    (
        "read-only state",
        lambda p, g, m, v, kw: (p, g, m[:-1] + [_readonly(m[-1])], v, kw),
        ValueError,
        "exp_avgs",
    ),
    (
        "state shape",
        lambda p, g, m, v, kw: (p, g, m, v[:-1] + [np.zeros((2, 6), np.float32)], kw),
        ValueError,
        "exp_avg_sqs",
    ),
    ("state count", lambda p, g, m, v, kw: (p, g, m[:-1], v, kw), ValueError, "exp_avgs"),
    (
        "state dtype",
        lambda p, g, m, v, kw: (p, g, m[:-1] + [m[-1].astype(np.float64)], v, kw),
        TypeError,
        "exp_avgs",
    ),
    ("negative lr", lambda p, g, m, v, kw: (p, g, m, v, dict(kw, lr=-1e-3)), ValueError, "lr"),
    ("NaN lr", lambda p, g, m, v, kw: (p, g, m, v, dict(kw, lr=float("nan"))), ValueError, "lr"),
    ("negative eps", lambda p, g, m, v, kw: (p, g, m, v, dict(kw, eps=-1e-8)), ValueError, "eps"),
    ("beta1 = 1", lambda p, g, m, v, kw: (p, g, m, v, dict(kw, beta1=1.0)), ValueError, "beta1"),
    ("beta2 < 0", lambda p, g, m, v, kw: (p, g, m, v, dict(kw, beta2=-0.1)), ValueError, "beta2"),
    (
        "negative weight_decay",
        lambda p, g, m, v, kw: (p, g, m, v, dict(kw, weight_decay=-0.1)),
        ValueError,
        "weight_decay",
    ),
    (
        "grad_scale <= 0",
        lambda p, g, m, v, kw: (p, g, m, v, dict(kw, grad_scale=0.0)),
        ValueError,
        "grad_scale",
    ),
    ("step 0", lambda p, g, m, v, kw: (p, g, m, v, dict(kw, step=0)), ValueError, "step"),
    (
        "amsgrad without buffers",
        lambda p, g, m, v, kw: (p, g, m, v, dict(kw, amsgrad=True)),
        ValueError,
        "max_exp_avg_sqs",
    ),
]


@pytest.mark.parametrize("fn", ["adam_", "adamw_"])
@pytest.mark.parametrize("desc,mutate,exc,arg", ADAM_BAD, ids=[c[0] for c in ADAM_BAD])
def test_adam_bad_inputs_raise_and_change_nothing(fn, desc, mutate, exc, arg):
    params, grads, m, v = _adam_args()
    kw = dict(step=3, lr=1e-3)
    params, grads, m, v, kw = mutate(params, grads, m, v, kw)
    before = all_bytes(params + grads + m + v)
    step = kw.pop("step")
    with pytest.raises(exc, match=rf"\[kexue\.optim\.{fn}\] {arg}\b"):
        getattr(functional, fn)(params, grads, m, v, step, **kw)
    assert all_bytes(params + grads + m + v) == before


def test_bf16_state_bad_combinations():
    # bfloat16 (uint16) state with float64 params: a dtype error
    params, grads, m, v = _adam_args(np.float64, state_dtype=np.uint16)
    before = all_bytes(params + m + v)
    with pytest.raises(TypeError, match=r"\[kexue\.optim\.adam_\] (params|exp_avgs|exp_avg_sqs)\b"):
        functional.adam_(params, grads, m, v, 1)
    assert all_bytes(params + m + v) == before
    # amsgrad with bfloat16 state
    params, grads, m, v = _adam_args(np.float32, state_dtype=np.uint16)
    vmax = [x.copy() for x in v]
    before = all_bytes(params + m + v + vmax)
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.adamw_\] amsgrad\b"):
        functional.adamw_(params, grads, m, v, 1, amsgrad=True, max_exp_avg_sqs=vmax)
    assert all_bytes(params + m + v + vmax) == before
    # mixed: one state bf16, the other float32
    params, grads, m, v = _adam_args(np.float32)
    m = [x.view(np.uint16)[..., ::2].copy() for x in m]
    # a combination of two arguments: the message names the state arrays, not one argument
    with pytest.raises(TypeError, match=r"\[kexue\.optim\.adax_\] .*(exp_avgs|exp_avg_sqs|state)"):
        functional.adax_(params, grads, m, v, 1)
    # the classes
    with pytest.raises(TypeError, match=r"\[kexue\.optim\.[\w.]+\] (state_dtype|params)\b"):
        optim.Adam([np.zeros(3)], state_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.[\w.]+\] (amsgrad|state_dtype)\b"):
        optim.AdamW([np.zeros(3, np.float32)], amsgrad=True, state_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.[\w.]+\] state_dtype\b"):
        optim.Lion([np.zeros(3, np.float32)], state_dtype="float16")


def _builders():
    """(op, call(params, grads, states, **kw), states factory, kw) for the other functional ops."""

    def states(n):
        return lambda ps: [[np.zeros_like(p) for p in ps] for _ in range(n)]

    return [
        (
            "sgd_",
            lambda p, g, s, **kw: functional.sgd_(p, g, s[0], 2, momentum=0.9, **kw),
            states(1),
            {"lr": 0.1},
        ),
        ("adax_", lambda p, g, s, **kw: functional.adax_(p, g, s[0], s[1], 2, **kw), states(2), {}),
        ("lion_", lambda p, g, s, **kw: functional.lion_(p, g, s[0], 2, **kw), states(1), {}),
        ("lamb_", lambda p, g, s, **kw: functional.lamb_(p, g, s[0], s[1], 2, **kw), states(2), {}),
        (
            "adafactor_",
            lambda p, g, s, **kw: functional.adafactor_(p, g, None, s[0], None, None, 2, **kw),
            states(1),
            {},
        ),
        (
            "amos_",
            lambda p, g, s, **kw: functional.amos_(p, g, s[0], s[1], 2, eta=0.5, **kw),
            states(2),
            {"lr": 0.01},
        ),
    ]


BUILDERS = _builders()


@pytest.mark.parametrize("op,call,make_states,kw0", BUILDERS, ids=[b[0] for b in BUILDERS])
def test_other_ops_bad_inputs_raise_and_change_nothing(op, call, make_states, kw0):
    rng = np.random.default_rng(17)
    shapes = [(4,), (3, 5), (2, 3, 2)]

    def fresh():
        ps = grads_for(rng, shapes, np.float32)
        return ps, grads_for(rng, shapes, np.float32), make_states(ps)

    bad_cases = [
        (lambda p, g, s, kw: (p, g[:-1], s, kw), ValueError, "grads"),
        (lambda p, g, s, kw: (p, g[:-1] + [g[-1].reshape(12)], s, kw), ValueError, "grads"),
        (lambda p, g, s, kw: (p, g[:-1] + [g[-1].astype(np.float64)], s, kw), TypeError, "grads"),
        (lambda p, g, s, kw: (p[:-1] + [_readonly(p[-1])], g, s, kw), ValueError, "params"),
        (
            lambda p, g, s, kw: (p[:-1] + [_noncontiguous((2, 3, 2), np.float32)], g, s, kw),
            ValueError,
            "params",
        ),
        (lambda p, g, s, kw: (p, g, s, dict(kw, lr=-0.1)), ValueError, "lr"),
        (lambda p, g, s, kw: (p, g, s, dict(kw, lr=float("nan"))), ValueError, "lr"),
    ]
    for mutate, exc, arg in bad_cases:
        p, g, s = fresh()
        p, g, s, kw = mutate(p, g, s, dict(kw0))
        flat = p + g + [x for lst in s for x in lst]
        before = all_bytes(flat)
        with pytest.raises(exc, match=rf"\[kexue\.optim\.{op}\] {arg}\b"):
            call(p, g, s, **kw)
        assert all_bytes(flat) == before, (op, arg)
    # a state array of the wrong shape, in the last position
    p, g, s = fresh()
    s[0][-1] = np.zeros((12,), np.float32)
    flat = p + g + [x for lst in s for x in lst]
    before = all_bytes(flat)
    with pytest.raises(ValueError, match=rf"\[kexue\.optim\.{op}\] \w+"):
        call(p, g, s, **kw0)
    assert all_bytes(flat) == before


def test_op_specific_bad_values():
    p, g = np.zeros(4), np.ones(4)
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.sgd_\] momentum_buffers\b"):
        functional.sgd_(p, g, None, 1, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.lion_\] beta2\b"):
        functional.lion_(p, g, np.zeros(4), 1, beta2=1.5)
    with pytest.raises(
        ValueError, match=r"\[kexue\.optim\.adafactor_\] (exp_avg_sq_rows|exp_avg_sq_cols)\b"
    ):
        # (3, 4): a1 = axis 1, so row = (3,), col = (4,); these are swapped
        functional.adafactor_(
            np.zeros((3, 4)), np.ones((3, 4)), None, None, np.zeros(4), np.zeros(3), 1
        )
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.adafactor_\] exp_avgs\b"):
        functional.adafactor_(p, g, None, np.zeros(4), None, None, 1, beta1=0.9)
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.amos_\] exp_avg_sqs\b"):
        functional.amos_(p, g, np.zeros(3), np.zeros(4), 1, lr=0.01, eta=0.5)
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.amos_\] eta\b"):
        functional.amos_(
            [p, p.copy()],
            [g, g],
            [np.zeros(4), np.zeros(4)],
            [np.zeros(4), np.zeros(4)],
            1,
            lr=0.01,
            eta=[0.5, 0.1, 0.7],
        )  # a list is one eta per array
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.clip_grad_norm_\] max_norm\b"):
        optim.clip_grad_norm_([g], -1.0)
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.clip_grad_norm_\] mode\b"):
        optim.clip_grad_norm_([g], 1.0, mode="hard")
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.clip_grad_norm_\] grads\b"):
        optim.clip_grad_norm_([_readonly(g)], 1.0)
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"\[kexue\.optim\.child_tuning_\] p\b"):
            optim.child_tuning_([g.copy()], bad, seed=0)
    g2 = [np.ones(3), _readonly(np.ones(3))]
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.child_tuning_\] grads\b"):
        optim.child_tuning_(g2, 0.5, seed=0)
    assert np.all(g2[0] == 1)  # the first array was not masked before the error


CLASS_CTOR_BAD = [
    ("Adam", dict(lr=-1.0), ValueError, "lr"),
    ("Adam", dict(lr=float("nan")), ValueError, "lr"),
    ("Adam", dict(betas=(1.0, 0.999)), ValueError, "(betas|beta1)"),
    ("AdamW", dict(betas=(0.9, -0.1)), ValueError, "(betas|beta2)"),
    ("AdamW", dict(eps=-1e-8), ValueError, "eps"),
    ("SGD", dict(momentum=-0.5), ValueError, "momentum"),
    ("LAMB", dict(weight_decay=-0.1), ValueError, "weight_decay"),
    ("Lion", dict(betas=(0.9, 1.0)), ValueError, "(betas|beta2)"),
    ("AdaX", dict(eps=-1.0), ValueError, "eps"),
    ("Amos", dict(beta=1.0), ValueError, "beta"),
    ("Adafactor", dict(beta1=1.0), ValueError, "beta1"),
]


@pytest.mark.parametrize(
    "name,kw,exc,arg", CLASS_CTOR_BAD, ids=[f"{c[0]}-{i}" for i, c in enumerate(CLASS_CTOR_BAD)]
)
def test_class_rejects_bad_hyperparameters(name, kw, exc, arg):
    """At construction (as torch does) or, at the latest, at the first step -- before any
    byte changes (the contract does not say which)."""
    p = [np.ones(3, np.float32)]
    before = all_bytes(p)
    match = rf"\[kexue\.optim\.[\w.]+\] {arg}\b"
    try:
        opt = getattr(optim, name)(p, **kw)
    except exc as e:
        assert re.search(match, str(e)), str(e)
    else:
        with pytest.raises(exc, match=match):
            opt.step([np.ones(3, np.float32)])
        assert opt.step_count == 0
    assert all_bytes(p) == before


@pytest.mark.parametrize("name", CLASSES)
def test_class_rejects_bad_params(name):
    with pytest.raises(TypeError, match=r"\[kexue\.optim\.[\w.]+\] params\b"):
        getattr(optim, name)([np.ones(3, np.int64)])
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.[\w.]+\] params\b"):
        getattr(optim, name)([_readonly(np.ones(3))])
    with pytest.raises(ValueError, match=r"\[kexue\.optim\.[\w.]+\] params\b"):
        getattr(optim, name)([_noncontiguous((3, 4), np.float32)])


@pytest.mark.parametrize("name", CLASSES)
def test_class_step_bad_inputs_change_nothing(name):
    rng = np.random.default_rng(18)
    shapes = [(4,), (3, 5), (2, 3, 2)]
    ps = grads_for(rng, shapes, np.float32)
    o = getattr(optim, name)(ps)
    o.step(grads_for(rng, shapes, np.float32))
    good = grads_for(rng, shapes, np.float32)
    cases = [
        (dict(grads=good[:-1]), ValueError, "grads"),
        (dict(grads=good[:-1] + [good[-1].reshape(12)]), ValueError, "grads"),
        (dict(grads=good[:-1] + [good[-1].astype(np.float64)]), TypeError, "grads"),
        (dict(grads=good, lr=-1.0), ValueError, "lr"),
        (dict(grads=good, lr=float("nan")), ValueError, "lr"),
        (dict(grads=good, max_grad_norm=-1.0), ValueError, "max_grad_norm"),
    ]
    before = all_bytes(ps), state_bytes(o)
    for kw, exc, arg in cases:
        with pytest.raises(exc, match=rf"\[kexue\.optim\.[\w.]+\] {arg}\b"):
            o.step(**kw)
        assert (all_bytes(ps), state_bytes(o)) == before, arg
        assert o.step_count == 1
    assert o.step(good) is True


def test_bf16_state_effect_on_accuracy():
    """The documented effect of bfloat16 moments: on least squares, AdamW with
    bf16 state follows the float32 run to about 0.3% of the parameters
    mid-way (300 steps) and converges to the same point (2000 steps), for
    every seed of the stochastic rounding."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((512, 256)).astype(np.float32)
    b = A @ rng.standard_normal(256).astype(np.float32) + 0.01 * rng.standard_normal(512).astype(np.float32)

    def run(state_dtype, steps, seed=0):
        x = np.zeros(256, np.float32)
        opt = optim.AdamW([x], lr=1e-2, weight_decay=0.0, state_dtype=state_dtype, seed=seed)
        for _ in range(steps):
            opt.step([(A.T @ (A @ x - b) / 512).astype(np.float32)])
        return x

    mid32, end32 = run(None, 300), run(None, 2000)
    for seed in range(3):
        mid = run("bfloat16", 300, seed)
        assert np.linalg.norm(mid - mid32) / np.linalg.norm(mid32) < 1e-2
        end = run("bfloat16", 2000, seed)
        assert np.linalg.norm(end - end32) / np.linalg.norm(end32) < 1e-5


def test_arrays_updated_in_place_must_not_share_memory():
    """Two written arrays over the same memory would race between chunks (and
    the result would depend on the thread count): refused, nothing written."""
    F = optim.functional
    p = np.arange(6, dtype=np.float64)
    g = np.ones(6)
    m, v = np.zeros(6), np.zeros(6)
    before = p.copy()
    with pytest.raises(ValueError, match=r"^\[kexue\.optim\.adamw_\] params\[1\] shares memory with params\[0\]"):
        F.adamw_([p, p], [g, g], [m, np.zeros(6)], [v, np.zeros(6)], 1)
    with pytest.raises(ValueError, match=r"shares memory with"):
        F.adamw_([p], [g], [p], [v], 1)  # the state is the parameter itself
    with pytest.raises(ValueError, match=r"shares memory with"):
        F.sgd_([p[:4], p[2:]], [g[:4], g[2:]], [np.zeros(4), np.zeros(4)], 1, lr=0.1, momentum=0.9)
    assert p.tobytes() == before.tobytes() and not m.any() and not v.any()
    opt = optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match=r"^\[kexue\.optim\.sgd_\] params\[1\] shares memory with params\[0\]"):
        opt.step([g, g])
    assert p.tobytes() == before.tobytes() and opt.step_count == 0
    gg = np.ones(5)
    with pytest.raises(ValueError, match=r"^\[kexue\.optim\.clip_grad_norm_\] grads\[1\] shares memory with grads\[0\]"):
        optim.clip_grad_norm_([gg, gg], 0.1)
    with pytest.raises(ValueError, match=r"^\[kexue\.optim\.child_tuning_\] grads\[1\] shares memory"):
        optim.child_tuning_([gg, gg[1:]], 0.5, seed=0)
    assert (gg == 1).all()
    # disjoint views of one buffer are fine
    F.sgd_([p[:3], p[3:]], [g[:3], g[3:]], None, 1, lr=0.5)
    assert np.allclose(p, before - 0.5)
