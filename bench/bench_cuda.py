"""Benchmark of kexue's CUDA kernels (issue 8) against torch's CUDA equivalents.

Runs only where kexue has its CUDA kernels (``kexue.cuda.is_available()``)
and torch sees a GPU; elsewhere it prints why and returns no rows. The ops
with CUDA kernels in this release are the optimizer steps and the global
norm clip; one call over the 64-array transformer-like mix of bench_optim
(``bench_shapes``), float32, totalling 64M and 256M elements (16M with
--quick), parameters and state as torch.cuda tensors:

- AdamW, SGD (momentum 0.9), Lion, AdaX: ``kexue.optim.functional``'s
  ``adamw_`` / ``sgd_`` / ``lion_`` / ``adax_`` on the tensors (one launch
  per array) against ``torch.optim.AdamW`` / ``SGD`` with ``foreach=True``
  (torch-foreach) and ``fused=True`` (torch-fused); torch has no Lion or
  AdaX;
- ``clip_grad_norm_`` against ``torch.nn.utils.clip_grad_norm_``
  (``foreach=True``), max_norm 0.1% under the current norm so both scale.
  kexue returns the norm as a float (it waits for it); torch returns a
  tensor, so its row adds a ``.item()`` to wait for the same thing.

Times: medians of CUDA-event-timed calls (``torch.cuda.Event``) after three
warm-ups (the host's time per call, which its launches wait for, is printed
as progress). The "threads" column is 1: one host thread launches. "kx GB/s":
the bytes a step must move (AdamW, AdaX: 28 per element; SGD momentum,
Lion: 20; clip: 12, as bench_optim) over kexue's time, and "kx %bw" that
as a percent of the device-to-device copy bandwidth measured in the same
run (``b.copy_(a)`` of 1 GiB, bytes read + written, best of 10).

- ``crf.viterbi``, ``crf.log_likelihood`` and ``crf.nll_grad`` (float32,
  25% of each row's tail masked, as prefixes; nll_grad against pytorch-crf's
  forward + autograd backward)
  against pytorch-crf's ``decode`` on the GPU (when installed; it returns
  Python lists) and kexue's own CPU kernels at the machine's threads
  ("kexue-cpu", wall-clock median), paths and scores checked equal first.

Correctness before timing: two kexue AdamW / SGD / Lion / AdaX steps on the
GPU equal two kexue steps on the CPU bit for bit over the same arrays, and
AdamW's agree with torch's fused AdamW to 1e-5 relative.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import numpy as np

import kexue
from kexue.optim import functional as F

try:  # installed as kexue._bench, or run as a script from bench/
    from . import _harness
    from .bench_optim import bench_shapes
except ImportError:
    import _harness  # type: ignore[no-redef]
    from bench_optim import bench_shapes  # type: ignore[no-redef]

Case = _harness.Case
Row = _harness.Row
row = _harness.row
progress = _harness.progress

BYTES = {"adamw_": 28, "adax_": 28, "sgd_ momentum=0.9": 20, "lion_": 20, "clip_grad_norm_": 12}


def _why_not() -> str | None:
    if not kexue.cuda.built():
        return "kexue has no CUDA kernels here (kexue._cuda was not built)"
    if not kexue.cuda.is_available():
        return "kexue sees no CUDA device"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return None


def gpu_time(torch, fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``fn()`` between two CUDA events (the GPU's time)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e-3)
    return statistics.median(times)


def copy_bandwidth(torch, nbytes: int = 1 << 30) -> float:
    a = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    b = torch.empty_like(a)
    best = min(gpu_time(torch, lambda: b.copy_(a), 1, warmup=1) for _ in range(10))
    del a, b
    return 2 * nbytes / best


def check_against_cpu(torch) -> None:
    """Two GPU steps of each optimizer == two CPU steps, bit for bit; AdamW ~ torch fused."""
    shapes = bench_shapes(4 << 20)
    r = np.random.default_rng(0)
    host = [r.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[r.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(2)]
    steps = {
        "adamw_": (2, lambda p, g, s, t: F.adamw_(p, g, s[0], s[1], t, lr=1e-3)),
        "sgd_": (1, lambda p, g, s, t: F.sgd_(p, g, s[0], t, lr=1e-2, momentum=0.9)),
        "lion_": (1, lambda p, g, s, t: F.lion_(p, g, s[0], t, lr=1e-4)),
        "adax_": (2, lambda p, g, s, t: F.adax_(p, g, s[0], s[1], t, lr=1e-3)),
    }
    for name, (ns, fn) in steps.items():
        cp = [x.copy() for x in host]
        cs = [[np.zeros_like(x) for x in host] for _ in range(ns)]
        gp = [torch.from_numpy(x).cuda() for x in host]
        gs = [[torch.zeros_like(x) for x in gp] for _ in range(ns)]
        for t in (1, 2):
            fn(cp, grads[t - 1], cs, t)
            fn(gp, [torch.from_numpy(x).cuda() for x in grads[t - 1]], gs, t)
        torch.cuda.synchronize()
        for i, (a, b) in enumerate(zip(gp, cp)):
            _harness.assert_equal(f"cuda {name} params[{i}] vs the CPU", a.cpu().numpy(), b)
        if name == "adamw_":
            tp = [torch.nn.Parameter(torch.from_numpy(x).cuda()) for x in host]
            opt = torch.optim.AdamW(tp, lr=1e-3, fused=True)
            for t in (1, 2):
                for p, g in zip(tp, grads[t - 1]):
                    p.grad = torch.from_numpy(g).cuda()
                opt.step()
            for i, (a, b) in enumerate(zip(tp, cp)):
                _harness.assert_close(f"cuda adamw_ params[{i}] vs torch fused", a.detach().cpu().numpy(), b,
                                      rtol=1e-5, atol=1e-7)


def run(quick: bool, threads: Sequence[int]) -> list[Row]:
    why = _why_not()
    if why is not None:
        progress(f"cuda: skipped ({why})")
        return []
    import torch

    name = torch.cuda.get_device_name()
    progress(f"cuda: {name}; checking kexue's GPU steps against its CPU steps")
    check_against_cpu(torch)
    bw = copy_bandwidth(torch)
    progress(f"cuda: device-to-device copy {bw / 1e9:.0f} GB/s")
    repeats = 10 if quick else 30
    rows: list[Row] = []
    for total in ([16 << 20] if quick else [64 << 20, 256 << 20]):
        shapes = bench_shapes(total)
        label = f"{total >> 20}M in 64 arrays ({name})"
        gen = torch.Generator(device="cuda").manual_seed(0)
        params = [torch.randn(s, device="cuda", generator=gen) for s in shapes]
        grads = [torch.randn(s, device="cuda", generator=gen) * 1e-3 for s in shapes]

        def case(op: str) -> Case:
            return Case("cuda", op, label, "float32", 1)

        def kx_row(op: str, fn) -> None:
            c = case(op)
            t = gpu_time(torch, fn, repeats)
            rows.append(row(c, "kexue", t, nbytes=BYTES[op] * total, bandwidth=bw))
            torch.cuda.synchronize()
            host = []
            for _ in range(5):  # the host's share: the call returns once its launches are queued
                t0 = time.perf_counter()
                fn()
                host.append(time.perf_counter() - t0)
                torch.cuda.synchronize()
            progress(f"{c.label()}: kexue {t * 1e3:.3f} ms on the GPU's clock, "
                     f"{statistics.median(host) * 1e3:.3f} ms on the host's (median of 5)")

        def torch_row(op: str, impl: str, fn) -> None:
            t = gpu_time(torch, fn, repeats)
            rows.append(row(case(op), impl, t))

        def stepper(n_state: int, update):
            """kexue's step over fresh zero state, the step number counting up."""
            state = [[torch.zeros_like(p) for p in params] for _ in range(n_state)]
            t = [0]

            def fn():
                t[0] += 1
                update(state, t[0])
            return fn

        def torch_rows(op: str, cls, **hyper) -> None:
            for impl, kw in (("torch-foreach", {"foreach": True}), ("torch-fused", {"fused": True})):
                tp = [torch.nn.Parameter(p.clone()) for p in params]
                for p, g in zip(tp, grads):
                    p.grad = g
                opt = cls(tp, **hyper, **kw)
                torch_row(op, impl, opt.step)
                del opt, tp

        kx_row("adamw_", stepper(2, lambda s, t: F.adamw_(params, grads, s[0], s[1], t, lr=1e-6)))
        torch_rows("adamw_", torch.optim.AdamW, lr=1e-6)
        kx_row("sgd_ momentum=0.9", stepper(1, lambda s, t: F.sgd_(params, grads, s[0], t, lr=1e-6, momentum=0.9)))
        torch_rows("sgd_ momentum=0.9", torch.optim.SGD, lr=1e-6, momentum=0.9)
        kx_row("lion_", stepper(1, lambda s, t: F.lion_(params, grads, s[0], t, lr=1e-7)))
        kx_row("adax_", stepper(2, lambda s, t: F.adax_(params, grads, s[0], s[1], t, lr=1e-7)))

        def under_norm(clip):
            """Each call clips to 0.1% under the current norm, so every call scales."""
            cur = [float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))]

            def fn():
                cur[0] *= 0.999
                return clip(cur[0])
            return fn

        kx_row("clip_grad_norm_", under_norm(lambda mx: kexue.optim.clip_grad_norm_(grads, mx)))
        holders = [torch.nn.Parameter(torch.empty_like(g)) for g in grads]
        for h, g in zip(holders, grads):
            h.grad = g  # torch clips the .grad of parameters
        torch_row("clip_grad_norm_", "torch-foreach", under_norm(
            lambda mx: torch.nn.utils.clip_grad_norm_(holders, mx, foreach=True).item()))
        del holders
        del params, grads
        torch.cuda.empty_cache()
    rows += run_viterbi(torch, name, repeats, quick)
    return rows


def run_viterbi(torch, name: str, repeats: int, quick: bool) -> list[Row]:
    """crf.viterbi on the GPU against pytorch-crf's decode on the GPU and kexue's CPU kernels."""
    try:
        import torchcrf
    except ImportError:
        torchcrf = None
    rows: list[Row] = []
    shapes = [(64, 64, 16)] if quick else [(64, 64, 16), (256, 128, 32), (512, 256, 64)]
    for B, T, K in shapes:
        c = Case("cuda", "crf.viterbi", f"B={B} T={T} K={K} ({name})", "float32", 1)
        r = np.random.default_rng(0)
        em = r.standard_normal((B, T, K)).astype(np.float32)
        A = r.standard_normal((K, K)).astype(np.float32)
        mask = np.ones((B, T), bool)
        mask[:, T * 3 // 4:] = r.random((B, T - T * 3 // 4)) < 0.5
        mask[:, T * 3 // 4:] = np.minimum.accumulate(mask[:, T * 3 // 4:], axis=1)  # prefixes, as pytorch-crf needs
        gem, gA, gmask = (torch.from_numpy(x).cuda() for x in (em, A, mask))
        p_cpu, s_cpu = kexue.crf.viterbi(em, A, mask=mask)
        p_gpu, s_gpu = kexue.crf.viterbi(gem, gA, mask=gmask)
        _harness.assert_equal("cuda crf.viterbi paths vs the CPU", p_gpu.cpu().numpy(), p_cpu)
        _harness.assert_equal("cuda crf.viterbi scores vs the CPU", s_gpu.cpu().numpy(), s_cpu)
        t = gpu_time(torch, lambda: kexue.crf.viterbi(gem, gA, mask=gmask), repeats)
        rows.append(row(c, "kexue", t))
        progress(f"{c.label()}: kexue {t * 1e3:.3f} ms")
        rows.append(row(c, "kexue-cpu", _harness.time_median(
            lambda: kexue.crf.viterbi(em, A, mask=mask), _harness.budget(True))))
        if torchcrf is not None:
            crf = _pytorch_crf(torch, torchcrf, gA)
            paths = crf.decode(gem, gmask)
            for b in range(min(B, 8)):  # pytorch-crf's paths are the valid prefix
                n = int(mask[b].sum())
                _harness.assert_equal(f"pytorch-crf path {b}", np.array(paths[b]), p_cpu[b, :n])
            rows.append(row(c, "pytorch-crf", gpu_time(torch, lambda: crf.decode(gem, gmask), max(3, repeats // 5))))
        rows += _log_likelihood_rows(torch, torchcrf, name, repeats, (B, T, K), em, A, mask, gem, gA, gmask)
    return rows


def _pytorch_crf(torch, torchcrf, gA):
    """pytorch-crf's CRF on the GPU with kexue's transitions and no start/end scores."""
    crf = torchcrf.CRF(gA.shape[0], batch_first=True).cuda()
    with torch.no_grad():
        crf.transitions.copy_(gA)
        crf.start_transitions.zero_()
        crf.end_transitions.zero_()
    return crf


def _near_float64(what: str, got, want) -> None:
    """A float32 GPU result (float64 inside) within two float32 ulps of the CPU's float64 one."""
    eps = 2 * np.finfo(np.float32).eps
    _harness.assert_close(f"{what} vs the CPU in float64", got.cpu().numpy(), want, rtol=eps, atol=eps)


def _kexue_rows(torch, c: Case, on_gpu, on_cpu, repeats: int) -> list[Row]:
    """kexue on the GPU (CUDA events) and on the CPU (wall clock) for case c."""
    return [row(c, "kexue", gpu_time(torch, on_gpu, repeats)),
            row(c, "kexue-cpu", _harness.time_median(on_cpu, _harness.budget(True)))]


def _log_likelihood_rows(torch, torchcrf, name, repeats, shape, em, A, mask, gem, gA, gmask) -> list[Row]:
    """crf.log_likelihood on the GPU (float64 inside) against pytorch-crf's forward
    (reduction='none') on the GPU and kexue's CPU kernels, on viterbi's inputs."""
    B, T, K = shape
    c = Case("cuda", "crf.log_likelihood", f"B={B} T={T} K={K} ({name})", "float32", 1)
    tags = np.random.default_rng(1).integers(0, K, (B, T))
    gtags = torch.from_numpy(tags).cuda()
    want = kexue.crf.log_likelihood(em.astype(np.float64), tags, A.astype(np.float64), mask=mask)
    got = kexue.crf.log_likelihood(gem, gtags, gA, mask=gmask)
    _near_float64("cuda crf.log_likelihood", got, want)
    rows = _kexue_rows(torch, c, lambda: kexue.crf.log_likelihood(gem, gtags, gA, mask=gmask),
                       lambda: kexue.crf.log_likelihood(em, tags, A, mask=mask), repeats)
    if torchcrf is not None:
        crf = _pytorch_crf(torch, torchcrf, gA)
        with torch.no_grad():
            theirs = crf(gem, gtags, gmask, reduction="none")
        _harness.assert_close("pytorch-crf log-likelihood vs kexue's", theirs.cpu().numpy(), want,
                              rtol=1e-4, atol=1e-3)

        def fwd():
            with torch.no_grad():
                return crf(gem, gtags, gmask, reduction="none")
        rows.append(row(c, "pytorch-crf", gpu_time(torch, fwd, max(3, repeats // 5))))
    rows += _nll_grad_rows(torch, torchcrf, name, repeats, shape, em, A, mask, tags, gem, gA, gmask, gtags)
    return rows


def _nll_grad_rows(torch, torchcrf, name, repeats, shape, em, A, mask, tags, gem, gA, gmask, gtags) -> list[Row]:
    """crf.nll_grad (loss and all gradients) on the GPU against pytorch-crf's
    forward + autograd backward on the GPU and kexue's CPU kernels."""
    B, T, K = shape
    c = Case("cuda", "crf.nll_grad", f"B={B} T={T} K={K} ({name})", "float32", 1)
    want = kexue.crf.nll_grad(em.astype(np.float64), tags, A.astype(np.float64), mask=mask)
    got = kexue.crf.nll_grad(gem, gtags, gA, mask=gmask)
    for field, g, w in zip(want._fields, got, want):
        _near_float64(f"cuda crf.nll_grad {field}", g, w)
    rows = _kexue_rows(torch, c, lambda: kexue.crf.nll_grad(gem, gtags, gA, mask=gmask),
                       lambda: kexue.crf.nll_grad(em, tags, A, mask=mask), repeats)
    if torchcrf is not None:
        crf = _pytorch_crf(torch, torchcrf, gA)
        x = gem.clone().requires_grad_(True)

        def fwd_bwd():
            x.grad = None
            crf.zero_grad()
            loss = -crf(x, gtags, gmask, reduction="sum")
            loss.backward()
            return loss
        fwd_bwd()
        _harness.assert_close("pytorch-crf d_emissions vs kexue's", x.grad.cpu().numpy(), want.d_emissions,
                              rtol=1e-4, atol=1e-5)
        _harness.assert_close("pytorch-crf d_transitions vs kexue's", crf.transitions.grad.cpu().numpy(),
                              want.d_transitions, rtol=1e-4, atol=1e-3)
        rows.append(row(c, "pytorch-crf", gpu_time(torch, fwd_bwd, max(3, repeats // 5))))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    print(_harness.machine_header([1]))
    rows = run(args.quick, [1])
    _harness.print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
