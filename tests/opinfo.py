"""The registry of public ops for the generic tests (in the spirit of torch's OpInfo).

Each entry declares how to call the op on sample inputs (shapes, dtypes,
masks, constraints, edge cases), its numpy reference twin, and its bad
inputs with the exception and message they must raise. tests/test_ops.py
iterates the registry; a meta-test fails when a public op has no entry.
Op-specific oracles (brute force, spec numbers) live in test_<area>.py.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

import kexue
import kexue.reference as ref

DTYPES = (np.float32, np.float64)


@dataclasses.dataclass
class Sample:
    args: tuple
    kwargs: dict
    desc: str


@dataclasses.dataclass
class ErrorInput:
    args: tuple
    kwargs: dict
    exc: type
    match: str  # regex the message must match
    desc: str


@dataclasses.dataclass
class OpInfo:
    name: str
    fn: Callable
    ref: Callable
    samples: Callable[[Any, np.random.Generator], list]
    errors: Callable[[], list]
    # Conditioning of the outputs: a multiplier for the absolute tolerance of
    # one sample (None = 1). CRF marginals and gradients are
    # exp(alpha + beta - log Z) with alpha, beta, log Z of size |log Z|, so
    # their absolute error is about eps * |log Z| in any implementation.
    cond: Callable[[Sample], float] | None = None


# ------------------------------------------------------------------ inputs
SHAPES = [(1, 1, 1), (2, 0, 3), (1, 1, 4), (3, 5, 1), (3, 6, 4), (4, 9, 5), (2, 17, 3), (6, 5, 17),
          (9, 3, 33)]


def masks_for(B, T, rng):
    """None, a prefix mask, a random non-prefix mask, a masked first step, an empty row."""
    out = [("nomask", None)]
    if T == 0:
        return out + [("empty-T", np.zeros((B, 0), bool))]
    lengths = rng.integers(0, T + 1, B)
    out.append(("prefix", np.arange(T)[None, :] < lengths[:, None]))
    out.append(("random", rng.random((B, T)) < 0.6))
    first = np.ones((B, T), bool)
    first[:, 0] = False
    out.append(("masked-first", first))
    empty = rng.random((B, T)) < 0.7
    empty[0] = False
    out.append(("empty-row", empty))
    return out


def random_allowed(K, rng):
    """Random constraints that still leave allowed paths (the diagonal is allowed)."""
    al = rng.random((K, K)) < 0.7
    np.fill_diagonal(al, True)
    st = rng.random(K) < 0.7
    en = rng.random(K) < 0.7
    st[0] = en[0] = True
    return al, st, en


def crf_params(K, dtype, rng):
    A = rng.normal(size=(K, K)).astype(dtype)
    s = rng.normal(size=K).astype(dtype)
    e = rng.normal(size=K).astype(dtype)
    return A, s, e


def _crf_samples(with_tags, extra_args=()):
    def gen(dtype, rng):
        out = []
        for B, T, K in SHAPES:
            em = (rng.normal(size=(B, T, K)) * 2).astype(dtype)
            tags = rng.integers(0, K, (B, T)).astype(rng.choice([np.int32, np.int64]))
            A, s, e = crf_params(K, dtype, rng)
            for mname, mask in masks_for(B, T, rng):
                for se in (False, True):
                    for cons in (False, True):
                        if cons and mname not in ("nomask", "random"):
                            continue
                        kw = dict(mask=mask)
                        if se:
                            kw.update(start=s, end=e)
                        if cons:
                            kw["allowed"] = random_allowed(K, rng)
                        args = (em, tags, A) if with_tags else (em, A)
                        out.append(Sample(args + extra_args, kw,
                                          f"{B}x{T}x{K}-{mname}-se{int(se)}-c{int(cons)}"))
        # one long sequence
        B, T, K = 2, 2000, 5
        em = rng.normal(size=(B, T, K)).astype(dtype)
        tags = rng.integers(0, K, (B, T))
        A, s, e = crf_params(K, dtype, rng)
        mask = rng.random((B, T)) < 0.9
        args = (em, tags, A) if with_tags else (em, A)
        out.append(Sample(args + extra_args, dict(mask=mask, start=s, end=e), "long-T2000"))
        return out
    return gen


def _memm_samples(with_tags, extra_args=(), bidir=False, modes=(None,)):
    def gen(dtype, rng):
        out = []
        for B, T, K in SHAPES:
            em = (rng.normal(size=(B, T, K)) * 2).astype(dtype)
            tags = rng.integers(0, K, (B, T))
            G = rng.normal(size=(K, K)).astype(dtype)
            d = max(1, K // 2)
            Lf = rng.normal(size=(K, d)).astype(dtype)
            Rf = rng.normal(size=(K, d)).astype(dtype)
            for mname, mask in masks_for(B, T, rng):
                for lowrank in (False, True):
                    for alpha in (0.5, 1.0):
                        for cons in (False, True):
                            if cons and mname != "random":
                                continue
                            kw = dict(mask=mask, alpha=alpha)
                            if lowrank:
                                kw["factors"] = (Lf, Rf)
                                tr = None
                            else:
                                tr = G
                            if cons:
                                kw["allowed"] = random_allowed(K, rng)
                            args = (em, tags, tr) if with_tags else (em, tr)
                            bidirs = (False, True) if bidir else (None,)
                            for bd in bidirs:
                                for mode in modes:
                                    kw2 = dict(kw)
                                    if bd is not None:
                                        kw2["bidirectional"] = bd
                                    if mode is not None:
                                        kw2["mode"] = mode
                                    out.append(Sample(
                                        args + extra_args, kw2,
                                        f"{B}x{T}x{K}-{mname}-lr{int(lowrank)}-a{alpha}-c{int(cons)}"
                                        f"-bd{bd}-{mode}"))
        B, T, K = 2, 2000, 5
        em = rng.normal(size=(B, T, K)).astype(dtype)
        tags = rng.integers(0, K, (B, T))
        G = rng.normal(size=(K, K)).astype(dtype)
        args = (em, tags, G) if with_tags else (em, G)
        out.append(Sample(args + extra_args, dict(mask=rng.random((B, T)) < 0.9), "long-T2000"))
        return out
    return gen


# ------------------------------------------------------------------ errors
def _f(*shape, dtype=np.float64):
    return np.zeros(shape, dtype)


def _common_errors(op, build, with_tags, memm=False):
    """Bad inputs every decoder op shares. build(em, tags, trans, **kw) -> (args, kwargs)."""
    B, T, K = 2, 3, 3
    em, A = _f(B, T, K), _f(K, K)
    tags = np.zeros((B, T), np.int64)
    E = []

    def add(exc, match, desc, em=em, tags=tags, A=A, **kw):
        args, kwargs = build(em, tags, A, **kw)
        E.append(ErrorInput(args, kwargs, exc, match, desc))

    pre = rf"^\[kexue\.{op}\] "
    add(ValueError, pre + r"emissions must be 3-D \[B,T,K\]; got shape \(2, 3\)", "em-2d", em=_f(2, 3))
    add(TypeError, pre + r"emissions must be float32 or float64; got float16", "em-f16",
        em=_f(B, T, K, dtype=np.float16))
    add(TypeError, pre + r"emissions must be float32 or float64; got complex128", "em-complex",
        em=_f(B, T, K, dtype=np.complex128))
    add(TypeError, pre + r"emissions must be float32 or float64; got object", "em-object",
        em=np.empty((B, T, K), object))
    add(TypeError, pre + r"emissions must be float32 or float64; got int64", "em-int",
        em=np.zeros((B, T, K), np.int64))
    add(ValueError, pre + r"emissions must have at least one tag", "K0", em=_f(B, T, 0),
        A=_f(0, 0))
    add(ValueError, pre + r"transitions must have shape \(3, 3\)", "trans-shape", A=_f(3, 4))
    add(ValueError, pre + r"transitions must be 2-D", "trans-ndim", A=_f(3))
    add(TypeError, pre + r"transitions must have dtype float64; got float32", "trans-dtype",
        A=_f(K, K, dtype=np.float32))
    add(ValueError, pre + r"mask must have shape \(2, 3\)", "mask-shape", mask=np.ones((2, 4), bool))
    add(TypeError, pre + r"mask must have dtype bool; got int64", "mask-dtype",
        mask=np.ones((B, T), np.int64))
    al = np.ones((K, K), bool)
    add(TypeError, pre + r"allowed must have dtype bool; got float64", "allowed-dtype",
        allowed=np.ones((K, K)))
    add(ValueError, pre + r"allowed_start must have shape \(3,\)", "allowed-start-shape",
        allowed=(al, np.ones(4, bool), None))
    add(ValueError, pre + r"allowed must be a \[K,K\] bool array or a triple", "allowed-tuple2",
        allowed=(al, al))
    if with_tags:
        bad = tags.copy()
        bad[1, 2] = 3
        add(IndexError, pre + r"tags must be in \[0, 3\) on valid steps; got 3 at \(1, 2\)",
            "tags-range", tags=bad)
        bad = tags.copy()
        bad[0, 0] = -1
        add(IndexError, pre + r"tags must be in \[0, 3\) on valid steps; got -1 at \(0, 0\)",
            "tags-negative", tags=bad)
        add(TypeError, pre + r"tags must be int32 or int64; got float64", "tags-float",
            tags=np.zeros((B, T)))
        add(ValueError, pre + r"tags must have shape \(2, 3\)", "tags-shape",
            tags=np.zeros((B, T + 1), np.int64))
    if not memm:
        add(ValueError, pre + r"start must have shape \(3,\)", "start-shape", start=_f(4))
        add(TypeError, pre + r"end must have dtype float64; got float32", "end-dtype",
            end=_f(K, dtype=np.float32))
    else:
        add(ValueError, pre + r"alpha must be a finite number > 0; got 0", "alpha-0", alpha=0.0)
        add(ValueError, pre + r"alpha must be a finite number > 0; got nan", "alpha-nan",
            alpha=float("nan"))
        add(ValueError, pre + r"give exactly one of transitions and factors", "both",
            factors=(_f(K, 2), _f(K, 2)))
        add(ValueError, pre + r"give exactly one of transitions and factors", "neither", A=None)
        add(ValueError, pre + r"factors\[1\] \(right\) must have shape \(3, 2\)", "factor-shape",
            A=None, factors=(_f(K, 2), _f(K, 3)))
        add(ValueError, pre + r"factors must be a pair", "factors-not-pair", A=None,
            factors=_f(K, 2))
    return E


def _crf_build(with_tags, extra=()):
    def build(em, tags, A, **kw):
        return ((em, tags, A) if with_tags else (em, A)) + extra, kw
    return build


def _k_errors(op, fn_build):
    pre = rf"^\[kexue\.{op}\] "
    em, A = _f(2, 3, 3), _f(3, 3)
    return [
        ErrorInput(fn_build(em, A, 0), {}, ValueError, pre + r"k must be >= 1; got 0", "k0"),
        ErrorInput(fn_build(em, A, -2), {}, ValueError, pre + r"k must be >= 1; got -2", "kneg"),
        ErrorInput(fn_build(em, A, 2.5), {}, TypeError, pre + r"k must be an int; got float", "kfloat"),
    ]


def _crf_cond(s):
    em = s.args[0]
    A = s.args[2] if s.args[1].dtype.kind == "i" else s.args[1]
    kw = {k: v for k, v in s.kwargs.items() if k in ("mask", "start", "end", "allowed")}
    if em.size == 0:
        return 1.0
    logz = ref.crf.log_partition(em.astype(np.float64), A.astype(np.float64), **{
        k: (v.astype(np.float64) if k in ("start", "end") and v is not None else v)
        for k, v in kw.items()})
    return max(1.0, float(np.max(np.abs(logz[np.isfinite(logz)]), initial=1.0)))


def _entries():
    E = []
    for name, with_tags in [("log_likelihood", True), ("log_partition", False),
                            ("nll_grad", True), ("marginals", False), ("viterbi", False)]:
        E.append(OpInfo(
            f"crf.{name}", getattr(kexue.crf, name), getattr(ref.crf, name),
            _crf_samples(with_tags),
            (lambda n=name, wt=with_tags: _common_errors(f"crf.{n}", _crf_build(wt), wt)),
            cond=_crf_cond if name in ("nll_grad", "marginals") else None,
        ))
    E.append(OpInfo(
        "crf.nbest", kexue.crf.nbest, ref.crf.nbest, _crf_samples(False, (4,)),
        lambda: _common_errors("crf.nbest", _crf_build(False, (2,)), False)
        + _k_errors("crf.nbest", lambda em, A, k: (em, A, k)),
    ))

    def memm_build(with_tags, extra=()):
        def build(em, tags, A, **kw):
            return ((em, tags, A) if with_tags else (em, A)) + extra, kw
        return build

    for name, with_tags, bidir, modes in [
        ("log_likelihood", True, True, (None,)),
        ("nll_grad", True, True, (None,)),
        ("marginals", False, False, (None,)),
        ("viterbi", False, False, ("map", "crf_style")),
    ]:
        E.append(OpInfo(
            f"memm.{name}", getattr(kexue.memm, name), getattr(ref.memm, name),
            _memm_samples(with_tags, bidir=bidir, modes=modes),
            (lambda n=name, wt=with_tags: _common_errors(f"memm.{n}", memm_build(wt), wt, memm=True)),
        ))
    E.append(OpInfo(
        "memm.nbest", kexue.memm.nbest, ref.memm.nbest, _memm_samples(False, (4,)),
        lambda: _common_errors("memm.nbest", memm_build(False, (2,)), False, memm=True)
        + _k_errors("memm.nbest", lambda em, A, k: (em, A, k))
        + [ErrorInput((_f(2, 3, 3), _f(3, 3)), {"mode": "x"}, TypeError, "mode", "no-mode-kw")],
    ))
    # mode is a viterbi-only keyword
    return E


OPS = _entries()
OPS_BY_NAME = {op.name: op for op in OPS}
