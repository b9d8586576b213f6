"""Benchmark of the losses area: kexue.losses and kexue.global_pointer against their peers.

float32, at each thread count:

- multilabel_crossentropy with its gradient, logits [4096, 1000], bool
  targets with about 5% positives;
- sparse_multilabel_crossentropy with its gradient, same logits, P=50 index
  slots per row (40 to 50 distinct positives, the rest padded with -1);
- global_pointer.loss with its gradient on GlobalPointer scores
  [B,E,T,T] = [16,10,256,256] (padding rows/columns and the lower triangle at
  -inf, a few gold spans per (batch, type));
- the GlobalPointer path for q, k [B,T,E,D] = [16,256,10,64]: scores
  (rope=True, adjacent-pair layout) + loss(return_grad=True) +
  scores_backward.

Columns:

- kexue: the core;
- reference: kexue.reference (plain numpy, float64 inside) — timed once per
  case, single-threaded, and left out ('-') where it would take too long
  (the GlobalPointer path always: it is checked on a slice, the first
  batch rows and tokens, only);
- torch: the same formulas written in torch (in this file), forward +
  backward through autograd, ``torch.set_num_threads`` matched: the stable
  ZLPR with an appended zero logit and ``torch.logsumexp`` (classes removed
  from a sum by ``masked_fill(-inf)``); the sparse version as in GPLinker
  (gather the positives, neg term = a + log(1 - e^{b-a}), clipped at 1e-7);
  GlobalPointer as in bert4keras (RoPE on adjacent pairs, ``einsum`` scores
  / sqrt(D), padding and lower triangle masked with -inf, the dense ZLPR
  over each (batch, type)'s T*T cells with a dense gold-label tensor).

Every implementation's answer (loss and gradients) is checked against
kexue's before it is timed, and kexue's against the reference. The end of
the report compares the numbers with issue 6's performance bar at 2 threads
(informational): loss+grad at least 3x faster than torch, and within 2x of
one read of the inputs plus one write of the gradient at the memory
bandwidth measured in the same run (a numpy copy of 256 MB, read + write).

Run: ``python bench/bench_losses.py [--quick] [--threads 1 2]`` or
``python -m kexue bench losses``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import kexue
import kexue.global_pointer
import kexue.losses
import kexue.reference.global_pointer as ref_gp
import kexue.reference.losses as ref_losses
import numpy as np

try:  # installed as kexue._bench, or run as a script from bench/
    from . import _harness
except ImportError:
    import _harness  # type: ignore[no-redef]

Budget = _harness.Budget
Case = _harness.Case
Row = _harness.Row
assert_close = _harness.assert_close
budget = _harness.budget
copy_bandwidth = _harness.copy_bandwidth
fmt_bandwidth = _harness.fmt_bandwidth
fmt_ratio = _harness.fmt_ratio
fmt_time = _harness.fmt_time
lookup = _harness.lookup
machine_header = _harness.machine_header
num_threads = _harness.num_threads
print_table = _harness.print_table
progress = _harness.progress
row = _harness.row
time_median = _harness.time_median
time_once = _harness.time_once
timed_check = _harness.timed_check

AREA = "losses"
DTYPE = np.float32

# multilabel cross-entropy
N, C = 4096, 1000
POS_FRACTION = 0.05
P, P_MIN = 50, 40  # index slots per row; each row has P_MIN..P distinct positives

# GlobalPointer
GP_B, GP_T, GP_E, GP_D = 16, 256, 10, 64
GP_SPANS_MAX = 6  # gold spans per (batch, type): 0..GP_SPANS_MAX
GP_SPAN_LEN_MAX = 8
GP_SHORT_ROW = 40  # row 1's length, so that the reference slice sees padding
# The GlobalPointer reference runs on batch rows [:SLICE_B] and tokens [:SLICE_T].
GP_SLICE_B, GP_SLICE_T = 2, 64

# The loss references are checked on the first REF_SLICE_ROWS rows first; run
# (and timed) at the full shape only when that looks cheaper than this.
REF_SLICE_ROWS = 256
REF_LIMIT_QUICK_S = 1.5
REF_LIMIT_FULL_S = 20.0
REF_BUDGET = Budget(seconds=3.0, min_repeats=1, max_repeats=10, accept_first_s=2.0)

COPY_BYTES = 256 << 20
COPY_REPEATS_QUICK, COPY_REPEATS_FULL = 3, 8

# float32 results against float64-inside references and float32 peers.
LOSS_TOL = dict(rtol=1e-4, atol=1e-4)
GRAD_RTOL = 1e-3
GRAD_TOL = 1e-4  # gradients: atol relative to the largest |entry|
GP_GRAD_TOL = 1e-3  # dq, dk: sums of many terms of both signs

OP_DENSE = "multilabel_crossentropy+grad"
OP_SPARSE = "sparse_multilabel_crossentropy+grad"
OP_GP_LOSS = "global_pointer.loss+grad"
OP_GP_PATH = "global_pointer.scores+loss+backward"

SHAPE_DENSE = f"({N},{C})"
SHAPE_SPARSE = f"({N},{C}) P={P}"
SHAPE_GP_LOSS = f"({GP_B},{GP_E},{GP_T},{GP_T})"
SHAPE_GP_PATH = f"({GP_B},{GP_T},{GP_E},{GP_D})"

# Filled by run(): the bandwidth it measured and the bytes of one read of the
# inputs plus one write of the gradient per loss case, for report().
MEASURED: dict[str, object] = {}


# ---------------------------------------------------------------------------
# inputs


class LossInputs:
    """Logits [N, C] with dense bool targets and the padded positive indices."""

    def __init__(self, n: int = N, c: int = C, seed: int = 6):
        rng = np.random.default_rng(seed)
        self.logits = rng.standard_normal((n, c)).astype(DTYPE)
        self.targets = rng.random((n, c)) < POS_FRACTION
        # distinct positives per row, P_MIN..P of them, -1 after
        idx = np.argsort(rng.random((n, c)), axis=1)[:, :P].astype(np.int64)
        count = rng.integers(P_MIN, P + 1, size=n)
        idx[np.arange(P)[None, :] >= count[:, None]] = -1
        self.positive_index = idx

    def rows(self, m: int) -> "LossInputs":
        s = object.__new__(LossInputs)
        s.logits = np.ascontiguousarray(self.logits[:m])
        s.targets = np.ascontiguousarray(self.targets[:m])
        s.positive_index = np.ascontiguousarray(self.positive_index[:m])
        return s

    @property
    def n(self) -> int:
        return self.logits.shape[0]


class GPInputs:
    """q, k [B,T,E,D], a padding mask [B,T] and gold spans [n,4] inside it."""

    def __init__(self, B=GP_B, T=GP_T, E=GP_E, D=GP_D, seed: int = 66):
        rng = np.random.default_rng(seed)
        self.B, self.T, self.E, self.D = B, T, E, D
        self.q = rng.standard_normal((B, T, E, D)).astype(DTYPE)
        self.k = rng.standard_normal((B, T, E, D)).astype(DTYPE)
        lengths = rng.integers(T // 2, T + 1, size=B)
        lengths[0] = T
        if B > 1:
            lengths[1] = min(GP_SHORT_ROW, T)
        self.mask = np.arange(T)[None, :] < lengths[:, None]
        parts = []
        for b in range(B):
            for e in range(E):
                m = int(rng.integers(0, GP_SPANS_MAX + 1))
                start = rng.integers(0, lengths[b], size=m)
                end = np.minimum(start + rng.integers(0, GP_SPAN_LEN_MAX, size=m), lengths[b] - 1)
                parts.append(np.stack([np.full(m, b), np.full(m, e), start, end], axis=1))
        self.spans = np.unique(np.concatenate(parts).astype(np.int64), axis=0)

    def sliced(self, b: int, t: int) -> "GPInputs":
        s = object.__new__(GPInputs)
        s.B, s.T, s.E, s.D = min(b, self.B), min(t, self.T), self.E, self.D
        s.q = np.ascontiguousarray(self.q[: s.B, : s.T])
        s.k = np.ascontiguousarray(self.k[: s.B, : s.T])
        s.mask = np.ascontiguousarray(self.mask[: s.B, : s.T])
        keep = (self.spans[:, 0] < s.B) & (self.spans[:, 3] < s.T)
        s.spans = np.ascontiguousarray(self.spans[keep])
        return s

    def labels(self) -> np.ndarray:
        """Dense gold labels [B,E,T,T] bool (for the torch peer)."""
        y = np.zeros((self.B, self.E, self.T, self.T), dtype=bool)
        b, e, i, j = self.spans.T
        y[b, e, i, j] = True
        return y

    @property
    def shape(self) -> str:
        return f"({self.B},{self.T},{self.E},{self.D})"


# ---------------------------------------------------------------------------
# kexue / reference calls


def dense_call(mod, x: LossInputs):
    return mod.multilabel_crossentropy(x.logits, x.targets, return_grad=True)


def sparse_call(mod, x: LossInputs):
    return mod.sparse_multilabel_crossentropy(x.logits, x.positive_index, return_grad=True)


def gp_path_call(mod, x: GPInputs):
    """scores -> loss(return_grad) -> scores_backward; returns (loss, dq, dk)."""
    s = mod.scores(x.q, x.k, mask=x.mask, rope=True)
    loss, g = mod.loss(s, x.spans, return_grad=True)
    dq, dk = mod.scores_backward(x.q, x.k, g, mask=x.mask, rope=True)
    return loss, dq, dk


# ---------------------------------------------------------------------------
# correctness


def close_scaled(what: str, got, want, tol: float, rtol: float = GRAD_RTOL) -> None:
    """assert_close with atol = tol * max(1e-30, largest |want|)."""
    want = np.asarray(want)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    assert_close(what, got, want, rtol=rtol, atol=tol * max(scale, 1e-30))


def check_loss_grad(what: str, got, want, grad_tol: float = GRAD_TOL) -> None:
    """(loss, grad) against (loss, grad)."""
    assert_close(f"{what} loss", got[0], want[0], **LOSS_TOL)
    close_scaled(f"{what} grad", got[1], want[1], grad_tol)


def check_gp_path(what: str, got, want) -> None:
    """(loss, dq, dk) against (loss, dq, dk)."""
    assert_close(f"{what} loss", got[0], want[0], **LOSS_TOL)
    close_scaled(f"{what} dq", got[1], want[1], GP_GRAD_TOL)
    close_scaled(f"{what} dk", got[2], want[2], GP_GRAD_TOL)


# ---------------------------------------------------------------------------
# torch peers


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_zlpr(torch, s, y):
    """ZLPR over the last axis, bert4keras's stable form.

    neg = [s_i (negatives), -inf (positives)] ++ [0], pos = [-s_j (positives),
    -inf (negatives)] ++ [0]; loss = logsumexp(neg) + logsumexp(pos). -inf
    logits stay -inf in neg and are -inf in pos unless gold.
    """
    ninf = float("-inf")
    zeros = s.new_zeros(s.shape[:-1] + (1,))
    neg = torch.cat([s.masked_fill(y, ninf), zeros], dim=-1)
    pos = torch.cat([(-s).masked_fill(~y, ninf), zeros], dim=-1)
    return torch.logsumexp(neg, dim=-1) + torch.logsumexp(pos, dim=-1)


def torch_sparse_zlpr(torch, s, idx):
    """GPLinker's sparse ZLPR with -1 padding (positives gathered by index).

    pos term = logsumexp([-s_j (positives)] ++ [0]); a = logsumexp(s ++ [0]),
    b = logsumexp(s_j (positives)); neg term = a + log(clip(1 - e^{b-a}, 1e-7, 1)).
    """
    ninf = float("-inf")
    pad = idx < 0
    s_pos = torch.gather(s, -1, idx.masked_fill(pad, 0))
    zeros = s.new_zeros(s.shape[:-1] + (1,))
    pos_term = torch.logsumexp(torch.cat([(-s_pos).masked_fill(pad, ninf), zeros], dim=-1), dim=-1)
    a = torch.logsumexp(torch.cat([s, zeros], dim=-1), dim=-1)
    b = torch.logsumexp(s_pos.masked_fill(pad, ninf), dim=-1)
    neg_term = a + torch.log(torch.clamp(1.0 - torch.exp(b - a), 1e-7, 1.0))
    return pos_term + neg_term


class TorchLoss:
    """A torch loss(logits, other) [..] -> forward + backward of loss.sum()."""

    def __init__(self, torch, fn, logits: np.ndarray, other: np.ndarray):
        self.torch, self.fn = torch, fn
        self.x = torch.from_numpy(logits).clone().requires_grad_(True)
        self.other = torch.from_numpy(other)

    def __call__(self):
        self.x.grad = None
        loss = self.fn(self.torch, self.x, self.other)
        loss.sum().backward()
        return loss.detach().numpy(), self.x.grad.numpy()


class TorchGlobalPointer:
    """bert4keras's GlobalPointer head after the projection, in torch."""

    def __init__(self, torch, x: GPInputs, scores: np.ndarray | None = None):
        self.torch = torch
        B, T, E, D = x.B, x.T, x.E, x.D
        self.B, self.T, self.E, self.D = B, T, E, D
        self.q = torch.from_numpy(x.q).clone().requires_grad_(True)
        self.k = torch.from_numpy(x.k).clone().requires_grad_(True)
        self.mask = torch.from_numpy(x.mask)
        self.upper = torch.ones(T, T, dtype=torch.bool).triu()  # keep i <= j
        self.labels = torch.from_numpy(x.labels())
        # RoPE tables, adjacent pairs (2r, 2r+1) share angle p * 10000^(-2r/D)
        w = 10000.0 ** (-2.0 * np.arange(D // 2) / D)
        ang = np.repeat(np.arange(T)[:, None] * w[None, :], 2, axis=1)  # [T, D]
        self.cos = torch.from_numpy(np.cos(ang).astype(DTYPE)).reshape(1, T, 1, D)
        self.sin = torch.from_numpy(np.sin(ang).astype(DTYPE)).reshape(1, T, 1, D)
        self.s = None
        if scores is not None:
            self.s = torch.from_numpy(scores).clone().requires_grad_(True)

    def rope(self, x):
        # x'_{2r} = x_{2r} cos - x_{2r+1} sin, x'_{2r+1} = x_{2r+1} cos + x_{2r} sin
        x2 = self.torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).reshape(x.shape)
        return x * self.cos + x2 * self.sin

    def scores(self, q, k):
        s = self.torch.einsum("bmhd,bnhd->bhmn", self.rope(q), self.rope(k)) / self.D**0.5
        keep = self.mask[:, None, :, None] & self.mask[:, None, None, :] & self.upper
        return s.masked_fill(~keep, float("-inf"))

    def loss(self, s):
        B, E, T = self.B, self.E, self.T
        return torch_zlpr(self.torch, s.reshape(B, E, T * T), self.labels.reshape(B, E, T * T))

    def path(self):
        """scores + loss + backward to q, k: (loss [B,E], dq, dk)."""
        self.q.grad = None
        self.k.grad = None
        loss = self.loss(self.scores(self.q, self.k))
        loss.sum().backward()
        return loss.detach().numpy(), self.q.grad.numpy(), self.k.grad.numpy()

    def loss_grad(self):
        """loss + backward to the given scores: (loss [B,E], d scores)."""
        self.s.grad = None
        loss = self.loss(self.s)
        loss.sum().backward()
        return loss.detach().numpy(), self.s.grad.numpy()


# ---------------------------------------------------------------------------
# the bench


def time_reference(
    full: Callable[[], object], small: Callable[[], object], scale: float, quick: bool
) -> tuple[float | None, object, bool]:
    """Run the reference on the small input, then on the full one if that looks cheap.

    Returns (seconds at the full shape or None, the output, whether it is the
    full shape's output).
    """
    t_small, out_small = time_once(small)
    if t_small * scale > (REF_LIMIT_QUICK_S if quick else REF_LIMIT_FULL_S):
        return None, out_small, False
    t_full, out_full = time_once(full)
    if not quick:
        t_full = time_median(full, REF_BUDGET, first=t_full)
    return t_full, out_full, True


def run(quick: bool, threads: Sequence[int]) -> list[Row]:
    """Check and time every case at every thread count; return the rows."""
    torch = load_torch()
    bud = budget(quick)
    rows: list[Row] = []
    dt = np.dtype(DTYPE).name

    progress(f"[{AREA}] inputs ...")
    x = LossInputs()
    small = x.rows(REF_SLICE_ROWS)
    gx = GPInputs()
    gsmall = gx.sliced(GP_SLICE_B, GP_SLICE_T)
    # the loss case's scores (kexue's; checked against the reference below)
    g_scores = kexue.global_pointer.scores(gx.q, gx.k, mask=gx.mask, rope=True)
    g_scores_small = np.ascontiguousarray(g_scores[:GP_SLICE_B])
    g_spans_small = np.ascontiguousarray(gx.spans[gx.spans[:, 0] < GP_SLICE_B])

    # The references once (plain numpy; the thread count does not apply).
    progress(f"[{AREA}] {OP_DENSE} {SHAPE_DENSE} reference ...")
    ref_dense = time_reference(
        lambda: dense_call(ref_losses, x), lambda: dense_call(ref_losses, small),
        x.n / small.n, quick,
    )
    progress(f"[{AREA}] {OP_SPARSE} {SHAPE_SPARSE} reference ...")
    ref_sparse = time_reference(
        lambda: sparse_call(ref_losses, x), lambda: sparse_call(ref_losses, small),
        x.n / small.n, quick,
    )
    progress(f"[{AREA}] {OP_GP_LOSS} {SHAPE_GP_LOSS} reference ...")
    ref_gp_loss = time_reference(
        lambda: ref_gp.loss(g_scores, gx.spans, return_grad=True),
        lambda: ref_gp.loss(g_scores_small, g_spans_small, return_grad=True),
        gx.B / GP_SLICE_B, quick,
    )
    progress(f"[{AREA}] {OP_GP_PATH} {gsmall.shape} reference (slice) ...")
    ref_gp_path = gp_path_call(ref_gp, gsmall)
    # ... and the reference's scores on the slice against kexue's
    assert_close(
        f"global_pointer.scores {gsmall.shape}",
        kexue.global_pointer.scores(gsmall.q, gsmall.k, mask=gsmall.mask, rope=True),
        ref_gp.scores(gsmall.q, gsmall.k, mask=gsmall.mask, rope=True),
        **LOSS_TOL,
    )

    # Memory bandwidth, same run (numpy copies on one thread).
    progress(f"[{AREA}] memory bandwidth (numpy copy of {COPY_BYTES >> 20} MB) ...")
    bw = copy_bandwidth(COPY_BYTES, COPY_REPEATS_QUICK if quick else COPY_REPEATS_FULL)
    MEASURED.clear()
    MEASURED["bandwidth"] = bw
    MEASURED["bytes"] = {
        # one read of the inputs + one write of the gradient
        OP_DENSE: x.logits.nbytes + x.targets.nbytes + x.logits.nbytes,
        OP_SPARSE: x.logits.nbytes + x.positive_index.nbytes + x.logits.nbytes,
        OP_GP_LOSS: g_scores.nbytes + gx.spans.nbytes + g_scores.nbytes,
    }

    t_dense = TorchLoss(torch, torch_zlpr, x.logits, x.targets) if torch else None
    t_sparse = TorchLoss(torch, torch_sparse_zlpr, x.logits, x.positive_index) if torch else None
    t_gp = TorchGlobalPointer(torch, gx, g_scores) if torch else None

    def loss_case(case, kx_fn, ref, kx_small_fn, peer, what):
        ref_s, ref_out, ref_full = ref
        # correctness first: kexue against the reference on what it saw ...
        if not ref_full:
            check_loss_grad(f"{what} (slice)", kx_small_fn(), ref_out)
        kx_out = []

        def check_kx(out):
            kx_out.append(out)
            if ref_full:
                check_loss_grad(what, out, ref_out)

        rows.append(row(case, "kexue", timed_check(kx_fn, check_kx, bud)))
        rows.append(row(case, "reference", ref_s))
        # ... then the peer against kexue
        t = None
        if peer is not None:
            t = timed_check(peer, lambda out: check_loss_grad(f"torch {what}", out, kx_out[0]), bud)
        rows.append(row(case, "torch", t))

    for n in threads:
        with num_threads(n):
            case = Case(AREA, OP_DENSE, SHAPE_DENSE, dt, n)
            progress(case.label())
            loss_case(
                case, lambda: dense_call(kexue.losses, x), ref_dense,
                lambda: dense_call(kexue.losses, small), t_dense, f"{OP_DENSE} {SHAPE_DENSE}",
            )

            case = Case(AREA, OP_SPARSE, SHAPE_SPARSE, dt, n)
            progress(case.label())
            loss_case(
                case, lambda: sparse_call(kexue.losses, x), ref_sparse,
                lambda: sparse_call(kexue.losses, small), t_sparse, f"{OP_SPARSE} {SHAPE_SPARSE}",
            )

            case = Case(AREA, OP_GP_LOSS, SHAPE_GP_LOSS, dt, n)
            progress(case.label())
            loss_case(
                case,
                lambda: kexue.global_pointer.loss(g_scores, gx.spans, return_grad=True),
                ref_gp_loss,
                lambda: kexue.global_pointer.loss(g_scores_small, g_spans_small, return_grad=True),
                t_gp.loss_grad if t_gp else None,
                f"{OP_GP_LOSS} {SHAPE_GP_LOSS}",
            )

            case = Case(AREA, OP_GP_PATH, SHAPE_GP_PATH, dt, n)
            progress(case.label())
            what = f"{OP_GP_PATH} {gsmall.shape}"
            check_gp_path(what, gp_path_call(kexue.global_pointer, gsmall), ref_gp_path)
            kx_out = []
            t = timed_check(lambda: gp_path_call(kexue.global_pointer, gx), kx_out.append, bud)
            rows.append(row(case, "kexue", t))
            rows.append(row(case, "reference", None))
            t = None
            if t_gp is not None:

                def check_torch_path(out, want=kx_out[0]):
                    check_gp_path(f"torch {OP_GP_PATH} {SHAPE_GP_PATH}", out, want)

                t = timed_check(t_gp.path, check_torch_path, bud)
            rows.append(row(case, "torch", t))
    return rows


# ---------------------------------------------------------------------------
# the performance bar of issue 6


def report(rows: Sequence[Row], file=None) -> None:
    """Print issue 6's performance-bar ratios with PASS/FAIL (informational)."""
    file = file or sys.stdout
    have = sorted({r.threads for r in rows})
    if not have:
        return
    n = 2 if 2 in have else max(have)
    note = "" if n == 2 else "; the bar is stated for 2 threads"
    print(f"Performance bar (issue 6; float32, threads={n}{note}; informational):", file=file)

    cases = [
        (OP_DENSE, SHAPE_DENSE),
        (OP_SPARSE, SHAPE_SPARSE),
        (OP_GP_LOSS, SHAPE_GP_LOSS),
        (OP_GP_PATH, SHAPE_GP_PATH),
    ]
    need = 3.0
    for op, shape in cases:
        mine = lookup(rows, "kexue", op=op, shape=shape, threads=n)
        theirs = lookup(rows, "torch", op=op, shape=shape, threads=n)
        label = f"{op} vs torch fwd+bwd at {shape}"
        if mine is None or theirs is None:
            print(f"  {label}: n/a (torch not run)", file=file)
            continue
        r = theirs / mine
        verdict = "PASS" if r >= need else "FAIL"
        print(f"  {label}: {fmt_ratio(r)} (bar >= {need:g}x)  {verdict}", file=file)

    bw = MEASURED.get("bandwidth")
    nbytes = MEASURED.get("bytes") or {}
    print(
        f"  memory bandwidth (best numpy copy of {COPY_BYTES >> 20} MB, read + write, "
        f"1 thread): {fmt_bandwidth(bw)}",
        file=file,
    )
    limit = 2.0
    for op, shape in cases[:3]:
        mine = lookup(rows, "kexue", op=op, shape=shape, threads=n)
        label = f"{op} vs one read of the inputs + one write of the grad at {shape}"
        if mine is None or bw is None or op not in nbytes:
            print(f"  {label}: n/a", file=file)
            continue
        ideal = nbytes[op] / bw
        r = mine / ideal
        verdict = "PASS" if r <= limit else "FAIL"
        print(
            f"  {label}: {r:.2f}x of {fmt_time(ideal)} ({nbytes[op] / 1e6:.1f} MB) "
            f"(bar <= {limit:g}x)  {verdict}",
            file=file,
        )


def main(argv: Sequence[str] | None = None) -> int:
    return _harness.main(__doc__, run, report, argv)


if __name__ == "__main__":
    sys.exit(main())
