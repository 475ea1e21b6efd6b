"""The low-precision rule: float16/bfloat16 keep their dtype, compute in float32, round once.

The accuracy of each op in ulps is in test_accuracy.py; this module checks the rule itself:
where it applies (the op base class), weak Python scalars, gradients, optimizers, training,
and what a user sees without the optional ml_dtypes package.
"""

import subprocess
import sys

import numpy as np
import pytest

import minigrad
from minigrad import _dtypes, nn, optim

LOW = [np.dtype(np.float16)] + ([_dtypes.bfloat16] if _dtypes.bfloat16 is not None else [])
needs_bf16 = pytest.mark.skipif(_dtypes.bfloat16 is None, reason="ml_dtypes is not installed")
ALL_LOW = [pytest.param(np.dtype(np.float16), id="float16"),
           pytest.param("bfloat16", id="bfloat16", marks=needs_bf16)]


def rounded(values32, dtype):
    """float32 values rounded once to ``dtype`` (the reference for one rounding)."""
    return np.asarray(values32, dtype=np.float32).astype(dtype)


@pytest.mark.parametrize("dtype", ALL_LOW)
def test_elementwise_chain_is_each_op_rounded_once(dtype):
    dtype = _dtypes.as_dtype(dtype)
    x32 = np.linspace(-3, 3, 101, dtype=np.float32)
    x = minigrad.tensor(x32, dtype=dtype)
    xr = x.numpy().astype(np.float32)  # the stored (rounded) input
    got = (x * 0.1).numpy()
    assert got.dtype == dtype
    # 0.1 is not rounded to float16 before the float32 product: one rounding in all
    np.testing.assert_array_equal(got, rounded(xr * np.float32(0.1), dtype))
    got = minigrad.sigmoid(x).numpy()
    e = np.exp(-np.abs(xr))
    np.testing.assert_array_equal(got, rounded(np.where(xr >= 0, 1 / (1 + e), e / (1 + e)), dtype))


@pytest.mark.parametrize("dtype", ALL_LOW)
def test_a_batch_axis_sum_does_not_stall(dtype):
    dtype = _dtypes.as_dtype(dtype)
    ones = minigrad.tensor(np.ones((4096, 2), np.float32), dtype=dtype)
    assert ones.sum(axis=0).numpy().astype(np.float32).tolist() == [4096.0, 4096.0]
    # the bias gradient of a batch of 4096 is such a sum (sum_to)
    b = minigrad.tensor(np.zeros(2, np.float32), dtype=dtype, requires_grad=True)
    (ones + b).sum().backward()
    assert b.grad.dtype == dtype and b.grad.numpy().astype(np.float32).tolist() == [4096.0] * 2


def test_float16_mean_does_not_overflow_and_rounds_once():
    x = minigrad.tensor(np.full(100_000, 3.0, np.float16))
    assert x.mean().item() == 3.0 and x.mean().dtype == np.float16


@pytest.mark.parametrize("dtype", ALL_LOW)
def test_softmax_columns_over_a_long_axis_sum_to_one(dtype):
    dtype = _dtypes.as_dtype(dtype)
    x = np.random.default_rng(0).standard_normal((5000, 3)).astype(np.float32)
    s = minigrad.softmax(minigrad.tensor(x, dtype=dtype), axis=0).numpy().astype(np.float64)
    eps = float(_dtypes.finfo(dtype).eps)
    np.testing.assert_allclose(s.sum(axis=0), 1.0, atol=5000 * eps * s.max() + eps)


def test_the_rule_is_visible_in_the_graph_as_casts():
    x = minigrad.tensor(np.float16([1.0, 2.0]), requires_grad=True)
    listing = (x.exp() * x).sum().graph()
    assert "Cast" in listing and "float32" in listing
    # exact ops (moves, selections) take no casts
    assert "Cast" not in x.reshape(2, 1).transpose().graph()


@pytest.mark.parametrize("dtype", ALL_LOW)
def test_gradients_keep_the_dtype_and_are_computed_in_float32(dtype):
    dtype = _dtypes.as_dtype(dtype)
    x32 = np.float32([-2.0, -0.5, 0.25, 3.0])
    x = minigrad.tensor(x32, dtype=dtype, requires_grad=True)
    minigrad.tanh(x).sum().backward()
    assert x.grad.dtype == dtype
    xr = x.numpy().astype(np.float64)
    expected = 1 / np.cosh(xr) ** 2
    np.testing.assert_allclose(x.grad.numpy().astype(np.float64), expected,
                               rtol=float(_dtypes.finfo(dtype).eps))


@pytest.mark.parametrize("dtype", ALL_LOW)
def test_second_order_through_the_casts(dtype):
    dtype = _dtypes.as_dtype(dtype)
    x = minigrad.tensor(np.float32([0.5, 1.5]), dtype=dtype, requires_grad=True)
    (g,) = minigrad.grad((x ** 3).sum(), x, create_graph=True)
    (gg,) = minigrad.grad(g.sum(), x)
    assert gg.dtype == dtype
    np.testing.assert_allclose(gg.numpy().astype(np.float64), 6 * x.numpy().astype(np.float64),
                               rtol=float(_dtypes.finfo(dtype).eps))


@pytest.mark.parametrize("dtype", ALL_LOW)
def test_mixed_with_python_scalars_and_other_dtypes_follows_numpy(dtype):
    dtype = _dtypes.as_dtype(dtype)
    x = minigrad.tensor([1.0, 2.0], dtype=dtype)
    assert (x + 1).dtype == dtype and (2 * x).dtype == dtype and (x ** 2).dtype == dtype
    assert (x + minigrad.tensor([1.0, 2.0], dtype=np.float32)).dtype == np.float32
    assert minigrad.maximum(x, 0.1).dtype == dtype
    assert minigrad.where(np.array([True, False]), x, 0.3).numpy()[1] == np.float32(0.3).astype(dtype)


@pytest.mark.parametrize("dtype", ALL_LOW)
@pytest.mark.parametrize("make", [
    lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, amsgrad=True, weight_decay=0.1),
], ids=["Adam", "AdamW", "SGD-nesterov", "Adam-amsgrad-wd"])
def test_optimizers_keep_float32_state_and_never_divide_zero_by_zero(dtype, make):
    dtype = _dtypes.as_dtype(dtype)
    w = minigrad.tensor(np.ones(3, np.float32), dtype=dtype, requires_grad=True)
    opt = make([w])
    for _ in range(3):
        w.grad = minigrad.tensor(np.float32([0.0, 1.0, -1.0]), dtype=dtype)
        opt.step()
    assert w.dtype == dtype and np.isfinite(w.numpy().astype(np.float32)).all()
    for value in opt.state[id(w)].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32


def test_adam_float16_step_is_the_float32_step_rounded_once():
    w16 = minigrad.tensor(np.float16([1.0, 0.5]), requires_grad=True)
    w32 = minigrad.tensor(np.float32([1.0, 0.5]), requires_grad=True)
    opt16, opt32 = optim.Adam([w16], lr=0.01), optim.Adam([w32], lr=0.01)
    w16.grad = minigrad.tensor(np.float16([0.0, 0.25]))
    w32.grad = minigrad.tensor(np.float32([0.0, 0.25]))
    opt16.step(), opt32.step()
    np.testing.assert_array_equal(w16.numpy(), w32.numpy().astype(np.float16))


@pytest.mark.parametrize("dtype", ALL_LOW)
def test_a_low_precision_mlp_trains(dtype):
    dtype = _dtypes.as_dtype(dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(8, 16, rng=rng, dtype=dtype), nn.ReLU(),
                          nn.Linear(16, 2, rng=rng, dtype=dtype))
    opt = optim.Adam(model.parameters(), lr=0.01)
    xt = minigrad.tensor(x, dtype=dtype)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = nn.cross_entropy(model(xt), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(np.isfinite(p.numpy().astype(np.float32)).all() for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]


def test_bfloat16_without_ml_dtypes_says_what_to_install(tmp_path):
    code = ("import sys; sys.modules['ml_dtypes'] = None\n"
            "import minigrad\n"
            "try:\n"
            "    minigrad.tensor([1.0], dtype='bfloat16')\n"
            "except ImportError as e:\n"
            "    print('ImportError:', e)\n"
            "print(minigrad.show_config(print_=False).get('bfloat16'))\n"
            "print(minigrad.tensor([1.0], dtype='float16') * 0.1)\n")
    # cwd: away from the source tree, which `python -c` would import ahead of the installed
    # package (CI builds no kernels in place)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path)
    assert "ImportError: bfloat16 needs the optional package ml_dtypes" in out.stdout
    assert 'pip install "minigrad[bfloat16]"' in out.stdout
    assert "float16" in out.stdout.splitlines()[-1]
