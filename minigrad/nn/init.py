"""Weight initialisers: Glorot (Xavier) and He (Kaiming), uniform and normal, and zeros.

Each takes a ``shape`` and returns a new numpy array of ``dtype``, drawn from ``rng`` (a seed
or a ``numpy.random.Generator``). Values are drawn in float64 and then cast, so a seed gives
the same bits for every dtype's rounding of the same draw.

Shapes follow the ``x @ W`` convention: for a shape ``(..., fan_in, fan_out)`` the leading
axes are a receptive field that multiplies both fans (as in Keras); a 1-D shape has
``fan_in = fan_out = shape[0]``. (:class:`minigrad.nn.Linear` draws its weight with shape
``(in_features, out_features)`` and stores the transpose, PyTorch's layout.)

Variances (Glorot & Bengio 2010; He et al. 2015):

=================  ==========================================
glorot_uniform     U(-a, a),  a = gain * sqrt(6 / (fan_in + fan_out))
glorot_normal      N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out))
he_uniform         U(-a, a),  a = sqrt(6 / fan_in)
he_normal          N(0, s^2), s = sqrt(2 / fan_in)
=================  ==========================================

There are no ``xavier_*``/``kaiming_*`` aliases on purpose: PyTorch's versions read fans from
an ``(out, in)`` shape, these from ``(in, out)``; the same name with the other layout would
give a silently wrong variance.
"""

import math

import numpy as np

from .. import _dtypes
from .._checks import int_tuple, positive
from .._random import as_generator

__all__ = [
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros",
    "fans",
]


def _shape(shape):
    shape = int_tuple(shape, "shape")
    for i, n in enumerate(shape):
        if n < 0:
            raise ValueError(f"shape[{i}] must be >= 0, got {n} in shape {shape}")
    return shape


def fans(shape):
    """``(fan_in, fan_out)`` of a weight of ``shape`` (see the module docstring).

    >>> fans((64, 10))
    (64, 10)
    """
    shape = _shape(shape)
    if len(shape) == 0:
        raise ValueError("cannot compute fans of a 0-d shape (); give a shape with >= 1 axis")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _check_gain(gain):
    positive(gain, "gain")


def _finish(values, dtype):
    return values.astype(_dtypes.float_dtype(dtype), copy=False)


def glorot_uniform(shape, *, gain=1.0, rng=None, dtype=np.float32):
    """Glorot (Xavier) uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    Examples
    --------
    >>> w = glorot_uniform((64, 10), rng=0)
    >>> w.shape, w.dtype, bool(abs(w).max() <= (6 / 74) ** 0.5)
    ((64, 10), dtype('float32'), True)
    """
    _check_gain(gain)
    fan_in, fan_out = fans(shape)
    limit = gain * math.sqrt(6.0 / max(fan_in + fan_out, 1))
    return _finish(as_generator(rng).uniform(-limit, limit, size=_shape(shape)), dtype)


def glorot_normal(shape, *, gain=1.0, rng=None, dtype=np.float32):
    """Glorot (Xavier) normal: ``N(0, s^2)`` with ``s = gain * sqrt(2 / (fan_in + fan_out))``.

    Examples
    --------
    >>> glorot_normal((3, 2), rng=0).shape
    (3, 2)
    """
    _check_gain(gain)
    fan_in, fan_out = fans(shape)
    std = gain * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    return _finish(as_generator(rng).normal(0.0, std, size=_shape(shape)), dtype)


def he_uniform(shape, *, rng=None, dtype=np.float32):
    """He (Kaiming) uniform for ReLU layers: ``U(-a, a)`` with ``a = sqrt(6 / fan_in)``.

    Examples
    --------
    >>> w = he_uniform((64, 10), rng=0)
    >>> bool(abs(w).max() <= (6 / 64) ** 0.5)
    True
    """
    fan_in, _ = fans(shape)
    limit = math.sqrt(6.0 / max(fan_in, 1))
    return _finish(as_generator(rng).uniform(-limit, limit, size=_shape(shape)), dtype)


def he_normal(shape, *, rng=None, dtype=np.float32):
    """He (Kaiming) normal for ReLU layers: ``N(0, s^2)`` with ``s = sqrt(2 / fan_in)``.

    Examples
    --------
    >>> he_normal((3, 2), rng=0).dtype
    dtype('float32')
    """
    fan_in, _ = fans(shape)
    std = math.sqrt(2.0 / max(fan_in, 1))
    return _finish(as_generator(rng).normal(0.0, std, size=_shape(shape)), dtype)


def zeros(shape, *, dtype=np.float32):
    """All zeros (the usual bias initialiser).

    Examples
    --------
    >>> zeros(3)
    array([0., 0., 0.], dtype=float32)
    """
    return _finish(np.zeros(_shape(shape)), dtype)

