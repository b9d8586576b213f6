"""kexue.torch.CRF against pytorch-crf itself (values, gradients, decode, error
messages, a BiLSTM-CRF training run), its extras (nbest, marginals, allowed, any
mask) against kexue.crf directly, and kexue.torch.MEMM against kexue.memm;
torch.autograd.gradcheck on the autograd Function through both modules.

Tolerances: float64 results are held to 1e-10 (the brief's bar; the two
implementations sum in different orders, so not bit-equal); float32 to 1e-5.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchcrf = pytest.importorskip("torchcrf")

import kexue  # noqa: E402
import kexue.torch as kt  # noqa: E402
from torch import nn  # noqa: E402

F64 = dict(rtol=1e-10, atol=1e-10)
F32 = dict(rtol=1e-5, atol=1e-5)
REDUCTIONS = ["none", "sum", "mean", "token_mean"]

# pytorch-crf builds uint8 masks itself when none is given; torch warns about that
pytestmark = pytest.mark.filterwarnings("ignore:where received a uint8 condition:UserWarning")


# ============================================================================
# helpers


def pair(K, batch_first, dtype=torch.float64, seed=0):
    """A kexue CRF and a pytorch-crf CRF holding the same (non-trivial) parameters."""
    torch.manual_seed(seed)
    ours = kt.CRF(K, batch_first=batch_first).to(dtype)
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_()
    ref = torchcrf.CRF(K, batch_first=batch_first).to(dtype)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def inputs(B, T, K, batch_first, dtype=torch.float64, seed=1, masked=True, first_on=True):
    """emissions, tags, mask in the layout batch_first asks for (prefix masks, step 0 on)."""
    g = torch.Generator().manual_seed(seed)
    em = torch.randn(B, T, K, generator=g, dtype=dtype)
    tags = torch.randint(0, K, (B, T), generator=g)
    mask = None
    if masked:
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T
        mask = torch.arange(T)[None, :] < lengths[:, None]
        if not first_on:
            mask[:, 0] = False
    if not batch_first:
        em, tags = em.transpose(0, 1).contiguous(), tags.transpose(0, 1).contiguous()
        mask = None if mask is None else mask.transpose(0, 1).contiguous()
    return em, tags, mask


def bf(x, batch_first):
    return x if (x is None or batch_first) else x.transpose(0, 1)


def close(a, b, tol):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)


def grads_of(module, em, tags, mask, reduction, weights):
    em = em.detach().clone().requires_grad_(True)
    module.zero_grad()
    out = module(em, tags, mask=mask, reduction=reduction)
    (out * weights).sum().backward() if reduction == "none" else out.backward()
    named = {n: p.grad.clone() for n, p in module.named_parameters()}
    return out.detach(), em.grad, named


# ============================================================================
# against pytorch-crf


def test_lazy_export_and_repr():
    assert kt.CRF is kexue.torch._crf.CRF
    crf = kt.CRF(7)
    assert repr(crf) == repr(torchcrf.CRF(7)) == "CRF(num_tags=7)"
    assert sorted(n for n, _ in crf.named_parameters()) == sorted(
        n for n, _ in torchcrf.CRF(7).named_parameters()
    )


def test_same_init_and_state_dict_interchange():
    torch.manual_seed(123)
    ours = kt.CRF(6)
    torch.manual_seed(123)
    ref = torchcrf.CRF(6)
    for (n1, p1), (n2, p2) in zip(ours.named_parameters(), ref.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
        assert isinstance(p1, nn.Parameter) and p1.abs().max() <= 0.1
    ours.reset_parameters()
    ref.load_state_dict(ours.state_dict())
    ours.load_state_dict(ref.state_dict())


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("masked", [False, True])
def test_forward_and_grads_match_pytorch_crf_f64(batch_first, reduction, masked):
    B, T, K = 6, 9, 5
    ours, ref = pair(K, batch_first)
    em, tags, mask = inputs(B, T, K, batch_first, masked=masked)
    # uneven weights, with repeats, exercise the per-row backward path of "none"
    w = torch.tensor([0.5, -1.0, 2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    o1, e1, p1 = grads_of(ours, em, tags, mask, reduction, w)
    o2, e2, p2 = grads_of(ref, em, tags, mask, reduction, w)
    assert o1.shape == o2.shape and o1.dtype == o2.dtype == torch.float64
    close(o1, o2, F64)
    close(e1, e2, F64)
    assert p1.keys() == p2.keys() == {"start_transitions", "end_transitions", "transitions"}
    for n in p1:
        close(p1[n], p2[n], F64)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_forward_and_grads_match_pytorch_crf_f32(batch_first, reduction):
    B, T, K = 5, 8, 4
    ours, ref = pair(K, batch_first, dtype=torch.float32)
    em, tags, mask = inputs(B, T, K, batch_first, dtype=torch.float32)
    w = torch.linspace(-1, 2, B)
    o1, e1, p1 = grads_of(ours, em, tags, mask, reduction, w)
    o2, e2, p2 = grads_of(ref, em, tags, mask, reduction, w)
    assert o1.dtype == torch.float32
    close(o1, o2, F32)
    close(e1, e2, F32)
    for n in p1:
        close(p1[n], p2[n], F32)


def test_dtype_promotion_like_pytorch_crf():
    ours, ref = pair(4, True, dtype=torch.float32)
    em, tags, mask = inputs(3, 5, 4, True, dtype=torch.float64)
    a, b = ours(em, tags, mask), ref(em, tags, mask)
    assert a.dtype == b.dtype == torch.float64
    close(a.detach(), b.detach(), F32)  # float32 parameters, promoted


def test_uint8_mask_int32_tags_and_strided_inputs():
    ours, ref = pair(4, False)
    em, tags, mask = inputs(5, 7, 4, False)
    want = ref(em, tags, mask)
    close(ours(em, tags.int(), mask.to(torch.uint8)).detach(), want.detach(), F64)
    # non-contiguous emissions (a transposed view) give the same
    em_t = em.transpose(0, 1).contiguous().transpose(0, 1)
    assert not em_t.is_contiguous()
    close(ours(em_t, tags, mask).detach(), want.detach(), F64)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_decode_matches_pytorch_crf(batch_first, masked):
    ours, ref = pair(6, batch_first)
    for dtype in (torch.float64, torch.float32):
        em, _, mask = inputs(10, 11, 6, batch_first, masked=masked, dtype=dtype)
        got = ours.to(dtype).decode(em, mask=mask)
        assert got == ref.to(dtype).decode(em, mask=mask)
        assert all(isinstance(t, int) for row in got for t in row)


def test_error_messages_match_pytorch_crf():
    for n in (0, -3):
        with pytest.raises(ValueError) as e1:
            kt.CRF(n)
        with pytest.raises(ValueError) as e2:
            torchcrf.CRF(n)
        assert str(e1.value) == str(e2.value) == f"invalid number of tags: {n}"

    for batch_first in (False, True):
        ours, ref = pair(4, batch_first)
        em, tags, mask = inputs(3, 5, 4, batch_first)
        bad_calls = [
            lambda m: m(em[0], tags, mask),                      # emissions dimension
            lambda m: m(em[..., :3], tags, mask),                # last dimension
            lambda m: m(em, tags[:-1], mask),                    # emissions vs tags
            lambda m: m(em, tags, mask[:, :-1]),                 # emissions vs mask
            lambda m: m(em, tags, mask, reduction="avg"),        # reduction
            lambda m: m(em, tags, reduction="max"),
            lambda m: m.decode(em[0]),
            lambda m: m.decode(torch.cat([em, em[..., :1]], -1)),
            lambda m: m.decode(em, mask=mask[:-1]),
        ]
        for call in bad_calls:
            with pytest.raises(ValueError) as e1:
                call(ours)
            with pytest.raises(ValueError) as e2:
                call(ref)
            assert str(e1.value) == str(e2.value)


def test_masked_first_step_is_allowed():
    """Documented difference: pytorch-crf refuses it; kexue removes the masked steps."""
    B, T, K = 5, 8, 4
    for batch_first in (False, True):
        ours, ref = pair(K, batch_first)
        em, tags, mask = inputs(B, T, K, batch_first, first_on=False)
        with pytest.raises(ValueError, match="mask of the first timestep must all be on"):
            ref(em, tags, mask)
        # every sequence's step 0 is masked ([CLS]): the same as pytorch-crf without it
        cut = (lambda x: x[:, 1:]) if batch_first else (lambda x: x[1:])
        for red in REDUCTIONS:
            close(ours(em, tags, mask, reduction=red).detach(),
                  ref(cut(em), cut(tags), cut(mask), reduction=red).detach(), F64)
        assert ours.decode(em, mask) == ref.decode(cut(em), cut(mask))
    # and a hole in the middle agrees with kexue.crf
    em, tags, mask = inputs(B, T, K, True)
    mask[:, 2] = False
    ours, _ = pair(K, True)
    got = ours(em, tags, mask, reduction="none")
    want = kexue.crf.log_likelihood(em.numpy(), tags.numpy(), ours.transitions.detach().numpy(),
                                    mask=mask.numpy(), **_np_params(ours))
    close(got.detach(), want, F64)
    assert [len(p) for p in ours.decode(em, mask)] == mask.sum(1).tolist()


def test_cpu_only_and_float_only():
    crf = kt.CRF(3)
    em = torch.empty(4, 2, 3, device="meta")
    tags = torch.zeros(4, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[kexue.torch.CRF\] emissions must be a CPU tensor"):
        crf(em, tags)
    with pytest.raises(ValueError, match=r"emissions must be a CPU tensor"):
        crf.decode(em)
    half = kt.CRF(3).half()
    with pytest.raises(TypeError, match="float32 or float64"):
        half(torch.zeros(4, 2, 3, dtype=torch.float16), tags)
    with pytest.raises(TypeError, match="tags must be an integer tensor"):
        crf(torch.zeros(4, 2, 3), tags.float())
    with pytest.raises(ValueError, match="nbest must be >= 1"):
        crf.decode(torch.zeros(4, 2, 3), nbest=0)


def test_partial_requires_grad_and_retain_graph():
    ours, ref = pair(4, True)
    em, tags, mask = inputs(3, 5, 4, True)
    ours.transitions.requires_grad_(False)
    e = em.clone().requires_grad_(True)
    out = ours(e, tags, mask)
    out.backward(retain_graph=True)
    g1 = e.grad.clone()
    out.backward()
    close(e.grad, 2 * g1, F64)
    assert ours.transitions.grad is None and ours.start_transitions.grad is not None
    # emissions without grad: parameters still get theirs
    ours.transitions.requires_grad_(True)
    ours.zero_grad()
    ours(em, tags, mask).backward()
    ref(em, tags, mask).backward()
    close(ours.transitions.grad, ref.transitions.grad, F64)


# ============================================================================
# gradcheck


@pytest.mark.parametrize("reduction", ["none", "sum", "token_mean"])
def test_gradcheck_crf(reduction):
    B, T, K = 3, 5, 3
    crf = kt.CRF(K, batch_first=True).double()
    em, tags, mask = inputs(B, T, K, True)
    mask[1, 0] = False  # any mask
    mask[2, 2] = False
    al = np.ones((K, K), bool)
    al[2, 0] = False
    tags[:, :] = 1  # a gold path the constraints allow
    ps = [p.detach().clone().requires_grad_(True) for p in crf.parameters()]
    names = [n for n, _ in crf.named_parameters()]
    e = em.clone().requires_grad_(True)

    def f(e, *ps):
        out = torch.func.functional_call(crf, dict(zip(names, ps)), (e, tags, mask),
                                         {"reduction": reduction, "allowed": al})
        return out

    assert torch.autograd.gradcheck(f, (e, *ps))


@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck_memm(rank, bidirectional):
    B, T, K = 3, 5, 4
    memm = kt.MEMM(K, batch_first=False, alpha=0.7, bidirectional=bidirectional, rank=rank).double()
    em, tags, mask = inputs(B, T, K, False)
    mask[0, 1] = False
    names = [n for n, _ in memm.named_parameters()]
    ps = [p.detach().clone().requires_grad_(True) for p in memm.parameters()]
    e = em.clone().requires_grad_(True)

    def f(e, *ps):
        return torch.func.functional_call(memm, dict(zip(names, ps)), (e, tags, mask),
                                          {"reduction": "none"})

    assert torch.autograd.gradcheck(f, (e, *ps))


# ============================================================================
# beyond pytorch-crf: nbest, marginals, allowed


def _np_params(crf):
    return dict(start=crf.start_transitions.detach().numpy(),
                end=crf.end_transitions.detach().numpy())


@pytest.mark.parametrize("batch_first", [False, True])
def test_nbest_and_marginals_match_kexue_crf(batch_first):
    B, T, K = 4, 6, 3
    ours, ref = pair(K, batch_first)
    em, _, mask = inputs(B, T, K, batch_first)
    em_b, mask_b = bf(em, batch_first).numpy(), bf(mask, batch_first).numpy()
    A = ours.transitions.detach().numpy()
    paths, scores = kexue.crf.nbest(em_b, A, 5, mask=mask_b, **_np_params(ours))
    got = ours.decode(em, mask, nbest=5)
    assert [len(g) for g in got] == [min(5, K ** int(n)) for n in mask_b.sum(1)]
    for b in range(B):
        assert got[b] == [p[mask_b[b]].tolist() for p, s in zip(paths[b], scores[b]) if s > -np.inf]
        assert got[b][0] == ref.decode(em, mask)[b]
    m = ours.marginals(em, mask)
    assert m.shape == em.shape and m.dtype == em.dtype
    want = kexue.crf.marginals(em_b, A, mask=mask_b, **_np_params(ours))
    close(bf(m, batch_first), want, F64)
    # nbest with fewer paths than asked: the missing ones are dropped
    short = torch.randn(1, 1, K, dtype=torch.float64)
    assert len(kt.CRF(K, batch_first=True).double().decode(short, nbest=10)[0]) == K


def test_allowed_in_training_and_decoding():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    trip = kexue.crf.allowed_transitions(labels, "BIO")
    K = len(labels)
    torch.manual_seed(0)
    ours = kt.CRF(K, batch_first=True, allowed=trip).double()
    free = copy.deepcopy(ours)
    free.allowed = None
    em, tags, mask = inputs(6, 8, K, True)
    tags[:] = 0
    tags[:, 3], tags[:, 4] = 1, 2  # O O O B-PER I-PER O ...
    kw = dict(mask=mask.numpy(), transitions=ours.transitions.detach().numpy(), **_np_params(ours))
    want = kexue.crf.log_likelihood(em.numpy(), tags.numpy(), kw.pop("transitions"), allowed=trip,
                                    **kw)
    close(ours(em, tags, mask, reduction="none").detach(), want, F64)
    close(free(em, tags, mask, reduction="none", allowed=trip).detach(), want, F64)
    assert not torch.allclose(free(em, tags, mask, reduction="none"),
                              ours(em, tags, mask, reduction="none"))
    al, st, _ = trip
    for paths in (ours.decode(em, mask), free.decode(em, mask, allowed=trip),
                  *ours.decode(em, mask, nbest=3)):
        for p in paths:
            assert st[p[0]] and all(al[a, b] for a, b in zip(p, p[1:]))
    # a gold path that breaks the constraints has log-likelihood -inf
    tags[0, 0] = 2
    assert ours(em, tags, mask, reduction="none")[0] == -np.inf
    m = ours.marginals(em, mask)
    close(m.numpy(), kexue.crf.marginals(em.numpy(), ours.transitions.detach().numpy(),
                                         mask=mask.numpy(), allowed=trip, **_np_params(ours)), F64)


# ============================================================================
# a BiLSTM-CRF tagger trained with either CRF


class Tagger(nn.Module):
    def __init__(self, vocab, K, crf):
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.lstm = nn.LSTM(16, 16, batch_first=True, bidirectional=True)
        self.out = nn.Linear(32, K)
        self.crf = crf

    def emissions(self, x):
        return self.out(self.lstm(self.emb(x))[0])

    def loss(self, x, tags, mask):
        return -self.crf(self.emissions(x), tags, mask, reduction="mean")


def _train(model, x, tags, mask, steps=50):
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    curve = []
    for _ in range(steps):
        opt.zero_grad()
        loss = model.loss(x, tags, mask)
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return np.array(curve)


def test_bilstm_crf_training_matches_pytorch_crf():
    V, K, B, T = 30, 5, 8, 12
    g = torch.Generator().manual_seed(7)
    x = torch.randint(0, V, (B, T), generator=g)
    tags = (x + torch.roll(x, 1, dims=1)) % K  # depends on the previous token
    lengths = torch.randint(4, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T)[None, :] < lengths[:, None]

    torch.manual_seed(0)
    ours = Tagger(V, K, kt.CRF(K, batch_first=True)).double()
    theirs = copy.deepcopy(ours)
    theirs.crf = torchcrf.CRF(K, batch_first=True).double()
    theirs.crf.load_state_dict(ours.crf.state_dict())

    a = _train(ours, x, tags, mask)
    b = _train(theirs, x, tags, mask)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)
    assert a[-1] < 0.5 * a[0]  # it learned something
    with torch.no_grad():
        em = ours.emissions(x)
        assert ours.crf.decode(em, mask) == theirs.crf.decode(theirs.emissions(x), mask)


# ============================================================================
# MEMM against kexue.memm


@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_memm_matches_kexue_memm(rank, batch_first):
    B, T, K = 5, 7, 4
    for bidirectional, alpha in ((False, 1.0), (True, 0.5)):
        torch.manual_seed(3)
        memm = kt.MEMM(K, batch_first=batch_first, alpha=alpha, bidirectional=bidirectional,
                       rank=rank).double()
        em, tags, mask = inputs(B, T, K, batch_first)
        mask_b = bf(mask, batch_first).numpy()
        em_b, tags_b = bf(em, batch_first).numpy(), bf(tags, batch_first).numpy()
        if rank is None:
            G, kw = memm.transitions.detach().numpy(), {}
        else:
            G, kw = None, {"factors": (memm.L.detach().numpy(), memm.R.detach().numpy())}
        ref = kexue.memm.nll_grad(em_b, tags_b, G, mask=mask_b, alpha=alpha,
                                  bidirectional=bidirectional, **kw)
        e = em.clone().requires_grad_(True)
        out = memm(e, tags, mask, reduction="none")
        close(out.detach(), -ref.loss, F64)
        memm.zero_grad()
        out.sum().backward()
        close(bf(e.grad, batch_first), -ref.d_emissions, F64)
        if rank is None:
            close(memm.transitions.grad, -ref.d_transitions, F64)
        else:
            close(memm.L.grad, -ref.d_factors[0], F64)
            close(memm.R.grad, -ref.d_factors[1], F64)
        for red, want in (("sum", -ref.loss.sum()), ("mean", -ref.loss.mean()),
                          ("token_mean", -ref.loss.sum() / mask_b.sum())):
            close(memm(em, tags, mask, reduction=red).detach(), want, F64)
        # decoding and marginals (left-to-right model)
        paths, _ = kexue.memm.viterbi(em_b, G, mask=mask_b, alpha=alpha, **kw)
        assert memm.decode(em, mask) == [p[m].tolist() for p, m in zip(paths, mask_b)]
        paths, _ = kexue.memm.nbest(em_b, G, 3, mask=mask_b, alpha=alpha, **kw)
        assert memm.decode(em, mask, nbest=3) == [[p[m].tolist() for p in ps]
                                                  for ps, m in zip(paths, mask_b)]
        close(bf(memm.marginals(em, mask), batch_first),
              kexue.memm.marginals(em_b, G, mask=mask_b, alpha=alpha, **kw), F64)


def test_memm_surface():
    assert repr(kt.MEMM(5)) == "MEMM(num_tags=5)"
    assert repr(kt.MEMM(5, alpha=0.5, rank=2)) == "MEMM(num_tags=5, alpha=0.5, rank=2)"
    assert [n for n, _ in kt.MEMM(5).named_parameters()] == ["transitions"]
    assert [n for n, _ in kt.MEMM(5, rank=2).named_parameters()] == ["L", "R"]
    with pytest.raises(ValueError, match="invalid number of tags: 0"):
        kt.MEMM(0)
    with pytest.raises(ValueError, match=r"\[kexue.torch.MEMM\] rank must be >= 1"):
        kt.MEMM(3, rank=0)
    with pytest.raises(ValueError, match=r"\[kexue.torch.MEMM\] alpha must be"):
        kt.MEMM(3, alpha=0)
    memm, ref = kt.MEMM(4), torchcrf.CRF(4)
    em, tags, mask = inputs(3, 5, 4, False)
    for call in (lambda m: m(em[0], tags), lambda m: m(em, tags[1:]),
                 lambda m: m(em, tags, reduction="x"), lambda m: m.decode(em, mask[1:])):
        with pytest.raises(ValueError) as e1:
            call(memm)
        with pytest.raises(ValueError) as e2:
            call(ref)
        assert str(e1.value) == str(e2.value)
    # float32 works too, and crf_style decoding equals kexue.crf.viterbi on G
    m32 = kt.MEMM(4, batch_first=True)
    em32 = torch.randn(2, 6, 4)
    assert m32(em32, torch.zeros(2, 6, dtype=torch.long)).dtype == torch.float32
    G = m32.transitions.detach().numpy()
    assert m32.decode(em32, mode="crf_style") == kexue.crf.viterbi(em32.numpy(), G)[0].tolist()
    assert m32.decode(em32, mode="crf_style", nbest=2)[0][0] == m32.decode(em32,
                                                                           mode="crf_style")[0]
