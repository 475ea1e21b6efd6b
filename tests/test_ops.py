"""Every op: gradients by finite differences (gradcheck), second order for smooth ops
(gradgradcheck), over several shapes with broadcasting, 0-d and empty tensors."""

import numpy as np
import pytest

import minigrad as mg

RNG = np.random.default_rng(1234)


def leaf(shape, low=-2.0, high=2.0, positive=False, separated=False):
    if separated:
        # distinct values at least 0.05 apart, so max/min/abs/relu have no ties or kinks
        n = int(np.prod(shape))
        data = (RNG.permutation(n) - n / 2 + 0.5) * 0.1 + RNG.uniform(-0.02, 0.02, n)
        data = data.reshape(shape)
    else:
        data = RNG.uniform(low, high, size=shape)
    if positive:
        data = np.abs(data) + 0.5
    return mg.tensor(data, dtype="float64", requires_grad=True)


# name -> (fn, list of (shapes of inputs), options for leaf(), smooth)
UNARY = {
    "neg": (lambda x: -x, {}, True),
    "exp": (mg.exp, {}, True),
    "log": (mg.log, {"positive": True}, True),
    "sqrt": (mg.sqrt, {"positive": True}, True),
    "abs": (mg.abs, {"separated": True}, False),
    "tanh": (mg.tanh, {}, True),
    "sigmoid": (mg.sigmoid, {}, True),
    "relu": (mg.relu, {"separated": True}, False),
    "sum": (lambda x: x.sum(), {}, True),
    "sum_axis": (lambda x: x.sum(axis=-1, keepdims=True) if x.ndim else x.sum(), {}, True),
    "sum_tuple_axis": (lambda x: mg.sum(x, axis=tuple(range(x.ndim))[1:]), {}, True),
    "mean": (lambda x: x.mean(axis=0) if x.ndim else x.mean(), {}, True),
    "max": (lambda x: x.max(axis=-1) if x.ndim else x.max(), {"separated": True}, False),
    "min": (lambda x: x.min(), {"separated": True}, False),
    "max_keepdims": (lambda x: mg.max(x, axis=0, keepdims=True) if x.ndim else x.max(), {"separated": True}, False),
    "softmax": (lambda x: mg.softmax(x) if x.ndim else mg.softmax(x.reshape(1)), {}, True),
    "log_softmax": (lambda x: mg.log_softmax(x, axis=0) if x.ndim else x, {}, True),
    "logsumexp": (lambda x: mg.logsumexp(x, axis=-1) if x.ndim else mg.logsumexp(x), {}, True),
    "logsumexp_all": (lambda x: mg.logsumexp(x, keepdims=True), {}, True),
    "reshape": (lambda x: x.reshape(-1), {}, True),
    "transpose": (lambda x: x.T, {}, True),
    "swapaxes": (lambda x: x.swapaxes(0, -1) if x.ndim else x, {}, True),
    "expand_dims": (lambda x: mg.expand_dims(x, 0), {}, True),
    "squeeze": (lambda x: mg.expand_dims(x, -1).squeeze(-1), {}, True),
    "broadcast_to": (lambda x: mg.broadcast_to(x, (2,) + x.shape), {}, True),
    "getitem_basic": (lambda x: x[..., :1] if x.ndim else x[()], {}, True),
    "getitem_int_array": (lambda x: x[np.array([0, 0, -1])] if x.ndim and len(x) else x, {}, True),
    "getitem_bool": (lambda x: x[x.data > 0], {}, True),
    "clip": (lambda x: mg.clip(x, -0.5, 0.7), {"separated": True}, False),
    "pow_scalar": (lambda x: x ** 3, {}, True),
    "rpow": (lambda x: 2.0 ** x, {}, True),
    "square_root_pow": (lambda x: x ** 0.5, {"positive": True}, True),
}

SHAPES = [(), (3,), (2, 3), (2, 0), (3, 1, 2)]


def _defined(name, shape):
    # max/min of an empty tensor is an error in numpy too
    return not (shape and 0 in shape and name.startswith(("max", "min", "logsumexp_all", "softmax")))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # logsumexp of an empty axis is log(0)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_gradients(name, shape):
    fn, options, smooth = UNARY[name]
    if not _defined(name, shape):
        pytest.skip("reduction of an empty tensor is undefined")
    x = leaf(shape, **options)
    assert mg.gradcheck(fn, [x])
    if smooth and not (name.startswith("logsumexp") and 0 in shape):  # log(0): NaN by design
        assert mg.gradgradcheck(fn, [x])


BINARY = {
    "add": (lambda a, b: a + b, {}, True),
    "sub": (lambda a, b: a - b, {}, True),
    "mul": (lambda a, b: a * b, {}, True),
    "div": (lambda a, b: a / b, {"positive": True}, True),
    "pow": (lambda a, b: a ** b, {"positive": True}, True),
    "maximum": (mg.maximum, {"separated": True}, False),
    "minimum": (mg.minimum, {"separated": True}, False),
    "where": (lambda a, b: mg.where(a.data > 0, a, b), {}, True),
}

BROADCAST_PAIRS = [((), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((0, 3), (3,))]


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_gradients(name, shapes):
    fn, options, smooth = BINARY[name]
    a, b = leaf(shapes[0], **options), leaf(shapes[1], **options)
    assert mg.gradcheck(fn, [a, b])
    if smooth:
        assert mg.gradgradcheck(fn, [a, b])


@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                                    ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 1, 2, 3), (4, 3, 2)),
                                    ((0, 3), (3, 2))], ids=str)
def test_matmul_gradients(shapes):
    a, b = leaf(shapes[0]), leaf(shapes[1])
    assert mg.gradcheck(lambda a, b: a @ b, [a, b])
    assert mg.gradgradcheck(lambda a, b: mg.matmul(a, b), [a, b])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack_gradients(axis):
    a, b, c = leaf((2, 3)), leaf((2, 3)), leaf((2, 3))
    assert mg.gradcheck(lambda a, b, c: mg.concatenate([a, b, c], axis=axis % 2), [a, b, c])
    assert mg.gradgradcheck(lambda a, b, c: mg.stack([a, b * c], axis=axis), [a, b, c])


def test_scalar_operands_on_either_side():
    x = leaf((2, 3))
    assert mg.gradcheck(lambda x: (2 - x) * 3 / (1 + x * x) + 1.5 ** x - x / 4, [x])
    assert mg.gradcheck(lambda x: np.ones((2, 3)) * x - (np.arange(3.0) @ x.T)[:, None], [x])


def test_repeated_indices_accumulate():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 0.0, 1.0])
    assert mg.gradgradcheck(lambda x: (x[np.array([1, 1, 0])] ** 2).sum(), [leaf((3,))])


def test_max_ties_share_the_gradient():
    x = mg.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0.5, 0.5], [0.5, 0, 0.5]])
    y = mg.tensor([3.0, 3.0, 1.0], requires_grad=True)
    y.max().backward()
    np.testing.assert_array_equal(y.grad.data, [0.5, 0.5, 0])


def test_maximum_tie_goes_to_first_and_clip_ends_count():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = mg.tensor([1.0, 3.0], requires_grad=True)
    mg.maximum(x, y).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1, 0])
    np.testing.assert_array_equal(y.grad.data, [0, 1])
    z = mg.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    mg.clip(z, 0.0, 1.0).sum().backward()
    np.testing.assert_array_equal(z.grad.data, [0, 1, 1, 1, 0])


def test_pow_gradient_at_zero_is_finite():
    x = mg.tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    p = mg.tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    (x ** p).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 4.0])
    np.testing.assert_allclose(p.grad.data, [0.0, 4.0 * np.log(2.0)])


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # log(0) = -inf, as numpy
def test_stable_functions_at_extremes():
    x = mg.tensor([[1000.0, 0.0, -1000.0], [-np.inf, 0.0, -np.inf]], dtype="float64", requires_grad=True)
    s = mg.softmax(x, axis=1)
    np.testing.assert_allclose(s.data, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(mg.logsumexp(x, axis=1).data, [1000.0, 0.0])
    np.testing.assert_allclose(mg.log_softmax(x, axis=1).data[0], [0, -1000, -2000])
    assert mg.logsumexp(mg.tensor([-np.inf, -np.inf]), axis=0).item() == -np.inf
    np.testing.assert_allclose(mg.sigmoid(mg.tensor([-800.0, 800.0], dtype="float64")).data, [0, 1])
    mg.logsumexp(x, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.data, s.data)


def test_astype_gradient_returns_in_the_input_dtype():
    x = leaf((2, 3))
    # float32 rounding needs a wider step than the default
    assert mg.gradcheck(lambda x: x.astype("float32") * 2, [x], eps=1e-2, atol=1e-4)
    y = mg.tensor([1.0, 2.0], dtype="float16", requires_grad=True)
    (y.astype("float64") * 3).sum().backward()
    assert y.grad.dtype == np.float16
    np.testing.assert_array_equal(y.grad.data, [3, 3])


def test_min_and_minimum_are_exact_for_unsigned_extreme_and_bool_integers():
    u = np.array([0, 5, 3], np.uint8)
    assert mg.min(mg.tensor(u)).item() == 0 and mg.max(mg.tensor(u)).item() == 5
    np.testing.assert_array_equal(mg.minimum(u, np.array([3, 3, 3], np.uint8)).data, [0, 3, 3])
    np.testing.assert_array_equal(mg.clip(mg.tensor(u), 1, 4).data, np.clip(u, 1, 4))
    big = np.array([np.iinfo(np.int64).min, 0])
    assert mg.min(mg.tensor(big)).item() == np.iinfo(np.int64).min
    assert mg.min(mg.tensor([True, False])).item() is False


def test_mean_of_float16_sums_in_float32():
    a = np.random.default_rng(0).uniform(0, 1, 100_000).astype(np.float16)
    t = mg.tensor(a, requires_grad=True)
    m = t.mean()
    assert m.dtype == np.float16 and m.item() == a.mean()
    m.backward()
    assert t.grad.dtype == np.float16 and t.grad.data[0] == np.float16(1e-5)


def test_sigmoid_of_integers_is_float_as_in_numpy():
    s = mg.sigmoid(mg.tensor([1, 2]))
    assert s.dtype == np.tanh(np.array([1, 2])).dtype
    np.testing.assert_allclose(s.data, 1 / (1 + np.exp(-np.array([1.0, 2.0]))))
    assert mg.sigmoid(mg.tensor([True])).dtype == np.float16


def test_concatenate_axis_none_flattens_and_differentiates():
    a, b = leaf((2, 2)), leaf((3,))
    assert mg.concatenate([a, b], axis=None).shape == (7,)
    assert mg.gradcheck(lambda a, b: mg.concatenate([a, b], axis=None), [a, b])


@pytest.mark.parametrize("x_shape", [(4,), (3, 4), (2, 3, 4), (0, 4)], ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_is_x_at_weight_transposed_plus_bias(x_shape, with_bias):
    x, w = leaf(x_shape), leaf((5, 4))
    b = leaf((5,)) if with_bias else None
    expected = x.data @ w.data.T + (b.data if with_bias else 0)
    np.testing.assert_allclose(mg.linear(x, w, b).data, expected, rtol=1e-12)
    args = [x, w, b] if with_bias else [x, w]
    fn = (lambda x, w, b: mg.linear(x, w, b)) if with_bias else (lambda x, w: mg.linear(x, w))
    assert mg.gradcheck(fn, args)
    assert mg.gradgradcheck(fn, args)


def test_linear_is_one_node_and_its_weight_gradient_is_not_copied():
    x = mg.tensor(np.ones((8, 4), np.float32))
    w = mg.tensor(np.ones((3, 4), np.float32), requires_grad=True)
    b = mg.tensor(np.zeros(3, np.float32), requires_grad=True)
    y = mg.linear(x, w, b)
    assert y.node.name == "Linear" and y.dtype == np.float32
    y.sum().backward()
    assert w.grad.data.flags.c_contiguous and w.grad.data.flags.owndata
    np.testing.assert_array_equal(w.grad.data, np.full((3, 4), 8.0))
    np.testing.assert_array_equal(b.grad.data, np.full(3, 8.0))
    with pytest.raises(ValueError, match="last axis of x must have size in_features = 4"):
        mg.linear(np.ones((2, 3)), w)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        mg.linear(x, w, np.ones(4))
    with pytest.raises(ValueError, match="weight must be 2-D"):
        mg.linear(x, np.ones(4))


def _fsum(a, axis):
    import math
    moved = np.moveaxis(a.astype(np.float64), axis, -1)
    return np.array([math.fsum(row) for row in moved.reshape(-1, moved.shape[-1])]).reshape(moved.shape[:-1])


@pytest.mark.parametrize("layout", ["C", "F", "strided", "negative"])
@pytest.mark.parametrize("shape, axis", [((1000, 3), 0), ((3, 1000), 1), ((50, 40, 30), (0, 2)),
                                         ((17, 2), 0), ((64, 256), 0), ((7,), 0)], ids=str)
def test_float32_sums_are_pairwise_along_every_axis_and_layout(shape, axis, layout):
    a = np.random.default_rng(0).uniform(0.5, 1.5, size=shape).astype(np.float32)
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided":
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif layout == "negative":
        a = a[::-1]
    got = mg.sum(mg.tensor(a), axis=axis).data
    assert got.dtype == np.float32 and got.shape == np.sum(a, axis=axis).shape
    axes = axis if isinstance(axis, tuple) else (axis,)
    ref = a.astype(np.float64)
    for ax in sorted(axes, reverse=True):
        ref = _fsum(ref, ax)
    n = int(np.prod([shape[i] for i in axes]))
    # pairwise: O(log n) roundings of the partial sums, against n for row-after-row sums
    assert np.max(np.abs(got - ref) / ref) <= (2 + np.log2(n)) * 2.0 ** -24


def test_float32_column_sum_of_a_million():
    a = np.full((10**6, 2), 0.1, np.float32)
    got = mg.sum(mg.tensor(a), axis=0).data
    exact = 10**6 * float(np.float32(0.1))
    assert np.max(np.abs(got - exact)) / exact < 4 * 2.0 ** -24


def test_mean_keeps_shape_rules_and_ints_give_float64():
    x = mg.tensor(np.arange(6).reshape(2, 3))
    m = x.mean(axis=1, keepdims=True)
    assert m.dtype == np.float64 and m.shape == (2, 1)
    np.testing.assert_array_equal(m.data, [[1.0], [4.0]])


@pytest.mark.parametrize("fn", [mg.tanh, mg.sigmoid], ids=["tanh", "sigmoid"])
def test_saturating_derivatives_and_their_derivatives(fn):
    x = mg.tensor(np.array([-30.0, -4.0, -0.3, 0.0, 0.7, 5.0, 30.0]), requires_grad=True)
    assert mg.gradcheck(fn, [x])
    assert mg.gradgradcheck(fn, [x])
    (g,) = mg.grad(fn(x).sum(), x, create_graph=True)
    (gg,) = mg.grad(g.sum(), x, create_graph=True)
    assert mg.gradcheck(lambda x: mg.grad(fn(x).sum(), x, create_graph=True)[0], [x])
    # references from the input too: 1 - tanh^2 and s (1 - s) would cancel at +-30
    sech2 = 1 / np.cosh(x.data) ** 2
    e = np.exp(-np.abs(x.data))
    ds = e / (1 + e) ** 2
    if fn is mg.tanh:
        np.testing.assert_allclose(gg.data, -2 * sech2 * np.tanh(x.data), rtol=1e-14)
    else:
        np.testing.assert_allclose(gg.data, -ds * np.tanh(x.data / 2), rtol=1e-14)
