"""PyTorch's ``torch.nn.functional`` names, signatures and defaults, on minigrad ops.

``import minigrad.nn.functional as F`` and call ``F.conv2d``, ``F.max_pool2d``,
``F.cross_entropy``... as in PyTorch. Inputs may be Tensors or arrays; every result is a
Tensor recorded on the tape, and every gradient is written in minigrad ops, so gradients of
gradients work through all of them.

Differences from PyTorch, each raising a clear error rather than doing something else:
``size_average``/``reduce`` (deprecated in PyTorch) are not accepted, arguments after the
first few are keyword-only, ``inplace=True`` computes out of place (tensors are never
modified), and the regression losses refuse a ``target`` whose shape differs from the input's
(PyTorch broadcasts with a warning).
"""

from .. import _ops
from .._checks import real
from .._tensor import as_tensor
from ._conv import conv
from ._norm import batch_norm
from ._pool import avg_pool, max_pool
from .losses import (binary_cross_entropy_with_logits, l1_loss, mse_loss, nll_loss)
from .losses import cross_entropy as _cross_entropy

__all__ = [
    "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm",
    "relu", "leaky_relu", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits",
    "nll_loss", "cross_entropy",
]


# ---------------------------------------------------------------------------------------------
# Vision and training kit: convolution, pooling, batch norm, activations, losses
# ---------------------------------------------------------------------------------------------
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (cross-correlation, as in every deep-learning library).

    ``input`` ``[N, C_in, L]`` (or ``[C_in, L]``), ``weight`` ``[C_out, C_in / groups, k]``,
    ``bias`` ``[C_out]``; ``padding`` is an int, ``"valid"`` or ``"same"`` (stride 1). See
    :func:`conv2d`.

    Examples
    --------
    >>> x = minigrad.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    >>> F.conv1d(x, minigrad.tensor([[[1.0, -1.0]]]))       # x[i] - x[i + 1]
    tensor([[[-1., -1., -1.]]], dtype=float32)
    """
    return conv(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution with PyTorch's arguments and layouts.

    ``out[n, o, i, j] = bias[o] + sum over c, a, b of
    weight[o, c, a, b] * x_padded[n, g * C_in/groups + c, i * stride + a * dilation, j * stride + b * dilation]``
    for output channel ``o`` in group ``g``.

    Parameters
    ----------
    input : Tensor, shape [N, C_in, H, W] or [C_in, H, W]
    weight : Tensor, shape [C_out, C_in / groups, kH, kW]
    bias : Tensor, shape [C_out], optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), "valid" or "same"
        Zeros added on both sides. ``"same"`` (stride 1 only) keeps the spatial size, putting
        an odd total's extra zero after, as PyTorch does.
    groups : int
        Split the channels into ``groups`` independent convolutions (``groups = C_in``:
        depthwise).

    Returns
    -------
    Tensor, shape [N, C_out, H_out, W_out]
        ``H_out = (H + 2 padding - dilation (kH - 1) - 1) // stride + 1``, likewise ``W_out``.
        The result is laid out channels-last in memory (a transposed view), which is what
        the next convolution reads fastest.

    Notes
    -----
    An im2col (one strided view, one copy) and one BLAS matmul per call. The gradients are
    the transposed convolution and the weight correlation, recorded ops whose own gradients
    are convolutions again, so second derivatives are exact.

    Examples
    --------
    >>> x = minigrad.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> w = minigrad.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    >>> F.conv2d(x, w, stride=2)                            # sums of the 2x2 blocks
    tensor([[[[10., 18.],
              [42., 50.]]]], dtype=float64, node=Conv)
    """
    return conv(input, weight, bias, stride, padding, dilation, groups, 2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling; see :func:`max_pool2d`."""
    return max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling, as PyTorch's ``max_pool2d``.

    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) is ``-inf``,
    so it never wins; ``ceil_mode`` adds a last, partial window when the input does not fill
    one (it must start inside the input or its left padding). ``return_indices`` also returns
    each maximum's flat index within its ``H * W`` input plane, as PyTorch does.

    The gradient goes to the maximal element of each window. **Ties** go to the first maximal
    element in the window's row-major order; a NaN in a window is its maximum.

    Examples
    --------
    >>> x = minigrad.tensor(np.array([[[[1.0, 2.0, 5.0, 0.0],
    ...                                 [3.0, 4.0, 1.0, 1.0]]]]), requires_grad=True)
    >>> y = F.max_pool2d(x, 2)
    >>> y
    tensor([[[[4., 5.]]]], dtype=float64, node=WindowPick)
    >>> y.sum().backward()
    >>> x.grad
    tensor([[[[0., 0., 1., 0.],
              [0., 1., 0., 0.]]]], dtype=float64)
    """
    return max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """1-D average pooling; see :func:`avg_pool2d`."""
    return avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling, as PyTorch's ``avg_pool2d``.

    Each window's sum divided by its size. With ``count_include_pad`` (the default) the
    zero padding counts in that size, otherwise only input elements do; the partial windows
    of ``ceil_mode`` count only what lies inside the padded input; ``divisor_override``
    replaces the size altogether.

    Examples
    --------
    >>> x = minigrad.tensor(np.arange(8.0).reshape(1, 1, 2, 4))
    >>> F.avg_pool2d(x, 2)
    tensor([[[[2.5, 4.5]]]], dtype=float64)
    >>> F.avg_pool2d(x, 2, padding=1, count_include_pad=False)[0, 0, 0]
    tensor([0. , 1.5, 3. ], dtype=float64)
    """
    return avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                    divisor_override, 2)


def relu(input, inplace=False):
    """``max(input, 0)`` (see :func:`minigrad.relu`); ``inplace`` is accepted and ignored."""
    return _ops.relu(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``input`` where positive, ``negative_slope * input`` elsewhere (gradient: the slope
    used, so ``negative_slope`` at 0, as PyTorch). ``inplace`` is accepted and ignored.

    Examples
    --------
    >>> F.leaky_relu(minigrad.tensor([-2.0, 0.0, 3.0]), 0.1)
    tensor([-0.2,  0. ,  3. ], dtype=float32)
    """
    real(negative_slope, "negative_slope")
    x = as_tensor(input)
    return _ops.where(x.data > 0, x, x * negative_slope)


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """PyTorch's ``cross_entropy`` for class-index targets: :func:`minigrad.nn.cross_entropy`.

    Examples
    --------
    >>> logits = minigrad.tensor([[2.0, 0.0], [0.0, 0.0]])
    >>> round(float(F.cross_entropy(logits, [0, 1])), 4)    # (log(1 + e^-2) + log 2) / 2
    0.41
    """
    return _cross_entropy(input, target, weight, ignore_index=ignore_index, reduction=reduction,
                          label_smoothing=label_smoothing)
