"""kexue on NVIDIA GPUs: which ops run there, and how to call them.

Pass arrays that live in GPU memory -- ``torch.cuda`` tensors (also
``nn.Parameter``s that require grad; read through their own attributes), or
anything exposing ``__cuda_array_interface__`` (CuPy arrays, Numba device
arrays) -- to an op that has CUDA kernels, and it runs on the GPU the
arrays live on, in place, asynchronously on ``stream`` (default: the legacy
default stream, which orders with torch's and CuPy's default streams). The
same checks run as for numpy arrays, before anything is launched; every
array of one call must be on one device; GPU arrays must be C-contiguous
(kexue never copies device memory).

Ops with CUDA kernels in this release: :func:`kexue.optim.functional.sgd_`,
:func:`~kexue.optim.functional.adam_`, :func:`~kexue.optim.functional.adamw_`,
:func:`~kexue.optim.functional.adax_`, :func:`~kexue.optim.functional.lion_`
(float32/float64 state) and :func:`kexue.optim.clip_grad_norm_`. The steps
compute the CPU's results bit for bit; the norm agrees to rounding (its sum
is added in another order, 1e-14 relative at most): the kernels call
the same per-element header functions, compiled without multiply-add
contraction. Any other op given a GPU array raises ValueError naming it.

The kernels live in the separate extension ``kexue._cuda`` (linked to the
CUDA runtime statically), imported only when a GPU array is passed, so
``import kexue`` never needs CUDA. A build without nvcc has no ``_cuda``:
:func:`built` is False and GPU arrays are refused with a clear error.

>>> import kexue
>>> kexue.cuda.device_count() >= 0
True
"""
from __future__ import annotations

import contextlib

from . import _util

__all__ = ["built", "device_count", "is_available", "is_gpu_array"]

_mod = None
_tried = False


def _load():
    global _mod, _tried
    if not _tried:
        _tried = True
        try:
            from . import _cuda
        except ImportError:
            _cuda = None
        _mod = _cuda
    return _mod


def built() -> bool:
    """Whether this installation has kexue's CUDA kernels (the module kexue._cuda)."""
    return _load() is not None


def device_count() -> int:
    """CUDA devices visible to kexue: 0 without CUDA kernels, a driver or a GPU."""
    m = _load()
    return 0 if m is None else int(m.device_count())


def is_available() -> bool:
    """Whether GPU arrays can be passed: kexue has CUDA kernels and sees a GPU."""
    return device_count() > 0


def is_gpu_array(x) -> bool:
    """Whether ``x`` lives in GPU memory: a CUDA torch tensor (nn.Parameter
    too), or anything exposing ``__cuda_array_interface__`` (CuPy, Numba)."""
    return _util.is_gpu_array(x)


def _module(op):
    """kexue._cuda, or a ValueError naming ``op`` when this build has none."""
    m = _load()
    if m is None:
        raise ValueError(
            f"[kexue.{op}] got arrays in GPU memory, but this installation of kexue has no CUDA "
            "kernels (it was built without nvcc, or with KEXUE_CUDA=OFF); pass host (numpy) "
            "arrays, or build kexue on a machine with the CUDA toolkit")
    return m


def _stream_handle(op, stream):
    """A cudaStream_t as an int from None (0), an int, a torch.cuda.Stream
    (``.cuda_stream``) or a cupy.cuda.Stream (``.ptr``)."""
    if stream is None:
        return 0
    if isinstance(stream, bool):
        raise TypeError(f"[kexue.{op}] stream must be a CUDA stream; got bool")
    if isinstance(stream, int):
        if stream < 0:
            raise ValueError(f"[kexue.{op}] stream must be a cudaStream_t handle (>= 0); got {stream}")
        return stream
    for attr in ("cuda_stream", "ptr"):
        h = getattr(stream, attr, None)
        if isinstance(h, int) and not isinstance(h, bool):
            return h
    raise TypeError(f"[kexue.{op}] stream must be None, an int handle, a torch.cuda.Stream or a "
                    f"cupy.cuda.Stream; got {type(stream).__name__}")


@contextlib.contextmanager
def _on_stream(m, handle):
    prev = m.get_stream()
    m.set_stream(handle)
    try:
        yield
    finally:
        m.set_stream(prev)


def _backend(op, core, arrays, stream):
    """The module to call for ``arrays`` (kexue._cuda when the first is a GPU
    array, else kexue._core) and a context that sets the stream."""
    first = next((a for a in arrays if a is not None), None)
    if first is not None and is_gpu_array(first):
        m = _module(op)
        return m, _on_stream(m, _stream_handle(op, stream))
    if stream is not None:
        raise ValueError(f"[kexue.{op}] stream is for GPU arrays; these are host arrays (got {stream!r})")
    return core, contextlib.nullcontext()
