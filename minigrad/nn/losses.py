"""PyTorch-style loss helpers on top of the fused softmax cross-entropy node.

The TensorFlow-named functions of :mod:`minigrad.nn` return one loss per example; these
helpers add the ``reduction`` that PyTorch users expect: ``"mean"`` (the default) averages
over the examples, ``"sum"`` adds them up, ``"none"`` returns them unchanged.
"""


from .. import _dtypes
from ._xent import (_index_array, softmax_cross_entropy_with_logits, softmax_cross_entropy_with_logits_v2,
                    sparse_softmax_cross_entropy_with_logits)

__all__ = ["cross_entropy", "soft_cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")
_LABEL_GRADIENTS = ("v1", "v2")


def _check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def cross_entropy(logits, target, *, reduction="mean"):
    """Softmax cross-entropy of ``logits`` against integer class indices ``target``.

    Built on :func:`minigrad.nn.sparse_softmax_cross_entropy_with_logits` (one fused node:
    the loss and its gradient ``softmax(logits) - one_hot(target)`` in one pass).

    Parameters
    ----------
    logits : Tensor or array_like, shape [batch, classes]
        Unnormalised scores.
    target : array_like of int32/int64, shape [batch]
        The class of each example, in ``[0, classes)``.
    reduction : {"mean", "sum", "none"}
        How to combine the per-example losses.

    Returns
    -------
    Tensor
        A scalar for "mean" and "sum", the ``[batch]`` losses for "none".

    Examples
    --------
    >>> logits = minigrad.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    >>> loss = nn.cross_entropy(logits, np.array([0, 2]))
    >>> round(float(loss), 4)      # mean of log(1 + 2 e^-2) and log 3
    0.6691
    >>> loss.backward()
    >>> logits.grad.shape
    (2, 3)
    """
    reduction = _check_reduction(reduction)
    target = _index_array(target, "target")
    if _dtypes.is_float(target.dtype) or target.dtype.kind == "f":
        raise TypeError(f"cross_entropy takes integer class indices, got {target.dtype} targets; "
                        f"for probability targets use nn.soft_cross_entropy")
    return _reduce(sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits), reduction)


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
