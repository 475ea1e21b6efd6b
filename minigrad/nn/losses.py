"""PyTorch-style loss helpers on top of the fused softmax cross-entropy node.

The TensorFlow-named functions of :mod:`minigrad.nn` return one loss per example; these
helpers add the ``reduction`` that PyTorch users expect: ``"mean"`` (the default) averages
over the examples, ``"sum"`` adds them up, ``"none"`` returns them unchanged.
"""

import numpy as np

from .. import _ops
from .._autograd import Op
from .._checks import integer, real
from .. import _dtypes
from .._dtypes import is_float
from .._tensor import Tensor, _float_tensor, _operand
from ._xent import (_as_logits, _index_array, fused_dense, fused_sparse,
                    softmax_cross_entropy_with_logits,
                    softmax_cross_entropy_with_logits_v2)

__all__ = ["cross_entropy", "soft_cross_entropy", "nll_loss", "mse_loss", "l1_loss",
           "binary_cross_entropy_with_logits"]

_REDUCTIONS = ("mean", "sum", "none")
_LABEL_GRADIENTS = ("v1", "v2")


def _check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction


def _check_ignore_index(ignore_index, name=""):
    """``ignore_index`` as an int (PyTorch's default is -100), else a TypeError naming it."""
    return integer(ignore_index, f"{name}ignore_index")


def _check_smoothing(label_smoothing):
    """``label_smoothing`` as a real number in [0, 1], else an error naming it."""
    smoothing = real(label_smoothing, "label_smoothing")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    return smoothing


def _loss_weight(value, what):
    """A loss module's weight as a constant tensor (a buffer, in PyTorch's state_dict), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError(f"{what} must be an array of weights or None, got the string {value!r} "
                        f"(pass reduction= by keyword)")
    return value if isinstance(value, Tensor) else Tensor(value)


def _reduce(loss, reduction, weight=None):
    """``loss`` reduced; with ``weight``, "mean" is the weighted sum over the sum of weights."""
    if reduction == "mean":
        return loss.mean() if weight is None else loss.sum() / weight.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def _mean_scale(count, dtype):
    """The cotangent a mean over ``count`` losses of ``dtype`` hands each of them: 1 / count as
    the division computes it (in the op-math type, rounded once to ``dtype``)."""
    if count == 0:
        return 1.0
    wide = _dtypes.opmath(dtype)
    return float((np.ones((), wide) / np.asarray(count, wide)).astype(dtype))


class _ClassRows:
    """Logits (or log-probabilities) and class targets as PyTorch lays them out, checked.

    ``input`` is ``[N, C]``, ``[N, C, d1, ...]`` (class axis 1) or ``[C]``; ``target`` has the
    shape without the class axis. ``kept_logits()`` gives ``[B, C]`` rows with the class axis
    last and the ignored targets' rows left out, ``kept_target`` their targets.
    """

    def __init__(self, name, input, target, weight, ignore_index, input_name="input"):
        ignore_index = _check_ignore_index(ignore_index, f"{name}: ")
        x = _as_logits(input, input_name)
        t = _index_array(target, "target")
        if t.dtype.kind not in "iu":
            raise TypeError(f"{name}: target must hold integer class indices, got dtype {t.dtype}")
        expected = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        if t.shape != expected:
            raise ValueError(f"{name}: target must have the input's shape without the class "
                             f"axis (axis 1), {expected}; got input {x.shape} and target {t.shape}")
        classes = x.shape[1] if x.ndim > 1 else x.shape[0]
        if classes == 0:
            raise ValueError(f"{name}: input must have at least one class, got shape {x.shape}")
        if x.ndim > 2:  # the class axis last, the others in order
            x = x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))
        self.x = x.reshape(-1, classes)
        self.target_shape = t.shape
        flat = t.reshape(-1).astype(np.int64)
        keep = flat != ignore_index
        bad = keep & ((flat < 0) | (flat >= classes))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = ", ".join(map(str, np.unravel_index(i, t.shape))) if t.ndim else ""
            raise ValueError(f"{name}: target[{where}] = {flat[i]} is out of range: expected a "
                             f"class index in [0, {classes}) or ignore_index={ignore_index}")
        self.rows = None if keep.all() else np.flatnonzero(keep)
        self.kept_target = flat if self.rows is None else flat[self.rows]
        self.weight = None
        if weight is not None:
            w = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
            if not is_float(w.dtype) and w.dtype.kind not in "iu":
                raise TypeError(f"{name}: weight must be numeric, got dtype {w.dtype}")
            if w.shape != (classes,):
                raise ValueError(f"{name}: weight must have one entry per class, shape "
                                 f"({classes},), got {w.shape}")
            self.weight = w.astype(self.x.dtype)

    def kept_logits(self):
        return self.x if self.rows is None else self.x[self.rows]

    def reduce(self, loss, reduction):
        """Per-kept-row ``loss`` reduced PyTorch's way (ignored rows: 0, and not counted)."""
        if reduction == "none":
            if self.rows is not None:  # zeros at the ignored positions
                loss = _ops.IndexAdd.apply(loss, shape=(self.x.shape[0],), index=self.rows)
            return loss.reshape(self.target_shape)
        if reduction == "sum":
            return loss.sum()
        if self.weight is None:
            count = len(self.kept_target)
        else:
            count = self.weight[self.kept_target].sum(dtype=np.float64)
        if count == 0:  # every target ignored: 0 / 0, NaN as in PyTorch (zero gradients)
            return loss.sum() * np.asarray(np.nan, dtype=loss.dtype)
        if self.weight is None:
            return loss.mean()
        # a weak Python float: not rounded to a float16 loss's dtype before the division
        return loss.sum() / float(count)


def cross_entropy(logits, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, _input_name="logits"):
    """Softmax cross-entropy of ``logits`` against integer class indices ``target``.

    PyTorch's ``cross_entropy`` for class-index targets, on the fused kernel: one node gives
    the loss and its gradient ``softmax(logits) - labels`` in one pass.

    Parameters
    ----------
    logits : Tensor or array_like, shape [N, C], [N, C, d1, ...] or [C]
        Unnormalised scores. As in PyTorch the class axis is 1 (0 for unbatched ``[C]``).
    target : array_like of int32/int64, shape [N], [N, d1, ...] or []
        The class of each example, in ``[0, C)``, or ``ignore_index``.
    weight : array_like, shape [C], optional
        A weight per class: each example's loss is multiplied by its target's weight, and
        "mean" divides by the sum of those weights instead of the count.
    ignore_index : int
        Targets equal to it contribute nothing (loss 0 under "none") and are not counted by
        "mean". If every target is ignored, "mean" is NaN, as in PyTorch.
    reduction : {"mean", "sum", "none"}
        How to combine the per-example losses.
    label_smoothing : float in [0, 1]
        Mixes the one-hot target with the uniform distribution: the target becomes
        ``(1 - label_smoothing) * one_hot + label_smoothing / C``. Computed by the fused dense
        kernel against that target, so it costs one pass too.

    Returns
    -------
    Tensor
        A scalar for "mean" and "sum", the per-example losses (the target's shape) for "none".

    Examples
    --------
    >>> logits = minigrad.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    >>> loss = nn.cross_entropy(logits, np.array([0, 2]))
    >>> round(float(loss), 4)      # mean of log(1 + 2 e^-2) and log 3
    0.6691
    >>> loss.backward()
    >>> logits.grad.shape
    (2, 3)
    >>> round(float(nn.cross_entropy(logits, np.array([0, -100]))), 4)   # the second ignored
    0.2395
    >>> round(float(nn.cross_entropy(logits, np.array([0, 2]), label_smoothing=0.1)), 4)
    0.7357
    """
    reduction = _check_reduction(reduction)
    smoothing = _check_smoothing(label_smoothing)
    target_dtype = _index_array(target, "target").dtype
    if target_dtype.kind == "f":
        raise TypeError(f"cross_entropy takes integer class indices, got {target_dtype} targets; "
                        f"for probability targets use nn.soft_cross_entropy")
    rows = _ClassRows("cross_entropy", logits, target, weight, ignore_index, _input_name)
    x, t = rows.kept_logits(), rows.kept_target
    if smoothing == 0.0:
        # A plain mean folds 1/N into the kernel's backprop, which the backward then hands
        # to the logits as their gradient without another pass (nn._xent.XentLoss).
        scale = _mean_scale(len(t), x.dtype) if reduction == "mean" and rows.weight is None else 1.0
        loss, _ = fused_sparse(x, t, scale=scale, private=True)
        if rows.weight is not None:
            loss = loss * rows.weight[t]
    else:
        # -sum_c q_c log_softmax_c with q = (1 - s) w_t one_hot + (s / C) w (w = 1 unweighted):
        # PyTorch's (1 - s) nll + (s / C) sum_c -w_c log_softmax_c, as one dense target.
        classes = x.shape[1]
        w = np.ones(classes, x.dtype) if rows.weight is None else rows.weight
        q = np.repeat((smoothing / classes) * w[None, :], len(t), axis=0)
        q[np.arange(len(t)), t] += (1 - smoothing) * w[t]
        total = q.sum(axis=1)
        # The fused node's gradient, softmax - labels, is the loss's only for labels summing to
        # 1: with class weights, normalise the rows and scale the losses back.
        probs = q / np.where(total > 0, total, 1)[:, None]
        scale = _mean_scale(len(t), x.dtype) if reduction == "mean" and rows.weight is None else 1.0
        loss, _ = fused_dense(x, Tensor._wrap(probs.astype(x.dtype)), labels_grad="v1",
                              scale=scale, private=True)
        if rows.weight is not None:
            loss = loss * total.astype(x.dtype)
    return rows.reduce(loss, reduction)


def soft_cross_entropy(logits, target_probs, *, reduction="mean", label_gradients="v1"):
    """Softmax cross-entropy of ``logits`` against probability rows ``target_probs``.

    ``-sum_j target_probs[j] * log_softmax(logits)[j]`` per example.

    Parameters
    ----------
    logits : Tensor or array_like, shape [batch, classes]
        Unnormalised scores.
    target_probs : Tensor or array_like, shape [batch, classes]
        A probability distribution per row (soft labels, e.g. a teacher's softmax).
    reduction : {"mean", "sum", "none"}
        How to combine the per-example losses.
    label_gradients : {"v1", "v2"}
        ``"v1"`` treats the targets as constants, as TensorFlow's
        ``softmax_cross_entropy_with_logits`` does: no gradient reaches whatever computed
        them. ``"v2"`` lets the gradient ``-log_softmax(logits)`` flow into the targets, as
        ``softmax_cross_entropy_with_logits_v2`` does, for targets that are themselves
        being learned.

    Returns
    -------
    Tensor
        A scalar for "mean" and "sum", the ``[batch]`` losses for "none".

    Examples
    --------
    >>> logits = minigrad.tensor([[0.0, 0.0]], requires_grad=True)
    >>> soft = minigrad.tensor([[0.25, 0.75]], requires_grad=True)
    >>> loss = nn.soft_cross_entropy(logits, soft, label_gradients="v2")
    >>> loss.backward()
    >>> soft.grad                  # -log_softmax(logits) = log 2
    tensor([[0.6931472, 0.6931472]], dtype=float32)
    """
    reduction = _check_reduction(reduction)
    if not isinstance(label_gradients, str) or label_gradients not in _LABEL_GRADIENTS:
        raise ValueError(f"label_gradients must be 'v1' or 'v2', got {label_gradients!r}")
    fn = softmax_cross_entropy_with_logits if label_gradients == "v1" else \
        softmax_cross_entropy_with_logits_v2
    return _reduce(fn(labels=target_probs, logits=logits), reduction)


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class ``target`` under log-probabilities ``input``.

    PyTorch's ``nll_loss``: the loss of an example is ``-weight[t] * input[t]`` (``weight``
    1 by default); "mean" divides the sum by the sum of the kept examples' weights.
    ``cross_entropy(x, t)`` is ``nll_loss(log_softmax(x, axis=1), t)``.

    Parameters
    ----------
    input : Tensor, shape [N, C], [N, C, d1, ...] or [C]
        Log-probabilities, class axis 1.
    target, weight, ignore_index, reduction
        As in :func:`cross_entropy`.

    Examples
    --------
    >>> logp = minigrad.tensor(np.log([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    >>> round(float(nn.nll_loss(logp, np.array([0, 1]))), 4)    # -(log 0.5 + log 0.8) / 2
    0.4581
    >>> round(float(nn.nll_loss(logp, np.array([0, 1]), weight=np.array([3.0, 1.0, 1.0]))), 4)
    0.5756
    """
    reduction = _check_reduction(reduction)
    rows = _ClassRows("nll_loss", input, target, weight, ignore_index)
    x, t = rows.kept_logits(), rows.kept_target
    loss = -x[np.arange(len(t)), t]
    if rows.weight is not None:
        loss = loss * rows.weight[t]
    return rows.reduce(loss, reduction)


def _regression_pair(name, input, target, weight):
    x = _float_tensor(input, f"{name}: input")
    y = target if isinstance(target, Tensor) else Tensor(target, dtype=x.dtype)
    if y.shape != x.shape:
        # PyTorch broadcasts here with a warning; a silent [N, 1] vs [N] broadcast is a
        # classic bug, so minigrad refuses.
        raise ValueError(f"{name}: target must have the input's shape {x.shape}, got {y.shape}")
    if weight is not None:
        weight = _operand(weight)
        if weight.shape != x.shape:
            raise ValueError(f"{name}: weight must have the input's shape {x.shape}, "
                             f"got {weight.shape}")
    return x, y, weight


def mse_loss(input, target, *, reduction="mean", weight=None):
    """Squared error ``(input - target) ** 2``, reduced (PyTorch's ``mse_loss``).

    ``target`` must have ``input``'s shape (PyTorch would broadcast with a warning); it may
    require grad. ``weight`` (same shape) multiplies each term, and "mean" then divides by
    ``weight.sum()``.

    Examples
    --------
    >>> nn.mse_loss(minigrad.tensor([1.0, 2.0]), minigrad.tensor([0.0, 4.0]))   # (1 + 4) / 2
    tensor(2.5, dtype=float32)
    """
    reduction = _check_reduction(reduction)
    x, y, weight = _regression_pair("mse_loss", input, target, weight)
    diff = x - y
    loss = diff * diff
    return _reduce(loss if weight is None else loss * weight, reduction, weight)


def l1_loss(input, target, *, reduction="mean", weight=None):
    """Absolute error ``|input - target|``, reduced (PyTorch's ``l1_loss``).

    Arguments as :func:`mse_loss`. The gradient at ``input == target`` is 0.

    Examples
    --------
    >>> nn.l1_loss(minigrad.tensor([1.0, 2.0]), minigrad.tensor([0.0, 4.0]), reduction="sum")
    tensor(3., dtype=float32)
    """
    reduction = _check_reduction(reduction)
    x, y, weight = _regression_pair("l1_loss", input, target, weight)
    loss = (x - y).abs()
    return _reduce(loss if weight is None else loss * weight, reduction, weight)


class Softplus(Op):
    """``log(1 + exp(x))``, computed as ``logaddexp(0, x)`` (no overflow, no cancellation)."""

    def forward(self, x):
        return np.logaddexp(np.zeros((), x.dtype), x)

    def vjp(self, g, out):  # d softplus(x) = sigmoid(x) dx
        return (g * self.inputs[0].sigmoid(),)


def binary_cross_entropy_with_logits(input, target, weight=None, *, reduction="mean",
                                     pos_weight=None):
    """Binary cross-entropy of ``sigmoid(input)`` against ``target`` probabilities, stably.

    Per element ``-[p t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]``, computed as
    ``p t softplus(-x) + (1 - t) softplus(x)`` with ``softplus(z) = logaddexp(0, z)``: no
    ``sigmoid(x)`` is formed, no term overflows and, unlike PyTorch's equivalent
    ``(1 - t) x + (1 + (p - 1) t) softplus(-x)``, no two large terms cancel (at ``x = -50``,
    ``t = 0`` the loss is ``2e-22``, not 0).

    Parameters
    ----------
    input : Tensor
        Logits, any shape.
    target : Tensor or array_like
        Probabilities in [0, 1], ``input``'s shape; may require grad.
    weight : array_like, optional
        Rescales each element's loss; broadcast to ``input``'s shape.
    reduction : {"mean", "sum", "none"}
        "mean" is the plain mean over elements (PyTorch does not divide by ``weight``'s sum here).
    pos_weight : array_like, optional
        ``p``, the weight of the positive term, broadcast along the last (class) axis.

    Examples
    --------
    >>> x = minigrad.tensor([0.0, 100.0, -100.0])
    >>> loss = nn.binary_cross_entropy_with_logits(x, [1.0, 1.0, 1.0], reduction="none")
    >>> loss.numpy()                          # log 2, e^-100 (no cancellation), 100
    array([6.931472e-01, 3.783506e-44, 1.000000e+02], dtype=float32)
    """
    reduction = _check_reduction(reduction)
    x = _float_tensor(input, "binary_cross_entropy_with_logits: input")
    y = target if isinstance(target, Tensor) else Tensor(target, dtype=x.dtype)
    if y.shape != x.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target must have the input's shape "
                         f"{x.shape}, got {y.shape}")
    positive = y * Softplus.apply(-x)          # -y log sigmoid(x)
    if pos_weight is not None:
        positive = positive * _broadcasting(pos_weight, x, "pos_weight")
    loss = positive + (1 - y) * Softplus.apply(x)   # -(1 - y) log(1 - sigmoid(x))
    if weight is not None:
        loss = loss * _broadcasting(weight, x, "weight")
    return _reduce(loss, reduction)


def _broadcasting(value, x, what):
    """``value`` as a tensor that broadcasts to ``x``'s shape, else a ValueError naming it."""
    value = _operand(value)
    try:
        np.broadcast_shapes(value.shape, x.shape)
    except ValueError:
        raise ValueError(f"binary_cross_entropy_with_logits: {what} of shape {value.shape} does "
                         f"not broadcast to the input's shape {x.shape}") from None
    return value
