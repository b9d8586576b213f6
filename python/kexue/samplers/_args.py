"""Argument helpers shared by kexue.samplers' wrappers (no computation)."""
from __future__ import annotations

import sys

from .._util import check_int

_MAX_SEED = 2**64


def seed_arg(op, seed):
    """``seed`` as an int in [0, 2^64) (the Philox key), else TypeError/ValueError."""
    s = check_int(op, "seed", seed)
    if not 0 <= s < _MAX_SEED:
        raise ValueError(f"[kexue.{op}] seed must be in [0, 2^64); got {s}")
    return s


def progress_arg(op, progress):
    """A (done, total) callback printing a plain-text progress line on stderr, or None."""
    if not progress:
        return None
    state = {"last": -1}

    def report(done, total):
        pct = 100 * done // max(total, 1)
        if pct != state["last"]:
            state["last"] = pct
            sys.stderr.write(f"\r[kexue.{op}] {done}/{total} ({pct}%)")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return report
