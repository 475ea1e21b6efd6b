"""How exact the cross-entropy kernels are, dtype by dtype (issue 7, and issue 9 item 2).

* the dense float32 rows over 16 classes: ``y * (x - max)`` formed in double (issue 9).

Imports the installed package only.
"""
import numpy as np
import pytest

from minigrad._kernels import dense_loss_backprop
from minigrad._xent_reference import dense_loss_backprop_reference


# ---- issue 9: dense float32 rows over 16 classes -------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_huge_span_is_finite_on_both_row_paths(dtype):
    """x = [3e38, -3e38, ...], y = [0.999, 0.001, 0, ...]: loss 0.001 * 6e38 on every row
    length (the short rows formed y * (x - max) in double, the long ones overflowed)."""
    dtype = np.dtype(dtype)
    losses = []
    for classes in range(1, 41):
        x = np.full((1, classes), -3e38).astype(dtype)
        x[0, 0] = 3e38
        y = np.zeros((1, classes), dtype)
        y[0, :2] = [0.999, 0.001][:classes]
        loss, backprop = dense_loss_backprop(x, y)
        want_loss, want_backprop = dense_loss_backprop_reference(x, y)
        np.testing.assert_array_equal(loss, want_loss)
        np.testing.assert_array_equal(backprop, want_backprop)
        losses.append(float(loss[0]))
    y_1 = float(np.array(0.001).astype(dtype))
    expected = float(np.array(y_1 * (float(x[0, 0]) - float(x[0, 1]))).astype(dtype))
    assert losses == [0.0] + [expected] * 39 and np.isfinite(expected)
