"""The error function and the activation built on it, GELU.

numpy has no ``erf``. This module evaluates the rational minimax approximations of Sun's
fdlibm (``s_erf.c``, 1993, as in FreeBSD's msun and glibc), vectorized over five ranges of
``y = |x|``, their coefficients quoted below:

* ``y < 0.84375``: ``erf(x) = x + x R(x^2)`` (the leading ``x`` is exact, so the rational
  part only corrects a value already close);
* ``0.84375 <= y < 1.25``: ``erf(y) = c + P(y - 1) / Q(y - 1)``, ``c`` a 24-bit constant near
  ``erf(1)``;
* ``1.25 <= y < 1/0.35`` and ``1/0.35 <= y < 28``: ``erfc(y) = exp(-z^2 - 0.5625) exp((z - y)
  (z + y) + R(1/y^2) / S(1/y^2)) / y``, where ``z`` is ``y`` with the low 32 bits of its
  mantissa cleared: ``z^2 + 0.5625`` is then exact, and the rational part is a small
  correction added inside the second exponential;
* ``y >= 28``: ``erfc(y)`` underflows to 0 (and ``erf`` is ``+-1`` from ``y >= 6``).

``erf`` of the upper ranges is ``1 - erfc``; ``erfc(-y) = 2 - erfc(y)``. Arithmetic is in
float64 whatever the input (float32 results are the float64 ones rounded once). Measured
against mpmath over a sweep of magnitudes (``tests/test_special.py``): ``erf`` within 1 ulp
(0.85 at worst); ``erfc`` within 2.5 ulps where its result is a normal number, as glibc's
``erfc`` (the same scheme: its tail is a product of two rounded exponentials).

Derivatives are taken from the input: ``d erf(x) = 2/sqrt(pi) exp(-x^2) dx`` through the
accurate Gaussian below, and GELU's through its own derivative ops.
"""

import math

import numpy as np

from .. import _ops
from .._autograd import Op
from .._tensor import as_tensor

__all__ = ["erf", "erfc", "erf_array", "erfc_array", "gelu"]

# fdlibm's coefficients, lowest degree first; each denominator's constant term is 1.
_ERX = 8.45062911510467529297e-01  # erf(1) rounded to 24 bits
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)
_BOUNDS = (0.84375, 1.25, 1 / 0.35, 28.0)

_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _float_of(x):
    """``x``'s float dtype (integers become floats as in numpy's unary functions) and ``x``
    as float64 for the arithmetic."""
    x = np.asarray(x)
    dtype = np.result_type(x.dtype, np.float16) if x.dtype.kind in "biu" else x.dtype
    return dtype, x.astype(np.float64, copy=False)


def _poly(t, c):
    """``c[0] + t (c[1] + t (c[2] + ...))``, Horner's rule in place."""
    r = t * c[-1]
    r += c[-2]
    for ci in c[-3::-1]:
        r *= t
        r += ci
    return r


def _high_bits(y):
    """``y`` (float64, contiguous) with the low 32 bits of its mantissa cleared: 21 significant
    bits, so that its square is exact (fdlibm's ``SET_LOW_WORD(z, 0)``)."""
    return (y.view(np.uint64) & np.uint64(0xFFFFFFFF00000000)).view(np.float64)


def _exp_neg_square(y, c=1.0):
    """``exp(-c y^2)`` for float64 ``y`` and ``c`` a power of 2, without the up to ``y^2``
    ulps lost to rounding ``y^2``: ``-y^2 = -z^2 - (y - z)(y + z)`` with ``z^2`` exact."""
    shape = np.shape(y)
    y = np.minimum(np.abs(y), 40.0).reshape(-1)  # exp(-800) is already 0; keeps inf - inf out
    z = _high_bits(y)
    return (np.exp(-c * (z * z)) * np.exp(-c * ((y - z) * (y + z)))).reshape(shape)


def _erfc_tail(y, lower):
    """``erfc(y)`` for float64 ``1.25 <= y < 28``; ``lower`` selects the ``y < 1/0.35`` fit."""
    s = 1.0 / (y * y)
    ratio = _poly(s, _RA) / _poly(s, _SA) if lower else _poly(s, _RB) / _poly(s, _SB)
    z = _high_bits(y)
    return np.exp(-z * z - 0.5625) * np.exp((z - y) * (z + y) + ratio) / y


def _erf_parts(x, complement):
    """erf(x) (``complement=False``) or erfc(x) of a float64 array, range by range."""
    shape = x.shape
    x = x.reshape(-1)
    y = np.abs(x)
    which = np.searchsorted(_BOUNDS, y, side="right")  # NaN sorts last: range 4
    out = np.empty_like(x)
    for k in range(5):
        mask = which == k
        if not mask.any():
            continue
        whole = mask.all()
        xs = x if whole else x[mask]
        if k == 0:
            r = xs * (_poly(xs * xs, _PP) / _poly(xs * xs, _QQ))
            if not complement:
                r += xs
            else:  # 1 - erf; for x >= 1/4 as 0.5 - (x - 0.5 + x R), which cancels less
                r = np.where(xs < 0.25, 1.0 - (xs + r), 0.5 - ((xs - 0.5) + r))
        elif k == 1:
            s = np.abs(xs) - 1.0
            pq = _poly(s, _PA) / _poly(s, _QA)
            if complement:
                r = np.where(xs > 0, (1.0 - _ERX) - pq, 1.0 + (_ERX + pq))
            else:
                r = np.copysign(_ERX + pq, xs)
        elif k in (2, 3):
            e = _erfc_tail(np.abs(xs), lower=k == 2)
            if complement:
                r = np.where(xs > 0, e, 2.0 - e)
            else:
                r = np.copysign(1.0 - e, xs)
        else:  # |x| >= 28, inf and NaN
            if complement:
                r = np.where(xs > 0, 0.0, 2.0)
            else:
                r = np.copysign(1.0, xs)
            r = np.where(np.isnan(xs), xs, r)
        if whole:
            return r.reshape(shape)
        out[mask] = r
    return out.reshape(shape)


def erf_array(x):
    """erf of an array, elementwise (numpy in, numpy out, float dtype kept; ints give floats).

    >>> erf_array(np.array([0.0, 0.5, -3.0]))
    array([ 0.        ,  0.52049988, -0.99997791])
    """
    dtype, x64 = _float_of(x)
    return _erf_parts(x64, complement=False).astype(dtype, copy=False)


def erfc_array(x):
    """``1 - erf(x)`` of an array, elementwise, without cancellation for large ``x``.

    >>> float(erfc_array(np.array(10.0)))
    2.088487583762545e-45
    """
    dtype, x64 = _float_of(x)
    return _erf_parts(x64, complement=True).astype(dtype, copy=False)


class Gaussian(Op):
    """``exp(-y^2)`` evaluated from the input without rounding ``y^2`` first."""

    def forward(self, y):
        dtype, y64 = _float_of(y)
        return _exp_neg_square(y64).astype(dtype, copy=False)

    def vjp(self, g, out):  # d exp(-y^2) = -2 y exp(-y^2) dy
        return (g * (-2 * self.inputs[0]) * out,)


class Erf(Op):
    def forward(self, x):
        return erf_array(x)

    def vjp(self, g, out):  # d erf(x) = 2/sqrt(pi) exp(-x^2) dx
        return (g * Gaussian.apply(self.inputs[0]) * _TWO_OVER_SQRT_PI,)


class Erfc(Op):
    def forward(self, x):
        return erfc_array(x)

    def vjp(self, g, out):  # d erfc(x) = -2/sqrt(pi) exp(-x^2) dx
        return (g * Gaussian.apply(self.inputs[0]) * -_TWO_OVER_SQRT_PI,)


def erf(x):
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``, elementwise.

    Within 1 ulp in float64 (W. J. Cody's rational approximations); float32 results are the
    float64 ones rounded once. The gradient is ``2/sqrt(pi) exp(-x^2)``.

    Examples
    --------
    >>> x = minigrad.tensor([0.0, 1.0], dtype="float64", requires_grad=True)
    >>> y = minigrad.erf(x)
    >>> y
    tensor([0.        , 0.84270079], dtype=float64, node=Erf)
    >>> y.sum().backward()
    >>> x.grad.numpy().round(6)     # 2/sqrt(pi) exp(-x^2)
    array([1.128379, 0.415107])
    """
    return Erf.apply(as_tensor(x))


def erfc(x):
    """The complementary error function ``1 - erf(x)``, accurate where it is tiny (large x).

    >>> minigrad.erfc(minigrad.tensor([0.0, 5.0], dtype="float64"))
    tensor([1.00000000e+00, 1.53745979e-12], dtype=float64)
    """
    return Erfc.apply(as_tensor(x))


# --------------------------------------------------------------------------------------------
# GELU: x * Phi(x), exactly (Phi through erfc) or with the tanh approximation
# --------------------------------------------------------------------------------------------
# tanh form: 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3). Since
# 1 + tanh(u) = 2 sigmoid(2u), it is computed as x * sigmoid(2u): no cancellation for x < 0.
_K0 = math.sqrt(2 / math.pi)
_K1 = 0.044715


def _sigmoid64(v):
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e)), e


def _tanh_parts(x):
    """For float64 ``x``: ``s = sigmoid(2u)``, ``s (1 - s)`` without cancellation, and ``u'``."""
    x2 = x * x
    s, e = _sigmoid64(2 * _K0 * x * (1 + _K1 * x2))
    s_one_minus_s = e / ((1 + e) * (1 + e))  # s (1 - s) = e / (1 + e)^2, e = exp(-|2u|)
    return s, s_one_minus_s, _K0 * (1 + 3 * _K1 * x2)


class Gelu(Op):
    """``x * Phi(x)``, Phi the standard normal CDF, ``Phi(x) = erfc(-x / sqrt(2)) / 2``."""

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, x):
        dtype, x64 = _float_of(x)
        if self.approximate == "tanh":
            return (x64 * _tanh_parts(x64)[0]).astype(dtype, copy=False)
        return (x64 * (0.5 * _erf_parts(-_INV_SQRT2 * x64, complement=True))).astype(dtype, copy=False)

    def vjp(self, g, out):
        return (g * GeluDerivative.apply(self.inputs[0], approximate=self.approximate),)


class GeluDerivative(Op):
    """GELU's derivative, computed from ``x``; its own VJP gives the second derivative.

    exact: ``Phi(x) + x phi(x)``; tanh: ``s + 2 x s (1 - s) u'`` with ``s = sigmoid(2u)``.
    """

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, x):
        dtype, x64 = _float_of(x)
        if self.approximate == "tanh":
            s, sps, du = _tanh_parts(x64)
            d = s + 2 * x64 * sps * du
        else:
            cdf = 0.5 * _erf_parts(-_INV_SQRT2 * x64, complement=True)
            d = cdf + x64 * _INV_SQRT_2PI * _exp_neg_square(x64, 0.5)
        return d.astype(dtype, copy=False)

    def vjp(self, g, out):
        x = self.inputs[0]
        if self.approximate == "tanh":
            # with v = 2u: y' = s + x s(1-s) v', y'' = s(1-s) (2 v' + x (1 - 2s) v'^2 + x v'')
            v = (x * x * _K1 + 1) * x * (2 * _K0)
            s, s_neg = _ops.sigmoid(v), _ops.sigmoid(-v)
            dv = (x * x * (3 * _K1) + 1) * (2 * _K0)
            d2v = x * (12 * _K0 * _K1)
            second = s * s_neg * (2 * dv + x * (s_neg - s) * dv * dv + x * d2v)
        else:
            # y'' = phi(x) (2 - x^2), phi(x) = exp(-(x / sqrt 2)^2) / sqrt(2 pi)
            second = Gaussian.apply(x * _INV_SQRT2) * _INV_SQRT_2PI * (2 - x * x)
        return (g * second,)


_APPROXIMATE = ("none", "tanh")


def gelu(input, approximate="none"):
    """Gaussian Error Linear Unit, ``x * Phi(x)`` (see :func:`minigrad.nn.functional.gelu`)."""
    if not isinstance(approximate, str) or approximate not in _APPROXIMATE:
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(as_tensor(input), approximate=approximate)
