"""Every op, once: primitives as forward/VJP pairs, composites built from them.

A primitive's ``vjp`` is written with minigrad ops (not raw numpy), so that with
``create_graph=True`` the backward pass is itself recorded. Constants that do not depend on the
inputs' values in a differentiable way (masks, max shifts, indices) are plain numpy arrays.
Each VJP states its derivative once, in a comment.

Composites (``subtract``, ``clip``, ``stack``, ...) are built from primitives, so the
primitives' gradient checks cover them. A few functions that could be composites are
primitives because the composite would be less exact: ``mean`` (one rounding, not a sum then a
division), and the softmax family (``(x - m) - log(sum(exp(x - m)))``, never
``x - logsumexp(x)``, which cancels for large ``x``).

Precision: float16/bfloat16 ops compute in float32 and round once (``Op.apply``); sums are
pairwise along every axis (``_pairwise_sum``); derivatives of saturating functions are formed
from the input, not the output.
"""

import math

import numpy as np

from . import _checks, _dtypes, _elementwise
from ._autograd import Op
from ._tensor import Tensor, _is_python_scalar, _operand

try:  # numpy >= 2
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # numpy 1.25, 1.26
    from numpy.core.numeric import normalize_axis_tuple


def _pair(a, b):
    """Two operands as tensors, Python scalars taking the other operand's dtype (numpy's rule)."""
    if type(a) is Tensor and type(b) is Tensor:  # the common case, first
        return a, b
    if isinstance(a, Tensor) or (not isinstance(b, Tensor) and _is_python_scalar(b)):
        a = _operand(a)
        return a, _operand(b, like=a)
    b = _operand(b)
    return _operand(a, like=b), b


def _const(value, like):
    """A 0-d constant of ``like``'s dtype."""
    return Tensor._wrap(np.asarray(value, dtype=like.dtype))


def _kept_shape(shape, axis):
    """``shape`` with the reduced ``axis`` kept as size 1 (numpy's keepdims shape)."""
    axes = _axes(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


# --------------------------------------------------------------------------------------------
# Elementwise arithmetic
# --------------------------------------------------------------------------------------------
class Add(Op):
    def forward(self, x, y):
        return x + y

    def vjp(self, g, out):  # d(x+y) = dx + dy
        return g, g


class Neg(Op):
    opmath = False  # exact in any dtype

    def forward(self, x):
        return -x

    def vjp(self, g, out):
        return (-g,)


class Mul(Op):
    def forward(self, x, y):
        return x * y

    def vjp(self, g, out):  # d(xy) = y dx + x dy
        x, y = self.inputs
        return (g * y if self.needs[0] else None), (g * x if self.needs[1] else None)


class Div(Op):
    def forward(self, x, y):
        return x / y

    def vjp(self, g, out):  # d(x/y) = dx / y - (x/y) dy / y
        x, y = self.inputs
        gx = g / y
        return gx, (-gx * out if self.needs[1] else None)


def _minus_one(y):
    """``y - 1`` as a tensor, and the rounding error of that subtraction (an array) or None.

    Below float64, y - 1 is formed in float64, where it is exact, so that the gradient is
    formed in float64 and rounded once; for float64 the error is recovered exactly by Knuth's
    TwoSum."""
    if not _dtypes.is_float(y.dtype):
        return y - 1, None
    if y.dtype != np.float64:
        return astype(y, np.float64) - 1, None
    exponent = y - 1
    s = exponent.data
    t = s - y.data  # TwoSum(y, -1): s + residual == y - 1 exactly
    residual = (y.data - (s - t)) + (-1 - t)
    return exponent, (residual if residual.any() else None)


class Pow(Op):
    def forward(self, x, y):
        return x ** y

    def vjp(self, g, out):
        # d(x^y) = y x^(y-1) dx + x^y log(x) dy. Where y - 1 is rounded (1/3 - 1), x^(rounded) is
        # off by |log x| times that rounding (59 ulp at x ** (1/3) in float32): y - 1 is formed
        # exactly (_minus_one), with x^(s + r) = x^s (1 + r log x) for a float64 residual r.
        # Where y == 0 the first term is 0 (the exponent is swapped for 1 to avoid 0 * inf at
        # x == 0); at x == 0, y >= 0 the second is taken as 0 (not 0 * -inf).
        x, y = self.inputs
        gx = gy = None
        if self.needs[0]:
            y_is_0 = y.data == 0
            exponent, residual = _minus_one(y)
            power = x ** (where(y_is_0, 1, exponent) if y_is_0.any() else exponent)
            if residual is not None:
                power = power * (1 + residual * log(where(x.data > 0, x, 1)))
            gx = g * y * power
        if self.needs[1]:
            at_zero = (x.data == 0) & (y.data >= 0)
            if at_zero.any():
                gy = where(at_zero, 0, g * out * log(where(at_zero, 1, x)))
            else:
                gy = g * out * log(x)
        return gx, gy


def add(x, y):
    """Elementwise ``x + y`` with broadcasting."""
    return Add.apply(*_pair(x, y))


def subtract(x, y):
    """Elementwise ``x - y`` (``x + (-y)``, which IEEE arithmetic makes identical)."""
    x, y = _pair(x, y)
    if not _dtypes.is_float(y.dtype):  # negate integers in the result's dtype: -uint8(3) wraps
        y = astype(y, np.result_type(x.dtype, y.dtype))
    return Add.apply(x, Neg.apply(y))


def multiply(x, y):
    """Elementwise ``x * y`` with broadcasting."""
    return Mul.apply(*_pair(x, y))


def divide(x, y):
    """Elementwise true division ``x / y`` with broadcasting."""
    return Div.apply(*_pair(x, y))


def power(x, y):
    """Elementwise ``x ** y`` with broadcasting."""
    return Pow.apply(*_pair(x, y))


def negative(x):
    """Elementwise ``-x``."""
    return Neg.apply(_operand(x))


# --------------------------------------------------------------------------------------------
# Elementwise functions
# --------------------------------------------------------------------------------------------
class Exp(Op):
    def forward(self, x):
        return np.exp(x)

    def vjp(self, g, out):  # d e^x = e^x dx
        return (g * out,)


class Log(Op):
    def forward(self, x):
        return np.log(x)

    def vjp(self, g, out):  # d log x = dx / x
        return (g / self.inputs[0],)


class Sqrt(Op):
    def forward(self, x):
        return np.sqrt(x)

    def vjp(self, g, out):  # d sqrt(x) = dx / (2 sqrt(x))
        return (g / (2 * out),)


class Abs(Op):
    opmath = False  # exact in any dtype

    def forward(self, x):
        return np.abs(x)

    def vjp(self, g, out):  # d|x| = sign(x) dx, taking 0 at x == 0
        return (g * np.sign(self.inputs[0].data),)


class Tanh(Op):
    def forward(self, x):
        return np.tanh(x)

    def vjp(self, g, out):  # d tanh x = sech^2 x dx
        return (TanhBackward.apply(g, self.inputs[0]),)


def _float32_kernel(kernel, g, x):
    """``kernel(g, x, out)`` of kernels/_elementwise.pyx on float32 ``g`` and ``x`` of one
    shape: the result, a fresh array."""
    out = np.empty(x.shape, np.float32)
    kernel(np.ascontiguousarray(g), np.ascontiguousarray(x), out)
    return out


def _wide(dtype):
    """The dtype a derivative below is formed in: float64 for float32 data (the formulas take
    several rounded steps, about 4 ulp in their own precision; formed in float64 and rounded
    once they are within 0.5 ulp), else the data's own."""
    return np.float64 if dtype == np.float32 else dtype


class TanhBackward(Op):
    """``g * sech^2 x``, tanh's VJP in one op, with the derivative from the input: ``1 -
    tanh(x)^2`` cancels where tanh(x) is near +-1 (14x too large at x = 9.98 in float32, 0
    from x = 9.01 on)."""

    def forward(self, g, x):
        if x.dtype == g.dtype == np.float32 and x.shape == g.shape:
            # the same arithmetic in one C pass (kernels/_elementwise.h): numpy's six passes
            # below cost ~6.5 us at [64, 64], this ~2.5
            return _float32_kernel(_elementwise.tanh_grad_f32, g, x)
        # Inputs cast up front: numpy's mixed-dtype loops (float32 in, float64 out) cast in
        # small buffers and were ~10% slower here at [64, 64] (measured).
        wide = _wide(x.dtype)
        c = x.astype(wide)
        np.cosh(c, out=c)  # overflows only where sech^2 underflows anyway
        np.multiply(c, c, out=c)
        np.divide(g.astype(wide, copy=False), c, out=c)
        return c.astype(np.result_type(g, x), copy=False)

    def vjp(self, h, out):
        # d(g sech^2 x) = sech^2 x dg - 2 g sech^2 x tanh x dx
        g, x = self.inputs
        gg = TanhBackward.apply(h, x) if self.needs[0] else None
        gx = TanhBackward.apply(h * g, x) * (-2 * tanh(x)) if self.needs[1] else None
        return gg, gx


class Sigmoid(Op):
    def forward(self, x):
        # exp(-|x|) never overflows; pick the form that does not cancel for each sign.
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def vjp(self, g, out):  # d s(x) = s(x) s(-x) dx
        return (SigmoidBackward.apply(g, self.inputs[0]),)


class SigmoidBackward(Op):
    """``g * s(x) s(-x)``, the sigmoid's VJP in one op, with ``s(x) s(-x) = e / (1 + e)^2``,
    ``e = exp(-|x|)``, from the input: ``out * (1 - out)`` is 0 in float32 from x = 17 on,
    where it is 4e-8."""

    def forward(self, g, x):
        if x.dtype == g.dtype == np.float32 and x.shape == g.shape:
            return _float32_kernel(_elementwise.sigmoid_grad_f32, g, x)  # as TanhBackward
        e = np.empty(x.shape, _wide(x.dtype))
        np.abs(x, out=e, dtype=e.dtype)
        np.exp(np.negative(e, out=e), out=e)
        d = np.add(1, e, out=np.empty_like(e))
        np.multiply(d, d, out=d)
        np.divide(e, d, out=e)
        return np.multiply(g, e, out=e).astype(np.result_type(g, x), copy=False)

    def vjp(self, h, out):
        # d(g s(x) s(-x)) = s(x) s(-x) dg + g s(x) s(-x) (s(-x) - s(x)) dx, s(-x) - s(x) = -tanh(x/2)
        g, x = self.inputs
        gg = SigmoidBackward.apply(h, x) if self.needs[0] else None
        gx = SigmoidBackward.apply(h * g, x) * -tanh(x * 0.5) if self.needs[1] else None
        return gg, gx


class Relu(Op):
    opmath = False  # exact in any dtype

    def forward(self, x):
        # floats against an array of zeros, not the scalar 0: numpy 2.4's maximum with a
        # scalar operand takes a loop about 2x slower at [512, 256] float32 (measured);
        # other dtypes keep numpy's promotion with the scalar (bool becomes int)
        # (and the zeros take the result: one fresh array, not two)
        if not _dtypes.is_float(x.dtype):
            return np.maximum(x, 0)
        zeros = np.zeros_like(x)
        return np.maximum(x, zeros, out=zeros)

    def vjp(self, g, out):  # d relu(x) = [x > 0] dx, taking 0 at x == 0
        return (ReluBackward.apply(g, self.inputs[0]),)


class ReluBackward(Op):
    """``g * [x > 0]``, relu's VJP in one op: the product is written into the float mask, so
    the node makes one fresh array the size of ``g`` where ``g * mask`` made two (at [512,
    256] float32 each is 512 KB of new pages)."""

    opmath = False  # exact in any dtype

    def forward(self, g, x):
        # a float mask: numpy's bool * float32 loop is ~1.7x slower than cast + multiply
        # (``out=`` keeps a 0-d mask an array, where ``x > 0`` gives a numpy scalar)
        mask = np.greater(x, 0, out=np.empty(x.shape, bool)).astype(np.result_type(g, x))
        return np.multiply(g, mask, out=mask)

    def vjp(self, h, out):
        # d(g [x > 0]) = [x > 0] dg; the mask is piecewise constant, so nothing flows to x
        return ReluBackward.apply(h, self.inputs[1]), None


def exp(x):
    """Elementwise ``e ** x``."""
    return Exp.apply(_operand(x))


def log(x):
    """Elementwise natural logarithm."""
    return Log.apply(_operand(x))


def sqrt(x):
    """Elementwise square root."""
    return Sqrt.apply(_operand(x))


def abs(x):
    """Elementwise absolute value (its gradient at 0 is taken as 0)."""
    return Abs.apply(_operand(x))


def tanh(x):
    """Elementwise hyperbolic tangent."""
    return Tanh.apply(_operand(x))


def _floating(x):
    """``x`` as a tensor, integers and bools made floats as numpy's ``np.tanh`` makes them."""
    x = _operand(x)
    if not _dtypes.is_float(x.dtype):
        x = astype(x, np.result_type(x.dtype, np.float16))
    return x


def sigmoid(x):
    """Elementwise logistic function ``1 / (1 + exp(-x))``, computed without overflow."""
    return Sigmoid.apply(_floating(x))


def relu(x):
    """Elementwise ``max(x, 0)`` (its gradient at 0 is taken as 0)."""
    return Relu.apply(_operand(x))


class Cast(Op):
    opmath = False  # the cast is the rounding itself

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        return x.astype(self.dtype)

    def vjp(self, g, out):  # the base class casts the cotangent back to the input's dtype
        return (g,)


def astype(x, dtype):
    """``x`` converted to ``dtype``; differentiable between float dtypes."""
    x = _operand(x)
    dtype = _dtypes.numeric_dtype(dtype)
    return x if x.dtype == dtype else Cast.apply(x, dtype=dtype)


# --------------------------------------------------------------------------------------------
# Selection between two tensors
# --------------------------------------------------------------------------------------------
class Where(Op):
    opmath = False  # exact in any dtype

    def __init__(self, condition):
        self.condition = condition

    def forward(self, x, y):
        return np.where(self.condition, x, y)

    def vjp(self, g, out):  # each branch gets the cotangent where it was chosen
        zero = _const(0, g)
        return Where.apply(g, zero, condition=self.condition), Where.apply(zero, g, condition=self.condition)


class Maximum(Op):
    opmath = False  # exact in any dtype
    pick, x_wins_where = np.maximum, np.greater_equal

    def forward(self, x, y):
        self.x_wins = self.x_wins_where(x, y)
        return self.pick(x, y)

    def vjp(self, g, out):  # the chosen input gets the cotangent; a tie goes to x
        zero = _const(0, g)
        return Where.apply(g, zero, condition=self.x_wins), Where.apply(zero, g, condition=self.x_wins)


class Minimum(Maximum):
    pick, x_wins_where = np.minimum, np.less_equal


def where(condition, x, y):
    """Elementwise ``x`` where ``condition`` is true, else ``y`` (the condition is a constant)."""
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    x, y = _pair(x, y)
    return Where.apply(x, y, condition=condition)


def maximum(x, y):
    """Elementwise maximum (NaN propagates). At a tie the gradient goes to ``x``."""
    return Maximum.apply(*_pair(x, y))


def minimum(x, y):
    """Elementwise minimum (NaN propagates). At a tie the gradient goes to ``x``."""
    return Minimum.apply(*_pair(x, y))


def clip(x, a_min, a_max):
    """Limit ``x`` to ``[a_min, a_max]`` (either may be None). The gradient is 1 inside the
    interval, its ends included, and 0 outside, as in PyTorch's ``clamp``."""
    if a_min is None and a_max is None:
        raise ValueError("clip needs a_min or a_max (both are None)")
    x = _operand(x)
    if a_min is not None:
        x = maximum(x, a_min)
    if a_max is not None:
        x = minimum(x, a_max)
    return x


# --------------------------------------------------------------------------------------------
# Reductions
# --------------------------------------------------------------------------------------------
def _axes(axis, ndim):
    """The reduced axes: ``axis`` (None, an int or a tuple) as a tuple of non-negative axes.

    On a 0-d tensor an int axis of 0 or -1 reduces nothing, as numpy's ``sum``, ``max`` and
    ``min`` (its ufunc reductions) accept; ``numpy.mean`` refuses it, minigrad's ``mean``
    follows ``sum``.
    """
    if type(axis) is tuple:  # already normalized? (the ops pass their axes on)
        for a in axis:
            if type(a) is not int or not 0 <= a < ndim:
                break
        else:
            if len(axis) < 2 or len(set(axis)) == len(axis):
                return axis
    if ndim == 0 and axis is not None and not isinstance(axis, (tuple, list)) \
            and _checks.integer(axis, "axis") in (0, -1):
        return ()
    return _checks.axes(axis, ndim)


def _reduction_args(x, axis, keepdims):
    """Checked ``axis`` (as a tuple) and ``keepdims`` of a reduction over tensor ``x``."""
    if keepdims is not False and keepdims is not True:
        keepdims = _checks.flag(keepdims, "keepdims")
    return _axes(axis, x.ndim), keepdims


def _pairwise_sum(a, axis=None, keepdims=False):
    """``np.sum(a, axis, keepdims)``, pairwise along every reduced axis.

    numpy sums pairwise (error O(log n) ulps) only along the contiguous axis; along any other
    it adds one slice after another, with an error that grows with n: a float32 sum of 10^6
    elements down a column is off by 8.5e-6 relative, and a float16 column of 4096 ones sums to
    2048. Each other axis is summed here in blocks of 8 (numpy's own unrolling), then by
    halving (top half plus bottom half, repeated): a few numpy calls per axis, same cost order.
    """
    if a.dtype.kind != "f":  # integers and bools: exact, numpy's rules (bool sums to int)
        return np.sum(a, axis=axis, keepdims=keepdims)
    axes = _axes(axis, a.ndim)
    if not axes:  # nothing to reduce: numpy's copy
        return np.sum(a, axis=axes, keepdims=keepdims)
    out = a
    for ax in sorted(axes, reverse=True):
        out = _pairwise_along(out, ax)
    return out if keepdims else out.reshape([n for i, n in enumerate(a.shape) if i not in axes])


def _pairwise_along(a, axis):
    """Sum over ``axis``, kept as size 1, pairwise."""
    n = a.shape[axis]
    if n <= 8 or a.strides[axis] == a.itemsize:  # short, or numpy's pairwise inner loop
        return np.add.reduce(a, axis=axis, keepdims=True)
    lead = (slice(None),) * axis
    if n >= 16 and a.size // n >= 32:  # wide slices: one pass in blocks of 8 first
        body = n - n % 8
        blocks = a[lead + (slice(0, body),)]
        blocks = blocks.reshape(a.shape[:axis] + (body // 8, 8) + a.shape[axis + 1:])
        b = np.add.reduce(blocks, axis=axis + 1)
        if body < n:
            b[lead + (slice(0, 1),)] += np.add.reduce(a[lead + (slice(body, n),)], axis=axis,
                                                      keepdims=True)
    else:
        b = a
    while b.shape[axis] > 1:
        m = b.shape[axis]
        half = m // 2
        summed = b[lead + (slice(0, half),)] + b[lead + (slice(half, 2 * half),)]
        if m % 2:
            summed[lead + (slice(0, 1),)] += b[lead + (slice(m - 1, m),)]
        b = summed
    return b


class Sum(Op):
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        return _pairwise_sum(x, self.axis, self.keepdims)

    def vjp(self, g, out):  # every summed element gets the cotangent of its sum
        x = self.inputs[0]
        return (g.reshape(_kept_shape(x.shape, self.axis)).broadcast_to(x.shape),)


class Mean(Sum):
    """The sum divided by the count in one op, so float16 rounds once (and does not overflow
    past 65504 on the way)."""

    def forward(self, x):
        self.count = math.prod(x.shape[i] for i in _axes(self.axis, x.ndim))
        return np.true_divide(super().forward(x), self.count, dtype=x.dtype)

    def vjp(self, g, out):  # each element gets 1/count of the mean's cotangent
        return super().vjp(g / self.count, out)


class Max(Op):
    opmath = False  # exact in any dtype
    reduce = staticmethod(np.max)

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        return self.reduce(x, axis=self.axis, keepdims=self.keepdims)

    def vjp(self, g, out):
        # The cotangent goes to the extreme elements; ties share it equally (so the
        # gradient is the same whichever of them numpy reports). NaN counts as extreme.
        x = self.inputs[0].data
        kept = _kept_shape(x.shape, self.axis)
        top = out.data.reshape(kept)
        mask = (x == top) | (np.isnan(x) & np.isnan(top))
        share = (mask / mask.sum(axis=self.axis, keepdims=True)).astype(x.dtype)
        return (g.reshape(kept) * share,)


class Min(Max):
    reduce = staticmethod(np.min)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all; an int or a tuple of ints), as ``numpy.sum``.

    Floats are summed pairwise along every axis (numpy does so only along the contiguous
    one), so the error grows as log(n), not n; float16/bfloat16 sum in float32.
    """
    x = _operand(x)
    axis, keepdims = _reduction_args(x, axis, keepdims)
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis``, as ``numpy.mean``: integers and bools give float64; floats keep
    their dtype (float16/bfloat16 are summed in float32 and rounded once)."""
    x = _operand(x)
    axis, keepdims = _reduction_args(x, axis, keepdims)
    if not _dtypes.is_float(x.dtype):
        x = astype(x, np.float64)
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``, as ``numpy.max``; tied maxima share the gradient equally."""
    x = _operand(x)
    axis, keepdims = _reduction_args(x, axis, keepdims)
    return Max.apply(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):
    """Minimum over ``axis``, as ``numpy.min``; tied minima share the gradient equally."""
    x = _operand(x)
    axis, keepdims = _reduction_args(x, axis, keepdims)
    return Min.apply(x, axis=axis, keepdims=keepdims)


# --------------------------------------------------------------------------------------------
# The softmax family: primitives, each computed from the shifted logits x - max
# --------------------------------------------------------------------------------------------
def _finite_max(x, axis):
    """The max over ``axis`` (kept) as a constant shift: 0 where it is infinite (a row of only
    -inf then gives -inf, not NaN) or the axis is empty."""
    if x.size == 0:
        return np.zeros(_kept_shape(x.shape, axis), dtype=x.dtype)
    shift = np.max(x, axis=axis, keepdims=True)
    return np.where(np.isfinite(shift), shift, 0).astype(x.dtype)


def _log_sum_exp_shifted(shifted, axis):
    """``log(sum(exp(shifted)))`` over ``axis``, kept."""
    return np.log(_pairwise_sum(np.exp(shifted), axis, keepdims=True))


class _SoftmaxFamily(Op):
    def __init__(self, axis, stats=None):
        # ``stats``: for 2-D input and the last axis, per-row (max, log(sum(exp(x - max))))
        # in float64, as the cross-entropy kernels hand them out: the output is then formed
        # in float64 and rounded once, with no pass to find them again.
        self.axis, self.stats = axis, stats

    def _from_stats(self, x):
        """``x - logsumexp(x)`` from the row statistics, in float64."""
        m, logsum = self.stats[:, :1], self.stats[:, 1:]
        return (x.astype(np.float64) - m) - logsum

    def _in_opmath(self, *tensors):
        """The tensors in the op-math dtype (float32 for float16/bfloat16): the cross-entropy
        node's variant skips ``Op.apply``'s casts, so its backward widens here."""
        wide = _dtypes.opmath(tensors[0].dtype)
        return [astype(t, wide) for t in tensors]


class LogSoftmax(_SoftmaxFamily):
    def forward(self, x):
        if self.stats is not None:
            return self._from_stats(x).astype(x.dtype)
        shifted = x - _finite_max(x, self.axis)
        return shifted - _log_sum_exp_shifted(shifted, self.axis)

    def vjp(self, g, out):  # d log_softmax = dx - softmax * sum(dx); softmax = exp(out)
        g, out = self._in_opmath(g, out)
        return (g - exp(out) * sum(g, axis=self.axis, keepdims=True),)


class Softmax(_SoftmaxFamily):
    def forward(self, x):
        if self.stats is not None:
            return np.exp(self._from_stats(x)).astype(x.dtype)
        e = np.exp(x - _finite_max(x, self.axis))
        return e / _pairwise_sum(e, self.axis, keepdims=True)

    def vjp(self, g, out):  # d softmax = softmax * (dx - sum(dx * softmax))
        g, out = self._in_opmath(g, out)
        return (out * (g - sum(g * out, axis=self.axis, keepdims=True)),)


class _GivenStats:
    """Mixin: the variant fed the kernels' float64 row statistics computes in float64 itself
    and rounds once, so ``Op.apply`` must not widen it to float32 first."""

    opmath = False


class LogSoftmaxGivenStats(_GivenStats, LogSoftmax):
    pass


class SoftmaxGivenStats(_GivenStats, Softmax):
    pass


class LogSumExp(Op):
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        shift = _finite_max(x, self.axis)
        out = _log_sum_exp_shifted(x - shift, self.axis) + shift
        return out if self.keepdims else np.squeeze(out, axis=_axes(self.axis, x.ndim))

    def vjp(self, g, out):  # d logsumexp = sum(softmax * dx)
        x = self.inputs[0]
        return (g.reshape(_kept_shape(x.shape, self.axis)) * softmax(x, axis=self.axis),)


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, stable for large entries.

    Computed as ``m + log(sum(exp(x - m)))`` with ``m`` the max as a constant (0 where it is
    infinite, so a row of only ``-inf`` gives ``-inf``, not NaN).
    """
    x = _floating(x)  # x - max would wrap for unsigned integers
    axis, keepdims = _reduction_args(x, axis, keepdims)
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)


def log_softmax(x, axis=-1):
    """Log-probabilities along ``axis`` (default: the last), ``(x - m) - log(sum(exp(x - m)))``
    with ``m`` the max: never ``x - logsumexp(x)``, which loses the digits of ``x`` (at
    ``[1e4, 10001]`` in float32 that form is off by 2e-4, at ``[1e8, 1e8]`` it gives 0)."""
    x = _floating(x)
    return LogSoftmax.apply(x, axis=_axes(axis, x.ndim))


def softmax(x, axis=-1):
    """``exp(x - m) / sum(exp(x - m))`` along ``axis`` (default: the last), ``m`` the max."""
    x = _floating(x)
    return Softmax.apply(x, axis=_axes(axis, x.ndim))


# --------------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------------
class Reshape(Op):
    opmath = False  # exact in any dtype

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        try:
            return x.reshape(self.shape)
        except ValueError as e:  # two -1s, a negative size, a size that does not match
            raise ValueError(f"cannot reshape to shape {self.shape}: {e}") from None

    def vjp(self, g, out):
        return (g.reshape(self.inputs[0].shape),)


class Transpose(Op):
    opmath = False  # exact in any dtype

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return np.transpose(x, self.axes)

    def vjp(self, g, out):  # transpose back with the inverse permutation
        axes = self.axes if self.axes is not None else tuple(reversed(range(g.ndim)))
        return (g.transpose(tuple(np.argsort(axes))),)


class BroadcastTo(Op):
    opmath = False  # exact in any dtype

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return np.broadcast_to(x, self.shape)

    def vjp(self, g, out):  # the base class sums the cotangent back to the input's shape
        return (g,)


def _shape_arg(shape):
    """A method's ``*shape`` (``t.reshape(2, 3)`` or ``t.reshape((2, 3))``) as one argument."""
    return shape[0] if len(shape) == 1 else shape


def reshape(x, shape):
    """``x`` with a new shape (one dimension may be -1), as ``numpy.reshape``."""
    x = _operand(x)
    shape = _checks.int_tuple(shape, "shape")
    if shape.count(-1) == 1:  # resolve -1 here, so that a no-op reshape records nothing
        known = math.prod(n for n in shape if n != -1)
        if known and x.size % known == 0:
            shape = tuple(x.size // known if n == -1 else n for n in shape)
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


def transpose(x, axes=None):
    """Permute the axes (default: reverse them), as ``numpy.transpose``."""
    x = _operand(x)
    if axes is not None:
        axes = _checks.axes(axes, x.ndim, "axes")
        if len(axes) != x.ndim:
            raise ValueError(f"axes {axes} don't match a tensor of {x.ndim} dimensions")
    return Transpose.apply(x, axes=axes)


def swapaxes(x, axis1, axis2):
    """Interchange two axes, as ``numpy.swapaxes``."""
    x = _operand(x)
    if type(axis1) is not int or type(axis2) is not int:
        axis1, axis2 = _checks.integer(axis1, "axis1"), _checks.integer(axis2, "axis2")
    a, b = normalize_axis_tuple((axis1, axis2), x.ndim, allow_duplicate=True)
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return Transpose.apply(x, axes=tuple(axes))


def _shape_only(x):
    """A zero-stride array of ``x``'s shape: numpy's shape rules without allocating."""
    return np.broadcast_to(np.empty((), dtype=bool), x.shape)


def expand_dims(x, axis):
    """Insert size-1 axes at ``axis`` (an int or tuple), as ``numpy.expand_dims``."""
    x = _operand(x)
    return reshape(x, np.expand_dims(_shape_only(x), _checks.int_tuple(axis, "axis")).shape)


def squeeze(x, axis=None):
    """Remove size-1 axes (all, or those in ``axis``), as ``numpy.squeeze``."""
    x = _operand(x)
    axis = None if axis is None else _checks.int_tuple(axis, "axis")
    return reshape(x, np.squeeze(_shape_only(x), axis).shape)


def broadcast_to(x, shape):
    """``x`` broadcast to ``shape``, as ``numpy.broadcast_to``."""
    x = _operand(x)
    shape = _checks.int_tuple(shape, "shape")
    return x if shape == x.shape else BroadcastTo.apply(x, shape=shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``, undoing broadcasting (leading axes and size-1 axes)."""
    x = _operand(x)
    shape = _checks.int_tuple(shape, "shape")
    lead = x.ndim - len(shape)
    if lead < 0 or any(n not in (1, x.shape[lead + i]) for i, n in enumerate(shape)):
        raise ValueError(f"cannot sum a tensor of shape {x.shape} to shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    return reshape(sum(x, axis=axes, keepdims=True) if axes else x, shape)


# --------------------------------------------------------------------------------------------
# Indexing and joining
# --------------------------------------------------------------------------------------------
def _plain_index(index):
    """An index with any tensors in it replaced by their arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    return index.data if isinstance(index, Tensor) else index


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) for i in items)


class GetItem(Op):
    opmath = False  # exact in any dtype

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        return x[self.index]

    def vjp(self, g, out):  # scatter the cotangent back; repeated indices add up
        return (IndexAdd.apply(g, shape=self.inputs[0].shape, index=self.index),)


class IndexAdd(Op):
    """``zeros(shape)`` with ``g`` added at ``index``: the transpose of indexing."""

    def __init__(self, shape, index):
        self.shape, self.index = shape, index

    def forward(self, g):
        z = np.zeros(self.shape, dtype=g.dtype)
        if _is_basic(self.index):  # basic indexing never repeats an element
            z[self.index] += g
        else:
            np.add.at(z, self.index, g)
        return z

    def vjp(self, g, out):
        return (GetItem.apply(g, index=self.index),)


def getitem(x, index):
    """``x[index]`` with numpy's basic and advanced (integer-array, boolean) indexing."""
    return GetItem.apply(_operand(x), index=_plain_index(index))


class Concatenate(Op):
    opmath = False  # exact in any dtype

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def vjp(self, g, out):  # each input gets its slice of the cotangent
        axis = normalize_axis_tuple(self.axis, g.ndim)[0]
        bounds = np.cumsum([0] + [x.shape[axis] for x in self.inputs])
        lead = (slice(None),) * axis
        return tuple(
            g[lead + (slice(int(a), int(b)),)] if need else None
            for a, b, need in zip(bounds[:-1], bounds[1:], self.needs)
        )


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis, as ``numpy.concatenate`` (``axis=None``
    flattens them first)."""
    tensors = [_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("need at least one tensor to concatenate")
    if axis is None:
        tensors, axis = [t.reshape(-1) for t in tensors], 0
    axis = _checks.integer(axis, "axis")
    dtype = np.result_type(*(t.dtype for t in tensors))
    return Concatenate.apply(*(astype(t, dtype) for t in tensors), axis=axis)


def stack(tensors, axis=0):
    """Join tensors along a new axis, as ``numpy.stack``."""
    tensors = [_operand(t) for t in tensors]
    if not tensors:
        raise ValueError("need at least one tensor to stack")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"all tensors must have the same shape to stack, got {sorted(shapes)}")
    return concatenate([expand_dims(t, axis) for t in tensors], axis=axis)


# --------------------------------------------------------------------------------------------
# Matrix product
# --------------------------------------------------------------------------------------------
class MatMul(Op):
    def forward(self, a, b):
        if a.ndim > 2 and b.ndim == 2:
            # a stack times one matrix is one 2-D product: numpy's stacked loop against a
            # transposed view is a slow path (9x at [64, 8, 64] @ [192, 64].T)
            rows = math.prod(a.shape[:-1])  # (not -1: the shape may hold a 0)
            return np.matmul(a.reshape(rows, a.shape[-1]), b).reshape(a.shape[:-1] + b.shape[-1:])
        return np.matmul(a, b)

    def vjp(self, g, out):
        # d(AB) = dA B + A dB, so gA = g B^T and gB = A^T g, on operands promoted to at
        # least 2-D the way numpy promotes 1-D ones; batch axes are summed back by sum_to.
        a, b = self.inputs
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        if a.ndim == 1 and b.ndim == 1:
            g2 = g.reshape(1, 1)
        else:
            g2 = expand_dims(g, -2) if a.ndim == 1 else g
            g2 = expand_dims(g2, -1) if b.ndim == 1 else g2
        ga = gb = None
        if self.needs[0]:
            ga = (g2 @ b2.swapaxes(-1, -2)).sum_to(a2.shape).reshape(a.shape)
        if self.needs[1]:
            if a.ndim > 2 and b.ndim == 2:  # the batch summed inside one 2-D product
                rows = math.prod(a.shape[:-1])
                gb = a.reshape(rows, a.shape[-1]).T @ g.reshape(rows, g.shape[-1])
            else:
                gb = (a2.swapaxes(-1, -2) @ g2).sum_to(b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    """Matrix product with numpy's rules for 1-D, 2-D and batched operands."""
    a, b = _operand(a), _operand(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs operands of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    return MatMul.apply(a, b)


class Linear(Op):
    """``x @ weight.T + bias`` for 2-D ``x`` in one node (``nn.Linear``'s forward, PyTorch's
    ``addmm``), not a transpose, a matmul and an add: one matmul into a fresh array, the bias
    added in place, and no product kept alive for an add's backward. The VJP is three 2-D
    products, and the weight's gradient comes out contiguous, so a leaf takes it as its
    ``.grad`` without a copy."""

    def forward(self, x, weight, bias=None):
        y = np.matmul(x, weight.T)
        if bias is not None:
            if np.result_type(y, bias) == y.dtype:
                np.add(y, bias, out=y)
            else:
                y = y + bias
        return y

    def vjp(self, g, out):  # d(x W^T + b) = dx W^T + x dW^T + db
        x, weight = self.inputs[0], self.inputs[1]
        gx = g @ weight if self.needs[0] else None
        gw = g.T @ x if self.needs[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (g.sum(axis=0) if self.needs[2] else None)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` as PyTorch's ``nn.functional.linear``, in one recorded node.

    ``weight`` is ``[out_features, in_features]``, ``bias`` (optional) ``[out_features]``;
    ``x`` is ``[..., in_features]``, flattened to one 2-D product (numpy's stacked matmul
    against a transposed view is a slow loop: 9x at ``[64, 8, 64] @ [192, 64].T``).
    """
    x, weight = _operand(x), _operand(weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D [out_features, in_features], got shape "
                         f"{weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: the last axis of x must have size in_features = "
                         f"{weight.shape[1]}, got x of shape {x.shape}")
    inputs = [x if x.ndim == 2 else reshape(x, (math.prod(x.shape[:-1]), weight.shape[1])),
              weight]
    if bias is not None:
        bias = _operand(bias)
        if bias.shape != weight.shape[:1]:
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got "
                             f"{bias.shape}")
        inputs.append(bias)
    y = Linear.apply(*inputs)
    return y if x.ndim == 2 else reshape(y, x.shape[:-1] + weight.shape[:1])


# --------------------------------------------------------------------------------------------
# Tensor methods and operators: thin doors onto the functions above
# --------------------------------------------------------------------------------------------
def _reflected(fn):
    return lambda self, other: fn(other, self)


def _method_shape(fn):
    return lambda self, *shape: fn(self, _shape_arg(shape))


def _compare(ufunc):
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(np.asarray(ufunc(self.data, other)))
    return compare


for _name, _fn in {
    "__add__": add, "__radd__": _reflected(add),
    "__sub__": subtract, "__rsub__": _reflected(subtract),
    "__mul__": multiply, "__rmul__": _reflected(multiply),
    "__truediv__": divide, "__rtruediv__": _reflected(divide),
    "__pow__": power, "__rpow__": _reflected(power),
    "__matmul__": matmul, "__rmatmul__": _reflected(matmul),
    "__neg__": negative, "__pos__": lambda self: self, "__getitem__": getitem,
    "__lt__": _compare(np.less), "__le__": _compare(np.less_equal),
    "__gt__": _compare(np.greater), "__ge__": _compare(np.greater_equal),
    "__eq__": _compare(np.equal), "__ne__": _compare(np.not_equal),
    "exp": exp, "log": log, "sqrt": sqrt, "abs": abs, "__abs__": abs, "tanh": tanh,
    "sigmoid": sigmoid, "relu": relu, "astype": astype, "clip": clip,
    "sum": sum, "mean": mean, "max": max, "min": min,
    "logsumexp": logsumexp, "softmax": softmax, "log_softmax": log_softmax,
    "reshape": _method_shape(reshape), "broadcast_to": broadcast_to, "sum_to": sum_to,
    "transpose": lambda self, *axes: transpose(self, _shape_arg(axes) if axes else None),
    "T": property(lambda self: transpose(self)),
    "swapaxes": swapaxes, "expand_dims": expand_dims, "squeeze": squeeze,
    "matmul": matmul, "maximum": maximum, "minimum": minimum,
}.items():
    setattr(Tensor, _name, _fn)
del _name, _fn
