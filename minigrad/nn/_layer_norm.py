"""Layer normalisation as one primitive, with its VJP in minigrad ops.

``y = xhat * weight + bias`` with ``xhat = (x - mean) * rstd`` and ``rstd = 1 / sqrt(var +
eps)``, the statistics taken over the last ``n_axes`` axes (``var`` is the biased variance, as
PyTorch's ``layer_norm``). The forward is one pass of numpy (two-pass variance: the mean is
subtracted before squaring, so large offsets do not cancel). The VJP needs ``xhat`` and
``rstd`` as functions of ``x`` so that second derivatives are right; the two small ops
``Normalized`` and ``InvStd`` hand back the values the forward cached, recorded as functions of
``x`` with their own VJPs (the pattern of the fused cross-entropy's backprop output). Without
``create_graph`` nothing is recorded and they cost one call each.
"""

import math

import numpy as np

from .._autograd import Op
from .._dtypes import opmath

__all__ = ["LayerNormOp", "layer_norm", "layer_norm_stats"]


def _axes(n_axes):
    return tuple(range(-n_axes, 0))


def layer_norm_stats(x, n_axes, eps):
    """``(xhat, rstd)`` of ndarray ``x`` over its last ``n_axes`` axes, in the op-math dtype."""
    x = x.astype(opmath(x.dtype), copy=False)
    axes = _axes(n_axes)
    xc = x - x.mean(axis=axes, keepdims=True)
    var = np.mean(np.square(xc), axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(var + np.asarray(eps, dtype=x.dtype))
    xc *= rstd
    return xc, rstd


def _normalized_vjp(g, xhat, rstd, n_axes):
    # d xhat = rstd (dx - mean(dx) - xhat mean(xhat dx)); the Jacobian is symmetric, so the
    # cotangent takes the same form.
    axes = _axes(n_axes)
    centred = g - g.mean(axis=axes, keepdims=True)
    return rstd * (centred - xhat * (g * xhat).mean(axis=axes, keepdims=True))


class Normalized(Op):
    """``xhat(x)``, its value handed in from the forward that computed it."""

    def __init__(self, value, rstd, n_axes):
        self.value, self.rstd, self.n_axes = value, rstd, n_axes

    def forward(self, x):
        return self.value.astype(x.dtype, copy=False)

    def vjp(self, g, out):
        rstd = InvStd.apply(self.inputs[0], value=self.rstd, xhat=self.value, n_axes=self.n_axes)
        return (_normalized_vjp(g, out, rstd, self.n_axes),)


class InvStd(Op):
    """``rstd(x) = 1 / sqrt(var(x) + eps)``, kept shape, its value handed in."""

    def __init__(self, value, xhat, n_axes):
        self.value, self.xhat, self.n_axes = value, xhat, n_axes

    def forward(self, x):
        return self.value.astype(x.dtype, copy=False)

    def vjp(self, g, out):
        # d rstd = -rstd^3 mean((x - mean) dx) = -rstd^2 mean(xhat dx)
        x = self.inputs[0]
        xhat = Normalized.apply(x, value=self.xhat, rstd=self.value, n_axes=self.n_axes)
        n = math.prod(x.shape[-self.n_axes:])
        return (g * out * out * xhat * (-1.0 / n),)


class LayerNormOp(Op):
    """``(x - mean) * rstd * weight + bias``; ``weight`` and ``bias`` are optional inputs."""

    def __init__(self, n_axes, eps, has_weight, has_bias):
        self.n_axes, self.eps = n_axes, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *affine):
        self.xhat, self.rstd = layer_norm_stats(x, self.n_axes, self.eps)
        y = self.xhat
        if self.has_weight:
            y = y * affine[0]
        if self.has_bias:
            y = y + affine[-1]
        return y.astype(np.result_type(x, *affine), copy=False)

    def vjp(self, g, out):
        x = self.inputs[0]
        xhat = Normalized.apply(x, value=self.xhat, rstd=self.rstd, n_axes=self.n_axes)
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
            rstd = InvStd.apply(x, value=self.rstd, xhat=self.xhat, n_axes=self.n_axes)
            grads[0] = _normalized_vjp(g_xhat, xhat, rstd, self.n_axes)
        return tuple(grads)


def layer_norm(x, n_axes, weight, bias, eps):
    """The op on tensors (arguments already checked by :func:`minigrad.nn.functional.layer_norm`)."""
    inputs = [x] + [t for t in (weight, bias) if t is not None]
    return LayerNormOp.apply(*inputs, n_axes=n_axes, eps=eps, has_weight=weight is not None,
                             has_bias=bias is not None)
