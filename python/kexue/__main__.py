"""Command line: ``python -m kexue {info,bench,text}`` and ``python -m kexue --cmake-dir``."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

import kexue


def cmake_dir() -> str:
    """The folder holding kexueConfig.cmake, for ``-Dkexue_DIR=``.

    Searched over every folder of the package (``kexue.__path__``): a wheel
    install has one; an editable install keeps the Python sources in the
    checkout and the CMake-installed files (headers, libkexue.a, share/) in
    site-packages, and lists both.
    """
    folders = [os.path.abspath(p) for p in kexue.__path__]
    for folder in folders:
        candidate = os.path.join(folder, "share", "cmake", "kexue")
        if os.path.isfile(os.path.join(candidate, "kexueConfig.cmake")):
            return candidate
    return os.path.join(folders[0], "share", "cmake", "kexue")


def _call(obj, name: str, default: str = "?") -> str:
    fn = getattr(obj, name, None)
    if fn is None:
        return default
    try:
        return str(fn())
    except Exception as exc:  # info must print even from a half-working build
        return f"? ({exc})"


def info() -> None:
    core = getattr(kexue, "_core", None)
    if core is None:
        try:
            core = importlib.import_module("kexue._core")
        except ImportError:
            core = None
    try:
        kc = importlib.import_module("kexue.cuda")
        cuda = f"{kc.built()} (kexue._cuda; CUDA devices visible: {kc.device_count()})"
    except ImportError:
        cuda = "?"
    print(f"kexue      {getattr(kexue, '__version__', '?')}")
    print(f"location   {os.path.dirname(os.path.abspath(kexue.__file__))}")
    print(f"compiler   {_call(core, 'compiler_info') if core is not None else '?'}")
    print(f"simd       {_call(kexue, 'simd_level')} (built: {_call(core, 'simd_levels_built')}; "
          f"KEXUE_SIMD=scalar|avx2|avx512 lowers it)")
    print(f"threads    {_call(kexue, 'get_num_threads')}")
    print(f"cuda built {cuda}")
    print(f"cmake dir  {cmake_dir()}")


# ---------------------------------------------------------------------------
# bench


def _bench_modules() -> tuple[str, list[str]]:
    """(import prefix, folders) of the bench modules.

    Installed: the bench files live in the package as ``kexue._bench``. From a
    source tree (no ``_bench``): the repository's ``bench/`` is put on
    sys.path and the modules are imported top level.
    """
    try:
        pkg = importlib.import_module("kexue._bench")
        return "kexue._bench.", list(pkg.__path__)
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    for root in (os.path.dirname(os.path.dirname(here)), os.getcwd()):
        folder = os.path.join(root, "bench")
        if os.path.isfile(os.path.join(folder, "_harness.py")):
            if folder not in sys.path:
                sys.path.insert(0, folder)
            return "", [folder]
    raise SystemExit(
        "kexue bench: the bench modules are not installed (no kexue._bench) "
        "and no bench/ folder was found"
    )


def _known_areas(folders: list[str]) -> list[str]:
    names = {m.name for m in pkgutil.iter_modules(folders)}
    return sorted(n[len("bench_") :] for n in names if n.startswith("bench_"))


def bench(
    areas: Sequence[str], quick: bool, threads: Sequence[int], parser: argparse.ArgumentParser
) -> int:
    prefix, folders = _bench_modules()
    known = _known_areas(folders)
    unknown = [a for a in areas if a not in known]
    if unknown:
        parser.error(f"unknown bench area(s): {', '.join(unknown)}; known: {', '.join(known)}")
    harness = importlib.import_module(prefix + "_harness")
    print(harness.machine_header(threads), flush=True)
    for area in areas or known:
        mod = importlib.import_module(prefix + "bench_" + area)
        rows = mod.run(quick, list(threads))
        harness.print_table(rows)
        report = getattr(mod, "report", None)
        if report is not None:
            report(rows)
        sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------
# text


def _parse_keywords(spec: str) -> list[str]:
    """'cat mat' -> two keywords; 'on the mat, cat' -> 'on the mat' (3 tokens) and 'cat'."""
    if "," in spec:
        return [k.strip() for k in spec.split(",") if k.strip()]
    return spec.split()


def text(args: argparse.Namespace) -> int:
    """Train an NGramLM on a corpus and print keyword-constrained sentences."""
    import time

    import numpy as np

    from kexue import text as kt

    t0 = time.perf_counter()
    if args.corpus:
        with open(args.corpus, encoding="utf-8") as f:
            lines = [line for line in f.read().split("\n") if line.strip()]
        source = args.corpus
    else:
        lines = kt.corpus.generate(args.sentences, seed=args.corpus_seed)
        source = f"kexue.text.corpus.generate({args.sentences}, seed={args.corpus_seed})"
    lm = kt.NGramLM.fit_text(lines, order=args.order)
    print(f"corpus     {source}: {len(lines)} sentences, vocabulary {lm.vocab_size}")
    print(f"model      {lm!r} ({time.perf_counter() - t0:.1f} s)")
    keywords = _parse_keywords(args.keywords)
    if not keywords:
        raise SystemExit("kexue text: --keywords is empty")
    missing = [w for k in keywords for w in k.split() if w not in lm._index]
    if missing:
        raise SystemExit(f"kexue text: not in the corpus vocabulary: {', '.join(missing)}")
    anneal = None if args.anneal is None else ("geometric", args.anneal[0], args.anneal[1])
    t1 = time.perf_counter()
    r = kt.constrained_generate(lm, keywords, n_steps=args.steps, chains=args.chains, gamma=args.gamma,
                                proposal_topk=args.topk, seed=args.seed, anneal=anneal,
                                progress=not args.no_progress)
    dt = time.perf_counter() - t1
    print(f"sampler    {args.chains} chains x {args.steps} steps in {dt:.2f} s "
          f"({args.chains * args.steps / max(dt, 1e-9):,.0f} proposals/s); acceptance "
          + ", ".join(f"{m} {a:.2f}" for m, a in r.acceptance.items()))
    print(f"keywords   {' | '.join(keywords)}")
    order = np.argsort(-r.best_score, kind="stable")
    for c in order:
        print(f"{r.best_score[c]:9.3f}  {lm.decode(r.best[c])}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kexue",
        description="kexue: fast numerics for the algorithms of kexue.fm.",
    )
    version = f"kexue {getattr(kexue, '__version__', '?')}"
    parser.add_argument("--version", action="version", version=version)
    parser.add_argument(
        "--cmake-dir",
        action="store_true",
        help="print the folder holding kexueConfig.cmake (pass it as -Dkexue_DIR=) and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="version, compiler, SIMD level, threads, CUDA")
    b = sub.add_parser(
        "bench",
        help="run the benchmarks and print a table",
        description="Check then time kexue against its reference and peers; "
        "progress on stderr, the table on stdout.",
    )
    b.add_argument(
        "areas", nargs="*", metavar="AREA", help="areas to run (default: all), e.g. decoders"
    )
    b.add_argument("--quick", action="store_true", help="shorter timings; skip slow reference runs")
    b.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        metavar="N",
        help="thread counts to run at (default: 1 2)",
    )
    t = sub.add_parser(
        "text",
        help="generate sentences that contain given keywords (n-gram LM + MCMC)",
        description="Fit a Kneser-Ney n-gram model on a corpus (default: the generated template "
        "corpus) and run keyword-constrained Metropolis-Hastings (kexue.text).",
    )
    t.add_argument("--corpus", metavar="FILE", help="one sentence per line, whitespace-tokenised")
    t.add_argument("--sentences", type=int, default=100_000,
                   help="size of the generated corpus when no --corpus is given (default 100000)")
    t.add_argument("--corpus-seed", type=int, default=0, help=argparse.SUPPRESS)
    t.add_argument("--keywords", required=True,
                   help='"w1 w2": one keyword per word; with commas, "new york, city": multi-word keywords')
    t.add_argument("--order", type=int, default=3, help="n-gram order, 2..5 (default 3)")
    t.add_argument("--steps", type=int, default=200, help="MH steps per chain (default 200)")
    t.add_argument("--chains", type=int, default=8, help="chains (default 8)")
    t.add_argument("--gamma", type=float, default=1.0, help="target exponent (default 1.0)")
    t.add_argument("--topk", type=int, default=64, help="candidates per slot (default 64)")
    t.add_argument("--anneal", type=float, nargs=2, metavar=("T0", "T1"),
                   help="geometric annealing from T0 to T1 (search for the best sentence)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    args = parser.parse_args(argv)

    if args.cmake_dir:
        print(cmake_dir())
        return 0
    if args.command == "info":
        info()
        return 0
    if args.command == "bench":
        if any(n < 1 for n in args.threads):
            b.error("--threads: thread counts must be >= 1")
        return bench(args.areas, args.quick, args.threads, b)
    if args.command == "text":
        return text(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
