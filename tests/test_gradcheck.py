"""The gradient checks: planted mistakes are caught and named, correct ops pass.

Each planted mistake is a small ``Op`` with one realistic bug in its ``vjp``. The tests check
that the report names the right input and the right elements, and that the diagnosis names
the pattern. Then every built-in op and loss, in every float dtype, must pass: no false alarms.
"""

import numpy as np
import pytest

import minigrad as mg
from minigrad import _dtypes, nn
from minigrad.testing import assert_gradients_close

HAS_BFLOAT16 = _dtypes.bfloat16 is not None
needs_bfloat16 = pytest.mark.skipif(not HAS_BFLOAT16, reason="bfloat16 needs the optional ml_dtypes")


def f64(data):
    return mg.tensor(np.asarray(data, dtype=np.float64), requires_grad=True)


def caught(check, fn, args, **kwargs):
    """The GradcheckError ``check`` raises (the test fails if it passes)."""
    with pytest.raises(mg.GradcheckError) as info:
        check(fn, args, **kwargs)
    return info.value


def wrong_indices(failure):
    return sorted({e.index for e in failure.entries})


# --------------------------------------------------------------------------------------------
# Planted mistakes
# --------------------------------------------------------------------------------------------
class HalfSquare(mg.Op):
    """x², whose vjp drops the factor 2."""

    def forward(self, x):
        return x * x

    def vjp(self, g, out):
        return (g * self.inputs[0],)


def test_dropped_constant_factor():
    x = f64([0.5, -1.5])
    err = caught(mg.gradcheck, lambda x: HalfSquare.apply(x), [x])
    assert isinstance(err, AssertionError)
    (failure,) = err.failures
    assert failure.input == 0 and failure.shape == (2,) and (failure.wrong, failure.total) == (2, 4)
    assert wrong_indices(failure) == [(0,), (1,)]
    for e in failure.entries:  # each entry is one derivative: x against 2x
        assert e.analytic == pytest.approx(e.value) and e.numeric == pytest.approx(2 * e.value)
    text = str(err)
    assert "input0 (shape (2,)): 2 of 4 Jacobian entries differ" in text
    assert "d out[1] / d input0[1]" in text and "-1.5" in text
    assert "a constant ratio: analytic = 0.5 × numeric" in text
    assert mg.gradcheck(lambda x: HalfSquare.apply(x), [x], raise_exception=False) is False


class SoftplusExtraFactor(mg.Op):
    """log(1 + e^x), derivative sigmoid(x); the vjp multiplies by sigmoid(x) twice."""

    def forward(self, x):
        return np.logaddexp(0, x)

    def vjp(self, g, out):
        s = self.inputs[0].sigmoid()
        return (g * s * s,)


def test_factor_that_depends_on_the_input_shows_in_the_ratio():
    x = f64([[-1.0, 0.3, 2.0], [0.7, -2.5, 1.2]])
    (failure,) = caught(mg.gradcheck, lambda x: SoftplusExtraFactor.apply(x), [x]).failures
    assert wrong_indices(failure) == [(i, j) for i in range(2) for j in range(3)]
    for e in failure.entries:  # the report carries what a reader needs to see the pattern
        assert e.analytic / e.numeric == pytest.approx(1 / (1 + np.exp(-e.value)), rel=1e-6)
    assert "the ratio analytic/numeric varies" in failure.diagnosis


class SinWrongSign(mg.Op):
    def forward(self, x):
        return np.sin(x)

    def vjp(self, g, out):  # d sin = cos, given as -cos
        return (-g * mg.tensor(np.cos(self.inputs[0].data)),)


def test_wrong_sign():
    x = f64([[0.3, -1.2], [2.0, 0.1]])
    err = caught(mg.gradcheck, lambda x: SinWrongSign.apply(x), [x])
    (failure,) = err.failures
    assert failure.wrong == 4 and wrong_indices(failure) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert failure.diagnosis == "wrong sign: analytic = -numeric at every mismatch"


class BiasFirstRowOnly(mg.Op):
    """x + b with b broadcast over rows; the vjp forgets to sum b's cotangent over the rows
    and keeps the first row's."""

    def forward(self, x, b):
        return x + b

    def vjp(self, g, out):
        return g, g[0]


class ScaleMeanNotSum(mg.Op):
    """x * w with w broadcast over rows; the vjp averages w's cotangent instead of summing it."""

    def forward(self, x, w):
        return x * w

    def vjp(self, g, out):
        x, w = self.inputs
        return g * w, (g * x).mean(axis=0)


def test_missing_broadcast_reduction():
    rng = np.random.default_rng(0)
    x, b = f64(rng.standard_normal((3, 4))), f64(rng.standard_normal(4))
    err = caught(mg.gradcheck, lambda x, b: BiasFirstRowOnly.apply(x, b), [x, b])
    (failure,) = err.failures  # x's gradient is right: only input 1 is named
    assert failure.input == 1 and failure.label == "input1"
    assert wrong_indices(failure) == [(0,), (1,), (2,), (3,)]
    assert {e.name.split(" / ")[0] for e in failure.entries} == {
        f"d out[{i}, {j}]" for i in (1, 2) for j in range(4)}  # rows 1 and 2 of the output
    assert "wrong only at broadcast axes" in failure.diagnosis and "output axis 0" in failure.diagnosis

    (failure,) = caught(mg.gradcheck, lambda x, w: ScaleMeanNotSum.apply(x, w), [x, b]).failures
    assert failure.input == 1 and failure.wrong == 12
    assert "analytic = 0.333333 × numeric" in failure.diagnosis
    assert "a mean where a sum belongs" in failure.diagnosis


class SquareWrongAtOneElement(mg.Op):
    """x², whose vjp has a special case that is wrong at one value."""

    def forward(self, x):
        return x * x

    def vjp(self, g, out):
        x = self.inputs[0]
        return (g * 2 * mg.where(x.data == 0.75, 0.0, x),)


def test_wrong_derivative_at_one_element_only():
    x = f64([[0.2, -1.1, 0.4], [1.3, 0.75, -0.6]])
    (failure,) = caught(mg.gradcheck, lambda x: SquareWrongAtOneElement.apply(x), [x]).failures
    assert failure.wrong == 1 and wrong_indices(failure) == [(1, 1)]
    (entry,) = failure.entries
    assert entry.name == "d out[1, 1] / d input0[1, 1]" and entry.value == 0.75
    assert (entry.analytic, entry.numeric) == (0.0, pytest.approx(1.5))
    assert "only 1 of the 6 nonzero entries is wrong, at input value 0.75" in failure.diagnosis


class SigmoidZeroForNegatives(mg.Op):
    """sigmoid, whose vjp returns 0 for negative inputs, where the true derivative is tiny."""

    def forward(self, x):
        return 1 / (1 + np.exp(-x))

    def vjp(self, g, out):
        positive = mg.tensor((self.inputs[0].data > 0).astype(np.float64))
        return (g * out * (1 - out) * positive,)


def test_tiny_gradient_wrong_only_for_negative_inputs():
    x = f64([-40.0, -30.0, 0.5, 2.0])  # sigmoid'(-40) = 4.2e-18
    fn = lambda x: SigmoidZeroForNegatives.apply(x)  # noqa: E731
    # An absolute tolerance (the old default) cannot see it ...
    assert mg.gradcheck(fn, [x], atol=1e-5)
    # ... the default, per-entry tolerance does.
    (failure,) = caught(mg.gradcheck, fn, [x]).failures
    assert wrong_indices(failure) == [(0,), (1,)]
    assert [e.value for e in failure.entries] == [-40.0, -30.0]
    assert failure.entries[0].numeric == pytest.approx(np.exp(-40), rel=1e-6)
    assert failure.diagnosis.startswith("all zero")
    assert "wrong only where the input is negative" in failure.diagnosis
    # and the correct op passes at the same points
    assert mg.gradcheck(mg.sigmoid, [x])


class CubeWithWrongSecondDerivative(mg.Op):
    """x³ with the right vjp, 3x², made by an op whose own vjp is wrong."""

    def forward(self, x):
        return x ** 3

    def vjp(self, g, out):
        return (g * ThreeSquaredHalfDerivative.apply(self.inputs[0]),)


class ThreeSquaredHalfDerivative(mg.Op):
    def forward(self, x):
        return 3 * x * x

    def vjp(self, g, out):  # should be 6x
        return (g * 3 * self.inputs[0],)


def test_right_first_derivative_with_wrong_second():
    x = f64([0.5, -1.5, 2.0])
    fn = lambda x: CubeWithWrongSecondDerivative.apply(x)  # noqa: E731
    assert mg.gradcheck(fn, [x])
    (failure,) = caught(mg.gradgradcheck, fn, [x]).failures
    assert failure.label == "input0" and wrong_indices(failure) == [(0,), (1,), (2,)]
    assert failure.entries[0].name == "d g0[0] / d input0[0]"
    err = caught(mg.check_grads, fn, [x], order=2)
    assert str(err).startswith("check_grads failed. first derivatives: agree; second derivatives "
                               "vs analytic first: WRONG; second derivatives vs fn: WRONG.")
    assert len(err.failures) == 2
    for failure in err.failures:
        assert [e.name for e in failure.entries] == [
            f"d²out[{i}] / d input0[{i}] d input0[{i}]" for i in range(3)]
        assert "analytic = 0.5 × numeric" in failure.diagnosis


def test_many_second_derivatives_are_projected_and_still_checked_against_fn():
    x = f64(np.random.default_rng(3).standard_normal(40))  # 4 × 40² nested differences: projected
    fn = lambda x: CubeWithWrongSecondDerivative.apply(x).sum()  # noqa: E731
    err = caught(mg.check_grads, fn, [x])
    # against the analytic first derivatives in full (80 evaluations, 1600 entries); against fn
    # projected on v
    assert [f.projected for f in err.failures] == [False, True]
    assert "40 of 1600 Jacobian entries differ" in str(err)      # the Hessian's diagonal, named
    assert [e.name for e in err.failures[0].entries[:2]] == [
        "d²out / d input0[0] d input0[0]", "d²out / d input0[1] d input0[1]"]
    assert "d(u·first derivatives) / d input0[0]" in str(err)
    assert mg.check_grads(lambda x: (x ** 3).sum(), [x])


class CubeWrongButSmoothDerivative(mg.Op):
    """x³ whose vjp gives 2x² for 3x²: wrong, yet differentiable, so the backward pass agrees
    with its own finite differences."""

    def forward(self, x):
        return x ** 3

    def vjp(self, g, out):
        x = self.inputs[0]
        return (g * 2 * x * x,)


def test_wrong_first_derivative_cannot_hide_behind_a_consistent_second():
    x = f64([0.5, -1.5, 2.0])
    fn = lambda x: CubeWrongButSmoothDerivative.apply(x)  # noqa: E731
    assert mg.gradgradcheck(fn, [x])  # documented: it checks the backward against itself
    err = caught(mg.check_grads, fn, [x], order=2)
    assert str(err).startswith("check_grads failed. first derivatives: WRONG; second derivatives "
                               "vs analytic first: agree; second derivatives vs fn: WRONG.")
    first, against_fn = err.failures
    assert first.check.startswith("check_grads, first derivatives")
    assert wrong_indices(first) == [(0,), (1,), (2,)]
    assert "differences of differences of fn" in against_fn.check
    assert "analytic = 0.666667 × numeric" in against_fn.diagnosis  # 4x against 6x
    doc = " ".join(mg.gradgradcheck.__doc__.split())
    assert "What it does not catch: a wrong first derivative." in doc


class CubeNumpyBackward(mg.Op):
    """x³ with a right vjp computed in numpy: a constant on the tape."""

    def forward(self, x):
        return x ** 3

    def vjp(self, g, out):
        return (g * mg.tensor(3 * self.inputs[0].data ** 2),)


def test_numpy_backward_is_caught_by_both_second_order_checks():
    x = f64([0.5, -1.5])
    fn = lambda x: CubeNumpyBackward.apply(x)  # noqa: E731
    assert mg.gradcheck(fn, [x])
    (failure,) = caught(mg.gradgradcheck, fn, [x]).failures
    assert failure.diagnosis.startswith("all zero: the tape never reached this input")
    err = caught(mg.check_grads, fn, [x])
    assert "first derivatives: agree" in str(err) and len(err.failures) == 2


def test_input_taken_through_numpy_is_named():
    x, y = f64([1.0, 2.0]), f64([0.5, -0.5])
    (failure,) = caught(mg.gradcheck, lambda x, y: x * mg.tensor(y.data), [x, y]).failures
    assert failure.input == 1 and failure.diagnosis.startswith("all zero: the tape never reached")


# --------------------------------------------------------------------------------------------
# What the report says
# --------------------------------------------------------------------------------------------
def test_kinks_and_ties_are_diagnosed_with_one_sided_differences():
    x = f64([-1.0, 0.0, 2.0])
    (failure,) = caught(mg.gradcheck, mg.relu, [x]).failures
    (entry,) = failure.entries
    assert entry.index == (1,) and (entry.left, entry.right) == (pytest.approx(0), pytest.approx(1))
    assert failure.diagnosis.startswith("wrong only at ties or kinks")
    assert "the left-hand derivative" in failure.diagnosis  # relu'(0) is taken as 0
    # a tie in maximum goes to the first argument: the right-hand derivative
    (failure,) = caught(mg.gradcheck, lambda t: mg.maximum(t, np.array([0.0, 3.0, 1.0])),
                        [f64([1.0, 3.0, 3.0])]).failures
    assert "the right-hand derivative" in failure.diagnosis
    assert mg.gradcheck(lambda t: t.max(), [f64([1.0, 3.0, 3.0])])  # tied maxima share: exact


def test_large_jacobians_are_projected_and_say_so():
    rng = np.random.default_rng(1)
    x = f64(rng.standard_normal((30, 30)))
    fn = lambda x: HalfSquare.apply(x) @ x  # noqa: E731  (810000 entries > 65536)
    err = caught(mg.gradcheck, fn, [x], seed=7, max_report=3)
    (failure,) = err.failures
    assert failure.projected and failure.total == 900
    text = str(err)
    assert "900 projected Jacobian entries differ" in text
    assert "numpy.random.default_rng(7).standard_normal(shape)" in text and "(seed 7)" in text
    assert "not one derivative" in text and "d(u·out) / d input0[0, 0]" in text
    assert f"... and {failure.wrong - 3} more (max_report=3)" in text
    assert len(failure.entries) == failure.wrong  # all are kept as data
    # forcing either way
    small = f64([0.5, -1.5])
    assert caught(mg.gradcheck, lambda x: HalfSquare.apply(x), [small],
                  full_jacobian=False).failures[0].projected
    assert mg.gradcheck(lambda x: x @ x, [x[:3, :3].detach().requires_grad_()], full_jacobian=True)


def test_several_outputs_are_named():
    x = f64([0.5, 1.5])

    def fn(x):
        return x.exp(), HalfSquare.apply(x), mg.tensor([1, 2])  # an integer output is skipped

    (failure,) = caught(mg.gradcheck, fn, [x]).failures
    assert [e.name for e in failure.entries] == ["d out1[0] / d input0[0]", "d out1[1] / d input0[1]"]


def test_low_precision_mistakes_are_reported_in_ulps():
    x = f64([0.5, -1.5, 2.0])
    err = caught(mg.gradcheck, lambda x: HalfSquare.apply(x), [x], dtype="float32")
    assert "ulps of float32" in str(err) and "analytic side in float32" in str(err)
    assert "rtol=1.91e-06 (16 ulps of float32)" in str(err)
    assert wrong_indices(err.failures[0]) == [(0,), (1,), (2,)]


def test_constants_pass_through_and_inputs_are_copied():
    x = mg.tensor([0.5, 2.0], dtype="float32", requires_grad=True)
    labels = np.array([1, 0])
    assert mg.gradcheck(lambda x, k, s: (x * s)[k], [x, labels, 3.0])
    assert x.dtype == np.float32 and x.grad is None


def test_keyword_arguments_stay_compatible():
    x = f64([0.5, -1.0])
    assert mg.gradcheck(lambda x: x.tanh(), [x], eps=1e-6, atol=1e-5, rtol=1e-3,
                        raise_exception=True, seed=3)
    assert mg.gradgradcheck(lambda x: x.tanh(), [x], eps=1e-6, atol=1e-5, rtol=1e-3,
                            raise_exception=False, seed=3)
    assert mg.gradcheck(lambda x: x.tanh(), x)  # a single tensor
    assert issubclass(mg.GradcheckError, AssertionError)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"eps": 0}, ValueError, "eps must be > 0"),
    ({"eps": -1e-6}, ValueError, "eps must be > 0, got -1e-06"),
    ({"atol": -1.0}, ValueError, "atol must be >= 0"),
    ({"rtol": float("nan")}, ValueError, "rtol must be finite"),
    ({"max_report": 0}, ValueError, "max_report must be >= 1"),
    ({"full_jacobian": "yes"}, TypeError, "full_jacobian must be None, True or False"),
    ({"dtype": "int32"}, ValueError, "dtype must be one of"),
])
def test_bad_options_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        mg.gradcheck(lambda x: x * 2, [f64([1.0])], **kwargs)


def test_needs_an_input_that_requires_grad_and_an_order_of_one_or_two():
    with pytest.raises(ValueError, match="requires_grad"):
        mg.gradcheck(lambda x: x * 2, [mg.tensor([1.0])])
    with pytest.raises(ValueError, match="order must be 1 or 2, got 3"):
        mg.check_grads(lambda x: x * 2, [f64([1.0])], order=3)


# --------------------------------------------------------------------------------------------
# No false alarms: every built-in op and loss, every float dtype
# --------------------------------------------------------------------------------------------
RNG = np.random.default_rng(2024)


def uniform(shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape)


def separated(shape):
    """Values at least 0.2 apart: no ties or kinks within any step."""
    n = int(np.prod(shape))
    return ((RNG.permutation(n) - n / 2 + 0.5) * 0.3 + RNG.uniform(-0.05, 0.05, n)).reshape(shape)


def positive(shape):
    return RNG.uniform(0.5, 2.5, shape)


LABELS = np.array([0, 2, 1])
PROBS = RNG.dirichlet(np.ones(4), 3)

# name -> (fn, input arrays)
OPS = {
    "neg": (lambda x: -x, [uniform((2, 3))]),
    "exp": (mg.exp, [uniform((2, 3))]),
    "log": (mg.log, [positive((2, 3))]),
    "sqrt": (mg.sqrt, [positive((2, 3))]),
    "abs": (mg.abs, [separated((2, 3))]),
    "tanh": (mg.tanh, [uniform((2, 3))]),
    "sigmoid": (mg.sigmoid, [uniform((2, 3))]),
    "relu": (mg.relu, [separated((2, 3))]),
    "sum": (lambda x: x.sum(axis=0), [uniform((2, 3))]),
    "mean": (lambda x: x.mean(axis=1), [uniform((2, 3))]),
    "max": (lambda x: x.max(axis=1), [separated((2, 3))]),
    "min": (lambda x: x.min(), [separated((2, 3))]),
    "softmax": (mg.softmax, [uniform((2, 3))]),
    "log_softmax": (lambda x: mg.log_softmax(x, axis=0), [uniform((2, 3))]),
    "logsumexp": (lambda x: mg.logsumexp(x, axis=1), [uniform((2, 3))]),
    "reshape": (lambda x: x.reshape(-1), [uniform((2, 3))]),
    "transpose": (lambda x: x.T, [uniform((2, 3))]),
    "swapaxes": (lambda x: x.swapaxes(0, 1), [uniform((2, 3))]),
    "expand_squeeze": (lambda x: mg.expand_dims(x, 1).squeeze(), [uniform((2, 3))]),
    "broadcast_to": (lambda x: mg.broadcast_to(x, (2, 2, 3)), [uniform((2, 3))]),
    "getitem": (lambda x: x[np.array([0, 0, 1]), 1:], [uniform((2, 3))]),
    "clip": (lambda x: mg.clip(x, -0.5, 0.7), [separated((2, 3))]),
    "pow_scalar": (lambda x: x ** 3, [uniform((2, 3))]),
    "rpow": (lambda x: 2.0 ** x, [uniform((2, 3))]),
    "add": (lambda a, b: a + b, [uniform((2, 3)), uniform((3,))]),
    "subtract": (lambda a, b: a - b, [uniform((2, 3)), uniform((3,))]),
    "multiply": (lambda a, b: a * b, [uniform((2, 3)), uniform((2, 1))]),
    "divide": (lambda a, b: a / b, [uniform((2, 3)), positive((3,))]),
    "power": (lambda a, b: a ** b, [positive((2, 3)), uniform((3,))]),
    "maximum": (mg.maximum, [separated((2, 3)), separated((3,)) + 0.1]),
    "minimum": (mg.minimum, [separated((2, 3)), separated((3,)) + 0.1]),
    "where": (lambda a, b: mg.where(a.data > 0, a, b), [uniform((2, 3)), uniform((2, 3))]),
    "matmul": (lambda a, b: a @ b, [uniform((2, 3)), uniform((3, 4))]),
    "matmul_batched_1d": (lambda a, b: a @ b, [uniform((2, 2, 3)), uniform((3,))]),
    "concatenate": (lambda a, b: mg.concatenate([a, b], axis=1), [uniform((2, 3)), uniform((2, 2))]),
    "stack": (lambda a, b: mg.stack([a, a * b]), [uniform((2, 3)), uniform((2, 3))]),
    "astype": (lambda x: x.astype("float64") * 2, [uniform((2, 3))]),
    "linear": (lambda x, w, b: (x @ w.T + b).tanh(), [uniform((3, 4)), uniform((2, 4)), uniform((2,))]),
    "cross_entropy_mean": (lambda z: nn.cross_entropy(z, LABELS), [uniform((3, 4))]),
    "cross_entropy_none": (lambda z: nn.cross_entropy(z, LABELS, reduction="none"), [uniform((3, 4))]),
    "sparse_xent": (lambda z: nn.sparse_softmax_cross_entropy_with_logits(labels=LABELS, logits=z),
                    [uniform((3, 4))]),
    "xent_v1_dim0": (lambda z: nn.softmax_cross_entropy_with_logits(labels=PROBS.T.astype(z.dtype),
                                                                    logits=z, dim=0), [uniform((4, 3))]),
    # the raw ops return (loss, backprop): two outputs, the second differentiable too
    "raw_dense": (lambda z: mg.raw_ops.SoftmaxCrossEntropyWithLogits(features=z, labels=PROBS.astype(z.dtype)),
                  [uniform((3, 4))]),
    "raw_sparse": (lambda z: mg.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=z, labels=LABELS),
                   [uniform((3, 4))]),
    # v2 lets gradients reach the labels; its gradient is softmax - labels (TensorFlow's), the
    # true derivative only while labels sum to 1, so the mixed second derivative is not checked.
    "xent_v2": (lambda z, p: nn.softmax_cross_entropy_with_logits_v2(labels=p, logits=z), [uniform((3, 4)), PROBS]),
    "soft_cross_entropy_v2": (lambda z, p: nn.soft_cross_entropy(z, p, reduction="sum", label_gradients="v2"),
                              [uniform((3, 4)), PROBS]),
}
LABELS_FIRST_ORDER_ONLY = {"xent_v2", "soft_cross_entropy_v2"}

def _op_cases():
    for name in sorted(OPS):
        for dtype in ("float64", "float32", "float16", "bfloat16"):
            marks = [needs_bfloat16] if dtype == "bfloat16" else []
            yield pytest.param(name, dtype, marks=marks, id=f"{name}-{dtype}")


@pytest.mark.parametrize("name, dtype", list(_op_cases()))
def test_built_in_ops_pass_in_every_dtype(name, dtype):
    fn, arrays = OPS[name]
    args = [f64(a) for a in arrays]
    if name in LABELS_FIRST_ORDER_ONLY:
        assert mg.check_grads(fn, args, order=1, dtype=dtype)
        args[1] = mg.tensor(arrays[1], dtype=dtype)  # a constant from here on
    assert mg.check_grads(fn, args, order=2, dtype=dtype)


SATURATED = {"tanh": (mg.tanh, [-6.0, -4.0, -3.0, 3.0, 4.0, 6.0]),
             "sigmoid": (mg.sigmoid, [-20.0, -12.0, -8.0, -5.0, 5.0, 8.0, 12.0, 20.0])}
@pytest.mark.parametrize("dtype", [
    "float64", "float32", "float16", pytest.param("bfloat16", marks=needs_bfloat16),
])
@pytest.mark.parametrize("name", sorted(SATURATED))
def test_saturating_functions_far_out(name, dtype):
    fn, values = SATURATED[name]
    assert mg.gradcheck(fn, [f64(values)], dtype=dtype)


def test_values_formed_by_cancellation_are_not_false_alarms():
    # log_softmax of a dominant logit is ~ -5e-4, computed as the difference of values ~ 8:
    # its rounding noise is far above what its size suggests, in first and nested differences.
    dominant = f64([[8.0, 0.0, -1.0, 0.5], [0.1, 0.2, 0.3, 0.4]])
    assert mg.check_grads(lambda x: mg.log_softmax(x), [dominant], order=2)
    confident = f64([[12.0, 0.0, -1.0, 0.5], [0.1, 9.0, 0.3, 0.4]])
    assert mg.check_grads(lambda z: nn.cross_entropy(z, np.array([0, 1]), reduction="none"),
                          [confident], order=2)


def test_tiny_derivatives_of_correct_ops_pass_in_every_dtype():
    x = f64([-40.0, -30.0, -20.0, -5.0, 0.5])
    for dtype in ["float64", "float32", "float16"] + (["bfloat16"] if HAS_BFLOAT16 else []):
        assert mg.gradcheck(mg.sigmoid, [x], dtype=dtype)
        assert mg.gradcheck(mg.exp, [x], dtype=dtype)


# --------------------------------------------------------------------------------------------
# minigrad.testing
# --------------------------------------------------------------------------------------------
def test_assert_gradients_close_passes_and_checks_each_dtype():
    x = f64([0.5, -1.0, 2.0])
    assert assert_gradients_close(lambda x: x.tanh() * x, [x], dtypes="float32") is None
    err = caught(assert_gradients_close, lambda x: HalfSquare.apply(x), [x],
                 dtypes=["float64", "float16"], order=1)
    assert isinstance(err, AssertionError)
    text = str(err)
    assert text.startswith("assert_gradients_close: the derivatives of fn are wrong in float64, "
                           "float16.")
    assert "in float64:\ngradcheck" not in text and "in float64:\ncheck_grads" in text
    assert "in float16:" in text and "ulps of float16" in text
    assert len(err.failures) == 2


def test_assert_gradients_close_names_the_dtypes_that_passed():
    # right in float64, 5% off below it (float16 ops compute in float32, so the vjp sees
    # float32 there)
    class LossyInFloat16(mg.Op):
        def forward(self, x):
            return x * x

        def vjp(self, g, out):
            x = self.inputs[0]
            bump = 1.05 if x.dtype != np.float64 else 1.0
            return (g * 2 * x * bump,)

    x = f64([0.5, -1.0, 2.0])
    err = caught(assert_gradients_close, lambda x: LossyInFloat16.apply(x), [x],
                 dtypes=("float64", "float16"))
    assert str(err).startswith("assert_gradients_close: the derivatives of fn are wrong in "
                               "float16 (right in float64).")


def test_assert_gradients_close_rejects_no_dtypes():
    with pytest.raises(ValueError, match="at least one dtype"):
        assert_gradients_close(lambda x: x, [f64([1.0])], dtypes=[])


@needs_bfloat16
def test_assert_gradients_close_in_bfloat16():
    assert_gradients_close(lambda x: x.exp() * x, [f64([0.5, -1.0])], dtypes=["bfloat16"])
