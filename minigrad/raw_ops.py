"""TensorFlow's ``tf.raw_ops`` shape of the fused cross-entropy: both outputs, 2-D only.

Both functions return the tuple ``(loss, backprop)``; both outputs are differentiable, and the
labels of the dense op receive gradients (``-log_softmax(features)`` times the loss's
upstream), as TensorFlow's raw op does.
"""

from .nn._xent import (_as_class_indices, _as_dense_labels, _as_logits, _check_name, fused_dense,
                       fused_sparse)

__all__ = ["SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits"]


def _as_features(features):
    features = _as_logits(features, "features")
    if features.ndim != 2:
        raise ValueError(f"features must be a matrix [batch_size, num_classes], got shape {features.shape}")
    if features.shape[1] == 0:
        raise ValueError(f"features must have at least one class, got shape {features.shape}")
    return features


def SoftmaxCrossEntropyWithLogits(*, features, labels, name=None):
    """Softmax cross-entropy cost and the gradient to backpropagate, for probability labels.

    Parameters
    ----------
    features : Tensor or array_like, shape [batch_size, num_classes]
        Logits, float16, bfloat16 (with ml_dtypes), float32 or float64.
    labels : Tensor or array_like
        Same shape and dtype: a probability distribution per row.
    name : str, optional
        Unused.

    Returns
    -------
    (loss, backprop) : tuple of Tensor
        ``loss`` [batch_size] and ``backprop = softmax(features) - labels``
        [batch_size, num_classes], both of the features' dtype.

    Examples
    --------
    >>> loss, backprop = minigrad.raw_ops.SoftmaxCrossEntropyWithLogits(
    ...     features=[[0.0, 0.0]], labels=[[1.0, 0.0]])
    >>> loss, backprop
    (tensor([0.6931472], dtype=float32), tensor([[-0.5,  0.5]], dtype=float32))
    """
    _check_name(name)
    features = _as_features(features)
    return fused_dense(features, _as_dense_labels(labels, features))


def SparseSoftmaxCrossEntropyWithLogits(*, features, labels, name=None):
    """Softmax cross-entropy cost and the gradient to backpropagate, for class-index labels.

    Parameters
    ----------
    features : Tensor or array_like, shape [batch_size, num_classes]
        Logits, float16, bfloat16 (with ml_dtypes), float32 or float64.
    labels : array_like of int32 or int64, shape [batch_size]
        Each in ``[0, num_classes)``; a label out of range is a ``ValueError``.
    name : str, optional
        Unused.

    Returns
    -------
    (loss, backprop) : tuple of Tensor
        ``loss`` [batch_size] and ``backprop = softmax(features) - one_hot(labels)``.

    Examples
    --------
    >>> loss, backprop = minigrad.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
    ...     features=[[0.0, 0.0]], labels=[1])
    >>> backprop
    tensor([[ 0.5, -0.5]], dtype=float32)
    """
    _check_name(name)
    features = _as_features(features)
    labels = _as_class_indices(labels)
    if labels.shape != features.shape[:1]:
        raise ValueError(
            f"labels must be a vector [batch_size] = ({features.shape[0]},) for features of shape "
            f"{features.shape}, got labels of shape {labels.shape}"
        )
    return fused_sparse(features, labels)
