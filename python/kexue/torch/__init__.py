"""PyTorch drop-ins: kexue's kernels behind interfaces PyTorch users already have.

- :class:`CRF` (pytorch-crf's surface) and :class:`MEMM`, as ``nn.Module``\\ s
- :mod:`kexue.torch.optim`: ``torch.optim.Optimizer`` subclasses stepping CPU
  tensors through kexue's fused kernels, and :func:`clip_grad_norm_`
- :func:`multilabel_crossentropy`, :func:`sparse_multilabel_crossentropy`,
  :class:`GlobalPointer` and :func:`global_pointer_loss` for NER
- :func:`scaled_dot_product_attention`: torch's SDPA (signature and
  semantics, torch's top-left ``is_causal`` included) on kexue.attention's
  O(N)-memory kernels, plus kexue's window / UniLM / log-n / ALiBi extras

torch is not a dependency of kexue: ``import kexue`` never imports it, and
``import kexue.torch`` without torch raises an ImportError saying how to
install it. Tensors must be on the CPU; float32 and float64 share memory
with numpy (no copies).
"""
from __future__ import annotations

import importlib

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "kexue.torch needs PyTorch, which kexue does not install: "
        "pip install torch (the CPU wheel is enough)"
    ) from e

_EXPORTS = {
    "CRF": "._crf",
    "MEMM": "._crf",
    "multilabel_crossentropy": "._spans",
    "sparse_multilabel_crossentropy": "._spans",
    "GlobalPointer": "._spans",
    "global_pointer_loss": "._spans",
    "clip_grad_norm_": ".optim",
    "scaled_dot_product_attention": "._attention",
}

__all__ = sorted([*_EXPORTS, "optim"])


def __getattr__(name):
    if name == "optim":
        return importlib.import_module(".optim", __name__)
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'kexue.torch' has no attribute {name!r}")
