"""Benchmark of kexue.attention: sdpa forward, forward+backward and decode against torch's SDPA.

float32, at each thread count (``kexue.set_num_threads`` and
``torch.set_num_threads`` matched in the same run):

- sdpa fwd / sdpa fwd causal: ``kexue.attention.sdpa(q, k, v, causal=)``,
  q, k, v [B,H,N,D] (N == M) at (B,H,N,D) = (1,8,1024,64), (1,8,4096,64),
  (4,16,512,64), (1,8,16384,64), (1,32,4096,128);
- sdpa fwd+bwd / sdpa fwd+bwd causal: ``sdpa(..., return_lse=True)`` then
  ``sdpa_backward(q, k, v, out, lse, dout)`` -> (dq, dk, dv), same shapes;
- decode: ``kexue.attention.decode(q, k_cache, v_cache, lengths)``, one new
  token per sequence, q [B,H,D] against caches [B,Hkv,M,D] of M = 4096 and
  32768 tokens, D = 128, every cache full (lengths = M): (B,H,Hkv,M) =
  (1,8,8,4k), (4,32,32,4k), (1,32,32,32k), (4,8,8,32k), (1,32,8,32k) (the last
  grouped-query: 4 query heads per cache head).

Columns:

- kexue: the core;
- reference: ``kexue.reference.attention`` (plain numpy, float64 inside; it
  materialises the [B,H,N,M] scores) — timed once per case (its time does not
  depend on the thread count) and only where its float64 scores fit in about
  1 GiB ('-' otherwise);
- torch: ``torch.nn.functional.scaled_dot_product_attention`` on the CPU
  (torch's flash kernel), the same tensors shared with numpy: forward under
  ``torch.no_grad()``; forward+backward as ``out = sdpa(q, k, v,
  is_causal=)`` + ``out.backward(dout)`` on leaves that require grad; decode
  as a query of length 1 against the whole cache (``enable_gqa=True`` for the
  grouped case);
- torch/kx: torch time / kexue time (above 1: kexue faster);
- kx GFLOP/s and kx %mm (sdpa only): kexue's floating-point rate and its
  percent of the float32 matmul rate measured in the same run at the same
  thread count: the median of numpy 2048 x 2048 float32 matmuls (2 * 2048^3
  flops each), in a subprocess whose BLAS threads are set to that count
  (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS), since numpy's
  BLAS cannot be limited in-process without threadpoolctl;
- kx GB/s and kx %bw (decode only, which reads each cache once): the bytes
  of the caches read (2 * B * Hkv * M * D * 4) plus q and out, over kexue's
  time, and as a percent of a numpy copy's bandwidth (read + write) measured
  at that thread count.

FLOP convention (the FlashAttention papers'): a matmul of [n,d] by [d,m]
counts 2*n*d*m; the softmax and masking are not counted. The forward is two
matmuls (Q K^T and P V): 4*B*H*N*M*D (D = Dv). The backward is five (the
recomputed Q K^T, dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q), 2.5x the
forward, so forward+backward counts 7 matmuls = 14*B*H*N*M*D. Causal counts
only the visible (query, key) pairs, N(N+1)/2 of N*N (about half). The same
flop count is used for every implementation (the table's column is kexue's;
the report gives torch's too).

Peak memory: the extra resident memory of one kexue forward at
(1,8,16384,64), non-causal, at the largest thread count, measured in a fresh
subprocess: VmHWM (peak RSS) after the call minus VmRSS before it, with q, k,
v allocated and touched and the peak reset first (``echo 5 >
/proc/self/clear_refs``; where that is refused, ``ru_maxrss`` from before the
call is the baseline, and the figure is marked as an estimate). It is
reported against the bytes of q + k + v + out (4 x 32 MiB; the scores of a
materialising implementation would take 8 GiB); the extra includes out
itself. torch's forward is measured the same way. (tracemalloc cannot see
C++ allocations, hence RSS.)

Every implementation's answer is checked before it is timed: kexue against the
reference where the reference runs, torch against kexue (out, and dq, dk, dv
for forward+backward; atol relative to the largest entry). Times are medians
over repeats (harness ``time_median``; calls above 4 s: median of 3).
``--quick`` runs small shapes only ((1,4,256,64) and a 2k decode), measures
the matmul rate on 1024 x 1024, probes the peak memory at (1,4,2048,64)
instead of N=16384 and not for torch.

The end of the report compares the numbers with issue 3's performance bar at
2 threads (informational): at (1,8,4096,64) forward at least as fast as torch
non-causal and at least 1.5x faster causal, forward+backward at least as fast
as torch's; non-causal forward at or above 55% of the sgemm rate; peak extra
memory at N=16384 under 2x the bytes of q+k+v+out.

Run: ``python bench/bench_attention.py [--quick] [--threads 1 2]`` or
``python -m kexue bench attention``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

import kexue.attention as att
import kexue.reference.attention as ref
import numpy as np

try:  # installed as kexue._bench, or run as a script from bench/
    from . import _harness
except ImportError:
    import _harness  # type: ignore[no-redef]

Budget = _harness.Budget
Case = _harness.Case
Row = _harness.Row
assert_close = _harness.assert_close
copy_bandwidth = _harness.copy_bandwidth
fmt_bandwidth = _harness.fmt_bandwidth
fmt_ratio = _harness.fmt_ratio
fmt_time = _harness.fmt_time
lookup = _harness.lookup
num_threads = _harness.num_threads
progress = _harness.progress
row = _harness.row
time_median = _harness.time_median
time_once = _harness.time_once

AREA = "attention"
DTYPE = np.float32

SHAPES_FULL = [(1, 8, 1024, 64), (1, 8, 4096, 64), (4, 16, 512, 64), (1, 8, 16384, 64),
               (1, 32, 4096, 128)]
SHAPES_QUICK = [(1, 4, 256, 64)]
# decode: (B, H, Hkv, M, D), every cache full
DECODE_FULL = [(1, 8, 8, 4096, 128), (4, 32, 32, 4096, 128), (1, 32, 32, 32768, 128),
               (4, 8, 8, 32768, 128), (1, 32, 8, 32768, 128)]
DECODE_QUICK = [(1, 8, 8, 2048, 128)]

# The reference runs where its float64 scores [B,H,N,M] (plus float64 copies of
# q, k, v) fit in this many bytes.
REF_MAX_BYTES = 1 << 30
REF_BUDGET = Budget(seconds=3.0, min_repeats=1, max_repeats=10, accept_first_s=2.0)

QUICK_BUDGET = Budget(seconds=0.05, min_repeats=2, max_repeats=50)
FULL_BUDGET = Budget(seconds=1.0, min_repeats=5, max_repeats=1000)
SLOW_S = 4.0  # a call slower than this (the check call) is timed twice more: median of 3
SLOW_BUDGET = Budget(seconds=0.0, min_repeats=2, max_repeats=2)

# sgemm: numpy float32 matmul of SGEMM_N x SGEMM_N, median of SGEMM_REPEATS
# (--quick: a 1024^2 matmul, to stay within a few seconds)
SGEMM_N, SGEMM_N_QUICK = 2048, 1024
SGEMM_REPEATS_QUICK, SGEMM_REPEATS_FULL = 5, 10
COPY_BYTES_QUICK, COPY_BYTES_FULL = 64 << 20, 256 << 20
COPY_REPEATS_QUICK, COPY_REPEATS_FULL = 3, 8

# peak memory probe
MEM_SHAPE_FULL = (1, 8, 16384, 64)
MEM_SHAPE_QUICK = (1, 4, 2048, 64)
MEM_LIMIT = 2.0  # extra peak < MEM_LIMIT x bytes(q + k + v + out)

# float32 kexue vs the float64-inside reference and vs torch's float32 kernel
OUT_TOL = 1e-4  # atol relative to the largest |entry|
GRAD_TOL = 1e-3
RTOL = 1e-3

OP_FWD = "sdpa fwd"
OP_FWD_C = "sdpa fwd causal"
OP_BWD = "sdpa fwd+bwd"
OP_BWD_C = "sdpa fwd+bwd causal"
OP_DECODE = "decode"
SDPA_OPS = [(OP_FWD, False, False), (OP_FWD_C, True, False), (OP_BWD, False, True),
            (OP_BWD_C, True, True)]

# Filled by run() for report().
MEASURED: dict[str, object] = {}


def shape_str(shape) -> str:
    return "(" + ",".join(map(str, shape)) + ")"


def decode_str(B, H, Hkv, M, D) -> str:
    gqa = f" Hkv={Hkv}" if Hkv != H else ""
    return f"B={B} H={H}{gqa} M={M // 1024}k D={D}"


# ---------------------------------------------------------------------------
# flops


def visible_pairs(N: int, M: int, causal: bool) -> int:
    """(query, key) pairs a query may see: N*M, or causal (end-aligned) sum_i min(M, i+M-N+1)."""
    if not causal:
        return N * M
    i = np.arange(N, dtype=np.int64)
    return int(np.clip(i + (M - N) + 1, 0, M).sum())


def sdpa_flops(B, H, N, M, D, causal: bool, backward: bool) -> float:
    """2 matmuls forward (4*pairs*D), 7 with the backward (14*pairs*D), per (b, h)."""
    per_pair = (14 if backward else 4) * D
    return float(B * H * per_pair * visible_pairs(N, M, causal))


# ---------------------------------------------------------------------------
# machine rates measured in the same run


SGEMM_CODE = """
import json, sys, time
import numpy as np
n, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
ts = []
for _ in range(repeats):
    t0 = time.perf_counter()
    a @ b
    ts.append(time.perf_counter() - t0)
ts.sort()
print(json.dumps({"median_s": ts[len(ts) // 2]}))
"""


def sgemm_size(quick: bool) -> int:
    return SGEMM_N_QUICK if quick else SGEMM_N


def sgemm_rate(threads: int, quick: bool) -> float | None:
    """flop/s of numpy's float32 n x n matmul (median), BLAS limited to ``threads``."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        env[var] = str(threads)
    repeats = SGEMM_REPEATS_QUICK if quick else SGEMM_REPEATS_FULL
    size = sgemm_size(quick)
    try:
        r = subprocess.run([sys.executable, "-c", SGEMM_CODE, str(size), str(repeats)],
                           env=env, capture_output=True, text=True, timeout=600)
        median = json.loads(r.stdout.strip().splitlines()[-1])["median_s"]
    except Exception as e:  # the table still prints, without %mm
        progress(f"[{AREA}] sgemm probe failed ({e}): no %mm column")
        return None
    return 2.0 * size**3 / median


MEM_CODE = """
import json, os, resource, sys
import numpy as np
impl = sys.argv[1]
B, H, N, D, threads = map(int, sys.argv[2:7])

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None

rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((B, H, N, D), dtype=np.float32) for _ in range(3))
small = [np.ascontiguousarray(x[:, :, :256]) for x in (q, k, v)]
if impl == "kexue":
    import kexue, kexue.attention
    kexue.set_num_threads(threads)
    fn = lambda a, b, c: kexue.attention.sdpa(a, b, c)
else:
    import torch, torch.nn.functional as F
    torch.set_num_threads(threads)
    def fn(a, b, c):
        with torch.no_grad():
            return F.scaled_dot_product_attention(
                torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)).numpy()
fn(*small)  # thread pool, lazy initialisation
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
before = status("VmRSS")
base = before if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
out = fn(q, k, v)
peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"extra": peak - base, "reset": reset, "out_bytes": int(out.nbytes),
                  "in_bytes": int(q.nbytes + k.nbytes + v.nbytes)}))
"""


def peak_memory(impl: str, shape, threads: int) -> dict | None:
    """Extra peak RSS of one forward at ``shape`` in a fresh subprocess (see the docstring)."""
    B, H, N, D = shape
    args = [sys.executable, "-c", MEM_CODE, impl, str(B), str(H), str(N), str(D), str(threads)]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        progress(f"[{AREA}] peak memory probe ({impl}) failed: {e}")
        return None
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError, KeyError):
        err = (r.stderr or "").strip().splitlines()
        progress(f"[{AREA}] peak memory probe ({impl}) failed (exit {r.returncode})"
                 + (f": {err[-1]}" if err else ""))
        return None


# ---------------------------------------------------------------------------
# correctness


def close_scaled(what: str, got, want, tol: float) -> None:
    """assert_close with atol = tol * max(1e-30, largest |want|)."""
    want = np.asarray(want)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    assert_close(what, got, want, rtol=RTOL, atol=tol * max(scale, 1e-30))


def check_out(what: str, got, want) -> None:
    close_scaled(f"{what} out", got, want, OUT_TOL)


def check_grads(what: str, got, want) -> None:
    """(dq, dk, dv) against (dq, dk, dv)."""
    for name, g, w in zip(("dq", "dk", "dv"), got, want):
        close_scaled(f"{what} {name}", g, w, GRAD_TOL)


def check_and_time(fn: Callable[[], object], check: Callable[[object], None], quick: bool):
    """One call checked, then timed: (median seconds, the checked result)."""
    first, out = time_once(fn)
    check(out)
    if quick:
        bud = QUICK_BUDGET
    else:
        bud = SLOW_BUDGET if first > SLOW_S else FULL_BUDGET
    return time_median(fn, bud, first=first), out


# ---------------------------------------------------------------------------
# the implementations


class SdpaInputs:
    def __init__(self, shape, seed: int = 3):
        B, H, N, D = shape
        rng = np.random.default_rng(seed)
        self.shape = shape
        self.q, self.k, self.v, self.dout = (
            rng.standard_normal((B, H, N, D), dtype=DTYPE) for _ in range(4))

    def ref_bytes(self) -> int:
        B, H, N, D = self.shape
        return B * H * N * N * 8 + 3 * B * H * N * D * 8


def kx_fwd(att, x: SdpaInputs, causal: bool):
    return att.sdpa(x.q, x.k, x.v, causal=causal)


def kx_fwd_bwd(att, x: SdpaInputs, causal: bool):
    out, lse = att.sdpa(x.q, x.k, x.v, causal=causal, return_lse=True)
    return att.sdpa_backward(x.q, x.k, x.v, out, lse, x.dout, causal=causal)


class TorchSdpa:
    """torch's SDPA on the same arrays (shared memory)."""

    def __init__(self, torch, x: SdpaInputs):
        self.torch = torch
        self.F = torch.nn.functional
        self.q, self.k, self.v, self.dout = (
            torch.from_numpy(a) for a in (x.q, x.k, x.v, x.dout))
        self.leaves = [t.detach().requires_grad_(True) for t in (self.q, self.k, self.v)]

    def fwd(self, causal: bool):
        with self.torch.no_grad():
            return self.F.scaled_dot_product_attention(
                self.q, self.k, self.v, is_causal=causal).numpy()

    def fwd_bwd(self, causal: bool):
        q, k, v = self.leaves
        for t in self.leaves:
            t.grad = None
        out = self.F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out.backward(self.dout)
        return q.grad.numpy(), k.grad.numpy(), v.grad.numpy()


class DecodeInputs:
    def __init__(self, B, H, Hkv, M, D, seed: int = 4):
        rng = np.random.default_rng(seed)
        self.dims = (B, H, Hkv, M, D)
        self.q = rng.standard_normal((B, H, D), dtype=DTYPE)
        self.k = rng.standard_normal((B, Hkv, M, D), dtype=DTYPE)
        self.v = rng.standard_normal((B, Hkv, M, D), dtype=DTYPE)
        self.lengths = np.full(B, M, dtype=np.int64)

    def nbytes(self) -> int:
        # the caches read once, q read, out written
        return self.k.nbytes + self.v.nbytes + 2 * self.q.nbytes

    def ref_bytes(self) -> int:
        B, H, Hkv, M, D = self.dims
        return 2 * B * Hkv * M * D * 8 + B * H * M * 8


def kx_decode(att, x: DecodeInputs):
    return att.decode(x.q, x.k, x.v, x.lengths)


class TorchDecode:
    def __init__(self, torch, x: DecodeInputs):
        self.torch = torch
        self.F = torch.nn.functional
        self.q = torch.from_numpy(x.q).unsqueeze(2)  # [B,H,1,D]
        self.k, self.v = torch.from_numpy(x.k), torch.from_numpy(x.v)
        self.gqa = x.dims[1] != x.dims[2]

    def __call__(self):
        with self.torch.no_grad():
            kw = {"enable_gqa": True} if self.gqa else {}
            out = self.F.scaled_dot_product_attention(self.q, self.k, self.v, **kw)
        return out[:, :, 0].numpy()


# ---------------------------------------------------------------------------
# the bench


def load_torch():
    try:
        import torch
    except ImportError:
        progress(f"[{AREA}] torch not installed: the torch column is '-'")
        return None
    return torch


def time_reference(fn: Callable[[], object], quick: bool):
    """(seconds, output) of the reference: one call, more when cheap."""
    t, out = time_once(fn)
    if not quick:
        t = time_median(fn, REF_BUDGET, first=t)
    return t, out


def sdpa_rows(torch, shape, threads, quick: bool, mm: dict) -> list[Row]:
    """The four sdpa cases (fwd, causal, fwd+bwd, causal) at one shape, every thread count."""
    rows: list[Row] = []
    dt = np.dtype(DTYPE).name
    B, H, N, D = shape
    progress(f"[{AREA}] inputs {shape_str(shape)} ...")
    x = SdpaInputs(shape)
    tx = TorchSdpa(torch, x) if torch is not None else None
    refs: dict[str, tuple[float, object]] = {}
    if x.ref_bytes() <= REF_MAX_BYTES:
        for op, causal, bwd in SDPA_OPS:
            progress(f"[{AREA}] {op} {shape_str(shape)} reference ...")
            fn = kx_fwd_bwd if bwd else kx_fwd
            refs[op] = time_reference(lambda fn=fn, c=causal: fn(ref, x, c), quick)
    for n in threads:
        with num_threads(n):
            for op, causal, bwd in SDPA_OPS:
                case = Case(AREA, op, shape_str(shape), dt, n)
                progress(case.label())
                what = f"{op} {shape_str(shape)}"
                check = check_grads if bwd else check_out
                ref_s, ref_out = refs.get(op, (None, None))

                def check_kx(out, what=what, want=ref_out, check=check):
                    if want is not None:
                        check(f"kexue vs reference {what}", out, want)

                fn = kx_fwd_bwd if bwd else kx_fwd
                t, kx_out = check_and_time(lambda fn=fn, c=causal: fn(att, x, c), check_kx, quick)
                flops = sdpa_flops(B, H, N, N, D, causal, bwd)
                rows.append(row(case, "kexue", t, flops=flops, flop_rate=mm[n]))
                rows.append(row(case, "reference", ref_s))
                t = None
                if tx is not None:

                    def check_torch(out, what=what, want=kx_out, check=check):
                        check(f"torch vs kexue {what}", out, want)

                    peer = tx.fwd_bwd if bwd else tx.fwd
                    t, _ = check_and_time(lambda peer=peer, c=causal: peer(c), check_torch, quick)
                rows.append(row(case, "torch", t, flops=flops))
    return rows


def decode_rows(torch, dims, threads, quick: bool, mm: dict, bw: dict) -> list[Row]:
    """The decode case at one (B, H, Hkv, M, D), every thread count."""
    rows: list[Row] = []
    dt = np.dtype(DTYPE).name
    B, H, Hkv, M, D = dims
    label = decode_str(*dims)
    progress(f"[{AREA}] inputs decode {label} ...")
    x = DecodeInputs(*dims)
    tx = TorchDecode(torch, x) if torch is not None else None
    ref_s = ref_out = None
    if x.ref_bytes() <= REF_MAX_BYTES:
        progress(f"[{AREA}] decode {label} reference ...")
        ref_s, ref_out = time_reference(lambda: kx_decode(ref, x), quick)
    what = f"{OP_DECODE} {label}"
    for n in threads:
        with num_threads(n):
            case = Case(AREA, OP_DECODE, label, dt, n)
            progress(case.label())

            def check_kx(out):
                if ref_out is not None:
                    check_out(f"kexue vs reference {what}", out, ref_out)

            t, kx_out = check_and_time(lambda: kx_decode(att, x), check_kx, quick)
            rows.append(row(case, "kexue", t, nbytes=x.nbytes(), bandwidth=bw[n]))
            rows.append(row(case, "reference", ref_s))
            t = None
            if tx is not None:

                def check_torch(out, want=kx_out):
                    check_out(f"torch vs kexue {what}", out, want)

                t, _ = check_and_time(tx, check_torch, quick)
            rows.append(row(case, "torch", t))
    return rows


def run(quick: bool, threads: Sequence[int]) -> list[Row]:
    """Check and time every case at every thread count; return the rows."""
    torch = load_torch()
    rows: list[Row] = []
    shapes = SHAPES_QUICK if quick else SHAPES_FULL
    decodes = DECODE_QUICK if quick else DECODE_FULL
    MEASURED.clear()

    # rates measured in the same run, per thread count
    mm: dict[int, float | None] = {}
    bw: dict[int, float] = {}
    for n in threads:
        size = sgemm_size(quick)
        progress(f"[{AREA}] float32 matmul rate ({size}^2 numpy sgemm, {n} BLAS threads) ...")
        mm[n] = sgemm_rate(n, quick)
        progress(f"[{AREA}]   {mm[n] / 1e9:.1f} GFLOP/s" if mm[n] else f"[{AREA}]   n/a")
        nb = COPY_BYTES_QUICK if quick else COPY_BYTES_FULL
        progress(f"[{AREA}] memory bandwidth (numpy copy of {nb >> 20} MB, {n} threads) ...")
        bw[n] = copy_bandwidth(nb, COPY_REPEATS_QUICK if quick else COPY_REPEATS_FULL, threads=n)
    MEASURED["sgemm"] = mm
    MEASURED["sgemm_n"] = sgemm_size(quick)
    MEASURED["bandwidth"] = bw

    for shape in shapes:
        rows += sdpa_rows(torch, shape, threads, quick, mm)
    for dims in decodes:
        rows += decode_rows(torch, dims, threads, quick, mm, bw)

    # --- peak memory of one forward
    mem_shape = MEM_SHAPE_QUICK if quick else MEM_SHAPE_FULL
    n = max(threads)
    progress(f"[{AREA}] peak memory of one forward at {shape_str(mem_shape)}, {n} threads ...")
    MEASURED["memory_shape"] = mem_shape
    MEASURED["memory_threads"] = n
    MEASURED["memory"] = {"kexue": peak_memory("kexue", mem_shape, n)}
    if torch is not None and not quick:
        MEASURED["memory"]["torch"] = peak_memory("torch", mem_shape, n)
    return rows


# ---------------------------------------------------------------------------
# the performance bar of issue 3


def report(rows: Sequence[Row], file=None) -> None:
    """Print issue 3's performance-bar numbers with PASS/FAIL (informational)."""
    file = file or sys.stdout
    have = sorted({r.threads for r in rows})
    if not have:
        return
    n = 2 if 2 in have else max(have)
    note = "" if n == 2 else "; the bar is stated for 2 threads"
    print(f"Performance bar (issue 3; float32, threads={n}{note}; informational):", file=file)

    mm = (MEASURED.get("sgemm") or {}).get(n)
    mm_s = f"{mm / 1e9:.1f} GFLOP/s" if mm else "n/a"
    size = MEASURED.get("sgemm_n", SGEMM_N)
    print(f"  float32 matmul rate (numpy {size}^2 sgemm, median, {n} BLAS threads): {mm_s}",
          file=file)
    bw = (MEASURED.get("bandwidth") or {}).get(n)
    print(f"  memory bandwidth (numpy copy, read + write, {n} threads): {fmt_bandwidth(bw)}",
          file=file)

    main_shape = shape_str((1, 8, 4096, 64))
    bars = [(OP_FWD, 1.0), (OP_FWD_C, 1.5), (OP_BWD, 1.0), (OP_BWD_C, 1.0)]
    for op, need in bars:
        mine = lookup(rows, "kexue", op=op, shape=main_shape, threads=n)
        theirs = lookup(rows, "torch", op=op, shape=main_shape, threads=n)
        label = f"{op} vs torch at {main_shape}"
        if mine is None or theirs is None:
            print(f"  {label}: n/a (not run; --quick runs small shapes only)", file=file)
            continue
        r = theirs / mine
        verdict = "PASS" if r >= need else "FAIL"
        print(f"  {label}: {fmt_ratio(r)} ({fmt_time(mine)} vs {fmt_time(theirs)}; "
              f"bar >= {need:g}x)  {verdict}", file=file)

    # GFLOP/s of both and the sgemm share for every non-causal forward
    need_pct = 55.0
    for r in rows:
        if r.impl != "kexue" or r.op != OP_FWD or r.threads != n or not r.seconds or not r.flops:
            continue
        rate = r.flops / r.seconds
        theirs = lookup(rows, "torch", op=OP_FWD, shape=r.shape, threads=n)
        peer = f"; torch {r.flops / theirs / 1e9:.1f} GFLOP/s" if theirs else ""
        label = f"{OP_FWD} at {r.shape}: {rate / 1e9:.1f} GFLOP/s{peer}"
        if not mm:
            print(f"  {label}", file=file)
            continue
        pct = 100.0 * rate / mm
        if r.shape == main_shape:
            verdict = "PASS" if pct >= need_pct else "FAIL"
            print(f"  {label}; kexue {pct:.0f}% of sgemm (bar >= {need_pct:g}%)  {verdict}",
                  file=file)
        else:
            print(f"  {label}; kexue {pct:.0f}% of sgemm", file=file)

    mem = MEASURED.get("memory") or {}
    shape = MEASURED.get("memory_shape")
    if shape is not None:
        label = (f"peak extra memory of one forward at {shape_str(shape)} "
                 f"(threads={MEASURED.get('memory_threads')})")
        kx = mem.get("kexue")
        if kx is None:
            print(f"  {label}: n/a (probe failed)", file=file)
        else:
            tensors = kx["in_bytes"] + kx["out_bytes"]
            x = kx["extra"] / tensors
            est = "" if kx["reset"] else " (estimate: peak RSS could not be reset)"
            peer = ""
            if mem.get("torch"):
                peer = f"; torch {mem['torch']['extra'] / 2**20:.1f} MiB"
            verdict = "PASS" if x < MEM_LIMIT else "FAIL"
            if shape != MEM_SHAPE_FULL:
                verdict += f" (the bar is stated for {shape_str(MEM_SHAPE_FULL)})"
            print(f"  {label}: {kx['extra'] / 2**20:.1f} MiB = {x:.2f}x the "
                  f"{tensors / 2**20:.0f} MiB of q+k+v+out{est}{peer} "
                  f"(bar < {MEM_LIMIT:g}x)  {verdict}", file=file)


def main(argv: Sequence[str] | None = None) -> int:
    return _harness.main(__doc__, run, report, argv)


if __name__ == "__main__":
    sys.exit(main())
