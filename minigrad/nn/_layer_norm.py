"""Layer normalisation as one primitive, with its VJP in minigrad ops.

``y = xhat * weight + bias`` with ``xhat = (x - mean) * rstd`` and ``rstd = 1 / sqrt(var +
eps)``, the statistics taken over the last ``n_axes`` axes (``var`` is the biased variance, as
PyTorch's ``layer_norm``). The forward is a few in-place numpy passes (two-pass variance: the
mean is subtracted before squaring, so large offsets do not cancel) and keeps only ``mean`` and
``rstd``; ``xhat`` is recomputed in backward, which is cheaper than keeping an activation-sized
array alive. The VJP needs ``xhat`` and ``rstd`` as functions of ``x`` so that second
derivatives are right: the two small ops ``Normalized`` and ``InvStd`` compute them from the
kept statistics, recorded as functions of ``x`` with their own VJPs (the pattern of the fused
cross-entropy's backprop output). Without ``create_graph`` nothing is recorded.
"""

import math

import numpy as np

from .._autograd import Op
from .._dtypes import opmath
from ._rows import row_sum, row_sum_array

__all__ = ["LayerNormOp", "layer_norm", "layer_norm_stats"]


def layer_norm_stats(x, n_axes, eps):
    """``(x - mean, mean, rstd)`` of ndarray ``x`` over its last ``n_axes`` axes, in the
    op-math dtype."""
    x = x.astype(opmath(x.dtype), copy=False)
    inv_n = 1.0 / math.prod(x.shape[x.ndim - n_axes:])
    mean = row_sum_array(x, n_axes)
    mean *= inv_n
    xc = x - mean
    var = row_sum_array(np.square(xc), n_axes)
    var *= inv_n
    var += np.asarray(eps, dtype=x.dtype)
    rstd = np.sqrt(var, out=var)
    np.divide(1.0, rstd, out=rstd)
    return xc, mean, rstd


def _xhat(x, mean, rstd):
    xhat = x.astype(mean.dtype, copy=False) - mean
    xhat *= rstd
    return xhat.astype(x.dtype, copy=False)


def _normalized_vjp(g, xhat, rstd, n_axes):
    # d xhat = rstd (dx - mean(dx) - xhat mean(xhat dx)); the Jacobian is symmetric, so the
    # cotangent takes the same form: (rstd / n) (n g - sum(g) - xhat sum(g xhat)).
    n = math.prod(g.shape[g.ndim - n_axes:])
    inner = g * n - row_sum(g, n_axes) - xhat * row_sum(g * xhat, n_axes)
    return rstd * (1.0 / n) * inner


class Normalized(Op):
    """``xhat(x) = (x - mean) * rstd`` from the statistics the forward kept."""

    def __init__(self, mean, rstd, n_axes):
        self.mean, self.rstd, self.n_axes = mean, rstd, n_axes

    def forward(self, x):
        return _xhat(x, self.mean, self.rstd)

    def vjp(self, g, out):
        rstd = InvStd.apply(self.inputs[0], mean=self.mean, rstd=self.rstd, n_axes=self.n_axes)
        return (_normalized_vjp(g, out, rstd, self.n_axes),)


class InvStd(Op):
    """``rstd(x) = 1 / sqrt(var(x) + eps)``, kept shape, its value handed in."""

    def __init__(self, mean, rstd, n_axes):
        self.mean, self.rstd, self.n_axes = mean, rstd, n_axes

    def forward(self, x):
        return self.rstd.astype(x.dtype, copy=False)

    def vjp(self, g, out):
        # d rstd = -rstd^3 mean((x - mean) dx) = -rstd^2 mean(xhat dx)
        x = self.inputs[0]
        xhat = Normalized.apply(x, mean=self.mean, rstd=self.rstd, n_axes=self.n_axes)
        n = math.prod(x.shape[-self.n_axes:])
        return (g * out * out * xhat * (-1.0 / n),)


class LayerNormOp(Op):
    """``(x - mean) * rstd * weight + bias``; ``weight`` and ``bias`` are optional inputs."""

    def __init__(self, n_axes, eps, has_weight, has_bias):
        self.n_axes, self.eps = n_axes, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *affine):
        y, self.mean, self.rstd = layer_norm_stats(x, self.n_axes, self.eps)
        y *= self.rstd
        dtype = np.result_type(x, *affine)
        if self.has_weight:
            y = np.multiply(y, affine[0], out=y) if y.dtype == dtype else y * affine[0]
        if self.has_bias:
            y = np.add(y, affine[-1], out=y) if y.dtype == dtype else y + affine[-1]
        return y.astype(dtype, copy=False)

    def vjp(self, g, out):
        x = self.inputs[0]
        stats = dict(mean=self.mean, rstd=self.rstd, n_axes=self.n_axes)
        xhat = Normalized.apply(x, **stats)
        grads = [None]
        if self.has_weight:
            weight = self.inputs[1]
            grads.append(g * xhat if self.needs[1] else None)  # summed to weight's shape
            g_xhat = g * weight
        else:
            g_xhat = g
        if self.has_bias:
            grads.append(g)
        if self.needs[0]:
            grads[0] = _normalized_vjp(g_xhat, xhat, InvStd.apply(x, **stats), self.n_axes)
        return tuple(grads)


def layer_norm(x, n_axes, weight, bias, eps):
    """The op on tensors (arguments already checked by :func:`minigrad.nn.functional.layer_norm`)."""
    inputs = [x] + [t for t in (weight, bias) if t is not None]
    return LayerNormOp.apply(*inputs, n_axes=n_axes, eps=eps, has_weight=weight is not None,
                             has_bias=bias is not None)
