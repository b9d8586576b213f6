"""Argument preparation shared by the Python wrappers (no computation here)."""
from __future__ import annotations

import numpy as np


def is_gpu_array(x):
    """Whether ``x`` lives in GPU memory: a CUDA torch tensor (Parameters
    too), or anything exposing ``__cuda_array_interface__`` (CuPy, Numba)."""
    is_cuda = getattr(x, "is_cuda", None)
    if isinstance(is_cuda, bool) and hasattr(x, "data_ptr"):  # torch.Tensor
        return is_cuda
    try:
        return hasattr(x, "__cuda_array_interface__")
    except Exception:  # a producer whose interface raises something else
        return False


def arr(x):
    """``x`` as a C-contiguous numpy array, never changing its dtype.

    numpy arrays that are already C-contiguous pass through without a copy;
    strided or Fortran-order arrays are copied once; anything numpy can view
    (lists, torch CPU tensors via ``__array__``) is converted by ``np.asarray``.
    """
    if x is None:
        return None
    if is_gpu_array(x):
        raise ValueError(
            f"[kexue] got a {type(x).__module__}.{type(x).__name__} in GPU memory; this function has no "
            "CUDA kernel yet (see kexue.cuda for those that have): pass a host (numpy) array")
    a = np.asarray(x)
    if not a.flags.c_contiguous:
        a = np.array(a, order="C", copy=True)
    return a


def split_allowed(op, allowed):
    """Normalise ``allowed`` into (allowed[K,K], allowed_start[K], allowed_end[K]).

    ``allowed`` is None, a [K,K] bool array (anything but a tuple), or a tuple
    ``(allowed, allowed_start, allowed_end)`` whose items may each be None --
    the triple that :func:`kexue.crf.allowed_transitions` returns.
    """
    if allowed is None:
        return None, None, None
    if isinstance(allowed, tuple):
        if len(allowed) != 3:
            raise ValueError(
                f"[kexue.{op}] allowed must be a [K,K] bool array or a triple "
                f"(allowed, allowed_start, allowed_end); got a tuple of {len(allowed)}"
            )
        return tuple(arr(a) for a in allowed)
    return arr(allowed), None, None


def split_factors(op, factors):
    """``factors=(L, R)`` -> (L, R) as arrays, or (None, None)."""
    if factors is None:
        return None, None
    if not isinstance(factors, (tuple, list)) or len(factors) != 2:
        raise ValueError(
            f"[kexue.{op}] factors must be a pair (L, R) of [K,d] arrays; got {type(factors).__name__}"
        )
    return arr(factors[0]), arr(factors[1])


def check_int(op, name, value):
    """An integer argument (Python int or numpy integer), else TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"[kexue.{op}] {name} must be an int; got {type(value).__name__}")
    return int(value)
