"""erf, erfc and GELU: accuracy in ulps over a sweep of magnitudes, special values, gradients
of the first and second order, and PyTorch's values where torch is installed."""

import math

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn
from minigrad.nn._special import Gaussian, GeluDerivative, erf_array, erfc_array

RNG = np.random.default_rng(20)


def sweep(n_per_decade=60):
    """Positive and negative points from the subnormals to 1e3, denser where erf bends."""
    decades = np.concatenate([RNG.uniform(lo, lo + 1, n_per_decade) for lo in range(-323, 3)])
    linear = RNG.uniform(0, 30, 4000)
    edges = np.array([0.84375, 1.25, 1 / 0.35, 6.0, 26.5, 27.0, 28.0, 0.25, 0.5])
    near = np.concatenate([np.nextafter(edges, 0), edges, np.nextafter(edges, np.inf)])
    x = np.concatenate([10.0 ** decades, linear, near])
    return np.concatenate([x, -x])


def ulps(got, exact):
    """|got - exact| in units of the last place of the float64 nearest ``exact``."""
    return float(abs(mpmath.mpf(float(got)) - exact) / np.spacing(abs(float(exact))))


mpmath = None


@pytest.fixture(scope="module")
def mp():
    global mpmath
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 120
    return mpmath


def test_erf_is_within_one_ulp_of_the_exact_value(mp):
    x = sweep(25)
    got = erf_array(x)
    worst = max(ulps(g, mp.erf(mp.mpf(float(v)))) for g, v in zip(got, x) if v != 0)
    assert worst <= 1.0, worst


def test_erfc_is_within_three_ulps_where_normal_and_tiny_absolute_error_where_subnormal(mp):
    # erfc's tail is a product of two exponentials and a division, each rounded: up to about
    # 2.4 ulps, as glibc's erfc (the same fdlibm scheme), measured side by side below.
    x = sweep(25)
    got = erfc_array(x)
    tiny = np.finfo(np.float64).tiny
    worst = worst_libm = 0.0
    for g, v in zip(got, x):
        exact = mp.erfc(mp.mpf(float(v)))
        if float(exact) >= tiny:
            worst = max(worst, ulps(g, exact))
            worst_libm = max(worst_libm, ulps(math.erfc(v), exact))
        else:  # subnormal results: count in multiples of the smallest subnormal
            assert abs(mp.mpf(float(g)) - exact) <= 4 * 5e-324, v
    assert worst <= 3.0 and worst <= worst_libm + 1.0, (worst, worst_libm)


def test_erf_and_erfc_agree_with_the_c_library():
    # No mpmath needed: erf within 2 ulps of libm's (each is within 1 ulp of the exact value),
    # erfc within 5 (each within about 2.5, possibly on opposite sides).
    x = sweep(10)
    for fn, ref, limit in ((erf_array, math.erf, 2.0), (erfc_array, math.erfc, 5.0)):
        got = fn(x)
        want = np.array([ref(v) for v in x])
        gap = np.abs(got - want) / np.spacing(np.maximum(np.abs(want), np.finfo(float).tiny))
        assert gap.max() <= limit, (fn.__name__, x[np.argmax(gap)], gap.max())


def test_special_values_dtypes_and_symmetry():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e308, -1e308, 5e-324, -5e-324])
    e = erf_array(x)
    np.testing.assert_array_equal(e[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(e[1]) and not np.signbit(e[0]) and np.isnan(e[4])
    np.testing.assert_array_equal(e[5:7], [1.0, -1.0])
    assert e[7] > 0 and e[8] < 0  # 2/sqrt(pi) * 5e-324 rounds to the smallest subnormal
    c = erfc_array(x)
    np.testing.assert_array_equal(c[[0, 1, 2, 3, 5, 6]], [1.0, 1.0, 0.0, 2.0, 0.0, 2.0])
    assert np.isnan(c[4])
    y = RNG.uniform(-8, 8, 1000)
    np.testing.assert_array_equal(erf_array(-y), -erf_array(y))
    np.testing.assert_allclose(erfc_array(-y), 2 - erfc_array(y), rtol=0, atol=4e-16)
    # integers become floats as in numpy's unary functions
    assert erf_array(np.array([1, 2])).dtype == np.float64
    assert erf_array(np.array([[]])).shape == (1, 0)


def test_float32_is_computed_in_float32_within_a_few_float32_ulps():
    x = np.concatenate([RNG.uniform(-10, 10, 20000),
                        10.0 ** RNG.uniform(-40, 1, 10000) * RNG.choice([-1, 1], 10000)]).astype(np.float32)
    for fn, limit in ((erf_array, 1.0), (erfc_array, 5.0)):
        got = fn(x)
        assert got.dtype == np.float32
        exact = fn(x.astype(np.float64))  # float64 is within 3 float64 ulps: exact enough here
        normal = np.abs(exact) >= np.finfo(np.float32).tiny
        spacing = np.spacing(np.abs(exact[normal]).astype(np.float32)).astype(np.float64)
        worst = (np.abs(got[normal] - exact[normal]) / spacing).max()
        assert worst <= limit, (fn.__name__, worst)
    half = erf_array(np.array([0.5, -2.0], dtype=np.float16))  # computed in float32
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half, erf_array(np.array([0.5, -2.0])).astype(np.float16))


def test_gaussian_keeps_the_bits_that_rounding_x_squared_would_lose(mp):
    y = np.concatenate([RNG.uniform(0, 27, 400), -RNG.uniform(0, 27, 100)])
    got = Gaussian.apply(mg.tensor(y)).numpy()
    worst = max(ulps(g, mp.exp(-mp.mpf(float(v)) ** 2)) for g, v in zip(got, y)
                if math.exp(-v * v) > 1e-300)
    naive = max(ulps(math.exp(-v * v), mp.exp(-mp.mpf(float(v)) ** 2)) for v in y
                if math.exp(-v * v) > 1e-300)
    assert worst <= 2.0 < naive  # two rounded exponentials and a product; naive loses x^2 ulps


@pytest.mark.parametrize("fn", [mg.erf, mg.erfc, lambda x: Gaussian.apply(x)])
def test_erf_gradients_first_and_second_order(fn):
    x = mg.tensor(RNG.uniform(-3, 3, 7), dtype="float64", requires_grad=True)
    assert mg.gradcheck(fn, [x])
    assert mg.gradgradcheck(fn, [x])
    (g,) = mg.grad(fn(x).sum(), x)
    sign = -1 if fn is mg.erfc else 1
    if fn in (mg.erf, mg.erfc):
        np.testing.assert_allclose(g.numpy(), sign * 2 / np.sqrt(np.pi) * np.exp(-x.numpy() ** 2),
                                   rtol=1e-14)


def test_erf_tensor_api_and_float32():
    x = mg.tensor([0.5, -1.5], requires_grad=True)
    y = mg.erf(x)
    assert y.dtype == np.float32 and y.requires_grad
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), 2 / np.sqrt(np.pi) * np.exp(-x.numpy() ** 2), rtol=1e-6)


# -- GELU -------------------------------------------------------------------------------------
def gelu_exact_reference(mp, v):
    v = mp.mpf(float(v))
    return v * mp.ncdf(v)


def test_gelu_exact_values_in_ulps_including_the_negative_tail(mp):
    # x Phi(x) through erfc keeps its relative accuracy where 0.5 x (1 + erf(x/sqrt2))
    # cancels (x < -3). What remains is the rounding of x / sqrt(2) (up to 1 ulp, which erfc
    # amplifies to about x^2 ulps in the tail) and erfc's own 2.5 ulps.
    x = np.concatenate([RNG.uniform(-3, 6, 300), RNG.uniform(-30, -3, 100)])
    got = F.gelu(mg.tensor(x)).numpy()
    for g, v in zip(got, x):
        exact = gelu_exact_reference(mp, v)
        if float(exact) != 0:
            assert ulps(g, exact) <= 8 + 2 * v * v, (v, ulps(g, exact))
    cancel = 0.5 * x * (1 + erf_array(x / np.sqrt(2)))
    assert np.any(np.abs(cancel - got) > 1e3 * np.spacing(np.abs(got)))  # the naive form loses


def test_gelu_tanh_equals_the_textbook_formula_and_is_accurate_for_negative_x(mp):
    x = RNG.uniform(-6, 6, 500)
    got = F.gelu(mg.tensor(x), approximate="tanh").numpy()
    u = np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)
    np.testing.assert_allclose(got, 0.5 * x * (1 + np.tanh(u)), rtol=1e-12, atol=1e-13)
    for v in (-4.0, -7.5, -12.0):
        w = mp.mpf(v)
        exact = w / (1 + mp.exp(-2 * mp.sqrt(2 / mp.pi) * (w + mp.mpf("0.044715") * w ** 3)))
        got = F.gelu(mg.tensor([v], dtype="float64"), approximate="tanh").numpy()[0]
        assert ulps(got, exact) <= 4 + v * v


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_derivative_op_against_mpmath(mp, approximate):
    x = RNG.uniform(-8, 8, 200)
    got = GeluDerivative.apply(mg.tensor(x), approximate=approximate).numpy()

    def f(v):
        if approximate == "none":
            return v * mp.ncdf(v)
        return v / (1 + mp.exp(-2 * mp.sqrt(2 / mp.pi) * (v + mp.mpf("0.044715") * v ** 3)))

    exact = np.array([float(mp.diff(f, mp.mpf(float(v)))) for v in x])
    np.testing.assert_allclose(got, exact, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradients_first_second_and_third_order(approximate):
    x = mg.tensor(RNG.uniform(-3, 3, 6), dtype="float64", requires_grad=True)
    fn = lambda x: F.gelu(x, approximate=approximate)  # noqa: E731
    assert mg.gradcheck(fn, [x]) and mg.gradgradcheck(fn, [x])

    def second(x):  # d/dx of the gradient's sum: the second derivative, elementwise
        (g,) = mg.grad(fn(x).sum(), x, create_graph=True)
        (h,) = mg.grad(g.sum(), x, create_graph=True)
        return h

    assert mg.gradcheck(second, [x])  # so third derivatives are right too


def test_gelu_module_dtypes_and_errors():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    for approximate in ("none", "tanh"):
        y = nn.GELU(approximate)(x)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y.numpy(), F.gelu(x.astype(np.float64), approximate).numpy(), rtol=1e-6)
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    with pytest.raises(ValueError, match=r"approximate must be 'none' or 'tanh', got 'fast'"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match=r"approximate must be 'none' or 'tanh', got 'erf'"):
        F.gelu(x, approximate="erf")
    with pytest.raises(TypeError, match=r"input must be a floating-point tensor, got dtype int64"):
        F.gelu(np.arange(3))
    assert F.gelu(mg.tensor([np.inf, np.nan], dtype="float64")).numpy()[0] == np.inf


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_pytorch_values_and_gradients(approximate):
    torch = pytest.importorskip("torch")
    x = RNG.uniform(-5, 5, 50)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.gelu(tx, approximate=approximate)
    (tg,) = torch.autograd.grad(ty.sum(), tx, create_graph=True)
    (th,) = torch.autograd.grad(tg.sum(), tx)
    mx = mg.tensor(x, requires_grad=True)
    my = F.gelu(mx, approximate=approximate)
    (mgr,) = mg.grad(my.sum(), mx, create_graph=True)
    (mh,) = mg.grad(mgr.sum(), mx)
    np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mgr.numpy(), tg.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mh.numpy(), th.numpy(), rtol=1e-10, atol=1e-13)
