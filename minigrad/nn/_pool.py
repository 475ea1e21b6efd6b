"""Max and average pooling as pairs of linear ops over the windows of :mod:`._conv`.

Both poolings are linear maps of the input once their choices are fixed, so each is an op
whose VJP is its transpose, and the transpose's VJP is the op again:

* max pooling picks one element per window. ``WindowPick(x)`` reads the picked elements and
  ``WindowPlace(g)`` writes a cotangent back at them (zeros elsewhere). The picks, a one-hot
  mask per kernel offset, are found once in the forward and kept as constants: the gradient
  of a max is the gradient of the element that won. **Ties** go to the first maximal element
  in the window's row-major order (as PyTorch's CPU kernel), and a NaN in a window wins.

Both work on the ``K`` strided views of the input that hold one kernel offset each (``K`` is
``kH * kW``, 4 for the usual 2x2): elementwise maxima, comparisons and sums over ``K`` slices
run at numpy's elementwise speed, where reductions over the small window axes of a copied
``[N, *out, K, C]`` array are several times slower.
* average pooling sums each window, ``WindowSum(x)``, then divides by a constant divisor per
  output position; ``WindowSpread(g)`` adds each output cotangent back to every element of
  its window.

Padding is ``-inf`` for max pooling (a padded element never wins) and 0 for average pooling.
``ceil_mode`` adds the extra windows PyTorch adds, as padding after the input.
"""

import itertools
import math
import numbers

import numpy as np

from .._autograd import Op
from .._checks import flag
from .._dtypes import is_float
from .._tensor import Tensor, _float_tensor, as_tensor
from ._conv import Window, channels_first, channels_last, fold, ntuple, pad, windows

__all__ = ["max_pool", "avg_pool"]


def _lowest(dtype):
    """The padding of max pooling: -inf for floats, the smallest value for integers."""
    return -np.inf if is_float(dtype) else np.iinfo(dtype).min


def _parts(x, win, fill=0):
    """The ``K`` strided views ``[N, *out, C]`` of ``x`` ``[N, C, *spatial]`` (channels last),
    one per kernel offset: ``parts[k][n, o, c]`` is element ``k`` of window ``o``."""
    d = len(win.kernel)
    view = windows(pad(channels_last(x), win, fill), win)               # [N, *out, *k, C]
    return [view[(slice(None),) * (1 + d) + offset]
            for offset in itertools.product(*(range(k) for k in win.kernel))]


def _spread(cols, win):
    """``cols`` ``[K, N, *out, C]`` added back to the input positions they came from."""
    return channels_first(fold(cols.reshape(win.kernel + cols.shape[1:]), win))


class WindowPick(Op):
    """``y = sum over k of onehot[k] * window_element_k(x)``: one element per window.

    ``onehot`` ``[K, N, *out, C]`` marks each window's picked element (max pooling's argmax).
    The products and sums run over K slices of a strided view, never over a copy of the windows.
    """

    opmath = False  # picks one element per window: exact in any dtype

    def __init__(self, win, onehot, value=None):
        self.win, self.onehot, self.value = win, onehot, value

    def forward(self, x):
        if self.value is not None:  # computed by max_pool while finding the picks
            value, self.value = self.value, None
            return value
        parts = _parts(x, self.win)
        y = parts[0] * self.onehot[0]
        for part, mask in zip(parts[1:], self.onehot[1:]):
            y += part * mask
        return channels_first(y)

    def vjp(self, g, out):  # the transpose: each cotangent goes back to the element picked
        return (WindowPlace.apply(g, win=self.win, onehot=self.onehot),)


class WindowPlace(Op):
    """The transpose of :class:`WindowPick`: ``g`` written at the picked elements, 0 elsewhere.

    A cotangent is multiplied by the 0/1 mask, so an infinite one leaves NaN (0 * inf) in its
    window's other elements, as minigrad's ``relu`` does at its zeros.
    """

    def __init__(self, win, onehot):
        self.win, self.onehot = win, onehot

    def forward(self, g):
        return _spread(self.onehot * channels_last(g), self.win)

    def vjp(self, h, out):
        return (WindowPick.apply(h, win=self.win, onehot=self.onehot),)


class WindowSum(Op):
    """``y[n, c, *o] = scale[*o] * sum of x[n, c, window(o)]`` (average pooling with ``scale``
    the divisors' inverses, broadcast over the output's spatial axes; a plain window sum
    without). The scale is applied inside the op, so float16 rounds once and a window sum
    past 65504 does not overflow on the way."""

    def __init__(self, win, scale=None):
        self.win, self.scale = win, scale

    def forward(self, x):
        parts = _parts(x, self.win)
        y = parts[0].copy()
        for part in parts[1:]:
            y += part
        y = channels_first(y)
        return y if self.scale is None else y * self.scale.astype(y.dtype)

    def vjp(self, g, out):  # every element of a window gets its (scaled) sum's cotangent
        if self.scale is not None:
            g = g * self.scale.astype(g.dtype)
        return (WindowSpread.apply(g, win=self.win),)


class WindowSpread(Op):
    """The transpose of :class:`WindowSum`: each ``g`` added to every element of its window."""

    def __init__(self, win):
        self.win = win

    def forward(self, g):
        gl = channels_last(g)
        return _spread(np.broadcast_to(gl, (math.prod(self.win.kernel),) + gl.shape), self.win)

    def vjp(self, h, out):
        return (WindowSum.apply(h, win=self.win),)


def _first_maxima(parts, dtype):
    """The window maxima and a one-hot ``[K, ...]`` of the first maximal element of each window.

    NaN is maximal (``np.maximum`` propagates it), and the first NaN is picked.
    """
    value = np.maximum(parts[0], parts[1]) if len(parts) > 1 else parts[0].copy()
    for part in parts[2:]:
        np.maximum(value, part, out=value)
    has_nan = is_float(dtype) and bool(np.isnan(value).any())
    onehot = np.empty((len(parts),) + value.shape, dtype=dtype if is_float(dtype) else bool)
    taken = np.zeros(value.shape, dtype=bool)
    for k, part in enumerate(parts):
        hit = part == value
        if has_nan:
            hit |= np.isnan(part)
        if k:
            hit &= ~taken
        taken |= hit
        onehot[k] = hit
    return value, onehot


# ---------------------------------------------------------------------------------------------
# Checked entry points behind max_pool2d / avg_pool2d
# ---------------------------------------------------------------------------------------------
def _window(name, x, d, kernel_size, stride, padding, dilation, ceil_mode):
    """The checked window of a ``d``-dimensional pooling, PyTorch's output size rule included."""
    kernel = ntuple(kernel_size, d, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else ntuple(stride, d, "stride")
    padding = ntuple(padding, d, "padding", minimum=0)
    dilation = ntuple(dilation, d, "dilation")
    flag(ceil_mode, f"{name}: ceil_mode")
    for k, p, dl in zip(kernel, padding, dilation):
        if p > (dl * (k - 1) + 1) // 2:
            raise ValueError(f"{name}: padding {padding} must be at most half the (dilated) "
                             f"kernel size {kernel}")
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{name}: input must have shape [N, C, *spatial] ({d + 2} axes) or "
                         f"[C, *spatial] ({d + 1} axes), got shape {x.shape}")
    spatial = x.shape[-d:]
    out = []
    for n, k, s, p, dl in zip(spatial, kernel, stride, padding, dilation):
        span = n + 2 * p - dl * (k - 1) - 1
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:  # the last window must start inside the input
            o -= 1
        if o < 1:
            raise ValueError(f"{name}: input of spatial size {spatial} with padding {padding} is "
                             f"smaller than the (dilated) kernel {kernel}")
        out.append(o)
    # extra padding after the input so that the plain (floor) size rule gives ``out``
    pads = tuple((p, max(p, (o - 1) * s + dl * (k - 1) + 1 - n - p))
                 for n, k, s, p, dl, o in zip(spatial, kernel, stride, padding, dilation, out))
    win = Window(spatial, kernel, stride, pads, dilation)
    assert win.out == tuple(out), (win, out)
    return win


def _batched(x, d):
    return (x.reshape((1,) + x.shape), True) if x.ndim == d + 1 else (x, False)


def max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, d):
    """Checked ``d``-dimensional max pooling (PyTorch's ``max_pool2d`` semantics)."""
    name = f"max_pool{d}d"
    x = as_tensor(input)
    win = _window(name, x, d, kernel_size, stride, padding, dilation, ceil_mode)
    x, unbatched = _batched(x, d)
    value, onehot = _first_maxima(_parts(x.data, win, _lowest(x.dtype)), x.dtype)
    y = WindowPick.apply(x, win=win, onehot=onehot, value=channels_first(value))
    if unbatched:
        y = y.reshape(y.shape[1:])
    if not return_indices:
        return y
    # PyTorch's indices: the flat position of the picked element in each (n, c) input plane
    pick = np.argmax(onehot, axis=0)
    offsets = np.unravel_index(pick, win.kernel)
    flat = np.zeros(pick.shape, dtype=np.int64)
    for axis, (n, s, dl, (before, _)) in enumerate(zip(win.spatial, win.stride, win.dilation,
                                                       win.padding)):
        starts = np.arange(win.out[axis]) * s - before
        starts = starts.reshape((1,) * (1 + axis) + (-1,) + (1,) * (d - axis))
        flat = flat * n + starts + offsets[axis] * dl
    indices = Tensor._wrap(np.ascontiguousarray(channels_first(flat)))
    return y, (indices.reshape(indices.shape[1:]) if unbatched else indices)


def avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, d):
    """Checked ``d``-dimensional average pooling (PyTorch's ``avg_pool2d`` semantics)."""
    name = f"avg_pool{d}d"
    x = _float_tensor(input, f"{name}: input")
    win = _window(name, x, d, kernel_size, stride, padding, 1, ceil_mode)
    flag(count_include_pad, f"{name}: count_include_pad")
    x, unbatched = _batched(x, d)
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral):
            raise TypeError(f"{name}: divisor_override must be an int or None, "
                            f"got {type(divisor_override).__name__} {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{name}: divisor_override must not be 0")
        scale = np.asarray(1.0 / divisor_override)
    else:
        # PyTorch's divisor: the window clipped to the padded input (count_include_pad) or to
        # the input itself; the extra windows of ceil_mode are clipped in both cases.
        counts = np.ones((), dtype=np.int64)
        for n, k, s, p, o in zip(win.spatial, win.kernel, win.stride,
                                 (before for before, _ in win.padding), win.out):
            start = np.arange(o) * s - p
            lo, hi = (-p, n + p) if count_include_pad else (0, n)
            count = np.minimum(start + k, hi) - np.maximum(start, lo)
            counts = np.multiply.outer(counts, count)
        scale = 1.0 / counts
    y = WindowSum.apply(x, win=win, scale=scale)
    return y.reshape(y.shape[1:]) if unbatched else y
