"""kexue: fast, dependable numerics for the algorithms of kexue.fm.

GPU arrays: see :mod:`kexue.cuda`. Areas: :mod:`kexue.crf` (linear-chain CRF), :mod:`kexue.memm` (MEMM /
Bi-MEMM), :mod:`kexue.losses` (multi-label ZLPR), :mod:`kexue.global_pointer`
(span scores, decoding, loss, F1). Every public function has a pure-numpy twin in
:mod:`kexue.reference`. Kernels run on a small thread pool
(:func:`set_num_threads`) with the GIL released; results do not depend on
the thread count.
"""
from __future__ import annotations

from . import _core
from . import attention, crf, cuda, global_pointer, losses, memm, optim, samplers, text  # noqa: E402

__version__ = _core.__version__

__all__ = ["attention", "crf", "cuda", "global_pointer", "losses", "memm", "optim", "samplers", "text", "get_num_threads", "set_num_threads", "simd_level", "__version__"]


def get_num_threads() -> int:
    """The number of threads kexue's kernels use (the caller's included)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use ``n`` >= 1 threads in kexue's kernels (default: KEXUE_NUM_THREADS or all cores).

    Results are bitwise identical for any ``n``: the work is split into the
    same chunks whatever the thread count.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"[kexue.set_num_threads] n must be an int; got {type(n).__name__}")
    _core.set_num_threads(int(n))


def simd_level() -> str:
    """The instruction set the CPU kernels run at: "avx512", "avx2" or "scalar".

    The best the CPU supports, unless the environment variable KEXUE_SIMD
    asks for a lower level at import.
    """
    return _core.simd_level()


import numpy as np  # noqa: E402  (used by set_num_threads)
