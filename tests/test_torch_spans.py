"""kexue.torch's ZLPR losses and GlobalPointer against plain-torch implementations
of the same formulas (written out here, differentiated by torch autograd),
against kexue's numpy-facing functions, and torch.autograd.gradcheck on every
autograd Function in kexue.torch._spans; plus a tiny NER training loop.

Tolerances: float64 1e-10 (both sides are exact-formula float64 computations
differing only in summation order); float32 ~1e-5 relative.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kexue.torch as kt  # noqa: E402
from kexue import global_pointer as kgp  # noqa: E402
from kexue import losses as klosses  # noqa: E402
from kexue.torch import _spans  # noqa: E402

F64 = torch.float64
NEG_INF = float("-inf")


def close(a, b, tol=1e-10):
    a = torch.as_tensor(a).detach().double()
    b = torch.as_tensor(b).detach().double()
    assert a.shape == b.shape, (a.shape, b.shape)
    fin = torch.isfinite(b)
    assert torch.equal(torch.isfinite(a), fin), "non-finite cells differ"
    assert torch.equal(a[~fin], b[~fin])
    err = (a[fin] - b[fin]).abs()
    bound = tol * (1 + b[fin].abs())
    assert bool((err <= bound).all()), f"max err {float(err.max()) if err.numel() else 0}"


def finite(x):
    """-inf cells -> 0 (constant), so gradcheck's finite differences stay finite."""
    return torch.where(torch.isfinite(x), x, torch.zeros((), dtype=x.dtype))


# ============================================================================
# plain-torch oracles


def zlpr_plain(s, y, mask=None):
    """log(1 + sum_neg e^s) + log(1 + sum_pos e^-s) as logsumexp with a 0 appended;
    a class is excluded where mask is False or s is -inf."""
    y = y.bool()
    excl = torch.isneginf(s)
    if mask is not None:
        excl = excl | ~mask
    ninf = torch.tensor(NEG_INF, dtype=s.dtype)
    neg = torch.where(y | excl, ninf, s)
    pos = torch.where(~y | excl, ninf, -s)
    zero = s.new_zeros(s.shape[:-1] + (1,))
    return (torch.logsumexp(torch.cat([neg, zero], -1), -1)
            + torch.logsumexp(torch.cat([pos, zero], -1), -1))


def rope_plain(x, base=10000.0):
    """RoPE at positions 0..T-1 (axis 1), bert4keras' adjacent pairs (2r, 2r+1)."""
    T, D = x.shape[1], x.shape[-1]
    w = base ** (-2.0 * torch.arange(D // 2, dtype=F64) / D)
    ang = torch.arange(T, dtype=F64)[:, None] * w[None, :]
    shape = (1, T) + (1,) * (x.ndim - 3) + (D // 2,)
    cos, sin = ang.cos().reshape(shape).to(x.dtype), ang.sin().reshape(shape).to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, b * cos + a * sin], -1).flatten(-2)


def valid_plain(B, T, mask, tril_mask):
    v = torch.ones(B, 1, T, T, dtype=torch.bool)
    if mask is not None:
        v = v & mask[:, None, :, None] & mask[:, None, None, :]
    if tril_mask:
        v = v & torch.ones(T, T, dtype=torch.bool).triu()
    return v


def gp_plain(mod, hidden, mask=None):
    """bert4keras' GlobalPointer / EfficientGlobalPointer in plain torch on mod's Linears."""
    B, T, _ = hidden.shape
    E, D = mod.heads, mod.head_size
    rope = rope_plain if mod.rope else (lambda x: x)
    if mod.efficient:
        h = mod.p_dense(hidden)
        q, k = rope(h[..., 0::2]), rope(h[..., 1::2])
        s = torch.einsum("bid,bjd->bij", q, k)[:, None] / math.sqrt(D)
        c = mod.q_dense(h)  # [B,T,2E]
        s = s + c[..., 1::2].transpose(1, 2)[..., :, None] / 2 \
              + c[..., 0::2].transpose(1, 2)[..., None, :] / 2
    else:
        x = mod.dense(hidden).view(B, T, E, 2 * D)
        q, k = rope(x[..., :D]), rope(x[..., D:])
        s = torch.einsum("bied,bjed->beij", q, k) / math.sqrt(D)
    return s.masked_fill(~valid_plain(B, T, mask, mod.tril_mask), NEG_INF)


def gp_loss_plain(scores, spans):
    B, E, T, _ = scores.shape
    y = torch.zeros(B, E, T, T, dtype=torch.bool)
    if len(spans):
        sp = torch.as_tensor(spans)
        y[sp[:, 0], sp[:, 1], sp[:, 2], sp[:, 3]] = True
    return zlpr_plain(scores.reshape(B, E, T * T), y.reshape(B, E, T * T))


def rand_mask(B, T, g):
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    return torch.arange(T)[None, :] < lengths[:, None]


# ============================================================================
# multilabel_crossentropy


@pytest.mark.parametrize("shape", [(5,), (4, 7), (2, 3, 6), (3, 1)])
@pytest.mark.parametrize("with_mask", [False, True])
def test_mlce_forward_and_grad_vs_plain_torch(shape, with_mask):
    g = torch.Generator().manual_seed(1)
    s = (3 * torch.randn(shape, dtype=F64, generator=g)).requires_grad_()
    y = torch.rand(shape, generator=g) < 0.3
    mask = (torch.rand(shape, generator=g) < 0.8) if with_mask else None
    loss = kt.multilabel_crossentropy(s, y, mask=mask)
    ref = zlpr_plain(s, y, mask)
    close(loss, ref)
    kx = klosses.multilabel_crossentropy(s.detach().numpy(), y.numpy(),
                                         mask=None if mask is None else mask.numpy())
    close(loss, torch.from_numpy(np.asarray(kx)))
    up = torch.randn(loss.shape, dtype=F64, generator=g)
    (gk,) = torch.autograd.grad(loss, s, up)
    (gr,) = torch.autograd.grad(ref, s, up)
    close(gk, gr)
    if mask is not None:
        assert bool((gk[~mask] == 0).all())


def test_mlce_targets_forms_and_float32():
    g = torch.Generator().manual_seed(2)
    s32 = torch.randn(6, 9, generator=g)
    y = torch.rand(6, 9, generator=g) < 0.4
    expect = klosses.multilabel_crossentropy(s32.numpy(), y.numpy())
    for t in (y, y.long(), y.float(), y.double(), y.numpy()):
        out = kt.multilabel_crossentropy(s32, t)
        assert out.dtype == torch.float32
        np.testing.assert_array_equal(out.numpy(), expect)
    close(kt.multilabel_crossentropy(s32, y), zlpr_plain(s32.double(), y), tol=1e-5)


def test_mlce_reductions_and_broadcast_mask():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 5, dtype=F64, generator=g, requires_grad=True)
    y = torch.rand(4, 5, generator=g) < 0.5
    none = kt.multilabel_crossentropy(s, y)
    close(kt.multilabel_crossentropy(s, y, reduction="sum"), none.sum())
    close(kt.multilabel_crossentropy(s, y, reduction="mean"), none.mean())
    (gm,) = torch.autograd.grad(kt.multilabel_crossentropy(s, y, reduction="mean"), s)
    (gr,) = torch.autograd.grad(zlpr_plain(s, y).mean(), s)
    close(gm, gr)
    m = torch.tensor([True, False, True, True, False])  # [C] broadcast over rows
    close(kt.multilabel_crossentropy(s, y, mask=m), zlpr_plain(s, y, m.expand(4, 5)))
    # -inf logits are excluded cells: finite loss, zero gradient there
    s2 = s.detach().clone()
    s2[0, 1] = NEG_INF
    s2.requires_grad_()
    loss = kt.multilabel_crossentropy(s2, y)
    close(loss, zlpr_plain(s2, y))
    (g2,) = torch.autograd.grad(loss.sum(), s2)
    assert g2[0, 1] == 0 and bool(torch.isfinite(g2).all())


def test_mlce_no_grad_path_and_noncontiguous():
    g = torch.Generator().manual_seed(4)
    base = torch.randn(7, 6, dtype=F64, generator=g)
    s = base.t()  # non-contiguous view [6, 7]
    y = torch.rand(6, 7, generator=g) < 0.3
    with torch.no_grad():
        a = kt.multilabel_crossentropy(s, y)
    close(a, zlpr_plain(s, y))
    leaf = base.clone().requires_grad_()
    loss = kt.multilabel_crossentropy(leaf.t(), y)
    (gk,) = torch.autograd.grad((loss * torch.arange(6.0, dtype=F64)).sum(), leaf)
    leaf2 = base.clone().requires_grad_()
    (gr,) = torch.autograd.grad((zlpr_plain(leaf2.t(), y) * torch.arange(6.0, dtype=F64)).sum(),
                                leaf2)
    close(gk, gr)


def test_mlce_gradcheck():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(3, 4, 5, dtype=F64, generator=g, requires_grad=True)
    y = torch.rand(3, 4, 5, generator=g) < 0.4
    m = torch.rand(3, 4, 5, generator=g) < 0.8
    for red in ("none", "sum", "mean"):
        assert torch.autograd.gradcheck(
            lambda x, red=red: kt.multilabel_crossentropy(x, y, mask=m, reduction=red), (s,))


def test_sparse_mlce_equals_dense_and_gradcheck():
    g = torch.Generator().manual_seed(6)
    s = torch.randn(4, 8, dtype=F64, generator=g, requires_grad=True)
    idx = torch.tensor([[0, 3, -1], [7, -1, -1], [-1, -1, -1], [1, 2, 2]])
    y = torch.zeros(4, 8, dtype=torch.bool)
    for r, row in enumerate(idx.tolist()):
        for c in row:
            if c >= 0:
                y[r, c] = True
    sparse = _spans.sparse_multilabel_crossentropy(s, idx)
    close(sparse, kt.multilabel_crossentropy(s, y))
    close(sparse, zlpr_plain(s, y))
    (gs,) = torch.autograd.grad(sparse.sum(), s)
    (gr,) = torch.autograd.grad(zlpr_plain(s, y).sum(), s)
    close(gs, gr)
    # mask_zero: index 0 is padding and class 0 excluded
    mz = _spans.sparse_multilabel_crossentropy(s, idx.clamp(min=0), mask_zero=True)
    keep = torch.ones(8, dtype=torch.bool)
    keep[0] = False
    close(mz, zlpr_plain(s, y & keep, keep.expand(4, 8)))
    assert torch.autograd.gradcheck(
        lambda x: _spans.sparse_multilabel_crossentropy(x, idx, reduction="mean"), (s,))


def test_loss_errors():
    s = torch.randn(2, 3, dtype=F64)
    y = torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"\[kexue.torch.multilabel_crossentropy\] logits must "
                                         r"be a CPU tensor"):
        kt.multilabel_crossentropy(torch.empty(2, 3, device="meta"), y)
    with pytest.raises(ValueError, match="targets must be a CPU tensor"):
        kt.multilabel_crossentropy(s, torch.empty(2, 3, device="meta"))
    with pytest.raises(TypeError, match="logits must be float32 or float64"):
        kt.multilabel_crossentropy(s.half(), y)
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        kt.multilabel_crossentropy(s.numpy(), y)
    with pytest.raises(ValueError, match="reduction must be one of"):
        kt.multilabel_crossentropy(s, y, reduction="batchmean")
    with pytest.raises(ValueError, match="mask must broadcast"):
        kt.multilabel_crossentropy(s, y, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(TypeError, match="positive_index must be an integer"):
        _spans.sparse_multilabel_crossentropy(s, torch.zeros(2, 1))


# ============================================================================
# GlobalPointer


def make_gp(efficient, rope=True, tril_mask=True, bias=True, H=6, E=3, D=4, seed=0):
    torch.manual_seed(seed)
    return kt.GlobalPointer(H, E, D, rope=rope, tril_mask=tril_mask, efficient=efficient,
                            bias=bias).double()


GP_CASES = [
    dict(efficient=False), dict(efficient=False, rope=False),
    dict(efficient=False, tril_mask=False), dict(efficient=False, bias=False),
    dict(efficient=True), dict(efficient=True, rope=False),
    dict(efficient=True, bias=False), dict(efficient=True, tril_mask=False),
]


@pytest.mark.parametrize("case", GP_CASES,
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("with_mask", [False, True])
def test_gp_forward_backward_vs_plain_torch(case, with_mask):
    mod = make_gp(**case)
    g = torch.Generator().manual_seed(7)
    B, T = 3, 5
    x = torch.randn(B, T, 6, dtype=F64, generator=g, requires_grad=True)
    mask = rand_mask(B, T, g) if with_mask else None
    out = mod(x, mask)
    ref = gp_plain(mod, x, mask)
    assert out.shape == (B, 3, T, T) and out.dtype == F64
    close(out, ref)
    up = torch.randn(out.shape, dtype=F64, generator=g)
    params = [x, *mod.parameters()]
    gk = torch.autograd.grad((finite(out) * up).sum(), params)
    gr = torch.autograd.grad((finite(ref) * up).sum(), params)
    for a, b in zip(gk, gr):
        close(a, b)
    if with_mask:  # padded tokens get no gradient
        assert bool((gk[0][~mask] == 0).all())


def test_gp_layout_matches_kexue_scores():
    """The module's q/k split is bert4keras': dense output viewed [B,T,E,2D], q = [..., :D]."""
    mod = make_gp(False, E=2, D=6)
    x = torch.randn(2, 4, 6, dtype=F64)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    z = mod.dense(x).detach().view(2, 4, 2, 12).numpy()
    expect = kgp.scores(np.ascontiguousarray(z[..., :6]), np.ascontiguousarray(z[..., 6:]),
                        mask=mask.numpy())
    np.testing.assert_array_equal(mod(x, mask).detach().numpy(), expect)
    emod = make_gp(True, E=2, D=6)
    h = emod.p_dense(x).detach().numpy()
    expect = kgp.efficient_scores(h, emod.q_dense.weight.detach().numpy().T,
                                  emod.q_dense.bias.detach().numpy(), mask=mask.numpy())
    np.testing.assert_array_equal(emod(x, mask).detach().numpy(), expect)


def test_gp_float32():
    for eff in (False, True):
        torch.manual_seed(1)
        mod = kt.GlobalPointer(6, 2, 4, efficient=eff)
        x = torch.randn(2, 5, 6, requires_grad=True)
        out = mod(x)
        assert out.dtype == torch.float32
        close(out, gp_plain(copy.deepcopy(mod).double(), x.double()), tol=1e-5)
        finite(out).sum().backward()
        assert all(p.grad.dtype == torch.float32 for p in mod.parameters())
        assert x.grad.dtype == torch.float32 and bool(torch.isfinite(x.grad).all())


def test_gp_functions_gradcheck():
    g = torch.Generator().manual_seed(8)
    B, T, E, D = 2, 4, 2, 4
    mask = torch.tensor([[True] * 4, [True, True, True, False]]).numpy()
    for tril in (True, False):
        kw = dict(mask=mask, rope=True, rope_base=10000.0, tril_mask=tril)
        q = torch.randn(B, T, E, D, dtype=F64, generator=g, requires_grad=True)
        k = torch.randn(B, T, E, D, dtype=F64, generator=g, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda a, b, kw=kw: finite(_spans._GPScoresFunction.apply(a, b, kw)), (q, k))
        h = torch.randn(B, T, 2 * D, dtype=F64, generator=g, requires_grad=True)
        w = torch.randn(2 * E, 2 * D, dtype=F64, generator=g, requires_grad=True)
        bias = torch.randn(2 * E, dtype=F64, generator=g, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda a, b, c, kw=kw: finite(_spans._EGPScoresFunction.apply(a, b, c, kw)),
            (h, w, bias))
        assert torch.autograd.gradcheck(
            lambda a, b, kw=kw: finite(_spans._EGPScoresFunction.apply(a, b, None, kw)), (h, w))


def test_gp_loss_vs_plain_torch_and_gradcheck():
    g = torch.Generator().manual_seed(9)
    mod = make_gp(False)
    B, T = 2, 5
    x = torch.randn(B, T, 6, dtype=F64, generator=g, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    spans = torch.tensor([[0, 0, 1, 2], [0, 2, 0, 4], [1, 1, 0, 0], [1, 1, 1, 2], [1, 1, 1, 2]])
    s = mod(x, mask)
    per = kt.GlobalPointer.loss(s, spans, reduction="none")
    ref = gp_loss_plain(s, spans)
    close(per, ref)
    close(per, torch.from_numpy(kgp.loss(s.detach().numpy(), spans.numpy())))
    close(_spans.global_pointer_loss(s, spans), ref.mean())
    close(mod.loss(s, spans, reduction="sum"), ref.sum())
    gk = torch.autograd.grad(_spans.global_pointer_loss(s, spans), [x, *mod.parameters()],
                             retain_graph=True)
    gr = torch.autograd.grad(ref.mean(), [x, *mod.parameters()])
    for a, b in zip(gk, gr):
        close(a, b)
    # Function-level gradcheck (-inf cells stay -inf under perturbation: gradient 0)
    sd = s.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda z: _spans._GPLossFunction.apply(z, spans.numpy()), (sd,))
    # end to end through the module
    x2 = torch.randn(B, T, 6, dtype=F64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: mod.loss(mod(z, mask), spans), (x2,))


def test_gp_decode():
    s = torch.full((2, 2, 4, 4), -1.0, dtype=F64)
    s[0, 1, 0, 2] = 2.0
    s[0, 0, 1, 1] = 1.5
    s[1, 0, 2, 3] = 0.5
    s[0, 0, 1, 3] = NEG_INF
    got = kt.GlobalPointer.decode(s)
    assert got.dtype == torch.int64
    assert got.tolist() == [[0, 0, 1, 1], [0, 1, 0, 2], [1, 0, 2, 3]]
    assert got.tolist() == kgp.decode(s.numpy()).tolist()
    assert kt.GlobalPointer.decode(s, flat=True).tolist() == [[0, 1, 0, 2], [1, 0, 2, 3]]
    assert kt.GlobalPointer.decode(s, threshold=1.0).tolist() == [[0, 0, 1, 1], [0, 1, 0, 2]]
    m = torch.tensor([[True] * 4, [True, True, True, False]])
    assert kt.GlobalPointer.decode(s, mask=m).tolist() == [[0, 0, 1, 1], [0, 1, 0, 2]]


def test_gp_errors_and_repr():
    mod = make_gp(False)
    x = torch.randn(2, 3, 6, dtype=F64)
    with pytest.raises(ValueError, match=r"\[kexue.torch.GlobalPointer\] hidden must be a CPU"):
        mod(torch.empty(2, 3, 6, device="meta"))
    with pytest.raises(ValueError, match="hidden must be"):
        mod(torch.randn(2, 3, 5, dtype=F64))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        mod(x, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be a CPU tensor"):
        mod(x, torch.ones(2, 3, dtype=torch.bool, device="meta"))
    with pytest.raises(ValueError, match="head_size must be even"):
        kt.GlobalPointer(6, 2, 3)
    with pytest.raises(ValueError, match="heads must be a positive int"):
        kt.GlobalPointer(6, 0, 4)
    with pytest.raises(ValueError, match="reduction must be one of"):
        kt.GlobalPointer.loss(mod(x), torch.zeros(0, 4, dtype=torch.long), reduction="avg")
    # 0/1 integer masks are accepted like bool
    m = torch.tensor([[1, 1, 0], [1, 0, 0]])
    close(mod(x, m), mod(x, m.bool()))
    assert "heads=3" in repr(mod) and "efficient=False" in repr(mod)


# ============================================================================
# a tiny NER model trains


@pytest.mark.parametrize("efficient", [False, True])
def test_tiny_ner_training_loss_decreases(efficient):
    torch.manual_seed(0)
    V, H, E, B, T = 30, 16, 2, 4, 10
    emb = torch.nn.Embedding(V, H)
    gp = kt.GlobalPointer(H, E, 8, efficient=efficient)
    opt = torch.optim.Adam([*emb.parameters(), *gp.parameters()], lr=2e-2)
    tokens = torch.randint(1, V, (B, T))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[2, 7:] = False
    tokens[~mask] = 0
    spans = torch.tensor([[0, 0, 1, 3], [0, 1, 5, 5], [1, 0, 0, 0], [2, 1, 2, 6], [3, 0, 4, 8]])
    losses = []
    for _ in range(5):
        opt.zero_grad()
        s = gp(emb(tokens), mask)
        loss = gp.loss(s, spans)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
