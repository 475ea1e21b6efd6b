"""Plain numpy reference for the cross-entropy kernels, for tests and readers.

Written differently from the kernels on purpose: float64 throughout, numpy's
exp, each row's sum of exps exactly rounded (``math.fsum``, so the reference's
own error stays near an ulp of float64 however long the row: tests hold even
the float64 kernels to a few ulps against it), log-softmax formed explicitly,
and the special rows spelled out as rules instead of falling out of the
arithmetic. Slow and obviously right.

Rules shared with the kernels:

* a row whose log-sum-exp is not finite (it holds a NaN, a +inf, or only
  -inf logits) has NaN loss and NaN backprop, and NaN stats; other rows are
  unaffected;
* a -inf logit has probability 0; in the dense loss a label of exactly 0 there
  contributes 0 (the limit of y log p), not 0 * inf = NaN as in TensorFlow;
* float16 and bfloat16 logits are computed in float32 and rounded once: here the
  float64 result is rounded to float32 (what the kernels' float32 arithmetic
  approximates), then to the logits' dtype (round to nearest even).
"""
import math

import numpy as np

from minigrad import _dtypes

__all__ = ["dense_loss_backprop_reference", "sparse_loss_backprop_reference",
           "row_stats_reference"]


def _log_softmax(logits):
    return _shifted_and_log_sum(logits)[0]


def _shifted_and_log_sum(logits):
    """(x - max, log(sum(exp(x - max)))) per row in float64; NaN rows where the log-sum-exp
    is not finite."""
    x = np.asarray(logits).astype(np.float64)   # exact for every float dtype, bfloat16 too
    if x.shape[0] == 0:
        return x.copy(), np.empty((0, 1))
    # Shift by the row max first: x - logsumexp(x) would lose the absolute precision of a
    # large logsumexp (at 3e4 its ulp is 7e-12, which shows in probabilities near 1).
    # inf - inf, log(0): the rows set to NaN below; a float64 span past its max overflows
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        shifted = x - x.max(axis=1, keepdims=True)
        sums = np.array([[math.fsum(row)] for row in np.exp(shifted)])   # NaN rows: NaN
        log_sum = np.log(sums)
        log_p = shifted - log_sum
    bad_rows = ~np.isfinite(log_sum[:, 0])     # NaN, +inf (inf - inf), only -inf (log 0)
    log_p[bad_rows] = np.nan
    log_sum[bad_rows] = np.nan
    return log_p, log_sum


def _rounded(values, dtype):
    """float64 ``values`` rounded to ``dtype``, through float32 for float16/bfloat16."""
    with np.errstate(invalid="ignore", over="ignore"):   # NaN and overflow casts are wanted
        return values.astype(_dtypes.opmath(dtype)).astype(dtype)


def row_stats_reference(logits):
    """[rows, 2] float64: each row's max logit and ``log(sum_k exp(logits_k - max))``, NaN
    for both where the log-sum-exp is not finite; see minigrad._kernels.dense_loss_backprop."""
    x = np.asarray(logits).astype(np.float64)
    _, log_sum = _shifted_and_log_sum(x)
    maxes = x.max(axis=1, keepdims=True) if x.shape[0] else np.empty((0, 1))
    return np.hstack([np.where(np.isnan(log_sum), np.nan, maxes), log_sum])


def dense_loss_backprop_reference(logits, labels):
    """(loss, backprop) for probability-row labels; see minigrad._kernels.dense_loss_backprop."""
    log_p = _log_softmax(logits)
    y = np.asarray(labels).astype(np.float64)
    with np.errstate(invalid="ignore"):
        terms = np.where((y == 0) & (log_p == -np.inf), 0.0, -y * log_p)
    loss = terms.sum(axis=1)
    backprop = np.exp(log_p) - y
    dtype = np.asarray(logits).dtype
    return _rounded(loss, dtype), _rounded(backprop, dtype)


def sparse_loss_backprop_reference(logits, labels, labels_shape=None):
    """(loss, backprop) for class-index labels; see minigrad._kernels.sparse_loss_backprop."""
    log_p = _log_softmax(logits)
    labels = np.asarray(labels)
    batch, classes = log_p.shape
    for row, label in enumerate(labels):
        if not 0 <= label < classes:
            where = np.unravel_index(row, labels.shape if labels_shape is None else labels_shape)
            raise ValueError(f"labels[{', '.join(map(str, where)) or '()'}] = {label} is out of range: "
                             f"expected a class index in [0, {classes})")
    one_hot = np.zeros_like(log_p)
    one_hot[np.arange(batch), labels] = 1.0
    loss = -log_p[np.arange(batch), labels]
    backprop = np.exp(log_p) - one_hot
    dtype = np.asarray(logits).dtype
    return _rounded(loss, dtype), _rounded(backprop, dtype)
