"""Argument checks shared by the layers, optimizers and data helpers (one message format)."""

import math
import numbers

__all__ = ["positive_int", "non_negative_int", "real", "non_negative"]


def _int_at_least(value, what, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return int(value)


def positive_int(value, what):
    """``value`` as an int >= 1, else TypeError/ValueError naming ``what`` and the value."""
    return _int_at_least(value, what, 1)


def non_negative_int(value, what):
    """``value`` as an int >= 0, else TypeError/ValueError naming ``what`` and the value."""
    return _int_at_least(value, what, 0)


def real(value, what):
    """``value`` if it is a finite real number, else TypeError/ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def non_negative(value, what):
    """``value`` if it is a finite real number >= 0, else a TypeError/ValueError naming ``what``."""
    if real(value, what) < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value
