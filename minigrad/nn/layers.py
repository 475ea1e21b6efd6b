"""The layers of small vision networks and the PyTorch loss modules, as :class:`Module` s.

Each has PyTorch's name, arguments, defaults, parameter names, shapes and initialisation, so a
PyTorch model definition and its ``state_dict`` carry over. The computations are in
:mod:`minigrad.nn.functional`.
"""

import math

import numpy as np

from .._checks import flag, integer, non_negative, positive_int, real
from .._random import as_generator
from .._tensor import Tensor
from . import functional as F
from ._conv import _conv_padding, ntuple
from .losses import _check_ignore_index, _check_reduction, _loss_weight
from .modules import Module

__all__ = ["Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "Flatten",
           "BatchNorm1d", "BatchNorm2d", "LeakyReLU", "MSELoss", "L1Loss", "BCEWithLogitsLoss",
           "NLLLoss"]


class _ConvNd(Module):
    _d = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", *, rng=None, dtype=np.float32):
        d = self._d
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.groups = positive_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        self.kernel_size = ntuple(kernel_size, d, "kernel_size")
        self.stride = ntuple(stride, d, "stride")
        self.dilation = ntuple(dilation, d, "dilation")
        _conv_padding(padding, d, self.kernel_size, self.stride, self.dilation)  # check it now
        self.padding = padding if isinstance(padding, str) else ntuple(padding, d, "padding",
                                                                       minimum=0)
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode={padding_mode!r} is not supported: minigrad pads "
                             f"with zeros only (padding_mode='zeros')")
        self.padding_mode = padding_mode
        # PyTorch's default: kaiming_uniform(a=sqrt(5)) for the weight, which is
        # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        rng = as_generator(rng)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Tensor(rng.uniform(-bound, bound, shape).astype(dtype), requires_grad=True)
        self.bias = (Tensor(rng.uniform(-bound, bound, out_channels).astype(dtype),
                            requires_grad=True) if flag(bias, "bias") else None)

    def forward(self, x):
        fn = F.conv1d if self._d == 1 else F.conv2d
        return fn(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * self._d:
            text += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._d:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv1d(_ConvNd):
    """1-D convolution layer, as PyTorch's ``Conv1d``: input ``[N, C_in, L]``.

    ``weight`` is ``[out_channels, in_channels / groups, kernel_size]``, ``bias``
    ``[out_channels]``; both start as PyTorch's do, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    with ``fan_in = in_channels / groups * kernel_size``, drawn from ``rng``. See
    :class:`Conv2d` for the arguments.

    >>> nn.Conv1d(4, 8, 3, padding=1, rng=0)(np.zeros((2, 4, 10), np.float32)).shape
    (2, 8, 10)
    """

    _d = 1


class Conv2d(_ConvNd):
    """2-D convolution layer, as PyTorch's ``Conv2d``: input ``[N, C_in, H, W]``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or (int, int)
    padding : int, (int, int), "valid" or "same"
    groups : int
        ``in_channels`` and ``out_channels`` must both be divisible by it.
    bias : bool
    padding_mode : "zeros"
        The only mode supported; PyTorch's "reflect", "replicate" and "circular" raise
        ValueError.
    rng : None, int or numpy.random.Generator
        Source of the initial weights (PyTorch's distribution: ``U(-b, b)`` with
        ``b = 1 / sqrt(in_channels / groups * kH * kW)`` for weight and bias).
    dtype : float dtype
        Of the parameters (float32 by default).

    Attributes
    ----------
    weight : Tensor, shape [out_channels, in_channels / groups, kH, kW]
    bias : Tensor, shape [out_channels], or None

    Examples
    --------
    >>> conv = nn.Conv2d(1, 16, 3, padding=1, rng=0)
    >>> conv
    Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> conv(np.zeros((5, 1, 8, 8), np.float32)).shape
    (5, 16, 8, 8)
    >>> {k: v.shape for k, v in conv.state_dict().items()}
    {'weight': (16, 1, 3, 3), 'bias': (16,)}
    """

    _d = 2


class _MaxPoolNd(Module):
    _d = None

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        # as PyTorch: a missing stride is the kernel size (shown so when printed)
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.dilation = dilation
        self.return_indices = flag(return_indices, "return_indices")
        self.ceil_mode = flag(ceil_mode, "ceil_mode")
        ntuple(kernel_size, self._d, "kernel_size")
        if stride is not None:
            ntuple(stride, self._d, "stride")
        ntuple(padding, self._d, "padding", minimum=0)
        ntuple(dilation, self._d, "dilation")

    def forward(self, x):
        fn = F.max_pool1d if self._d == 1 else F.max_pool2d
        return fn(x, self.kernel_size, self.stride, self.padding, self.dilation,
                  ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling, as PyTorch's ``MaxPool1d`` (see :func:`minigrad.nn.functional.max_pool1d`)."""

    _d = 1


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling, as PyTorch's ``MaxPool2d`` (see :func:`minigrad.nn.functional.max_pool2d`).

    ``stride`` defaults to ``kernel_size``. Ties in a window: the gradient goes to the first
    maximal element in row-major order.

    >>> nn.MaxPool2d(2)(np.zeros((1, 3, 8, 8), np.float32)).shape
    (1, 3, 4, 4)
    """

    _d = 2


class _AvgPoolNd(Module):
    _d = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.ceil_mode = flag(ceil_mode, "ceil_mode")
        self.count_include_pad = flag(count_include_pad, "count_include_pad")
        self.divisor_override = divisor_override
        ntuple(kernel_size, self._d, "kernel_size")
        if stride is not None:
            ntuple(stride, self._d, "stride")
        ntuple(padding, self._d, "padding", minimum=0)

    def forward(self, x):
        if self._d == 1:
            return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling, as PyTorch's ``AvgPool1d`` (no ``divisor_override``, as PyTorch)."""

    _d = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling, as PyTorch's ``AvgPool2d`` (see :func:`minigrad.nn.functional.avg_pool2d`).

    >>> nn.AvgPool2d(2)(np.ones((1, 3, 8, 8), np.float32)).shape
    (1, 3, 4, 4)
    """

    _d = 2


class Flatten(Module):
    """Flatten axes ``start_dim`` to ``end_dim`` into one, as PyTorch's ``Flatten``.

    >>> nn.Flatten()(np.zeros((5, 32, 4, 4), np.float32)).shape
    (5, 512)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = integer(start_dim, "start_dim"), integer(end_dim, "end_dim")

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        ndim = max(x.ndim, 1)
        start, end = self.start_dim, self.end_dim
        for name, value in (("start_dim", start), ("end_dim", end)):
            if not -ndim <= value < ndim:
                raise ValueError(f"Flatten: {name}={value} is out of range for an input of "
                                 f"{x.ndim} axes (shape {x.shape})")
        start, end = start % ndim, end % ndim
        if start > end:
            raise ValueError(f"Flatten: start_dim ({self.start_dim}) comes after end_dim "
                             f"({self.end_dim}) for an input of shape {x.shape}")
        if x.ndim == 0:
            return x.reshape(1)
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class _BatchNorm(Module):
    _ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, bias=True, dtype=np.float32):
        self.num_features = positive_int(num_features, "num_features")
        self.eps = non_negative(eps, "eps")
        if momentum is not None:
            real(momentum, "momentum")
        self.momentum = momentum
        self.affine = flag(affine, "affine")
        self.track_running_stats = flag(track_running_stats, "track_running_stats")
        # attribute order = state_dict order = PyTorch's
        self.weight = self.bias = None
        if self.affine:
            self.weight = Tensor(np.ones(num_features, dtype), requires_grad=True)
            if flag(bias, "bias"):
                self.bias = Tensor(np.zeros(num_features, dtype), requires_grad=True)
        self.running_mean = self.running_var = self.num_batches_tracked = None
        if self.track_running_stats:
            self.running_mean = Tensor(np.zeros(num_features, dtype))
            self.running_var = Tensor(np.ones(num_features, dtype))
            self.num_batches_tracked = Tensor(np.zeros((), np.int64))

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim not in self._ndims:
            raise ValueError(f"{type(self).__name__} expects inputs with "
                             f"{' or '.join(map(str, self._ndims))} axes, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects "
                             f"{self.num_features} channels on axis 1, got shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:  # a cumulative moving average, as PyTorch
                factor = 1.0 / float(self.num_batches_tracked.data)
        # batch statistics in training, and always when no running statistics are kept
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        return F.batch_norm(x, self.running_mean if keep else None,
                            self.running_var if keep else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``[N, C]`` or ``[N, C, L]`` inputs, as PyTorch's ``BatchNorm1d``.

    See :class:`BatchNorm2d`.

    >>> bn = nn.BatchNorm1d(3)
    >>> y = bn(np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32))
    >>> np.round(y.numpy(), 4)                    # each column: mean 0, variance 1
    array([[-1.,  0.,  1.],
           [ 1.,  0., -1.]], dtype=float32)
    >>> bn.running_var                            # 0.9 * 1 + 0.1 * unbiased variance (2, 0, 2)
    tensor([1.1, 0.9, 1.1], dtype=float32)
    """

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of ``[N, C, H, W]`` inputs per channel, as PyTorch's ``BatchNorm2d``.

    In training mode each channel is normalised by the batch's mean and (biased) variance
    over ``N, H, W``, and the running statistics are updated:
    ``running = (1 - momentum) * running + momentum * batch`` with the unbiased variance
    (``momentum=None``: a cumulative average), and ``num_batches_tracked`` counts the
    batches. In eval mode the running statistics normalise. Then ``* weight + bias``.

    Parameters
    ----------
    num_features : int
        The number of channels C.
    eps : float
        Added to the variance.
    momentum : float or None
    affine : bool
        Learn ``weight`` (starts at 1) and ``bias`` (starts at 0).
    track_running_stats : bool
        Keep ``running_mean``, ``running_var`` and ``num_batches_tracked`` buffers; without
        them, batch statistics are used in eval mode too.
    bias : bool (keyword)
        With ``affine``, whether to learn the bias too (PyTorch 2.x's keyword).
    dtype : float dtype
        Of the parameters and running statistics (float32 by default).

    Examples
    --------
    >>> bn = nn.BatchNorm2d(16)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    _ndims = (4,)


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere, as PyTorch's ``LeakyReLU``.

    ``inplace`` is accepted for compatibility and ignored (minigrad computes out of place).

    >>> nn.LeakyReLU(0.2)(minigrad.tensor([-1.0, 2.0]))
    tensor([-0.2,  2. ], dtype=float32)
    """

    def __init__(self, negative_slope=0.01, inplace=False):
        self.negative_slope = real(negative_slope, "negative_slope")
        self.inplace = flag(inplace, "inplace")

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


# ---------------------------------------------------------------------------------------------
# Loss modules
# ---------------------------------------------------------------------------------------------
class MSELoss(Module):
    """Module form of :func:`minigrad.nn.mse_loss`.

    >>> nn.MSELoss()(minigrad.tensor([1.0, 2.0]), minigrad.tensor([0.0, 4.0]))
    tensor(2.5, dtype=float32)
    """

    def __init__(self, *, reduction="mean"):
        self.reduction = _check_reduction(reduction)

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class L1Loss(MSELoss):
    """Module form of :func:`minigrad.nn.l1_loss`."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(Module):
    """Module form of :func:`minigrad.nn.binary_cross_entropy_with_logits`.

    >>> loss = nn.BCEWithLogitsLoss(pos_weight=np.array([2.0]))
    >>> round(float(loss(minigrad.tensor([[0.0]]), [[1.0]])), 4)     # 2 log 2
    1.3863
    """

    def __init__(self, weight=None, *, reduction="mean", pos_weight=None):
        self.weight = _loss_weight(weight, "weight")
        self.reduction = _check_reduction(reduction)
        self.pos_weight = _loss_weight(pos_weight, "pos_weight")

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class NLLLoss(Module):
    """Module form of :func:`minigrad.nn.nll_loss`."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        self.weight = _loss_weight(weight, "weight")
        self.ignore_index = _check_ignore_index(ignore_index)
        self.reduction = _check_reduction(reduction)

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)

    def extra_repr(self):
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}"
