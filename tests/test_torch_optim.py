"""kexue.torch.optim: torch.optim.Optimizer subclasses over kexue's fused kernels.

Against torch.optim where torch has the optimizer (SGD, Adam, AdamW: 100 steps,
float64 to 1e-12 and float32 to 1e-6 of max(|param|, 1)), against kexue.optim's
numpy classes where it does not (AdaX, Lion, LAMB, Amos, Adafactor; bitwise --
the same kernels), plus torch's Optimizer surface: param groups, state_dict
(round trip bitwise, through torch.save, and across to torch.optim.AdamW),
closures, zero_grad, params without grads, bad inputs, clip_grad_norm_, and a
small MLP trained with both AdamW's.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kexue  # noqa: E402
import kexue.torch  # noqa: E402
from kexue.torch import optim as kto  # noqa: E402

SHAPES = [(1,), (7,), (1000,), (31, 33), (2, 3, 4, 5)]
DTYPES = (torch.float32, torch.float64)
NP = {torch.float32: np.float32, torch.float64: np.float64}
TOL = {torch.float64: 1e-12, torch.float32: 1e-6}
STEPS = 100


# ============================================================================
# helpers


def init_arrays(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(NP[dtype]) for s in shapes]


def grad_arrays(dtype, steps, seed=1, shapes=SHAPES):
    """steps lists of gradients; scales vary per step so every branch (clipping, sign) is hit."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        scale = 10.0 ** rng.uniform(-2, 1)
        out.append([(scale * rng.standard_normal(s)).astype(NP[dtype]) for s in shapes])
    return out


def tparams(arrays):
    return [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]


def run_torch(make_opt, arrays, grads, start=0, stop=None, params=None, opt=None):
    params = tparams(arrays) if params is None else params
    opt = make_opt(params) if opt is None else opt
    for gs in grads[start:stop]:
        for p, g in zip(params, gs):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    return params, opt


def run_numpy(make_opt, arrays, grads):
    params = [a.copy() for a in arrays]
    opt = make_opt(params)
    for gs in grads:
        opt.step([g.copy() for g in gs])
    return params, opt


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1.0)) if b.size else 0.0


def assert_params_close(ours, theirs, dtype):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        a = a.detach().numpy() if isinstance(a, torch.Tensor) else a
        b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
        err = rel_err(a, b)
        assert err <= TOL[dtype], f"param {i} {a.shape}: relative error {err:.3g} > {TOL[dtype]}"


def assert_bitwise(ours, theirs):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        a = a.detach().numpy() if isinstance(a, torch.Tensor) else a
        b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
        assert a.dtype == b.dtype and a.shape == b.shape, i
        diff = np.max(np.abs(a - b)) if a.size else 0.0
        assert a.tobytes() == b.tobytes(), f"param {i} {a.shape}: max |diff| {diff}"


def ids(cases):
    return [f"{n}-{i}" for i, (n, _) in enumerate(cases)]


def state_bytes(opt, params):
    out = []
    for p in params:
        s = opt.state[p]
        out.append({k: (v.dtype, tuple(v.shape), v.detach().view(torch.uint8).numpy().tobytes()
                        if v.dim() else v.item()) for k, v in s.items()})
    return out


# ============================================================================
# against torch.optim (SGD, Adam, AdamW)

TORCH_CASES = [
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, amsgrad=True, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=1e-2, weight_decay=0.05, decoupled_weight_decay=True)),
    ("SGD", dict(lr=1e-2)),
    ("SGD", dict(lr=1e-2, momentum=0.9, dampening=0.1, weight_decay=1e-3)),
    ("SGD", dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("AdamW", dict(lr=1e-2, maximize=True)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=ids(TORCH_CASES))
def test_matches_torch_optim(name, kw, dtype):
    arrays, grads = init_arrays(dtype), grad_arrays(dtype, STEPS)
    ours, opt = run_torch(lambda ps: getattr(kto, name)(ps, **kw), arrays, grads)
    theirs, topt = run_torch(lambda ps: getattr(torch.optim, name)(ps, **kw), arrays, grads)
    assert_params_close(ours, theirs, dtype)
    for p, q in zip(ours, theirs):  # torch's state layout: same slots, dtypes and step
        s, t = opt.state[p], topt.state[q]
        assert sorted(s) == sorted(t)
        for k in s:
            assert s[k].dtype == t[k].dtype and s[k].shape == t[k].shape, k
            if k == "step":
                assert s[k].item() == t[k].item() == STEPS
            else:
                assert rel_err(s[k].numpy(), t[k].numpy()) <= 10 * TOL[dtype], k


# ============================================================================
# against kexue.optim (bitwise)

KEXUE_CASES = [
    ("AdaX", dict(lr=1e-2)),
    ("AdaX", dict(lr=1e-2, betas=(0.8, 2e-4), eps=1e-5, weight_decay=0.01)),
    ("Lion", dict(lr=1e-3)),
    ("Lion", dict(lr=1e-3, betas=(0.95, 0.98), weight_decay=0.1)),
    ("LAMB", dict(lr=1e-2)),
    ("LAMB", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.0)),
    ("Amos", dict(lr=1e-2, eta=0.5)),
    ("Amos", dict(lr=1e-2, eta=[0.1, 0.2, 0.3, 0.4, 0.5], reduce_all=True, finetune_rate=0.5)),
    ("Adafactor", dict()),
    ("Adafactor", dict(lr=1e-2, beta1=0.9, beta2=0.99, min_dim_size_to_factor=4, d=0.5)),
    ("Adafactor", dict(min_dim_size_to_factor=4, multiply_by_parameter_scale=False)),
    ("AdamW", dict(lr=1e-2, amsgrad=True)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,kw", KEXUE_CASES, ids=ids(KEXUE_CASES))
def test_matches_kexue_optim_bitwise(name, kw, dtype):
    arrays, grads = init_arrays(dtype), grad_arrays(dtype, STEPS)
    ours, opt = run_torch(lambda ps: getattr(kto, name)(ps, **kw), arrays, grads)
    theirs, nopt = run_numpy(lambda ps: getattr(kexue.optim, name)(ps, **kw), arrays, grads)
    assert_bitwise(ours, theirs)
    for p, s in zip(ours, nopt.state):  # same slot names and contents
        st = opt.state[p]
        assert sorted(st) == sorted([*s, "step"])
        assert st["step"].item() == STEPS
        for k, v in s.items():
            assert st[k].numpy().tobytes() == v.tobytes(), k


@pytest.mark.parametrize("name,kw", [("AdamW", dict(lr=1e-2, seed=3)), ("Adam", dict(lr=1e-2)),
                                     ("AdaX", dict(lr=1e-2, seed=5)), ("Lion", dict(lr=1e-3))])
def test_bfloat16_state_matches_kexue_optim(name, kw):
    arrays, grads = init_arrays(torch.float32), grad_arrays(torch.float32, 30)
    kw = dict(kw, state_dtype="bfloat16")
    ours, opt = run_torch(lambda ps: getattr(kto, name)(ps, **kw), arrays, grads)
    theirs, nopt = run_numpy(lambda ps: getattr(kexue.optim, name)(ps, **kw), arrays, grads)
    assert_bitwise(ours, theirs)
    for p, s in zip(ours, nopt.state):
        for k, v in s.items():
            t = opt.state[p][k]
            assert t.dtype == torch.bfloat16
            assert t.view(torch.uint16).numpy().tobytes() == v.tobytes(), k


# ============================================================================
# param groups


def test_param_groups_match_torch():
    dtype = torch.float64
    arrays, grads = init_arrays(dtype), grad_arrays(dtype, STEPS)

    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:4], "lr": 3e-2, "weight_decay": 0.0},
                {"params": ps[4:], "lr": 1e-3, "betas": (0.5, 0.9), "amsgrad": True}]

    ours, opt = run_torch(lambda ps: kto.AdamW(groups(ps), lr=1e-2), arrays, grads)
    theirs, _ = run_torch(lambda ps: torch.optim.AdamW(groups(ps), lr=1e-2), arrays, grads)
    assert_params_close(ours, theirs, dtype)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 3e-2, 1e-3]


@pytest.mark.parametrize("name", ["AdaX", "Lion", "LAMB", "Amos", "Adafactor"])
def test_param_groups_match_kexue_per_group(name):
    """Each group steps exactly as a kexue.optim optimizer over that group alone."""
    dtype = torch.float32
    arrays, grads = init_arrays(dtype), grad_arrays(dtype, 40)
    lrs = [1e-2, 3e-3]
    cls = getattr(kto, name)
    ours, _ = run_torch(lambda ps: cls([{"params": ps[:3]}, {"params": ps[3:], "lr": lrs[1]}],
                                       lr=lrs[0]), arrays, grads)
    theirs = []
    for sl, lr in ((slice(0, 3), lrs[0]), (slice(3, None), lrs[1])):
        ps, _ = run_numpy(lambda q: getattr(kexue.optim, name)(q, lr=lr), arrays[sl],
                          [g[sl] for g in grads])
        theirs += ps
    assert_bitwise(ours, theirs)


def test_add_param_group_and_lr_scheduler():
    dtype = torch.float64
    arrays, grads = init_arrays(dtype), grad_arrays(dtype, 20)

    def run(mod):
        ps = tparams(arrays)
        opt = mod.AdamW(ps[:3], lr=1e-2)
        opt.add_param_group({"params": ps[3:], "lr": 5e-3})
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = torch.from_numpy(g.copy())
            opt.step()
            sched.step()
        return ps, [g["lr"] for g in opt.param_groups]

    (a, lra), (b, lrb) = run(kto), run(torch.optim)
    assert lra == lrb
    assert_params_close(a, b, dtype)


# ============================================================================
# state_dict

ALL_CASES = [
    ("SGD", dict(lr=1e-2, momentum=0.9)),
    ("Adam", dict(lr=1e-2, amsgrad=True)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, state_dtype="bfloat16", seed=11)),
    ("AdaX", dict(lr=1e-2)),
    ("Lion", dict(lr=1e-3, state_dtype="bfloat16")),
    ("LAMB", dict(lr=1e-2)),
    ("Amos", dict(lr=1e-2, eta=0.3)),
    ("Adafactor", dict(beta1=0.9, min_dim_size_to_factor=4)),
]


@pytest.mark.parametrize("name,kw", ALL_CASES, ids=ids(ALL_CASES))
def test_state_dict_round_trip_bitwise(name, kw):
    dtype = torch.float32
    arrays, grads = init_arrays(dtype), grad_arrays(dtype, 60)

    def make(ps):
        lr2 = kw["lr"] / 2 if "lr" in kw else 1e-2
        return getattr(kto, name)([{"params": ps[:2]}, {"params": ps[2:], "lr": lr2}], **kw)

    full, fopt = run_torch(make, arrays, grads)
    half, hopt = run_torch(make, arrays, grads, stop=30)
    buf = io.BytesIO()
    torch.save(hopt.state_dict(), buf)
    saved_params = [p.detach().clone() for p in half]
    del hopt
    buf.seek(0)
    sd = torch.load(buf)
    assert set(sd) == {"state", "param_groups"}
    params = [torch.nn.Parameter(t) for t in saved_params]
    opt = make(params)
    opt.load_state_dict(sd)
    resumed, ropt = run_torch(None, None, grads, start=30, params=params, opt=opt)
    assert_bitwise(resumed, full)
    assert state_bytes(ropt, resumed) == state_bytes(fopt, full)
    # the loaded state is a copy: stepping did not write into the loaded dict
    if name != "SGD":
        assert sd["state"][0]["step"].item() == 30


def test_state_dict_layout_and_cross_loading_with_torch_adamw():
    dtype = torch.float64
    arrays, grads = init_arrays(dtype), grad_arrays(dtype, 40)
    kw = dict(lr=1e-2, amsgrad=True)
    ours, opt = run_torch(lambda ps: kto.AdamW(ps, **kw), arrays, grads, stop=20)
    theirs, topt = run_torch(lambda ps: torch.optim.AdamW(ps, **kw), arrays, grads, stop=20)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd["state"]) == sorted(tsd["state"]) == list(range(len(SHAPES)))
    for i in sd["state"]:
        assert sorted(sd["state"][i]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
        assert sd["state"][i]["step"].dtype == tsd["state"][i]["step"].dtype
    # ours -> torch.optim.AdamW and torch's -> ours; both continue like the uninterrupted run
    full, _ = run_torch(lambda ps: torch.optim.AdamW(ps, **kw), arrays, grads)
    p1 = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    t1 = torch.optim.AdamW(p1, **kw)
    t1.load_state_dict(opt.state_dict())
    run_torch(None, None, grads, start=20, params=p1, opt=t1)
    p2 = [torch.nn.Parameter(p.detach().clone()) for p in theirs]
    k2 = kto.AdamW(p2, **kw)
    k2.load_state_dict(topt.state_dict())
    assert k2.param_groups[0]["state_dtype"] is None  # kexue's keys filled in from the defaults
    run_torch(None, None, grads, start=20, params=p2, opt=k2)
    assert_params_close(p1, full, dtype)
    assert_params_close(p2, full, dtype)


def test_load_state_dict_bad_shape_raises_and_keeps_state():
    ps = tparams(init_arrays(torch.float64))
    opt = kto.AdaX(ps, lr=1e-2)
    for p in ps:
        p.grad = torch.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    before = state_bytes(opt, ps)
    bad = {"state": {k: dict(v) for k, v in sd["state"].items()},
           "param_groups": sd["param_groups"]}
    bad["state"][1] = dict(bad["state"][1], exp_avg=torch.zeros(3, dtype=torch.float64))
    msg = r"\[kexue\.torch\.optim\.AdaX\].*'exp_avg' must have shape \(7,\)"
    with pytest.raises(ValueError, match=msg):
        opt.load_state_dict(bad)
    assert state_bytes(opt, ps) == before


# ============================================================================
# closure, zero_grad, params without grads


def test_closure_returns_loss():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        return loss

    opt = kto.AdamW([w], lr=0.1)
    losses = []
    for _ in range(5):
        with torch.no_grad():  # the closure still gets grad enabled, as with torch.optim
            losses.append(opt.step(closure).item())
    assert len(calls) == 5 and losses[-1] < losses[0]
    assert opt.step() is None


def test_zero_grad_and_params_without_grads():
    ps = tparams(init_arrays(torch.float32))
    before = [p.detach().clone() for p in ps]
    opt = kto.AdamW(ps, lr=1e-2)
    ps[0].grad = torch.ones_like(ps[0])
    ps[3].grad = torch.ones_like(ps[3])
    opt.step()
    changed = [not torch.equal(p, b) for p, b in zip(ps, before)]
    assert changed == [True, False, False, True, False]
    assert set(opt.state) == {ps[0], ps[3]}
    opt.zero_grad()
    assert all(p.grad is None for p in ps)
    ps[0].grad = torch.ones_like(ps[0])
    opt.zero_grad(set_to_none=False)
    assert torch.count_nonzero(ps[0].grad) == 0


def test_per_param_step_counts():
    """A param that skips steps keeps its own count (torch's semantics), and both counts
    are stepped in the same group (one call per count)."""
    shapes = [(5,), (6,)]
    arrays = init_arrays(torch.float64, shapes=shapes)
    grads = grad_arrays(torch.float64, 10, shapes=shapes)

    def run(mod):
        ps = tparams(arrays)
        opt = mod.AdamW(ps, lr=1e-2)
        for t, gs in enumerate(grads):
            ps[0].grad = torch.from_numpy(gs[0].copy())
            ps[1].grad = torch.from_numpy(gs[1].copy()) if t % 3 else None
            opt.step()
        return ps, opt

    (a, oa), (b, ob) = run(kto), run(torch.optim)
    assert_params_close(a, b, torch.float64)
    steps_a = [oa.state[p]["step"].item() for p in a]
    assert steps_a == [ob.state[p]["step"].item() for p in b] == [10, 6]


def test_version_counter_bumped():
    w = torch.nn.Parameter(torch.ones(3))
    opt = kto.SGD([w], lr=0.1)
    v = w._version
    w.grad = torch.ones(3)
    opt.step()
    assert w._version > v


# ============================================================================
# bad inputs


def test_bad_inputs():
    op = r"\[kexue\.torch\.optim\.AdamW\]"
    base = torch.zeros(4, 5)
    with pytest.raises(ValueError, match=op + r" params\[0\] must be contiguous"):
        kto.AdamW([torch.nn.Parameter(base.t())])
    with pytest.raises(ValueError, match=op + r" params\[0\] must be contiguous"):
        kto.AdamW([base[:, 1]])
    dt = op + r" params\[0\] must be float32 or float64; got torch."
    with pytest.raises(TypeError, match=dt + "int64"):
        kto.AdamW([torch.zeros(3, dtype=torch.int64)])
    with pytest.raises(TypeError, match=dt + "float16"):
        kto.AdamW([torch.zeros(3, dtype=torch.float16)])
    with pytest.raises(ValueError, match=op + r" params\[0\] must be a CPU tensor.*meta"):
        kto.AdamW([torch.empty(3, device="meta")])
    with pytest.raises(ValueError, match=op + r" lr must be finite and >= 0; got -1.0"):
        kto.AdamW([torch.zeros(3)], lr=-1.0)
    with pytest.raises(ValueError, match=r"\[kexue\.torch\.optim\.SGD\] lr must be finite"):
        kto.SGD([torch.zeros(3)], lr=float("nan"))
    with pytest.raises(ValueError, match=op + r" betas must be a pair"):
        kto.AdamW([torch.zeros(3)], betas=0.9)
    with pytest.raises(ValueError, match=r"kexue\..*beta"):
        kto.AdamW([torch.zeros(3)], betas=(1.5, 0.9))
    with pytest.raises(ValueError, match=op + r' state_dtype must be None or "bfloat16"'):
        kto.AdamW([torch.zeros(3)], state_dtype="float16")
    with pytest.raises(TypeError, match=op + r' state_dtype="bfloat16" needs float32 params'):
        kto.AdamW([torch.zeros(3, dtype=torch.float64)], state_dtype="bfloat16")
    with pytest.raises(NotImplementedError, match=op + r" capturable=True"):
        kto.AdamW([torch.zeros(3)], capturable=True)
    with pytest.raises(ValueError, match=r"SGD\] nesterov needs momentum > 0"):
        kto.SGD([torch.zeros(3)], nesterov=True)
    with pytest.raises(ValueError, match=r"Amos\] eta must be one number or a list"):
        kto.Amos([torch.zeros(3)], eta=[0.1, 0.2])
    with pytest.raises(ValueError, match="empty parameter list"):  # torch's own check
        kto.AdamW([])
    # a group added later is checked too, and not kept when it fails
    opt = kto.Lion([torch.zeros(3)])
    msg = r"Lion\] param_groups\[1\]\['params'\]\[0\] must be contiguous"
    with pytest.raises(ValueError, match=msg):
        opt.add_param_group({"params": [base.t()]})
    assert len(opt.param_groups) == 1
    # lr changed to a bad value after construction is caught at step()
    w = torch.nn.Parameter(torch.zeros(3))
    opt = kto.AdamW([w])
    opt.param_groups[0]["lr"] = -0.5
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match=op + " lr must be finite"):
        opt.step()


def test_sparse_grad_rejected_before_anything_changes():
    a, b = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))
    opt = kto.AdamW([a, b], lr=0.1)
    a.grad = torch.ones(4)
    b.grad = torch.ones(4).to_sparse()
    msg = r"\[kexue\.torch\.optim\.AdamW\.step\] params\[1\] has a sparse"
    with pytest.raises(RuntimeError, match=msg):
        opt.step()
    assert torch.equal(a.detach(), torch.ones(4)) and torch.equal(b.detach(), torch.ones(4))


# ============================================================================
# clip_grad_norm_


def _with_grads(dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    ps = []
    for s in SHAPES:
        p = torch.nn.Parameter(torch.zeros(s, dtype=dtype))
        p.grad = torch.from_numpy((scale * rng.standard_normal(s)).astype(NP[dtype]))
        ps.append(p)
    return ps


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("max_norm", [1.0, 1e4])
def test_clip_grad_norm_matches_torch(dtype, max_norm):
    a, b = _with_grads(dtype), _with_grads(dtype)
    na = kexue.torch.clip_grad_norm_(a, max_norm)
    nb = torch.nn.utils.clip_grad_norm_(b, max_norm)
    assert na.dtype == nb.dtype == dtype and na.shape == ()
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert abs(na.item() - nb.item()) <= tol * nb.item()
    for p, q in zip(a, b):  # torch's factor is max_norm / (N + 1e-6): a relative 1e-6 / N apart
        assert rel_err(p.grad.numpy(), q.grad.numpy()) <= (2e-6 if dtype == torch.float32 else 1e-9)
    if max_norm > nb.item():  # no clipping: both leave the gradients exactly as they were
        for p, q in zip(a, _with_grads(dtype)):
            assert torch.equal(p.grad, q.grad)


def test_clip_grad_norm_smooth_and_edge_cases():
    ps, ref = _with_grads(torch.float64), _with_grads(torch.float64)
    n = kexue.torch.clip_grad_norm_(ps, 2.0, mode="smooth")
    N = float(np.sqrt(sum(float((q.grad.numpy() ** 2).sum()) for q in ref)))
    assert abs(n.item() - N) <= 1e-12 * N
    for p, q in zip(ps, ref):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy() * (2.0 / (N + 2.0)),
                                   rtol=1e-12, atol=0)
    # a single tensor, params without grads, a non-contiguous grad (scaled in place)
    w = torch.nn.Parameter(torch.zeros(3, 4))
    w.grad = torch.full((4, 3), 2.0).t()
    v = torch.nn.Parameter(torch.zeros(2))
    assert kexue.torch.clip_grad_norm_([w, v], 1.0).item() == pytest.approx(np.sqrt(48.0), rel=1e-6)
    assert w.grad.stride() == (1, 3)
    np.testing.assert_allclose(w.grad.numpy(), 2.0 / np.sqrt(48.0), rtol=1e-6)
    assert kexue.torch.clip_grad_norm_(v, 1.0).item() == 0.0  # no grads: tensor(0.)
    # non-finite: unchanged grads; error_if_nonfinite raises (also leaving them unchanged)
    x = torch.nn.Parameter(torch.zeros(3))
    x.grad = torch.tensor([1.0, float("nan"), 2.0])
    assert torch.isnan(kexue.torch.clip_grad_norm_(x, 1.0))
    assert x.grad[0].item() == 1.0 and x.grad[2].item() == 2.0
    msg = r"\[kexue\.torch\.clip_grad_norm_\] the total norm.*non-finite"
    with pytest.raises(RuntimeError, match=msg):
        kexue.torch.clip_grad_norm_([x], 1.0, error_if_nonfinite=True)
    assert x.grad[0].item() == 1.0
    with pytest.raises(NotImplementedError, match=r"norm_type must be 2"):
        kexue.torch.clip_grad_norm_([w], 1.0, norm_type=1)
    with pytest.raises(NotImplementedError, match=r"norm_type must be 2"):
        kexue.torch.clip_grad_norm_([w], 1.0, norm_type="inf")
    with pytest.raises(ValueError, match=r'mode must be "clip" or "smooth"'):
        kexue.torch.clip_grad_norm_([w], 1.0, mode="soft")
    with pytest.raises(ValueError, match=r"max_norm must be >= 0"):
        kexue.torch.clip_grad_norm_([w], -1.0)
    assert kexue.torch.clip_grad_norm_ is kto.clip_grad_norm_


# ============================================================================
# a small MLP, kexue.torch.optim.AdamW vs torch.optim.AdamW


def test_mlp_loss_curve_matches_torch_adamw():
    def train(opt_cls):
        torch.manual_seed(0)
        nn = torch.nn
        model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                              nn.Linear(32, 1)).double()
        g = torch.Generator().manual_seed(1)
        x = torch.randn(64, 8, generator=g, dtype=torch.float64)
        y = torch.sin(x.sum(1, keepdim=True))
        opt = opt_cls(model.parameters(), lr=1e-2, weight_decay=0.05)
        losses = []
        for _ in range(30):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return np.array(losses)

    a, b = train(kto.AdamW), train(torch.optim.AdamW)
    assert b[-1] < 0.5 * b[0]
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=0)
