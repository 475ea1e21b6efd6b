"""Convolution, pooling, batch norm, Flatten and LeakyReLU against slow numpy references.

Each reference loops over output positions (nothing shared with the im2col, fold or fused
code under test); gradients are checked by finite differences in float64 (gradcheck) and so
are second derivatives (gradgradcheck). Where PyTorch is installed, further tests compare
outputs, gradients, running statistics and state dicts with it, given the same weights.
"""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigrad
from minigrad import nn
from minigrad.nn import functional as F

from torch_or_skip import needs_torch, t64, torch


# -- references --------------------------------------------------------------------------------
def conv_ref(x, w, b, stride, pads, dilation, groups):
    """Direct convolution: for each output element, the sum of a padded patch times a kernel."""
    d = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    n, c = x.shape[:2]
    o, cg, kernel = w.shape[0], w.shape[1], w.shape[2:]
    out = [(xp.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(d)]
    y = np.zeros((n, o, *out))
    for ni, oi in itertools.product(range(n), range(o)):
        g = oi // (o // groups)
        for pos in itertools.product(*map(range, out)):
            idx = tuple(slice(p * s, p * s + dl * (k - 1) + 1, dl)
                        for p, s, dl, k in zip(pos, stride, dilation, kernel))
            patch = xp[(ni, slice(g * cg, (g + 1) * cg)) + idx]
            y[(ni, oi) + pos] = np.sum(patch * w[oi]) + (0 if b is None else b[oi])
    return y


def pool_out(n, k, s, p, dl, ceil):
    span = n + 2 * p - dl * (k - 1) - 1
    o = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o


def max_pool_ref(x, kernel, stride, pads, dilation, ceil):
    """Max over each window (padding never wins); the first maximum's flat index."""
    n, c, *spatial = x.shape
    out = [pool_out(*a, ceil) for a in zip(spatial, kernel, stride, pads, dilation)]
    y, idx = np.zeros((n, c, *out)), np.zeros((n, c, *out), dtype=np.int64)
    for ni, ci in itertools.product(range(n), range(c)):
        for pos in itertools.product(*map(range, out)):
            best, where = -np.inf, None
            for off in itertools.product(*map(range, kernel)):
                at = [p * s - pd + o * dl for p, s, pd, o, dl in zip(pos, stride, pads, off, dilation)]
                if all(0 <= a < m for a, m in zip(at, spatial)):
                    v = x[(ni, ci) + tuple(at)]
                    if where is None or v > best:
                        best, where = v, at
            y[(ni, ci) + pos] = best
            idx[(ni, ci) + pos] = np.ravel_multi_index(where, spatial)
    return y, idx


def avg_pool_ref(x, kernel, stride, pads, ceil, count_include_pad, divisor=None):
    n, c, *spatial = x.shape
    out = [pool_out(m, k, s, p, 1, ceil) for m, k, s, p in zip(spatial, kernel, stride, pads)]
    y = np.zeros((n, c, *out))
    for ni, ci in itertools.product(range(n), range(c)):
        for pos in itertools.product(*map(range, out)):
            total, inside, padded = 0.0, 0, 0
            for off in itertools.product(*map(range, kernel)):
                at = [p * s - pd + o for p, s, pd, o in zip(pos, stride, pads, off)]
                if all(0 <= a < m for a, m in zip(at, spatial)):
                    total += x[(ni, ci) + tuple(at)]
                    inside += 1
                if all(-pd <= a < m + pd for a, m, pd in zip(at, spatial, pads)):
                    padded += 1
            y[(ni, ci) + pos] = total / (divisor or (padded if count_include_pad else inside))
    return y


def batch_norm_ref(x, mean, var, w, b, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)


# -- convolution -------------------------------------------------------------------------------
CONV_CASES = [  # d, x shape, out channels, kernel, stride, padding, dilation, groups
    (2, (2, 3, 5, 6), 4, (3, 3), 1, 0, 1, 1),
    (2, (2, 4, 7, 6), 6, (3, 2), (2, 1), (1, 2), (2, 1), 2),
    (2, (1, 4, 5, 5), 4, (2, 2), 2, 1, 1, 4),          # depthwise, stride 2, padding 1
    (2, (2, 2, 4, 5), 3, (1, 1), 1, 0, 1, 1),          # 1x1
    (2, (1, 2, 6, 5), 2, (3, 3), 1, "same", 2, 1),     # same, dilated: pads (2, 2)
    (2, (1, 2, 5, 4), 2, (2, 3), 1, "same", 1, 1),     # same with odd totals: extra after
    (2, (1, 2, 5, 4), 2, (2, 2), 1, "valid", 1, 1),
    (2, (1, 2, 3, 4), 2, (2, 2), 1, (3, 2), 1, 1),     # padding beyond the kernel: zeros all round
    (1, (2, 3, 9), 4, (3,), 2, 1, 1, 1),
    (1, (1, 4, 8), 2, (2,), 1, 2, 3, 2),
    (1, (1, 2, 6), 2, (4,), 1, "same", 1, 2),
]


def _pads(padding, d, kernel, dilation):
    dilation = (dilation,) * d if isinstance(dilation, int) else dilation
    if padding == "valid":
        return [(0, 0)] * d
    if padding == "same":
        totals = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    padding = (padding,) * d if isinstance(padding, int) else padding
    return [(p, p) for p in padding]


def _conv_case(case, rng, bias=True):
    d, xshape, o, kernel, stride, padding, dilation, groups = case
    x = rng.standard_normal(xshape)
    w = rng.standard_normal((o, xshape[1] // groups) + kernel)
    b = rng.standard_normal(o) if bias else None
    tup = lambda v: (v,) * d if isinstance(v, int) else v  # noqa: E731
    ref = conv_ref(x, w, b, tup(stride), _pads(padding, d, kernel, dilation), tup(dilation), groups)
    fn = F.conv1d if d == 1 else F.conv2d
    return x, w, b, ref, lambda x, w, *b: fn(x, w, b[0] if b else None, stride, padding, dilation, groups)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_direct_reference(case):
    rng = np.random.default_rng(0)
    x, w, b, ref, fn = _conv_case(case, rng)
    y = fn(t64(x), t64(w), t64(b))
    assert y.shape == ref.shape and y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    # float32: the same within float32 rounding, and float32 out
    y32 = fn(minigrad.tensor(x.astype(np.float32)), minigrad.tensor(w.astype(np.float32)),
             minigrad.tensor(b.astype(np.float32)))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.numpy(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gradients_first_and_second_order(case):
    rng = np.random.default_rng(1)
    x, w, b, _, fn = _conv_case(case, rng)
    inputs = [t64(x), t64(w), t64(b)]
    assert minigrad.gradcheck(fn, inputs)
    assert minigrad.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[4], CONV_CASES[7]])
def test_conv_in_batches_of_one_sample_gives_the_same_values_and_gradients(case, monkeypatch):
    # im2col works through the batch a few samples at a time; force one sample per batch.
    from minigrad.nn import _conv
    rng = np.random.default_rng(5)
    x, w, b, ref, fn = _conv_case(case, rng)
    inputs = [t64(x), t64(w), t64(b)]
    y = fn(*inputs)
    u = minigrad.tensor(rng.standard_normal(y.shape))
    whole = minigrad.grad(y, inputs, [u])
    monkeypatch.setattr(_conv, "COLUMN_BYTES", 1)
    y1 = fn(*inputs)
    np.testing.assert_allclose(y1.numpy(), ref, rtol=1e-12, atol=1e-12)
    for a, c in zip(minigrad.grad(y1, inputs, [u]), whole):
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-12, atol=1e-12)
    assert minigrad.gradgradcheck(fn, [t64(x[:1]), t64(w), t64(b)])


def test_conv_without_bias_and_unbatched_input():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((3, 5, 5)), rng.standard_normal((2, 3, 3, 3))
    y = F.conv2d(t64(x), t64(w), padding=1)
    assert y.shape == (2, 5, 5)
    np.testing.assert_allclose(y.numpy(), conv_ref(x[None], w, None, (1, 1), [(1, 1)] * 2, (1, 1), 1)[0],
                               rtol=1e-12)
    assert minigrad.gradgradcheck(lambda x, w: F.conv2d(x, w, padding=1), [t64(x[:, :3, :3]), t64(w)])


def test_conv_third_derivative_through_the_three_ops():
    # d/dx of a second derivative: the ops' VJPs keep calling each other correctly.
    rng = np.random.default_rng(3)
    x, w = t64(rng.standard_normal((1, 2, 4, 4))), t64(rng.standard_normal((2, 2, 2, 2)))

    def second(x, w):
        y = F.conv2d(x, w, stride=2, padding=1)
        (gx,) = minigrad.grad((y * y * y).sum(), x, create_graph=True)
        return gx
    assert minigrad.gradgradcheck(second, [x, w])


def test_conv_output_is_a_channels_last_view_and_next_ops_accept_it():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    y = nn.Conv2d(3, 5, 3, padding=1, rng=0)(x)
    assert y.shape == (2, 5, 4, 4) and y.data.strides[1] == y.data.itemsize
    np.testing.assert_array_equal(y.relu().numpy(), np.maximum(y.numpy(), 0))


@given(st.data())
@settings(max_examples=25, deadline=None)
def test_conv2d_random_geometry_matches_reference(data):
    groups = data.draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(2))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(2))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(2))
    padding = tuple(data.draw(st.integers(0, 2)) for _ in range(2))
    spatial = tuple(data.draw(st.integers(max(1, dl * (k - 1) + 1 - 2 * p), 7))
                    for k, dl, p in zip(kernel, dilation, padding))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    x = rng.standard_normal((data.draw(st.integers(1, 2)), c_in) + spatial)
    w = rng.standard_normal((c_out, c_in // groups) + kernel)
    xt, wt = t64(x), t64(w)
    y = F.conv2d(xt, wt, None, stride, padding, dilation, groups)
    ref = conv_ref(x, w, None, stride, [(p, p) for p in padding], dilation, groups)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    # gradients against the reference's: d<y, u>/dx by the adjoint identity <conv(x), u> linear
    u = rng.standard_normal(ref.shape)
    gx, gw = minigrad.grad(y, [xt, wt], [minigrad.tensor(u)])
    eps = 1e-6
    i = tuple(rng.integers(0, n) for n in x.shape)
    bump = np.zeros_like(x)
    bump[i] = eps
    numeric = np.sum((conv_ref(x + bump, w, None, stride, [(p, p) for p in padding], dilation, groups) - ref) * u) / eps
    assert gx.numpy()[i] == pytest.approx(numeric, rel=1e-5, abs=1e-6)
    assert gw.shape == w.shape


def test_conv_errors_name_the_argument():
    x = t64(np.zeros((1, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"input has 4 channels.*expects 6"):
        F.conv2d(x, t64(np.zeros((2, 3, 3, 3))), groups=2)
    with pytest.raises(ValueError, match=r"divisible by groups \(3\)"):
        F.conv2d(x, t64(np.zeros((2, 4, 3, 3))), groups=3)
    with pytest.raises(ValueError, match=r"weight must have shape .*got shape \(2, 4, 3\)"):
        F.conv2d(x, t64(np.zeros((2, 4, 3))))
    with pytest.raises(ValueError, match=r"input must have shape"):
        F.conv2d(t64(np.zeros((5, 5))), t64(np.zeros((2, 4, 3, 3))))
    with pytest.raises(ValueError, match=r"stride must be >= 1, got 0"):
        F.conv2d(x, t64(np.zeros((2, 4, 3, 3))), stride=0)
    with pytest.raises(ValueError, match=r"padding must be >= 0, got \(1, -1\)"):
        F.conv2d(x, t64(np.zeros((2, 4, 3, 3))), padding=(1, -1))
    with pytest.raises(TypeError, match=r"dilation must be an int or a tuple of 2 ints, got float"):
        F.conv2d(x, t64(np.zeros((2, 4, 3, 3))), dilation=1.5)
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1"):
        F.conv2d(x, t64(np.zeros((2, 4, 3, 3))), stride=2, padding="same")
    with pytest.raises(ValueError, match=r"'full'"):
        F.conv2d(x, t64(np.zeros((2, 4, 3, 3))), padding="full")
    with pytest.raises(ValueError, match=r"smaller than the dilated kernel \(7, 7\)"):
        F.conv2d(x, t64(np.zeros((2, 4, 4, 4))), dilation=2)
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        F.conv2d(x, t64(np.zeros((2, 4, 3, 3))), t64(np.zeros(3)))
    with pytest.raises(TypeError, match=r"input must be a floating-point tensor, got dtype int64"):
        F.conv2d(np.zeros((1, 4, 5, 5), dtype=np.int64), t64(np.zeros((2, 4, 3, 3))))


def test_conv_modules_init_shapes_and_errors():
    conv = nn.Conv2d(4, 6, (3, 2), groups=2, rng=0)
    assert conv.weight.shape == (6, 2, 3, 2) and conv.bias.shape == (6,)
    bound = 1 / math.sqrt(2 * 3 * 2)   # fan_in = in_channels / groups * kH * kW
    big = nn.Conv2d(64, 64, 3, rng=0)
    assert np.abs(big.weight.data).max() <= 1 / math.sqrt(64 * 9)
    assert np.std(big.weight.data) == pytest.approx(1 / math.sqrt(64 * 9) / math.sqrt(3), rel=0.02)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.bias.data).max() <= bound
    assert conv.weight.dtype == np.float32
    assert nn.Conv2d(4, 6, 3, rng=7).weight.data.tobytes() == nn.Conv2d(4, 6, 3, rng=7).weight.data.tobytes()
    assert nn.Conv2d(2, 2, 3, bias=False, rng=0).bias is None
    assert nn.Conv1d(3, 5, 4, rng=0).weight.shape == (5, 3, 4)
    assert repr(nn.Conv2d(2, 4, 3, padding=1, groups=2, bias=False, rng=0)) == \
        "Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2, bias=False)"
    with pytest.raises(ValueError, match=r"padding_mode='reflect' is not supported"):
        nn.Conv2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"padding='same' needs stride 1"):
        nn.Conv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"in_channels must be >= 1"):
        nn.Conv2d(0, 4, 3)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a tuple of 2 ints"):
        nn.Conv2d(2, 4, (3, 3, 3))


# -- pooling -------------------------------------------------------------------------------
MAX_CASES = [  # x shape, kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 6, 6), (2, 2), None, 0, 1, False),
    ((1, 2, 7, 5), (3, 2), (2, 1), (1, 1), 1, False),
    ((1, 2, 7, 7), (3, 3), 2, 1, 1, True),
    ((1, 1, 8, 7), (2, 3), (3, 2), 0, (2, 1), True),
    ((2, 2, 5, 6), 2, 2, 1, 1, True),
]


def _tup(v, d=2):
    return (v,) * d if isinstance(v, int) else v


@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool2d_matches_reference_with_indices_and_gradients(case):
    xshape, kernel, stride, padding, dilation, ceil = case
    x = np.random.default_rng(0).permutation(np.prod(xshape)).reshape(xshape) / 7.0  # no ties
    ref, ref_idx = max_pool_ref(x, _tup(kernel), _tup(stride or kernel), _tup(padding),
                                _tup(dilation), ceil)
    fn = lambda x: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil)  # noqa: E731
    y, idx = F.max_pool2d(t64(x), kernel, stride, padding, dilation, ceil_mode=ceil,
                          return_indices=True)
    np.testing.assert_array_equal(y.numpy(), ref)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    assert idx.dtype == np.int64
    y32 = fn(minigrad.tensor(x.astype(np.float32)))
    assert y32.dtype == np.float32 and np.allclose(y32.numpy(), ref, rtol=1e-6)
    small = t64(x[:1, :1])
    assert minigrad.gradcheck(fn, [small]) and minigrad.gradgradcheck(fn, [small])


def test_max_pool_ties_go_to_the_first_maximum_and_nan_wins():
    x = t64(np.array([[[[1.0, 3.0, 2.0, 2.0], [3.0, 0.0, 2.0, 2.0]]]]))
    y = F.max_pool2d(x, 2)
    y.backward(minigrad.tensor(np.array([[[[10.0, 20.0]]]])))
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 10, 20, 0], [0, 0, 0, 0]]]])
    z = F.max_pool2d(minigrad.tensor(np.array([[[[1.0, np.nan], [5.0, 2.0]]]])), 2)
    assert np.isnan(z.numpy()).all()


def test_max_pool1d_and_unbatched_and_integer_input():
    x = np.array([[[1.0, 5.0, 2.0, 4.0, 3.0]]])
    np.testing.assert_array_equal(F.max_pool1d(t64(x), 2).numpy(), [[[5.0, 4.0]]])
    np.testing.assert_array_equal(F.max_pool1d(t64(x), 2, ceil_mode=True).numpy(), [[[5.0, 4.0, 3.0]]])
    np.testing.assert_array_equal(F.max_pool2d(t64(np.arange(16.0).reshape(1, 4, 4)), 2).numpy(),
                                  [[[5.0, 7.0], [13.0, 15.0]]])
    assert F.max_pool2d(np.arange(16).reshape(1, 1, 4, 4), 2).dtype == np.int64


AVG_CASES = [  # x shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    ((2, 3, 6, 6), 2, None, 0, False, True, None),
    ((1, 2, 7, 5), (3, 2), (2, 1), (1, 1), False, True, None),
    ((1, 2, 7, 5), (3, 2), (2, 1), (1, 1), False, False, None),
    ((1, 2, 7, 7), 3, 2, 1, True, True, None),
    ((1, 2, 7, 7), 3, 2, 1, True, False, None),
    ((1, 1, 6, 5), (2, 3), (2, 2), (1, 0), True, True, None),
    ((1, 2, 5, 5), 2, 1, 1, False, True, 3),
]


@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool2d_matches_reference_and_gradients(case):
    xshape, kernel, stride, padding, ceil, count_pad, divisor = case
    x = np.random.default_rng(1).standard_normal(xshape)
    ref = avg_pool_ref(x, _tup(kernel), _tup(stride or kernel), _tup(padding), ceil, count_pad, divisor)
    fn = lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil, count_pad, divisor)  # noqa: E731
    np.testing.assert_allclose(fn(t64(x)).numpy(), ref, rtol=1e-12)
    assert np.allclose(fn(minigrad.tensor(x.astype(np.float32))).numpy(), ref, rtol=1e-5, atol=1e-6)
    small = t64(x[:1, :1])
    assert minigrad.gradcheck(fn, [small]) and minigrad.gradgradcheck(fn, [small])


def test_avg_pool1d():
    x = t64(np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]]))
    np.testing.assert_allclose(F.avg_pool1d(x, 2).numpy(), [[[1.5, 3.5]]])
    np.testing.assert_allclose(F.avg_pool1d(x, 2, padding=1, count_include_pad=False).numpy(),
                               [[[1.0, 2.5, 4.5]]])


def test_pool_errors_name_the_argument():
    x = t64(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"padding \(2, 2\) must be at most half"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"kernel_size must be >= 1, got 0"):
        F.avg_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"smaller than the \(dilated\) kernel"):
        F.max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"input must have shape \[N, C, \*spatial\]"):
        F.max_pool2d(t64(np.zeros(4)), 2)
    with pytest.raises(ValueError, match=r"divisor_override must not be 0"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(TypeError, match=r"ceil_mode must be True or False"):
        nn.MaxPool2d(2, ceil_mode="yes")
    with pytest.raises(TypeError, match=r"avg_pool2d: input must be a floating-point tensor"):
        F.avg_pool2d(np.zeros((1, 1, 4, 4), np.int64), 2)


def test_pool_modules():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).numpy(), F.max_pool2d(x, 2).numpy())
    y, idx = nn.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)(x)
    assert y.shape == idx.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x).numpy(),
                                  F.avg_pool2d(x, 3, 1, 1, count_include_pad=False).numpy())
    assert nn.MaxPool1d(2)(x[:, :, 0]).shape == (2, 3, 3)
    assert nn.AvgPool1d(3, 3)(x[:, :, 0]).shape == (2, 3, 2)
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"


# -- batch norm ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 3, 4)])
def test_batch_norm_training_matches_reference_and_updates_running_stats(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3 + 1
    c = shape[1]
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    axes = (0,) + tuple(range(2, len(shape)))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    n = x.size // c
    run_mean, run_var = rm.copy(), rv.copy()
    y = F.batch_norm(t64(x), run_mean, run_var, t64(w), t64(b), training=True, momentum=0.3, eps=1e-3)
    np.testing.assert_allclose(y.numpy(), batch_norm_ref(x, mean, var, w, b, 1e-3), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(run_mean, 0.7 * rm + 0.3 * mean, rtol=1e-12)
    np.testing.assert_allclose(run_var, 0.7 * rv + 0.3 * var * n / (n - 1), rtol=1e-12)  # unbiased
    # eval: the running statistics normalise
    ye = F.batch_norm(t64(x), run_mean, run_var, t64(w), t64(b), training=False, eps=1e-3)
    np.testing.assert_allclose(ye.numpy(), batch_norm_ref(x, run_mean, run_var, w, b, 1e-3), rtol=1e-10)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients_first_and_second_order(training):
    rng = np.random.default_rng(1)
    x = t64(rng.standard_normal((3, 2, 2, 2)))
    w, b = t64(rng.standard_normal(2)), t64(rng.standard_normal(2))
    rm, rv = rng.standard_normal(2), rng.random(2) + 0.5
    fn = lambda x, w, b: F.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)  # noqa: E731
    assert minigrad.gradcheck(fn, [x, w, b])
    assert minigrad.gradgradcheck(fn, [x, w, b])


def test_batch_norm_matches_the_same_formula_in_minigrad_ops_to_third_order():
    # The fused ops against the textbook formula written in elementwise minigrad ops.
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((4, 3, 2))
    u = minigrad.tensor(rng.standard_normal((4, 3, 2)))

    def composite(x):
        m = x.mean(axis=(0, 2), keepdims=True)
        v = ((x - m) * (x - m)).mean(axis=(0, 2), keepdims=True)
        return (x - m) / (v + 1e-5).sqrt()

    def fused(x):
        return F.batch_norm(x, None, None, training=True)

    w0, b0 = rng.standard_normal(3), rng.standard_normal(3)

    def composite_affine(x, w, b):
        return composite(x) * w.reshape(1, 3, 1) + b.reshape(1, 3, 1)

    def fused_affine(x, w, b):
        return F.batch_norm(x, None, None, w, b, training=True)

    def third(norm, affine=False):
        x, w, b = t64(x0), t64(w0), t64(b0)
        out = norm(x, w, b) if affine else norm(x)
        sources = [x, w, b] if affine else [x]
        g = minigrad.grad(out, sources, u, create_graph=True)
        total = sum((gi * gi * gi).sum() for gi in g)
        gg = minigrad.grad(total, sources, create_graph=True, allow_unused=True)
        gg = [gi for gi in gg if gi is not None]      # nothing depends on b at second order
        ggg = minigrad.grad(sum((gi * gi).sum() for gi in gg), sources, allow_unused=True)
        return [np.zeros(1) if t is None else t.numpy() for t in (*g, *gg, *ggg)]
    for ours, theirs in [(third(fused), third(composite)),
                         (third(fused_affine, True), third(composite_affine, True))]:
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    # weight only, bias only
    for w, b in ((t64(w0), None), (None, t64(b0))):
        ref = composite(t64(x0, False)).numpy() * (w0.reshape(1, 3, 1) if w is not None else 1) \
            + (b0.reshape(1, 3, 1) if b is not None else 0)
        np.testing.assert_allclose(F.batch_norm(t64(x0), None, None, w, b, training=True).numpy(), ref, rtol=1e-12)


def test_norm_grad_ops_with_a_scale_have_exact_second_derivatives():
    from minigrad.nn._norm import NormGrad
    rng = np.random.default_rng(6)
    h, x, s = t64(rng.standard_normal((3, 2, 2))), t64(rng.standard_normal((3, 2, 2))), t64(rng.standard_normal((1, 2, 1)))
    fn = lambda h, x, s: NormGrad.apply(h, x, s, axes=(0, 2), eps=1e-5)  # noqa: E731
    assert minigrad.gradcheck(fn, [h, x, s]) and minigrad.gradgradcheck(fn, [h, x, s])


def test_batch_norm_module_train_eval_momentum_none_and_no_tracking():
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((5, 3, 2, 2)).astype(np.float32) * (i + 1) for i in range(3)]
    bn = nn.BatchNorm2d(3)
    assert bn.training
    for xb in batches:
        bn(xb)
    assert int(bn.num_batches_tracked.data) == 3 and bn.num_batches_tracked.dtype == np.int64
    mean, var = np.zeros(3), np.ones(3)
    for xb in batches:
        mean = 0.9 * mean + 0.1 * xb.mean(axis=(0, 2, 3))
        var = 0.9 * var + 0.1 * xb.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-5)
    bn.eval()
    before = bn.running_mean.numpy().copy()
    np.testing.assert_allclose(bn(batches[0]).numpy(),
                               batch_norm_ref(batches[0], mean, var, np.ones(3), np.zeros(3), 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)  # eval leaves them alone

    cumulative = nn.BatchNorm1d(3, momentum=None)
    for xb in batches:
        cumulative(xb[:, :, 0, 0])
    np.testing.assert_allclose(cumulative.running_mean.numpy(),
                               np.mean([xb[:, :, 0, 0].mean(axis=0) for xb in batches], axis=0), rtol=1e-5)

    free = nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval()
    assert free.running_mean is None and free.parameters() == [] and list(free.state_dict()) == []
    y = free(batches[1]).numpy()   # batch statistics even in eval mode
    assert np.abs(y.mean(axis=(0, 2, 3))).max() < 1e-5
    assert list(nn.BatchNorm2d(4, bias=False).state_dict()) == [
        "weight", "running_mean", "running_var", "num_batches_tracked"]
    nn.BatchNorm2d(2).reset_running_stats()


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"more than 1 value per channel when training"):
        nn.BatchNorm1d(3)(np.zeros((1, 3), np.float32))
    nn.BatchNorm1d(3).eval()(np.zeros((1, 3), np.float32))      # fine in eval
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) expects 3 channels on axis 1"):
        nn.BatchNorm2d(3)(np.zeros((2, 4, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d expects inputs with 4 axes"):
        nn.BatchNorm2d(3)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"eps must be >= 0, got -1"):
        nn.BatchNorm2d(3, eps=-1)
    with pytest.raises(TypeError, match=r"momentum must be a real number, got str"):
        nn.BatchNorm2d(3, momentum="0.1")
    with pytest.raises(ValueError, match=r"running_mean and running_var are needed"):
        F.batch_norm(t64(np.zeros((2, 3))), None, None)
    with pytest.raises(ValueError, match=r"running_var must have shape \(3,\), got \(2,\)"):
        F.batch_norm(t64(np.zeros((2, 3))), np.zeros(3), np.ones(2))


def test_blas_sum_every_layout_matches_numpy_and_its_op_has_gradients():
    from minigrad.nn._norm import BlasSum, blas_sum
    rng = np.random.default_rng(4)
    base = rng.standard_normal((3, 4, 5, 6))
    cases = [
        (np.moveaxis(np.ascontiguousarray(np.moveaxis(base, 1, -1)), -1, 1), (0, 2, 3)),  # channels-last
        (base, (0, 2, 3)),                    # [A, K, B] block
        (base, (2, 3)),                       # summed axes trailing
        (base, (0, 1)),                       # summed axes leading
        (base[:, :, ::2], (0, 2, 3)),         # no usable layout: numpy's sum
        (base.astype(np.float32), (0, 3)),
        (np.arange(24).reshape(2, 3, 4), (0, 2)),   # integers: numpy's sum
    ]
    for a, axes in cases:
        got = blas_sum(a, axes)
        assert got.shape == np.sum(a, axis=axes, keepdims=True).shape
        np.testing.assert_allclose(got, np.sum(a, axis=axes, keepdims=True), rtol=1e-5 if a.dtype == np.float32 else 1e-12)
    assert minigrad.gradgradcheck(lambda x: BlasSum.apply(x * x, axes=(0, 2)), [t64(base[:2, :2, :3, 0])])


# -- Flatten, LeakyReLU ----------------------------------------------------------------------
def test_flatten():
    x = t64(np.arange(120.0).reshape(2, 3, 4, 5))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(-2, -1)(x).shape == (2, 3, 20)
    assert nn.Flatten(2, 2)(x).shape == (2, 3, 4, 5)
    assert minigrad.gradcheck(lambda x: nn.Flatten()(x) * 2.0, [t64(np.ones((2, 2, 2)))])
    with pytest.raises(ValueError, match=r"start_dim \(2\) comes after end_dim \(1\)"):
        nn.Flatten(2, 1)(x)
    with pytest.raises(ValueError, match=r"end_dim=4 is out of range"):
        nn.Flatten(1, 4)(x)


def test_leaky_relu_values_gradients_and_slope_at_zero():
    x = t64(np.array([-2.0, -0.5, 0.0, 0.5, 3.0]))
    y = nn.LeakyReLU(0.2)(x)
    np.testing.assert_allclose(y.numpy(), [-0.4, -0.1, 0.0, 0.5, 3.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.2, 0.2, 0.2, 1.0, 1.0])  # slope at 0, as PyTorch
    assert minigrad.gradgradcheck(lambda x: F.leaky_relu(x * x * x - x), [t64(np.array([-1.3, 0.7, 2.0]))])
    assert nn.LeakyReLU().negative_slope == 0.01
    assert F.leaky_relu(minigrad.tensor([-1.0])).dtype == np.float32
    with pytest.raises(TypeError, match=r"negative_slope must be a real number"):
        nn.LeakyReLU("0.1")


# -- a small CNN: state dict names, dtype, docstrings ------------------------------------------
class SmallCNN(nn.Module):
    def __init__(self, rng=0):
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False, rng=rng), nn.BatchNorm2d(6),
            nn.LeakyReLU(0.1), nn.AvgPool2d(2))
        self.flatten = nn.Flatten()
        self.head = nn.Linear(24, 10, rng=rng)

    def forward(self, x):
        return self.head(self.flatten(self.features(x)))


EXPECTED_KEYS = {
    "features.0.weight": (4, 1, 3, 3), "features.0.bias": (4,), "features.1.weight": (4,),
    "features.1.bias": (4,), "features.1.running_mean": (4,), "features.1.running_var": (4,),
    "features.1.num_batches_tracked": (), "features.4.weight": (6, 2, 3, 3),
    "features.5.weight": (6,), "features.5.bias": (6,), "features.5.running_mean": (6,),
    "features.5.running_var": (6,), "features.5.num_batches_tracked": (),
    "head.weight": (10, 24), "head.bias": (10,),
}


def test_small_cnn_state_dict_keys_shapes_and_training_step():
    model = SmallCNN()
    state = model.state_dict()
    assert {k: v.shape for k, v in state.items()} == EXPECTED_KEYS
    assert list(state) == list(EXPECTED_KEYS)    # PyTorch's order too
    x = np.random.default_rng(0).random((8, 1, 8, 8)).astype(np.float32)
    loss = nn.cross_entropy(model(x), np.arange(8))
    assert loss.dtype == np.float32
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == np.float32 for p in model.parameters())
    clone = SmallCNN(rng=1)
    clone.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(clone.eval()(x).numpy(), model.eval()(x).numpy())


@pytest.mark.parametrize("module", ["minigrad.nn.functional", "minigrad.nn.layers",
                                    "minigrad.nn.utils"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(module)
    result = doctest.testmod(mod, extraglobs=dict(np=np, minigrad=minigrad, nn=nn, F=F),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# -- against PyTorch, given the same weights -------------------------------------------------
@needs_torch
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matches_torch_outputs_and_gradients(case):
    d, xshape, o, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal(xshape), rng.standard_normal((o, xshape[1] // groups) + kernel), rng.standard_normal(o)
    fn = F.conv1d if d == 1 else F.conv2d
    tfn = torch.nn.functional.conv1d if d == 1 else torch.nn.functional.conv2d
    ours = [t64(x), t64(w), t64(b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = fn(*ours, stride, padding, dilation, groups)
    ty = tfn(*theirs, stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    u = rng.standard_normal(y.shape)
    y.backward(minigrad.tensor(u))
    ty.backward(torch.tensor(u))
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), rtol=1e-11, atol=1e-11)


@needs_torch
def test_pools_match_torch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 6))
    for kernel, stride, padding, dilation, ceil in [(2, None, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (2, 1), (1, 1), (1, 2), True)]:
        y, idx = F.max_pool2d(t64(x), kernel, stride, padding, dilation, ceil, return_indices=True)
        ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), kernel, stride, padding, dilation,
                                                  ceil_mode=ceil, return_indices=True)
        np.testing.assert_array_equal(y.numpy(), ty.numpy())
        np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    for kernel, stride, padding, ceil, count, div in [(2, None, 0, False, True, None), (3, 2, 1, True, False, None),
                                                      ((3, 2), (2, 3), (1, 1), True, True, None), (2, 1, 1, False, True, 5)]:
        xt, tx = t64(x), torch.tensor(x, requires_grad=True)
        y = F.avg_pool2d(xt, kernel, stride, padding, ceil, count, div)
        ty = torch.nn.functional.avg_pool2d(tx, kernel, stride, padding, ceil, count, div)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
        u = rng.standard_normal(y.shape)
        y.backward(minigrad.tensor(u))
        ty.backward(torch.tensor(u))
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def _torch_small_cnn():
    tn = torch.nn
    model = tn.Module()
    model.features = tn.Sequential(
        tn.Conv2d(1, 4, 3, padding=1), tn.BatchNorm2d(4), tn.ReLU(), tn.MaxPool2d(2),
        tn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False), tn.BatchNorm2d(6), tn.LeakyReLU(0.1),
        tn.AvgPool2d(2))
    model.flatten = tn.Flatten()
    model.head = tn.Linear(24, 10)
    model.forward = lambda x: model.head(model.flatten(model.features(x)))
    return model


@needs_torch
def test_torch_state_dict_loads_and_training_steps_agree():
    torch.manual_seed(0)
    theirs = _torch_small_cnn().double()
    assert {k: tuple(v.shape) for k, v in theirs.state_dict().items()} == EXPECTED_KEYS
    ours = SmallCNN()
    for p in ours.parameters():
        p.data = p.data.astype(np.float64)
    for name, t in ours.named_tensors():
        if not t.requires_grad and t.dtype.kind == "f":
            t.data = t.data.astype(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(6)
    opt = minigrad.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):   # train mode: batch statistics, running statistics, gradients
        x, y = rng.random((6, 1, 8, 8)), rng.integers(0, 10, 6)
        opt.zero_grad()
        topt.zero_grad()
        loss = nn.cross_entropy(ours(x), y, label_smoothing=0.1)
        tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y), label_smoothing=0.1)
        assert float(loss) == pytest.approx(float(tloss.detach()), rel=1e-10)
        loss.backward()
        tloss.backward()
        for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
        opt.step()
        topt.step()
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)
    x = rng.random((4, 1, 8, 8))
    np.testing.assert_allclose(ours.eval()(x).numpy(), theirs.eval()(torch.tensor(x)).detach().numpy(),
                               rtol=1e-8, atol=1e-10)


@needs_torch
def test_float32_cnn_matches_torch_float32():
    torch.manual_seed(1)
    theirs = _torch_small_cnn()
    ours = SmallCNN()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(7).random((5, 1, 8, 8)).astype(np.float32)
    out = ours(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


@needs_torch
@pytest.mark.parametrize("kw", [dict(), dict(momentum=None), dict(momentum=0.5, eps=1e-3),
                                dict(affine=False), dict(track_running_stats=False)])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
def test_batch_norm1d_module_matches_torch_through_train_and_eval(kw, shape):
    rng = np.random.default_rng(8)
    ours, theirs = nn.BatchNorm1d(3, dtype=np.float64, **kw), torch.nn.BatchNorm1d(3, dtype=torch.float64, **kw)
    if ours.weight is not None:
        w, b = rng.standard_normal(3), rng.standard_normal(3)
        ours.load_state_dict({**ours.state_dict(), "weight": w, "bias": b})
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(w))
            theirs.bias.copy_(torch.tensor(b))
    for step in range(4):
        if step == 3:
            ours.eval()
            theirs.eval()
        x = rng.standard_normal(shape) * (step + 1) + step
        xo, xt = t64(x), torch.tensor(x, requires_grad=True)
        y, ty = ours(xo), theirs(xt)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        u = rng.standard_normal(shape)
        y.backward(minigrad.tensor(u))
        ty.backward(torch.tensor(u))
        np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for name, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-12, err_msg=name)


@given(st.data())
@settings(max_examples=25, deadline=None)
def test_pool2d_random_geometry_matches_reference(data):
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(2))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(2))
    padding = tuple(data.draw(st.integers(0, k // 2)) for k in kernel)
    ceil = data.draw(st.booleans())
    spatial = tuple(data.draw(st.integers(k, 7)) for k in kernel)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    x = rng.permutation(2 * 3 * math.prod(spatial)).reshape((2, 3) + spatial) / 5.0
    y, idx = F.max_pool2d(t64(x), kernel, stride, padding, 1, ceil, return_indices=True)
    ref, ref_idx = max_pool_ref(x, kernel, stride, padding, (1, 1), ceil)
    np.testing.assert_array_equal(y.numpy(), ref)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    count_pad = data.draw(st.booleans())
    np.testing.assert_allclose(F.avg_pool2d(t64(x), kernel, stride, padding, ceil, count_pad).numpy(),
                               avg_pool_ref(x, kernel, stride, padding, ceil, count_pad), rtol=1e-12)
