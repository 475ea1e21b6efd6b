"""Accuracy in ulps (issue 7): every op's worst error over sweeps of magnitudes, per dtype.

The cases (inputs, exact values, bounds) are in ``_accuracy_cases.py``, shared with
benchmarks/accuracy.py, which prints the same errors beside PyTorch's; ``_ulp.py`` measures.
A failure names the worst input, minigrad's result, the exact value and the error.

Bounds: float16 and bfloat16 results are computed in float32 and rounded once, so they are
within half an ulp plus float32's error (0.501-0.51). float32 and float64 results are within
half an ulp where numpy's own operation is correctly rounded (arithmetic, sqrt), within numpy's
error where it is not (float32 exp/log/tanh 2-3 ulp, accepted by the issue; float64 exp/log
under 1, tanh up to 2 where numpy has no AVX2 loop), and within a few ulps of math.fsum for
sums. Composites in float32/float64 add their steps' roundings: softmax (exp, sum, division)
up to 6, tanh'/sigmoid' up to 5. The bounds hold with numpy's AVX512, AVX2 and baseline loops
(checked with NPY_DISABLE_CPU_FEATURES). Bounds the issue asks for that minigrad does not reach
yet are asserted as strict xfails, next to the bound it does reach.

Last, the issue's examples, each against its exact value.
"""

import math

import numpy as np
import pytest

import minigrad as mg
from minigrad import _dtypes

import _accuracy_cases as cases
from _ulp import DTYPES, ulp_errors, wide_dtype, worst

ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")
SEED = 7


def _params():
    params = []
    for case in cases.CASES:
        for name in ALL_DTYPES:
            if name not in case.bounds:
                continue
            bound, reason = case.xfail.get(name, (None, None))
            xfail = pytest.mark.xfail(strict=True, reason=reason)
            marks = [xfail] if bound == case.bounds[name] else []
            params.append(pytest.param(case, name, case.bounds[name], id=f"{case.name}-{name}",
                                       marks=marks))
            if bound is not None and bound != case.bounds[name]:  # the issue's, beside ours
                params.append(pytest.param(case, name, bound, id=f"{case.name}-{name}-issue-bound",
                                           marks=[xfail]))
    return params


def _dtype(name):
    if name not in DTYPES:
        pytest.skip(f"{name} needs the optional package ml_dtypes")
    dtype = DTYPES[name]
    if wide_dtype(dtype) is None:
        pytest.skip("float64 references need x87 extended precision (np.longdouble)")
    return dtype


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow, log(0), 0/0 are swept on purpose
@pytest.mark.parametrize("case, dtype_name, bound", _params())
def test_accuracy(case, dtype_name, bound):
    dtype = _dtype(dtype_name)
    if case.dtypes_ok is not None and case.dtypes_ok(dtype) is not None:
        pytest.skip(case.dtypes_ok(dtype))
    arrays = case.inputs(dtype, np.random.default_rng(SEED))
    got = cases.run_minigrad(case, arrays)
    assert got.dtype == dtype, f"{case.name}: result dtype {got.dtype}, expected {dtype}"
    err, message = cases.report(case, dtype, arrays, got)
    assert err <= bound, f"over the bound of {bound} ulp: {message}"


# -- the examples ---------------------------------------------------------------------
def assert_ulps(got, exact, dtype, bound, inputs=()):
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"result dtype {got.dtype}, expected {np.dtype(dtype)}"
    exact = np.asarray(exact, dtype=wide_dtype(dtype))
    err = ulp_errors(got, exact, dtype)
    assert err.max() <= bound, worst(err, got, exact, inputs)


def test_log_softmax_does_not_cancel_at_1e4():
    x = np.float32([1e4, 10001])
    got = mg.log_softmax(mg.tensor(x)).numpy()
    exact = np.array([-math.log1p(math.e), -math.log1p(math.exp(-1))])  # -log(1 + e^{+-1})
    assert_ulps(got, exact, np.float32, 1.0, [x])  # numpy's float32 log: not always 0.5
    np.testing.assert_array_max_ulp(got, np.float32([-1.3132617, -0.3132617]), maxulp=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_softmax_of_equal_large_logits_is_minus_log_2(dtype):
    for x in ([1e8, 1e8], [-1e8, -1e8]):
        got = mg.log_softmax(mg.tensor(np.array(x, dtype))).numpy()
        assert_ulps(got, [-math.log(2)] * 2, dtype, 0.5)


def test_float16_sum_over_a_batch_axis_does_not_stall_at_2048():
    got = mg.tensor(np.ones((4096, 2), np.float16)).sum(axis=0).numpy()
    assert got.dtype == np.float16 and got.tolist() == [4096, 4096]


def test_float16_bias_gradient_over_4096_rows():
    x = mg.tensor(np.ones((4096, 2), np.float16))
    b = mg.tensor(np.zeros(2, np.float16), requires_grad=True)
    (x + b).sum().backward()
    assert b.grad.dtype == np.float16 and b.grad.numpy().tolist() == [4096, 4096]


def test_float16_softmax_over_5000_rows_sums_to_1():
    x = np.random.default_rng(0).standard_normal((5000, 3)).astype(np.float16)
    s = mg.softmax(mg.tensor(x), axis=0)
    columns = s.numpy().astype(np.float64).sum(axis=0)  # the float16 values, added exactly
    eps = float(np.finfo(np.float16).eps)
    assert np.all(np.abs(columns - 1) <= 2 * eps), columns
    assert np.all(np.abs(s.sum(axis=0).numpy().astype(np.float64) - 1) <= 2 * eps)
    lse = mg.logsumexp(mg.tensor(x), axis=0).numpy()
    exact = np.log(np.exp(x.astype(np.float64)).sum(axis=0))
    assert_ulps(lse, exact, np.float16, 0.51)


def test_float32_sum_of_a_million_down_axis_0():
    x = np.random.default_rng(1).uniform(0, 1, (10**6, 2)).astype(np.float32)
    got = mg.tensor(x).sum(axis=0).numpy()
    exact = [math.fsum(col) for col in x.T.astype(np.float64).tolist()]
    assert_ulps(got, exact, np.float32, 3.0)
    mean = mg.tensor(x).mean(axis=0).numpy()
    assert_ulps(mean, np.array(exact) / 10**6, np.float32, 3.0)


def _derivative(fn, x, dtype):
    t = mg.tensor(np.array(x, dtype), requires_grad=True)
    fn(t).sum().backward()
    return t.grad.numpy()


def test_saturating_derivatives_from_the_input():
    # exact: s(x) s(-x) and 1 - tanh(x)^2 = 4 e^{-2x} / (1 + e^{-2x})^2, in float64 from the
    # float32 input (for float64, from the 17-digit value of e^-40 / (1 + e^-40)^2)
    got = _derivative(mg.sigmoid, [20.0], np.float32)
    assert_ulps(got, [math.exp(-20) / (1 + math.exp(-20)) ** 2], np.float32, 5.0)
    np.testing.assert_allclose(got, [2.0611537e-9], rtol=1e-7)
    x = float(np.float32(9.977836))
    e = math.exp(-2 * x)
    got = _derivative(mg.tanh, [x], np.float32)
    assert_ulps(got, [4 * e / (1 + e) ** 2], np.float32, 5.0)
    np.testing.assert_allclose(got, [8.6183e-9], rtol=1e-4)
    got = _derivative(mg.sigmoid, [40.0], np.float64)
    np.testing.assert_allclose(got, [4.248354255291589e-18], rtol=4e-16)


def test_cube_root_gradient_in_float32():
    x = np.float32(np.geomspace(1e-30, 1e30, 2001))
    got = _derivative(lambda t: t ** (1 / 3), x, np.float32)
    p = float(np.float32(1 / 3))  # the weak scalar as float32 computes with it
    exact = p * np.power(x.astype(np.float64), p - 1)
    assert_ulps(got, exact, np.float32, 1.0, [x])


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_low_precision_times_a_python_scalar_rounds_once(name):
    dtype = _dtype(name)
    every = np.arange(2**16, dtype=np.uint16).view(dtype)  # every value of the dtype
    every = every[np.isfinite(every.astype(np.float32))]
    with np.errstate(over="ignore"):
        expected = (every.astype(np.float32) * np.float32(0.1)).astype(dtype)
        got = (mg.tensor(every) * 0.1).numpy()
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))


def test_v2_label_gradient_of_float16_logits():
    rng = np.random.default_rng(3)
    logits = (2 * rng.standard_normal((256, 10))).astype(np.float16)
    labels = mg.tensor(rng.dirichlet(np.ones(10), 256).astype(np.float16), requires_grad=True)
    mg.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=mg.tensor(logits)).sum().backward()
    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    exact = -((x - m) - np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))
    assert_ulps(labels.grad.numpy(), exact, np.float16, 1.0, [logits])
    # the row: labels of logits [[1e8, 1e8]] get log 2, not 0
    big = mg.tensor([[0.5, 0.5]], requires_grad=True)
    mg.nn.softmax_cross_entropy_with_logits_v2(labels=big, logits=mg.tensor([[1e8, 1e8]])).sum().backward()
    assert_ulps(big.grad.numpy(), [[math.log(2)] * 2], np.float32, 0.5)


def test_ulp_measure_itself():
    # the measure the module relies on: spacing per dtype, half an ulp for a rounded value,
    # the non-finite rule
    for name, dtype in DTYPES.items():
        fi = _dtypes.finfo(dtype)
        one = np.asarray(1.0, wide_dtype(dtype) or np.float64)
        exact = one + float(fi.eps) / 4
        assert ulp_errors(np.asarray(1.0).astype(dtype), exact, dtype) == 0.25
        big = np.asarray(float(fi.max), np.float64).astype(wide_dtype(dtype) or np.float64)
        assert ulp_errors(np.asarray(np.inf).astype(dtype), big * 2, dtype) == 0
        assert ulp_errors(np.asarray(float(fi.max)).astype(dtype), big * 2, dtype) == np.inf
        assert ulp_errors(np.asarray(np.nan).astype(dtype), one * np.nan, dtype) == 0
        assert ulp_errors(np.asarray(0.0).astype(dtype), one * np.nan, dtype) == np.inf
