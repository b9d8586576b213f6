"""Generic tests over the op registry (tests/opinfo.py).

core vs reference on random inputs (both dtypes); bad inputs raise what the
registry declares; 1 vs 2 threads and every SIMD level are bitwise equal;
non-contiguous inputs give the same answer as contiguous ones.
"""
from __future__ import annotations

import inspect
import re
import zlib

import numpy as np
import pytest

import kexue
import kexue.reference as reference
from kexue import _core
from kexue.testing import assert_close
from opinfo import DTYPES, OPS, OPS_BY_NAME


def _flatten(result):
    """A result (array, tuple, namedtuple with Nones/pairs) as a list of arrays/None."""
    if isinstance(result, np.ndarray):
        return [result]
    if result is None:
        return [None]
    if isinstance(result, (float, int, np.floating, np.integer)):
        return [np.asarray(result)]
    out = []
    for r in result:
        out.extend(_flatten(r))
    return out


def _compare(op, actual, expected, dtype, desc, cond=1.0):
    a, e = _flatten(actual), _flatten(expected)
    assert len(a) == len(e), f"{op.name} {desc}: {len(a)} outputs vs {len(e)}"
    for i, (x, y) in enumerate(zip(a, e)):
        if y is None:
            assert x is None, f"{op.name} {desc}: output {i} should be None"
            continue
        assert x.dtype == y.dtype, f"{op.name} {desc}: output {i} dtype {x.dtype} vs {y.dtype}"
        if np.issubdtype(y.dtype, np.integer):
            np.testing.assert_array_equal(x, y, err_msg=f"{op.name} {desc}: output {i}")
        else:
            # gradients and log Z are sums over up to B*T terms computed in a
            # different order (exp space vs log space): scale atol by the size.
            scale = cond * max(1.0, float(np.max(np.abs(np.where(np.isfinite(y), y, 0)), initial=0)))
            try:
                assert_close(x, y, dtype=dtype, atol=(1e-12 if dtype == np.float64 else 1e-5) * scale)
            except AssertionError as err:
                raise AssertionError(f"{op.name} {desc}: output {i}\n{err}") from None


def _bitwise_equal(a, b):
    for x, y in zip(_flatten(a), _flatten(b)):
        if x is None:
            assert y is None
            continue
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_core_matches_reference(op, dtype):
    rng = np.random.default_rng(zlib.crc32(op.name.encode()))
    samples = op.samples(dtype, rng)
    assert samples
    for s in samples:
        actual = op.fn(*s.args, **s.kwargs)
        expected = op.ref(*s.args, **s.kwargs)
        cond = op.cond(s) if op.cond else 1.0
        _compare(op, actual, expected, dtype, s.desc, cond)


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_bad_inputs_raise(op):
    errors = op.errors()
    assert errors
    for e in errors:
        with pytest.raises(e.exc) as info:
            op.fn(*e.args, **e.kwargs)
        assert re.search(e.match, str(info.value)), (
            f"{op.name} {e.desc}: message {str(info.value)!r} does not match {e.match!r}")


def test_memm_viterbi_bad_mode():
    em, G = np.zeros((1, 2, 2)), np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"^\[kexue\.memm\.viterbi\] mode must be 'map' or 'crf_style'; got 'x'"):
        kexue.memm.viterbi(em, G, mode="x")


def _sample_subset(op, dtype, n=12):
    rng = np.random.default_rng(7)
    samples = op.samples(dtype, rng)
    # the long sample and an even spread of the rest
    step = max(1, len(samples) // n)
    return samples[::step] + [samples[-1]]


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_threads_bitwise_equal(op):
    before = kexue.get_num_threads()
    rng = np.random.default_rng(3)
    try:
        if not op.name.startswith(("crf.", "memm.")):
            # these ops' samples already span several chunks (70 rows, B*E tasks)
            for dtype in DTYPES:
                for s in op.samples(dtype, rng):
                    kexue.set_num_threads(1)
                    one = op.fn(*s.args, **s.kwargs)
                    kexue.set_num_threads(2)
                    _bitwise_equal(one, op.fn(*s.args, **s.kwargs))
            return
        for dtype in DTYPES:
            # B=70 > 32 rows: several chunks of 3 rows each
            for s in _sample_subset(op, dtype, 4):
                em = s.args[0]
                B = 70
                big = np.concatenate([em] * (B // max(1, em.shape[0]) + 1))[:B] if em.shape[0] else em
                if em.shape[0] == 0:
                    continue
                args = (big,) + tuple(
                    np.concatenate([a] * (B // a.shape[0] + 1))[:B]
                    if isinstance(a, np.ndarray) and a.dtype.kind == "i" and i == 1 else a
                    for i, a in enumerate(s.args[1:], start=1))
                kw = dict(s.kwargs)
                if kw.get("mask") is not None:
                    m = kw["mask"]
                    kw["mask"] = np.concatenate([m] * (B // m.shape[0] + 1))[:B]
                kexue.set_num_threads(1)
                one = op.fn(*args, **kw)
                kexue.set_num_threads(2)
                two = op.fn(*args, **kw)
                _bitwise_equal(one, two)
    finally:
        kexue.set_num_threads(before)
    del rng


def _levels():
    best = _core.simd_level_supported()
    order = ["scalar", "avx2", "avx512"]
    return order[: order.index(best) + 1]


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_simd_levels_agree(op):
    """Every SIMD build of the kernels gives the same answer. Kernels are
    compiled with -ffp-contract=off except the multiply-add loops marked
    KX_FMA_OK (the CRF's exp-space products), which fuse where the ISA has
    FMA: so avx2 and avx512 agree bitwise, and scalar agrees with them to
    rounding (within the dtype's tolerance)."""
    levels = _levels()
    start = _core.simd_level()
    try:
        for dtype in DTYPES:
            for s in _sample_subset(op, dtype, 6):
                results = {}
                for lvl in levels:
                    _core.set_simd_level(lvl)
                    results[lvl] = op.fn(*s.args, **s.kwargs)
                if "avx2" in results and "avx512" in results:
                    _bitwise_equal(results["avx2"], results["avx512"])
                for lvl in levels[1:]:
                    _compare(op, results[lvl], results["scalar"], dtype, f"{s.desc} {lvl}")
    finally:
        _core.set_simd_level(start)


def test_set_simd_level_rejects_unknown():
    with pytest.raises(ValueError, match=r"level must be 'scalar', 'avx2' or 'avx512'; got 'sse9'"):
        _core.set_simd_level("sse9")


@pytest.mark.parametrize("op", OPS, ids=lambda o: o.name)
def test_noncontiguous_inputs(op):
    """Strided and Fortran-order arrays are accepted and give the same answer."""
    if not op.noncontig:
        pytest.skip("declared noncontig=False: row-list inputs (f1) or in-place arrays (optim, tested in test_optim.py)")
    for dtype in DTYPES:
        for s in _sample_subset(op, dtype, 3):
            em = s.args[0]
            base = op.fn(*s.args, **s.kwargs)
            wide = np.zeros(em.shape[:-1] + (2 * em.shape[-1],), em.dtype)
            wide[..., ::2] = em
            strided = wide[..., ::2]
            assert not strided.flags.c_contiguous or em.size <= 1
            fortran = np.asfortranarray(em)
            for variant in (strided, fortran):
                args = (variant,) + tuple(
                    np.asfortranarray(a) if isinstance(a, np.ndarray) and a.ndim == 2 else a
                    for a in s.args[1:])
                _bitwise_equal(base, op.fn(*args, **s.kwargs))


def test_every_public_op_is_registered_and_has_a_twin():
    public = []
    for area in ("crf", "memm", "losses", "global_pointer", "optim", "optim.functional", "optim.schedules",
                 "attention"):
        mod = kexue
        for part in area.split("."):
            mod = getattr(mod, part)
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and name != "allowed_transitions":
                public.append((area, name, obj))
    assert public
    # the optim area is one twin module; its pure-Python pieces (schedules,
    # adafactor_shapes) and the clipping ops are covered in test_optim*.py
    unregistered = {"optim.adafactor_shapes", "optim.clip_grad_norm_", "optim.child_tuning_"}
    for area, name, fn in public:
        short = area.split(".")[0]
        key = f"{short}.{name}"
        if not area.startswith("optim.schedules") and key not in unregistered:
            assert key in OPS_BY_NAME, f"kexue.{area}.{name} has no OpInfo entry"
        twin = getattr(getattr(reference, short), name, None)
        assert twin is not None, f"kexue.{area}.{name} has no reference twin"
        assert inspect.signature(twin) == inspect.signature(fn), (
            f"kexue.reference.{area}.{name}{inspect.signature(twin)} != {inspect.signature(fn)}")
    # allowed_transitions is pure Python; its twin must exist and agree
    assert callable(reference.crf.allowed_transitions)


def test_reference_never_imports_core():
    import pathlib
    root = pathlib.Path(reference.__file__).parent
    for f in root.glob("*.py"):
        text = f.read_text()
        assert not re.search(r"^\s*(import|from)\s+\S*(_core|kexue\.(crf|memm))", text, re.M), (
            f"{f} imports the compiled core")


def test_num_threads_api():
    before = kexue.get_num_threads()
    try:
        kexue.set_num_threads(1)
        assert kexue.get_num_threads() == 1
        kexue.set_num_threads(3)
        assert kexue.get_num_threads() == 3
        with pytest.raises(ValueError, match=r"\[kexue.set_num_threads\] n must be >= 1; got 0"):
            kexue.set_num_threads(0)
        with pytest.raises(TypeError, match=r"n must be an int"):
            kexue.set_num_threads(1.5)
        assert kexue.get_num_threads() == 3
    finally:
        kexue.set_num_threads(before)
