"""Functional forms of the layers, with ``torch.nn.functional``'s names, signatures and defaults.

Import it as PyTorch users do::

    import minigrad.nn.functional as F

Every function takes tensors or array-likes and returns a tensor recorded on the tape, and
every gradient is written in minigrad ops, so gradients of gradients work through all of them.
Where PyTorch draws random numbers from a global generator (dropout inside attention), minigrad
takes an ``rng=`` keyword instead.

Differences from PyTorch, each raising a clear error rather than doing something else:
``size_average``/``reduce`` (deprecated in PyTorch) are not accepted, arguments after the
first few are keyword-only, ``inplace=True`` computes out of place (tensors are never
modified), and the regression losses refuse a ``target`` whose shape differs from the input's
(PyTorch broadcasts with a warning).
"""

import numbers
import warnings

import numpy as np

from .. import _ops
from .._checks import integer, real
from .._dtypes import float_dtype, is_float
from .._tensor import Tensor, _float_tensor, _operand
from . import _attention, _embedding, _layer_norm, _special
from ._conv import conv
from ._norm import batch_norm
from ._pool import avg_pool, max_pool
from .losses import (binary_cross_entropy_with_logits, l1_loss, mse_loss, nll_loss)
from .losses import cross_entropy as _cross_entropy

__all__ = [
    # sequence layers
    "linear", "embedding", "layer_norm", "gelu", "softmax", "log_softmax",
    "scaled_dot_product_attention",
    # vision and training kit
    "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "batch_norm",
    "relu", "leaky_relu", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits",
    "nll_loss", "cross_entropy",
]


# --------------------------------------------------------------------------------------------
# Sequence layers: embedding, layer norm, GELU, softmax, attention
# --------------------------------------------------------------------------------------------
def linear(input, weight, bias=None):
    """``input @ weight.T + bias``, as ``torch.nn.functional.linear``: one fused op.

    ``input`` is ``[..., in_features]`` (any number of leading axes, flattened for one 2-D
    product), ``weight`` ``[out_features, in_features]``, ``bias`` ``[out_features]``.

    >>> w = minigrad.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 0.0]])
    >>> F.linear(np.ones((4, 5, 2), np.float32), w, minigrad.tensor([0.5, 0.5, 0.5])).shape
    (4, 5, 3)
    """
    return _ops.linear(_float_tensor(input, "input"), _float_tensor(weight, "weight"),
                       None if bias is None else _float_tensor(bias, "bias"))


def _index_array(input, num_embeddings):
    """``input`` as an integer ndarray with every value in ``[0, num_embeddings)``."""
    data = input.data if isinstance(input, Tensor) else np.asarray(input)
    if data.dtype.kind not in "iu":
        raise TypeError(f"embedding input must hold integer indices, got dtype {data.dtype}")
    if data.size:
        bad = (data < 0) | (data >= num_embeddings)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"input{list(where)} = {data[where]} is out of range: expected an "
                             f"index in [0, {num_embeddings})")
    return data


def _padding_index(padding_idx, num_embeddings):
    """PyTorch's rule: ``padding_idx`` in ``[-num_embeddings, num_embeddings)``, negative ones
    counted from the end; returned as the non-negative index (or None)."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"padding_idx must be an int or None, got {type(padding_idx).__name__} "
                        f"{padding_idx!r}")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"padding_idx must be within [-{num_embeddings}, {num_embeddings}) "
                         f"(num_embeddings), got {padding_idx}")
    return int(padding_idx) % num_embeddings


def _renorm_rows(weight, indices, max_norm, norm_type):
    """Rescale, in place, the rows of ``weight`` used by ``indices`` whose ``norm_type``-norm
    exceeds ``max_norm`` to norm ``max_norm`` (PyTorch's ``embedding_renorm_``)."""
    rows = np.unique(indices)
    norms = np.linalg.norm(weight.data[rows].astype(np.float64), ord=norm_type, axis=1)
    big = norms > max_norm
    if big.any():
        scale = max_norm / (norms[big] + 1e-7)
        weight.data[rows[big]] *= scale[:, None].astype(weight.dtype)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Look up rows of ``weight``: ``weight[input]``, as ``torch.nn.functional.embedding``.

    Parameters
    ----------
    input : array_like of int, any shape
        Indices in ``[0, num_embeddings)``.
    weight : Tensor, shape [num_embeddings, embedding_dim]
        The table.
    padding_idx : int, optional
        Rows looked up at this index give no gradient to ``weight`` (the value itself is
        whatever the row holds; :class:`minigrad.nn.Embedding` starts it at zero).
    max_norm : float, optional
        Before the lookup, rows used by ``input`` with a ``norm_type``-norm above ``max_norm``
        are rescaled to that norm **in place** (not recorded; as PyTorch).
    norm_type : float
        The p of the p-norm for ``max_norm``.
    scale_grad_by_freq : bool
        Divide each looked-up row's gradient by how often its index occurs in ``input``.
    sparse : bool
        Must be False: minigrad has dense gradients only.

    Returns
    -------
    Tensor, shape ``input.shape + (embedding_dim,)``

    Examples
    --------
    >>> table = minigrad.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    >>> out = F.embedding(np.array([[2, 0], [2, 2]]), table, padding_idx=0)
    >>> out.shape
    (2, 2, 2)
    >>> out.sum().backward()
    >>> table.grad                        # row 2 used three times; row 0 is padding
    tensor([[0., 0.],
            [0., 0.],
            [3., 3.]], dtype=float64)
    """
    if sparse:
        raise ValueError("sparse=True is not supported: minigrad's gradients are dense arrays")
    if not isinstance(weight, Tensor) or not is_float(weight.dtype) or weight.ndim != 2:
        raise TypeError(f"weight must be a 2-D floating-point Tensor [num_embeddings, "
                        f"embedding_dim], got {type(weight).__name__} with shape "
                        f"{np.shape(weight)}")
    num_embeddings = weight.shape[0]
    indices = _index_array(input, num_embeddings)
    padding_idx = _padding_index(padding_idx, num_embeddings)
    if max_norm is not None:
        _renorm_rows(weight, indices, real(max_norm, "max_norm"), real(norm_type, "norm_type"))
    return _embedding.EmbeddingOp.apply(weight, indices=indices, padding_idx=padding_idx,
                                        scale_grad_by_freq=bool(scale_grad_by_freq))


def _normalized_shape(normalized_shape):
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else \
        tuple(normalized_shape)
    if not shape:
        raise ValueError("normalized_shape must have at least one dimension, got ()")
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"normalized_shape must be positive ints, got {normalized_shape!r}")
    return tuple(int(n) for n in shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the last ``len(normalized_shape)`` axes, then scale and shift.

    ``(x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance, as
    ``torch.nn.functional.layer_norm``. ``weight`` and ``bias`` (optional) have shape
    ``normalized_shape``.

    Examples
    --------
    >>> x = minigrad.tensor([[1.0, 2.0, 3.0]], dtype="float64")
    >>> F.layer_norm(x, (3,)).numpy().round(4)
    array([[-1.2247,  0.    ,  1.2247]])
    """
    x = _float_tensor(input, "input")
    shape = _normalized_shape(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        raise ValueError(f"layer_norm over normalized_shape {shape} expects an input whose last "
                         f"dimensions are {shape}, got shape {x.shape}")
    params = []
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            t = _float_tensor(t, name)
            if t.shape != shape:
                raise ValueError(f"{name} must have shape normalized_shape {shape}, got {t.shape}")
        params.append(t)
    eps = real(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return _layer_norm.layer_norm(x, len(shape), params[0], params[1], float(eps))


def gelu(input, approximate="none"):
    """Gaussian Error Linear Unit: ``x * Phi(x)``, Phi the standard normal CDF.

    ``approximate="none"`` computes Phi exactly, through ``erfc`` (no cancellation for
    negative ``x``); ``"tanh"`` uses ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``,
    evaluated as ``x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))``, the same value without
    cancellation. Gradients of every order are taken from ``x``.

    Examples
    --------
    >>> F.gelu(minigrad.tensor([-1.0, 0.0, 1.0], dtype="float64")).numpy().round(6)
    array([-0.158655,  0.      ,  0.841345])
    """
    return _special.gelu(_float_tensor(input, "input"), approximate)


def _softmax_dim(name, ndim, dim):
    """PyTorch's implicit dimension for ``dim=None`` (deprecated there too, with a warning)."""
    if dim is not None:
        dim = integer(dim, f"{name}: dim")
        if not -max(ndim, 1) <= dim < max(ndim, 1):
            raise ValueError(f"{name}: dim {dim} is out of range for a tensor of {ndim} "
                             f"dimensions")
        return int(dim)
    implicit = 0 if ndim in (0, 1, 3) else 1
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated (in PyTorch too); "
                  f"pass dim explicitly. Using dim={implicit}.", UserWarning, stacklevel=3)
    return implicit


def _as_dtype_for(x, dtype):
    x = _float_tensor(x, "input") if dtype is None else _operand(x)
    if dtype is not None:
        x = _ops.astype(x, float_dtype(dtype))
    return x


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim``, as ``torch.nn.functional.softmax``.

    ``dtype`` casts the input first (e.g. float16 data softmaxed in float32). ``dim=None``
    picks PyTorch's legacy implicit dimension with a warning; pass ``dim``.

    >>> F.softmax(minigrad.tensor([[0.0, 0.0]]), dim=-1).numpy()
    array([[0.5, 0.5]], dtype=float32)
    """
    x = _as_dtype_for(input, dtype)
    if x.ndim == 0:
        return _ops.softmax(x.reshape(1), axis=0).reshape(())
    return _ops.softmax(x, axis=_softmax_dim("softmax", x.ndim, dim))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``x - logsumexp(x)`` along ``dim``, as ``torch.nn.functional.log_softmax``.

    >>> F.log_softmax(minigrad.tensor([0.0, 0.0], dtype="float64"), dim=0).numpy().round(4)
    array([-0.6931, -0.6931])
    """
    x = _as_dtype_for(input, dtype)
    if x.ndim == 0:
        return _ops.log_softmax(x.reshape(1), axis=0).reshape(())
    return _ops.log_softmax(x, axis=_softmax_dim("log_softmax", x.ndim, dim))


scaled_dot_product_attention = _attention.scaled_dot_product_attention


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
    x = _operand(input)
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
                          label_smoothing=label_smoothing, _input_name="input")
