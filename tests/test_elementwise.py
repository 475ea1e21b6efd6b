"""The elementwise kernels (kernels/_elementwise.pyx) against float64 numpy references."""
import numpy as np
import pytest

from minigrad import _elementwise


def tanh_grad_reference(g, x):
    """g sech^2(x) in float64, written differently from the kernel (cosh, not exp)."""
    with np.errstate(over="ignore"):
        return g.astype(np.float64) / np.cosh(x.astype(np.float64)) ** 2


def sigmoid_grad_reference(g, x):
    """g s(x) s(-x) in float64 as exp(-softplus(x) - softplus(-x)) (the kernel uses exp(-|x|))."""
    x = x.astype(np.float64)
    with np.errstate(invalid="ignore"):                     # at NaN
        return g.astype(np.float64) * np.exp(-np.logaddexp(0.0, x) - np.logaddexp(0.0, -x))


KERNELS = [(_elementwise.tanh_grad_f32, tanh_grad_reference),
           (_elementwise.sigmoid_grad_f32, sigmoid_grad_reference)]


@pytest.mark.parametrize("kernel, reference", KERNELS)
def test_grad_kernels_are_within_half_an_ulp(kernel, reference):
    rng = np.random.default_rng(0)
    magnitudes = 10.0 ** rng.uniform(-40, 2, 200_000)     # tiny to where sech^2 underflows
    x = (magnitudes * rng.choice([-1.0, 1.0], magnitudes.size)).astype(np.float32)
    g = (rng.standard_normal(x.size) * 10.0 ** rng.uniform(-3, 3, x.size)).astype(np.float32)
    out = np.empty_like(x)
    kernel(g, x, out)
    want = reference(g, x)
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    # half an ulp of float32, plus the reference's and the kernel's float64 errors
    assert (np.abs(out - want) <= 0.5 * spacing * (1 + 1e-6)).all()


@pytest.mark.parametrize("kernel, reference", KERNELS)
def test_grad_kernels_special_values_and_layouts(kernel, reference):
    x = np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-45, 9.0, 60.0, -100.0])
    out = np.empty_like(x)
    kernel(np.ones_like(x), x, out)
    np.testing.assert_array_equal(out, reference(np.ones_like(x), x).astype(np.float32))
    at_zero = 1.0 if kernel is _elementwise.tanh_grad_f32 else 0.25
    assert out[0] == out[1] == 0 and np.isnan(out[2]) and out[3] == out[4] == at_zero
    x.flags.writeable = False                      # inputs may be read-only
    kernel(np.ones_like(x), x, out)
    for bad in (np.ones(9), np.ones(8, np.float32), np.ones(18, np.float32)[::2]):
        with pytest.raises(ValueError, match="upstream must be a C-contiguous float32 array of 9"):
            kernel(bad, x, out)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be a C-contiguous writeable float32"):
        kernel(np.ones_like(x), x, out)
