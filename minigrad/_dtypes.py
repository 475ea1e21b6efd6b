"""The dtypes minigrad computes with, and the one rule for low precision.

Floating dtypes are float16, bfloat16 (with the optional ``ml_dtypes`` package), float32 and
float64. float16 and bfloat16 are *storage* types: a tensor keeps its dtype, but every op
computes in float32 (the "op-math" type, as PyTorch's ``at::opmath_type``) and rounds its
result once. ``opmath`` names that type; ``Op.apply`` in ``_autograd.py`` is where the rule
is applied.

bfloat16 is numpy's extension dtype from ``ml_dtypes`` (kind ``'V'``, not ``'f'``), so code
asks ``is_float(dtype)`` here rather than testing ``dtype.kind == 'f'``.
"""

import numpy as np

try:  # optional: pip install "minigrad[bfloat16]"
    import ml_dtypes
except ImportError:  # pragma: no cover - exercised where ml_dtypes is absent
    ml_dtypes = None

__all__ = ["bfloat16", "FLOATS", "FLOAT_SET", "LOW", "FLOAT_NAMES", "is_float", "is_low", "opmath", "as_dtype", "finfo",
           "is_numeric", "numeric_dtype", "float_dtype", "BFLOAT16_HINT"]

float16, float32, float64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
bfloat16 = np.dtype(ml_dtypes.bfloat16) if ml_dtypes is not None else None

BFLOAT16_HINT = ("bfloat16 needs the optional package ml_dtypes: "
                 "pip install \"minigrad[bfloat16]\" (or pip install ml_dtypes)")

# Ordered by width, as error messages list them.
FLOATS = tuple(d for d in (float16, bfloat16, float32, float64) if d is not None)
LOW = frozenset(d for d in (float16, bfloat16) if d is not None)
FLOAT_SET = frozenset(FLOATS)
FLOAT_NAMES = "/".join(str(d) for d in FLOATS)


def is_float(dtype):
    """Whether ``dtype`` is one of minigrad's floating dtypes (those that carry gradients)."""
    return dtype in FLOAT_SET


def is_low(dtype):
    """Whether ``dtype`` is a storage-only float (float16, bfloat16) computed in float32."""
    return dtype in LOW


def opmath(dtype):
    """The dtype an op computes in for data of ``dtype``: float32 for float16/bfloat16."""
    return float32 if dtype in LOW else dtype


def is_numeric(dtype):
    """Whether a tensor may hold ``dtype``: bool, integers and the floats above."""
    return dtype.kind in "biuf" or is_float(dtype)


def as_dtype(dtype):
    """``dtype`` (a numpy dtype, type or name, ``"bfloat16"`` included) as a numpy dtype.

    ``"bfloat16"`` without ``ml_dtypes`` installed raises ImportError saying what to install.
    """
    if isinstance(dtype, str) and dtype.strip().lower() in ("bfloat16", "bf16"):
        if bfloat16 is None:
            raise ImportError(BFLOAT16_HINT)
        return bfloat16
    try:
        return np.dtype(dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"dtype {dtype!r} is not a numpy dtype: {e}") from None


def numeric_dtype(dtype, what="dtype"):
    """``as_dtype(dtype)`` in native byte order, if a tensor may hold it (see ``is_numeric``);
    else a TypeError naming ``what``."""
    dtype = as_dtype(dtype)
    if not is_numeric(dtype):
        raise TypeError(f"{what} must be a bool, integer or float dtype, got {dtype}")
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def float_dtype(dtype, what="dtype"):
    """``as_dtype(dtype)`` if it is one of the floats above, else a TypeError naming ``what``."""
    dtype = as_dtype(dtype)
    if not is_float(dtype):
        raise TypeError(f"{what} must be a floating-point dtype, got {dtype}")
    return dtype


def finfo(dtype):
    """``numpy.finfo`` for the float ``dtype``, bfloat16 included."""
    if bfloat16 is not None and dtype == bfloat16:
        return ml_dtypes.finfo(bfloat16)
    return np.finfo(dtype)
