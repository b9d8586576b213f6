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

Ops with CUDA kernels in this release: :func:`kexue.crf.viterbi`,
:func:`kexue.crf.log_partition`, :func:`kexue.crf.log_likelihood`,
:func:`kexue.crf.nll_grad` and :func:`kexue.crf.marginals` (their outputs are allocated on the emissions'
device with their library, torch or CuPy, K <= 2048; paths and Viterbi
scores equal the CPU's bit for bit; log Z, log p(tags), the marginals, the
loss and its gradients are computed in float64 and agree to rounding, the parameter
gradients summed over the batch in a fixed order),
:func:`kexue.optim.functional.sgd_`,
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


def _host_stream(op, stream):
    """A ValueError unless ``stream`` is None: host arrays take no stream."""
    if stream is not None:
        raise ValueError(f"[kexue.{op}] stream is for GPU arrays; these are host arrays (got {stream!r})")


def _backend(op, core, arrays, stream):
    """The module to call for ``arrays`` (kexue._cuda when the first is a GPU
    array, else kexue._core) and a context that sets the stream."""
    first = next((a for a in arrays if a is not None), None)
    if first is not None and is_gpu_array(first):
        m = _module(op)
        return m, _on_stream(m, _stream_handle(op, stream))
    _host_stream(op, stream)
    return core, contextlib.nullcontext()


def _empty(op, like, shape, dtype):
    """An uninitialised array on ``like``'s device, made by ``like``'s library
    (torch or CuPy); dtype "int64" or None (``like``'s own)."""
    lib = type(like).__module__.split(".")[0]
    if lib == "torch":
        import torch
        return torch.empty(shape, dtype=torch.int64 if dtype == "int64" else like.dtype, device=like.device)
    if lib == "cupy":
        import cupy
        with cupy.cuda.Device(like.device.id):
            return cupy.empty(shape, dtype=dtype or like.dtype)
    raise TypeError(f"[kexue.{op}] kexue allocates GPU outputs with the input's library, torch or "
                    f"CuPy; got {type(like).__module__}.{type(like).__name__}")


def _crf_prepare(op, emissions, allowed):
    """The kexue._cuda module, (allowed, allowed_start, allowed_end) and (B, T, K)
    of a CRF call on GPU emissions."""
    m = _module(op)
    if isinstance(allowed, tuple):
        if len(allowed) != 3:
            raise ValueError(f"[kexue.{op}] allowed must be a [K,K] bool array or a triple "
                             f"(allowed, allowed_start, allowed_end); got a tuple of {len(allowed)}")
        al, als, ale = allowed
    else:
        al, als, ale = allowed, None, None
    shape = getattr(emissions, "shape", None)
    if shape is None:
        shape = emissions.__cuda_array_interface__["shape"]
    if len(shape) != 3:
        raise ValueError(f"[kexue.{op}] emissions must be 3-D [B,T,K]; got shape {tuple(shape)}")
    return m, (al, als, ale), (int(shape[0]), int(shape[1]), int(shape[2]))


def _crf_viterbi(emissions, transitions, mask, start, end, allowed, stream):
    """kexue.crf.viterbi for GPU emissions (see there)."""
    op = "crf.viterbi"
    m, (al, als, ale), (B, T, _) = _crf_prepare(op, emissions, allowed)
    paths = _empty(op, emissions, (B, T), "int64")
    scores = _empty(op, emissions, (B,), None)
    with _on_stream(m, _stream_handle(op, stream)):
        m.crf_viterbi_into(emissions, transitions, mask, start, end, al, als, ale, paths, scores)
    return paths, scores


def _crf_forward(op, emissions, tags, transitions, mask, start, end, allowed, stream):
    """kexue.crf.log_partition (tags None) and log_likelihood for GPU emissions."""
    m, (al, als, ale), (B, _, _) = _crf_prepare(op, emissions, allowed)
    out = _empty(op, emissions, (B,), None)
    with _on_stream(m, _stream_handle(op, stream)):
        m.crf_forward_into(emissions, tags, transitions, mask, start, end, al, als, ale, out)
    return out


def _crf_nll_grad(emissions, tags, transitions, mask, start, end, allowed, stream):
    """kexue.crf.nll_grad for GPU emissions: (loss, d_emissions, d_transitions, d_start, d_end)."""
    op = "crf.nll_grad"
    m, (al, als, ale), (B, T, K) = _crf_prepare(op, emissions, allowed)
    out = (_empty(op, emissions, (B,), None), _empty(op, emissions, (B, T, K), None),
           _empty(op, emissions, (K, K), None), _empty(op, emissions, (K,), None),
           _empty(op, emissions, (K,), None))
    with _on_stream(m, _stream_handle(op, stream)):
        m.crf_nll_grad_into(emissions, tags, transitions, mask, start, end, al, als, ale, *out)
    return out


def _crf_marginals(emissions, transitions, mask, start, end, allowed, stream):
    """kexue.crf.marginals for GPU emissions [B,T,K]."""
    op = "crf.marginals"
    m, (al, als, ale), (B, T, K) = _crf_prepare(op, emissions, allowed)
    out = _empty(op, emissions, (B, T, K), None)
    with _on_stream(m, _stream_handle(op, stream)):
        m.crf_marginals_into(emissions, transitions, mask, start, end, al, als, ale, out)
    return out


def _lib(op, x):
    lib = type(x).__module__.split(".")[0]
    if lib not in ("torch", "cupy"):
        raise TypeError(f"[kexue.{op}] kexue allocates GPU state with the parameters' library, torch "
                        f"or CuPy; got {type(x).__module__}.{type(x).__name__}")
    return lib


def _zeros(op, like, shape=None, dtype=None):
    """Zeros on ``like``'s device by its library, ``like``'s shape and dtype by default."""
    shape = tuple(like.shape) if shape is None else tuple(shape)
    if _lib(op, like) == "torch":
        import torch
        return torch.zeros(shape, dtype=dtype or like.dtype, device=like.device)
    import cupy
    with cupy.cuda.Device(like.device.id):
        return cupy.zeros(shape, dtype=dtype or like.dtype)


def _dtype_name(x) -> str:
    """'float32' for numpy, CuPy and torch arrays alike."""
    return str(x.dtype).replace("torch.", "")


def _copy(x):
    """A copy on the same device (torch: clone)."""
    return x.clone() if type(x).__module__.split(".")[0] == "torch" else x.copy()


def _copy_into(dst, src):
    """dst[...] = src, src a GPU array of dst's library or a host array."""
    if type(dst).__module__.split(".")[0] == "torch":
        import torch
        dst.copy_(src if isinstance(src, torch.Tensor) else torch.as_tensor(src))
    else:
        import cupy
        dst[...] = cupy.asarray(src)
