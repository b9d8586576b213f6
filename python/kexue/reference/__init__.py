"""Pure-numpy twins of every public kexue function.

Each submodule mirrors the kexue module of the same name (``kexue.reference.crf``
for ``kexue.crf``, ...): the same function names, signatures, defaults and
output dtypes, computed in float64 with plain numpy and Python loops, written
for clarity rather than speed. The tests check the compiled core against these
twins and the twins against brute-force oracles.

This package never imports ``kexue._core`` (nor anything else from kexue), so
it can be loaded on its own, even before the extension is built. Input
validation is minimal: the checked front door is the core.
"""
from . import attention, crf, global_pointer, losses, memm, optim, samplers, samplers_diagnostics

__all__ = ["attention", "crf", "global_pointer", "losses", "memm", "optim", "samplers",
           "samplers_diagnostics"]
