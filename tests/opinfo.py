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
import kexue.attention  # noqa: F401  (the area's front door; also imported by kexue/__init__)
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
    # False for ops whose inputs are not arrays (f1 takes row lists)
    noncontig: bool = True


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




# ------------------------------------------------------------------ losses
def _loss_rows(rng, dtype, shape, pos_frac=0.3, neg_inf=True):
    s = (rng.normal(size=shape) * 3).astype(dtype)
    if neg_inf and s.size > 3:
        s.flat[rng.choice(s.size, max(1, s.size // 10), replace=False)] = -np.inf
    t = rng.random(shape) < pos_frac
    return s, t


LOSS_SHAPES = [(1,), (7,), (3, 1), (4, 9), (2, 3, 50), (70, 33)]


def _loss_samples(kind):
    def gen(dtype, rng):
        out = []
        for shape in LOSS_SHAPES:
            s, t = _loss_rows(rng, dtype, shape)
            mask = rng.random(shape) < 0.8
            for rg in (False, True):
                if kind == "hard":
                    for tt, tname in ((t, "bool"), (t.astype(np.int64), "int"),
                                      (t.astype(dtype), "float")):
                        out.append(Sample((s, tt), dict(return_grad=rg), f"{shape}-{tname}-g{rg}"))
                    out.append(Sample((s, t), dict(mask=mask, return_grad=rg), f"{shape}-mask-g{rg}"))
                    out.append(Sample((s, np.ones(shape, bool)), dict(return_grad=rg),
                                      f"{shape}-allpos-g{rg}"))
                    out.append(Sample((s, np.zeros(shape, bool)), dict(return_grad=rg),
                                      f"{shape}-nopos-g{rg}"))
                elif kind == "soft":
                    p = rng.random(shape).astype(dtype)
                    p[rng.random(shape) < 0.2] = 0
                    p[rng.random(shape) < 0.2] = 1
                    out.append(Sample((s, p), dict(return_grad=rg), f"{shape}-g{rg}"))
                    out.append(Sample((s, p), dict(mask=mask, return_grad=rg), f"{shape}-mask-g{rg}"))
                else:
                    C = shape[-1]
                    P = min(4, C + 1)
                    idx = rng.integers(-1, C, shape[:-1] + (P,))
                    for mz in (False, True):
                        out.append(Sample((s, idx), dict(mask_zero=mz, return_grad=rg),
                                          f"{shape}-mz{mz}-g{rg}"))
        return out
    return gen


def _loss_errors(op, kind):
    pre = rf"^\[kexue\.losses\.{op}\] "
    s = np.zeros((2, 3))
    t = np.zeros((2, 3), bool)
    second = {"hard": t, "soft": np.zeros((2, 3)), "sparse": np.zeros((2, 1), np.int64)}[kind]
    tname = {"hard": "targets", "soft": "probs", "sparse": "positive_index"}[kind]
    E = [
        ErrorInput((np.zeros((2, 3), np.float16), second), {}, TypeError,
                   pre + r"logits must be float32 or float64; got float16", "f16"),
        ErrorInput((np.zeros(()), second), {}, ValueError, pre + r"logits must have at least 1 axis",
                   "0d"),
        ErrorInput((np.zeros((2, 0)), second[:, :0] if kind != "sparse" else second), {}, ValueError,
                   pre + r"logits must have at least one class", "C0"),
        ErrorInput((s, second[:1]), {}, ValueError, pre + tname + r" must have shape", "shape"),
    ]
    if kind == "hard":
        E += [
            ErrorInput((s, np.full((2, 3), 0.5)), {}, ValueError, pre + r"targets must be 0 or 1; got 0.5",
                       "half"),
            ErrorInput((s, np.full((2, 3), 2)), {}, ValueError, pre + r"targets must be 0 or 1; got 2",
                       "int2"),
            ErrorInput((s, np.zeros((2, 3), np.float32)), {}, TypeError,
                       pre + r"targets must be bool or float64", "dtype"),
            ErrorInput((s, t), dict(mask=np.ones((2, 3))), TypeError,
                       pre + r"mask must have dtype bool; got float64", "mask-dtype"),
            ErrorInput((s, t), dict(mask=np.ones((3, 3), bool)), ValueError,
                       pre + r"mask must have shape \(2, 3\)", "mask-shape"),
        ]
    elif kind == "soft":
        E += [
            ErrorInput((s, np.full((2, 3), 1.5)), {}, ValueError, pre + r"probs must be in \[0, 1\]; got 1.5",
                       "range"),
            ErrorInput((s, np.zeros((2, 3), np.float32)), {}, TypeError,
                       pre + r"probs must have dtype float64; got float32", "dtype"),
        ]
    else:
        E += [
            ErrorInput((s, np.array([[3], [0]])), {}, IndexError,
                       pre + r"positive_index must be in \[-1, 3\) \(-1 = padding\); got 3", "range"),
            ErrorInput((s, np.array([[-2], [0]])), {}, IndexError,
                       pre + r"positive_index must be in \[-1, 3\).*got -2", "neg"),
            ErrorInput((s, np.zeros((2, 1))), {}, TypeError,
                       pre + r"positive_index must be int32 or int64; got float64", "dtype"),
        ]
    return E


# ------------------------------------------------------------------ global pointer
GP_SHAPES = [(1, 1, 1, 2), (2, 5, 3, 4), (3, 9, 2, 8), (1, 33, 1, 6)]


def _gp_samples(kind):
    def gen(dtype, rng):
        out = []
        for B, T, E, D in GP_SHAPES:
            q = rng.normal(size=(B, T, E, D)).astype(dtype)
            k = rng.normal(size=(B, T, E, D)).astype(dtype)
            mask = np.arange(T)[None, :] < rng.integers(1, T + 1, B)[:, None]
            ds = rng.normal(size=(B, E, T, T)).astype(dtype)
            h = rng.normal(size=(B, T, 2 * D)).astype(dtype)
            W = rng.normal(size=(2 * D, 2 * E)).astype(dtype)
            bias = rng.normal(size=2 * E).astype(dtype)
            for m in (None, mask):
                for rope, inter, tril in ((True, True, True), (True, False, False), (False, True, True)):
                    kw = dict(mask=m, rope=rope, tril_mask=tril)
                    desc = f"{B}x{T}x{E}x{D}-m{m is not None}-r{rope}-i{inter}-t{tril}"
                    if kind == "scores":
                        out.append(Sample((q, k), dict(kw, interleaved=inter), desc))
                    elif kind == "scores_backward":
                        out.append(Sample((q, k, ds), dict(kw, interleaved=inter), desc))
                    elif kind == "efficient_scores":
                        out.append(Sample((h, W, bias if inter else None), kw, desc))
                    else:
                        out.append(Sample((h, W, ds, bias if inter else None), kw, desc))
        return out
    return gen


def _gp_errors(op):
    pre = rf"^\[kexue\.global_pointer\.{op}\] "
    q = np.zeros((1, 3, 2, 4))
    ds = np.zeros((1, 2, 3, 3))
    if op in ("scores", "scores_backward"):
        extra = (ds,) if op == "scores_backward" else ()
        return [
            ErrorInput((np.zeros((3, 2, 4)), q) + extra, {}, ValueError, pre + r"q must be 4-D", "ndim"),
            ErrorInput((q.astype(np.float16), q) + extra, {}, TypeError, pre + r"q must be float32 or float64",
                       "dtype"),
            ErrorInput((q, np.zeros((1, 4, 2, 4))) + extra, {}, ValueError, pre + r"k must have shape",
                       "k-shape"),
            ErrorInput((q, q.astype(np.float32)) + extra, {}, TypeError, pre + r"k must have dtype float64",
                       "k-dtype"),
            ErrorInput((np.zeros((1, 3, 2, 3)), np.zeros((1, 3, 2, 3))) + (np.zeros((1, 2, 3, 3)),) * len(extra),
                       {}, ValueError, pre + r"the head size D .* must be even with rope=True; got 3", "odd"),
            ErrorInput((q, q) + extra, dict(mask=np.ones((1, 4), bool)), ValueError,
                       pre + r"mask must have shape \(1, 3\)", "mask"),
            ErrorInput((q, q) + extra, dict(rope_base=-1.0), ValueError, pre + r"rope_base must be", "base"),
        ] + ([ErrorInput((q, q, np.zeros((1, 2, 3, 4))), {}, ValueError,
                         pre + r"d_scores must have shape \(1, 2, 3, 3\)", "ds-shape")]
             if op == "scores_backward" else [])
    h = np.zeros((1, 3, 4))
    W = np.zeros((4, 4))
    extra = (ds,) if op == "efficient_scores_backward" else ()
    return [
        ErrorInput((np.zeros((1, 3, 3)), W) + extra, {}, ValueError, pre + r"h's last axis must be even",
                   "odd-h"),
        ErrorInput((h, np.zeros((3, 4))) + extra, {}, ValueError, pre + r"W must have shape \(4, 2E\)", "W"),
        ErrorInput((h, W.astype(np.float32)) + extra, {}, TypeError, pre + r"W must have dtype float64",
                   "W-dtype"),
        ErrorInput((h, W) + extra + ((np.zeros(3),) if extra else ()),
                   {} if extra else dict(bias=np.zeros(3)), ValueError,
                   pre + r"bias must have shape \(4,\)", "bias"),
        ErrorInput((h.astype(np.int64), W) + extra, {}, TypeError, pre + r"h must be float32 or float64",
                   "h-int"),
    ]


def _decode_samples(dtype, rng):
    out = []
    for B, E, T in ((1, 1, 1), (2, 3, 5), (3, 2, 9)):
        s = rng.normal(size=(B, E, T, T)).astype(dtype)
        s[:, :, np.tril_indices(T, -1)[0], np.tril_indices(T, -1)[1]] = -np.inf
        mask = np.arange(T)[None, :] < rng.integers(1, T + 1, B)[:, None]
        for flat in (False, True):
            out.append(Sample((s,), dict(flat=flat), f"{B}x{E}x{T}-f{flat}"))
            out.append(Sample((s,), dict(flat=flat, mask=mask, threshold=0.5), f"{B}x{E}x{T}-m-f{flat}"))
    return out


def _gp_loss_samples(dtype, rng):
    out = []
    for B, E, T in ((1, 1, 1), (2, 3, 5), (3, 2, 9)):
        s = (rng.normal(size=(B, E, T, T)) * 2).astype(dtype)
        s[:, :, np.tril_indices(T, -1)[0], np.tril_indices(T, -1)[1]] = -np.inf
        n = 2 * B * E
        st = rng.integers(0, T, n)
        spans = np.stack([rng.integers(0, B, n), rng.integers(0, E, n), st,
                          np.minimum(T - 1, st + rng.integers(0, 3, n))], 1)
        for rg in (False, True):
            out.append(Sample((s, spans), dict(return_grad=rg), f"{B}x{E}x{T}-g{rg}"))
            out.append(Sample((s, spans[:0]), dict(return_grad=rg), f"{B}x{E}x{T}-nogold-g{rg}"))
    return out


def _f1_samples(dtype, rng):
    a = [[0, 0, 1, 2], [0, 1, 3, 3], [1, 0, 0, 0]]
    b = [[0, 0, 1, 2], [1, 0, 0, 1], [0, 0, 1, 2]]
    return [Sample((a, b), {}, "partial"), Sample(([], b), {}, "no-pred"),
            Sample((a, []), {}, "no-gold"), Sample(([], []), {}, "empty"),
            Sample((np.array(a), np.array(a)), {}, "same"),
            Sample((np.array(a, np.int32), np.array(b, np.uint8)), {}, "int32-uint8"),
            Sample((rng.integers(0, 3, (400, 4)), rng.integers(0, 3, (300, 4))), {}, "random-dups")]


def _predict_samples(dtype, rng):
    s = rng.normal(size=(4, 7)).astype(dtype)
    return [Sample((s,), {}, "default"), Sample((s,), dict(threshold=0.3), "thr"),
            Sample((np.array([-np.inf, 0.0, np.inf], dtype),), {}, "edges")]


def _more_entries():
    E = []
    for name, kind in (("multilabel_crossentropy", "hard"), ("multilabel_crossentropy_soft", "soft"),
                       ("sparse_multilabel_crossentropy", "sparse")):
        E.append(OpInfo(f"losses.{name}", getattr(kexue.losses, name), getattr(ref.losses, name),
                        _loss_samples(kind), (lambda n=name, k=kind: _loss_errors(n, k))))
    E.append(OpInfo("losses.multilabel_predict", kexue.losses.multilabel_predict,
                    ref.losses.multilabel_predict, _predict_samples,
                    lambda: [ErrorInput((np.zeros(3, np.int64),), {}, TypeError,
                                        r"^\[kexue\.losses\.multilabel_predict\] logits must be float",
                                        "int")]))
    for name in ("scores", "scores_backward", "efficient_scores", "efficient_scores_backward"):
        E.append(OpInfo(f"global_pointer.{name}", getattr(kexue.global_pointer, name),
                        getattr(ref.global_pointer, name), _gp_samples(name),
                        (lambda n=name: _gp_errors(n))))
    pre = r"^\[kexue\.global_pointer\.%s\] "
    E.append(OpInfo("global_pointer.decode", kexue.global_pointer.decode, ref.global_pointer.decode,
                    _decode_samples, lambda: [
                        ErrorInput((np.zeros((2, 3, 3)),), {}, ValueError, pre % "decode" + "scores must be 4-D",
                                   "ndim"),
                        ErrorInput((np.zeros((1, 1, 3, 3)),), dict(mask=np.ones((1, 2), bool)), ValueError,
                                   pre % "decode" + r"mask must have shape \(1, 3\)", "mask"),
                        ErrorInput((np.zeros((1, 1, 3, 3), np.int64),), {}, TypeError,
                                   pre % "decode" + "scores must be float32 or float64", "dtype"),
                    ]))
    E.append(OpInfo("global_pointer.loss", kexue.global_pointer.loss, ref.global_pointer.loss,
                    _gp_loss_samples, lambda: [
                        ErrorInput((np.zeros((1, 1, 3, 3)), np.array([[0, 0, 1, 3]])), {}, IndexError,
                                   pre % "loss" + r"spans end must be in \[0, 3\); got 3", "end"),
                        ErrorInput((np.zeros((1, 1, 3, 3)), np.array([[1, 0, 1, 2]])), {}, IndexError,
                                   pre % "loss" + r"spans batch must be in \[0, 1\); got 1", "batch"),
                        ErrorInput((np.zeros((1, 1, 3, 3)), np.array([[0, 0, 1]])), {}, ValueError,
                                   pre % "loss" + r"spans must be \[n,4\]", "cols"),
                        ErrorInput((np.zeros((1, 1, 3, 3)), np.array([[0.0, 0, 1, 2]])), {}, TypeError,
                                   pre % "loss" + r"spans must be integers", "float"),
                    ]))
    E.append(OpInfo("global_pointer.f1", kexue.global_pointer.f1, ref.global_pointer.f1, _f1_samples,
                    lambda: [
                        ErrorInput(([[0, 0, 1]], []), {}, ValueError,
                                   pre % "f1" + r"pred_spans must be integer \[n,4\] rows", "cols"),
                        ErrorInput(([], [[0.5, 0, 1, 2]]), {}, ValueError,
                                   pre % "f1" + r"gold_spans must be integer \[n,4\] rows", "float"),
                    ], noncontig=False))
    return E


# ------------------------------------------------------------------- optim
# The functional updates are in place; their registry entries run a few steps
# on copies and return the final params and states, so the generic tests
# (core vs twin, threads, SIMD levels, errors) apply unchanged. (The runner
# copies params, so strided/read-only params are tested in test_optim.py.)
_OPTIM_SHAPES = [(1,), (7,), (1000,), (31, 33), (2, 3, 4, 5), (0,), (150, 3, 140)]


def _optim_runner(fn, steps=3):
    def run(params, grads, states, extra=None, **kw):
        p = [x.copy() for x in params]
        st = [None if s is None else [None if x is None else x.copy() for x in s] for s in states]
        kw = dict(kw)
        if extra:
            kw.update({k: [x.copy() for x in v] for k, v in extra.items()})
        for t in range(steps):
            fn(p, grads[t], *st, t + 1, **kw)
        out = p + [x for s in st if s for x in s if x is not None]
        return out + [x for v in (extra and kw[k] for k in extra or ()) for x in v] if extra else out
    return run


def _optim_state(rule, shape, dtype, kw):
    z = lambda shp=shape: np.zeros(shp, dtype)  # noqa: E731
    if rule == "sgd_":
        return [z() if kw.get("momentum", 0) else None]
    if rule in ("adam_", "adamw_", "adax_", "lamb_"):
        sd = np.uint16 if kw.pop("bf16", False) else dtype
        return [np.zeros(shape, sd), np.zeros(shape, sd)]
    if rule == "lion_":
        sd = np.uint16 if kw.pop("bf16", False) else dtype
        return [np.zeros(shape, sd)]
    if rule == "adafactor_":
        f = ref.optim.adafactor_shapes(shape, kw.pop("min_dim", 128))
        m = z() if kw.get("beta1", 0) > 0 else None
        return [m, z() if f is None else None, None if f is None else z(f[0]), None if f is None else z(f[1])]
    if rule == "amos_":
        shp = () if kw.pop("reduce_all", False) else shape
        return [z(shp), z(shp)]
    raise AssertionError(rule)


_OPTIM_CASES = {
    "sgd_": [dict(lr=0.1), dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
             dict(lr=0.1, momentum=0.9, nesterov=True, grad_scale=0.5)],
    "adam_": [dict(), dict(weight_decay=0.1, amsgrad=True), dict(lr=1e-2, beta1=0.3, bf16=True, seed=3)],
    "adamw_": [dict(), dict(amsgrad=True, grad_scale=0.25), dict(bf16=True, seed=2**40 + 1)],
    "adax_": [dict(), dict(weight_decay=0.1), dict(bf16=True, seed=9)],
    "lion_": [dict(), dict(weight_decay=0.5, beta1=0.5), dict(bf16=True, seed=4)],
    "lamb_": [dict(), dict(weight_decay=0.0, grad_scale=0.5)],
    "adafactor_": [dict(), dict(min_dim=2, beta1=0.9), dict(min_dim=1, lr=1e-2, beta2=0.9,
                                                              multiply_by_parameter_scale=False, d=0.5)],
    "amos_": [dict(lr=0.01, eta=0.5), dict(lr=0.02, eta=0.1, reduce_all=True, finetune_rate=0.5)],
}


def _optim_samples(rule):
    def samples(dtype, rng):
        out = []
        for case in _OPTIM_CASES[rule]:
            kw = dict(case)
            if kw.get("bf16") and dtype != np.float32:
                continue
            shapes = list(_OPTIM_SHAPES)
            if case is _OPTIM_CASES[rule][0]:
                shapes.append((200003,))  # several 64K chunks: threads must not matter
            params = [rng.standard_normal(sh).astype(dtype) for sh in shapes]
            grads = [[rng.standard_normal(sh).astype(dtype) for sh in shapes] for _ in range(3)]
            states = None
            extra = None
            per = [_optim_state(rule, sh, dtype, dict(kw)) for sh in shapes]
            for k in ("bf16", "min_dim", "reduce_all"):
                kw.pop(k, None)
            states = [list(col) if any(x is not None for x in col) else None for col in zip(*per)]
            if kw.get("amsgrad"):
                extra = {"max_exp_avg_sqs": [np.zeros(sh, dtype) for sh in shapes]}
            out.append(Sample((params, grads, states, extra), kw, f"{rule} {case}"))
        return out
    return samples


def _optim_errors(rule):
    pre = r"^\[kexue\.optim\.%s\] " % rule.replace("_", r"_")
    f = np.float64
    good = ([np.zeros(3)], [[np.zeros(3)]] * 3)
    st = lambda shape=(3,), dt=f: _optim_state(rule, shape, dt, {"momentum": 0.9})  # noqa: E731
    kw = dict(lr=0.1, momentum=0.9) if rule == "sgd_" else dict(lr=0.01, eta=0.5) if rule == "amos_" else {}

    def cols(states):
        return [None if x is None else [x] for x in states]
    E = [
        ErrorInput(good + (cols(st()),), dict(kw, lr=-1.0), ValueError, pre + r"lr must be >= 0; got -1",
                   "negative lr"),
        ErrorInput(good + (cols(st()),), dict(kw, lr=float("nan")), ValueError, pre + "lr must be finite",
                   "nan lr"),
        ErrorInput(([np.zeros(3)], [[np.zeros(4)]] * 3, cols(st())), kw, ValueError,
                   pre + r"grads\[0\] must have shape \(3,\) \(the shape of params\[0\]\); got \(4,\)", "grad shape"),
        ErrorInput(([np.zeros(3)], [[np.zeros(3, np.float32)]] * 3, cols(st())), kw, TypeError,
                   pre + r"grads\[0\] must have dtype float64", "grad dtype"),
        ErrorInput(([np.zeros(3, np.int64)], [[np.zeros(3, np.int64)]] * 3, cols(st())), kw, TypeError,
                   pre + r"params\[0\] must be float32 or float64; got int64", "int params"),
    ]
    if rule in ("adam_", "adamw_", "adax_", "lion_", "lamb_"):
        E.append(ErrorInput(good + (cols(st()),), dict(beta1=1.0), ValueError, pre + r"beta1 must be in \[0, 1\); got 1",
                            "beta1 = 1"))
        E.append(ErrorInput(good + ([[np.zeros(4)]] + cols(st())[1:],), {}, ValueError,
                            pre + r"exp_avgs\[0\] must have shape \(3,\)", "state shape"))
    if rule in ("adam_", "adamw_", "adax_"):
        E.append(ErrorInput(good + (cols(st()),), dict(eps=-1e-8), ValueError, pre + r"eps must be >= 0", "eps"))
    if rule in ("adam_", "adamw_", "adax_", "lion_"):
        E.append(ErrorInput(good + ([[np.zeros(3, np.uint16)]] + cols(st())[1:],), {}, TypeError,
                            pre + r"exp_avgs\[0\] is bfloat16 state \(uint16\), which needs float32 params", "bf16 f64"))
    return E


def _optim_entries():
    E = []
    for rule in _OPTIM_CASES:
        E.append(OpInfo(f"optim.{rule}", _optim_runner(getattr(kexue.optim.functional, rule)),
                        _optim_runner(getattr(ref.optim, rule)), _optim_samples(rule),
                        (lambda r=rule: _optim_errors(r)), noncontig=False))
    return E


# --------------------------------------------------------------- attention
# (B, H, Hkv, N, M, D, Dv): one of everything, GQA 2 and 8, N != M both ways,
# Dv != D, a 70-key row crossing a 64-key block, and empty N / M.
_ATT_SHAPES = [(1, 1, 1, 1, 1, 1, 1), (2, 4, 2, 5, 7, 8, 8), (1, 2, 2, 9, 9, 16, 12),
               (2, 8, 1, 3, 70, 8, 8), (2, 2, 1, 6, 4, 4, 4), (1, 2, 1, 0, 3, 4, 4),
               (1, 2, 1, 3, 0, 4, 4)]


def _att_slopes(H):
    return 2.0 ** (-8.0 * np.arange(1, H + 1) / H)


def _att_variants(rng, B, H, N, M, D, dtype):
    """(desc, kwargs) mask/feature variants for one shape."""
    lengths = rng.integers(0, M + 1, B)
    lengths[0] = M
    pad = (np.arange(M)[None, :] < lengths[:, None])[:, None, None, :]
    bias = rng.normal(size=(B, H, N, M))
    bias[rng.random(bias.shape) < 0.2] = -np.inf
    out = [("plain", {}),
           ("causal", dict(causal=True)),
           ("pad-causal-logn", dict(mask=pad, causal=True, logn=8.0)),
           ("bias-alibi-window", dict(mask=bias.astype(dtype), alibi_slopes=_att_slopes(H), window=3)),
           ("scale-window-causal-logn", dict(scale=0.5, window=2, causal=True, logn=3.0))]
    if N == M:
        seg = (rng.random((B, N)) < 0.5).astype(np.int64)
        out.append(("segment-pad", dict(segment_ids=seg, mask=pad)))
    if D % 2 == 0:
        out.append(("rope-half-causal", dict(rope=True, causal=True)))
        out.append(("rope-interleaved-all", dict(rope=True, rope_interleaved=True, rope_base=100.0,
                                                 logn=4.0, alibi_slopes=_att_slopes(H))))
    return out


def _att_samples(kind):
    def gen(dtype, rng):
        out = []
        for B, H, Hkv, N, M, D, Dv in _ATT_SHAPES:
            q = rng.normal(size=(B, H, N, D)).astype(dtype)
            k = rng.normal(size=(B, Hkv, M, D)).astype(dtype)
            v = rng.normal(size=(B, Hkv, M, Dv)).astype(dtype)
            for vname, kw in _att_variants(rng, B, H, N, M, D, dtype):
                desc = f"{B}x{H}x{Hkv}x{N}x{M}x{D}x{Dv}-{vname}"
                if kind == "sdpa":
                    out.append(Sample((q, k, v), dict(kw, return_lse=vname != "plain"), desc))
                else:
                    o, lse = ref.attention.sdpa(q, k, v, return_lse=True, **kw)
                    dout = rng.normal(size=o.shape).astype(dtype)
                    out.append(Sample((q, k, v, o, lse, dout), kw, desc))
        return out
    return gen


def _att_decode_samples(dtype, rng):
    out = []
    for B, H, Hkv, Mmax, D, Dv in ((1, 1, 1, 1, 1, 1), (3, 4, 2, 9, 8, 8), (2, 8, 1, 130, 16, 12),
                                   (2, 2, 2, 0, 4, 4)):
        q = rng.normal(size=(B, H, D)).astype(dtype)
        kc = rng.normal(size=(B, Hkv, Mmax, D)).astype(dtype)
        vc = rng.normal(size=(B, Hkv, Mmax, Dv)).astype(dtype)
        lengths = rng.integers(0, Mmax + 1, B)
        lengths[0] = Mmax
        if B > 2:
            lengths[1:3] = (0, 1)
        for vname, kw in (("plain", {}), ("lse", dict(return_lse=True)),
                          ("window-logn", dict(window=3, logn=4.0, return_lse=True)),
                          ("alibi-scale", dict(alibi_slopes=_att_slopes(H), scale=0.3))):
            out.append(Sample((q, kc, vc, lengths), kw, f"{B}x{H}x{Hkv}x{Mmax}x{D}x{Dv}-{vname}"))
    return out


def _att_rope_samples(dtype, rng):
    out = []
    for shape in ((1, 2), (2, 3, 5, 8), (4, 7, 6), (3, 0, 4)):
        x = rng.normal(size=shape).astype(dtype)
        N = shape[-2]
        for inter in (False, True):
            out.append(Sample((x,), dict(interleaved=inter), f"{shape}-none-i{inter}"))
            out.append(Sample((x, np.arange(N) + 5), dict(interleaved=inter, base=500.0),
                              f"{shape}-int-i{inter}"))
            out.append(Sample((x, rng.normal(size=shape[:-1]) * 100), dict(interleaved=inter),
                              f"{shape}-float-i{inter}"))
    return out


def _att_errors(fn):
    pre = rf"^\[kexue\.attention\.{fn}\] "
    if fn == "rope":
        x = _f(2, 3, 4)
        return [
            ErrorInput((_f(4),), {}, ValueError, pre + r"x\b", "1d"),
            ErrorInput((_f(2, 3, 5),), {}, ValueError, pre + r"x\b", "odd-D"),
            ErrorInput((x.astype(np.int64),), {}, TypeError, pre + r"x\b", "int"),
            ErrorInput((x, np.arange(4)), {}, ValueError, pre + r"positions\b", "positions"),
            ErrorInput((x,), dict(base=0.0), ValueError, pre + r"base\b", "base"),
        ]
    if fn == "decode":
        q, kc, vc, n = _f(2, 4, 8), _f(2, 2, 7, 8), _f(2, 2, 7, 6), np.array([3, 7])
        return [
            ErrorInput((_f(2, 4, 1, 8), kc, vc, n), {}, ValueError, pre + r"q\b", "q-4d"),
            ErrorInput((q, kc.astype(np.float32), vc, n), {}, TypeError, pre + r"k_cache\b", "k-dtype"),
            ErrorInput((q, _f(2, 3, 7, 8), _f(2, 3, 7, 6), n), {}, ValueError, pre + r"k_cache\b", "heads"),
            ErrorInput((q, kc, _f(2, 2, 6, 6), n), {}, ValueError, pre + r"v_cache\b", "v-len"),
            ErrorInput((q, kc, vc, np.array([3.0, 7.0])), {}, TypeError, pre + r"lengths\b", "len-float"),
            ErrorInput((q, kc, vc, np.array([3, 8])), {}, IndexError, pre + r"lengths\b", "len-range"),
            ErrorInput((q, kc, vc, n), dict(window=0), ValueError, pre + r"window\b", "window"),
        ]
    q, k, v = _f(2, 4, 3, 8), _f(2, 2, 5, 8), _f(2, 2, 5, 6)
    extra = (_f(2, 4, 3, 6), _f(2, 4, 3), _f(2, 4, 3, 6)) if fn == "sdpa_backward" else ()
    E = [
        ErrorInput((_f(4, 3, 8), k, v) + extra, {}, ValueError, pre + r"q\b", "q-3d"),
        ErrorInput((q.astype(np.float16), k, v) + extra, {}, TypeError, pre + r"q\b", "q-f16"),
        ErrorInput((q, k.astype(np.float32), v) + extra, {}, TypeError, pre + r"k\b", "k-dtype"),
        ErrorInput((q, _f(2, 3, 5, 8), _f(2, 3, 5, 6)) + extra, {}, ValueError, pre + r"k\b", "heads"),
        ErrorInput((q, k, _f(2, 2, 4, 6)) + extra, {}, ValueError, pre + r"v\b", "v-len"),
        ErrorInput((q, k, v) + extra, dict(window=0), ValueError, pre + r"window\b", "window"),
        ErrorInput((q, k, v) + extra, dict(logn=1.0), ValueError, pre + r"logn\b", "logn"),
        ErrorInput((q, k, v) + extra, dict(mask=np.ones((3, 4), bool)), ValueError, pre + r"mask\b",
                   "mask-shape"),
        ErrorInput((q, k, v) + extra, dict(mask=np.zeros((3, 5), np.float32)), TypeError,
                   pre + r"mask\b", "mask-dtype"),
        ErrorInput((q, k, v) + extra, dict(segment_ids=np.zeros((2, 3), np.int64)), ValueError,
                   pre + r"segment_ids\b", "segment-N-ne-M"),
        ErrorInput((q, k, v) + extra, dict(alibi_slopes=np.ones(3)), ValueError,
                   pre + r"alibi_slopes\b", "alibi"),
    ]
    if fn == "sdpa_backward":
        E += [
            ErrorInput((q, k, v, _f(2, 4, 3, 5), extra[1], extra[2]), {}, ValueError, pre + r"out\b",
                       "out-shape"),
            ErrorInput((q, k, v, extra[0], _f(2, 4, 4), extra[2]), {}, ValueError, pre + r"lse\b",
                       "lse-shape"),
            ErrorInput((q, k, v, extra[0], extra[1], extra[2].astype(np.float32)), {}, TypeError,
                       pre + r"dout\b", "dout-dtype"),
        ]
    return E


def _attention_entries():
    return [
        OpInfo("attention.sdpa", kexue.attention.sdpa, ref.attention.sdpa, _att_samples("sdpa"),
               lambda: _att_errors("sdpa")),
        OpInfo("attention.sdpa_backward", kexue.attention.sdpa_backward, ref.attention.sdpa_backward,
               _att_samples("sdpa_backward"), lambda: _att_errors("sdpa_backward")),
        OpInfo("attention.decode", kexue.attention.decode, ref.attention.decode, _att_decode_samples,
               lambda: _att_errors("decode")),
        OpInfo("attention.rope", kexue.attention.rope, ref.attention.rope, _att_rope_samples,
               lambda: _att_errors("rope")),
    ]


OPS = _entries() + _more_entries() + _optim_entries() + _attention_entries()
OPS_BY_NAME = {op.name: op for op in OPS}
