"""Standardisation over some axes (batch norm's core) as three recorded ops, fused in numpy.

Per group of elements that share a channel (the reduced ``axes``, ``n`` elements each)::

    mean = x.mean(axes),  r = 1 / sqrt(var(x) + eps),  xhat = (x - mean) * r

Written with minigrad's elementwise ops this is a dozen nodes and as many passes over the
activations in each direction. Here it is three ops whose forwards are fused numpy and whose
VJPs are made of each other, so that gradients of every order stay exact:

* ``Normalize(x) -> xhat``; VJP ``NormGrad(h, x)``.
* ``NormGrad(h, x) = r * (h - mean(h) - xhat * mean(h * xhat))``: the standardisation's
  Jacobian (symmetric) applied to ``h``. It is linear in ``h``, so its VJP for ``h`` is
  ``NormGrad(k, x)``; its VJP for ``x`` is derived in the comment on ``vjp``.
* ``Rstd(x) -> r`` (kept axes); VJP ``-k * r**2 * xhat / n`` (from ``dr = -r**3 * mean(xc dx)``).

A first-order backward runs one fused ``NormGrad`` forward (no recomputation: ``xhat`` and
``r`` are handed over from the forward). Only second-order gradients create the other nodes.

Statistics are accumulated in float64 whatever the input's dtype, and rounded once.
"""

import numpy as np

from .._autograd import Op
from .._checks import non_negative, real
from .._dtypes import is_float
from .._tensor import Tensor, as_tensor

__all__ = ["standardize", "Normalize", "NormGrad", "Rstd", "batch_norm"]


def _count(shape, axes):
    return int(np.prod([shape[a] for a in axes]))


def standardize(x, axes, eps):
    """``(mean, biased var, xhat, r)`` of the ndarray ``x`` over ``axes``, kept dims.

    ``mean`` and ``var`` are float64; ``xhat`` and ``r`` have ``x``'s dtype.
    """
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    xc = np.subtract(x, mean.astype(x.dtype))
    var = np.mean(np.square(xc, dtype=np.float64), axis=axes, keepdims=True)
    r = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    return mean, var, np.multiply(xc, r, out=xc), r


def _mean(a, axes):
    return a.mean(axis=axes, keepdims=True, dtype=np.float64).astype(a.dtype)


class _Statistic(Op):
    """An op whose value is one of ``standardize``'s results (``which``), cached when given."""

    which = None

    def __init__(self, axes, eps, cache=None):
        self.axes, self.eps, self.cache = axes, eps, cache

    def forward(self, x):
        if self.cache is None:
            self.cache = standardize(x, self.axes, self.eps)[2:]
        return self.cache[self.which]


class Normalize(_Statistic):
    """``xhat = (x - mean(x)) / sqrt(var(x) + eps)`` over ``axes``."""

    which = 0

    def vjp(self, h, out):
        return (NormGrad.apply(h, self.inputs[0], axes=self.axes, eps=self.eps, cache=self.cache),)


class Rstd(_Statistic):
    """``r = 1 / sqrt(var(x) + eps)`` over ``axes`` (kept as size-1 axes)."""

    which = 1

    def vjp(self, k, out):
        # dr = -r^3 mean((x - mean) dx) = -(r^2 / n) sum(xhat dx)
        x = self.inputs[0]
        xhat = Normalize.apply(x, axes=self.axes, eps=self.eps, cache=self.cache)
        return (-(k * out * out / _count(x.shape, self.axes)) * xhat,)


class NormGrad(_Statistic):
    """``r * (h - mean(h) - xhat * mean(h * xhat))``: Normalize's Jacobian at ``x`` times ``h``."""

    def forward(self, h, x):
        if self.cache is None:
            self.cache = standardize(x, self.axes, self.eps)[2:]
        xhat, r = self.cache
        out = np.multiply(xhat, -_mean(h * xhat, self.axes))
        out += h
        out -= _mean(h, self.axes)
        out *= r
        return out

    def vjp(self, k, out):
        # E(h, x) = r P(h) with P(h) = h - mean(h) - xhat m, m = mean(h xhat). E is linear in h
        # with a symmetric matrix J, so the h-part is NormGrad(k). For x, with dx = J d and
        # dr = -(r^2 / n) sum(xhat d):
        #   <k, dE> = dr a - r m <k, J d> - r b mean(h J d),  a = <k, P(h)> = <k, E> / r,
        #   b = <k, xhat>, so  gx = -(r^2 a / n) xhat + J(-r (m k + (b / n) h)).
        h, x = self.inputs
        kw = dict(axes=self.axes, eps=self.eps, cache=self.cache)
        gh = gx = None
        if self.needs[0]:
            gh = NormGrad.apply(k, x, **kw)
        if self.needs[1]:
            n = _count(x.shape, self.axes)
            r, xhat = Rstd.apply(x, **kw), Normalize.apply(x, **kw)
            a = (k * out).sum(axis=self.axes, keepdims=True) / r
            m = (h * xhat).mean(axis=self.axes, keepdims=True)
            b = (k * xhat).sum(axis=self.axes, keepdims=True)
            gx = NormGrad.apply(-r * (m * k + (b / n) * h), x, **kw) - (r * r * a / n) * xhat
        return gh, gx


# ---------------------------------------------------------------------------------------------
# batch_norm: the checked entry point (PyTorch's torch.nn.functional.batch_norm)
# ---------------------------------------------------------------------------------------------
def _buffer(value, what, channels):
    """A running statistic as its ndarray (updated in place), checked; None stays None."""
    if value is None:
        return None
    array = value.data if isinstance(value, Tensor) else value
    if not isinstance(array, np.ndarray) or not is_float(array.dtype):
        raise TypeError(f"{what} must be a float Tensor or ndarray (updated in place), "
                        f"got {type(value).__name__}")
    if array.shape != (channels,):
        raise ValueError(f"{what} must have shape ({channels},), got {array.shape}")
    return array


def _per_channel(value, what, channels, shape):
    if value is None:
        return None
    t = as_tensor(value)
    if t.shape != (channels,):
        raise ValueError(f"{what} must have shape ({channels},), got {t.shape}")
    return t.reshape(shape)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over every axis but the channel axis 1, as PyTorch's.

    In training, the batch's mean and biased variance normalise the input, and the running
    statistics (when given) are updated in place: ``running = (1 - momentum) * running +
    momentum * batch``, the variance unbiased (``* n / (n - 1)``). In evaluation the running
    statistics normalise the input. ``weight`` and ``bias`` (per channel) scale and shift.
    """
    x = as_tensor(input)
    if not is_float(x.dtype):
        raise TypeError(f"batch_norm: input must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"batch_norm: input must have shape [N, C, ...], got shape {x.shape}")
    real(momentum, "momentum")
    non_negative(eps, "eps")
    channels = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, channels) + (1,) * (x.ndim - 2)
    rm = _buffer(running_mean, "running_mean", channels)
    rv = _buffer(running_var, "running_var", channels)
    w = _per_channel(weight, "weight", channels, shape)
    b = _per_channel(bias, "bias", channels, shape)
    if training:
        n = x.size // channels if channels else 0
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input shape {x.shape}")
        mean, var, xhat, r = standardize(x.data, axes, eps)
        y = Normalize.apply(x, axes=axes, eps=eps, cache=(xhat, r))
        for buf, stat in ((rm, mean), (rv, var * (n / (n - 1)))):
            if buf is not None:
                buf *= 1 - momentum
                buf += (momentum * stat.reshape(channels)).astype(buf.dtype)
    else:
        if rm is None or rv is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when not "
                             "training (training=False)")
        # (x - mean) / sqrt(var + eps) * w + b folded into x * scale + shift
        scale = (1.0 / np.sqrt(rv.astype(np.float64) + eps)).reshape(shape)
        shift = -rm.reshape(shape) * scale
        scale, shift = scale.astype(x.dtype), shift.astype(x.dtype)
        if w is not None:
            scale, shift = w * scale, w * shift
        y = x * scale
        return y + shift if b is None else y + (b + shift)
    if w is not None:
        y = y * w
    return y if b is None else y + b
