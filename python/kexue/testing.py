"""Test helpers: the one place tolerances come from."""
from __future__ import annotations

import numpy as np

__all__ = ["assert_close"]

# (rtol, atol) per float dtype
_TOLERANCES = {
    np.dtype(np.float64): (1e-12, 1e-12),
    np.dtype(np.float32): (1e-5, 1e-5),
}


def assert_close(actual, expected, dtype=None, rtol=None, atol=None):
    """Assert ``actual`` equals ``expected`` within the tolerance of ``dtype``.

    dtype defaults to the actual array's float dtype (float64 when it has none);
    float64 allows about 1e-12 relative/absolute, float32 about 1e-5. rtol/atol
    override the defaults (loosen only for one op, with a comment saying why).
    Shapes must match exactly; NaN equals NaN and infinities must match.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if dtype is None:
        dtype = actual.dtype if np.issubdtype(actual.dtype, np.floating) else np.float64
    d_rtol, d_atol = _TOLERANCES.get(np.dtype(dtype), _TOLERANCES[np.dtype(np.float32)])
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    np.testing.assert_allclose(
        actual,
        expected,
        rtol=d_rtol if rtol is None else rtol,
        atol=d_atol if atol is None else atol,
        equal_nan=True,
    )
