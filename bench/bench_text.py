"""Benchmark of the text area: kexue.text's n-gram model and constrained MH.

The corpus is ``kexue.text.corpus.generate(300_000)`` (about 2.25 M tokens, a
48.5k-word vocabulary; --quick: 60,000 sentences); both models are trigrams
fitted on it (fit times are printed).

- NGramLM look-ups: ``logprob`` of 3,000 corpus sentences (every position,
  end of sentence included, is one look-up p(w | context)). kexue (C++, the
  sentences in parallel) against ``kexue.reference.text.NGramLM``, the
  pure-Python dict-based twin (the same numbers bit for bit; checked before
  timing). The table's times are per sentence batch; the report turns them
  into look-ups per second.
- MH: ``constrained_generate(lm, ["cat", "mat"], proposal_topk=64)`` with 1
  chain x 2,000 steps and 64 chains x 300 steps: every proposal takes the
  top-64 candidates of its slot and re-scores each candidate sentence, only
  the n-gram windows the move touches (the rest of the sentence's log
  probabilities are kept). Times are per call; the report turns them into
  proposals per second. The candidate lists are cached per thread and per
  model, and the timing's warm-up call fills that cache (the first call on a
  fresh model pays for it; its time is printed).

- next_logprobs: the full distribution (V + 1 log probabilities) after 20
  corpus prefixes (--quick: 5), kexue against the twin (timed once: 20 x
  48.5k probabilities in Python).
- gibbs_resample: 64 chains of 16 tokens, 200 steps, with a numpy
  "conditional" (a fixed [V=1000] logit table indexed by the left
  neighbour): kexue against the twin -- the sampler's own cost around the
  user's callable.

Correctness before timing: kexue's log probabilities equal the twin's
(bitwise); a 2-chain MH run equals the twin's trajectory on a small model.

The end of the report states issue 7's performance bar at 2 threads
(informational): at least 3x10^4 MH proposals per second with 64 chains, and
the NGramLM at least 50x the pure-Python look-up rate.

Run: ``python bench/bench_text.py [--quick] [--threads 1 2]`` or
``python -m kexue bench text``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

try:
    import kexue.reference.text as ref
    import kexue.text as kt
except ImportError as exc:  # say what is missing instead of a bare traceback
    raise ImportError(f"bench_text needs kexue.text (issue 7): {exc}") from exc

try:  # installed as kexue._bench, or run as a script from bench/
    from . import _harness
except ImportError:
    import _harness  # type: ignore[no-redef]

Case = _harness.Case
Row = _harness.Row
assert_equal = _harness.assert_equal
budget = _harness.budget
fmt_ratio = _harness.fmt_ratio
lookup = _harness.lookup
num_threads = _harness.num_threads
progress = _harness.progress
row = _harness.row
time_median = _harness.time_median
time_once = _harness.time_once
timed_check = _harness.timed_check

AREA = "text"
SEED = 3
N_QUERY = 3000
KEYWORDS = ["cat", "mat"]
TOPK = 64
OP_LOOKUP = "NGramLM.logprob (trigram)"
OP_MH = f"constrained_generate top-{TOPK}"
OP_NEXT = "NGramLM.next_logprobs (trigram)"
OP_GIBBS = "gibbs_resample, numpy conditional"
N_NEXT = 20
GIBBS = (64, 16, 1000, 200)  # chains, length, V, steps
MH_CASES = ((1, 2000), (64, 300))  # (chains, steps)

BAR_THREADS = 2
BAR_PROPOSALS = 3e4
BAR_LOOKUP_X = 50.0

INFO: dict = {}


def run(quick: bool, threads: Sequence[int]) -> list[Row]:
    """Check and time every case at every thread count; return the rows."""
    import time

    INFO.clear()
    n_sent = 60_000 if quick else 300_000
    progress(f"[{AREA}] corpus of {n_sent} sentences ...")
    lines = kt.corpus.generate(n_sent, seed=0)
    t0 = time.perf_counter()
    lm = kt.NGramLM.fit_text(lines, order=3)
    INFO["fit_kexue"] = time.perf_counter() - t0
    progress(f"[{AREA}] kexue fit {INFO['fit_kexue']:.2f} s: {lm!r}; the pure-Python twin's fit ...")
    t0 = time.perf_counter()
    twin = ref.NGramLM.fit_text(lines, order=3)
    INFO["fit_twin"] = time.perf_counter() - t0
    INFO["vocab"] = lm.vocab_size
    INFO["sentences"] = n_sent
    query = [lm.encode(s) for s in lines[:N_QUERY]]
    INFO["positions"] = sum(len(q) + 1 for q in query)
    shape_l = f"{N_QUERY} sentences, V={lm.vocab_size}"
    rows: list[Row] = []
    bud = budget(quick)

    want = twin.logprob(query)
    for n in threads:
        with num_threads(n):
            case = Case(AREA, OP_LOOKUP, shape_l, "int64", n)
            progress(f"[{AREA}] {case.label()} ...")
            t = timed_check(lambda: lm.logprob(query),
                            lambda out: assert_equal("kexue logprob vs the twin", out, want), bud)
            rows.append(row(case, "kexue", t))
            rows.append(row(case, "python-dict", time_once(lambda: twin.logprob(query))[0]))

    prefixes = [q[: len(q) // 2] for q in query[: 5 if quick else N_NEXT]]
    want_next = twin.next_logprobs(prefixes)
    t_twin = time_once(lambda: twin.next_logprobs(prefixes))[0]
    for n in threads:
        with num_threads(n):
            case = Case(AREA, OP_NEXT, f"{len(prefixes)} prefixes, V={lm.vocab_size}", "float64", n)
            progress(f"[{AREA}] {case.label()} ...")
            t = timed_check(lambda: lm.next_logprobs(prefixes),
                            lambda out: assert_equal("kexue next_logprobs vs the twin", out, want_next), bud)
            rows.append(row(case, "kexue", t))
            rows.append(row(case, "python-dict", t_twin))

    C, L, Vg, steps = GIBBS
    table = np.random.default_rng(SEED).normal(size=(Vg, Vg))

    def cond(seqs, pos):
        return table[seqs[np.arange(len(seqs)), np.maximum(pos - 1, 0)]]

    x0 = np.random.default_rng(SEED).integers(0, Vg, (C, L))
    want_g = ref.gibbs_resample(cond, x0, steps, seed=SEED)
    t_twin = time_once(lambda: ref.gibbs_resample(cond, x0, steps, seed=SEED))[0]
    for n in threads:
        with num_threads(n):
            case = Case(AREA, OP_GIBBS, f"C={C}, L={L}, V={Vg}, {steps} steps", "int64", n)
            progress(f"[{AREA}] {case.label()} ...")
            t = timed_check(lambda: kt.gibbs_resample(cond, x0, steps, seed=SEED),
                            lambda out: assert_equal("kexue gibbs_resample vs the twin", out.samples,
                                                     want_g.samples), bud)
            rows.append(row(case, "kexue", t))
            rows.append(row(case, "reference", t_twin))

    # the MH chains against the twin on a small model (the twin re-scores in Python)
    small = lines[:1500]
    a = kt.constrained_generate(kt.NGramLM.fit_text(small), KEYWORDS, n_steps=30, chains=2, seed=SEED)
    b = ref.constrained_generate(ref.NGramLM.fit_text(small), KEYWORDS, n_steps=30, chains=2, seed=SEED)
    assert_equal("kexue MH best scores vs the twin", a.best_score, b.best_score)
    assert_equal("kexue MH accepted moves vs the twin", np.array(list(a.accepted.values())),
                 np.array(list(b.accepted.values())))

    for chains, steps in MH_CASES:
        for n in threads:
            with num_threads(n):
                case = Case(AREA, OP_MH, f"{chains} chains x {steps} steps", "int64", n)
                progress(f"[{AREA}] {case.label()} ...")

                def kx(chains=chains, steps=steps):
                    return kt.constrained_generate(lm, KEYWORDS, n_steps=steps, chains=chains, seed=SEED,
                                                   proposal_topk=TOPK)

                if "cold" not in INFO:
                    INFO["cold"], _ = time_once(kx)
                    INFO["cold_case"] = case.shape

                def check(out, chains=chains):
                    if sum(out.proposed.values()) < chains or not np.isfinite(out.best_score).all():
                        raise AssertionError("kexue MH made no proposals or a non-finite score")

                rows.append(row(case, "kexue", timed_check(kx, check, bud)))
    return rows


def report(rows: Sequence[Row], file=None) -> None:
    """Rates and issue 7's bar with PASS/FAIL (informational)."""
    file = file or sys.stdout
    have = sorted({r.threads for r in rows})
    if not have:
        return
    print(f"Models: trigram on {INFO.get('sentences')} sentences, V={INFO.get('vocab')}; fit kexue "
          f"{INFO.get('fit_kexue', float('nan')):.2f} s, pure-Python twin {INFO.get('fit_twin', float('nan')):.1f} s; "
          f"first MH call on the fresh model ({INFO.get('cold_case')}, cold top-k cache) "
          f"{INFO.get('cold', float('nan')):.2f} s", file=file)
    print("Rates:", file=file)
    for r in rows:
        if not r.seconds:
            continue
        if r.op == OP_LOOKUP:
            print(f"  look-ups  {r.shape:<32} threads={r.threads}  {r.impl:<12} "
                  f"{INFO['positions'] / r.seconds / 1e6:9.3f} M/s", file=file)
        elif r.op == OP_MH:
            chains, steps = (int(v) for v in r.shape.replace(" chains x", "").replace(" steps", "").split())
            print(f"  MH        {r.shape:<32} threads={r.threads}  {r.impl:<12} "
                  f"{chains * steps / r.seconds:9.0f} proposals/s", file=file)

    n = BAR_THREADS if BAR_THREADS in have else max(have)
    note = "" if n == BAR_THREADS else f"; the bar is stated for {BAR_THREADS} threads"
    print(f"\nPerformance bar (issue 7; threads={n}{note}; informational):", file=file)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    chains, steps = MH_CASES[-1]
    t = lookup(rows, "kexue", op=OP_MH, shape=f"{chains} chains x {steps} steps", threads=n)
    if t is None:
        print("  MH proposals/s with 64 chains: n/a", file=file)
    else:
        rate = chains * steps / t
        print(f"  MH proposals/s with {chains} chains (top-{TOPK} re-scored): {rate:,.0f} (bar >= "
              f"{BAR_PROPOSALS:,.0f})  {verdict(rate >= BAR_PROPOSALS)}", file=file)
    shape_l = next((r.shape for r in rows if r.op == OP_LOOKUP), None)
    kx = lookup(rows, "kexue", op=OP_LOOKUP, shape=shape_l, threads=n) if shape_l else None
    py = lookup(rows, "python-dict", op=OP_LOOKUP, shape=shape_l, threads=n) if shape_l else None
    if kx is None or py is None:
        print("  NGramLM look-ups vs pure Python: n/a", file=file)
    else:
        r = py / kx
        print(f"  NGramLM look-ups vs the pure-Python dict model: {fmt_ratio(r)} "
              f"(bar >= {BAR_LOOKUP_X:g}x)  {verdict(r >= BAR_LOOKUP_X)}", file=file)


def main(argv: Sequence[str] | None = None) -> int:
    return _harness.main(__doc__, run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
