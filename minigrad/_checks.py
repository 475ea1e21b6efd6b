"""Argument checks shared by the core, layers, optimizers and data helpers (one message format).

Every check names the argument (``what``), shows the bad value and says what was expected:
``TypeError`` for a value of the wrong type, ``ValueError`` for a bad value of the right type.
"""

import math
import numbers
import operator

import numpy as np

try:  # numpy >= 2
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # numpy 1.25, 1.26
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["positive_int", "non_negative_int", "real", "non_negative", "positive", "probability",
           "flag", "optional_flag", "integer", "int_tuple", "axes"]


def _got(value):
    """The bad value as messages show it: its type and repr (cut short)."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _int_at_least(value, what, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {_got(value)}")
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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {_got(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def non_negative(value, what):
    """``value`` if it is a finite real number >= 0, else a TypeError/ValueError naming ``what``."""
    if real(value, what) < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def positive(value, what):
    """``value`` if it is a finite real number > 0, else a TypeError/ValueError naming ``what``."""
    if real(value, what) <= 0:
        raise ValueError(f"{what} must be > 0, got {value}")
    return value


def probability(value, what):
    """``value`` as a float in [0, 1] (a dropout probability), else TypeError/ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a float in [0, 1], got {_got(value)}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {value}")
    return float(value)


def flag(value, what):
    """``value`` as a bool if it is ``True`` or ``False`` (numpy's bools too), else TypeError.

    Truthiness is not enough: ``requires_grad='no'`` would switch gradients *on*.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{what} must be True or False, got {_got(value)}")


def optional_flag(value, what):
    """None, or ``value`` checked by :func:`flag` (for flags whose default is worked out)."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise TypeError(f"{what} must be None, True or False, got {_got(value)}")


def integer(value, what):
    """``value`` as a Python int: an int, a numpy integer, or anything with ``__index__``
    (a one-element integer tensor). Bools and floats (even 2.0) are refused, as numpy does."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be an int, got {_got(value)}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {_got(value)}") from None


def int_tuple(value, what):
    """An int or a sequence of ints (a shape, a set of axes) as a tuple of Python ints."""
    if type(value) is tuple:  # the common case (shapes the ops pass around), checked fast
        for v in value:
            if type(v) is not int:
                break
        else:
            return value
    elif type(value) is int:
        return (value,)
    if isinstance(value, (tuple, list, range)) or (
            isinstance(value, np.ndarray) and value.ndim == 1):
        return tuple(integer(v, f"{what}[{i}]") for i, v in enumerate(value))
    if isinstance(value, (numbers.Integral, np.integer)) or hasattr(value, "__index__"):
        return (integer(value, what),)
    raise TypeError(f"{what} must be an int or a tuple of ints, got {_got(value)}")


def axes(axis, ndim, what="axis"):
    """``axis`` (None for all, an int or a sequence of ints) as a tuple of distinct axes in
    ``[0, ndim)``; an axis out of range is numpy's ``AxisError`` (a ValueError)."""
    if axis is None:
        return tuple(range(ndim))
    return normalize_axis_tuple(int_tuple(axis, what), ndim, None if what == "axis" else what)
