"""kexue.cuda: GPU arrays through the optimizer steps and clip_grad_norm_ (issue 8).

Two parts:

- Everywhere (no GPU needed): how GPU arrays are recognised and refused.
  ``FakeGPU`` exposes a numpy array's memory through
  ``__cuda_array_interface__``, so the checks before any launch (devices of
  one call, dtypes, contiguity, read-only, masks, streams, ops without CUDA
  kernels, builds without them) are exercised on this machine; none of them
  may write a byte.
- ``gpu``-marked: the real kernels on a GPU (run wherever one exists, with
  torch.cuda or CuPy to hold the arrays), compared bit for bit with the CPU
  path over three steps of every optimizer with CUDA kernels, float32 and
  float64, lists of arrays incl. empty and one-element ones and non-finite
  gradients; clip_grad_norm_ to rounding; a torch.cuda.Stream.
"""
from __future__ import annotations

import numpy as np
import pytest

import kexue
import kexue.cuda as kc
import kexue.reference.crf
from kexue.optim import functional as F


class FakeGPU:
    """A host array dressed as GPU memory (its pointer is not device memory)."""

    def __init__(self, a, *, readonly=False, strides=None, mask=None, dlpack_device=None):
        self.a = a
        self.readonly = readonly
        self.strides = strides
        self.mask = mask
        if dlpack_device is not None:
            self.__dlpack_device__ = lambda: dlpack_device

    @property
    def __cuda_array_interface__(self):
        d = {"shape": self.a.shape, "typestr": self.a.dtype.str,
             "data": (self.a.ctypes.data, self.readonly), "version": 3, "strides": self.strides}
        if self.mask is not None:
            d["mask"] = self.mask
        return d


def _host(n=6, dtype=np.float32, seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(n).astype(dtype) for _ in range(4)]


def test_info():
    assert isinstance(kc.built(), bool)
    assert isinstance(kc.device_count(), int) and kc.device_count() >= 0
    assert kc.is_available() == (kc.device_count() > 0)
    assert kc.built() == (kc._load() is not None)
    assert kc.is_gpu_array(FakeGPU(np.zeros(2))) and not kc.is_gpu_array(np.zeros(2))
    assert "cuda" in kexue.__all__


@pytest.mark.parametrize("case", ["grad_on_host", "state_on_host", "param1_on_host"])
def test_mixed_devices_refused(case):
    p, g, m, v = _host()
    p2 = p.copy()
    before = [x.copy() for x in (p, g, m, v, p2)]
    if case == "grad_on_host":
        args, want = ([FakeGPU(p)], [g], [FakeGPU(m)], [FakeGPU(v)]), "grads[0] is on the host but params[0] is on cuda:0"
    elif case == "state_on_host":
        args, want = ([FakeGPU(p)], [FakeGPU(g)], [FakeGPU(m)], [v]), "exp_avg_sqs[0] is on the host but params[0] is on cuda:0"
    else:
        args = ([FakeGPU(p), p2], [FakeGPU(g), g.copy()], [FakeGPU(m), m.copy()], [FakeGPU(v), v.copy()])
        want = "params[1] is on the host but params[0] is on cuda:0"
    if not kc.built():
        want = "no CUDA kernels"
    with pytest.raises(ValueError, match=want.replace("[", r"\[").replace("]", r"\]")):
        F.adamw_(*args, 1)
    for x, b in zip((p, g, m, v, p2), before):
        np.testing.assert_array_equal(x, b)


def test_host_first_gpu_later_refused():
    p, g, m, v = _host()
    with pytest.raises(ValueError, match=r"grads\[0\] is on cuda:0 but params\[0\] is on the host"):
        F.adam_(p, FakeGPU(g), m, v, 1)


def test_other_device_from_dlpack():
    p, g, m, v = _host()
    gg = FakeGPU(g, dlpack_device=(2, 1))
    if not kc.built():
        pytest.skip("the device check of GPU arrays runs in kexue._cuda")
    with pytest.raises(ValueError, match=r"grads\[0\] is on cuda:1 but params\[0\] is on cuda:0"):
        F.lion_(FakeGPU(p, dlpack_device=(2, 0)), gg, FakeGPU(m), 1)
    with pytest.raises(ValueError, match="DLPack device type is 1"):
        F.lion_(FakeGPU(p, dlpack_device=(1, 0)), gg, FakeGPU(m), 1)


@pytest.mark.skipif(not kc.built(), reason="kexue._cuda not built")
@pytest.mark.parametrize("bad, err, msg", [
    ("readonly", ValueError, r"params\[0\] must be writeable"),
    ("strided", ValueError, r"params\[0\] must be C-contiguous \(kexue does not copy arrays in GPU memory\)"),
    ("mask", ValueError, r"params\[0\] has a mask"),
    ("float16", TypeError, r"grads\[0\] must have dtype float32 \(the dtype of params\[0\]\); got float16"),
    ("shape", ValueError, r"grads\[0\] must have shape \(6,\)"),
    ("lr", ValueError, r"lr must be >= 0"),
    ("bf16", ValueError, "bfloat16 .uint16. state has no CUDA kernel yet"),
])
def test_bad_gpu_arguments(bad, err, msg):
    p, g, m, v = _host()
    before = [x.copy() for x in (p, g, m, v)]
    P, G, M, V = FakeGPU(p), FakeGPU(g), FakeGPU(m), FakeGPU(v)
    kw = {}
    if bad == "readonly":
        P = FakeGPU(p, readonly=True)
    elif bad == "strided":
        P = FakeGPU(p, strides=(8,))
    elif bad == "mask":
        P = FakeGPU(p, mask=object())
    elif bad == "float16":
        G = FakeGPU(g.astype(np.float16))
    elif bad == "shape":
        G = FakeGPU(np.zeros(5, np.float32))
    elif bad == "lr":
        kw["lr"] = -1.0
    elif bad == "bf16":
        M, V = FakeGPU(np.zeros(6, np.uint16)), FakeGPU(np.zeros(6, np.uint16))
    with pytest.raises(err, match=msg):
        F.adamw_(P, G, M, V, 1, **kw)
    for x, b in zip((p, g, m, v), before):
        np.testing.assert_array_equal(x, b)


@pytest.mark.skipif(not kc.built(), reason="kexue._cuda not built")
def test_host_memory_labelled_gpu_refused():
    """A host pointer behind __cuda_array_interface__ never reaches a kernel:
    with a GPU the pointer check names the argument; without a driver the
    runtime's own error comes first. Either way nothing is written."""
    p, g, m, v = _host()
    before = [x.copy() for x in (p, g, m, v)]
    if kc.is_available():
        with pytest.raises(ValueError, match=r"params\[0\] is (labelled as memory of cuda:0 but is host memory|not memory)"):
            F.sgd_(FakeGPU(p), FakeGPU(g), None, 1, lr=0.1)
    else:
        with pytest.raises(RuntimeError, match=r"\[kexue.optim.sgd_\] cannot use CUDA device 0"):
            F.sgd_(FakeGPU(p), FakeGPU(g), None, 1, lr=0.1)
    for x, b in zip((p, g, m, v), before):
        np.testing.assert_array_equal(x, b)


def test_ops_without_cuda_kernels_refused():
    p, g, m, v = _host()
    with pytest.raises(ValueError, match="in GPU memory; this function has no CUDA kernel yet"):
        kexue.crf.nbest(FakeGPU(np.zeros((2, 3, 4))), np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="in GPU memory; this function has no CUDA kernel yet"):
        kexue.losses.multilabel_crossentropy(FakeGPU(np.zeros((2, 3))), np.zeros((2, 3)))
    if kc.built():
        with pytest.raises(ValueError, match=r"\[kexue.optim.lamb_\] got arrays in GPU memory, but this op has no CUDA kernel"):
            F.lamb_(FakeGPU(p), FakeGPU(g), FakeGPU(m), FakeGPU(v), 1)
    np.testing.assert_array_equal(p, _host()[0])


@pytest.mark.skipif(not kc.built(), reason="kexue._cuda not built")
def test_viterbi_gpu_arguments():
    """crf.viterbi's GPU path: outputs need the input's library; bad options are named."""
    em = FakeGPU(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match=r"\[kexue.crf.viterbi\] kexue allocates GPU outputs with the input's library"):
        kexue.crf.viterbi(em, FakeGPU(np.zeros((4, 4))))
    with pytest.raises(ValueError, match=r"emissions must be 3-D \[B,T,K\]; got shape \(2, 3\)"):
        kexue.crf.viterbi(FakeGPU(np.zeros((2, 3))), FakeGPU(np.zeros((4, 4))))
    with pytest.raises(ValueError, match="a triple"):
        kexue.crf.viterbi(em, FakeGPU(np.zeros((4, 4))), allowed=(None, None))
    with pytest.raises(ValueError, match=r"\[kexue.crf.viterbi\] stream is for GPU arrays"):
        kexue.crf.viterbi(np.zeros((2, 3, 4)), np.zeros((4, 4)), stream=0)


@pytest.mark.skipif(not kc.built(), reason="kexue._cuda not built")
@pytest.mark.parametrize("op", ["log_partition", "log_likelihood", "nll_grad", "marginals"])
def test_crf_forward_gpu_arguments(op):
    """crf.log_partition/log_likelihood/nll_grad/marginals' GPU path: the same refusals as viterbi's."""
    fn = getattr(kexue.crf, op)
    tagged = op in ("log_likelihood", "nll_grad")
    call = (lambda em, A, **kw: fn(em, FakeGPU(np.zeros((2, 3), np.int64)), A, **kw)) if tagged else fn
    em, A = FakeGPU(np.zeros((2, 3, 4))), FakeGPU(np.zeros((4, 4)))
    with pytest.raises(TypeError, match=rf"\[kexue.crf.{op}\] kexue allocates GPU outputs with the input's library"):
        call(em, A)
    with pytest.raises(ValueError, match=rf"\[kexue.crf.{op}\] emissions must be 3-D \[B,T,K\]; got shape \(2, 3\)"):
        call(FakeGPU(np.zeros((2, 3))), A)
    with pytest.raises(ValueError, match=rf"\[kexue.crf.{op}\] allowed must be .* a triple"):
        call(em, A, allowed=(None,))
    h, t = np.zeros((2, 3, 4)), np.zeros((4, 4))
    with pytest.raises(ValueError, match=rf"\[kexue.crf.{op}\] stream is for GPU arrays"):
        fn(h, np.zeros((2, 3), np.int64), t, stream=0) if tagged else fn(h, t, stream=0)
    ref = getattr(kexue.reference.crf, op)
    with pytest.raises(ValueError, match=rf"\[kexue.reference.crf.{op}\] stream is for GPU arrays"):
        ref(h, np.zeros((2, 3), np.int64), t, stream=0) if tagged else ref(h, t, stream=0)


@pytest.mark.skipif(not kc.built(), reason="kexue._cuda not built")
def test_optimizer_classes_gpu_arguments():
    """The classes with CUDA kernels take GPU params; the others, bfloat16
    state and libraries kexue cannot allocate with are refused at construction."""
    p = FakeGPU(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"\[kexue.optim.LAMB\] got parameters in GPU memory, but LAMB has no CUDA kernel"):
        kexue.optim.LAMB([p])
    with pytest.raises(ValueError, match=r"\[kexue.optim.Adafactor\] got parameters in GPU memory"):
        kexue.optim.Adafactor([p])
    with pytest.raises(TypeError, match=r"\[kexue.optim.AdamW\] kexue allocates GPU state with the parameters' library"):
        kexue.optim.AdamW([p])


def test_stream_argument():
    p, g, m, v = _host()
    with pytest.raises(ValueError, match=r"\[kexue.optim.adamw_\] stream is for GPU arrays"):
        F.adamw_(p, g, m, v, 1, stream=0)
    with pytest.raises(ValueError, match=r"\[kexue.optim.clip_grad_norm_\] stream is for GPU arrays"):
        kexue.optim.clip_grad_norm_([g], 1.0, stream=0)
    if kc.built():
        for s, err in [("s", TypeError), (True, TypeError), (-1, ValueError), (object(), TypeError)]:
            with pytest.raises(err, match=r"\[kexue.optim.lion_\] stream must be"):
                F.lion_(FakeGPU(p), FakeGPU(g), FakeGPU(m), 1, stream=s)
        assert kc._module("x").get_stream() == 0  # restored after every call
    np.testing.assert_array_equal(p, _host()[0])


def test_without_cuda_build(monkeypatch):
    """An installation without kexue._cuda refuses GPU arrays by name."""
    monkeypatch.setattr(kc, "_mod", None)
    monkeypatch.setattr(kc, "_tried", True)
    assert not kc.built() and kc.device_count() == 0 and not kc.is_available()
    p, g, m, v = _host()
    with pytest.raises(ValueError, match=r"\[kexue.optim.adamw_\] got arrays in GPU memory, but this installation of kexue has no CUDA kernels"):
        F.adamw_(FakeGPU(p), FakeGPU(g), FakeGPU(m), FakeGPU(v), 1)
    with pytest.raises(ValueError, match=r"\[kexue.optim.clip_grad_norm_\] got arrays in GPU memory"):
        kexue.optim.clip_grad_norm_([FakeGPU(g)], 1.0)


def test_core_without_kernels_refuses():
    """kexue._core (no kernels, ever) says so when handed a GPU array directly."""
    p, g, m, v = _host()
    with pytest.raises(ValueError, match=r"\[kexue.optim.adamw_\] got arrays in GPU memory, but this build of kexue has no CUDA kernels"):
        kexue._core.optim_adam([FakeGPU(p)], [FakeGPU(g)], [FakeGPU(m)], [FakeGPU(v)], None, 1,
                               lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                               amsgrad=False, decoupled=True, grad_scale=1.0, seed=0)
    np.testing.assert_array_equal(p, _host()[0])


# ------------------------------------------------------------------ on a GPU

def _gpu_lib():
    if not kc.is_available():
        return None
    try:
        import torch
        if torch.cuda.is_available():
            return "torch"
    except ImportError:
        pass
    try:
        import cupy  # noqa: F401
        return "cupy"
    except ImportError:
        return None


gpu = pytest.mark.skipif(_gpu_lib() is None, reason="needs a GPU, kexue._cuda and torch.cuda or CuPy")


def to_gpu(a):
    if _gpu_lib() == "torch":
        import torch
        return torch.from_numpy(np.ascontiguousarray(a)).cuda()
    import cupy
    return cupy.asarray(a)


def to_host(x):
    if _gpu_lib() == "torch":
        return x.cpu().numpy()
    return x.get()


def sync():
    if _gpu_lib() == "torch":
        import torch
        torch.cuda.synchronize()
    else:
        import cupy
        cupy.cuda.runtime.deviceSynchronize()


SHAPES = [(3, 5), (0,), (1,), (1000,), (37, 129)]

RULES = {
    "sgd": (lambda p, g, s, t, **kw: F.sgd_(p, g, s[0], t, lr=0.05, momentum=0.9, nesterov=True,
                                             weight_decay=0.01, grad_scale=0.5, **kw), 1),
    "sgd_plain": (lambda p, g, s, t, **kw: F.sgd_(p, g, None, t, lr=0.05, **kw), 0),
    "adam_l2": (lambda p, g, s, t, **kw: F.adam_(p, g, s[0], s[1], t, lr=1e-2, weight_decay=0.01, **kw), 2),
    "adamw_amsgrad": (lambda p, g, s, t, **kw: F.adamw_(p, g, s[0], s[1], t, lr=1e-2, amsgrad=True,
                                                        max_exp_avg_sqs=s[2], grad_scale=0.25, **kw), 3),
    "adax": (lambda p, g, s, t, **kw: F.adax_(p, g, s[0], s[1], t, lr=1e-2, weight_decay=0.05, **kw), 2),
    "lion": (lambda p, g, s, t, **kw: F.lion_(p, g, s[0], t, lr=1e-2, weight_decay=0.1, grad_scale=2.0, **kw), 1),
}


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_steps_bitwise_equal_cpu(rule, dtype):
    fn, nstate = RULES[rule]
    r = np.random.default_rng(len(rule))
    params = [r.standard_normal(s).astype(dtype) for s in SHAPES]
    states = [[np.abs(r.standard_normal(s)).astype(dtype) * 0.1 for s in SHAPES] for _ in range(nstate)]
    grads_per_step = [[r.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(3)]
    grads_per_step[1][3][7] = np.nan
    grads_per_step[2][4][0, 3] = np.inf
    dp = [to_gpu(p) for p in params]
    ds = [[to_gpu(x) for x in st] for st in states]
    for t, grads in enumerate(grads_per_step, start=1):
        fn(params, grads, states, t)
        fn(dp, [to_gpu(g) for g in grads], ds, t)
    sync()
    for i in range(len(SHAPES)):
        np.testing.assert_array_equal(to_host(dp[i]), params[i], err_msg=f"{rule} params[{i}]")
        for k in range(nstate):
            np.testing.assert_array_equal(to_host(ds[k][i]), states[k][i], err_msg=f"{rule} state {k}[{i}]")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["clip", "smooth"])
def test_gpu_clip_grad_norm(dtype, mode):
    r = np.random.default_rng(5)
    grads = [r.standard_normal(s).astype(dtype) for s in [(300, 301), (0,), (1,), (5000,)]]
    dg = [to_gpu(g) for g in grads]
    n_cpu = kexue.optim.clip_grad_norm_(grads, 3.0, mode=mode)
    n_gpu = kexue.optim.clip_grad_norm_(dg, 3.0, mode=mode)
    assert abs(n_gpu - n_cpu) <= 1e-14 * n_cpu
    eps = np.finfo(dtype).eps
    for g, d in zip(grads, dg):
        np.testing.assert_allclose(to_host(d), g, rtol=4 * eps, atol=0)
    # non-finite: the norm says so and nothing is scaled
    bad = [to_gpu(np.array([1.0, np.inf], dtype)), to_gpu(np.ones(3, dtype))]
    assert not np.isfinite(kexue.optim.clip_grad_norm_(bad, 1.0))
    np.testing.assert_array_equal(to_host(bad[1]), np.ones(3, dtype))


@pytest.mark.gpu
@gpu
def test_gpu_stream_and_host_pointer():
    if _gpu_lib() != "torch":
        pytest.skip("the stream case uses torch.cuda.Stream")
    import torch
    r = np.random.default_rng(9)
    p, g, m, v = (r.standard_normal(4096).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    dp, dg, dm, dv = (to_gpu(x) for x in (p, g, m, v))
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    F.adamw_(dp, dg, dm, dv, 1, stream=s)
    s.synchronize()
    F.adamw_(p, g, m, v, 1)
    np.testing.assert_array_equal(dp.cpu().numpy(), p)
    # host memory behind a __cuda_array_interface__ is refused by the pointer check
    host = np.zeros(4096, np.float32)
    with pytest.raises(ValueError, match=r"params\[0\] is labelled as memory of cuda:0 but is host memory"):
        F.sgd_(FakeGPU(host), dg, None, 1, lr=0.1)


@pytest.mark.gpu
@gpu
def test_gpu_torch_parameters():
    """nn.Parameters that require grad (torch refuses their
    __cuda_array_interface__) are read through torch's own attributes."""
    if _gpu_lib() != "torch":
        pytest.skip("needs torch.cuda")
    import torch
    r = np.random.default_rng(11)
    host = [r.standard_normal(s).astype(np.float32) for s in [(64, 33), (33,), (0,)]]
    grads = [r.standard_normal(h.shape).astype(np.float32) for h in host]
    params = [torch.nn.Parameter(torch.from_numpy(h.copy()).cuda()) for h in host]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    assert all(kc.is_gpu_array(p) for p in params)
    F.adamw_(params, [torch.from_numpy(g).cuda() for g in grads], m, v, 1, lr=1e-2)
    hm = [np.zeros_like(h) for h in host]
    hv = [np.zeros_like(h) for h in host]
    F.adamw_(host, grads, hm, hv, 1, lr=1e-2)
    for p, h in zip(params, host):
        np.testing.assert_array_equal(p.detach().cpu().numpy(), h)
    with pytest.raises(ValueError, match=r"params\[0\] must be C-contiguous"):
        F.sgd_([params[0].detach().t()], [params[0].detach().t()], None, 1, lr=0.1)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 9, 5), (3, 1, 1), (2, 0, 3), (4, 33, 300), (64, 50, 40)])
def test_gpu_viterbi_bitwise_equal_cpu(dtype, shape):
    B, T, K = shape
    r = np.random.default_rng(B * 100 + T + K)
    em = (np.round(r.standard_normal(shape) * 4) / 4).astype(dtype)  # coarse: ties happen
    A = (np.round(r.standard_normal((K, K)) * 4) / 4).astype(dtype)
    start, end = r.standard_normal(K).astype(dtype), r.standard_normal(K).astype(dtype)
    mask = r.random((B, T)) < 0.8
    if B > 1:
        mask[1] = False  # an empty row
    allowed = (r.random((K, K)) < 0.8, r.random(K) < 0.8, r.random(K) < 0.8)
    if B > 2 and T > 1:
        em[2, 1, 0] = np.nan
    for kw in [{}, {"mask": mask, "start": start, "end": end, "allowed": allowed}]:
        want_p, want_s = kexue.crf.viterbi(em, A, **kw)
        gkw = {k: (tuple(to_gpu(x) for x in v) if isinstance(v, tuple) else to_gpu(v)) for k, v in kw.items()}
        got_p, got_s = kexue.crf.viterbi(to_gpu(em), to_gpu(A), **gkw)
        sync()
        np.testing.assert_array_equal(to_host(got_p), want_p)
        np.testing.assert_array_equal(to_host(got_s), want_s)
        assert to_host(got_s).dtype == dtype


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 9, 5), (3, 1, 1), (2, 0, 3), (4, 33, 300), (64, 50, 40)])
def test_gpu_crf_forward_matches_cpu(dtype, shape):
    """log Z, log p(tags), marginals and nll_grad on the GPU (float64 inside) against the
    CPU's float64 results: 1e-12 relative in float64 (1e-11 of max(1, |x|) for
    the gradients), two float32 ulps in float32."""
    B, T, K = shape
    r = np.random.default_rng(B * 100 + T + K)
    em = r.standard_normal(shape).astype(dtype)
    A = r.standard_normal((K, K)).astype(dtype)
    start, end = r.standard_normal(K).astype(dtype), r.standard_normal(K).astype(dtype)
    tags = r.integers(0, K, (B, T))
    mask = r.random((B, T)) < 0.8
    if B > 1:
        mask[1] = False  # an empty row
    allowed = (r.random((K, K)) < 0.8, r.random(K) < 0.8, r.random(K) < 0.8)
    tol = 2 * np.finfo(np.float32).eps if dtype == np.float32 else 1e-12
    for kw in [{}, {"mask": mask, "start": start, "end": end, "allowed": allowed}]:
        hkw = {k: (tuple(x.astype(np.float64) if x.dtype == dtype else x for x in v) if isinstance(v, tuple)
                   else (v.astype(np.float64) if v.dtype == dtype else v)) for k, v in kw.items()}
        want_z = kexue.crf.log_partition(em.astype(np.float64), A.astype(np.float64), **hkw)
        want_l = kexue.crf.log_likelihood(em.astype(np.float64), tags, A.astype(np.float64), **hkw)
        gkw = {k: (tuple(to_gpu(x) for x in v) if isinstance(v, tuple) else to_gpu(v)) for k, v in kw.items()}
        got_z = kexue.crf.log_partition(to_gpu(em), to_gpu(A), **gkw)
        got_l = kexue.crf.log_likelihood(to_gpu(em), to_gpu(tags), to_gpu(A), **gkw)
        sync()
        for got, want in [(to_host(got_z), want_z), (to_host(got_l), want_l)]:
            assert got.dtype == dtype and got.shape == (B,)
            np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
            np.testing.assert_array_equal(got[~np.isfinite(want)], want[~np.isfinite(want)])
            fin = np.isfinite(want)
            np.testing.assert_array_less(np.abs(got[fin] - want[fin]), tol * np.maximum(1.0, np.abs(want[fin])) + 1e-300)
        # marginals, and nll_grad: the loss and all four gradients
        want_mu = kexue.crf.marginals(em.astype(np.float64), A.astype(np.float64), **hkw)
        got_mu = to_host(kexue.crf.marginals(to_gpu(em), to_gpu(A), **gkw))
        assert got_mu.dtype == dtype and got_mu.shape == want_mu.shape
        np.testing.assert_array_equal(np.isnan(got_mu), np.isnan(want_mu))
        ok = ~np.isnan(want_mu)
        np.testing.assert_array_less(np.abs(got_mu[ok] - want_mu[ok]), tol + 1e-300)
        want = kexue.crf.nll_grad(em.astype(np.float64), tags, A.astype(np.float64), **hkw)
        got = kexue.crf.nll_grad(to_gpu(em), to_gpu(tags), to_gpu(A), **gkw)
        sync()
        gtol = 2 * np.finfo(np.float32).eps if dtype == np.float32 else 1e-11
        for name, g, w in zip(want._fields, got, want):
            g = to_host(g)
            assert g.dtype == dtype and g.shape == w.shape, name
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=name)
            ok = ~np.isnan(w)
            if name == "loss":
                np.testing.assert_array_equal(g[np.isinf(w)], w[np.isinf(w)])
                ok &= np.isfinite(w)
            np.testing.assert_array_less(np.abs(g[ok] - w[ok]), gtol * np.maximum(1.0, np.abs(w[ok])) + 1e-300,
                                         err_msg=name)
        again = kexue.crf.nll_grad(to_gpu(em), to_gpu(tags), to_gpu(A), **gkw)
        sync()
        for x, y in zip(got, again):  # the batch sums run in a fixed order
            assert to_host(x).tobytes() == to_host(y).tobytes()
    bad = tags.copy()
    if B and T:
        bad[0, 0] = K
        out = None
        with pytest.raises(IndexError, match=r"\[kexue.crf.log_likelihood\] tags"):
            out = kexue.crf.log_likelihood(to_gpu(em), to_gpu(bad), to_gpu(A))
        with pytest.raises(IndexError, match=r"\[kexue.crf.nll_grad\] tags"):
            out = kexue.crf.nll_grad(to_gpu(em), to_gpu(bad), to_gpu(A))
        assert out is None


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("cls, kw", [
    ("AdamW", {"lr": 1e-2}), ("Adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 1e-2, "momentum": 0.9, "nesterov": True}), ("AdaX", {"lr": 1e-2}),
    ("Lion", {"lr": 1e-3, "weight_decay": 0.1}),
])
def test_gpu_optimizer_classes(cls, kw):
    r = np.random.default_rng(3)
    host = [r.standard_normal(s).astype(np.float32) for s in [(40, 30), (30,), (1,)]]
    gpu_p = [to_gpu(h.copy()) for h in host]
    opt_h = getattr(kexue.optim, cls)(host, **kw)
    opt_g = getattr(kexue.optim, cls)(gpu_p, **kw)
    for _ in range(3):
        grads = [r.standard_normal(h.shape).astype(np.float32) for h in host]
        assert opt_h.step(grads)
        assert opt_g.step([to_gpu(g) for g in grads])
    sync()
    for a, b in zip(gpu_p, host):
        np.testing.assert_array_equal(to_host(a), b)
    # clipping folded in: the norm agrees to rounding, so the params to a few ulp
    grads = [r.standard_normal(h.shape).astype(np.float32) * 10 for h in host]
    opt_h.step(grads, max_grad_norm=1.0)
    opt_g.step([to_gpu(g) for g in grads], max_grad_norm=1.0)
    for a, b in zip(gpu_p, host):
        np.testing.assert_allclose(to_host(a), b, rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match=r"params\[1\] must be a GPU array of the library of params\[0\]"):
        getattr(kexue.optim, cls)([gpu_p[0], host[0]], **kw)
    # state_dict round trip stays on the device
    sd = opt_g.state_dict()
    opt_g2 = getattr(kexue.optim, cls)([to_gpu(h.copy()) for h in host], **kw)
    opt_g2.load_state_dict(sd)
    assert opt_g2.step_count == opt_g.step_count
    for s1, s2 in zip(opt_g.state, opt_g2.state):
        for k in s1:
            np.testing.assert_array_equal(to_host(s1[k]), to_host(s2[k]))
