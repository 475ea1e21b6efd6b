"""Write your own differentiable op, then test its gradients with minigrad's checks.

    python examples/gradient_check.py          # runs the checks below and shows their reports
    pytest examples/gradient_check.py          # the same checks, as pytest tests

An op is a subclass of ``minigrad.Op`` with two methods, side by side:

* ``forward(self, *arrays)``: numpy arrays in, a numpy array out;
* ``vjp(self, g, out)``: the vector-Jacobian product. ``g`` is the cotangent of the output
  (d loss / d out), ``out`` the output tensor, ``self.inputs`` the input tensors; return a
  tuple with one cotangent per input (d loss / d input), or None for an input that needs none
  (``self.needs[i]`` says which do).

``Op.apply(*tensors)`` runs ``forward`` and records the op on the tape when an input wants a
gradient. The base class sums a cotangent back over broadcast axes and casts it to the
input's dtype, so ``vjp`` can be written as if there were no broadcasting.

Write ``vjp`` with minigrad ops (``g * x.exp()``, not ``np.exp(x.data)``): then the backward
pass is itself recorded when ``create_graph=True``, and second derivatives are right.

The checks, and which broken op below each one catches:

* ``gradcheck``: first derivatives against finite differences (``LogAddExpWrongGradient``);
* ``gradgradcheck``: second derivatives against differences of the backward pass itself
  (``LogAddExpNumpyBackward``); it passes a wrong but smooth first derivative;
* ``check_grads(order=2)``: first and second derivatives against ``fn`` itself, so a wrong
  first derivative cannot hide (``LogAddExpSignSlip``, which passes gradgradcheck);
* ``gradcheck(dtype="float16")``: the op run in float16 against float64 differences
  (``LogAddExpNaiveBackward``, right in float64, overflowing float32, in which float16 ops
  compute);
* ``minigrad.testing.assert_gradients_close``: all of it in one assertion, for tests.
"""

import numpy as np

import minigrad
from minigrad import GradcheckError, Op, check_grads, gradcheck, gradgradcheck
from minigrad.testing import assert_gradients_close


class LogAddExp(Op):
    """``log(exp(x) + exp(y))`` elementwise, as ``numpy.logaddexp``."""

    def forward(self, x, y):
        return np.logaddexp(x, y)  # numpy's version never overflows

    def vjp(self, g, out):
        # d out / dx = e^x / (e^x + e^y) = e^(x - out), and the same for y.
        x, y = self.inputs
        return g * (x - out).exp(), g * (y - out).exp()


def logaddexp(x, y):
    """``log(exp(x) + exp(y))`` with broadcasting, differentiable in both arguments."""
    return LogAddExp.apply(minigrad.tensor(x) if not isinstance(x, minigrad.Tensor) else x,
                           minigrad.tensor(y) if not isinstance(y, minigrad.Tensor) else y)


def _inputs(seed=0, scale=1.0, shift=0.0):
    """Float64 inputs of two shapes that broadcast: y is repeated over x's rows."""
    rng = np.random.default_rng(seed)
    x = minigrad.tensor(scale * rng.standard_normal((3, 4)) + shift, requires_grad=True)
    y = minigrad.tensor(scale * rng.standard_normal(4), requires_grad=True)
    return x, y


# -- the tests you would write for your op ---------------------------------------------------
def test_forward_matches_numpy():
    x, y = _inputs()
    np.testing.assert_allclose(logaddexp(x, y).numpy(), np.logaddexp(x.numpy(), y.numpy()))


def test_gradient():
    # The full Jacobian (12 outputs × 16 inputs), entry by entry, against central differences.
    assert gradcheck(logaddexp, _inputs())


def test_second_derivative():
    # First and second derivatives, all against finite differences of logaddexp itself.
    assert check_grads(logaddexp, _inputs(), order=2)


def test_all_dtypes_in_one_assertion():
    # Raises AssertionError with the full report; float16 is checked to 16 ulps.
    assert_gradients_close(logaddexp, _inputs(scale=3.0), dtypes=["float64", "float32", "float16"])


# -- four ops with a bug each ----------------------------------------------------------------
class LogAddExpWrongGradient(LogAddExp):
    """A slip in y's exponent: e^(out - y) for e^(y - out)."""

    def vjp(self, g, out):
        x, y = self.inputs
        return g * (x - out).exp(), g * (out - y).exp()


class LogAddExpNumpyBackward(LogAddExp):
    """Right first derivative, but computed in numpy: the tape cannot see through it."""

    def vjp(self, g, out):
        x, y = (t.numpy() for t in self.inputs)
        o = out.numpy()
        return minigrad.tensor(g.numpy() * np.exp(x - o)), minigrad.tensor(g.numpy() * np.exp(y - o))


class LogAddExpSignSlip(LogAddExp):
    """Written with sigmoid (d out / dx = sigmoid(x - y)), with a sign slip for y:
    sigmoid(x - y) for sigmoid(y - x). Wrong, yet smooth, and it never uses ``out``, so no
    part of it goes through this op's own (wrong) vjp: the backward pass is consistent with
    its own derivatives, and gradgradcheck passes it. (A wrong vjp that uses ``out`` is
    differentiated through itself, which gradgradcheck usually notices.)"""

    def vjp(self, g, out):
        x, y = self.inputs
        return g * (x - y).sigmoid(), g * (x - y).sigmoid()


class LogAddExpNaiveBackward(LogAddExp):
    """The textbook formula e^x / (e^x + e^y): right in float64, but e^x overflows float32 from
    x = 88.7 on, and inf / inf is NaN. A float16 op computes in float32 (minigrad's
    low-precision rule), so float16 data of that size meets the overflow too."""

    def vjp(self, g, out):
        x, y = self.inputs
        total = x.exp() + y.exp()
        return g * x.exp() / total, g * y.exp() / total


def _show(what, check, op, inputs, **kwargs):
    """Run ``check`` on ``op``, print its report, and say whether it caught the bug."""
    print(f"== {what}")
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # the float16 overflow is the point
            check(lambda x, y: op.apply(x, y), inputs, **kwargs)
    except GradcheckError as e:
        print("\n".join("   " + line for line in str(e).splitlines()))
        print(f"   -> caught by {check.__name__}: "
              + ", ".join(f"{f.label} ({f.wrong} wrong entries)" for f in e.failures))
        print()
        return True
    print(f"   -> {check.__name__} passed")
    print()
    return False


def main():
    x, y = _inputs()
    z = logaddexp(x, y)
    print("A custom op is recorded like a built-in one:")
    print(z.sum().graph())
    print()

    for test in (test_forward_matches_numpy, test_gradient, test_second_derivative,
                 test_all_dtypes_in_one_assertion):
        test()
        print(f"{test.__name__}: passed")
    print()

    expected = [
        ("LogAddExpWrongGradient under gradcheck", gradcheck, LogAddExpWrongGradient, {}, True),
        ("LogAddExpNumpyBackward under gradcheck", gradcheck, LogAddExpNumpyBackward, {}, False),
        ("LogAddExpNumpyBackward under gradgradcheck", gradgradcheck, LogAddExpNumpyBackward, {}, True),
        ("LogAddExpSignSlip under gradgradcheck (it checks the backward against itself)",
         gradgradcheck, LogAddExpSignSlip, {}, False),
        ("LogAddExpSignSlip under check_grads(order=2)", check_grads, LogAddExpSignSlip, {}, True),
        ("LogAddExpNaiveBackward under gradcheck in float64", gradcheck, LogAddExpNaiveBackward,
         {}, False),
        ("LogAddExpNaiveBackward under gradcheck(dtype='float16')", gradcheck,
         LogAddExpNaiveBackward, {"dtype": "float16"}, True),
    ]
    for what, check, op, kwargs, should_catch in expected:
        inputs = _inputs(shift=90.0) if op is LogAddExpNaiveBackward else _inputs()
        if _show(what, check, op, inputs, **kwargs) != should_catch:
            raise SystemExit(f"ERROR: {what}: expected {'a catch' if should_catch else 'a pass'}")
    print("all checks behaved as expected")


if __name__ == "__main__":
    main()
