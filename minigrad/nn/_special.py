"""The error function and the activation built on it, GELU.

numpy has no ``erf``. This module evaluates the rational minimax approximations of Sun's
fdlibm (``s_erf.c``, 1993, as in FreeBSD's msun and glibc) in float64, and for float32 those of
FreeBSD's ``s_erff.c`` (lower degrees fitted to float precision by S. Kargl, 2014), vectorized
over five ranges of ``y = |x|``; the coefficients are quoted below:

* ``y < 0.84375``: ``erf(x) = x + x R(x^2)`` (the leading ``x`` is exact, so the rational
  part only corrects a value already close);
* ``0.84375 <= y < 1.25``: ``erf(y) = c + P(y - 1) / Q(y - 1)``, ``c`` a short constant near
  ``erf(1)``;
* up to ``1/0.35`` and beyond: ``erfc(y) = exp(-z^2 - 0.5625) exp((z - y)(z + y) + R(1/y^2) /
  S(1/y^2)) / y``, where ``z`` is ``y`` with the low half of its mantissa cleared, so that
  ``z^2 + 0.5625`` is exact and the rational part is a small correction inside the second
  exponential;
* ``y >= 28`` (float32: 11): ``erfc(y)`` underflows to 0 and ``erf`` is ``+-1``.

``erf`` of the upper ranges is ``1 - erfc``; ``erfc(-y) = 2 - erfc(y)``. float64 data is
computed in float64; float32, float16 and bfloat16 in float32. Measured against mpmath over a
sweep of magnitudes (``tests/test_special.py``): in float64, ``erf`` within 1 ulp (0.85 at
worst) and ``erfc`` within 2.5 ulps where its result is a normal number, as glibc's ``erfc``
(the same scheme: its tail is a product of two rounded exponentials); in float32, ``erf``
within 1 and ``erfc`` within 5 float32 ulps.

Derivatives are taken from the input: ``d erf(x) = 2/sqrt(pi) exp(-x^2) dx`` through the
accurate Gaussian below, and GELU's through its own derivative ops.
"""

import math

import numpy as np

from .. import _ops
from .._autograd import Op
from .._tensor import _operand

__all__ = ["erf", "erfc", "erf_array", "erfc_array", "gelu"]

# Coefficients lowest degree first; each denominator's constant term is 1.
_F64 = dict(  # fdlibm s_erf.c
    erx=8.45062911510467529297e-01,  # erf(1) rounded to 24 bits: 1 - erx is exact
    pp=(1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
        -5.77027029648944159157e-03, -2.37630166566501626084e-05),
    qq=(1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
        1.32494738004321644526e-04, -3.96022827877536812320e-06),
    pa=(-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
        3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
        -2.16637559486879084300e-03),
    qa=(1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
        1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02),
    ra=(-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
        -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
        -8.12874355063065934246e+01, -9.81432934416914548592e+00),
    sa=(1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
        6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
        6.57024977031928170135e+00, -6.04244152148580987438e-02),
    rb=(-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
        -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
        -4.83519191608651397019e+02),
    sb=(1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
        3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
        -2.24409524465858183362e+01),
    bounds=(0.84375, 1.25, 1 / 0.35, 28.0),  # the ranges of |x|
)
_F32 = dict(  # FreeBSD s_erff.c (r268590): errors below 2**-28 of the fitted functions
    erx=8.42697144e-01,
    pp=(1.28379166e-01, -3.36030394e-01, -1.86261395e-03),
    qq=(1.0, 3.12324315e-01, 2.16070414e-02, -1.98859372e-03),
    pa=(3.65041046e-06, 4.15109307e-01, -2.09395722e-01, 8.67677554e-02),
    qa=(1.0, 4.95560974e-01, 3.71248513e-01, 3.92478965e-02),
    ra=(-9.88156721e-03, -5.43658376e-01, -1.66828310e+00, -6.91554189e-01),
    sa=(1.0, 4.48581553e+00, 4.10799170e+00, 5.53855181e-01),
    rb=(-9.86496918e-03, -5.48049808e-01, -1.84115684e+00),
    sb=(1.0, 4.87132740e+00, 3.04982710e+00, -7.61900663e-01),
    bounds=(0.84375, 1.25, 2.85715, 11.0),
)


def _table(dtype):
    return _F64 if dtype == np.float64 else _F32


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _float_of(x):
    """``x``'s float dtype (integers become floats as in numpy's unary functions) and ``x``
    in the dtype the arithmetic runs in: float64 for float64, float32 for the others."""
    x = np.asarray(x)
    dtype = np.result_type(x.dtype, np.float16) if x.dtype.kind in "biu" else x.dtype
    work = np.float64 if dtype == np.float64 else np.float32
    return dtype, x.astype(work, copy=False)


def _poly(t, c):
    """``c[0] + t (c[1] + t (c[2] + ...))``, Horner's rule in place (in ``t``'s dtype)."""
    r = t * c[-1]
    r += c[-2]
    for ci in c[-3::-1]:
        r *= t
        r += ci
    return r


def _high_bits(y):
    """``y`` (contiguous) with the low half of its mantissa cleared, so that its square plus
    0.5625 is exact: fdlibm's ``SET_LOW_WORD(z, 0)`` for float64, ``ix & 0xffffe000`` for
    float32."""
    if y.dtype == np.float64:
        return (y.view(np.uint64) & np.uint64(0xFFFFFFFF00000000)).view(np.float64)
    return (y.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def _exp_neg_square(y, c=1.0):
    """``exp(-c y^2)`` for ``c`` a power of 2, without the up to ``y^2`` ulps lost to rounding
    ``y^2``: ``-y^2 = -z^2 - (y - z)(y + z)`` with ``z^2`` exact."""
    shape = np.shape(y)
    y = np.minimum(np.abs(y), 40.0).reshape(-1)  # exp(-800) is already 0; keeps inf - inf out
    z = _high_bits(y)
    d = y - z
    d *= y + z
    d *= -c
    r = np.exp(d, out=d)
    z *= z
    z *= -c
    r *= np.exp(z, out=z)
    return r.reshape(shape)


def _erfc_tail(y, c, lower):
    """``erfc(y)`` in the two tail ranges; ``lower`` selects the ``y < 1/0.35`` fit."""
    s = y * y
    np.divide(1.0, s, out=s)
    ratio = _poly(s, c["ra"]) / _poly(s, c["sa"]) if lower else \
        _poly(s, c["rb"]) / _poly(s, c["sb"])
    z = _high_bits(y)
    ratio += (z - y) * (z + y)
    r = np.exp(ratio, out=ratio)
    z *= z
    z += 0.5625
    np.negative(z, out=z)
    r *= np.exp(z, out=z)
    r /= y
    return r


def _erf_parts(x, complement):
    """erf(x) (``complement=False``) or erfc(x) of a float32 or float64 array.

    Speed matters here (GELU calls it on every activation). numpy's boolean indexing and
    ``np.where`` cost several arithmetic passes each, so the first range's formula, valid for
    either sign, is evaluated on the whole array, and only the elements beyond it are gathered
    by integer index, computed per range and put back. Passes are in place where possible:
    a fresh activation-sized array can cost more in page faults than its arithmetic.
    """
    shape, c = x.shape, _table(x.dtype)
    x = x.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        t = x * x
        r = _poly(t, c["pp"])
        r /= _poly(t, c["qq"])
        r *= x  # x R(x^2)
        if complement:  # 1 - (x + x R) as 0.5 - ((x - 0.5) + x R): less cancellation near 1/2
            r += np.subtract(x, 0.5, out=t)
            out = np.subtract(0.5, r, out=r)
        else:
            out = np.add(x, r, out=r)
        rest = np.flatnonzero(np.abs(x, out=t) >= c["bounds"][0])  # NaN stays in range 0
        if rest.size:
            xs = x[rest]
            out[rest] = _erf_upper(xs, np.abs(xs), c, complement)
    return out.reshape(shape)


def _erf_upper(x, y, c, complement):
    """erf or erfc of the elements with ``y = |x| >= 0.84375`` (fdlibm's other ranges)."""
    bounds = c["bounds"]
    which = (y >= bounds[1]).view(np.int8) + (y >= bounds[2]).view(np.int8) \
        + (y >= bounds[3]).view(np.int8)
    out = np.empty_like(y)  # erf(y) or erfc(y), y > 0
    for k in range(4):
        idx = np.flatnonzero(which == k)
        if not idx.size:
            continue
        ys = y if idx.size == y.size else y[idx]
        if k == 0:  # erf(y) = erx + P/Q(y - 1); erfc = (1 - erx) - P/Q, 1 - erx exact
            s = ys - 1.0
            pq = _poly(s, c["pa"]) / _poly(s, c["qa"])
            v = (1.0 - c["erx"]) - pq if complement else pq + c["erx"]
        elif k < 3:
            v = _erfc_tail(ys, c, lower=k == 1)
            if not complement:
                v = 1.0 - v
        else:  # erfc underflows, erf is 1
            v = np.full_like(ys, 0.0 if complement else 1.0)
        if idx.size == y.size:
            out = v
        else:
            out[idx] = v
    if not complement:
        return np.copysign(out, x)
    neg = np.flatnonzero(x < 0)  # erfc(-y) = 2 - erfc(y)
    if neg.size:
        out[neg] = 2.0 - out[neg]
    return out


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
        dtype, yw = _float_of(y)
        return _exp_neg_square(yw).astype(dtype, copy=False)

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

    fdlibm's rational approximations: within 1 ulp in float64; float32 (and float16,
    bfloat16) computed in float32, within 1 float32 ulp. The gradient is
    ``2/sqrt(pi) exp(-x^2)``.

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
    return Erf.apply(_operand(x))


def erfc(x):
    """The complementary error function ``1 - erf(x)``, accurate where it is tiny (large x).

    >>> minigrad.erfc(minigrad.tensor([0.0, 5.0], dtype="float64"))
    tensor([1.00000000e+00, 1.53745979e-12], dtype=float64)
    """
    return Erfc.apply(_operand(x))


# --------------------------------------------------------------------------------------------
# GELU: x * Phi(x), exactly (Phi through erfc) or with the tanh approximation
# --------------------------------------------------------------------------------------------
# tanh form: 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3). Since
# 1 + tanh(u) = 2 sigmoid(2u), it is computed as x * sigmoid(2u): no cancellation for x < 0.
_K0 = math.sqrt(2 / math.pi)
_K1 = 0.044715


def _normal_cdf(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2, without cancellation in the lower tail."""
    z = x * -_INV_SQRT2
    cdf = _erf_parts(z, complement=True)
    cdf *= 0.5
    return cdf


def _tanh_sigmoid(x):
    """``s = sigmoid(2u)`` and ``e = exp(-|2u|)``. ``s = 1 / (1 + exp(-2u))`` is accurate for
    either sign (where ``exp`` overflows, ``s`` is the right 0)."""
    v = x * x
    v *= _K1
    v += 1.0
    v *= x
    v *= 2 * _K0  # v = 2u
    s = np.negative(v)
    with np.errstate(over="ignore"):
        np.exp(s, out=s)
    s += 1.0
    np.divide(1.0, s, out=s)
    e = np.abs(v, out=v)
    np.negative(e, out=e)
    return s, np.exp(e, out=e)


class Gelu(Op):
    """``x * Phi(x)``, Phi the standard normal CDF, or the tanh form ``x * sigmoid(2u)``.

    The forward keeps Phi (or the sigmoid) for the derivative op, which needs it again.
    """

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, x):
        dtype, xw = _float_of(x)
        if self.approximate == "tanh":
            self.part, self.e = _tanh_sigmoid(xw)
        else:
            self.part, self.e = _normal_cdf(xw), None
        return (xw * self.part).astype(dtype, copy=False)

    def vjp(self, g, out):
        return (g * GeluDerivative.apply(self.inputs[0], approximate=self.approximate,
                                         part=self.part, e=self.e),)


class GeluDerivative(Op):
    """GELU's derivative, computed from ``x``; its own VJP gives the second derivative.

    exact: ``Phi(x) + x phi(x)``; tanh: ``s + 2 x s (1 - s) u'`` with ``s = sigmoid(2u)`` and
    ``s (1 - s) = e / (1 + e)^2``, ``e = exp(-|2u|)`` (no cancellation). ``part`` and ``e``
    are what the forward computed (None: computed here).
    """

    def __init__(self, approximate, part=None, e=None):
        self.approximate, self.part, self.e = approximate, part, e

    def forward(self, x):
        dtype, xw = _float_of(x)
        if self.approximate == "tanh":
            s, e = (self.part, self.e) if self.part is not None else _tanh_sigmoid(xw)
            d = xw * xw
            d *= 3 * _K1
            d += 1.0
            d *= xw
            d *= 2 * _K0  # x u' * 2
            d *= e
            e1 = e + 1.0
            e1 *= e1
            d /= e1
            d += s
        else:
            cdf = self.part if self.part is not None else _normal_cdf(xw)
            if xw.dtype == np.float64:
                d = _exp_neg_square(xw, 0.5)
            else:  # rounding x^2 costs at most x^2 / 2 float32 ulps of phi: in float32, fine
                d = xw * xw
                d *= -0.5
                np.exp(d, out=d)
            d *= xw
            d *= _INV_SQRT_2PI
            d += cdf
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
    return Gelu.apply(_operand(input), approximate=approximate)
