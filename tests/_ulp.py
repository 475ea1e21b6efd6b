"""Errors in ulps, for tests/test_accuracy.py and benchmarks/accuracy.py.

An error in ulps is ``|got - exact| / ulp(exact)``, where ``ulp(v)`` is the spacing of the
dtype's numbers at ``|v|`` (for subnormal ``v``, the smallest subnormal; past the largest
finite number, the spacing at it). A correctly rounded result is within 0.5 ulp.

``exact`` is an array in a *wide* dtype: float64 for a float16, bfloat16 or float32 result (the
float64 value of a function of float32 inputs is 2^-29 float32 ulps off at worst), and x87
extended precision (``np.longdouble``, 64-bit significand) for a float64 result, so the
reference's own error is 2^-11 ulp or less.

Where the exact value rounds to a non-finite number of the dtype (an overflow, an infinity, a
NaN), the result must be that same non-finite value: its error is then 0, and infinite
otherwise. A non-finite result where a finite one is due is an infinite error as well.
"""

import numpy as np

from minigrad import _dtypes

__all__ = ["DTYPES", "dtype_id", "wide_dtype", "ulp", "ulp_errors", "worst"]

# The dtypes whose accuracy is measured, by name (bfloat16 only with ml_dtypes).
DTYPES = {str(d): d for d in _dtypes.FLOATS}

# x87 extended precision where numpy has it (x86 Linux); None elsewhere.
LONGDOUBLE = np.longdouble if np.finfo(np.longdouble).nmant >= 63 else None


def dtype_id(dtype):
    return str(np.dtype(dtype))


def wide_dtype(dtype):
    """The dtype the exact values of ``dtype`` results are computed in, or None where this
    platform has none wider than float64."""
    return LONGDOUBLE if np.dtype(dtype) == np.float64 else np.dtype(np.float64)


def to_wide(a, dtype):
    """``a`` (any float array, bfloat16 included) converted exactly to ``wide_dtype(dtype)``."""
    return np.asarray(a).astype(np.float64).astype(wide_dtype(dtype))


def ulp(value, dtype):
    """The spacing of ``dtype``'s numbers at ``|value|`` (an array in a wide dtype)."""
    fi = _dtypes.finfo(dtype)
    mag = np.minimum(np.abs(value), fi.max)
    _, e = np.frexp(mag)  # mag = f * 2**e with 0.5 <= f < 1, so floor(log2(mag)) = e - 1
    e = np.where(mag == 0, fi.minexp + 1, e)
    return np.ldexp(np.ones_like(mag), np.maximum(e - 1, int(fi.minexp)) - int(fi.nmant))


def ulp_errors(got, exact, dtype, scale=None, allow=None):
    """Errors of ``got`` (an array of ``dtype``) in ulps of ``dtype`` at ``exact``.

    ``scale`` (optional, broadcast like ``exact``): measure in ulps at ``max(|exact|, scale)``
    instead, for results that are a difference of larger terms, whose rounding no formula can
    avoid (the test says which). ``allow`` (optional): an absolute error that is not counted,
    for an error that a formula's own rounded step makes unavoidable (the test says which).
    """
    exact = np.asarray(exact)
    got = to_wide(got, dtype).astype(exact.dtype)
    at = np.abs(exact) if scale is None else np.maximum(np.abs(exact), np.abs(scale))
    fi = _dtypes.finfo(dtype)
    big = np.asarray(fi.max, exact.dtype)
    overflows = np.abs(exact) >= big + ulp(big, dtype) / 2  # rounds to +-inf in ``dtype``
    target = np.where(overflows, np.sign(exact) * np.inf, exact)  # NaN stays NaN
    special = ~np.isfinite(target) | ~np.isfinite(got)
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - exact)
        if allow is not None:
            diff = np.maximum(diff - np.where(special, 0, allow), 0)
        err = diff / ulp(np.where(special, 1, at), dtype)
        same = (got == target) | (np.isnan(got) & np.isnan(target))
    return np.where(special, np.where(same, 0.0, np.inf), err).astype(np.float64)


def worst(err, got, exact, inputs, describe=None):
    """A message naming the worst error, where it is, its inputs, the result and the exact value.

    ``inputs`` are the op's input arrays; an input of the result's shape is shown at the
    worst index, others by ``describe(index)`` if given, else by their shape.
    """
    err = np.asarray(err)
    index = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), err.shape)
    got, exact = np.asarray(got), np.asarray(exact)
    parts = []
    for k, x in enumerate(inputs):
        x = np.asarray(x)
        if x.shape == err.shape:
            parts.append(f"x{k}={float(x[index])!r}")
        elif x.ndim == 0:
            parts.append(f"x{k}={float(x)!r}")
        else:
            parts.append(f"x{k}: shape {x.shape}")
    if describe is not None:
        parts.append(describe(index))
    return (f"{float(err[index]):.3g} ulp at index {tuple(int(i) for i in index)}: "
            f"{', '.join(parts)}; got {float(got[index])!r}, exact {float(exact[index])!r}")
