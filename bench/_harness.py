"""Shared benchmark harness: timing, result rows, the table, the machine header.

Every bench module exposes ``run(quick, threads) -> list[Row]``; it checks each
implementation's answer against the reference before timing it, then records
one :class:`Row` per (case, implementation). ``print_table`` groups the rows
per case, one column per implementation, plus the ratio ``peer / kexue`` for
each peer (above 1 means kexue is faster). Bandwidth-bound cases may give the
kexue row the bytes one call must move and the memory bandwidth measured in
the same run (:func:`stream_bandwidth`); the table then adds kexue's
effective GB/s and its percent of that bandwidth. Compute-bound cases may
give it the floating-point operations one call performs and a matmul rate
measured in the same run (flop/s); the table then adds kexue's GFLOP/s and
its percent of that rate.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

# Column order of the table; implementations not listed here follow in the
# order they first appear.
KNOWN_IMPLS = ("kexue", "reference", "numpy-exp", "pytorch-crf")


@dataclass(frozen=True)
class Case:
    """One benchmarked configuration: an operation at a shape, dtype and thread count."""

    area: str
    op: str
    shape: str
    dtype: str
    threads: int

    def label(self) -> str:
        return f"[{self.area}] {self.op} {self.shape} {self.dtype} threads={self.threads}"


@dataclass(frozen=True)
class Row:
    """The median time of one implementation on one case (``seconds`` None = not run).

    ``nbytes`` (optional): the bytes one call must move, reads + writes, for
    bandwidth-bound cases; ``bandwidth`` (optional): the memory bandwidth in
    bytes/s measured in the same run at this thread count (the floor). Set on
    the kexue row, they add the "kx GB/s" and "kx %bw" columns to the table.
    ``flops`` / ``flop_rate`` (optional) likewise: the floating-point
    operations of one call and a reference rate in flop/s measured in the
    same run (e.g. sgemm); they add "kx GFLOP/s" and "kx %mm".
    """

    area: str
    op: str
    shape: str
    dtype: str
    threads: int
    impl: str
    seconds: float | None
    nbytes: float | None = None
    bandwidth: float | None = None
    flops: float | None = None
    flop_rate: float | None = None

    @property
    def case(self) -> Case:
        return Case(self.area, self.op, self.shape, self.dtype, self.threads)


def row(
    case: Case,
    impl: str,
    seconds: float | None,
    *,
    nbytes: float | None = None,
    bandwidth: float | None = None,
    flops: float | None = None,
    flop_rate: float | None = None,
) -> Row:
    return Row(
        case.area, case.op, case.shape, case.dtype, case.threads, impl, seconds, nbytes, bandwidth,
        flops, flop_rate,
    )


# ---------------------------------------------------------------------------
# timing


@dataclass(frozen=True)
class Budget:
    """How long to spend timing one implementation on one case."""

    seconds: float  # aim for about this much total time per measurement
    min_repeats: int
    max_repeats: int
    # A call already made (the correctness check) that took at least this
    # long is reported as the time, with no further calls (None: never).
    accept_first_s: float | None = None


QUICK = Budget(seconds=0.15, min_repeats=1, max_repeats=200, accept_first_s=1.0)
FULL = Budget(seconds=1.0, min_repeats=5, max_repeats=2000)


def budget(quick: bool) -> Budget:
    return QUICK if quick else FULL


def time_median(
    fn: Callable[[], object], budget: Budget, *, first: float | None = None
) -> float:
    """Median wall time (``time.perf_counter``) of ``fn()`` in seconds.

    One untimed warm-up call, unless ``first`` says how long a call the
    caller has just made (to check its answer) took: that call is the
    warm-up. The repeat count then follows from the warm-up's time so that
    the measurement takes about ``budget.seconds``, clamped to
    ``[min_repeats, max_repeats]``. A slow ``first`` (``budget.accept_first_s``)
    is returned as it is.
    """
    if first is None:
        first, _ = time_once(fn)
    elif budget.accept_first_s is not None and first >= budget.accept_first_s:
        return first
    repeats = int(budget.seconds / max(first, 1e-9))
    repeats = max(budget.min_repeats, min(budget.max_repeats, repeats))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed_check(
    fn: Callable[[], object], check: Callable[[object], None], budget: Budget
) -> float:
    """Call ``fn`` once, ``check`` its result (raises if wrong), then time it."""
    first, out = time_once(fn)
    check(out)
    return time_median(fn, budget, first=first)


def time_once(fn: Callable[[], object]) -> tuple[float, object]:
    """One timed call: ``(seconds, result)`` — for slow references."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# ---------------------------------------------------------------------------
# correctness


def assert_close(what: str, got, want, *, rtol: float, atol: float) -> None:
    """np.allclose with a message naming what differed and by how much."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {got.shape} != expected {want.shape}")
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        g = got.astype(np.float64)
        w = want.astype(np.float64)
        with np.errstate(invalid="ignore"):
            err = np.abs(g - w)
        err = np.where(np.isnan(err), np.inf, err)
        i = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
        raise AssertionError(
            f"{what}: not close (rtol={rtol:g}, atol={atol:g}); worst at {i}: "
            f"got {g[i]!r}, expected {w[i]!r}"
        )


def assert_equal(what: str, got, want) -> None:
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape or not np.array_equal(got, want):
        bad = int(np.sum(got != want)) if got.shape == want.shape else "shape"
        raise AssertionError(f"{what}: differs from expected ({bad} entries)")


# ---------------------------------------------------------------------------
# memory bandwidth


def _chunked(pool: ThreadPoolExecutor | None, n: int, threads: int, fn) -> None:
    """``fn(start, stop)`` over ``threads`` contiguous slices of ``range(n)``, in parallel.

    numpy releases the GIL inside copies and ufunc loops, so Python threads
    each streaming their own slice measure a multi-threaded bandwidth.
    """
    if pool is None or threads <= 1:
        fn(0, n)
        return
    step = -(-n // threads)
    step = -(-step // 4096) * 4096  # page-sized slices
    bounds = [(i, min(n, i + step)) for i in range(0, n, step)]
    for f in [pool.submit(fn, a, b) for a, b in bounds]:
        f.result()


def _best(fn: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` timed calls (after one untimed warm-up)."""
    fn()
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def copy_bandwidth(nbytes: int = 256 << 20, repeats: int = 5, threads: int = 1) -> float:
    """Memory bandwidth in bytes/s: the best of ``repeats`` numpy copies of an
    ``nbytes`` array into another (both touched first), counting read + write
    (``2 * nbytes`` per copy). numpy copies on one thread; ``threads`` > 1
    copies that many slices on as many Python threads at once.
    """
    src = np.ones(max(1, nbytes // 8), dtype=np.float64)
    dst = np.empty_like(src)
    dst.fill(0.0)
    n = src.size
    with ThreadPoolExecutor(threads) if threads > 1 else contextlib.nullcontext() as pool:

        def copy() -> None:
            _chunked(pool, n, threads, lambda a, b: np.copyto(dst[a:b], src[a:b]))

        if threads <= 1:  # as before: no warm-up call, best of ``repeats``
            best = float("inf")
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                copy()
                best = min(best, time.perf_counter() - t0)
        else:
            best = _best(copy, repeats)
    return 2.0 * src.nbytes / best


@dataclass(frozen=True)
class Bandwidth:
    """Streaming-kernel bandwidths at one thread count (bytes/s, reads + writes counted).

    ``rates`` maps a kernel's description to its best rate; ``floor_name``
    names the one used as the floor: the fastest kernel that moves its
    bytes in a single pass.
    """

    threads: int
    array_bytes: int
    repeats: int
    rates: dict
    floor_name: str

    @property
    def floor(self) -> float:
        return self.rates[self.floor_name]

    def describe(self) -> str:
        parts = "; ".join(f"{k} {fmt_bandwidth(v)}" for k, v in self.rates.items())
        return (
            f"threads={self.threads}, float32 arrays of {self.array_bytes >> 20} MB, "
            f"best of {self.repeats}: {parts}; floor = {self.floor_name}"
        )

    def merge(self, other: Bandwidth) -> Bandwidth:
        """The best rate of each kernel over two measurements (e.g. the start and end of a run)."""
        rates = dict(self.rates)
        for k, v in other.rates.items():
            rates[k] = max(v, rates.get(k, 0.0))
        one_pass = [k for k in rates if k != BW_TRIAD_2PASS]
        floor = max(one_pass, key=lambda k: rates[k])
        return Bandwidth(self.threads, self.array_bytes, self.repeats + other.repeats, rates, floor)


BW_COPY = "copy a=b (numpy, 2 arrays)"
BW_ADD = "add a+=b (numpy, in place, one pass, 3 arrays)"
BW_TRIAD = "triad a=b+s*c (torch.add, one pass, 3 arrays)"
BW_TRIAD_2PASS = "triad a=b+s*c (numpy multiply+add, 2 passes, counted as 3 arrays: an estimate)"


def stream_bandwidth(array_bytes: int = 128 << 20, repeats: int = 5, threads: int = 1) -> Bandwidth:
    """STREAM-style bandwidths on three float32 arrays of ``array_bytes`` each, at ``threads``.

    Bytes are counted the STREAM way (each array read or written once; the
    write-allocate read of a write-only destination is not counted). Kernels:

    - copy ``a = b``: numpy ``copyto`` (read + write);
    - add ``a += b``: numpy ``add(a, b, out=a)``: one pass, two reads and
      one write, and no write-allocate traffic because ``a`` is read first —
      the access pattern of an in-place optimizer step;
    - triad ``a = b + s*c`` in one pass with ``torch.add(b, c, alpha=s, out=a)``
      when torch is already imported (its own threads set to ``threads``);
    - triad with numpy, which has no one-pass ``b + s*c``:
      ``multiply(c, s, out=a); add(a, b, out=a)`` moves 5 arrays but is
      counted as STREAM's 3 — an estimate, never the floor.

    numpy kernels run ``threads`` slices on as many Python threads (numpy
    releases the GIL). The floor is the fastest one-pass kernel. Keep the
    arrays well above the last-level cache (the default: 3 x 128 MB).
    """
    n = max(4096, array_bytes // 4)
    a = np.zeros(n, dtype=np.float32)
    a.fill(0.0)  # touch every page
    b = np.full(n, 1.0, dtype=np.float32)
    c = np.full(n, 2.0, dtype=np.float32)
    s = np.float32(1e-3)
    nb = a.nbytes
    rates: dict[str, float] = {}
    with ThreadPoolExecutor(threads) if threads > 1 else contextlib.nullcontext() as pool:
        rates[BW_COPY] = 2 * nb / _best(
            lambda: _chunked(pool, n, threads, lambda i, j: np.copyto(a[i:j], b[i:j])), repeats
        )
        # a stays small: 0 + many * 1e-3 * 1
        rates[BW_ADD] = 3 * nb / _best(
            lambda: _chunked(pool, n, threads, lambda i, j: np.add(a[i:j], b[i:j], out=a[i:j])),
            repeats,
        )
        torch = sys.modules.get("torch")
        if torch is not None:
            old = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
                rates[BW_TRIAD] = 3 * nb / _best(
                    lambda: torch.add(tb, tc, alpha=float(s), out=ta), repeats
                )
            finally:
                torch.set_num_threads(old)

        def triad_2pass(i: int, j: int) -> None:
            np.multiply(c[i:j], s, out=a[i:j])
            np.add(a[i:j], b[i:j], out=a[i:j])

        rates[BW_TRIAD_2PASS] = 3 * nb / _best(
            lambda: _chunked(pool, n, threads, triad_2pass), repeats
        )
    one_pass = [k for k in rates if k != BW_TRIAD_2PASS]
    floor = max(one_pass, key=lambda k: rates[k])
    return Bandwidth(threads, nb, repeats, rates, floor)


def fmt_bandwidth(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e9:.1f} GB/s"


# ---------------------------------------------------------------------------
# threads


@contextlib.contextmanager
def num_threads(n: int):
    """Run kexue, torch (if imported) and BLAS (if threadpoolctl is present) with n threads."""
    import kexue

    old = kexue.get_num_threads()
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    limiter = contextlib.nullcontext()
    try:
        import threadpoolctl

        limiter = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        pass
    kexue.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with limiter:
            yield
    finally:
        kexue.set_num_threads(old)
        if torch is not None:
            torch.set_num_threads(old_torch)


# ---------------------------------------------------------------------------
# reporting


_START = time.perf_counter()


def progress(msg: str) -> None:
    """One line on stderr, prefixed with the seconds since the harness was imported."""
    print(f"[{time.perf_counter() - _START:6.1f}s] {msg}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "?"


def machine_header(threads: Sequence[int]) -> str:
    """One line naming the machine and the software the numbers came from."""
    try:
        import kexue

        version = getattr(kexue, "__version__", "?")
        try:
            simd = kexue.simd_level()
        except Exception:
            simd = "?"
    except ImportError:
        version, simd = "?", "?"
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch
        except ImportError:
            torch = None
    torch_v = torch.__version__ if torch is not None else "-"
    return (
        f"# {cpu_model()} | {os.cpu_count()} cpus | SIMD {simd} | "
        f"threads {','.join(map(str, threads))} | kexue {version} | "
        f"numpy {np.__version__} | torch {torch_v} | python {platform.python_version()}"
    )


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r < 1:
        return f"{r:.2f}x"
    return f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def ratio(peer: float | None, mine: float | None) -> float | None:
    if peer is None or mine is None or mine <= 0:
        return None
    return peer / mine


def lookup(rows: Iterable[Row], impl: str, **case) -> float | None:
    """The seconds of the row matching ``impl`` and every given case field, or None."""
    for r in rows:
        if r.impl == impl and all(getattr(r, k) == v for k, v in case.items()):
            return r.seconds
    return None


# Short names for the ratio column headers.
SHORT = {"kexue": "kx", "reference": "ref", "numpy-exp": "np-exp", "pytorch-crf": "torch-crf"}


def print_table(rows: Sequence[Row], file=None) -> None:
    """Print the rows grouped per (area, op), one line per (shape, dtype, threads).

    Columns: one median time per implementation ('-' where not run), then
    ``<peer>/kx`` = peer time / kexue time for every peer that has a time
    (above 1: kexue is faster). Where a kexue row carries ``nbytes``, two
    more: "kx GB/s" = nbytes / kexue time, and "kx %bw" = that as a percent of
    the row's ``bandwidth`` (the floor measured in the same run). Where a
    kexue row carries ``flops``: "kx GFLOP/s" = flops / kexue time, and with
    ``flop_rate`` "kx %mm" = that as a percent of the rate.
    """
    file = file or sys.stdout
    impls = [i for i in KNOWN_IMPLS if any(r.impl == i for r in rows)]
    for r in rows:
        if r.impl not in impls:
            impls.append(r.impl)
    peers = [i for i in impls if i != "kexue" and any(r.impl == i and r.seconds for r in rows)]
    with_bytes = any(r.impl == "kexue" and r.nbytes for r in rows)
    with_bw = any(r.impl == "kexue" and r.nbytes and r.bandwidth for r in rows)
    with_flops = any(r.impl == "kexue" and r.flops for r in rows)
    with_rate = any(r.impl == "kexue" and r.flops and r.flop_rate for r in rows)

    groups: dict[tuple[str, str], list[Case]] = {}
    times: dict[tuple[Case, str], float | None] = {}
    kx_rows: dict[Case, Row] = {}
    for r in rows:
        cases = groups.setdefault((r.area, r.op), [])
        if r.case not in cases:
            cases.append(r.case)
        times[(r.case, r.impl)] = r.seconds
        if r.impl == "kexue":
            kx_rows[r.case] = r

    head = ["shape", "dtype", "thr"] + impls + [f"{SHORT.get(p, p)}/kx" for p in peers]
    head += ["kx GB/s"] if with_bytes else []
    head += ["kx %bw"] if with_bw else []
    head += ["kx GFLOP/s"] if with_flops else []
    head += ["kx %mm"] if with_rate else []
    body: dict[tuple[str, str], list[list[str]]] = {}
    widths = [len(h) for h in head]
    for key, cases in groups.items():
        lines = body.setdefault(key, [])
        for c in cases:
            mine = times.get((c, "kexue"))
            cells = [c.shape, c.dtype, str(c.threads)]
            cells += [fmt_time(times.get((c, i))) for i in impls]
            cells += [fmt_ratio(ratio(times.get((c, p)), mine)) for p in peers]
            kr = kx_rows.get(c)
            have = kr is not None and kr.nbytes and mine
            if with_bytes:
                cells.append(f"{kr.nbytes / mine / 1e9:.1f}" if have else "-")
            if with_bw:
                pct = have and kr.bandwidth and 100.0 * kr.nbytes / kr.bandwidth / mine
                cells.append(f"{pct:.0f}%" if pct else "-")
            have_f = kr is not None and kr.flops and mine
            if with_flops:
                cells.append(f"{kr.flops / mine / 1e9:.1f}" if have_f else "-")
            if with_rate:
                pct = have_f and kr.flop_rate and 100.0 * kr.flops / kr.flop_rate / mine
                cells.append(f"{pct:.0f}%" if pct else "-")
            lines.append(cells)
            widths = [max(w, len(x)) for w, x in zip(widths, cells)]

    def line(cells: list[str]) -> str:
        # shape/dtype left-aligned, numbers right-aligned
        out = [x.ljust(w) if k < 2 else x.rjust(w) for k, (x, w) in enumerate(zip(cells, widths))]
        return "  " + "  ".join(out).rstrip()

    if peers:
        legend = "median times; <peer>/kx = peer time / kexue time (above 1: kexue faster)"
        print(f"\n({legend}; '-' = not run)", file=file)
    if with_bytes:
        legend = "kx GB/s = bytes one step must move (reads + writes) / kexue time"
        if with_bw:
            legend += "; kx %bw = that as a percent of the bandwidth floor measured in this run"
        print(f"({legend})", file=file)
    if with_flops:
        legend = "kx GFLOP/s = floating-point operations of one call / kexue time"
        if with_rate:
            legend += "; kx %mm = that as a percent of the matmul rate measured in this run"
        print(f"({legend})", file=file)
    for (area, op), lines in body.items():
        print(f"\n{area}: {op}", file=file)
        print(line(head), file=file)
        for cells in lines:
            print(line(cells), file=file)
    print(file=file)


def main(doc: str, run: Callable, report: Callable, argv: Sequence[str] | None = None) -> int:
    """The command line every bench file shares: --quick, --threads N..; the
    machine header, ``run(quick, threads)`` -> rows, the table, ``report(rows)``."""
    import argparse

    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter timings; skip slow reference runs")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], metavar="N")
    a = p.parse_args(argv)
    print(machine_header(a.threads), flush=True)
    rows = run(a.quick, a.threads)
    print_table(rows)
    report(rows)
    return 0
