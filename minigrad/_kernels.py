"""The thin array layer between the tape node and the compiled kernels (``minigrad._xent``).

Arrays in, arrays out; no Tensors. Validation here is light (the public
functions in ``minigrad.nn`` and ``minigrad.raw_ops`` do the user-facing
checks): it guards the kernels' assumptions, namely 2-D C-contiguous inputs,
matching shapes and dtypes, and ``classes >= 1``.
"""
import numpy as np

from minigrad import _dtypes, _xent
from minigrad._config import threads_for

__all__ = ["dense_loss_backprop", "sparse_loss_backprop", "LOGIT_DTYPES", "LOGIT_NAMES"]

_I32, _I64 = np.dtype(np.int32), np.dtype(np.int64)

# dtype(s) -> (kernel, whether the logits travel as uint16 bits: Cython has no half or
# bfloat16 type). One dict lookup picks both; comparing dtypes with ``==`` per argument
# cost more than a short kernel call (~0.5 us per call at [128, 10], measured).
# bfloat16 only with the optional ml_dtypes (_dtypes.bfloat16 is None without it).
_DENSE = {dtype: entry for dtype, entry in [
    (_dtypes.float16, (_xent.dense_f16, True)),
    (_dtypes.bfloat16, (_xent.dense_bf16, True)),
    (_dtypes.float32, (_xent.dense_f32, False)),
    (_dtypes.float64, (_xent.dense_f64, False)),
] if dtype is not None}
_SPARSE = {(dtype, index): entry for dtype, index, entry in [
    (_dtypes.float16, _I32, (_xent.sparse_f16_i32, True)),
    (_dtypes.float16, _I64, (_xent.sparse_f16_i64, True)),
    (_dtypes.bfloat16, _I32, (_xent.sparse_bf16_i32, True)),
    (_dtypes.bfloat16, _I64, (_xent.sparse_bf16_i64, True)),
    (_dtypes.float32, _I32, (_xent.sparse_f32_i32, False)),
    (_dtypes.float32, _I64, (_xent.sparse_f32_i64, False)),
    (_dtypes.float64, _I32, (_xent.sparse_f64_i32, False)),
    (_dtypes.float64, _I64, (_xent.sparse_f64_i64, False)),
] if dtype is not None}

LOGIT_DTYPES = tuple(_DENSE)
LOGIT_NAMES = ", ".join(str(d) for d in LOGIT_DTYPES[:-1]) + f" or {LOGIT_DTYPES[-1]}"


def _c_aligned(a):
    """``a`` itself when C-contiguous and aligned (the kernels take typed C pointers), else
    a copy that is."""
    if a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.require(a, requirements="CA")


def _check_logits(logits):
    if not isinstance(logits, np.ndarray):
        raise TypeError(f"logits must be a numpy array, got {type(logits).__name__}")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D [batch, classes], got shape {logits.shape}")
    if logits.shape[1] < 1:
        raise ValueError(f"logits must have at least one class, got shape {logits.shape}")
    if logits.dtype not in _DENSE:
        raise TypeError(f"logits must be {LOGIT_NAMES}, got {logits.dtype}")


def dense_loss_backprop(logits, labels, scale=1.0):
    """Softmax cross-entropy against probability rows, with its gradient.

    Parameters
    ----------
    logits : ndarray, shape [batch, classes], float16, bfloat16 (with ml_dtypes), float32
        or float64. float16 and bfloat16 are computed in float32 and rounded once.
    labels : ndarray, same shape and dtype as logits
    scale : float
        Multiplies the backprop (a reduction folded in: 1/N for a mean), inside the kernel's
        pass over the row; not the loss, not the stats. ``scale=1`` gives bit for bit the
        unscaled backprop, and a power of two scales it exactly (barring under/overflow).

    Returns
    -------
    loss : ndarray [batch], ``sum_j labels_j * (logsumexp(logits) - logits_j)``
    backprop : ndarray [batch, classes], ``scale * (softmax(logits) - labels)``
    stats : ndarray [batch, 2], float64: each row's max logit ``m`` and
        ``log(sum_k exp(logits_k - m))``, as the kernel computed them (in float32 for
        float16/bfloat16). ``logsumexp = m + stats[:, 1]``, and ``-log_softmax(logits)_j =
        (m - logits_j) + stats[:, 1]`` can be formed in float64 and rounded once. Both are
        NaN for a row whose log-sum-exp is not finite (a NaN or +inf logit, or only -inf).

    Examples
    --------
    >>> import numpy as np
    >>> loss, backprop, stats = dense_loss_backprop(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]]))
    >>> loss, backprop
    (array([0.69314718]), array([[-0.5,  0.5]]))
    >>> stats            # max 0, log(e^0 + e^0) = log 2
    array([[0.        , 0.69314718]])
    """
    _check_logits(logits)
    if not isinstance(labels, np.ndarray) or labels.dtype != logits.dtype:
        raise TypeError(f"labels must be a numpy array of the logits' dtype {logits.dtype}, "
                        f"got {getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.shape != logits.shape:
        raise ValueError(f"labels shape {labels.shape} does not match logits shape {logits.shape}")
    logits = _c_aligned(logits)   # copies only if needed; inputs are never written
    labels = _c_aligned(labels)
    loss, backprop, stats = _xent.empty_outputs(logits)
    kernel, bits = _DENSE[logits.dtype]
    if bits:
        kernel(logits.view(np.uint16), labels.view(np.uint16), loss.view(np.uint16),
               backprop.view(np.uint16), stats, threads_for(logits.size), scale)
    else:
        kernel(logits, labels, loss, backprop, stats, threads_for(logits.size), scale)
    return loss, backprop, stats


def sparse_loss_backprop(logits, labels, labels_shape=None, scale=1.0):
    """Softmax cross-entropy against one class index per row, with its gradient.

    Parameters
    ----------
    logits : ndarray, shape [batch, classes], float16, bfloat16, float32 or float64
    labels : ndarray, shape [batch], int32 or int64, each in ``[0, classes)``
    labels_shape : tuple, optional
        The caller's original label shape (``labels`` is its flattening); only
        used to report where a bad label is.
    scale : float
        Multiplies the backprop, as in ``dense_loss_backprop``.

    Returns
    -------
    loss : ndarray [batch], ``logsumexp(logits) - logits[label]``
    backprop : ndarray [batch, classes], ``scale * (softmax(logits) - one_hot(labels))``
    stats : ndarray [batch, 2], float64: max and log-sum per row, as in
        ``dense_loss_backprop``

    Raises
    ------
    ValueError
        If a label is outside ``[0, classes)``, naming the first such value and
        its index in ``labels_shape``. Nothing is returned.

    Examples
    --------
    >>> import numpy as np
    >>> loss, backprop, stats = sparse_loss_backprop(np.array([[0.0, 0.0]]), np.array([0]))
    >>> loss, backprop
    (array([0.69314718]), array([[-0.5,  0.5]]))
    """
    _check_logits(logits)
    found = _SPARSE.get((logits.dtype, labels.dtype)) if isinstance(labels, np.ndarray) else None
    if found is None:   # logits' dtype is fine (checked above), so the labels' is not
        raise TypeError(f"labels must be a numpy array of int32 or int64, "
                        f"got {getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels shape {labels.shape} does not match logits shape {logits.shape}: "
                         f"expected ({logits.shape[0]},)")
    logits = _c_aligned(logits)
    labels = _c_aligned(labels)
    loss, backprop, stats = _xent.empty_outputs(logits)
    kernel, bits = found
    if bits:
        bad = kernel(logits.view(np.uint16), labels, loss.view(np.uint16), backprop.view(np.uint16),
                     stats, threads_for(logits.size), scale)
    else:
        bad = kernel(logits, labels, loss, backprop, stats, threads_for(logits.size), scale)
    if bad >= 0:
        shape = labels.shape if labels_shape is None else tuple(labels_shape)
        position = ", ".join(str(int(k)) for k in np.unravel_index(bad, shape)) or "()"
        raise ValueError(f"labels[{position}] = {labels[bad]} is out of range: "
                         f"expected a class index in [0, {logits.shape[1]})")
    return loss, backprop, stats
