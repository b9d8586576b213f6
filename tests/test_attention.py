"""Oracles for kexue.attention (spec kernels §B, issue 3).

* spec numbers: the B2 test vector (UniLM, causal, bidirectional outputs, a
  softmax row, permutation masks) and the B5 RoPE numbers, through the core and
  the numpy twin (the ``impl`` fixture runs a test on both);
* the core against the twin (``kexue.reference.attention``, materialised
  softmax in float64) on random inputs: N != M, N = 1, M = 1, D from 1 to 256,
  GQA ratios 1/2/8, every mask kind alone and with key padding, logn (with and
  without window), ALiBi, RoPE (both pairings), scale, float32 and float64;
* the backward against the twin's analytic gradient, and both against central
  finite differences of the forward in float64;
* decode against sdpa per batch row, rope's properties, the mask builders
  against brute-force loops and against sdpa's own flags;
* thread-count determinism, edge cases (empty axes, fully masked rows, NaN),
  bad inputs (type and message for the core and the twin), and torch's SDPA
  when torch is installed.

Every test that needs the compiled attention core has "core" in its id (the
``core`` fixture, or the "core" half of ``impl``): ``pytest -k "not core"`` runs
the rest (the twin, the mask builders, the brute-force oracles) on their own.
"""
from __future__ import annotations

import doctest
import math
import zlib

import numpy as np
import pytest

from kexue.attention import masks
from kexue.reference import attention as ref
from kexue.testing import assert_close

F64, F32 = np.float64, np.float32
DTYPES = (F32, F64)

# ----------------------------------------------------------------------------
# helpers


def _core():
    import kexue.attention as core

    if not hasattr(core, "sdpa"):
        pytest.fail("kexue.attention has no compiled front door yet (python/kexue/attention/__init__.py)")
    return core


@pytest.fixture(params=["core", "reference"])
def impl(request):
    return ref if request.param == "reference" else _core()


@pytest.fixture
def core():
    return _core()


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def tol(dtype):
    """Relative tolerance vs the float64 twin. float64: the core sums the same
    products in another order (blockwise online softmax) -> ~1e-15 relative,
    1e-10 leaves room for exp/log of logits of size ~10. float32: inputs are the
    same float32 numbers, the core accumulates dot products over D <= 256 and
    softmax sums over M <= 300 in float32; a naive float32 materialised
    attention is off by <= 1e-6 relative to the largest entry on these
    shapes (measured), so 2e-5 leaves a 20x margin."""
    return 1e-10 if np.dtype(dtype) == np.float64 else 2e-5


def close(actual, expected, dtype, what=""):
    """|a - e| <= t*|e| + t*max|e| (t = tol(dtype)); NaN == NaN, infinities must match."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    fin = expected[np.isfinite(expected)]
    scale = max(1.0, float(np.max(np.abs(fin), initial=0.0)))
    t = tol(dtype)
    try:
        assert_close(actual, expected, rtol=t, atol=t * scale)
    except AssertionError as e:
        raise AssertionError(f"{what}\n{e}") from None


def qkv(rng, B, H, Hkv, N, M, D, Dv=None, dtype=F64, scale=1.0):
    Dv = D if Dv is None else Dv
    q = (rng.normal(size=(B, H, N, D)) * scale).astype(dtype)
    k = (rng.normal(size=(B, Hkv, M, D)) * scale).astype(dtype)
    v = rng.normal(size=(B, Hkv, M, Dv)).astype(dtype)
    return q, k, v


def alibi(H):
    """FlashAttention/ALiBi slopes 2^(-8h/H), h = 1..H (spec B4)."""
    return 2.0 ** (-8.0 * np.arange(1, H + 1) / H)


def random_segments(rng, B, N):
    """Row 0: a source/target split; other rows: arbitrary 0/1 (c = cumsum is still defined)."""
    s = (rng.random((B, N)) < 0.5).astype(np.int64)
    if B:
        s[0] = np.arange(N) >= rng.integers(0, N + 1)
    return s.astype(rng.choice([np.int32, np.int64]))


def key_padding(rng, B, M):
    lengths = rng.integers(0, M + 1, B)
    if B:
        lengths[0] = M
    if B > 1:
        lengths[1] = max(1, lengths[1])
    return masks.padding(lengths, M)


# Mask kinds: name -> (needs N == M, builder(rng, B, H, N, M, dtype, pad) -> kwargs); pad is a
# [B,1,1,M] bool key-padding mask or None.
def _mk_none(rng, B, H, N, M, dt, pad):
    return {} if pad is None else dict(mask=pad)


def _mk_causal(rng, B, H, N, M, dt, pad):
    return dict(causal=True, **_mk_none(rng, B, H, N, M, dt, pad))


def _mk_window(rng, B, H, N, M, dt, pad):
    return dict(window=int(rng.integers(1, 4)), **_mk_none(rng, B, H, N, M, dt, pad))


def _mk_window_causal(rng, B, H, N, M, dt, pad):
    return dict(window=int(rng.integers(1, 5)), causal=True, **_mk_none(rng, B, H, N, M, dt, pad))


def _mk_segment(rng, B, H, N, M, dt, pad):
    return dict(segment_ids=random_segments(rng, B, N), **_mk_none(rng, B, H, N, M, dt, pad))


def _with_pad(m, pad):
    return m if pad is None else m & pad


def _mk_bool_full(rng, B, H, N, M, dt, pad):
    return dict(mask=_with_pad(rng.random((B, H, N, M)) < 0.7, pad))


def _mk_bool_2d(rng, B, H, N, M, dt, pad):
    m = rng.random((N, M)) < 0.6
    return dict(mask=m if pad is None else m[None, None] & pad)


def _mk_bool_heads(rng, B, H, N, M, dt, pad):
    return dict(mask=_with_pad(rng.random((1, H, 1, M)) < 0.7, pad))


def _mk_bias(rng, B, H, N, M, dt, pad):
    bias = rng.normal(size=(B, 1, N, M))
    bias[rng.random(bias.shape) < 0.2] = -np.inf
    if pad is not None:
        bias = np.where(pad, bias, -np.inf)
    return dict(mask=bias.astype(dt))


def _mk_prefix(rng, B, H, N, M, dt, pad):
    return dict(mask=_with_pad(masks.prefix_lm(rng.integers(0, N + 1, B), N)[:, None], pad))


def _mk_permutation(rng, B, H, N, M, dt, pad):
    m = masks.permutation(np.stack([rng.permutation(N) for _ in range(B)]), stream="query")
    return dict(mask=_with_pad(m[:, None], pad))


MASK_KINDS = {
    "nomask": (False, _mk_none),
    "causal": (False, _mk_causal),
    "window": (False, _mk_window),
    "window-causal": (False, _mk_window_causal),
    "segment": (True, _mk_segment),
    "bool-full": (False, _mk_bool_full),
    "bool-2d": (False, _mk_bool_2d),
    "bool-heads": (False, _mk_bool_heads),
    "bias": (False, _mk_bias),
    "prefix-lm": (True, _mk_prefix),
    "permutation-query": (True, _mk_permutation),
}

# (B, H, Hkv, N, M, D, Dv)
MASK_SHAPES = [
    (2, 4, 2, 6, 9, 8, 8),    # N < M, GQA 2
    (2, 2, 2, 7, 7, 16, 16),  # N == M
    (1, 8, 1, 5, 5, 8, 8),    # GQA 8 (multi-query)
    (2, 4, 4, 9, 6, 8, 5),    # N > M (causal rows before M - N are empty), Dv != D
]


def _feature(name, H):
    return {
        "logn": dict(causal=True, logn=512.0),
        "logn-window": dict(causal=True, window=3, logn=16.0),
        "logn-bidir-window": dict(window=2, logn=4.0),
        "logn-nomask": dict(logn=2.0),
        "alibi-causal": dict(causal=True, alibi_slopes=alibi(H)),
        "alibi-bidir": dict(alibi_slopes=alibi(H).astype(np.float32)),
        "rope-half": dict(causal=True, rope=True),
        "rope-interleaved": dict(rope=True, rope_interleaved=True, rope_base=100.0),
        "rope-all": dict(causal=True, window=4, logn=8.0, alibi_slopes=alibi(H), rope=True,
                         rope_base=500.0),
        "scale": dict(causal=True, scale=0.3),
        "scale-0": dict(scale=0.0),
        "scale-large": dict(scale=3.0),
    }[name]


FEATURES = ["logn", "logn-window", "logn-bidir-window", "logn-nomask", "alibi-causal",
            "alibi-bidir", "rope-half", "rope-interleaved", "rope-all", "scale", "scale-0",
            "scale-large"]
FEATURE_SHAPES = [
    (2, 4, 2, 6, 9, 8, 8),
    (1, 2, 2, 1, 9, 8, 8),    # N = 1
    (2, 2, 1, 6, 1, 8, 8),    # M = 1
    (1, 8, 1, 7, 7, 16, 6),   # GQA 8
]


def _cases():
    out = []
    for kind, (square, _) in MASK_KINDS.items():
        for shp in MASK_SHAPES:
            if square and shp[3] != shp[4]:
                continue
            for pad in (False, True):
                out.append((f"{kind}{'+pad' if pad else ''}-{'x'.join(map(str, shp))}", shp, kind, pad,
                            None))
    for feat in FEATURES:
        for shp in FEATURE_SHAPES:
            out.append((f"{feat}-{'x'.join(map(str, shp))}", shp, "nomask", feat == "logn-nomask",
                        feat))
    # logn counts a -inf bias as "not allowed"
    for shp in MASK_SHAPES[:3]:
        out.append((f"bias-logn-{'x'.join(map(str, shp))}", shp, "bias", True, "logn-nomask"))
        out.append((f"bias-logn-window-{'x'.join(map(str, shp))}", shp, "bias", False, "logn-window"))
    for D in (1, 8, 64, 80, 128, 256):
        shp = (1, 2, 1, 9, 11, D, D)
        out.append((f"D{D}-causal+pad", shp, "causal", True, None))
        if D % 2 == 0:
            out.append((f"D{D}-rope", shp, "nomask", False, "rope-half"))
    # several 64-blocks in both directions, and a decode-like row
    out.append(("blocks-300-causal+pad", (1, 2, 1, 300, 300, 64, 64), "causal", True, None))
    out.append(("blocks-70x130-window", (1, 1, 1, 70, 130, 32, 32), "window-causal", False, None))
    out.append(("blocks-70x130-bias", (2, 2, 1, 70, 130, 16, 16), "bias", True, None))
    out.append(("N1-M200-causal", (2, 4, 2, 1, 200, 64, 64), "causal", True, None))
    return out


CASES = _cases()


def make_case(case, dtype):
    desc, (B, H, Hkv, N, M, D, Dv), kind, pad, feat = case
    rng = _rng(desc, np.dtype(dtype).name)
    q, k, v = qkv(rng, B, H, Hkv, N, M, D, Dv, dtype)
    padm = key_padding(rng, B, M) if pad else None
    kw = MASK_KINDS[kind][1](rng, B, H, N, M, dtype, padm)
    if feat is not None:
        kw.update(_feature(feat, H))
    return q, k, v, kw


# ----------------------------------------------------------------------------
# spec oracles (B2, B5)

SPEC_Q = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0.5, -0.5, 1]])
SPEC_K = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [-1, 0.5, 0.5]])
SPEC_V = np.array([[1, 2], [0, 1], [-1, 0], [2, -1]], dtype=np.float64)
SPEC_SEG = np.array([[0, 0, 1, 1]])
UNILM_O = [[0.5, 1.5], [0.5, 1.5], [0.206625, 1.206625], [0.063422, 0.442667]]
BIDIR_O = [[0.014262, 0.613856], [0.585122, 0.679852], [0.386144, 0.985738], [0.063422, 0.442667]]
P_ROW2 = [0.471083, 0.264458, 0.264458, 0.0]


def assert_6dp(actual, expected):
    """The spec's worked numbers are rounded to 6 decimals."""
    assert_close(np.asarray(actual, dtype=np.float64), np.asarray(expected, float), rtol=0, atol=1.5e-6)


def _spec(dtype=F64):
    return tuple(x[None, None].astype(dtype) for x in (SPEC_Q, SPEC_K, SPEC_V))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_spec_b2_vector(impl, dtype):
    q, k, v = _spec(dtype)
    # lambda = 1/sqrt(3) is the default scale for D = 3
    assert_6dp(impl.sdpa(q, k, v, segment_ids=SPEC_SEG)[0, 0], UNILM_O)
    assert_6dp(impl.sdpa(q, k, v, mask=masks.unilm(SPEC_SEG[0]))[0, 0], UNILM_O)
    assert_6dp(impl.sdpa(q, k, v, scale=1 / math.sqrt(3))[0, 0], BIDIR_O)
    causal_o = impl.sdpa(q, k, v, causal=True)[0, 0]
    assert_6dp(causal_o[:2], [[1, 2], [0.5, 1.5]])
    assert_6dp(causal_o[2:], UNILM_O[2:])
    # P row 2 of the UniLM softmax: exp(s_2j - lse_2)
    _, lse = impl.sdpa(q, k, v, segment_ids=SPEC_SEG, return_lse=True)
    s2 = SPEC_Q[2] @ SPEC_K.T / math.sqrt(3)
    p2 = np.where(masks.unilm(SPEC_SEG[0])[2], np.exp(s2 - float(lse[0, 0, 2])), 0.0)
    assert_6dp(p2, P_ROW2)
    # ... and the same row through the output: P row 2 @ V
    assert_6dp(np.asarray(P_ROW2) @ SPEC_V, UNILM_O[2])


def test_spec_b2_masks():
    one = lambda rows: np.array([[c == "1" for c in r] for r in rows])  # noqa: E731
    np.testing.assert_array_equal(masks.unilm([0, 0, 1, 1]), one(["1100", "1100", "1110", "1111"]))
    np.testing.assert_array_equal(masks.permutation([2, 0, 3, 1]),
                                  one(["1010", "1111", "0010", "1011"]))
    np.testing.assert_array_equal(masks.permutation([2, 0, 3, 1], stream="query"),
                                  one(["0010", "1011", "0000", "1010"]))
    np.testing.assert_array_equal(masks.causal(4), one(["1000", "1100", "1110", "1111"]))
    # local window, causal: 0 <= i - j < w
    np.testing.assert_array_equal(masks.window(4, 2, causal=True), one(["1000", "1100", "0110", "0011"]))


def test_spec_b2_permutation_through_sdpa(impl):
    """The query stream of pi = [2, 0, 3, 1]: row 2 (generated first) sees nothing -> 0."""
    q, k, v = _spec()
    mq = masks.permutation([2, 0, 3, 1], stream="query")
    out, lse = impl.sdpa(q, k, v, mask=mq, return_lse=True)
    np.testing.assert_array_equal(out[0, 0, 2], [0.0, 0.0])
    assert lse[0, 0, 2] == -np.inf
    # row 0 sees only key 2 -> exactly v_2
    assert_6dp(out[0, 0, 0], SPEC_V[2])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_spec_b3_logn_factors(impl, dtype):
    """logn=512: the scale of a query that sees n keys is multiplied by log(n)/log(512)
    (spec B3: n=16 -> 0.4444, 64 -> 0.6667, 512 -> 1, 4096 -> 1.3333). With n equal keys
    and q.k = c: lse = factor * scale * c + log(n)."""
    for n, want in ((16, 0.4444), (64, 0.6667), (512, 1.0), (4096, 1.3333)):
        q = np.full((1, 1, 1, 4), 0.5, dtype)
        k = np.ones((1, 1, n, 4), dtype)
        v = np.ones((1, 1, n, 1), dtype)
        _, lse = impl.sdpa(q, k, v, logn=512.0, return_lse=True)
        factor = (float(lse[0, 0, 0]) - math.log(n)) / (0.5 * 2.0)  # scale 1/2, q.k = 2
        # the spec rounds to 4 decimals; equal logits make every exp exactly 1
        assert abs(factor - want) < 6e-5, (n, factor)
        # through a window of n keys inside a longer sequence (the "super baseline")
        k2 = np.ones((1, 1, 2 * n, 4), dtype)
        _, lse2 = impl.sdpa(q, k2, np.ones((1, 1, 2 * n, 1), dtype), window=n, logn=512.0,
                            return_lse=True)
        assert_close(lse2, lse, rtol=1e-5 if dtype == F32 else 1e-12, atol=0)


SPEC_ROPE_INTER = [-2.234742, 0.077004, 2.919405, 4.059196]
SPEC_ROPE_HALF = [-3.144039, 1.919605, -0.339143, 4.039197]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_spec_b5_rope(impl, dtype):
    x = np.array([[1.0, 2, 3, 4]], dtype)
    assert_6dp(impl.rope(x, np.array([2]), interleaved=True)[0], SPEC_ROPE_INTER)
    assert_6dp(impl.rope(x, np.array([2.0]), interleaved=False)[0], SPEC_ROPE_HALF)
    assert_6dp(impl.rope(x, np.array([2]))[0], SPEC_ROPE_HALF)  # default: rotate-half
    # positions default to 0..N-1: row 2 of a 3-row x
    x3 = np.repeat(x, 3, axis=0)
    assert_6dp(impl.rope(x3, interleaved=True)[2], SPEC_ROPE_INTER)
    assert impl.rope(x3).dtype == np.dtype(dtype)


def test_spec_rope_inside_sdpa(impl):
    """rope=True equals sdpa on q rotated at i' = i + M - N and k rotated at j."""
    rng = _rng("rope-inside")
    for inter in (False, True):
        for N, M in ((5, 5), (3, 8), (1, 6)):
            q, k, v = qkv(rng, 2, 4, 2, N, M, 8)
            qr = impl.rope(q, np.arange(N) + (M - N), base=300.0, interleaved=inter)
            kr = impl.rope(k, base=300.0, interleaved=inter)
            want = impl.sdpa(qr, kr, v, causal=True)
            got = impl.sdpa(q, k, v, causal=True, rope=True, rope_base=300.0, rope_interleaved=inter)
            close(got, want, F64, f"rope inside sdpa inter={inter} N={N} M={M}")


# ----------------------------------------------------------------------------
# the twin against a brute-force per-element oracle (loops, written from the contract)


def brute_sdpa(q, k, v, causal=False, mask=None, segment_ids=None, window=None, scale=None,
               logn=None, alibi_slopes=None):
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    B, H, N, D = q.shape
    Hkv, M, Dv = k.shape[1], k.shape[2], v.shape[3]
    lam = 1 / math.sqrt(D) if scale is None else scale
    m = None if mask is None else np.broadcast_to(mask, (B, H, N, M))
    slopes = None if alibi_slopes is None else np.asarray(alibi_slopes, np.float64)
    out = np.zeros((B, H, N, Dv))
    lse = np.full((B, H, N), -np.inf)
    for b in range(B):
        c = None if segment_ids is None else np.cumsum(segment_ids[b])
        for h in range(H):
            hk = h // (H // Hkv)
            for i in range(N):
                ip = i + M - N
                allowed, bias = [], []
                for j in range(M):
                    ok = True
                    if causal and j > ip:
                        ok = False
                    if window is not None and abs(ip - j) >= window:
                        ok = False
                    if c is not None and c[j] > c[i]:
                        ok = False
                    bj = 0.0
                    if m is not None:
                        if m.dtype == bool:
                            ok = ok and bool(m[b, h, i, j])
                        else:
                            bj = float(m[b, h, i, j])
                            ok = ok and bj != -np.inf
                    if ok:
                        allowed.append(j)
                        bias.append(bj)
                n = len(allowed)
                if n == 0:
                    continue
                lam_i = lam * (math.log(n) / math.log(logn) if logn else 1.0)
                s = []
                for j, bj in zip(allowed, bias):
                    sj = lam_i * float(q[b, h, i] @ k[b, hk, j]) + bj
                    if slopes is not None:
                        sj -= float(slopes[h]) * abs(ip - j)
                    s.append(sj)
                s = np.array(s)
                mx = s.max()
                p = np.exp(s - mx)
                lse[b, h, i] = mx + math.log(p.sum())
                out[b, h, i] = (p / p.sum()) @ v[b, hk, allowed]
    return out, lse


@pytest.mark.parametrize("case", [c for c in CASES if "rope" not in (c[4] or "")
                                  and c[1][3] * c[1][4] <= 200], ids=lambda c: c[0])
def test_reference_matches_brute_force(case):
    q, k, v, kw = make_case(case, F64)
    out, lse = ref.sdpa(q, k, v, return_lse=True, **kw)
    bo, bl = brute_sdpa(q, k, v, **kw)
    close(out, bo, F64, "out")
    close(lse, bl, F64, "lse")


# ----------------------------------------------------------------------------
# core vs the twin


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_sdpa_core_matches_reference(core, case, dtype):
    q, k, v, kw = make_case(case, dtype)
    out, lse = core.sdpa(q, k, v, return_lse=True, **kw)
    ro, rl = ref.sdpa(q, k, v, return_lse=True, **kw)
    assert out.shape == ro.shape and lse.shape == rl.shape
    close(out, ro, dtype, "out")
    close(lse, rl, dtype, "lse")
    plain = core.sdpa(q, k, v, **kw)
    assert isinstance(plain, np.ndarray) and plain.tobytes() == out.tobytes()


def _dout(q, v, dtype):
    B, H, N = q.shape[:3]
    return _rng("dout", q.shape, v.shape).normal(size=(B, H, N, v.shape[3])).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_sdpa_backward_core_matches_reference(core, case, dtype):
    q, k, v, kw = make_case(case, dtype)
    out, lse = ref.sdpa(q, k, v, return_lse=True, **kw)
    dout = _dout(q, v, dtype)
    got = core.sdpa_backward(q, k, v, out, lse, dout, **kw)
    want = ref.sdpa_backward(q, k, v, out, lse, dout, **kw)
    for name, a, e in zip(("dq", "dk", "dv"), got, want):
        assert a.shape == e.shape, name
        close(a, e, dtype, name)


# ----------------------------------------------------------------------------
# backward vs finite differences (float64, tiny sizes)

FD_CASES = {
    "plain": ((1, 2, 2, 3, 4, 4, 3), {}),
    "causal-NltM": ((1, 2, 1, 3, 5, 4, 2), dict(causal=True)),
    "gqa-causal-window": ((2, 4, 2, 4, 4, 2, 3), dict(causal=True, window=2)),
    "rope-half": ((1, 2, 1, 3, 4, 4, 2), dict(causal=True, rope=True, rope_base=10.0)),
    "rope-interleaved": ((1, 1, 1, 4, 4, 6, 2), dict(rope=True, rope_interleaved=True, rope_base=7.0)),
    "logn": ((1, 2, 2, 4, 4, 3, 2), dict(causal=True, logn=3.0)),
    "logn-window": ((1, 1, 1, 5, 5, 2, 2), dict(window=2, logn=2.5)),
    "alibi": ((1, 4, 2, 3, 5, 3, 2), dict(alibi_slopes=alibi(4))),
    "bias": ((1, 2, 1, 3, 4, 3, 2), "bias"),
    "segment": ((2, 1, 1, 4, 4, 3, 2), "segment"),
    "empty-row": ((1, 1, 1, 3, 3, 2, 2), "empty"),
    "everything": ((1, 4, 2, 4, 6, 4, 3), dict(causal=True, window=3, logn=2.0, rope=True,
                                               alibi_slopes=alibi(4), scale=0.7)),
}


def _fd_case(name):
    (B, H, Hkv, N, M, D, Dv), kw = FD_CASES[name]
    rng = _rng("fd", name)
    q, k, v = qkv(rng, B, H, Hkv, N, M, D, Dv)
    if kw == "bias":
        bias = rng.normal(size=(B, H, N, M))
        bias[0, 0, 1, 2] = -np.inf
        kw = dict(mask=bias)
    elif kw == "segment":
        kw = dict(segment_ids=np.array([[0, 0, 1, 1], [0, 1, 1, 1]]))
    elif kw == "empty":
        m = np.ones((N, M), bool)
        m[1] = False
        kw = dict(mask=m)
    return q, k, v, dict(kw)


@pytest.mark.parametrize("name", list(FD_CASES))
def test_backward_matches_finite_differences(impl, name):
    q, k, v, kw = _fd_case(name)
    dout = _dout(q, v, F64)

    def f(q_, k_, v_):
        return float(np.sum(ref.sdpa(q_, k_, v_, **kw) * dout))

    out, lse = impl.sdpa(q, k, v, return_lse=True, **kw)
    grads = impl.sdpa_backward(q, k, v, out, lse, dout, **kw)
    h = 1e-6
    for which, (x, g) in enumerate(zip((q, k, v), grads)):
        fd = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            args_p = [q, k, v]
            args_m = [q, k, v]
            xp, xm = x.copy(), x.copy()
            xp[idx] += h
            xm[idx] -= h
            args_p[which], args_m[which] = xp, xm
            fd[idx] = (f(*args_p) - f(*args_m)) / (2 * h)
        assert_close(g, fd, rtol=1e-6, atol=1e-7 * max(1.0, np.abs(fd).max()))
        assert np.isfinite(g).all()


def test_fully_masked_rows_give_zero_grads(impl):
    rng = _rng("fully-masked")
    q, k, v = qkv(rng, 2, 2, 1, 5, 6, 4)
    m = rng.random((2, 2, 5, 6)) < 0.7
    m[:, :, 3] = False            # row 3 of every head sees nothing
    m[1, 0, 0] = False
    bias = np.where(rng.random((2, 1, 5, 6)) < 0.5, 0.0, -np.inf)
    bias[:, :, 2] = -np.inf       # row 2 all -inf through the float mask
    for kw in (dict(mask=m), dict(mask=bias), dict(mask=m, logn=2.0, rope=True)):
        out, lse = impl.sdpa(q, k, v, return_lse=True, **kw)
        assert np.isfinite(out).all()
        rows = [3] if kw["mask"] is m else [2]
        for r in rows:
            assert (out[:, :, r] == 0).all() and (lse[:, :, r] == -np.inf).all()
        dout = _dout(q, v, F64)
        dq, dk, dv = impl.sdpa_backward(q, k, v, out, lse, dout, **kw)
        for g in (dq, dk, dv):
            assert np.isfinite(g).all()
        for r in rows:
            assert (dq[:, :, r] == 0).all()
    # a key nobody may see gets zero dk, dv
    m2 = np.ones((5, 6), bool)
    m2[:, 4] = False
    out, lse = impl.sdpa(q, k, v, mask=m2, return_lse=True)
    _, dk, dv = impl.sdpa_backward(q, k, v, out, lse, _dout(q, v, F64), mask=m2)
    assert (dk[:, :, 4] == 0).all() and (dv[:, :, 4] == 0).all()


# ----------------------------------------------------------------------------
# decode


DECODE_CASES = [
    ("plain", (3, 4, 2, 9, 8, 8), {}),
    ("gqa8", (2, 8, 1, 12, 16, 4), {}),
    ("window", (3, 4, 4, 9, 8, 8), dict(window=3)),
    ("logn", (3, 2, 1, 9, 8, 8), dict(logn=4.0)),
    ("logn-window", (3, 2, 2, 9, 8, 8), dict(logn=4.0, window=4)),
    ("alibi", (3, 4, 2, 9, 8, 8), dict(alibi_slopes=alibi(4))),
    ("scale", (3, 2, 1, 9, 8, 5), dict(scale=0.5)),
    ("all", (4, 4, 2, 70, 64, 64), dict(window=33, logn=32.0, alibi_slopes=alibi(4), scale=0.2)),
    ("long", (2, 2, 1, 300, 32, 32), {}),
]


def _decode_case(name, shape, dtype):
    B, H, Hkv, Mmax, D, Dv = shape
    rng = _rng("decode", name, np.dtype(dtype).name)
    q = rng.normal(size=(B, H, D)).astype(dtype)
    kc = rng.normal(size=(B, Hkv, Mmax, D)).astype(dtype)
    vc = rng.normal(size=(B, Hkv, Mmax, Dv)).astype(dtype)
    lengths = rng.integers(0, Mmax + 1, B)
    lengths[0] = Mmax
    lengths[1] = 0 if B > 2 else 1
    if B > 2:
        lengths[2] = 1
    return q, kc, vc, lengths.astype(rng.choice([np.int32, np.int64]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", DECODE_CASES, ids=lambda c: c[0])
def test_decode_matches_sdpa_per_row(impl, case, dtype):
    name, shape, kw = case
    q, kc, vc, lengths = _decode_case(name, shape, dtype)
    out, lse = impl.decode(q, kc, vc, lengths, return_lse=True, **kw)
    assert out.shape == (q.shape[0], q.shape[1], vc.shape[3]) and out.dtype == q.dtype
    assert lse.shape == q.shape[:2] and lse.dtype == q.dtype
    for b, L in enumerate(lengths):
        if L == 0:
            assert (out[b] == 0).all() and (lse[b] == -np.inf).all()
            continue
        o, s = ref.sdpa(q[b:b + 1, :, None], kc[b:b + 1, :, :L], vc[b:b + 1, :, :L], causal=True,
                        return_lse=True, **kw)
        close(out[b], o[0, :, 0], dtype, f"row {b} out")
        close(lse[b], s[0, :, 0], dtype, f"row {b} lse")
    plain = impl.decode(q, kc, vc, lengths, **kw)
    assert isinstance(plain, np.ndarray)
    close(plain, out, dtype, "return_lse=False")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", DECODE_CASES, ids=lambda c: c[0])
def test_decode_core_matches_reference(core, case, dtype):
    name, shape, kw = case
    q, kc, vc, lengths = _decode_case(name, shape, dtype)
    out, lse = core.decode(q, kc, vc, lengths, return_lse=True, **kw)
    ro, rl = ref.decode(q, kc, vc, lengths, return_lse=True, **kw)
    close(out, ro, dtype, "out")
    close(lse, rl, dtype, "lse")


def test_decode_ignores_the_cache_beyond_lengths(impl):
    """Cache slots at and after lengths[b] are not read: NaN there changes nothing."""
    q, kc, vc, lengths = _decode_case("plain", (3, 4, 2, 9, 8, 8), F64)
    want = impl.decode(q, kc, vc, lengths)
    kc2, vc2 = kc.copy(), vc.copy()
    for b, L in enumerate(lengths):
        kc2[b, :, L:] = np.nan
        vc2[b, :, L:] = np.nan
    got = impl.decode(q, kc2, vc2, lengths)
    assert got.tobytes() == want.tobytes()


def test_decode_equals_last_row_of_causal_sdpa(impl):
    """With every length = Mmax, decode is the last query of a causal prefill."""
    rng = _rng("decode-prefill")
    q, k, v = qkv(rng, 2, 4, 2, 10, 10, 8)
    full = impl.sdpa(q, k, v, causal=True, window=4, logn=3.0, alibi_slopes=alibi(4))
    got = impl.decode(q[:, :, -1], k, v, np.array([10, 10]), window=4, logn=3.0,
                      alibi_slopes=alibi(4))
    close(got, full[:, :, -1], F64, "decode vs prefill")


# ----------------------------------------------------------------------------
# rope


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_core_matches_reference(core, dtype, interleaved):
    rng = _rng("rope", np.dtype(dtype).name, interleaved)
    x = rng.normal(size=(2, 3, 7, 16)).astype(dtype)
    cases = [None, np.arange(7) + 3, (rng.random(7) * 100).astype(np.float32),
             rng.integers(-50, 5000, (2, 3, 7)).astype(np.int32), rng.normal(size=(2, 1, 7)) * 1e4,
             np.array(5), np.float64(2.5)]
    for pos in cases:
        for base in (10000.0, 1.5, 500000.0):
            got = core.rope(x, pos, base=base, interleaved=interleaved)
            close(got, ref.rope(x, pos, base=base, interleaved=interleaved), dtype,
                  f"positions {pos!r} base {base}")
    close(core.rope(x[..., :2], interleaved=interleaved),
          ref.rope(x[..., :2], interleaved=interleaved), dtype, "D=2")
    close(core.rope(x.reshape(42, 16)), ref.rope(x.reshape(42, 16)), dtype, "2-D")


def rotation(p, D, base=10000.0, interleaved=False):
    """The D x D RoPE matrix R_p (spec B5)."""
    R = np.eye(D)
    for r in range(D // 2):
        a, b = (2 * r, 2 * r + 1) if interleaved else (r, r + D // 2)
        theta = p * base ** (-2.0 * r / D)
        R[a, a], R[a, b] = math.cos(theta), -math.sin(theta)
        R[b, a], R[b, b] = math.sin(theta), math.cos(theta)
    return R


@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_properties(impl, interleaved):
    rng = _rng("rope-props", interleaved)
    D = 8
    x = rng.normal(size=(2, 5, D))
    # explicit rotation matrices
    y = impl.rope(x, interleaved=interleaved, base=50.0)
    for n in range(5):
        close(y[:, n], x[:, n] @ rotation(n, D, 50.0, interleaved).T, F64, f"R_{n}")
    # positions: int array, float array, broadcast, scalar all agree with the matrix form
    pos = np.array([3, -1, 0, 7, 2])
    for p in (pos, pos.astype(np.float32), np.broadcast_to(pos, (2, 5)).copy()):
        close(impl.rope(x, p, interleaved=interleaved), np.stack(
            [x[:, n] @ rotation(pos[n], D, interleaved=interleaved).T for n in range(5)], 1), F64,
            "positions")
    close(impl.rope(x, 4, interleaved=interleaved), x @ rotation(4, D, interleaved=interleaved).T, F64,
          "scalar position")
    # inverse
    p = rng.normal(size=(2, 5)) * 100
    close(impl.rope(impl.rope(x, p, interleaved=interleaved), -p, interleaved=interleaved), x, F64,
          "inverse")
    # norms are kept
    close(np.linalg.norm(impl.rope(x, p, interleaved=interleaved), axis=-1),
          np.linalg.norm(x, axis=-1), F64, "norm")
    # relative position: (R_m q).(R_n k) depends only on n - m
    q, k = rng.normal(size=D), rng.normal(size=D)
    qq, kk = np.tile(q, (12, 1)), np.tile(k, (12, 1))
    ms = np.array([0, 5, 11, 100, -3, 40, 7, 1, 2, 3, 4, 1000])
    for shift in (0, 3, -2):
        dots = np.sum(impl.rope(qq, ms, interleaved=interleaved)
                      * impl.rope(kk, ms + shift, interleaved=interleaved), -1)
        close(dots, np.full(12, q @ rotation(shift, D, interleaved=interleaved) @ k), F64,
              f"relative {shift}")
    # N = 0 and an empty batch
    assert impl.rope(np.zeros((3, 0, 4))).shape == (3, 0, 4)
    assert impl.rope(np.zeros((0, 2, 4)), interleaved=interleaved).shape == (0, 2, 4)


# ----------------------------------------------------------------------------
# masks module


def test_masks_brute_force():
    rng = _rng("masks")
    for N in (0, 1, 4, 7):
        for M in (0, 1, 4, 9):
            c = masks.causal(N, M)
            assert c.dtype == bool and c.shape == (N, M)
            for w in (1, 2, 5):
                for cz in (False, True):
                    wm = masks.window(N, w, M, causal=cz)
                    assert wm.shape == (N, M)
                    for i in range(N):
                        for j in range(M):
                            ip = i + M - N
                            assert c[i, j] == (j <= ip)
                            assert wm[i, j] == (abs(ip - j) < w and (not cz or j <= ip))
        np.testing.assert_array_equal(masks.causal(N), masks.causal(N, N))
        for _ in range(3):
            s = rng.integers(0, 2, (2, N))
            u = masks.unilm(s)
            assert u.shape == (2, N, N)
            for b in range(2):
                for i in range(N):
                    for j in range(N):
                        assert u[b, i, j] == (s[b, :j + 1].sum() <= s[b, :i + 1].sum())
            p = rng.integers(0, N + 1, 3)
            pl = masks.prefix_lm(p, N)
            assert pl.shape == (3, N, N)
            for b in range(3):
                for i in range(N):
                    for j in range(N):
                        assert pl[b, i, j] == (j < p[b] or j <= i)
                # prefix-LM is UniLM with segments [0]*p + [1]*(N-p)
                seg = (np.arange(N) >= p[b]).astype(np.int64)
                np.testing.assert_array_equal(pl[b], masks.unilm(seg))
            order = rng.permutation(N)
            rank = {int(j): t for t, j in enumerate(order)}
            for stream in ("content", "query"):
                pm = masks.permutation(order, stream=stream)
                assert pm.shape == (N, N)
                for j in range(N):
                    for kk in range(N):
                        want = rank[kk] <= rank[j] if stream == "content" else rank[kk] < rank[j]
                        assert pm[j, kk] == want
            batch = np.stack([order, rng.permutation(N)])
            np.testing.assert_array_equal(masks.permutation(batch)[0], masks.permutation(order))
        for M in (0, 3, 6):
            lengths = rng.integers(0, M + 1, 4)
            pd = masks.padding(lengths, M)
            assert pd.shape == (4, 1, 1, M)
            for b in range(4):
                for j in range(M):
                    assert pd[b, 0, 0, j] == (j < lengths[b])


def test_masks_docstring_examples():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(masks, globs={"np": np})
    assert sum(len(t.examples) for t in tests) >= 10
    for t in tests:
        runner.run(t)
    assert runner.failures == 0


def test_reference_docstring_examples():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for t in finder.find(ref, globs={"np": np}):
        runner.run(t)
    assert runner.failures == 0


MASK_ERRORS = [
    (masks.causal, (-1,), {}, ValueError, "N"),
    (masks.causal, (2.0,), {}, TypeError, "N"),
    (masks.causal, (3, -2), {}, ValueError, "M"),
    (masks.causal, (True,), {}, TypeError, "N"),
    (masks.window, (4, 0), {}, ValueError, "w"),
    (masks.window, (4, 1.5), {}, TypeError, "w"),
    (masks.window, (-4, 2), {}, ValueError, "N"),
    (masks.window, (4, 2, -1), {}, ValueError, "M"),
    (masks.unilm, ([0, 2, 1],), {}, ValueError, "segment_ids"),
    (masks.unilm, ([0.0, 1.0],), {}, TypeError, "segment_ids"),
    (masks.unilm, (np.int64(0),), {}, ValueError, "segment_ids"),
    (masks.prefix_lm, ([5], 4), {}, ValueError, "prefix_lengths"),
    (masks.prefix_lm, ([-1], 4), {}, ValueError, "prefix_lengths"),
    (masks.prefix_lm, ([[1]], 4), {}, ValueError, "prefix_lengths"),
    (masks.prefix_lm, ([1.5], 4), {}, TypeError, "prefix_lengths"),
    (masks.prefix_lm, ([1], -4), {}, ValueError, "N"),
    (masks.padding, ([4], 3), {}, ValueError, "lengths"),
    (masks.padding, ([-1], 3), {}, ValueError, "lengths"),
    (masks.padding, ([1.0], 3), {}, TypeError, "lengths"),
    (masks.padding, ([[1]], 3), {}, ValueError, "lengths"),
    (masks.padding, ([1], 3.0), {}, TypeError, "M"),
    (masks.permutation, ([0, 0, 1],), {}, ValueError, "order"),
    (masks.permutation, ([0, 3, 1],), {}, ValueError, "order"),
    (masks.permutation, ([0.0, 1.0],), {}, TypeError, "order"),
    (masks.permutation, ([0, 1],), dict(stream="key"), ValueError, "stream"),
]


@pytest.mark.parametrize("err", MASK_ERRORS, ids=lambda e: f"{e[0].__name__}-{e[4]}-{e[3].__name__}")
def test_masks_bad_inputs(err):
    fn, args, kw, exc, arg = err
    with pytest.raises(exc, match=rf"^\[kexue\.attention\.masks\.{fn.__name__}\] {arg}\b"):
        fn(*args, **kw)


def test_masks_match_sdpa_flags(impl):
    rng = _rng("masks-vs-flags")
    for N, M in ((6, 6), (4, 9), (9, 4), (1, 7)):
        q, k, v = qkv(rng, 2, 4, 2, N, M, 8)
        for flags, m in [
            (dict(causal=True), masks.causal(N, M)),
            (dict(window=3), masks.window(N, 3, M)),
            (dict(window=2, causal=True), masks.window(N, 2, M, causal=True)),
        ]:
            a, la = impl.sdpa(q, k, v, return_lse=True, **flags)
            b, lb = impl.sdpa(q, k, v, mask=m, return_lse=True)
            close(a, b, F64, f"{flags} N={N} M={M}")
            close(la, lb, F64, f"{flags} lse")
            # logn counts the same visible keys
            close(impl.sdpa(q, k, v, logn=5.0, **flags), impl.sdpa(q, k, v, mask=m, logn=5.0), F64,
                  f"{flags} logn")
        if N == M:
            seg = random_segments(rng, 2, N)
            a = impl.sdpa(q, k, v, segment_ids=seg)
            close(a, impl.sdpa(q, k, v, mask=masks.unilm(seg)[:, None]), F64, "unilm")
            # a float mask of 0 / -inf equals the bool mask
            bias = np.where(masks.unilm(seg)[:, None], 0.0, -np.inf)
            close(a, impl.sdpa(q, k, v, mask=bias), F64, "unilm as bias")
            close(impl.sdpa(q, k, v, segment_ids=seg, logn=6.0), impl.sdpa(q, k, v, mask=bias, logn=6.0),
                  F64, "unilm as bias, logn")
            lengths = rng.integers(1, M + 1, 2)
            pad = masks.padding(lengths, M)
            close(impl.sdpa(q, k, v, segment_ids=seg, mask=pad, logn=3.0),
                  impl.sdpa(q, k, v, mask=masks.unilm(seg)[:, None] & pad, logn=3.0), F64, "unilm+pad")


# ----------------------------------------------------------------------------
# determinism


def test_core_threads_bitwise_equal(core):
    import kexue

    rng = _rng("threads")
    before = kexue.get_num_threads()
    try:
        for dtype in DTYPES:
            q, k, v = qkv(rng, 1, 4, 2, 200, 200, 64, dtype=dtype)
            pad = masks.padding(np.array([170]), 200)
            dout = rng.normal(size=q.shape).astype(dtype)
            kc = rng.normal(size=(3, 2, 2000, 64)).astype(dtype)
            vc = rng.normal(size=(3, 2, 2000, 64)).astype(dtype)
            qd = rng.normal(size=(3, 4, 64)).astype(dtype)
            lengths = np.array([2000, 1, 1337])
            kws = [dict(), dict(causal=True), dict(causal=True, mask=pad, logn=64.0, rope=True),
                   dict(window=50, alibi_slopes=alibi(4))]
            results = {}
            for n in (1, 2):
                kexue.set_num_threads(n)
                r = []
                for kw in kws:
                    out, lse = core.sdpa(q, k, v, return_lse=True, **kw)
                    r += [out, lse, *core.sdpa_backward(q, k, v, out, lse, dout, **kw)]
                r += list(core.decode(qd, kc, vc, lengths, return_lse=True))
                r += list(core.decode(qd, kc, vc, lengths, window=300, logn=100.0, return_lse=True))
                results[n] = r
            for a, b in zip(results[1], results[2]):
                assert a.dtype == b.dtype and a.shape == b.shape
                assert a.tobytes() == b.tobytes()
    finally:
        kexue.set_num_threads(before)


# ----------------------------------------------------------------------------
# edge cases


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_empty_axes(impl, dtype):
    rng = _rng("empty")
    for (B, H, Hkv, N, M, D, Dv) in [(2, 2, 1, 3, 0, 4, 5), (2, 2, 1, 0, 3, 4, 5), (0, 2, 2, 3, 3, 4, 4),
                                     (1, 1, 1, 0, 0, 4, 4)]:
        q, k, v = qkv(rng, B, H, Hkv, N, M, D, Dv, dtype)
        for kw in (dict(), dict(causal=True, logn=2.0, rope=True)):
            out, lse = impl.sdpa(q, k, v, return_lse=True, **kw)
            assert out.shape == (B, H, N, Dv) and out.dtype == np.dtype(dtype)
            assert lse.shape == (B, H, N) and lse.dtype == np.dtype(dtype)
            assert (out == 0).all() if M == 0 else np.isfinite(out).all()
            if M == 0:
                assert (lse == -np.inf).all()
            dout = np.ones(out.shape, dtype)
            dq, dk, dv = impl.sdpa_backward(q, k, v, out, lse, dout, **kw)
            assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
            for g in (dq, dk, dv):
                assert g.dtype == np.dtype(dtype) and np.isfinite(g).all()
            if M == 0 or N == 0:
                assert not dq.any() and not dk.any() and not dv.any()
    # decode with an empty batch and an empty cache
    assert impl.decode(np.zeros((0, 2, 4), dtype), np.zeros((0, 1, 3, 4), dtype),
                       np.zeros((0, 1, 3, 4), dtype), np.zeros(0, np.int64)).shape == (0, 2, 4)
    out, lse = impl.decode(np.ones((2, 2, 4), dtype), np.zeros((2, 1, 0, 4), dtype),
                           np.zeros((2, 1, 0, 3), dtype), np.zeros(2, np.int64), return_lse=True)
    assert out.shape == (2, 2, 3) and not out.any() and (lse == -np.inf).all()


def test_one_head_one_key(impl):
    """M = 1: the output is v_0 wherever the key is visible, lse = the single logit."""
    rng = _rng("one")
    q, k, v = qkv(rng, 1, 1, 1, 3, 1, 4)
    out, lse = impl.sdpa(q, k, v, return_lse=True, scale=0.5)
    close(out[0, 0], np.repeat(v[0, 0], 3, 0), F64, "out")
    close(lse[0, 0], 0.5 * q[0, 0] @ k[0, 0, 0], F64, "lse")
    # causal with N = 3 > M = 1: only the last query sees the key
    out, lse = impl.sdpa(q, k, v, causal=True, return_lse=True)
    assert (out[0, 0, :2] == 0).all() and (lse[0, 0, :2] == -np.inf).all()
    close(out[0, 0, 2], v[0, 0, 0], F64, "last row")
    # logn with n_i = 1: factor log(1) = 0, lse = 0
    _, lse = impl.sdpa(q, k, v, logn=2.0, return_lse=True)
    assert (lse == 0).all()


def test_nan_inputs_propagate(impl):
    rng = _rng("nan")
    q, k, v = qkv(rng, 1, 2, 1, 4, 5, 4)
    q[0, 0, 1, 2] = np.nan
    out, lse = impl.sdpa(q, k, v, return_lse=True)
    assert np.isnan(out[0, 0, 1]).all() and np.isnan(lse[0, 0, 1])
    assert np.isfinite(out[0, 1]).all()  # the other head is untouched
    k2 = k.copy()
    k2[0, 0, 3, 0] = np.nan
    out = impl.sdpa(q * 0 + 1, k2, v)
    assert np.isnan(out).all()  # every query sees key 3
    v2 = v.copy()
    v2[0, 0, 0, 1] = np.nan
    out = impl.sdpa(np.ones_like(q), k, v2)
    assert np.isnan(out[..., 1]).all() and np.isfinite(out[..., 0]).all()
    # the backward does not raise either
    out, lse = impl.sdpa(q, k, v, return_lse=True)
    dq, dk, dv = impl.sdpa_backward(q, k, v, out, lse, np.ones_like(out))
    assert np.isnan(dq[0, 0, 1]).all()
    assert np.isnan(impl.decode(q[:, :, 1], k, v, np.array([5]))[0, 0]).all()


def test_large_logits_do_not_overflow(impl):
    rng = _rng("large")
    q, k, v = qkv(rng, 1, 2, 1, 6, 7, 8, scale=30.0)
    for dtype in DTYPES:
        out, lse = impl.sdpa(q.astype(dtype), k.astype(dtype), v.astype(dtype), causal=True,
                             return_lse=True)
        assert np.isfinite(out).all() and np.isfinite(lse).all()
        ro, rl = ref.sdpa(q.astype(dtype), k.astype(dtype), v.astype(dtype), causal=True,
                          return_lse=True)
        # lse ~ 1e3 here: compare relative to it
        close(lse, rl, dtype, "lse")
        close(out, ro, dtype, "out")


# ----------------------------------------------------------------------------
# bad inputs


def _z(*shape, dtype=F64):
    return np.zeros(shape, dtype)


Q, K, V = _z(2, 4, 3, 8), _z(2, 2, 5, 8), _z(2, 2, 5, 6)
OUT, LSE, DOUT = _z(2, 4, 3, 6), _z(2, 4, 3), _z(2, 4, 3, 6)
QD, KC, VC, LEN = _z(2, 4, 8), _z(2, 2, 7, 8), _z(2, 2, 7, 6), np.array([3, 7])


def _sdpa_errors(fn):
    def e(exc, arg, q=Q, k=K, v=V, extra=None, **kw):
        if extra is None and fn == "sdpa_backward":
            # out, lse, dout that fit q's [B,H,N] (when q is 4-D) and v's Dv
            B, H, N = q.shape[:3] if q.ndim == 4 else Q.shape[:3]
            Dv = v.shape[-1] if v.ndim == 4 else V.shape[-1]
            extra = (_z(B, H, N, Dv), _z(B, H, N), _z(B, H, N, Dv))
        return (fn, (q, k, v) + (extra or ()), kw, exc, arg)

    sq = _z(2, 4, 5, 8)
    E = [
        e(ValueError, "q", q=_z(2, 4, 8)),
        e(ValueError, "q", q=_z(1, 2, 4, 3, 8)),
        e(TypeError, "q", q=Q.astype(np.float16)),
        e(TypeError, "q", q=Q.astype(np.int64)),
        e(TypeError, "q", q=Q.astype(np.complex128)),
        e(TypeError, "k", k=K.astype(F32)),
        e(TypeError, "v", v=V.astype(F32)),
        e(ValueError, "k", k=_z(2, 2, 5)),
        e(ValueError, "v", v=_z(2, 2, 5)),
        e(ValueError, "k", k=_z(3, 2, 5, 8)),
        e(ValueError, "k", k=_z(2, 2, 5, 7)),
        e(ValueError, "k", k=_z(2, 3, 5, 8), v=_z(2, 3, 5, 6)),  # H = 4 not a multiple of 3
        e(ValueError, "v", v=_z(2, 2, 4, 6)),
        e(ValueError, "v", v=_z(2, 1, 5, 6)),
        e(ValueError, "v", v=_z(1, 2, 5, 6)),
        e(ValueError, "v", v=_z(2, 2, 5, 0)),  # Dv = 0
        e(ValueError, "q", q=_z(2, 4, 3, 0), k=_z(2, 2, 5, 0)),  # D = 0
        e(ValueError, "window", window=0),
        e(ValueError, "window", window=-2),
        e(ValueError, "logn", logn=1.0),
        e(ValueError, "logn", logn=0.5),
        e(ValueError, "logn", logn=float("inf")),
        e(ValueError, "logn", logn=float("nan")),
        e(ValueError, "scale", scale=float("nan")),
        e(ValueError, "scale", scale=float("inf")),
        e(ValueError, "segment_ids", q=sq, k=K, segment_ids=np.zeros((2, 4), np.int64)),
        e(ValueError, "segment_ids", q=sq, segment_ids=np.array([[0, 1, 2, 1, 1]] * 2)),
        e(ValueError, "segment_ids", q=sq, segment_ids=np.array([[0, -1, 1, 1, 1]] * 2)),
        e(ValueError, "segment_ids", segment_ids=np.zeros((2, 3), np.int64)),  # N = 3 != M = 5
        e(TypeError, "segment_ids", q=sq, segment_ids=np.zeros((2, 5))),
        e(ValueError, "mask", mask=np.ones((3, 4), bool)),
        e(ValueError, "mask", mask=np.ones((2, 4, 3, 6), bool)),
        e(ValueError, "mask", mask=np.ones((3, 1, 1, 5), bool)),
        e(ValueError, "mask", mask=np.ones((1, 1, 1, 1, 5), bool)),
        e(TypeError, "mask", mask=np.zeros((3, 5), F32)),
        e(TypeError, "mask", mask=np.zeros((3, 5), np.int64)),
        e(ValueError, "alibi_slopes", alibi_slopes=np.ones(3)),
        e(ValueError, "alibi_slopes", alibi_slopes=np.ones((1, 4))),
        e(ValueError, "alibi_slopes", alibi_slopes=np.array([1.0, np.nan, 1, 1])),
        e(ValueError, "q", q=_z(2, 4, 3, 7), k=_z(2, 2, 5, 7), rope=True),  # odd D with rope
    ]
    if fn == "sdpa_backward":
        E += [
            e(ValueError, "out", extra=(_z(2, 4, 3, 5), LSE, DOUT)),
            e(ValueError, "lse", extra=(OUT, _z(2, 4, 4), DOUT)),
            e(ValueError, "dout", extra=(OUT, LSE, _z(2, 4, 3))),
            e(TypeError, "out", extra=(OUT.astype(F32), LSE, DOUT)),
            e(TypeError, "lse", extra=(OUT, LSE.astype(F32), DOUT)),
            e(TypeError, "dout", extra=(OUT, LSE, DOUT.astype(F32))),
        ]
    return E


def _decode_errors():
    def e(exc, arg, q=QD, k=KC, v=VC, lengths=LEN, **kw):
        return ("decode", (q, k, v, lengths), kw, exc, arg)

    return [
        e(ValueError, "q", q=_z(2, 4, 1, 8)),
        e(TypeError, "q", q=QD.astype(np.float16)),
        e(ValueError, "k_cache", k=_z(2, 2, 7)),
        e(ValueError, "k_cache", k=_z(2, 2, 7, 5)),
        e(ValueError, "k_cache", k=_z(3, 2, 7, 8)),
        e(ValueError, "k_cache", k=_z(2, 3, 7, 8), v=_z(2, 3, 7, 6)),
        e(ValueError, "v_cache", v=_z(2, 2, 6, 6)),
        e(TypeError, "k_cache", k=KC.astype(F32)),
        e(TypeError, "v_cache", v=VC.astype(F32)),
        e(TypeError, "lengths", lengths=np.array([3.0, 7.0])),
        e(ValueError, "lengths", lengths=np.array([3, 7, 1])),
        e(IndexError, "lengths", lengths=np.array([3, 8])),
        e(IndexError, "lengths", lengths=np.array([-1, 2])),
        e(ValueError, "window", window=0),
        e(ValueError, "logn", logn=1.0),
        e(ValueError, "scale", scale=float("nan")),
        e(ValueError, "alibi_slopes", alibi_slopes=np.ones(2)),
    ]


def _rope_errors():
    x = _z(2, 3, 4)
    return [
        ("rope", (_z(4),), {}, ValueError, "x"),
        ("rope", (_z(2, 3, 5),), {}, ValueError, "x"),
        ("rope", (x.astype(np.int64),), {}, TypeError, "x"),
        ("rope", (x.astype(np.float16),), {}, TypeError, "x"),
        ("rope", (x, np.arange(4)), {}, ValueError, "positions"),
        ("rope", (x, np.zeros((3, 3))), {}, ValueError, "positions"),
        ("rope", (x, np.zeros((1, 2, 3))), {}, ValueError, "positions"),
        ("rope", (x, np.array([0.0, np.nan, 1.0])), {}, ValueError, "positions"),
        ("rope", (x,), dict(base=0.0), ValueError, "base"),
        ("rope", (x,), dict(base=-2.0), ValueError, "base"),
        ("rope", (x,), dict(base=float("nan")), ValueError, "base"),
    ]


ERRORS = _sdpa_errors("sdpa") + _sdpa_errors("sdpa_backward") + _decode_errors() + _rope_errors()


def _err_id(e):
    fn, _, kw, exc, arg = e
    return f"{fn}-{arg}-{exc.__name__}-{'-'.join(kw) or 'arrays'}"


@pytest.mark.parametrize("err", ERRORS, ids=[f"{_err_id(e)}-{i}" for i, e in enumerate(ERRORS)])
def test_bad_inputs(impl, err):
    fn, args, kw, exc, arg = err
    with pytest.raises(exc, match=rf"^\[kexue\.attention\.{fn}\] {arg}\b"):
        getattr(impl, fn)(*args, **kw)


def test_good_inputs_next_to_the_bad_ones(impl):
    """The baseline arrays of the error table are themselves valid."""
    assert impl.sdpa(Q, K, V).shape == (2, 4, 3, 6)
    assert impl.sdpa(Q, K, V, scale=0.0, window=1, logn=1.5).shape == (2, 4, 3, 6)
    assert len(impl.sdpa_backward(Q, K, V, OUT, LSE, DOUT)) == 3
    assert impl.decode(QD, KC, VC, LEN).shape == (2, 4, 6)
    assert impl.decode(QD, KC, VC, LEN.astype(np.int32)).shape == (2, 4, 6)
    assert impl.rope(_z(2, 3, 4), np.arange(3)).shape == (2, 3, 4)


def test_core_signatures_match_twin():
    import inspect

    core = _core()
    for name in ("sdpa", "sdpa_backward", "decode", "rope"):
        assert inspect.signature(getattr(core, name)) == inspect.signature(getattr(ref, name)), name


# ----------------------------------------------------------------------------
# torch


def _torch_cases():
    return [
        ("causal", (2, 4, 4, 9, 9, 16), dict(causal=True), dict(is_causal=True)),
        ("noncausal-NneM", (2, 4, 4, 5, 11, 16), {}, {}),
        ("bool-mask", (2, 4, 4, 7, 8, 8), "bool", None),
        ("float-mask", (2, 4, 4, 7, 8, 8), "float", None),
        ("gqa", (2, 8, 2, 6, 10, 16), {}, dict(enable_gqa=True)),
        ("gqa-causal", (1, 6, 3, 12, 12, 8), dict(causal=True), dict(is_causal=True, enable_gqa=True)),
        ("scale", (1, 2, 2, 6, 6, 32), dict(scale=0.3), dict(scale=0.3)),
        ("blocks", (1, 2, 2, 130, 130, 64), dict(causal=True), dict(is_causal=True)),
    ]


@pytest.mark.parametrize("case", _torch_cases(), ids=lambda c: c[0])
def test_matches_torch_sdpa(impl, case):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    name, (B, H, Hkv, N, M, D), kw, tkw = case
    rng = _rng("torch", name)
    q, k, v = qkv(rng, B, H, Hkv, N, M, D, dtype=F32)
    if kw == "bool":
        m = rng.random((B, 1, N, M)) < 0.6
        m[..., 0] = True  # no empty rows: torch gives NaN there
        kw, tkw = dict(mask=m), dict(attn_mask=torch.from_numpy(m))
    elif kw == "float":
        m = rng.normal(size=(1, H, N, M)).astype(F32)
        kw, tkw = dict(mask=m), dict(attn_mask=torch.from_numpy(m))
    tq, tk, tv = (torch.from_numpy(x.copy()).requires_grad_(True) for x in (q, k, v))
    tout = F.scaled_dot_product_attention(tq, tk, tv, **tkw)
    dout = rng.normal(size=tout.shape).astype(F32)
    tout.backward(torch.from_numpy(dout))
    out, lse = impl.sdpa(q, k, v, return_lse=True, **kw)
    assert_close(out, tout.detach().numpy(), rtol=1e-5, atol=1e-5)
    grads = impl.sdpa_backward(q, k, v, out, lse, dout, **kw)
    for name_, g, t in zip(("dq", "dk", "dv"), grads, (tq, tk, tv)):
        try:
            assert_close(g, t.grad.numpy(), rtol=1e-5, atol=1e-5)
        except AssertionError as e:
            raise AssertionError(f"{name_}\n{e}") from None
