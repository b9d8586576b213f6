"""Benchmark of the decoders area: kexue.crf and kexue.memm against their peers.

For (B,T,K) in (32,128,9), (32,128,64), (8,512,32), (1,4096,9), float32, at
each thread count: CRF viterbi, nll_grad, log_partition, marginals and
nbest(k=5), and MEMM nll_grad and MAP viterbi. Columns:

- kexue: the core;
- reference: kexue.reference (plain numpy, float64 inside) — timed once per
  shape, single-threaded, and left out ('-') where it would take too long;
  kexue's answer is always checked against it, on a slice (the first rows
  and steps) at least;
- numpy-exp: a log-partition forward written as exp-space matrix products
  (``log(exp(alpha - max) @ exp(transitions)) + max + emissions``), a strong
  plain-numpy baseline;
- pytorch-crf: ``CRF.decode`` for viterbi, ``forward(reduction='sum')`` +
  ``backward`` for nll_grad, with ``torch.set_num_threads`` matched.

Every implementation's answer is checked before it is timed. The end of the
report compares the numbers with issue 2's performance bar (informational).

Run: ``python bench/bench_decoders.py [--quick] [--threads 1 2]`` or
``python -m kexue bench decoders``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

import kexue
import kexue.crf
import kexue.memm
import kexue.reference.crf as ref_crf
import kexue.reference.memm as ref_memm
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
fmt_ratio = _harness.fmt_ratio
lookup = _harness.lookup
machine_header = _harness.machine_header
num_threads = _harness.num_threads
print_table = _harness.print_table
progress = _harness.progress
row = _harness.row
time_median = _harness.time_median
time_once = _harness.time_once
timed_check = _harness.timed_check

AREA = "decoders"
SHAPES = [(32, 128, 9), (32, 128, 64), (8, 512, 32), (1, 4096, 9)]
DTYPE = np.float32
NBEST_K = 5
MEMM_ALPHA = 1.0

# The reference is checked on rows [:SLICE_B] and steps [:SLICE_T] first; it is
# run (and timed) at the full shape only when that looks cheaper than this.
REF_LIMIT_QUICK_S = 0.5
REF_LIMIT_FULL_S = 20.0
REF_BUDGET = Budget(seconds=3.0, min_repeats=1, max_repeats=10, accept_first_s=2.0)
SLICE_B, SLICE_T = 2, 64
# The reference nbest keeps its k best per (step, tag) in Python lists:
# about 1 s for 32 steps at K=64 on its own, so it gets a smaller slice.
SLICE_NBEST_B, SLICE_NBEST_T = 1, 32

# float32 results against the float64-inside reference.
VAL_TOL = dict(rtol=1e-4, atol=1e-3)  # log Z, losses, path scores
PROB_TOL = 2e-3  # gradients and marginals: atol relative to the largest entry
# pytorch-crf works in float32 throughout: at T=4096 its marginals are off by a
# few 1e-3 (alpha+beta-logZ cancels values of size ~1e4). Loose enough for
# that, tight enough to catch a different answer.
PEER_PROB_TOL = 2e-2

OPS = [
    "crf.viterbi",
    "crf.nll_grad",
    "crf.log_partition",
    "crf.marginals",
    f"crf.nbest(k={NBEST_K})",
    "memm.nll_grad",
    "memm.viterbi(map)",
]


# ---------------------------------------------------------------------------
# inputs


class Inputs:
    def __init__(self, B: int, T: int, K: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.B, self.T, self.K = B, T, K
        self.emissions = rng.standard_normal((B, T, K)).astype(DTYPE)
        self.tags = rng.integers(0, K, size=(B, T), dtype=np.int64)
        self.transitions = rng.uniform(-1.0, 1.0, size=(K, K)).astype(DTYPE)
        self.start = rng.uniform(-0.5, 0.5, size=K).astype(DTYPE)
        self.end = rng.uniform(-0.5, 0.5, size=K).astype(DTYPE)

    def sliced(self, b: int, t: int) -> "Inputs":
        s = object.__new__(Inputs)
        s.B, s.T, s.K = min(b, self.B), min(t, self.T), self.K
        s.emissions = np.ascontiguousarray(self.emissions[: s.B, : s.T])
        s.tags = np.ascontiguousarray(self.tags[: s.B, : s.T])
        s.transitions, s.start, s.end = self.transitions, self.start, self.end
        return s

    @property
    def shape(self) -> str:
        return f"({self.B},{self.T},{self.K})"


def call(op: str, mod, x: Inputs):
    """Run ``op`` from ``mod`` (kexue's or the reference's crf/memm) on x."""
    e, tr, tags = x.emissions, x.transitions, x.tags
    se = dict(start=x.start, end=x.end)
    crf, memm = mod
    if op == "crf.viterbi":
        return crf.viterbi(e, tr, **se)
    if op == "crf.nll_grad":
        return crf.nll_grad(e, tags, tr, **se)
    if op == "crf.log_partition":
        return crf.log_partition(e, tr, **se)
    if op == "crf.marginals":
        return crf.marginals(e, tr, **se)
    if op.startswith("crf.nbest"):
        return crf.nbest(e, tr, NBEST_K, **se)
    if op == "memm.nll_grad":
        return memm.nll_grad(e, tags, tr, alpha=MEMM_ALPHA)
    if op == "memm.viterbi(map)":
        return memm.viterbi(e, tr, alpha=MEMM_ALPHA, mode="map")
    raise KeyError(op)


KEXUE = (kexue.crf, kexue.memm)
REFERENCE = (ref_crf, ref_memm)


# ---------------------------------------------------------------------------
# correctness


def crf_path_scores(x: Inputs, paths: np.ndarray) -> np.ndarray:
    """float64 score of each path [..., T] (no mask: every step valid)."""
    e = x.emissions.astype(np.float64)
    tr = x.transitions.astype(np.float64)
    p = paths.reshape(x.B, -1, x.T)
    b = np.arange(x.B)[:, None, None]
    t = np.arange(x.T)[None, None, :]
    s = e[b, t, p].sum(-1)
    s += tr[p[..., :-1], p[..., 1:]].sum(-1)
    s += x.start.astype(np.float64)[p[..., 0]] + x.end.astype(np.float64)[p[..., -1]]
    return s.reshape(paths.shape[:-1])


def close_prob(what: str, got, want, tol: float = PROB_TOL) -> None:
    want = np.asarray(want)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    assert_close(what, got, want, rtol=0.0, atol=tol * scale)


def check(op: str, x: Inputs, got, want) -> None:
    """Assert kexue's answer ``got`` agrees with the reference's ``want`` on x."""
    where = f"{op} {x.shape}"
    if op == "crf.viterbi":
        assert_close(f"{where} scores", got[1], want[1], **VAL_TOL)
        assert_close(f"{where} score of the path", crf_path_scores(x, got[0]), want[1], **VAL_TOL)
    elif op.startswith("crf.nbest"):
        assert got[0].shape == (x.B, NBEST_K, x.T), f"{where}: paths shape {got[0].shape}"
        assert_close(f"{where} scores", got[1], want[1], **VAL_TOL)
        # slots beyond the number of paths hold -1 and -inf
        real = np.isfinite(got[1])
        assert np.all(got[0][~real] == -1), f"{where}: a -inf slot holds a path"
        paths = np.where(real[..., None], got[0], 0)
        scores = np.where(real, crf_path_scores(x, paths), -np.inf)
        assert_close(f"{where} score of the paths", scores, want[1], **VAL_TOL)
    elif op == "crf.log_partition":
        assert_close(where, got, want, **VAL_TOL)
    elif op == "crf.marginals":
        close_prob(where, got, want)
    elif op == "crf.nll_grad":
        assert_close(f"{where} loss", got.loss, want.loss, **VAL_TOL)
        for name in ("d_emissions", "d_transitions", "d_start", "d_end"):
            close_prob(f"{where} {name}", getattr(got, name), getattr(want, name))
    elif op == "memm.nll_grad":
        assert_close(f"{where} loss", got.loss, want.loss, **VAL_TOL)
        close_prob(f"{where} d_emissions", got.d_emissions, want.d_emissions)
        close_prob(f"{where} d_transitions", got.d_transitions, want.d_transitions)
    elif op == "memm.viterbi(map)":
        assert_close(f"{where} scores", got[1], want[1], **VAL_TOL)
        ll = ref_memm.log_likelihood(
            x.emissions.astype(np.float64),
            got[0],
            x.transitions.astype(np.float64),
            alpha=MEMM_ALPHA,
        )
        assert_close(f"{where} log p of the path", ll, want[1], **VAL_TOL)
    else:
        raise KeyError(op)


# ---------------------------------------------------------------------------
# peers


def numpy_exp_log_partition(emissions, transitions, start, end):
    """log Z by the forward recursion as exp-space matrix products (plain numpy)."""
    exp_tr = np.exp(transitions)
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        m = alpha.max(axis=1, keepdims=True)
        alpha = np.log(np.exp(alpha - m) @ exp_tr) + m + emissions[:, t]
    alpha = alpha + end
    m = alpha.max(axis=1, keepdims=True)
    return (np.log(np.exp(alpha - m).sum(axis=1, keepdims=True)) + m)[:, 0]


def load_pytorch_crf():
    try:
        import torch
        import torchcrf
    except ImportError:
        return None, None
    # pytorch-crf 0.7.2 passes a uint8 mask to torch.where; recent torch warns on every call.
    warnings.filterwarnings(
        "ignore", message="where received a uint8 condition", category=UserWarning
    )
    return torch, torchcrf


class TorchCRF:
    """pytorch-crf set to the same parameters as the kexue case."""

    def __init__(self, torch, torchcrf, x: Inputs):
        self.torch = torch
        self.crf = torchcrf.CRF(x.K, batch_first=True)
        with torch.no_grad():
            self.crf.transitions.copy_(torch.from_numpy(x.transitions))
            self.crf.start_transitions.copy_(torch.from_numpy(x.start))
            self.crf.end_transitions.copy_(torch.from_numpy(x.end))
        self.emissions = torch.from_numpy(x.emissions)
        self.emissions_grad = self.emissions.clone().requires_grad_(True)
        self.tags = torch.from_numpy(x.tags)

    def decode(self):
        with self.torch.no_grad():
            return self.crf.decode(self.emissions)

    def nll_backward(self):
        self.crf.zero_grad(set_to_none=True)
        self.emissions_grad.grad = None
        nll = -self.crf(self.emissions_grad, self.tags, reduction="sum")
        nll.backward()
        return nll

    def check_decode(self, x: Inputs, paths, kx_scores) -> None:
        p = np.asarray(paths, dtype=np.int64)
        where = f"pytorch-crf decode {x.shape} path scores"
        assert_close(where, crf_path_scores(x, p), kx_scores, **VAL_TOL)

    def check_nll(self, x: Inputs, nll, kx) -> None:
        where = f"pytorch-crf nll_grad {x.shape}"
        want = float(np.sum(kx.loss, dtype=np.float64))
        assert_close(f"{where} loss", float(nll.detach()), want, **VAL_TOL)
        d_em = self.emissions_grad.grad.numpy()
        close_prob(f"{where} d_emissions", d_em, kx.d_emissions, PEER_PROB_TOL)
        d_tr = self.crf.transitions.grad.numpy()
        close_prob(f"{where} d_transitions", d_tr, kx.d_transitions, PEER_PROB_TOL)


# ---------------------------------------------------------------------------
# the bench


def time_reference(
    op: str, x: Inputs, quick: bool
) -> tuple[float | None, object, Inputs]:
    """Check-worthy reference output and its time (None: too slow for this mode).

    Returns (seconds or None, reference output, the inputs it was computed on).
    """
    if op.startswith("crf.nbest"):
        small = x.sliced(SLICE_NBEST_B, SLICE_NBEST_T)
    else:
        small = x.sliced(SLICE_B, SLICE_T)
    t_small, out_small = time_once(lambda: call(op, REFERENCE, small))
    estimate = t_small * (x.B * x.T) / (small.B * small.T)
    if small.B == x.B and small.T == x.T:
        return t_small, out_small, small
    if estimate > (REF_LIMIT_QUICK_S if quick else REF_LIMIT_FULL_S):
        return None, out_small, small
    t_full, out_full = time_once(lambda: call(op, REFERENCE, x))
    if not quick:
        t_full = time_median(lambda: call(op, REFERENCE, x), REF_BUDGET, first=t_full)
    return t_full, out_full, x


def run(quick: bool, threads: Sequence[int]) -> list[Row]:
    """Check and time every (op, shape, thread count); return the rows."""
    torch, torchcrf = load_pytorch_crf()
    bud = budget(quick)
    rows: list[Row] = []
    for B, T, K in SHAPES:
        x = Inputs(B, T, K, seed=B * 100003 + T * 101 + K)
        tcrf = TorchCRF(torch, torchcrf, x) if torch is not None else None

        # The reference once per shape (plain numpy; the thread count does not apply).
        refs = {}
        for op in OPS:
            progress(f"[{AREA}] {op} {x.shape} reference ...")
            refs[op] = time_reference(op, x, quick)

        for n in threads:
            with num_threads(n):
                for op in OPS:
                    case = Case(AREA, op, x.shape, np.dtype(DTYPE).name, n)
                    progress(case.label())
                    ref_s, ref_out, ref_x = refs[op]
                    # correctness first: against the reference on what it saw ...
                    check(op, ref_x, call(op, KEXUE, ref_x), ref_out)
                    # ... and the timed case (the peers are checked against it)
                    kx_out = []
                    t = timed_check(lambda: call(op, KEXUE, x), kx_out.append, bud)
                    rows.append(row(case, "kexue", t))
                    rows.append(row(case, "reference", ref_s))
                    kx_out = kx_out[0]

                    if op == "crf.log_partition":
                        args = (x.emissions, x.transitions, x.start, x.end)

                        def check_np(got, want=kx_out):
                            assert_close(f"numpy-exp log Z {x.shape}", got, want, **VAL_TOL)

                        t = timed_check(lambda: numpy_exp_log_partition(*args), check_np, bud)
                        rows.append(row(case, "numpy-exp", t))
                    elif op == "crf.viterbi":
                        t = None
                        if tcrf is not None:

                            def check_decode(paths, want=kx_out[1]):
                                tcrf.check_decode(x, paths, want)

                            t = timed_check(tcrf.decode, check_decode, bud)
                        rows.append(row(case, "pytorch-crf", t))
                    elif op == "crf.nll_grad":
                        t = None
                        if tcrf is not None:

                            def check_nll(nll, want=kx_out):
                                tcrf.check_nll(x, nll, want)

                            t = timed_check(tcrf.nll_backward, check_nll, bud)
                        rows.append(row(case, "pytorch-crf", t))
    return rows


# ---------------------------------------------------------------------------
# the performance bar of issue 2


def report(rows: Sequence[Row], file=None) -> None:
    """Print issue 2's performance-bar ratios with PASS/FAIL (informational)."""
    file = file or sys.stdout
    have = sorted({r.threads for r in rows})
    if not have:
        return
    n = 2 if 2 in have else max(have)
    note = "" if n == 2 else "; the bar is stated for 2 threads"
    print(f"Performance bar (issue 2; float32, threads={n}{note}; informational):", file=file)

    def bar(label: str, op: str, shape: str, peer: str, need: float) -> None:
        mine = lookup(rows, "kexue", op=op, shape=shape, threads=n)
        theirs = lookup(rows, peer, op=op, shape=shape, threads=n)
        if mine is None or theirs is None:
            print(f"  {label} at {shape}: n/a ({peer} not run)", file=file)
            return
        r = theirs / mine
        verdict = "PASS" if r >= need else "FAIL"
        print(f"  {label} at {shape}: {fmt_ratio(r)} (bar >= {need:g}x)  {verdict}", file=file)

    torch_crf, numpy_exp = "pytorch-crf", "numpy-exp"
    bar("crf.viterbi vs pytorch-crf decode", "crf.viterbi", "(32,128,9)", torch_crf, 50)
    bar("crf.nll_grad vs pytorch-crf fwd+bwd", "crf.nll_grad", "(32,128,9)", torch_crf, 30)
    lp = "crf.log_partition vs numpy exp-space forward"
    bar(lp, "crf.log_partition", "(32,128,64)", numpy_exp, 3)
    bar(lp, "crf.log_partition", "(8,512,32)", numpy_exp, 3)

    # MEMM nll_grad faster than CRF nll_grad at every shape (and thread count run).
    worst = None
    missing = False
    for r in rows:
        if r.impl != "kexue" or r.op != "memm.nll_grad":
            continue
        crf = lookup(rows, "kexue", op="crf.nll_grad", shape=r.shape, threads=r.threads)
        if crf is None or r.seconds is None:
            missing = True
            continue
        speedup = crf / r.seconds
        if worst is None or speedup < worst[0]:
            worst = (speedup, r.shape, r.threads)
    if worst is None:
        print("  memm.nll_grad faster than crf.nll_grad at every shape: n/a", file=file)
    else:
        verdict = "PASS" if worst[0] > 1.0 and not missing else "FAIL"
        print(
            f"  memm.nll_grad faster than crf.nll_grad at every shape: slowest "
            f"{fmt_ratio(worst[0])} at {worst[1]} threads={worst[2]}  {verdict}",
            file=file,
        )


def main(argv: Sequence[str] | None = None) -> int:
    return _harness.main(__doc__, run, report, argv)


if __name__ == "__main__":
    sys.exit(main())
