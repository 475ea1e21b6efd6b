"""The elementwise kernels (kernels/_elementwise.pyx) against float64 numpy references."""
import numpy as np
import pytest

from minigrad import _elementwise


def tanh_grad_reference(g, x):
    """g sech^2(x) in float64, written differently from the kernel (cosh, not exp)."""
    with np.errstate(over="ignore"):
        return g.astype(np.float64) / np.cosh(x.astype(np.float64)) ** 2


def test_tanh_grad_f32_is_within_half_an_ulp():
    rng = np.random.default_rng(0)
    magnitudes = 10.0 ** rng.uniform(-40, 2, 200_000)     # tiny to where sech^2 underflows
    x = (magnitudes * rng.choice([-1.0, 1.0], magnitudes.size)).astype(np.float32)
    g = (rng.standard_normal(x.size) * 10.0 ** rng.uniform(-3, 3, x.size)).astype(np.float32)
    out = np.empty_like(x)
    _elementwise.tanh_grad_f32(g, x, out)
    want = tanh_grad_reference(g, x)
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    # half an ulp of float32, plus the reference's and the kernel's float64 errors
    assert (np.abs(out - want) <= 0.5 * spacing * (1 + 1e-6)).all()


def test_tanh_grad_f32_special_values_and_layouts():
    x = np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-45, 9.0, 60.0, -100.0])
    out = np.empty_like(x)
    _elementwise.tanh_grad_f32(np.ones_like(x), x, out)
    np.testing.assert_array_equal(out, tanh_grad_reference(np.ones_like(x), x).astype(np.float32))
    assert out[0] == out[1] == 0 and np.isnan(out[2]) and out[3] == out[4] == 1
    x.flags.writeable = False                      # inputs may be read-only
    _elementwise.tanh_grad_f32(np.ones_like(x), x, out)
    for bad in (np.ones(9), np.ones(8, np.float32), np.ones(18, np.float32)[::2]):
        with pytest.raises(ValueError, match="upstream must be a C-contiguous float32 array of 9"):
            _elementwise.tanh_grad_f32(bad, x, out)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be a C-contiguous writeable float32"):
        _elementwise.tanh_grad_f32(np.ones_like(x), x, out)
