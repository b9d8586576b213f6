"""kexue.torch.scaled_dot_product_attention against torch's own
``F.scaled_dot_product_attention`` (forward and autograd gradients) over
causal / non-causal, bool / float masks, N != M (torch's top-left
``is_causal``), GQA, broadcast batch and head dimensions, ``scale``; its
kexue-only extras (window, segment_ids, logn, alibi_slopes) against
kexue.attention.sdpa / sdpa_backward directly; torch.autograd.gradcheck in
float64; the errors (dropout, devices, dtypes, head counts).

Tolerances: float64 1e-10 (both sides compute the same formula in float64,
in different orders); float32 1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kexue.attention as ka  # noqa: E402
import kexue.torch as kt  # noqa: E402
import kexue.torch._attention as kta  # noqa: E402
import torch.nn.functional as F  # noqa: E402

F64, F32 = torch.float64, torch.float32
TOL = {F64: dict(rtol=1e-10, atol=1e-10), F32: dict(rtol=1e-5, atol=1e-5)}
sdpa = kt.scaled_dot_product_attention


# ============================================================================
# helpers


def randn(*shape, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=dtype, generator=g)


def qkv(B, H, N, M, D, *, Hkv=None, Dv=None, dtype=F64, seed=0):
    Hkv = H if Hkv is None else Hkv
    Dv = D if Dv is None else Dv
    q = randn(B, H, N, D, dtype=dtype, seed=seed)
    k = randn(B, Hkv, M, D, dtype=dtype, seed=seed + 1)
    v = randn(B, Hkv, M, Dv, dtype=dtype, seed=seed + 2)
    return q, k, v


def run(fn, q, k, v, dout=None, **kw):
    """(out, dq, dk, dv) of fn(q, k, v, **kw) with the gradient of sum(out * dout)."""
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = fn(q, k, v, **kw)
    if dout is None:
        dout = randn(*out.shape, dtype=out.dtype, seed=99)
    out.backward(dout)
    return out.detach(), q.grad, k.grad, v.grad


def close(got, want, tol, what=""):
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), err_msg=what, **tol)


def same_as_torch(q, k, v, **kw):
    """Forward and gradients equal to torch's SDPA with the same arguments."""
    mine = run(sdpa, q, k, v, **kw)
    dout = randn(*mine[0].shape, dtype=q.dtype, seed=99)
    theirs = run(F.scaled_dot_product_attention, q, k, v, dout=dout, **kw)
    tol = TOL[q.dtype]
    for name, a, b in zip(("out", "dq", "dk", "dv"), mine, theirs):
        close(a, b, tol, f"{name} {kw}")
    return mine


def kexue_direct(q, k, v, dout, **kw):
    """(out, dq, dk, dv) from kexue.attention.sdpa + sdpa_backward on numpy arrays."""
    qn, kn, vn = (t.detach().numpy() for t in (q, k, v))
    out, lse = ka.sdpa(qn, kn, vn, return_lse=True, **kw)
    dq, dk, dv = ka.sdpa_backward(qn, kn, vn, out, lse, dout.numpy(), **kw)
    return tuple(torch.from_numpy(x) for x in (out, dq, dk, dv))


def tril(N, M):
    return torch.ones(N, M, dtype=torch.bool).tril()


# ============================================================================
# against torch's SDPA


SHAPES = [  # (B, H, N, M, D)
    (2, 3, 16, 16, 8),
    (1, 2, 7, 19, 16),  # N < M
    (2, 2, 19, 7, 16),  # N > M
    (1, 4, 1, 33, 32),  # one query against a cache
    (2, 2, 33, 1, 8),  # one key
    (1, 2, 70, 70, 64),  # more than one block
]


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_plain_and_causal(shape, is_causal, dtype):
    B, H, N, M, D = shape
    q, k, v = qkv(B, H, N, M, D, dtype=dtype)
    same_as_torch(q, k, v, is_causal=is_causal)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_value_dim_differs_and_scale(dtype):
    q, k, v = qkv(2, 3, 11, 13, 16, Dv=5, dtype=dtype, seed=3)
    same_as_torch(q, k, v)
    same_as_torch(q, k, v, scale=0.3)
    same_as_torch(q, k, v, scale=2.0, is_causal=True)
    same_as_torch(q, k, v, scale=0.0)


def test_is_causal_is_top_left_like_torch():
    """With N != M torch's is_causal masks j > i (top-left), not kexue's end-aligned rule."""
    for N, M in ((5, 9), (9, 5)):
        q, k, v = qkv(1, 2, N, M, 8, seed=N)
        out = sdpa(q, k, v, is_causal=True)
        close(out, sdpa(q, k, v, attn_mask=tril(N, M)), TOL[F64])
        close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=tril(N, M)), TOL[F64])
        end_aligned = torch.from_numpy(ka.sdpa(q.numpy(), k.numpy(), v.numpy(), causal=True))
        assert not torch.allclose(out, end_aligned)


MASK_SHAPES = [(16, 24), (2, 1, 16, 24), (1, 3, 16, 24), (2, 3, 16, 24), (2, 1, 1, 24), (16, 1)]


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("mshape", MASK_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_bool_mask(mshape, is_causal, dtype):
    q, k, v = qkv(2, 3, 16, 24, 8, dtype=dtype, seed=4)
    g = torch.Generator().manual_seed(5)
    m = torch.rand(*mshape, generator=g) < 0.7
    same_as_torch(q, k, v, attn_mask=m, is_causal=is_causal)


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("mshape", MASK_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_float_mask(mshape, is_causal, dtype):
    q, k, v = qkv(2, 3, 16, 24, 8, dtype=dtype, seed=6)
    g = torch.Generator().manual_seed(7)
    m = torch.randn(*mshape, generator=g, dtype=dtype)
    m = m.masked_fill(torch.rand(*mshape, generator=g) < 0.2, float("-inf"))
    same_as_torch(q, k, v, attn_mask=m, is_causal=is_causal)


@pytest.mark.parametrize("N", [12, 20])
def test_mask_with_causal_square_and_not(N):
    """is_causal together with attn_mask: both apply (torch's fused CPU kernel, 4-D
    inputs; its docs and its math path refuse the pair), L == S and L != S."""
    q, k, v = qkv(2, 2, N, 12, 8, seed=N)
    m = torch.rand(2, 1, N, 12, generator=torch.Generator().manual_seed(1)) < 0.6
    same_as_torch(q, k, v, attn_mask=m, is_causal=True)
    bias = torch.randn(N, 12, dtype=F64, generator=torch.Generator().manual_seed(2))
    same_as_torch(q, k, v, attn_mask=bias, is_causal=True)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_fully_masked_rows_are_zero_like_torch(dtype):
    q, k, v = qkv(2, 2, 6, 9, 8, dtype=dtype, seed=8)
    m = torch.ones(2, 1, 6, 9, dtype=torch.bool)
    m[0, 0, 2] = False
    m[1, 0, 5] = False
    out, dq, _, _ = same_as_torch(q, k, v, attn_mask=m)
    assert torch.isfinite(out).all() and torch.isfinite(dq).all()
    assert (out[0, :, 2] == 0).all() and (dq[0, :, 2] == 0).all()
    bias = torch.zeros(6, 9, dtype=dtype)
    bias[3] = float("-inf")
    out, dq, _, _ = same_as_torch(q, k, v, attn_mask=bias)
    assert (out[:, :, 3] == 0).all() and (dq[:, :, 3] == 0).all()


def test_expanded_mask_is_not_materialised(monkeypatch):
    """A mask built with expand() reaches kexue at its real (broadcast) size."""
    q, k, v = qkv(2, 3, 8, 10, 8, seed=9)
    m = (torch.rand(2, 1, 1, 10, generator=torch.Generator().manual_seed(3)) < 0.8)
    m[..., 0] = True
    seen = []
    real = ka.sdpa

    def spy(*a, **kw):
        seen.append(kw["mask"].shape)
        return real(*a, **kw)

    monkeypatch.setattr(kta._att, "sdpa", spy)
    same_as_torch(q, k, v, attn_mask=m.expand(2, 3, 8, 10))
    assert seen == [(2, 1, 1, 10)]


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("Hkv", [1, 2, 6])
def test_gqa(Hkv, dtype):
    q, k, v = qkv(2, 6, 10, 14, 8, Hkv=Hkv, dtype=dtype, seed=10)
    same_as_torch(q, k, v, enable_gqa=True)
    same_as_torch(q, k, v, enable_gqa=True, is_causal=True)
    m = torch.rand(10, 14, generator=torch.Generator().manual_seed(4)) < 0.7
    same_as_torch(q, k, v, enable_gqa=True, attn_mask=m)


def test_gqa_reads_kv_in_place(monkeypatch):
    """GQA and a key/value head count of 1: kexue gets the Hkv heads, not copies."""
    seen = []
    real = ka.sdpa

    def spy(q, k, v, **kw):
        seen.append((q.shape[1], k.shape[1], v.shape[1]))
        return real(q, k, v, **kw)

    monkeypatch.setattr(kta._att, "sdpa", spy)
    q, k, v = qkv(1, 8, 5, 7, 8, Hkv=2, seed=11)
    sdpa(q, k, v, enable_gqa=True)
    q, k, v = qkv(1, 8, 5, 7, 8, Hkv=1, seed=12)
    same_as_torch(q, k, v)  # head dimension 1 broadcasts, as in torch
    assert seen[0] == (8, 2, 2) and seen[1] == (8, 1, 1)


def test_gqa_key_and_value_head_counts_differ():
    q = randn(1, 4, 5, 8, seed=13)
    k = randn(1, 2, 7, 8, seed=14)
    v = randn(1, 4, 7, 8, seed=15)
    same_as_torch(q, k, v, enable_gqa=True)


def test_head_counts_must_match_without_enable_gqa():
    q, k, v = qkv(1, 4, 5, 7, 8, Hkv=2, seed=16)
    with pytest.raises(RuntimeError):
        F.scaled_dot_product_attention(q, k, v)
    with pytest.raises(RuntimeError, match="must match"):
        sdpa(q, k, v)
    q, k, v = qkv(1, 4, 5, 7, 8, Hkv=3, seed=17)
    with pytest.raises(RuntimeError, match="must divide the number of heads in query"):
        sdpa(q, k, v, enable_gqa=True)


@pytest.mark.parametrize("shapes", [
    ((3, 5, 8), (3, 7, 8), (3, 7, 8)),  # 3-D [H, L, E]
    ((5, 8), (7, 8), (7, 8)),  # 2-D
    ((2, 3, 2, 5, 8), (2, 3, 2, 7, 8), (2, 3, 2, 7, 8)),  # two batch dimensions
    ((1, 2, 5, 8), (3, 2, 7, 8), (3, 2, 7, 8)),  # the query's batch broadcasts
    ((3, 2, 5, 8), (1, 2, 7, 8), (3, 2, 7, 8)),  # the key's batch broadcasts
    ((2, 5, 8), (3, 2, 7, 8), (3, 2, 7, 8)),  # ranks differ
    ((3, 1, 5, 8), (3, 2, 7, 8), (3, 2, 7, 8)),  # the query's head dimension broadcasts
], ids=["3d", "2d", "5d", "bq", "bk", "rank", "hq"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_broadcast_shapes_like_torch(shapes, is_causal):
    qs, ks, vs = shapes
    same_as_torch(randn(*qs, seed=1), randn(*ks, seed=2), randn(*vs, seed=3), is_causal=is_causal)


def test_mask_on_5d_inputs():
    q = randn(2, 3, 2, 5, 8, seed=1)
    k, v = randn(2, 3, 2, 7, 8, seed=2), randn(2, 3, 2, 7, 8, seed=3)
    m = torch.rand(2, 1, 1, 5, 7, generator=torch.Generator().manual_seed(5)) < 0.7
    same_as_torch(q, k, v, attn_mask=m)
    # torch's math path (5-D) refuses attn_mask with is_causal; the drop-in applies both
    mine = run(sdpa, q, k, v, attn_mask=m[0], is_causal=True)
    theirs = run(F.scaled_dot_product_attention, q, k, v, dout=randn(*mine[0].shape, seed=99),
                 attn_mask=m[0] & tril(5, 7))
    for a, b in zip(mine, theirs):
        close(a, b, TOL[F64])


def test_strided_inputs():
    """The usual x.view(B, N, H, D).transpose(1, 2) layout (made contiguous once)."""
    B, N, H, D = 2, 9, 3, 8
    x = randn(B, N, 3 * H * D, seed=20)
    q, k, v = (t.view(B, N, H, D).transpose(1, 2) for t in x.split(H * D, dim=-1))
    assert not q.is_contiguous()
    same_as_torch(q, k, v, is_causal=True)


def test_contiguous_inputs_are_not_copied(monkeypatch):
    seen = []
    real = ka.sdpa

    def spy(q, k, v, **kw):
        seen.append([a.__array_interface__["data"][0] for a in (q, k, v)])
        return real(q, k, v, **kw)

    monkeypatch.setattr(kta._att, "sdpa", spy)
    q, k, v = qkv(2, 2, 6, 6, 8, seed=21)
    sdpa(q, k, v)
    assert seen == [[q.data_ptr(), k.data_ptr(), v.data_ptr()]]


def test_no_grad_and_empty():
    q, k, v = qkv(1, 2, 6, 6, 8, seed=22)
    with torch.no_grad():
        want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        close(sdpa(q, k, v, is_causal=True), want, TOL[F64])
    for N, M in ((0, 5), (4, 0)):
        q, k, v = qkv(1, 2, N, M, 8, seed=23)
        same_as_torch(q, k, v)


def test_training_step_matches_torch():
    """A small attention layer trained for a few steps gives the same losses."""
    torch.manual_seed(0)
    B, N, d, H = 3, 12, 16, 4
    x = torch.randn(B, N, d, dtype=F64)
    y = torch.randn(B, N, d, dtype=F64)

    def layer():
        torch.manual_seed(1)
        return torch.nn.Linear(d, 3 * d).to(F64), torch.nn.Linear(d, d).to(F64)

    def losses(attn):
        qkv_proj, out_proj = layer()
        opt = torch.optim.SGD([*qkv_proj.parameters(), *out_proj.parameters()], lr=0.1)
        curve = []
        for _ in range(5):
            opt.zero_grad()
            q, k, v = (t.view(B, N, H, d // H).transpose(1, 2)
                       for t in qkv_proj(x).split(d, dim=-1))
            h = attn(q, k, v, is_causal=True).transpose(1, 2).reshape(B, N, d)
            loss = ((out_proj(h) - y) ** 2).mean()
            loss.backward()
            opt.step()
            curve.append(loss.item())
        return curve

    np.testing.assert_allclose(losses(sdpa), losses(F.scaled_dot_product_attention), rtol=1e-10)


# ============================================================================
# gradcheck


@pytest.mark.parametrize("kw", [
    dict(),
    dict(is_causal=True),
    dict(is_causal=True, scale=0.7),
    dict(enable_gqa=True),
    dict(attn_mask="bool"),
    dict(attn_mask="float", is_causal=True),
], ids=["plain", "causal", "scale", "gqa", "bool-mask", "float-mask"])
@pytest.mark.parametrize("NM", [(4, 4), (3, 5), (5, 3)])
def test_gradcheck(kw, NM):
    N, M = NM
    kw = dict(kw)
    Hkv = 1 if kw.get("enable_gqa") else 2
    q, k, v = qkv(1, 2, N, M, 3, Hkv=Hkv, Dv=2, seed=30)
    g = torch.Generator().manual_seed(31)
    if kw.get("attn_mask") == "bool":
        m = torch.rand(N, M, generator=g) < 0.7
        m[:, 0] = True
        kw["attn_mask"] = m
    elif kw.get("attn_mask") == "float":
        kw["attn_mask"] = torch.randn(1, 2, N, M, dtype=F64, generator=g)
    args = tuple(t.requires_grad_(True) for t in (q, k, v))
    assert torch.autograd.gradcheck(lambda a, b, c: sdpa(a, b, c, **kw), args)


def test_gradcheck_extras():
    q, k, v = qkv(1, 2, 5, 5, 4, seed=32)
    args = tuple(t.requires_grad_(True) for t in (q, k, v))
    sid = torch.tensor([[0, 0, 1, 1, 1]])
    assert torch.autograd.gradcheck(
        lambda a, b, c: sdpa(a, b, c, window=3, segment_ids=sid, alibi_slopes=[0.5, 0.25],
                             logn=4.0), args)


# ============================================================================
# kexue's extras against kexue.attention directly


EXTRAS = [
    dict(window=3),
    dict(window=4, causal=True),
    dict(segment_ids="unilm"),
    dict(logn=512.0),
    dict(logn=64.0, window=5, causal=True),
    dict(alibi_slopes=[0.5, 0.25, 0.125]),
    dict(alibi_slopes=[0.5, 0.25, 0.125], causal=True, segment_ids="unilm"),
]


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("extra", EXTRAS, ids=lambda e: "+".join(e))
def test_extras_equal_kexue_attention(extra, dtype):
    B, H, N, D = 2, 3, 11, 8
    q, k, v = qkv(B, H, N, N, D, dtype=dtype, seed=40)
    kw = dict(extra)
    causal = kw.pop("causal", False)
    if kw.get("segment_ids") == "unilm":
        kw["segment_ids"] = torch.tensor([[0] * 4 + [1] * 7, [0] * 8 + [1] * 3])
    dout = randn(B, H, N, D, dtype=dtype, seed=99)
    mine = run(sdpa, q, k, v, dout=dout, is_causal=causal, **kw)
    direct_kw = dict(kw, causal=causal)
    if "segment_ids" in direct_kw:
        direct_kw["segment_ids"] = direct_kw["segment_ids"].numpy()
    if "alibi_slopes" in direct_kw:
        direct_kw["alibi_slopes"] = np.asarray(direct_kw["alibi_slopes"])
    want = kexue_direct(q, k, v, dout, **direct_kw)
    for name, a, b in zip(("out", "dq", "dk", "dv"), mine, want):
        close(a, b, TOL[dtype], f"{name} {extra}")


def test_extras_with_top_left_causal():
    """N != M with is_causal: the explicit top-left mask, the extras at kexue's positions."""
    q, k, v = qkv(1, 2, 6, 10, 8, seed=41)
    slopes = torch.tensor([0.3, 0.1])
    dout = randn(1, 2, 6, 8, seed=42)
    mine = run(sdpa, q, k, v, dout=dout, is_causal=True, window=4, alibi_slopes=slopes)
    want = kexue_direct(q, k, v, dout, mask=tril(6, 10).numpy(), window=4,
                        alibi_slopes=slopes.numpy())
    for a, b in zip(mine, want):
        close(a, b, TOL[F64])


def test_extras_with_mask_and_gqa():
    q, k, v = qkv(2, 4, 9, 9, 8, Hkv=2, seed=43)
    m = torch.rand(2, 1, 1, 9, generator=torch.Generator().manual_seed(6)) < 0.8
    m[..., 0] = True
    dout = randn(2, 4, 9, 8, seed=44)
    mine = run(sdpa, q, k, v, dout=dout, attn_mask=m, enable_gqa=True, logn=16.0, window=4)
    want = kexue_direct(q, k, v, dout, mask=m.numpy(), logn=16.0, window=4)
    for a, b in zip(mine, want):
        close(a, b, TOL[F64])


# ============================================================================
# errors


def test_dropout_is_not_implemented():
    q, k, v = qkv(1, 1, 3, 3, 4)
    with pytest.raises(NotImplementedError, match="dropout_p"):
        sdpa(q, k, v, dropout_p=0.1)
    sdpa(q, k, v, dropout_p=0.0)


def test_non_cpu_tensors():
    q, k, v = qkv(1, 1, 3, 3, 4)
    meta = torch.empty(1, 1, 3, 4, dtype=F64, device="meta")
    for i, name in enumerate(("query", "key", "value")):
        args = [q, k, v]
        args[i] = meta
        with pytest.raises(ValueError, match=f"{name} must be a CPU tensor"):
            sdpa(*args)
    with pytest.raises(ValueError, match="attn_mask must be a CPU tensor"):
        sdpa(q, k, v, attn_mask=torch.ones(3, 3, dtype=torch.bool, device="meta"))


def test_dtypes():
    q, k, v = qkv(1, 1, 3, 3, 4)
    with pytest.raises(TypeError, match="float32 or float64"):
        sdpa(q.half(), k.half(), v.half())
    with pytest.raises(RuntimeError, match="same dtype"):
        sdpa(q, k.float(), v)
    with pytest.raises(RuntimeError, match="attn_mask dtype"):
        sdpa(q, k, v, attn_mask=torch.zeros(3, 3, dtype=F32))
    with pytest.raises(RuntimeError, match="attn_mask dtype"):
        sdpa(q, k, v, attn_mask=torch.zeros(3, 3, dtype=torch.int64))


def test_float_mask_requiring_grad():
    q, k, v = qkv(1, 1, 3, 3, 4)
    bias = torch.zeros(3, 3, dtype=F64, requires_grad=True)
    with pytest.raises(NotImplementedError, match="detach"):
        sdpa(q, k, v, attn_mask=bias)
    close(sdpa(q, k, v, attn_mask=bias.detach()), F.scaled_dot_product_attention(q, k, v), TOL[F64])
    with torch.no_grad():
        sdpa(q, k, v, attn_mask=bias)


def test_bad_shapes():
    q, k, v = qkv(1, 2, 3, 5, 4)
    with pytest.raises(RuntimeError, match="does not broadcast"):
        sdpa(q, k, v, attn_mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="last dimension"):
        sdpa(q, k[..., :3], v)
    with pytest.raises(RuntimeError, match="same length"):
        sdpa(q, k, v[..., :4, :])
    with pytest.raises(RuntimeError, match="must match"):
        sdpa(q, randn(3, 2, 5, 4), randn(3, 2, 5, 4)[:2])
    with pytest.raises(TypeError, match="torch.Tensor"):
        sdpa(q.numpy(), k, v)


def test_exported_lazily():
    assert "scaled_dot_product_attention" in kt.__all__
    assert kt.scaled_dot_product_attention is kta.scaled_dot_product_attention
