"""The fused cross-entropy through the tape: TensorFlow's public functions and raw ops."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import _kernels
from minigrad._xent_reference import dense_loss_backprop_reference, sparse_loss_backprop_reference

nn, raw = mg.nn, mg.raw_ops
RNG = np.random.default_rng(7)


def probs(shape, axis=-1):
    p = RNG.uniform(0.05, 1.0, size=shape)
    return p / p.sum(axis=axis, keepdims=True)


def f64(a, requires_grad=True):
    return mg.tensor(a, dtype="float64", requires_grad=requires_grad)


def log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# -- gradients --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((4,), 0), ((1, 1), -1)])
def test_dense_v1_and_v2_gradients_first_and_second_order(shape, axis):
    logits = f64(RNG.standard_normal(shape))
    labels = f64(probs(shape, axis))
    v1 = lambda x: nn.softmax_cross_entropy_with_logits(labels=labels.detach(), logits=x, dim=axis)
    v2 = lambda x, y: nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=x, axis=axis)
    assert mg.gradcheck(v1, [logits]) and mg.gradgradcheck(v1, [logits])
    assert mg.gradcheck(v2, [logits, labels]) and mg.gradgradcheck(v2, [logits, labels])


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4), (5,), (1, 1), (4, 1)])
def test_sparse_gradients_first_and_second_order(shape):
    logits = f64(RNG.standard_normal(shape))
    labels = RNG.integers(0, shape[-1], size=shape[:-1])
    f = lambda x: nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)
    assert mg.gradcheck(f, [logits]) and mg.gradgradcheck(f, [logits])


def test_raw_ops_both_outputs_are_differentiable():
    x = f64(RNG.standard_normal((3, 4)))
    y = f64(probs((3, 4)))
    idx = np.array([0, 3, 1], dtype=np.int32)
    dense = lambda x, y: raw.SoftmaxCrossEntropyWithLogits(features=x, labels=y)
    sparse = lambda x: raw.SparseSoftmaxCrossEntropyWithLogits(features=x, labels=idx)
    for fn, args in [(dense, [x, y]), (sparse, [x])]:
        assert mg.gradcheck(fn, args) and mg.gradgradcheck(fn, args)


def test_hessian_is_the_softmax_jacobian_not_zero():
    x = f64(RNG.standard_normal(4))
    v = RNG.standard_normal(4)
    loss = nn.sparse_softmax_cross_entropy_with_logits(labels=np.int64(2), logits=x)
    (g,) = mg.grad(loss, x, create_graph=True)
    (hv,) = mg.grad((g * v).sum(), x)
    s = np.exp(log_softmax(x.data))
    np.testing.assert_allclose(hv.data, (np.diag(s) - np.outer(s, s)) @ v, rtol=1e-12)


def test_backward_is_upstream_times_backprop():
    x = f64(RNG.standard_normal((3, 5)))
    labels = np.array([4, 0, 2])
    upstream = RNG.standard_normal(3)
    loss = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)
    loss.backward(upstream)
    _, backprop = sparse_loss_backprop_reference(x.data, labels)
    np.testing.assert_allclose(x.grad.data, upstream[:, None] * backprop, rtol=1e-12)


def test_v1_gives_labels_no_gradient_and_v2_gives_minus_log_softmax():
    x = f64(RNG.standard_normal((2, 3)))
    y = f64(probs((2, 3)))
    loss1 = nn.softmax_cross_entropy_with_logits(labels=y, logits=x)
    assert mg.grad(loss1.sum(), [x, y], allow_unused=True)[1] is None
    with mg.GradientTape() as tape:
        tape.watch(y)
        loss2 = nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=x)
    np.testing.assert_allclose(tape.gradient(loss2, y).data, -log_softmax(x.data), rtol=1e-12)
    with mg.GradientTape() as tape:
        tape.watch(y)
        loss3 = nn.softmax_cross_entropy_with_logits_v2(labels=mg.stop_gradient(y), logits=x)
    assert tape.gradient(loss3, y) is None


def test_labels_not_summing_to_one_get_tensorflows_gradient():
    # TensorFlow documents that the gradient is softmax - labels whatever the labels sum to.
    x = f64(RNG.standard_normal((2, 3)))
    y = np.array([[2.0, 0.0, 1.0], [0.1, 0.1, 0.1]])
    nn.softmax_cross_entropy_with_logits(labels=y, logits=x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp(log_softmax(x.data)) - y, rtol=1e-12)
    loss = nn.softmax_cross_entropy_with_logits(labels=y, logits=x.detach())
    np.testing.assert_allclose(loss.data, -(y * log_softmax(x.data)).sum(-1), rtol=1e-12)


# -- values, layouts, dtypes ------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(0, 5), st.integers(1, 6), st.sampled_from(["float16", "float32", "float64"]),
       st.integers(0, 2))
def test_any_class_axis_and_rank_matches_reference(d0, d1, classes, dtype, axis):
    shape = [d0, d1, classes]
    shape.insert(axis, shape.pop())  # the class axis at position `axis`
    logits = RNG.standard_normal(shape).astype(dtype) * 3
    labels = probs(shape, axis).astype(dtype)
    loss = nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits, axis=axis)
    moved = lambda a: np.moveaxis(a, axis, -1).reshape(-1, classes)
    want, _ = dense_loss_backprop_reference(moved(logits), moved(labels))
    assert loss.dtype == np.dtype(dtype)
    assert loss.shape == tuple(np.delete(shape, axis))
    tol = {"float16": 2e-2, "float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(loss.data.reshape(-1).astype(float), want.astype(float), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("label_dtype", ["int32", "int64"])
def test_sparse_higher_rank_matches_dense_one_hot(dtype, label_dtype):
    logits = RNG.standard_normal((2, 3, 5)).astype(dtype)
    labels = RNG.integers(0, 5, size=(2, 3)).astype(label_dtype)
    sparse = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    dense = nn.softmax_cross_entropy_with_logits(labels=np.eye(5, dtype=dtype)[labels], logits=logits)
    assert sparse.shape == (2, 3) and sparse.dtype == np.dtype(dtype)
    np.testing.assert_allclose(sparse.data, dense.data, rtol=1e-3 if dtype == "float16" else 1e-6)


def test_empty_batches_give_empty_results():
    assert nn.sparse_softmax_cross_entropy_with_logits(labels=np.zeros(0, int), logits=np.zeros((0, 3))).shape == (0,)
    loss = nn.softmax_cross_entropy_with_logits(labels=np.zeros((2, 0, 3)), logits=np.zeros((2, 0, 3)))
    assert loss.shape == (2, 0)
    x = f64(np.zeros((0, 4)))
    nn.sparse_softmax_cross_entropy_with_logits(labels=np.zeros(0, np.int32), logits=x).sum().backward()
    assert x.grad.shape == (0, 4)


def test_array_likes_are_accepted():
    loss = nn.softmax_cross_entropy_with_logits(labels=[[0.0, 1.0]], logits=[[1.0, 2.0]])
    assert loss.dtype == np.float32 and loss.shape == (1,)
    loss, backprop = raw.SparseSoftmaxCrossEntropyWithLogits(features=np.zeros((1, 2)), labels=[1])
    assert loss.dtype == backprop.dtype == np.float64


def test_extreme_rows_through_the_tape():
    x = f64([[0.0, -np.inf, 1.0], [np.nan, 0.0, 0.0], [1e4, -1e4, 0.0]])
    y = np.array([[0.5, 0.0, 0.5], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    loss = nn.softmax_cross_entropy_with_logits(labels=y, logits=x)
    assert np.isfinite(loss.data[0]) and np.isnan(loss.data[1]) and loss.data[2] == 2e4
    loss.sum().backward()
    assert np.all(np.isfinite(x.grad.data[[0, 2]])) and np.all(np.isnan(x.grad.data[1]))
    assert x.grad.data[0, 1] == 0.0


def test_nn_uses_the_compiled_kernels(monkeypatch):
    calls = []
    for name in ("dense_loss_backprop", "sparse_loss_backprop"):
        real = getattr(_kernels, name)
        monkeypatch.setattr(_kernels, name, lambda *a, real=real, name=name, **kw: calls.append(name) or real(*a, **kw))
    nn.softmax_cross_entropy_with_logits(labels=[[1.0, 0.0]], logits=[[0.0, 0.0]])
    nn.softmax_cross_entropy_with_logits_v2(labels=[[1.0, 0.0]], logits=[[0.0, 0.0]])
    nn.sparse_softmax_cross_entropy_with_logits(labels=[0], logits=[[0.0, 0.0]])
    assert calls == ["dense_loss_backprop", "dense_loss_backprop", "sparse_loss_backprop"]


# -- errors -----------------------------------------------------------------------------------
def test_positional_calls_are_type_errors():
    with pytest.raises(TypeError):
        nn.softmax_cross_entropy_with_logits([[1.0]], [[1.0]])
    with pytest.raises(TypeError):
        nn.sparse_softmax_cross_entropy_with_logits([0], [[1.0]])
    with pytest.raises(TypeError):
        nn.softmax_cross_entropy_with_logits_v2([[1.0]], [[1.0]])
    with pytest.raises(TypeError):
        raw.SoftmaxCrossEntropyWithLogits([[1.0]], [[1.0]])
    with pytest.raises(TypeError):
        raw.SparseSoftmaxCrossEntropyWithLogits([[1.0]], [0])


@pytest.mark.parametrize("call, error, message", [
    (lambda: nn.softmax_cross_entropy_with_logits(labels=1.0, logits=1.0), ValueError, "rank >= 1"),
    (lambda: nn.sparse_softmax_cross_entropy_with_logits(labels=0, logits=2.0), ValueError, "rank >= 1"),
    (lambda: nn.softmax_cross_entropy_with_logits(labels=np.ones((2, 3)), logits=np.ones((2, 4))),
     ValueError, r"same shape.*\(2, 3\).*\(2, 4\)"),
    (lambda: nn.softmax_cross_entropy_with_logits(labels=np.ones((2, 3), np.float32), logits=np.ones((2, 3))),
     TypeError, "same dtype.*float32.*float64"),
    (lambda: nn.softmax_cross_entropy_with_logits_v2(labels=np.ones((2, 3)), logits=np.ones((2, 3)), axis=2),
     ValueError, "axis=2 is out of range"),
    (lambda: nn.softmax_cross_entropy_with_logits(labels=np.ones((2, 3)), logits=np.ones((2, 3)), dim=1.0),
     TypeError, "dim must be an int"),
    (lambda: nn.softmax_cross_entropy_with_logits(labels=np.ones((2, 3), int), logits=np.ones((2, 3), int)),
     TypeError, "float16, float32 or float64, got int64"),
    (lambda: nn.sparse_softmax_cross_entropy_with_logits(labels=[0.0, 1.0], logits=np.ones((2, 3))),
     TypeError, "int32 or int64.*float64"),
    (lambda: nn.sparse_softmax_cross_entropy_with_logits(labels=[[0, 1]], logits=np.ones((2, 3))),
     ValueError, r"labels \(1, 2\) \(rank 2\) and logits \(2, 3\) \(rank 2\)"),
    (lambda: nn.sparse_softmax_cross_entropy_with_logits(labels=[0, 1], logits=np.ones((2, 0))),
     ValueError, "at least one class"),
    (lambda: nn.softmax_cross_entropy_with_logits(labels=[[1.0]], logits=[[1.0]], name=3),
     TypeError, "name must be a string"),
    (lambda: raw.SoftmaxCrossEntropyWithLogits(features=np.ones((2, 3, 4)), labels=np.ones((2, 3, 4))),
     ValueError, r"matrix.*\(2, 3, 4\)"),
    (lambda: raw.SparseSoftmaxCrossEntropyWithLogits(features=np.ones(3), labels=[0]),
     ValueError, "matrix"),
    (lambda: raw.SparseSoftmaxCrossEntropyWithLogits(features=np.ones((2, 3)), labels=[0, 1, 2]),
     ValueError, r"\(2,\).*\(3,\)"),
])
def test_bad_input_errors_name_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_out_of_range_label_names_value_position_and_range_and_changes_nothing():
    x = f64(RNG.standard_normal((2, 3, 4)))
    before = x.data.copy()
    labels = np.array([[0, 1, 2], [3, 4, 0]])
    with pytest.raises(ValueError, match=r"labels\[1, 1\] = 4 is out of range: expected a class index in \[0, 4\)"):
        nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x)
    with pytest.raises(ValueError, match=r"labels\[0\] = -1"):
        raw.SparseSoftmaxCrossEntropyWithLogits(features=x.data[0], labels=[-1, 0, 0])
    np.testing.assert_array_equal(x.data, before)


def test_the_node_switch_between_v1_and_v2():
    from minigrad.nn._xent import fused_dense

    x = f64(RNG.standard_normal((2, 3)))
    y = f64(probs((2, 3)))
    loss1, _ = fused_dense(x, y, labels_grad="v1")
    loss2, _ = fused_dense(x, y, labels_grad="v2")
    np.testing.assert_array_equal(loss1.data, loss2.data)
    assert mg.grad(loss1.sum(), [x, y], allow_unused=True)[1] is None
    np.testing.assert_allclose(mg.grad(loss2.sum(), y)[0].data, -log_softmax(x.data), rtol=1e-12)
    with pytest.raises(ValueError, match="labels_grad must be 'v1' or 'v2', got 'v3'"):
        fused_dense(x, y, labels_grad="v3")


@pytest.mark.parametrize("dtype, rtol", [("float16", 2e-2), ("float32", 1e-5)])
def test_second_order_is_accurate_in_low_precision(dtype, rtol):
    # the softmax in the Hessian is recomputed, not formed as backprop + labels (which
    # cancels for the labelled class in float16)
    x = mg.tensor(np.array([0.0, 8.0, 0.0], dtype=dtype), requires_grad=True)
    v = np.array([1.0, -1.0, 0.5], dtype=dtype)
    loss = nn.sparse_softmax_cross_entropy_with_logits(labels=np.int64(0), logits=x)
    (g,) = mg.grad(loss, x, create_graph=True)
    (hv,) = mg.grad((g * v).sum(), x)
    s = np.exp(log_softmax(x.data.astype(np.float64)))
    exact = (np.diag(s) - np.outer(s, s)) @ v
    got = hv.data.astype(np.float64)
    # the small-probability classes, where backprop + labels lost everything in float16
    np.testing.assert_allclose(got[[0, 2]], exact[[0, 2]], rtol=rtol)
    # the big class: v_1 - s.v cancels in any formula, so only to the dtype's precision
    np.testing.assert_allclose(got, exact, atol=4 * np.finfo(dtype).eps)


# -- the cached backprop as the gradient (no [N, C] pass in the common backward) -----------------
def _capture_backprops(monkeypatch):
    seen = []
    for name in ("dense_loss_backprop", "sparse_loss_backprop"):
        real = getattr(_kernels, name)

        def spy(*a, real=real, **kw):
            out = real(*a, **kw)
            seen.append(out[1])
            return out
        monkeypatch.setattr(_kernels, name, spy)
    return seen


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_sum_backward_hands_the_cached_backprop_to_the_logits(monkeypatch, dtype):
    seen = _capture_backprops(monkeypatch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    logits = mg.tensor(x, dtype=dtype, requires_grad=True)
    labels = np.array([0, 1, 2, 3, 4, 0])
    nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits).sum().backward()
    assert logits.grad.data is seen[-1]                  # the kernel's array itself, no copy
    _, expected = sparse_loss_backprop_reference(logits.data.astype(np.float64), labels)
    np.testing.assert_allclose(logits.grad.data.astype(np.float64), expected, rtol=1e-3, atol=1e-3)
    probs = mg.tensor(np.eye(5)[labels], dtype=dtype)
    logits.grad = None
    nn.softmax_cross_entropy_with_logits(labels=probs, logits=logits).sum().backward()
    assert logits.grad.data is seen[-1]


def test_other_upstreams_and_walks_get_a_new_array(monkeypatch):
    seen = _capture_backprops(monkeypatch)
    logits = mg.tensor(np.random.default_rng(1).standard_normal((4, 3)), requires_grad=True)
    labels = np.array([0, 1, 2, 1])
    loss = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    (loss * mg.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()   # not uniform
    assert logits.grad.data is not seen[-1]
    np.testing.assert_allclose(logits.grad.data, seen[-1] * np.array([[1.0], [2.0], [3.0], [4.0]]),
                               rtol=1e-6)
    # retain_graph: the graph (and its cached array) must survive for the second walk
    logits.grad = None
    loss = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits).sum()
    loss.backward(retain_graph=True)
    first = logits.grad.data.copy()
    assert logits.grad.data is not seen[-1]
    logits.grad.data[...] = 99.0                                 # a user scribbling on .grad
    logits.grad = None
    loss.backward()
    np.testing.assert_array_equal(logits.grad.data, first)


def test_create_graph_and_second_derivatives_through_the_fast_path():
    x = np.random.default_rng(2).standard_normal((3, 4))
    logits = mg.tensor(x, dtype="float64", requires_grad=True)
    labels = np.array([1, 0, 3])
    loss = nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits).sum()
    (g,) = mg.grad(loss, logits, create_graph=True)
    s = np.exp(x - x.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g.data, s - np.eye(4)[labels], rtol=1e-12)
    v = np.random.default_rng(3).standard_normal((3, 4))
    (hv,) = mg.grad((g * v).sum(), logits)                       # Hessian-vector product
    expected = s * (v - (v * s).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(hv.data, expected, rtol=1e-10, atol=1e-14)
    assert mg.gradgradcheck(lambda z: nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=z).sum(), [logits])


def test_a_user_holding_the_raw_ops_backprop_keeps_it():
    logits = mg.tensor(np.random.default_rng(4).standard_normal((3, 4)), requires_grad=True)
    loss, backprop = raw.SparseSoftmaxCrossEntropyWithLogits(features=logits, labels=[0, 1, 2])
    kept = backprop.data.copy()
    loss.sum().backward()
    assert not np.shares_memory(logits.grad.data, backprop.data)
    np.testing.assert_array_equal(backprop.data, kept)
    np.testing.assert_array_equal(logits.grad.data, kept)
    logits.grad.data[...] = 0.0
    np.testing.assert_array_equal(backprop.data, kept)


def test_v2_label_gradient_is_minus_log_softmax_without_cancellation():
    # formed as (max - x) + log(sum), not x - logsumexp(x): at 1e8 the latter gives 0
    x = np.array([[1e8, 1e8], [1e4, 10001.0]], np.float32)
    labels = mg.tensor(np.array([[0.5, 0.5], [0.0, 1.0]], np.float32), requires_grad=True)
    nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=x).sum().backward()
    exact = np.array([[np.log(2), np.log(2)], [1.3132616875182228, 0.31326168751822286]])
    # within an ulp: the kernel's log-sum carries float32's exp error (1.31326169 is a near tie)
    np.testing.assert_allclose(labels.grad.data, exact, rtol=2.0 ** -23, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_mean_folds_1_over_n_into_the_handed_over_backprop(monkeypatch, dtype,
                                                                         smoothing):
    if dtype == "bfloat16" and "bfloat16" not in map(str, _kernels.LOGIT_DTYPES):
        pytest.skip("ml_dtypes is not installed")
    seen = _capture_backprops(monkeypatch)
    x = np.random.default_rng(5).standard_normal((7, 4))
    labels = np.array([0, 1, 2, 3, 0, 1, 2])
    logits = mg.tensor(x, dtype=dtype, requires_grad=True)
    nn.cross_entropy(logits, labels, label_smoothing=smoothing).backward()
    assert logits.grad.data is seen[-1]
    q = (1 - smoothing) * np.eye(4)[labels] + smoothing / 4
    xr = logits.data.astype(np.float64)
    s = np.exp(xr - xr.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    eps = {"float64": 1e-15, "float32": 1e-7, "float16": 1e-3, "bfloat16": 8e-3}[dtype]
    np.testing.assert_allclose(logits.grad.data.astype(np.float64), (s - q) / 7, atol=eps, rtol=0)
    # the same through the module and the functional form
    logits.grad = None
    nn.CrossEntropyLoss(label_smoothing=smoothing)(logits, labels).backward()
    assert logits.grad.data is seen[-1]
    logits.grad = None
    nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing).backward()
    assert logits.grad.data is seen[-1]


def test_ndarray_inputs_are_used_in_place_not_copied(monkeypatch):
    seen = []
    real = _kernels.dense_loss_backprop

    def spy(logits, labels, **kw):
        seen.append((logits, labels))
        return real(logits, labels, **kw)
    monkeypatch.setattr(_kernels, "dense_loss_backprop", spy)
    x = np.random.default_rng(6).standard_normal((5, 4)).astype(np.float32)
    y = np.full((5, 4), 0.25, np.float32)
    x.flags.writeable = y.flags.writeable = False          # never written either
    raw.SoftmaxCrossEntropyWithLogits(features=x, labels=y)
    nn.softmax_cross_entropy_with_logits(labels=y, logits=x)
    for logits, labels in seen:
        assert np.shares_memory(logits, x) and np.shares_memory(labels, y)
