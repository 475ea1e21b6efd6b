"""Assertions for testing your own ops, in pytest or any other test runner.

``assert_gradients_close(fn, inputs)`` is the one call a gradient test needs: it runs
:func:`minigrad.check_grads` (first and second derivatives against finite differences of
``fn``) in each requested dtype, and on a mismatch raises ``AssertionError`` whose message is
the full report: per input, the wrong entries with index, input value, analytic and numeric
derivatives, difference, ratio, and a one-line diagnosis.
"""

from . import _dtypes
from .gradcheck import GradcheckError, check_grads

__all__ = ["assert_gradients_close"]


def assert_gradients_close(fn, inputs, *, order=2, dtypes=("float64",), eps=1e-6, atol=None,
                           rtol=None, seed=0, full_jacobian=None, max_report=10):
    """Assert that ``fn``'s derivatives match finite differences of ``fn``.

    For each dtype in ``dtypes`` this runs ``check_grads(fn, inputs, order, dtype=dtype, ...)``:
    the checked inputs (the tensors with ``requires_grad=True``) are cast to that dtype, ``fn``
    and its backward pass run in it, and the result is compared with float64 central
    differences, with tolerances derived from the dtype's epsilon. Every dtype is checked
    before anything is raised.

    Parameters
    ----------
    fn : callable
        Takes the inputs as positional arguments; returns a Tensor or a tuple of Tensors.
    inputs : Tensor or sequence
        Arguments for ``fn``; tensors with ``requires_grad=True`` are checked.
    order : {1, 2}
        1: first derivatives; 2 (default): also second derivatives, against finite
        differences of both analytic and numeric first derivatives.
    dtypes : dtype or sequence of dtypes
        float64 (the default), float32, float16, bfloat16 (needs ``ml_dtypes``).
    eps, atol, rtol, seed, full_jacobian, max_report
        As for :func:`minigrad.gradcheck`.

    Raises
    ------
    AssertionError
        A :class:`minigrad.GradcheckError` whose message holds the report of every dtype that
        failed, after a line naming which dtypes passed.

    Examples
    --------
    >>> from minigrad.testing import assert_gradients_close
    >>> x = minigrad.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True)
    >>> assert_gradients_close(lambda x: x.tanh() * x, [x], dtypes=["float64", "float32"])
    """
    __tracebackhide__ = True  # pytest shows the test's line, not this helper's
    if isinstance(dtypes, str) or not hasattr(dtypes, "__iter__"):
        dtypes = [dtypes]
    dtypes = [_dtypes.as_dtype(d) for d in dtypes]
    if not dtypes:
        raise ValueError("dtypes must name at least one dtype, got an empty sequence")
    reports, failures, passed, wrong = [], [], [], []
    for dtype in dtypes:
        try:
            check_grads(fn, inputs, order, eps=eps, atol=atol, rtol=rtol, seed=seed, dtype=dtype,
                        full_jacobian=full_jacobian, max_report=max_report)
            passed.append(str(dtype))
        except GradcheckError as e:
            reports.append(f"in {dtype}:\n{e}")
            failures.extend(e.failures)
            wrong.append(str(dtype))
    if reports:
        wrong = ", ".join(wrong)
        head = (f"assert_gradients_close: the derivatives of fn are wrong in {wrong}"
                + (f" (right in {', '.join(passed)})" if passed else "") + ".")
        raise GradcheckError("\n\n".join([head] + reports), failures)
