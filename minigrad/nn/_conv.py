"""Convolution: three recorded ops that are each other's VJPs, on an im2col with one matmul.

For a fixed geometry (kernel, stride, padding, dilation, groups) the convolution
``y = conv(x, w)`` is bilinear, so everything about its derivatives lives in one trilinear form
``f(x, w, g) = <conv(x, w), g>``. Its three partial "adjoints" are the three ops here:

* ``Conv(x, w[, b])``       -> y, shape ``[N, O, *out]``  (the forward; ``b`` is the bias),
* ``ConvInputGrad(g, w)``   -> shape of x: the transposed convolution (``d f / d x``),
* ``ConvWeightGrad(x, g)``  -> shape of w: the correlation of x with g (``d f / d w``).

Differentiating ``f`` by any argument gives another of the three, so each op's VJP is made of
the other two (see the comment on each ``vjp``): gradients of any order stay within these ops,
and ``gradgradcheck`` sees exact second derivatives.

The forward is an im2col: a zero-copy ``as_strided`` view of every window, copied once into a
``[groups, N * out_positions, kernel * C_in/groups]`` matrix, times the weight matrix: one
(batched over groups) BLAS matmul. The input gradient is one product per kernel offset, each
added back with one strided add (col2im without materialising the columns). The weight
gradient makes the columns again and multiplies them by the cotangent. The output is laid out channels-last in memory and returned as an
``[N, O, *out]`` view, which saves a transposing copy per op; numpy's elementwise ops keep that
layout and the next im2col reads it well.

The same window machinery (:class:`Window`, :func:`windows`, :func:`fold`) serves pooling.
"""

import itertools
import math
import numbers

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .._autograd import Op
from .._checks import positive_int
from .._tensor import _float_tensor
from ._norm import BlasSum

__all__ = ["Window", "pad", "windows", "offsets", "fold", "channels_last", "channels_first", "ntuple",
           "conv"]


def ntuple(value, n, what, *, minimum=1):
    """``value`` (an int or a sequence of ``n`` ints) as a tuple of ``n`` ints ``>= minimum``."""
    if type(value) is int and value >= minimum:  # the common case, without the ABC checks
        return (value,) * n
    items = (value,) * n if isinstance(value, numbers.Integral) else value
    if isinstance(value, bool) or not isinstance(items, (tuple, list)):
        raise TypeError(f"{what} must be an int or a tuple of {n} ints, "
                        f"got {type(value).__name__} {value!r}")
    if len(items) != n:
        raise ValueError(f"{what} must be an int or a tuple of {n} ints, got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{what} must hold ints, got {type(v).__name__} {v!r} in {value!r}")
        if v < minimum:
            raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


class Window:
    """A sliding window over the spatial axes ``1 .. d`` of an array ``[N, *spatial, *rest]``.

    Arrays are handled channels-last: the window functions take ``[N, *spatial, C...]``
    (a ``moveaxis`` view of PyTorch's ``[N, C, *spatial]``), so the channels, the axis every
    im2col row runs along, are the innermost, contiguous axis of the copies.

    ``padding`` is a ``(before, after)`` pair per axis. ``out`` is the number of window
    positions per axis, ``floor((n + before + after - dilation * (k - 1) - 1) / stride) + 1``.
    """

    __slots__ = ("spatial", "kernel", "stride", "padding", "dilation", "out")

    def __init__(self, spatial, kernel, stride, padding, dilation):
        self.spatial, self.kernel, self.stride = tuple(spatial), tuple(kernel), tuple(stride)
        self.padding, self.dilation = tuple(padding), tuple(dilation)
        self.out = tuple(
            (n + before + after - d * (k - 1) - 1) // s + 1
            for n, k, s, (before, after), d in zip(spatial, kernel, stride, padding, dilation)
        )

    @property
    def padded(self):
        return tuple(n + before + after for n, (before, after) in zip(self.spatial, self.padding))

    def tiles(self):
        """Whether the windows cover the input exactly once (stride = kernel, no gaps or padding)."""
        return all(s == k and dl == 1 and before == after == 0 and o * k == n
                   for n, k, s, dl, (before, after), o in zip(self.spatial, self.kernel, self.stride,
                                                              self.dilation, self.padding, self.out))

    def inner(self):
        """The index of the unpadded input inside the padded array."""
        return (slice(None),) + tuple(slice(before, before + n)
                                      for n, (before, _) in zip(self.spatial, self.padding))

    def __repr__(self):
        return "Window(" + ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__) + ")"


def pad(x, win, value=0):
    """``x`` ``[N, *spatial, ...]`` padded with ``value`` (``x`` itself when there is no padding)."""
    if not any(before or after for before, after in win.padding):
        return x
    d = len(win.kernel)
    xp = np.full(x.shape[:1] + win.padded + x.shape[1 + d:], value, dtype=x.dtype)
    xp[win.inner()] = x
    return xp


def windows(xp, win):
    """Read-only view ``[N, *out, *kernel, ...]`` of every window of the padded ``xp``."""
    d = len(win.kernel)
    steps = xp.strides[1:1 + d]
    return as_strided(
        xp, xp.shape[:1] + win.out + win.kernel + xp.shape[1 + d:],
        xp.strides[:1] + tuple(a * s for a, s in zip(steps, win.stride))
        + tuple(a * s for a, s in zip(steps, win.dilation)) + xp.strides[1 + d:],
        writeable=False,
    )


def offsets(win):
    """``(offset, reads)`` per kernel offset, row-major: ``reads`` indexes the padded array's
    spatial axes at the elements that this offset of every window reads."""
    for offset in itertools.product(*(range(k) for k in win.kernel)):
        yield offset, tuple(slice(i * dl, i * dl + s * (o - 1) + 1, s)
                            for i, dl, s, o in zip(offset, win.dilation, win.stride, win.out))


def fold(cols, win):
    """The transpose of ``windows(pad(x))`` (col2im), kernel offsets leading.

    ``cols`` has shape ``[*kernel, N, *out, ...]``; the result, ``[N, *spatial, ...]``, adds
    every window entry back at the input position it was read from and drops the padding.
    One strided add per kernel offset; with the offsets leading, each add reads a contiguous
    block when ``cols`` is contiguous.
    """
    d = len(win.kernel)
    if win.tiles():  # every input element is in exactly one window: a transposition
        order = (d,) + sum(((d + 1 + i, i) for i in range(d)), ()) + tuple(range(1 + 2 * d, cols.ndim))
        return cols.transpose(order).reshape(cols.shape[d:d + 1] + win.spatial + cols.shape[1 + 2 * d:])
    xp = np.zeros(cols.shape[d:d + 1] + win.padded + cols.shape[1 + 2 * d:], dtype=cols.dtype)
    for offset, reads in offsets(win):
        xp[(slice(None),) + reads] += cols[offset]
    return xp[win.inner()]


def channels_last(x):
    """``[N, C, *spatial]`` as a ``[N, *spatial, C]`` view."""
    return x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))


def channels_first(x):
    """``[N, *spatial, C]`` as a ``[N, C, *spatial]`` view."""
    return x.transpose((0, x.ndim - 1) + tuple(range(1, x.ndim - 1)))


# ---------------------------------------------------------------------------------------------
# The three convolution ops
# ---------------------------------------------------------------------------------------------
# im2col works through the batch a few samples at a time, so that the columns (K times the
# input's size) are one reused buffer of about this many bytes: it stays in cache while the
# matmul reads it, and no large array is allocated per call (fresh pages from the OS each
# training step cost more than the arithmetic at these sizes).
COLUMN_BYTES = 1 << 20


def _column_batches(x, win, groups):
    """``(start, stop, cols)`` for consecutive batches of samples of ``x`` ``[N, C, *spatial]``.

    ``cols`` is ``[G, (stop - start) * L, K * C/G]``: a row per (sample, output position), a
    column per (kernel offset, channel), written into one buffer reused from batch to batch.
    """
    n, c = x.shape[:2]
    cg, rows_per_sample = c // groups, math.prod(win.out)
    width = math.prod(win.kernel) * cg
    per = max(1, min(n, COLUMN_BYTES // max(1, groups * rows_per_sample * width * x.dtype.itemsize)))
    view = windows(pad(channels_last(x), win), win)                   # [N, *out, *k, C]
    view = np.moveaxis(view.reshape(view.shape[:-1] + (groups, cg)), -2, 0)  # [G, N, *out, *k, Cg]
    buffer = np.empty((groups, per * rows_per_sample * width), dtype=x.dtype)
    for start in range(0, n, per):
        stop = min(start + per, n)
        cols = buffer[:, :(stop - start) * rows_per_sample * width]
        np.copyto(cols.reshape((groups, stop - start) + view.shape[2:]), view[:, start:stop])
        yield start, stop, cols.reshape(groups, (stop - start) * rows_per_sample, width)


def _correlate(x, w, win, groups):
    """The numpy convolution ``[G, N * L, O/G]`` of ``x`` with ``w`` (im2col and matmuls)."""
    rows_per_sample = math.prod(win.out)
    wmat = _weight_matrix(w, groups).transpose(0, 2, 1)                   # [G, K*Cg, O/G]
    y = np.empty((groups, x.shape[0] * rows_per_sample, wmat.shape[-1]), dtype=np.result_type(x, w))
    for start, stop, cols in _column_batches(x, win, groups):
        np.matmul(cols, wmat, out=y[:, start * rows_per_sample:stop * rows_per_sample])
    return y


def _rows(g, groups):
    """The cotangent ``[N, O, *out]`` as ``[G, N * L, O/G]`` (a view when channels-last)."""
    rows = channels_last(g)
    return rows.reshape(-1, groups, rows.shape[-1] // groups).transpose(1, 0, 2)


def _weight_matrix(w, groups):
    """The weight ``[O, C/G, *k]`` as ``[G, O/G, K * C/G]``, columns ordered as im2col's."""
    o, cg = w.shape[:2]
    return np.moveaxis(w.reshape(groups, o // groups, cg, -1), 2, 3).reshape(groups, o // groups, -1)


class Conv(Op):
    """``y[n, o] = sum over (c, offset) of x[n, c, window(offset)] * w[o, c, offset] + b[o]``."""

    def __init__(self, win, groups):
        self.win, self.groups = win, groups

    def forward(self, x, w, b=None):
        win = self.win
        y = _correlate(x, w, win, self.groups)                               # [G, NL, O/G]
        y = y.transpose(1, 0, 2).reshape((x.shape[0],) + win.out + (w.shape[0],))
        if b is not None:
            y = np.add(y, b, out=y if np.result_type(y, b) == y.dtype else None)
        return channels_first(y)

    def vjp(self, g, out):
        # d<conv(x, w), g> = <dx, conv_input_grad(g, w)> + <dw, conv_weight_grad(x, g)>
        x, w = self.inputs[:2]
        gx = gw = gb = None
        if self.needs[0]:
            gx = ConvInputGrad.apply(g, w, win=self.win, groups=self.groups)
        if self.needs[1]:
            gw = ConvWeightGrad.apply(x, g, win=self.win, groups=self.groups)
        if len(self.inputs) == 3 and self.needs[2]:
            gb = BlasSum.apply(g, axes=(0,) + tuple(range(2, g.ndim)))
        return (gx, gw, gb)[:len(self.inputs)]


class ConvInputGrad(Op):
    """The transposed convolution: ``d <conv(x, w), g> / d x``, of the input's shape."""

    def __init__(self, win, groups):
        self.win, self.groups = win, groups

    def forward(self, g, w):
        win, groups = self.win, self.groups
        o, cg = w.shape[:2]
        n, d = g.shape[0], len(win.kernel)
        # With stride 1 this is the correlation of g, padded by dilation * (k - 1) - padding,
        # with the kernel flipped and its channel axes swapped (per group).
        pads = tuple((dl * (k - 1) - before, dl * (k - 1) - after)
                     for k, dl, (before, after) in zip(win.kernel, win.dilation, win.padding))
        if all(s == 1 for s in win.stride) and min(min(p) for p in pads) >= 0:
            flipped = w[(Ellipsis,) + (slice(None, None, -1),) * d]
            flipped = flipped.reshape((groups, o // groups, cg) + win.kernel).swapaxes(1, 2)
            flipped = flipped.reshape((groups * cg, o // groups) + win.kernel)
            back = Window(win.out, win.kernel, win.stride, pads, win.dilation)
            x = _correlate(g, flipped, back, groups)                         # [G, NL, Cg]
            return channels_first(x.transpose(1, 0, 2).reshape((n,) + win.spatial + (-1,)))
        # Otherwise col2im without the columns: for each kernel offset, one product
        # [G, NL, O/G] @ [G, O/G, Cg] into a reused buffer, added where it belongs.
        rows = _rows(g, groups)                                               # [G, NL, O/G]
        w_k = np.moveaxis(w.reshape(groups, o // groups, cg, -1), 3, 0)      # [K, G, O/G, Cg]
        xp = np.zeros((n,) + win.padded + (groups, cg), dtype=np.result_type(g, w))
        product = np.empty((groups, rows.shape[1], cg), dtype=xp.dtype)
        for k, (_, reads) in enumerate(offsets(win)):
            np.matmul(rows, w_k[k], out=product)
            xp[(slice(None),) + reads] += np.moveaxis(product.reshape((groups, n) + win.out + (cg,)), 0, -2)
        x = xp[win.inner()]                                                   # [N, *spatial, G, Cg]
        return channels_first(x.reshape(x.shape[:-2] + (-1,)))

    def vjp(self, h, out):
        # <conv_input_grad(g, w), h> = <conv(h, w), g> = f(h, w, g)
        g, w = self.inputs
        gg = Conv.apply(h, w, win=self.win, groups=self.groups) if self.needs[0] else None
        gw = ConvWeightGrad.apply(h, g, win=self.win, groups=self.groups) if self.needs[1] else None
        return gg, gw


class ConvWeightGrad(Op):
    """The correlation of the input with the cotangent: ``d <conv(x, w), g> / d w``."""

    def __init__(self, win, groups):
        self.win, self.groups = win, groups

    def forward(self, x, g):
        # The columns are made again, batch by batch, rather than kept from the forward
        # (K times the input's memory per layer until backward): measured faster overall.
        rows = _rows(g, self.groups).transpose(0, 2, 1)                    # [G, O/G, NL]
        rows_per_sample = math.prod(self.win.out)
        gw = part = None
        for start, stop, cols in _column_batches(x, self.win, self.groups):
            if gw is None:
                gw = np.zeros((self.groups, rows.shape[1], cols.shape[-1]), np.result_type(x, g))
                part = np.empty_like(gw)
            gw += np.matmul(rows[:, :, start * rows_per_sample:stop * rows_per_sample], cols, out=part)
        gw = gw.reshape((g.shape[1],) + self.win.kernel + (-1,))           # [O, *k, Cg]
        return np.ascontiguousarray(np.moveaxis(gw, -1, 1))

    def vjp(self, k, out):
        # <conv_weight_grad(x, g), k> = <conv(x, k), g> = f(x, k, g)
        x, g = self.inputs
        gx = ConvInputGrad.apply(g, k, win=self.win, groups=self.groups) if self.needs[0] else None
        gg = Conv.apply(x, k, win=self.win, groups=self.groups) if self.needs[1] else None
        return gx, gg


# ---------------------------------------------------------------------------------------------
# The checked entry point behind conv1d / conv2d
# ---------------------------------------------------------------------------------------------
def _conv_padding(padding, d, kernel, stride, dilation):
    """PyTorch's ``padding`` (int, tuple, ``"valid"`` or ``"same"``) as (before, after) pairs."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
            # the total padding d * (k - 1); an odd total puts the extra element after, as PyTorch
            totals = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        raise ValueError(f"padding must be an int, a tuple of {d} ints, 'valid' or 'same', "
                         f"got {padding!r}")
    return tuple((p, p) for p in ntuple(padding, d, "padding", minimum=0))


def conv(input, weight, bias, stride, padding, dilation, groups, d):
    """Checked ``d``-dimensional convolution (PyTorch's ``conv1d``/``conv2d`` semantics)."""
    name = f"conv{d}d"
    x, w = _float_tensor(input, "input"), _float_tensor(weight, "weight")
    if w.ndim != d + 2:
        raise ValueError(f"{name}: weight must have shape [out_channels, in_channels/groups, "
                         f"{', '.join('k' + str(i) for i in range(d))}] ({d + 2} axes), "
                         f"got shape {w.shape}")
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{name}: input must have shape [N, C, *spatial] ({d + 2} axes) or "
                         f"[C, *spatial] ({d + 1} axes), got shape {x.shape}")
    groups = positive_int(groups, f"{name}: groups")
    unbatched = x.ndim == d + 1
    if unbatched:
        x = x.reshape((1,) + x.shape)
    c_in, c_out = x.shape[1], w.shape[0]
    if c_in % groups or c_out % groups:
        raise ValueError(f"{name}: in_channels ({c_in}) and out_channels ({c_out}) must both be "
                         f"divisible by groups ({groups})")
    if w.shape[1] * groups != c_in:
        raise ValueError(f"{name}: input has {c_in} channels, but weight of shape {w.shape} with "
                         f"groups={groups} expects {w.shape[1] * groups} (weight.shape[1] * groups)")
    kernel = w.shape[2:]
    if 0 in kernel:
        raise ValueError(f"{name}: the kernel must not be empty, got weight shape {w.shape}")
    stride = ntuple(stride, d, "stride")
    dilation = ntuple(dilation, d, "dilation")
    win = Window(x.shape[2:], kernel, stride, _conv_padding(padding, d, kernel, stride, dilation),
                 dilation)
    if min(win.out) < 1:
        raise ValueError(f"{name}: the padded input {win.padded} is smaller than the dilated "
                         f"kernel {tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation))}")
    inputs = [x, w]
    if bias is not None:
        b = _float_tensor(bias, "bias")
        if b.shape != (c_out,):
            raise ValueError(f"{name}: bias must have shape ({c_out},), got {b.shape}")
        inputs.append(b)
    y = Conv.apply(*inputs, win=win, groups=groups)
    return y.reshape(y.shape[1:]) if unbatched else y
