"""Benchmark of the optimizers area: kexue.optim against its numpy reference and torch.optim.

One optimizer step over 64 float32 arrays (a transformer-like mix: one
embedding matrix, then 7 blocks of [d,3d], [d,d], [d,4d], [4d,d] matrices
and their bias / LayerNorm vectors; every matrix has both sides >= 128, so
Adafactor factors all of them) totalling 16M and 64M elements (4M and 16M
with --quick), at each thread count:

- AdamW, AdamW with ``state_dtype="bfloat16"``, Adam, SGD (momentum=0.9),
  AdaX, Adafactor (defaults: relative step, no momentum, parameter scaling),
  Lion; LAMB and Amos in the full run;
- ``clip_grad_norm_`` over the same arrays as gradients.

Columns:

- kexue: the core, ``opt.step(grads)`` (the parameters drift over the timed
  steps; each implementation starts again from the same initial values);
- reference: kexue.reference.optim (plain numpy) — at the smallest size
  only, single-threaded, and left out ('-') where it would take too long;
- torch / torch-foreach / torch-fused: ``torch.optim`` with
  ``foreach=False`` / ``foreach=True`` / ``fused=True`` where torch has the
  optimizer and supports the option on CPU (SGD, Adam, AdamW: all three;
  Adafactor: no ``fused``, and ``eps=(1e-15, 1e-3)`` so that its variance
  floor eps1**2 equals the spec's eps1 = 1e-30; no Lion, AdaX, LAMB or Amos
  in torch), with ``torch.set_num_threads`` matched. The bfloat16-state AdamW row is
  compared with torch's fused AdamW (float32 state: torch has no bfloat16
  state for float32 parameters). For ``clip_grad_norm_``:
  ``torch.nn.utils.clip_grad_norm_`` with ``foreach=False`` / ``True``;
- kx GB/s: the bytes one step must move (below) / kexue's time, and kx %bw:
  that as a percent of the memory bandwidth floor measured in the same run
  at the same thread count (harness ``stream_bandwidth``: STREAM-style
  copy, in-place add and triad on 3 x 128 MB arrays, best of N before each
  size and at the end of the run; the floor is the fastest one-pass kernel,
  normally the in-place add ``a += b`` — two reads and a write per element
  with no write-allocate traffic, the access pattern of an in-place
  optimizer step). Kernels streaming more arrays at once (AdamW: 7) can beat
  this 3-array kernel by 10-20% on a 2-core VM, so %bw may exceed 100%.

Bytes one step must move, per float32 element (reads + writes, each array
once per pass):

- AdamW / Adam / AdaX: read p, g, m, v; write p, m, v: 28;
- AdamW, bfloat16 state: read p (4), g (4), m (2), v (2); write p (4),
  m (2), v (2): 20;
- SGD momentum: read p, g, b; write p, b: 20;
- Lion: read p, g, m; write p, m: 20;
- LAMB: read p, g, m, v, write m, v (and the two norms), then read p, m, v
  and write p: 40;
- Amos (elementwise state): read p, g, v, b; write p, v, b: 28;
- Adafactor, factored array (3 passes: the row/column second moments and
  RMS(p) need one read of g and p; the update clip by the global RMS(U)
  needs all of them, so a second read of g; then read g, p and write p): 24,
  plus the row and column vectors; unfactored (vectors): read g, p, V (both
  RMS values are elementwise in the new V), then read g, p, V and write p,
  V: 32;
- clip_grad_norm_: read g for the norm, then read and write g to scale it:
  12. Every timed call clips (max_norm is set 0.1% under the current norm,
  for kexue and torch alike), so neither skips the scaling pass.

Correctness before any timing: every optimizer's first two kexue steps
against the reference's on small arrays of odd shapes (parameters and
state, float32 tolerance); at the smallest bench size kexue's first step
against the reference's; at every size kexue's first step against every
torch variant's (parameters within 1e-5 relative; Adafactor: torch's
Adafactor, eps1 as above, computes the same first step as the spec's
bert4keras form for these shapes, but takes RMS(p) and RMS(U) from float32
norms that are off by up to 7e-4 on the largest array, so its update is
compared, within 2e-3), and kexue's first step at every thread count
bitwise equal to its first. clip_grad_norm_: the norm against
numpy's float64 norm (torch's, float32, within 2e-3) and the clipped
gradients against g * max_norm / (the norm it returned).

The end of the report compares the numbers with issue 4's performance bar
at 64M elements and 2 threads (informational): AdamW within 10% of torch's
fused AdamW; bfloat16-state AdamW at least 1.3x faster than it; Adafactor at
least 3x faster than torch's (the faster of its variants); every optimizer
within 1.3x of its bytes-moved floor; clip_grad_norm_ at least 2x faster
than torch's (the faster variant).

Memory: at 64M elements the initial parameters, the gradients and one work
copy (768 MB) are shared by every implementation (torch's parameters are
``torch.from_numpy`` views of the work copy, reset before each run); each
optimizer's state is freed before the next one is built. Peak about 2.5 GB.

Run: ``python bench/bench_optim.py [--quick] [--threads 1 2]`` or
``python -m kexue bench optim``.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import kexue
import numpy as np

try:
    import kexue.optim as kx_optim
    import kexue.reference.optim as ref_optim
except ImportError as exc:  # say what is missing instead of a bare traceback
    raise ImportError(
        f"bench_optim needs kexue.optim (the core) and kexue.reference.optim (issue 4): {exc}"
    ) from exc

_NEEDED = ("SGD", "Adam", "AdamW", "AdaX", "Adafactor", "Lion", "LAMB", "Amos", "clip_grad_norm_")
for _mod in (kx_optim, ref_optim):
    _missing = [n for n in _NEEDED if not hasattr(_mod, n)]
    if _missing:
        raise ImportError(
            f"bench_optim: {_mod.__name__} lacks {', '.join(_missing)} "
            "(is the core built? issue 4)"
        )

try:  # installed as kexue._bench, or run as a script from bench/
    from . import _harness
except ImportError:
    import _harness  # type: ignore[no-redef]

Budget = _harness.Budget
Case = _harness.Case
Row = _harness.Row
assert_close = _harness.assert_close
assert_equal = _harness.assert_equal
budget = _harness.budget
fmt_bandwidth = _harness.fmt_bandwidth
fmt_ratio = _harness.fmt_ratio
fmt_time = _harness.fmt_time
lookup = _harness.lookup
machine_header = _harness.machine_header
num_threads = _harness.num_threads
print_table = _harness.print_table
progress = _harness.progress
row = _harness.row
stream_bandwidth = _harness.stream_bandwidth
time_median = _harness.time_median
time_once = _harness.time_once
timed_check = _harness.timed_check

AREA = "optim"
DTYPE = np.float32
N_ARRAYS = 64
SIZES_FULL = (16 << 20, 64 << 20)
SIZES_QUICK = (4 << 20, 16 << 20)
BAR_SIZE = 64 << 20  # the size the performance bar is stated for
SEED = 4

# Small arrays of odd shapes for the kexue-vs-reference check of every optimizer.
SMALL_SHAPES = [(257, 130), (128, 300), (64, 64), (3, 200), (2, 130, 129), (1000,), (7,), (1,)]

# The reference is run (and timed) at the smallest bench size only when its
# time on the small arrays, scaled by the element count, is under this.
REF_LIMIT_QUICK_S = 3.0
REF_LIMIT_FULL_S = 30.0
REF_BUDGET = Budget(seconds=3.0, min_repeats=1, max_repeats=10, accept_first_s=2.0)

STREAM_ARRAY_BYTES = 128 << 20  # 3 arrays: 384 MB, well above a 105 MB L3
STREAM_REPEATS_QUICK, STREAM_REPEATS_FULL = 5, 10

# float32 one-step results: kexue against the reference and against torch.
PARAM_RTOL = 1e-5
PARAM_ATOL = 1e-6  # relative to the largest |p|
STATE_RTOL = 1e-5
STATE_ATOL = 1e-6  # relative to the largest |state|
BF16_RTOL = 2.0**-7  # bfloat16 state: one unit in the last place
CLIP_NORM_RTOL = 1e-6  # kexue: float64 accumulation
TORCH_CLIP_NORM_RTOL = 2e-3  # torch's float32 norms: 2.3e-4 off at 64M elements
CLIP_GRAD_RTOL = 1e-5
CLIP_SHRINK = 0.999  # every timed clip call scales by this
# torch's Adafactor takes RMS(p) and RMS(U) from float32 Tensor.norm(), which
# is off by up to ~7e-4 relative on a 17.5M-element array (64M bench): its
# update is compared with kexue's at this tolerance instead.
TORCH_ADAFACTOR_RTOL = 2e-3
# torch's Adafactor clamps the second moment at eps1**2 (default eps1 = float32
# eps, so 1.4e-14) where the spec adds eps1 = 1e-30 to g*g: for |g| < 1.2e-7
# the two differ. eps1 = 1e-15 makes torch's clamp 1e-30; lr = 1e-2 is its
# relative step min(lr, 1/sqrt(t)), the spec's default.
TORCH_ADAFACTOR_KW = dict(lr=1e-2, eps=(1e-15, 1e-3))

TORCH_IMPLS = {"loop": "torch", "foreach": "torch-foreach", "fused": "torch-fused"}
TORCH_MODE_KWARGS = {
    "loop": dict(foreach=False),
    "foreach": dict(foreach=True),
    "fused": dict(fused=True),
}

OP_CLIP = "clip_grad_norm_"
CLIP_BYTES_PER_ELEMENT = 12

# Filled by run() for report(): the bandwidth per thread count, the bytes per
# (op, shape) and the largest shape run.
MEASURED: dict[str, object] = {}


# ---------------------------------------------------------------------------
# inputs


def bench_shapes(total: int) -> list[tuple[int, ...]]:
    """64 deterministic shapes totalling ``total`` elements.

    An embedding matrix [E, d], then 7 blocks of
    [d,3d] [3d] [d,d] [d] [d] [d,4d] [4d] [4d,d] [d]; E fills the total and the
    last vector takes what is left over (fewer than d elements).
    """
    d = max(128, int(math.sqrt(total / 100)) // 64 * 64)
    block = [(d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    shapes = block * 7
    rest = total - sum(math.prod(s) for s in shapes)
    rows = rest // d
    if rows < 128:
        raise ValueError(f"bench_shapes: total {total} too small")
    shapes.insert(0, (rows, d))
    shapes[-1] = (shapes[-1][0] + rest - rows * d,)
    assert len(shapes) == N_ARRAYS and sum(math.prod(s) for s in shapes) == total
    return shapes


class Inputs:
    """Initial parameters, gradients and one work copy of the parameters (float32)."""

    def __init__(self, shapes: Sequence[tuple[int, ...]], seed: int):
        rng = np.random.default_rng(seed)
        self.shapes = [tuple(s) for s in shapes]
        self.p0 = []
        self.g = []
        for s in self.shapes:
            p = rng.standard_normal(s, dtype=np.float32)
            p *= np.float32(0.5)
            g = rng.standard_normal(s, dtype=np.float32)
            g *= np.float32(1e-2)
            self.p0.append(p)
            self.g.append(g)
        self.work = [np.empty_like(p) for p in self.p0]
        self.total = sum(p.size for p in self.p0)
        self.p_scale = max(float(np.max(np.abs(p))) for p in self.p0)

    def reset(self, src: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """The work arrays, set to the initial parameters (or to ``src``)."""
        for w, x in zip(self.work, self.p0 if src is None else src):
            np.copyto(w, x)
        return self.work

    @property
    def label(self) -> str:
        return f"{len(self.shapes)} arrays, {self.total / (1 << 20):g}M"


def copies(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [a.copy() for a in arrays]


# ---------------------------------------------------------------------------
# optimizers and the bytes they must move


def factored(shape: tuple[int, ...], min_dim: int = 128) -> tuple[int, int] | None:
    """(row elements, col elements) of Adafactor's factored state, or None (the spec's rule)."""
    if len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda a: (shape[a], a))
    a1, a2 = order[-1], order[-2]
    if shape[a2] < min_dim:
        return None
    n = math.prod(shape)
    return n // shape[a1], n // shape[a2]


def elementwise_bytes(per_element: int) -> Callable[[Sequence[tuple[int, ...]]], int]:
    return lambda shapes: per_element * sum(math.prod(s) for s in shapes)


def adafactor_bytes(shapes: Sequence[tuple[int, ...]]) -> int:
    """24 B per element of a factored array (+ its row/column state read and
    written once), 32 B per element of an unfactored one (see the docstring)."""
    total = 0
    for s in shapes:
        n = math.prod(s)
        f = factored(s)
        total += 32 * n if f is None else 24 * n + 8 * (f[0] + f[1])
    return total


@dataclass(frozen=True)
class Opt:
    """One benchmarked optimizer configuration."""

    op: str  # the table's name
    cls: str  # class in kexue.optim and kexue.reference.optim
    kwargs: dict
    nbytes: Callable[[Sequence[tuple[int, ...]]], int]
    bytes_doc: str
    torch_cls: str | None = None
    torch_kwargs: dict = field(default_factory=dict)
    torch_modes: tuple[str, ...] = ()
    full_only: bool = False
    # None: torch's parameters after one step within PARAM_RTOL of kexue's;
    # a float: torch's update p1 - p0 within this relative tolerance of kexue's.
    torch_update_rtol: float | None = None


ADAMW_KW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
ALL_MODES = ("loop", "foreach", "fused")

OPTS = [
    Opt("AdamW", "AdamW", ADAMW_KW, elementwise_bytes(28), "read p,g,m,v; write p,m,v",
        "AdamW", ADAMW_KW, ALL_MODES),
    Opt("AdamW(state=bf16)", "AdamW", dict(ADAMW_KW, state_dtype="bfloat16"),
        elementwise_bytes(20), "read p,g (f32), m,v (bf16); write p (f32), m,v (bf16)",
        "AdamW", ADAMW_KW, ("fused",)),
    Opt("Adam", "Adam", dict(lr=1e-3), elementwise_bytes(28), "read p,g,m,v; write p,m,v",
        "Adam", dict(lr=1e-3), ALL_MODES),
    Opt("SGD(momentum=0.9)", "SGD", dict(lr=1e-3, momentum=0.9), elementwise_bytes(20),
        "read p,g,b; write p,b", "SGD", dict(lr=1e-3, momentum=0.9), ALL_MODES),
    Opt("AdaX", "AdaX", {}, elementwise_bytes(28), "read p,g,m,v; write p,m,v"),
    Opt("Adafactor", "Adafactor", {}, adafactor_bytes,
        "factored: g x3, p x2 read, p written; vectors: g,p,V x2 read, p,V written",
        "Adafactor", TORCH_ADAFACTOR_KW, ("loop", "foreach"),
        torch_update_rtol=TORCH_ADAFACTOR_RTOL),
    Opt("Lion", "Lion", dict(lr=1e-4), elementwise_bytes(20), "read p,g,m; write p,m"),
    Opt("LAMB", "LAMB", {}, elementwise_bytes(40),
        "read p,g,m,v, write m,v; read p,m,v, write p", full_only=True),
    Opt("Amos", "Amos", {}, elementwise_bytes(28), "read p,g,v,b; write p,v,b", full_only=True),
]


def kexue_opt(o: Opt, params: list[np.ndarray]):
    return getattr(kx_optim, o.cls)(params, **o.kwargs)


def reference_opt(o: Opt, params: list[np.ndarray]):
    return getattr(ref_optim, o.cls)(params, **o.kwargs)


# ---------------------------------------------------------------------------
# correctness


def check_params(what: str, got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> None:
    """Every array within PARAM_RTOL (atol relative to the largest |entry|)."""
    if len(got) != len(want):
        raise AssertionError(f"{what}: {len(got)} arrays, expected {len(want)}")
    scale = max((float(np.max(np.abs(w))) for w in want if w.size), default=1.0)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(f"{what} param {i} {w.shape}", g, w, rtol=PARAM_RTOL, atol=PARAM_ATOL * scale)


def check_update(
    what: str,
    got: Sequence[np.ndarray],
    want: Sequence[np.ndarray],
    p0: Sequence[np.ndarray],
    rtol: float,
) -> None:
    """The updates got - p0 and want - p0 within ``rtol`` (atol: rtol x the largest |update|)."""
    for i, (g, w, p) in enumerate(zip(got, want, p0)):
        du_want = w.astype(np.float64) - p
        scale = float(np.max(np.abs(du_want))) if du_want.size else 1.0
        assert_close(f"{what} update {i} {w.shape}", g.astype(np.float64) - p, du_want,
                     rtol=rtol, atol=rtol * scale)


def decode_bf16(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def check_state(what: str, got: dict, want: dict) -> None:
    """Two state_dict()s: step counts equal, every slot close (bf16 slots within one ulp)."""
    if got["step_count"] != want["step_count"]:
        raise AssertionError(f"{what}: step_count {got['step_count']} != {want['step_count']}")
    for i, (gs, ws) in enumerate(zip(got["state"], want["state"])):
        if sorted(gs) != sorted(ws):
            raise AssertionError(f"{what} state {i}: slots {sorted(gs)} != {sorted(ws)}")
        for k in ws:
            g, w = np.asarray(gs[k]), np.asarray(ws[k])
            rtol = STATE_RTOL
            if w.dtype == np.uint16:
                g, w, rtol = decode_bf16(g), decode_bf16(w), BF16_RTOL
            scale = float(np.max(np.abs(w))) if w.size else 1.0
            assert_close(f"{what} state {i} {k}", g, w, rtol=rtol, atol=STATE_ATOL * scale)


def check_small(o: Opt, x: Inputs) -> float:
    """Two kexue steps against two reference steps on small arrays.

    Returns the reference's time for one step (for the estimate at the bench sizes).
    """
    what = f"{o.op} on {len(x.shapes)} small arrays"
    kp = copies(x.p0)
    rp = copies(x.p0)
    kopt = kexue_opt(o, kp)
    ropt = reference_opt(o, rp)
    t_ref = []
    for step in (1, 2):
        if not kopt.step(x.g):
            raise AssertionError(f"kexue {what}: step {step} returned False")
        t, _ = time_once(lambda: ropt.step(x.g))
        t_ref.append(t)
        check_params(f"kexue {what} step {step} vs reference", kp, rp)
        check_state(f"kexue {what} step {step} vs reference", kopt.state_dict(), ropt.state_dict())
    return min(t_ref)


def float64_norm(arrays: Sequence[np.ndarray]) -> float:
    total = 0.0
    for a in arrays:
        a64 = a.ravel().astype(np.float64)
        total += float(a64 @ a64)
    return math.sqrt(total)


def check_clipped(what: str, grads: Sequence[np.ndarray], g: Sequence[np.ndarray], factor: float):
    for i, (got, src) in enumerate(zip(grads, g)):
        want = src * np.float32(factor)
        scale = float(np.max(np.abs(want))) if want.size else 1.0
        assert_close(f"{what} grad {i}", got, want, rtol=CLIP_GRAD_RTOL, atol=1e-7 * scale)


# ---------------------------------------------------------------------------
# torch peers


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


class TorchOpt:
    """A torch.optim optimizer over torch.from_numpy views of numpy parameters."""

    def __init__(self, torch, o: Opt, mode: str, params: list[np.ndarray], grads: list[np.ndarray]):
        self.params = [torch.from_numpy(p) for p in params]
        for tp, g in zip(self.params, grads):
            tp.grad = torch.from_numpy(g)
        kw = dict(o.torch_kwargs)
        kw.update(TORCH_MODE_KWARGS[mode])
        self.opt = getattr(torch.optim, o.torch_cls)(self.params, **kw)

    def step(self):
        self.opt.step()
        return True


class Clipper:
    """Each call clips ``grads`` to CLIP_SHRINK times their current norm (so every call scales)."""

    def __init__(self, fn: Callable[[float], object], norm0: float):
        self.fn = fn
        self.max_norm = norm0 * CLIP_SHRINK

    def __call__(self):
        out = self.fn(self.max_norm)
        self.max_norm *= CLIP_SHRINK
        return float(out)


# ---------------------------------------------------------------------------
# the bench


def measure_bandwidth(quick: bool, threads: Sequence[int]) -> dict[int, object]:
    bw = {}
    repeats = STREAM_REPEATS_QUICK if quick else STREAM_REPEATS_FULL
    for n in threads:
        with num_threads(n):
            progress(
                f"[{AREA}] memory bandwidth (3 x {STREAM_ARRAY_BYTES >> 20} MB float32, "
                f"threads={n}) ..."
            )
            bw[n] = stream_bandwidth(STREAM_ARRAY_BYTES, repeats, threads=n)
    return bw


def run_optimizer(
    o: Opt, x: Inputs, torch, threads: Sequence[int], bw: dict, bud, with_ref: bool,
    ref_small_s: float, small_total: int, quick: bool,
) -> list[Row]:
    rows: list[Row] = []
    nbytes = o.nbytes(x.shapes)

    # The reference once (plain numpy; the thread count does not apply).
    ref_s, ref_p1 = None, None
    if with_ref:
        estimate = ref_small_s * x.total / small_total
        if estimate <= (REF_LIMIT_QUICK_S if quick else REF_LIMIT_FULL_S):
            progress(f"[{AREA}] {o.op} {x.label} reference ...")
            p = x.reset()
            ropt = reference_opt(o, p)
            ref_s, _ = time_once(lambda: ropt.step(x.g))
            ref_p1 = copies(p)
            if not quick:
                ref_s = time_median(lambda: ropt.step(x.g), REF_BUDGET, first=ref_s)
            del ropt
            gc.collect()
        else:
            progress(f"[{AREA}] {o.op} {x.label} reference: skipped (about {estimate:.0f} s)")

    kx_p1 = None  # kexue's parameters after its first step at the first thread count
    for n in threads:
        with num_threads(n):
            case = Case(AREA, o.op, x.label, np.dtype(DTYPE).name, n)
            progress(case.label())
            p = x.reset()
            opt = kexue_opt(o, p)

            def check_kx(out, n=n, p=p):
                nonlocal kx_p1
                if not out:
                    raise AssertionError(f"kexue {o.op} {x.label}: step returned {out!r}")
                if kx_p1 is None:
                    if ref_p1 is not None:
                        check_params(f"kexue {o.op} {x.label} vs reference", p, ref_p1)
                    kx_p1 = copies(p)
                else:
                    for i, (a, b) in enumerate(zip(p, kx_p1)):
                        assert_equal(f"kexue {o.op} {x.label} threads={n} vs threads={threads[0]} "
                                     f"param {i}", a, b)

            t = timed_check(lambda opt=opt: opt.step(x.g), check_kx, bud)
            del opt
            gc.collect()
            rows.append(row(case, "kexue", t, nbytes=nbytes, bandwidth=bw[n].floor))
            rows.append(row(case, "reference", ref_s))

            for mode, impl in TORCH_IMPLS.items():
                t = None
                if torch is not None and mode in o.torch_modes:
                    p = x.reset()
                    topt = TorchOpt(torch, o, mode, p, x.g)

                    def check_torch(out, p=p, impl=impl):
                        what = f"{impl} {o.torch_cls} {x.label} vs kexue"
                        if o.torch_update_rtol is None:
                            check_params(what, p, kx_p1)
                        else:
                            check_update(what, p, kx_p1, x.p0, o.torch_update_rtol)

                    t = timed_check(topt.step, check_torch, bud)
                    del topt
                    gc.collect()
                rows.append(row(case, impl, t))
    return rows


def run_clip(
    x: Inputs, torch, threads: Sequence[int], bw: dict, bud, with_ref: bool, quick: bool
) -> list[Row]:
    rows: list[Row] = []
    nbytes = CLIP_BYTES_PER_ELEMENT * x.total
    norm0 = float64_norm(x.g)

    def first_call_check(what: str, grads, rtol: float):
        def check(out):
            assert_close(f"{what} norm", out, norm0, rtol=rtol, atol=0.0)
            # scaled by max_norm / (the norm it computed)
            check_clipped(what, grads, x.g, norm0 * CLIP_SHRINK / out)

        return check

    ref_s = None
    if with_ref:
        progress(f"[{AREA}] {OP_CLIP} {x.label} reference ...")
        grads = x.reset(x.g)
        clip = Clipper(lambda m: ref_optim.clip_grad_norm_(grads, m), norm0)
        ref_s, out = time_once(clip)
        first_call_check(f"reference {OP_CLIP} {x.label}", grads, CLIP_NORM_RTOL)(out)
        if not quick:
            ref_s = time_median(clip, REF_BUDGET, first=ref_s)

    for n in threads:
        with num_threads(n):
            case = Case(AREA, OP_CLIP, x.label, np.dtype(DTYPE).name, n)
            progress(case.label())
            grads = x.reset(x.g)
            clip = Clipper(lambda m, grads=grads: kx_optim.clip_grad_norm_(grads, m), norm0)
            check = first_call_check(f"kexue {OP_CLIP} {x.label}", grads, CLIP_NORM_RTOL)
            t = timed_check(clip, check, bud)
            rows.append(row(case, "kexue", t, nbytes=nbytes, bandwidth=bw[n].floor))
            rows.append(row(case, "reference", ref_s))
            for mode, impl in TORCH_IMPLS.items():
                t = None
                if torch is not None and mode != "fused":
                    grads = x.reset(x.g)
                    tparams = [torch.from_numpy(p) for p in x.p0]
                    for tp, g in zip(tparams, grads):
                        tp.grad = torch.from_numpy(g)
                    foreach = mode == "foreach"

                    def torch_clip(m, tparams=tparams, foreach=foreach):
                        return torch.nn.utils.clip_grad_norm_(tparams, m, foreach=foreach)

                    check = first_call_check(f"{impl} {OP_CLIP} {x.label}", grads,
                                             TORCH_CLIP_NORM_RTOL)
                    t = timed_check(Clipper(torch_clip, norm0), check, bud)
                    del tparams
                rows.append(row(case, impl, t))
    return rows


def run(quick: bool, threads: Sequence[int]) -> list[Row]:
    """Check and time every optimizer at every size and thread count; return the rows."""
    torch = load_torch()
    bud = budget(quick)
    rows: list[Row] = []
    sizes = SIZES_QUICK if quick else SIZES_FULL
    opts = [o for o in OPTS if not (quick and o.full_only)]

    bw: dict[int, object] = {}

    def remeasure() -> None:
        """Measure the bandwidth again; keep the best rate of each kernel."""
        for n, b in measure_bandwidth(quick, threads).items():
            bw[n] = bw[n].merge(b) if n in bw else b

    remeasure()
    MEASURED.clear()
    MEASURED["bandwidth"] = bw
    MEASURED["bytes"] = {}

    # Correctness first on small arrays: every optimizer against its reference.
    small = Inputs(SMALL_SHAPES, SEED)
    ref_small_s = {}
    for o in opts:
        progress(f"[{AREA}] {o.op} on small arrays: kexue vs reference ...")
        ref_small_s[o.op] = check_small(o, small)
    progress(f"[{AREA}] {OP_CLIP} on small arrays: kexue vs reference ...")
    norm = float64_norm(small.g)
    for mode in ("clip", "smooth"):
        kg, rg = copies(small.g), copies(small.g)
        kn = kx_optim.clip_grad_norm_(kg, 0.5 * norm, mode=mode)
        rn = ref_optim.clip_grad_norm_(rg, 0.5 * norm, mode=mode)
        assert_close(f"kexue {OP_CLIP} mode={mode} norm", kn, norm, rtol=CLIP_NORM_RTOL, atol=0)
        assert_close(f"reference {OP_CLIP} mode={mode} norm", rn, norm, rtol=CLIP_NORM_RTOL, atol=0)
        check_params(f"kexue {OP_CLIP} mode={mode} grads vs reference", kg, rg)

    for k, total in enumerate(sizes):
        if k:
            remeasure()
        progress(f"[{AREA}] inputs: {N_ARRAYS} arrays, {total / (1 << 20):g}M elements ...")
        x = Inputs(bench_shapes(total), SEED + k + 1)
        MEASURED["largest"] = x.label
        MEASURED["largest_total"] = x.total
        for o in opts:
            MEASURED["bytes"][(o.op, x.label)] = o.nbytes(x.shapes)
            rows += run_optimizer(
                o, x, torch, threads, bw, bud, k == 0, ref_small_s[o.op], small.total, quick
            )
        MEASURED["bytes"][(OP_CLIP, x.label)] = CLIP_BYTES_PER_ELEMENT * x.total
        rows += run_clip(x, torch, threads, bw, bud, k == 0, quick)
        del x
        gc.collect()

    # The bandwidth again at the end (the machine may have been busy before):
    # the floor is the best of every measurement.
    remeasure()
    return [
        dataclasses.replace(r, bandwidth=bw[r.threads].floor) if r.bandwidth is not None else r
        for r in rows
    ]


# ---------------------------------------------------------------------------
# the performance bar of issue 4


def report(rows: Sequence[Row], file=None) -> None:
    """Print issue 4's performance-bar ratios with PASS/FAIL (informational)."""
    file = file or sys.stdout
    have = sorted({r.threads for r in rows})
    if not have:
        return
    n = 2 if 2 in have else max(have)
    shape = MEASURED.get("largest")
    notes = []
    if n != 2:
        notes.append("the bar is stated for 2 threads")
    if MEASURED.get("largest_total") != BAR_SIZE:
        notes.append(f"the bar is stated for {BAR_SIZE >> 20}M elements")
    note = "".join(f"; {s}" for s in notes)
    print(f"Performance bar (issue 4; float32, {shape}, threads={n}{note}; informational):",
          file=file)

    bw = (MEASURED.get("bandwidth") or {}).get(n)
    if bw is not None:
        print(f"  memory bandwidth: {bw.describe()} ({fmt_bandwidth(bw.floor)})", file=file)

    def t(impl: str, op: str) -> float | None:
        return lookup(rows, impl, op=op, shape=shape, threads=n)

    def fastest_torch(op: str) -> tuple[str | None, float | None]:
        got = [(t(i, op), i) for i in TORCH_IMPLS.values() if t(i, op) is not None]
        if not got:
            return None, None
        s, i = min(got)
        return i, s

    nbytes = MEASURED.get("bytes") or {}
    floor_bw = bw.floor if bw is not None else None

    def rate(op: str, seconds: float) -> str:
        """Effective GB/s of a step of ``op`` taking ``seconds``, and its percent of the floor."""
        b = nbytes.get((op, shape))
        if b is None:
            return ""
        pct = f", {100 * b / floor_bw / seconds:.0f}% of the floor" if floor_bw else ""
        return f" ({b / seconds / 1e9:.1f} GB/s{pct})"

    # AdamW float32 state within 10% of torch fused (both at the floor).
    mine, theirs = t("kexue", "AdamW"), t("torch-fused", "AdamW")
    label = "AdamW (float32 state) vs torch fused AdamW"
    if mine is None or theirs is None:
        print(f"  {label}: n/a", file=file)
    else:
        r = mine / theirs
        verdict = "PASS" if r <= 1.10 else "FAIL"
        print(f"  {label}: kexue {fmt_time(mine)}{rate('AdamW', mine)}, torch "
              f"{fmt_time(theirs)}{rate('AdamW', theirs)}: kexue time / torch time {r:.2f} "
              f"(bar <= 1.10)  {verdict}", file=file)

    def speedup(label: str, mine: float | None, theirs: float | None, need: float, who: str = ""):
        if mine is None or theirs is None:
            print(f"  {label}: n/a", file=file)
            return
        r = theirs / mine
        verdict = "PASS" if r >= need else "FAIL"
        print(f"  {label}{who}: {fmt_ratio(r)} (bar >= {need:g}x)  {verdict}", file=file)

    speedup("AdamW(state=bf16) vs torch fused AdamW (float32 state)",
            t("kexue", "AdamW(state=bf16)"), t("torch-fused", "AdamW(state=bf16)"), 1.3)
    impl, s = fastest_torch("Adafactor")
    speedup("Adafactor vs torch.optim.Adafactor", t("kexue", "Adafactor"), s, 3.0,
            f" ({impl}, the faster)" if impl else "")
    impl, s = fastest_torch(OP_CLIP)
    speedup(f"{OP_CLIP} vs torch.nn.utils.clip_grad_norm_", t("kexue", OP_CLIP), s, 2.0,
            f" ({impl}, the faster)" if impl else "")

    # Every optimizer within 1.3x of its bytes-moved floor.
    limit = 1.3
    print(f"  within {limit:g}x of the bytes-moved floor (bytes / {fmt_bandwidth(floor_bw)}):",
          file=file)
    ops = [o.op for o in OPTS if any(r.op == o.op for r in rows)] + [OP_CLIP]
    docs = {o.op: o.bytes_doc for o in OPTS}
    docs[OP_CLIP] = "read g; read g, write g"
    width = max(len(op) for op in ops)
    worst, missing = None, []
    for op in ops:
        mine = t("kexue", op)
        b = nbytes.get((op, shape))
        if mine is None or b is None or floor_bw is None:
            print(f"    {op.ljust(width)}  n/a", file=file)
            missing.append(op)
            continue
        ideal = b / floor_bw
        r = mine / ideal
        per = b / MEASURED["largest_total"]
        verdict = "PASS" if r <= limit else "FAIL"
        print(f"    {op.ljust(width)}  {per:4.1f} B/el ({docs[op]}): {b / 1e9:.2f} GB, floor "
              f"{fmt_time(ideal)}, kexue {fmt_time(mine)} = {r:.2f}x  {verdict}", file=file)
        if worst is None or r > worst[0]:
            worst = (r, op)
    label = f"every optimizer within {limit:g}x of its floor"
    if worst is None:
        print(f"  {label}: n/a", file=file)
    else:
        verdict = "PASS" if worst[0] <= limit and not missing else "FAIL"
        extra = f"; not run: {', '.join(missing)}" if missing else ""
        print(f"  {label}: worst {worst[1]} {worst[0]:.2f}x{extra}  {verdict}", file=file)


def main(argv: Sequence[str] | None = None) -> int:
    return _harness.main(__doc__, run, report, argv)


if __name__ == "__main__":
    sys.exit(main())
