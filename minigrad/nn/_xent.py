"""The fused softmax cross-entropy: TensorFlow's three functions and the tape nodes behind them.

One kernel call (``minigrad._kernels``, Cython, one pass per row) gives both the per-example
``loss`` and the ``backprop`` = softmax(logits) - labels. Two nodes record them, as TensorFlow's
op has two outputs:

* ``XentLoss`` (the loss) keeps the ``backprop`` tensor; its VJP is ``upstream[..., None] *
  backprop`` for the logits and, when labels receive gradients (v2), ``-upstream[..., None] *
  log_softmax(logits)`` for the labels.
* ``XentBackprop`` (the backprop) has its own VJP through the softmax Jacobian:
  for a cotangent ``G``, ``softmax * (G - sum(G * softmax))`` for the logits and ``-G`` for the
  labels. Since ``XentLoss``'s VJP multiplies by this recorded tensor, differentiating the
  gradient again (``create_graph=True``) goes through that Jacobian: second derivatives are
  right, not the silent zero of treating the cached backprop as a constant.

``fused_dense(..., labels_grad="v1"|"v2")`` is the switch between TensorFlow's versions: **v1**
treats the labels as constants, **v2** lets gradients flow into them. The public functions
only validate, move the class axis last, flatten to ``[batch, classes]`` (with recorded
reshapes, so gradients map back to the caller's layout) and pick the version.
"""

import math

import numpy as np

from .. import _kernels, _ops
from .._autograd import Op, graph_private_buffers, stop_gradient
from .._dtypes import opmath
from .._ops import astype
from .._tensor import Tensor, _to_array

__all__ = [
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2",
    "sparse_softmax_cross_entropy_with_logits",
]

_INDICES = (np.dtype(np.int32), np.dtype(np.int64))


class XentBackprop(Op):
    """backprop = scale * (softmax(logits) - labels), computed by the kernel (``value``).

    ``scale`` is 1 for TensorFlow's functions and the raw ops; the PyTorch-style helpers fold
    their reduction into it (1/N for a mean), so that the loss's backward can hand this very
    array to the logits. A cotangent reaches this node only when a gradient is differentiated
    again: the loss's VJP multiplies by this tensor.
    """

    opmath = False  # the kernel computes in float32 or wider and rounds once

    def __init__(self, value, stats, scale=1.0):
        self.value, self.stats, self.scale = value, stats, scale

    def forward(self, logits, labels=None):
        return self.value

    def vjp(self, g, out):
        # d(softmax - labels) = (diag(s) - s s^T) dlogits - dlabels, times scale. s is formed
        # from the logits and the kernel's row statistics (float64, rounded once), recorded
        # so that higher orders work; out + labels would cancel in float16. The product runs
        # in float32 or wider and the base class rounds it once.
        logits = self.inputs[0]
        if self.scale != 1:
            g = g * self.scale
        g_logits = None
        if self.needs[0]:
            wide = opmath(logits.dtype)
            s = _ops.SoftmaxGivenStats.apply(astype(logits, wide), axis=-1, stats=self.stats)
            g = astype(g, wide)
            g_logits = s * (g - (g * s).sum(axis=-1, keepdims=True))
        return (g_logits,) if len(self.inputs) == 1 else (g_logits, -g)


class XentLoss(Op):
    """loss = sum_j labels_j * (logsumexp(logits) - logits_j) per row, computed by the kernel.

    ``private`` says that nothing outside the graph holds the backprop tensor (TensorFlow's
    functions and the PyTorch-style helpers return only the loss; the raw ops return the
    backprop too). Then, when the walk records nothing and frees the graph, the common
    backward, a uniform upstream equal to the backprop's ``scale`` (a ``.sum()`` of
    TensorFlow's loss, or the helpers' own reduction), hands the cached array to the logits as
    their gradient: no [N, C] pass at all.
    """

    opmath = False  # the kernel computes in float32 or wider and rounds once

    def __init__(self, value, backprop, stats, scale=1.0, private=False):
        self.value, self.backprop, self.stats = value, backprop, stats
        self.scale, self.private = scale, private

    def forward(self, logits, labels=None):
        return self.value

    def vjp(self, g, out):
        # d loss / d logits = softmax - labels = backprop / scale;
        # d loss / d labels = -log_softmax(logits), from the kernel's row statistics.
        g_logits = None
        if self.needs[0]:
            g_logits = self._handed_over(g)
            if g_logits is None:
                g_col = (g if self.scale == 1 else g / self.scale).reshape(g.shape + (1,))
                g_logits = g_col * self.backprop
        if len(self.inputs) == 1:
            return (g_logits,)
        g_labels = None
        if self.needs[1]:
            logits = self.inputs[0]
            wide = opmath(logits.dtype)
            log_softmax = _ops.LogSoftmaxGivenStats.apply(astype(logits, wide), axis=-1,
                                                          stats=self.stats)
            g_labels = -astype(g, wide).reshape(g.shape + (1,)) * log_softmax
        return g_logits, g_labels

    def _handed_over(self, g):
        """The cached backprop itself as the logits' gradient, when that is safe, else None."""
        if not (self.private and graph_private_buffers()):
            return None
        upstream = g.data
        if upstream.shape != self.value.shape or upstream.size == 0:
            return None
        first = upstream.flat[0]
        if first != self.scale or not (upstream == first).all():
            return None
        return Tensor._wrap(self.backprop.data)


def _fused(logits, labels, loss, backprop, stats, scale, private):
    """Record the kernel's outputs as the two nodes (labels may be None: sparse)."""
    inputs = (logits,) if labels is None else (logits, labels)
    backprop = XentBackprop.apply(*inputs, value=backprop, stats=stats, scale=scale)
    loss = XentLoss.apply(*inputs, value=loss, backprop=backprop, stats=stats, scale=scale,
                          private=private)
    return loss, backprop


def fused_dense(logits, labels, *, labels_grad="v2", scale=1.0, private=False):
    """(loss, backprop) tensors for 2-D ``logits`` and probability ``labels`` of one dtype.

    ``labels_grad`` is the switch between TensorFlow's two versions: ``"v1"`` treats the
    labels as constants, ``"v2"`` lets gradients flow into them. ``scale`` multiplies the
    backprop (a reduction known at the call); ``private`` says the caller never hands the
    backprop out (see ``XentLoss``).
    """
    if labels_grad == "v1":
        labels = stop_gradient(labels)
    elif labels_grad != "v2":
        raise ValueError(f"labels_grad must be 'v1' or 'v2', got {labels_grad!r}")
    loss, backprop, stats = _kernels.dense_loss_backprop(logits.data, labels.data, scale=scale)
    return _fused(logits, labels, loss, backprop, stats, scale, private)


def fused_sparse(logits, labels, labels_shape=None, *, scale=1.0, private=False):
    """(loss, backprop) tensors for 2-D ``logits`` and 1-D class-index ``labels`` (an array);
    ``scale`` and ``private`` as for :func:`fused_dense`."""
    loss, backprop, stats = _kernels.sparse_loss_backprop(logits.data, labels, labels_shape,
                                                          scale=scale)
    return _fused(logits, None, loss, backprop, stats, scale, private)


# -- validation -------------------------------------------------------------------------------
def _as_logits(logits, what="logits"):
    if isinstance(logits, Tensor):
        t = logits
    elif isinstance(logits, np.ndarray) and logits.dtype in _kernels.LOGIT_DTYPES:
        t = Tensor._wrap(logits)  # no copy: the kernels never write their inputs
    else:  # array-likes, and arrays of other dtypes or byte orders: converted (a copy)
        t = Tensor._wrap(_to_array(logits, None, what))
    if t.dtype not in _kernels.LOGIT_DTYPES:
        raise TypeError(f"{what} must be {_kernels.LOGIT_NAMES}, got {t.dtype}")
    if t.ndim == 0:
        raise ValueError(f"{what} must have rank >= 1 (a class axis), got a scalar")
    return t


def _as_dense_labels(labels, logits):
    if type(labels) is np.ndarray and labels.dtype == logits.dtype:
        t = Tensor._wrap(labels)  # no copy: the kernels never write their inputs
    elif isinstance(labels, (Tensor, np.ndarray, np.generic)):
        t = labels if isinstance(labels, Tensor) else Tensor._wrap(_to_array(labels, None, "labels"))
        if t.dtype != logits.dtype:
            raise TypeError(
                f"labels and logits must have the same dtype, got labels {t.dtype} and logits "
                f"{logits.dtype}"
            )
    else:  # nested lists and Python numbers take the logits' dtype
        t = Tensor._wrap(_to_array(labels, logits.dtype, "labels"))
    if t.shape != logits.shape:
        raise ValueError(
            f"labels and logits must have the same shape, got labels {t.shape} and logits "
            f"{logits.shape}"
        )
    return t


def _index_array(labels, what="labels"):
    """Class-index ``labels`` as a numeric array in native byte order (no copy for an array
    that already is one); Python floats read as numpy reads them, ``[]`` as int64."""
    if type(labels) is np.ndarray and labels.dtype in _INDICES:
        return labels
    if isinstance(labels, Tensor):
        return labels.data
    array = _to_array(labels, None, what, python_floats=np.dtype(np.float64))
    if array.size == 0 and not isinstance(labels, (np.ndarray, np.generic)):
        array = array.astype(np.int64)  # [] is a float64 array to numpy
    return array


def _as_class_indices(labels):
    """Sparse ``labels`` as an int32/int64 array in native byte order (no copy when they
    already are one), else a TypeError naming ``labels``."""
    array = _index_array(labels)
    if array.dtype not in _INDICES:
        raise TypeError(
            f"labels must be int32 or int64 class indices, got {array.dtype}; for "
            f"probability labels use softmax_cross_entropy_with_logits"
        )
    return array


def _class_axis(axis, ndim, keyword):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{keyword} must be an int, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{keyword}={axis} is out of range for logits of rank {ndim}")
    return int(axis) % ndim


def _check_name(name):
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a string or None, got {type(name).__name__}")


def _dense(labels, logits, axis, keyword, labels_grad):
    logits = _as_logits(logits)
    labels = _as_dense_labels(labels, logits)
    axis = _class_axis(axis, logits.ndim, keyword)
    if logits.shape[axis] == 0:
        raise ValueError(f"logits must have at least one class, got shape {logits.shape} with "
                         f"class axis {axis}")
    if axis != logits.ndim - 1:  # move the class axis last, keeping the others in order
        order = tuple(i for i in range(logits.ndim) if i != axis) + (axis,)
        logits, labels = logits.transpose(order), labels.transpose(order)
    batch_shape, classes = logits.shape[:-1], logits.shape[-1]
    batch = math.prod(batch_shape)
    loss, _ = fused_dense(logits.reshape(batch, classes), labels.reshape(batch, classes),
                          labels_grad=labels_grad, private=True)
    return loss.reshape(batch_shape)


def softmax_cross_entropy_with_logits(*, labels, logits, dim=-1, name=None):
    """Softmax cross-entropy between ``logits`` and probability ``labels`` (TensorFlow's v1).

    For each example, ``loss = -sum_j labels_j * log_softmax(logits)_j``. Gradients flow into
    ``logits`` only: ``labels`` are constants (use :func:`softmax_cross_entropy_with_logits_v2`
    to differentiate them too). Arguments are keyword-only, as in TensorFlow.

    Parameters
    ----------
    labels : array_like
        Same shape and dtype as ``logits``; each slice along ``dim`` should be a probability
        distribution. If it is not, the loss is still ``-sum labels * log_softmax`` and the
        gradient is ``softmax - labels``, which is then not the gradient of a proper
        cross-entropy (TensorFlow warns of the same).
    logits : Tensor or array_like
        Unscaled log-probabilities, float16, bfloat16 (with ml_dtypes), float32 or float64,
        rank >= 1. Do not pass the
        output of a softmax. Python floats become float32.
    dim : int
        The class axis (default: the last).
    name : str, optional
        Accepted for TensorFlow compatibility; unused.

    Returns
    -------
    Tensor
        The loss, of ``logits``' dtype and shape with ``dim`` removed.

    Notes
    -----
    Computed by a fused Cython kernel (one pass per row, OpenMP threads). A ``-inf`` logit gets
    probability 0; where its label is exactly 0, the term contributes 0 (its limit), where
    TensorFlow computes ``0 * inf = NaN``. A NaN in a row, a ``+inf`` logit or a row of only
    ``-inf`` gives that row a NaN loss and gradient.

    Examples
    --------
    >>> logits = minigrad.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
    >>> labels = [[1.0, 0.0, 0.0], [0.0, 0.8, 0.2]]
    >>> loss = minigrad.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    >>> np.round(loss.numpy(), 4)
    array([0.417, 0.66 ], dtype=float32)
    >>> loss.sum().backward()           # logits.grad is softmax(logits) - labels
    """
    _check_name(name)
    return _dense(labels, logits, dim, "dim", labels_grad="v1")


def softmax_cross_entropy_with_logits_v2(*, labels, logits, axis=-1, name=None):
    """Softmax cross-entropy where gradients flow into ``labels`` too (TensorFlow's v2).

    Same loss as :func:`softmax_cross_entropy_with_logits`; in addition, when ``labels`` is a
    tensor that requires grad (or is watched by a tape), it receives
    ``d loss / d labels = -log_softmax(logits)``. Wrap labels in
    :func:`minigrad.stop_gradient` to get v1's behaviour.

    Parameters
    ----------
    labels, logits, name
        As in :func:`softmax_cross_entropy_with_logits`.
    axis : int
        The class axis (default: the last).

    Examples
    --------
    >>> logits = minigrad.tensor([[0.0, 0.0]])
    >>> labels = minigrad.tensor([[0.25, 0.75]], requires_grad=True)
    >>> loss = minigrad.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
    >>> loss.backward()
    >>> labels.grad                     # -log_softmax = log 2
    tensor([[0.6931472, 0.6931472]], dtype=float32)
    """
    _check_name(name)
    return _dense(labels, logits, axis, "axis", labels_grad="v2")


def sparse_softmax_cross_entropy_with_logits(*, labels, logits, name=None):
    """Softmax cross-entropy against one class index per example (TensorFlow's sparse form).

    Parameters
    ----------
    labels : array_like of int32 or int64
        Shape ``[d_0, ..., d_{r-1}]``, each entry a class index in ``[0, num_classes)``. A label
        out of range is a ``ValueError`` naming its value and position. Labels never receive
        gradients.
    logits : Tensor or array_like
        Shape ``[d_0, ..., d_{r-1}, num_classes]``, float16, bfloat16 (with ml_dtypes),
        float32 or float64.
    name : str, optional
        Accepted for TensorFlow compatibility; unused.

    Returns
    -------
    Tensor
        The loss, of ``labels``' shape and ``logits``' dtype.

    Examples
    --------
    >>> logits = minigrad.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], requires_grad=True)
    >>> loss = minigrad.nn.sparse_softmax_cross_entropy_with_logits(labels=[0, 1], logits=logits)
    >>> np.round(loss.numpy(), 4)
    array([0.417, 0.22 ], dtype=float32)
    >>> loss.mean().backward()          # logits.grad is (softmax(logits) - one_hot) / 2
    """
    _check_name(name)
    logits = _as_logits(logits)
    label_array = _as_class_indices(labels)
    if label_array.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have the shape of logits without its last (class) axis: got labels "
            f"{label_array.shape} (rank {label_array.ndim}) and logits {logits.shape} (rank "
            f"{logits.ndim}), expected labels {logits.shape[:-1]}"
        )
    classes = logits.shape[-1]
    if classes == 0:
        raise ValueError(f"logits must have at least one class, got shape {logits.shape}")
    batch = label_array.size
    loss, _ = fused_sparse(logits.reshape(batch, classes), label_array.reshape(batch),
                           label_array.shape, private=True)
    return loss.reshape(label_array.shape)
