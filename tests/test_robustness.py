"""Behaviour the registry does not cover: NaN inputs, calls from many Python
threads at once, the docstring examples, exceptions inside the pool."""
from __future__ import annotations

import doctest
import threading

import numpy as np
import pytest

import kexue
from kexue.testing import assert_close


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_emissions_give_nan_not_a_crash(dtype):
    rng = np.random.default_rng(0)
    em = rng.normal(size=(3, 6, 4)).astype(dtype)
    em[1, 2, 3] = np.nan
    A = rng.normal(size=(4, 4)).astype(dtype)
    tags = rng.integers(0, 4, (3, 6))
    logz = kexue.crf.log_partition(em, A)
    assert np.isnan(logz[1]) and np.isfinite(logz[[0, 2]]).all()
    ll = kexue.crf.log_likelihood(em, tags, A)
    assert np.isnan(ll[1]) and np.isfinite(ll[[0, 2]]).all()
    g = kexue.crf.nll_grad(em, tags, A)
    assert np.isnan(g.loss[1]) and np.isnan(g.d_emissions[1]).any()
    assert np.isfinite(g.d_emissions[[0, 2]]).all()
    marg = kexue.crf.marginals(em, A)
    assert np.isnan(marg[1]).any() and np.isfinite(marg[[0, 2]]).all()
    paths, scores = kexue.crf.viterbi(em, A)
    assert np.isnan(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    assert ((paths >= -1) & (paths < 4)).all()
    kp, ks = kexue.crf.nbest(em, A, 3)
    assert ((kp >= -1) & (kp < 4)).all()
    ml = kexue.memm.log_likelihood(em, tags, A)
    assert np.isnan(ml[1]) and np.isfinite(ml[[0, 2]]).all()
    mp, ms = kexue.memm.viterbi(em, A)
    assert ((mp >= -1) & (mp < 4)).all()


@pytest.mark.parametrize("B", [2, 16])  # 16: the eight-lane batched kernel
@pytest.mark.parametrize("K", [1, 2, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_row_poisons_the_parameter_gradients(B, K, dtype):
    """A NaN emission makes that row's log Z NaN and, as in the reference,
    every pair marginal with it: d_transitions/d_start/d_end are NaN. (The CPU
    once dropped such a step's pair marginals when K = 1, in both its kernels,
    leaving a finite d_transitions of minus the gold transition counts.)"""
    import kexue.reference.crf as ref
    rng = np.random.default_rng(K)
    em = rng.normal(size=(B, 5, K)).astype(dtype)
    em[0, 2, 0] = np.nan
    A = rng.normal(size=(K, K)).astype(dtype)
    tags = rng.integers(0, K, (B, 5))
    got, want = kexue.crf.nll_grad(em, tags, A), ref.nll_grad(em, tags, A)
    for name in ("d_transitions", "d_start", "d_end"):
        assert np.isnan(getattr(want, name)).all(), name
        assert np.isnan(getattr(got, name)).all(), name
    np.testing.assert_array_equal(np.isnan(got.d_emissions), np.isnan(want.d_emissions))
    assert_close(got.d_emissions[1], want.d_emissions[1], rtol=1e-5, atol=1e-6)
    assert np.isnan(got.loss[0]) and np.isfinite(got.loss[1])


def test_concurrent_calls_from_python_threads():
    """The GIL is released inside kernels; concurrent calls share the pool
    safely (a call that finds the pool busy runs on its own thread) and give
    the same bits as a lone call."""
    rng = np.random.default_rng(1)
    em = rng.normal(size=(40, 50, 7))
    A = rng.normal(size=(7, 7))
    tags = rng.integers(0, 7, (40, 50))
    want_v = kexue.crf.viterbi(em, A)
    want_g = kexue.crf.nll_grad(em, tags, A)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append((kexue.crf.viterbi(em, A), kexue.crf.nll_grad(em, tags, A)))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20
    for (p, s), g in results:
        assert np.array_equal(p, want_v[0]) and np.array_equal(s, want_v[1])
        for a, b in zip(g, want_g):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("module", [kexue.attention, kexue.attention.masks, kexue.samplers, kexue.samplers.targets, kexue.samplers.diagnostics, kexue.text._ngram, kexue.text._generate, kexue.text.corpus, kexue.crf, kexue.memm, kexue.losses, kexue.global_pointer, kexue.optim,
                                    kexue.optim.functional, kexue.optim.schedules],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, globs={"np": np, "kexue": kexue})
    assert sum(len(t.examples) for t in tests) >= 5
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) of {module.__name__} failed"


def test_worker_errors_reach_the_caller_and_leave_no_trace():
    """A failing call (a bad tag deep in the batch, found by the front door
    before any work) raises in the caller, and the next call works."""
    rng = np.random.default_rng(2)
    em = rng.normal(size=(64, 5, 3))
    A = rng.normal(size=(3, 3))
    tags = rng.integers(0, 3, (64, 5))
    tags[63, 4] = 9
    with pytest.raises(IndexError, match=r"got 9 at \(63, 4\)"):
        kexue.crf.nll_grad(em, tags, A)
    tags[63, 4] = 0
    g = kexue.crf.nll_grad(em, tags, A)
    assert np.isfinite(g.loss).all()


def test_float32_close_to_float64():
    rng = np.random.default_rng(3)
    em = rng.normal(size=(4, 30, 6))
    A = rng.normal(size=(6, 6))
    tags = rng.integers(0, 6, (4, 30))
    for fn in (lambda e, a: kexue.crf.log_partition(e, a),
               lambda e, a: kexue.crf.nll_grad(e, tags, a).d_transitions,
               lambda e, a: kexue.memm.nll_grad(e, tags, a).loss):
        r64 = fn(em, A)
        r32 = fn(em.astype(np.float32), A.astype(np.float32))
        assert r32.dtype == np.float32
        assert_close(r32, r64.astype(np.float32), dtype=np.float32, rtol=1e-4, atol=1e-4)


def test_kexue_simd_env_lowers_the_level():
    import os
    import subprocess
    import sys

    for level in ("scalar", "avx2"):
        if level == "avx2" and kexue._core.simd_level_supported() == "scalar":
            continue
        env = dict(os.environ, KEXUE_SIMD=level)
        out = subprocess.run([sys.executable, "-c", "import kexue; print(kexue.simd_level())"],
                             env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == level
