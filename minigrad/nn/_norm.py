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

The per-channel sums are products with a vector of ones (:func:`blas_sum`): at these sizes
numpy's strided reductions over the batch and spatial axes are 4-10x slower than BLAS, and
less accurate (they add row by row, where BLAS keeps several partial sums). Statistics are
computed in float32 for float16/bfloat16 data (their op-math type) and rounded once.
``Affine`` (a per-channel scale and shift) and ``BlasSum`` use the same sums for the
gradients of batch norm's weight and bias and of a convolution's bias.
"""

import math

import numpy as np

from .._autograd import Op
from .._checks import non_negative, real
from .._dtypes import is_float, opmath
from .._tensor import Tensor, as_tensor

__all__ = ["blas_sum", "BlasSum", "Affine", "standardize", "Normalize", "NormGrad", "Rstd",
           "batch_norm"]


def _count(shape, axes):
    return math.prod(shape[a] for a in axes)


def blas_sum(a, axes):
    """``a.sum(axis=axes, keepdims=True)``, as a product with ones when the layout allows.

    The summed axes and the kept ones must each be one block of memory: ``[M, K]`` or
    ``[K, M]`` after a transposition, or ``[A, K, B]`` for a C-contiguous ``a`` whose kept axes
    lie between summed ones (channel axis 1 of ``[N, C, H, W]``). Otherwise numpy sums.
    """
    axes = tuple(sorted(ax % a.ndim for ax in axes))
    keep = tuple(i for i in range(a.ndim) if i not in axes)
    kept_shape = tuple(1 if i in axes else n for i, n in enumerate(a.shape))
    if a.dtype not in (np.float32, np.float64) or not axes or not keep:
        return a.sum(axis=axes, keepdims=True)
    k = math.prod(a.shape[i] for i in keep)
    m = a.size // k if k else 0
    lead = a.transpose(axes + keep)
    if lead.flags.c_contiguous:
        return (np.ones(m, a.dtype) @ lead.reshape(m, k)).reshape(kept_shape)
    trail = a.transpose(keep + axes)
    if trail.flags.c_contiguous:
        return (trail.reshape(k, m) @ np.ones(m, a.dtype)).reshape(kept_shape)
    if a.flags.c_contiguous and keep == tuple(range(keep[0], keep[-1] + 1)):
        before, after = math.prod(a.shape[:keep[0]]), math.prod(a.shape[keep[-1] + 1:])
        inner = a.reshape(before, k, after) @ np.ones(after, a.dtype)
        return (np.ones(before, a.dtype) @ inner).reshape(kept_shape)
    return a.sum(axis=axes, keepdims=True)


class BlasSum(Op):
    """``x.sum(axis=axes)`` computed by :func:`blas_sum` (the axes are removed)."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        out = blas_sum(x, self.axes)
        return out.reshape(tuple(n for i, n in enumerate(out.shape) if i not in self.axes))

    def vjp(self, g, out):  # every summed element gets its sum's cotangent
        x = self.inputs[0]
        kept = tuple(1 if i in self.axes else n for i, n in enumerate(x.shape))
        return (g.reshape(kept).broadcast_to(x.shape),)


def _channel_axes(ndim):
    return (0,) + tuple(range(2, ndim))


class Affine(Op):
    """``x * w + b`` with ``w``, ``b`` of shape ``[C]`` on channel axis 1 (batch norm's end)."""

    def forward(self, x, w, b=None):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = x * w.reshape(shape)
        if b is None:
            return y
        return np.add(y, b.reshape(shape), out=y if y.dtype == np.result_type(y, b) else None)

    def vjp(self, g, out):  # d(x w + b) = w dx + x dw + db, dw and db summed over the batch
        x, w = self.inputs[:2]
        axes = _channel_axes(x.ndim)
        gx = g * w.reshape((1, -1) + (1,) * (x.ndim - 2)) if self.needs[0] else None
        gw = BlasSum.apply(g * x, axes=axes) if self.needs[1] else None
        gb = BlasSum.apply(g, axes=axes) if len(self.inputs) == 3 and self.needs[2] else None
        return gx, gw, gb


def standardize(x, axes, eps):
    """``(mean, biased var, xhat, r)`` of the ndarray ``x`` over ``axes``, kept dims.

    Computed in ``x``'s op-math dtype (float32 for float16 and bfloat16); ``xhat`` and ``r``
    are rounded to ``x``'s dtype, ``mean`` and ``var`` are not. Two passes: the variance is the
    mean square of the centred values (no cancellation).
    """
    work = x.astype(opmath(x.dtype), copy=False)
    n = _count(x.shape, axes)
    mean = blas_sum(work, axes) / n
    xc = np.subtract(work, mean)
    var = blas_sum(np.square(xc), axes) / n
    r = 1 / np.sqrt(var + np.asarray(eps, var.dtype))
    xhat = np.multiply(xc, r, out=xc)
    return mean, var, xhat.astype(x.dtype, copy=False), r.astype(x.dtype)


def _mean(a, axes):
    return blas_sum(a, axes) / _count(a.shape, axes)


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
        out = np.multiply(xhat, -_mean(np.multiply(h, xhat), self.axes))
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


def _per_channel(value, what, channels):
    if value is None:
        return None
    t = as_tensor(value)
    if t.shape != (channels,):
        raise ValueError(f"{what} must have shape ({channels},), got {t.shape}")
    return t


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
    axes = _channel_axes(x.ndim)
    rm = _buffer(running_mean, "running_mean", channels)
    rv = _buffer(running_var, "running_var", channels)
    w = _per_channel(weight, "weight", channels)
    b = _per_channel(bias, "bias", channels)
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
        if w is None and b is None:
            return y
        return Affine.apply(y, *((w if w is not None else np.ones(channels, x.dtype)),)
                            + (() if b is None else (b,)))
    if rm is None or rv is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when not "
                         "training (training=False)")
    # (x - mean) / sqrt(var + eps) * w + b as one scale and shift per channel
    scale = (1.0 / np.sqrt(rv.astype(np.float64) + eps)).astype(x.dtype)
    shift = (-rm * scale).astype(x.dtype)
    if w is not None:
        scale, shift = w * scale, w * shift
    if b is not None:
        shift = b + shift
    return Affine.apply(x, as_tensor(scale), as_tensor(shift))
