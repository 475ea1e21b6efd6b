"""Standardisation over some axes (batch norm's core) as recorded ops, fused in numpy.

Per group of elements that share a channel (the reduced ``axes``, ``n`` elements each)::

    mean = x.mean(axes),  r = 1 / sqrt(var(x) + eps),  xhat = (x - mean) * r

Written with minigrad's elementwise ops this is a dozen nodes and as many passes over the
activations in each direction. Here it is a few ops whose forwards are fused numpy and whose
VJPs are made of each other, so that gradients of every order stay exact:

* ``Normalize(x) -> xhat``; VJP ``NormGrad(h, x)``.
* ``NormGrad(h, x[, s]) = s * r * (h - mean(h) - xhat * mean(h * xhat))``: the
  standardisation's Jacobian (symmetric) applied to ``h``, optionally scaled per group by
  ``s``. It is linear in ``h``, so its VJP for ``h`` is ``NormGrad(k, x, s)``; its VJPs for
  ``x`` and ``s`` are derived in the comment on ``vjp``.
* ``Rstd(x) -> r`` (kept axes); VJP ``-k * r**2 * xhat / n`` (from ``dr = -r**3 * mean(xc dx)``).
* ``BatchNormTrain(x, w, b) = xhat * w + b`` (channel axis 1): its VJP is ``NormGrad(g, x, w)``
  for ``x``, ``ChannelDot(g, xhat)`` for ``w`` and ``BlasSum(g)`` for ``b``, and all three
  share the two per-channel sums of ``g`` and ``g * xhat``, computed once.

A first-order backward runs one fused ``NormGrad`` forward (no recomputation: ``xhat`` and
``r`` are handed over from the forward, the sums from ``BatchNormTrain``). Only second-order
gradients create the other nodes.

The per-channel sums are products with a vector of ones (:func:`blas_sum`): at these sizes
numpy's strided reductions over the batch and spatial axes are 4-10x slower than BLAS, and
less accurate (they add row by row, where BLAS keeps several partial sums). Statistics are
computed in float32 for float16/bfloat16 data (their op-math type) and rounded once.
``Affine`` (a per-channel scale and shift: batch norm in eval mode) and ``BlasSum`` use the
same sums for their weight and bias gradients, and a convolution's bias gradient too.
"""

import math

import numpy as np

from .._autograd import Op
from .._checks import non_negative, real
from .._dtypes import is_float, opmath
from .._tensor import Tensor, _float_tensor, as_tensor

__all__ = ["blas_sum", "BlasSum", "ChannelDot", "Affine", "standardize", "Normalize", "NormGrad",
           "Rstd", "BatchNormTrain", "batch_norm"]


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


def _drop(shape, axes):
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _kept(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class BlasSum(Op):
    """``x.sum(axis=axes)`` computed by :func:`blas_sum` (the axes are removed); ``value``
    hands over a sum already computed."""

    def __init__(self, axes, value=None):
        self.axes, self.value = axes, value

    def forward(self, x):
        out = blas_sum(x, self.axes) if self.value is None else self.value
        return out.reshape(_drop(x.shape, self.axes))

    def vjp(self, g, out):  # every summed element gets its sum's cotangent
        x = self.inputs[0]
        return (g.reshape(_kept(x.shape, self.axes)).broadcast_to(x.shape),)


class ChannelDot(Op):
    """``(a * b).sum(axis=axes)``, the product never formed when ``value`` hands it over."""

    def __init__(self, axes, value=None):
        self.axes, self.value = axes, value

    def forward(self, a, b):
        out = blas_sum(a * b, self.axes) if self.value is None else self.value
        return out.reshape(_drop(a.shape, self.axes))

    def vjp(self, g, out):  # d sum(a b) = sum(b da + a db)
        a, b = self.inputs
        g = g.reshape(_kept(a.shape, self.axes))
        return (g * b if self.needs[0] else None), (g * a if self.needs[1] else None)


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
        return (gx, gw, gb)[:len(self.inputs)]


def standardize(x, axes, eps):
    """``(mean, biased var, xhat, r)`` of the ndarray ``x`` over ``axes``, kept dims.

    Computed and returned in ``x``'s op-math dtype (float32 for float16 and bfloat16): the ops
    that use ``xhat`` and ``r`` run in that dtype too (``Op.apply``), so their results are
    rounded once. Two passes: the variance is the mean square of the centred values (no
    cancellation).
    """
    work = x.astype(opmath(x.dtype), copy=False)
    n = _count(x.shape, axes)
    mean = blas_sum(work, axes) / n
    xc = np.subtract(work, mean)
    var = blas_sum(np.square(xc), axes) / n
    r = 1 / np.sqrt(var + np.asarray(eps, var.dtype))
    xhat = np.multiply(xc, r, out=xc)
    return mean, var, xhat, r


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
    """``s * r * (h - mean(h) - xhat * mean(h * xhat))``: Normalize's Jacobian at ``x`` times
    ``h``, scaled by ``s`` (optional, constant over the reduced axes: batch norm's weight).

    ``sums`` may hand over ``(mean(h), mean(h * xhat))``, already computed.
    """

    def __init__(self, axes, eps, cache=None, sums=None):
        super().__init__(axes, eps, cache)
        self.sums = sums

    def forward(self, h, x, s=None):
        if self.cache is None:
            self.cache = standardize(x, self.axes, self.eps)[2:]
        xhat, r = self.cache
        mean_h, mean_hx = self.sums or (_mean(h, self.axes), _mean(np.multiply(h, xhat), self.axes))
        self.sums = None
        scale = r if s is None else r * s
        out = np.multiply(xhat, -mean_hx * scale)
        out += np.multiply(h, scale)
        out -= mean_h * scale
        return out

    def vjp(self, k, out):
        # E(h, x) = s r P(h) with P(h) = h - mean(h) - xhat m, m = mean(h xhat). E is linear in
        # h with a symmetric matrix (s J), so the h-part is NormGrad(k) scaled by s. For s:
        # sum(k r P(h)) over the reduced axes. For x, with k' = s k, dx = J d and
        # dr = -(r^2 / n) sum(xhat d):
        #   <k', dE> = dr a - r m <k', J d> - r b mean(h J d),  a = <k', P(h)> = <k, E> / r,
        #   b = <k', xhat>, so  gx = -(r^2 a / n) xhat + J(-r (m k' + (b / n) h)).
        h, x = self.inputs[:2]
        s = self.inputs[2] if len(self.inputs) == 3 else None
        kw = dict(axes=self.axes, eps=self.eps, cache=self.cache)
        scaled = () if s is None else (s,)
        gh = gx = gs = None
        if self.needs[0]:
            gh = NormGrad.apply(k, x, *scaled, **kw)
        if len(self.inputs) == 3 and self.needs[2]:
            gs = (k * NormGrad.apply(h, x, **kw)).sum(axis=self.axes, keepdims=True)
        if self.needs[1]:
            n = _count(x.shape, self.axes)
            r, xhat = Rstd.apply(x, **kw), Normalize.apply(x, **kw)
            a = (k * out).sum(axis=self.axes, keepdims=True) / r
            k = k if s is None else k * s
            m = (h * xhat).mean(axis=self.axes, keepdims=True)
            b = (k * xhat).sum(axis=self.axes, keepdims=True)
            gx = NormGrad.apply(-r * (m * k + (b / n) * h), x, **kw) - (r * r * a / n) * xhat
        return (gh, gx) if s is None else (gh, gx, gs)


class BatchNormTrain(_Statistic):
    """``xhat * w + b`` over channel axis 1 with the batch's statistics (``xhat`` cached).

    Its first-order backward is one fused ``NormGrad`` (scaled by ``w``) and the weight and
    bias gradients, all from two per-channel sums of the cotangent computed once.
    """

    def forward(self, x, w, b):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = np.multiply(self.cache[0], w.reshape(shape))
        y += b.reshape(shape)
        return y

    def vjp(self, g, out):
        x, w = self.inputs[:2]
        shape = (1, -1) + (1,) * (x.ndim - 2)
        xhat = self.cache[0]
        n = _count(x.shape, self.axes)
        sum_g, sum_gx = blas_sum(g.data, self.axes), blas_sum(g.data * xhat, self.axes)
        kw = dict(axes=self.axes, eps=self.eps, cache=self.cache)
        gx = gw = gb = None
        if self.needs[0]:
            gx = NormGrad.apply(g, x, w.reshape(shape), sums=(sum_g / n, sum_gx / n), **kw)
        if self.needs[1]:
            gw = ChannelDot.apply(g, Normalize.apply(x, **kw), axes=self.axes, value=sum_gx)
        if self.needs[2]:
            gb = BlasSum.apply(g, axes=self.axes, value=sum_g)
        return (gx, gw, gb)[:len(self.inputs)]


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
    x = _float_tensor(input, "batch_norm: input")
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
        for buf, stat in ((rm, mean), (rv, var * (n / (n - 1)))):
            if buf is not None:
                buf *= 1 - momentum
                buf += (momentum * stat.reshape(channels)).astype(buf.dtype)
        if w is None and b is None:
            return Normalize.apply(x, axes=axes, eps=eps, cache=(xhat, r))
        w = w if w is not None else as_tensor(np.ones(channels, x.dtype))
        b = b if b is not None else as_tensor(np.zeros(channels, x.dtype))
        return BatchNormTrain.apply(x, w, b, axes=axes, eps=eps, cache=(xhat, r))
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
