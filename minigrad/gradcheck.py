"""Check analytic derivatives against finite differences, and say what is wrong.

Three checks share one engine:

* :func:`gradcheck`: the first derivatives the tape computes (its vector-Jacobian products)
  against central differences of ``fn`` in float64.
* :func:`gradgradcheck`: PyTorch's second-order check. The gradient, as a function of the
  inputs and of the output cotangent, against central differences *of that gradient*. It
  catches a backward pass that the tape cannot differentiate; it does not catch a wrong first
  derivative.
* :func:`check_grads`: JAX's check. First derivatives against ``fn``; with ``order=2``,
  second derivatives against finite differences of the analytic first derivatives *and* of
  first derivatives computed numerically from ``fn``, so a wrong first derivative cannot hide
  behind a self-consistent second one.

What is compared
----------------
When the Jacobian is small (at most ``FULL_JACOBIAN_LIMIT`` entries, output elements times
input elements, or a single output element) it is built in full, as PyTorch does by default:
one vector-Jacobian product per output element, one central difference per input element, so
each entry is a single derivative ``d out[i] / d input[j]``. A larger Jacobian is projected on
a random output direction ``u`` drawn from ``numpy.random.default_rng(seed)``, and each entry
is then ``(u · J)[j]``; the report says so and prints the seed.

When two entries agree
----------------------
Analytic ``a`` and numeric ``n`` agree when ``|a - n| <= atol + rtol * |n|``. By default both
tolerances are derived, per entry, so that a tiny derivative (``sigmoid(-40)``'s is 4e-18) is
checked as strictly as a large one:

* ``atol`` is the rounding noise of that central difference, ``(|f(x+h)| + |f(x-h)|) / 2h``
  times ``_FD_ROUNDING`` rounding errors of ``fn``'s output dtype, plus the rounding of the
  analytic side: ``_ULPS`` ulps of the dtype it ran in, measured on the largest entry of the
  same Jacobian row or column (a derivative formed by cancellation is only that accurate) and,
  for second derivatives, on the largest entry of the input;
* ``rtol`` is 1e-3 for a float64 analytic side (the accuracy of the finite differences, as in
  PyTorch) and ``_ULPS`` times the dtype's epsilon for float32, float16 and bfloat16.

An entry that disagrees at step ``eps`` is tried again at steps 10 and 100 times larger (less
rounding noise). It is reported only if it disagrees at every step, by more than the three
differences disagree with one another. The report gives each wrong entry with the input
value, both derivatives, their difference and ratio (and the error in ulps for a
low-precision analytic side), and a one-line diagnosis of the pattern.
"""

import math
import numbers

import numpy as np

from . import _dtypes
from ._autograd import grad
from ._checks import flag, non_negative, non_negative_int, optional_flag, positive, positive_int
from ._tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "check_grads", "GradcheckError", "Failure", "Entry",
           "FULL_JACOBIAN_LIMIT"]

FULL_JACOBIAN_LIMIT = 2 ** 16  # entries; beyond it the Jacobian is projected on a random u
_FD_ROUNDING = 64  # rounding errors assumed in one evaluation of fn (the noise model)
_ULPS = 16  # rounding of the analytic side, in ulps of the dtype it ran in
_RTOL_FLOAT64 = 1e-3
_SECOND_OPINION = (10, 100)  # larger steps at which a mismatch is tried again
_NESTED_BUDGET = 4096  # evaluations of fn for all second derivatives by nested differences
_FLOAT64 = np.dtype(np.float64)


class GradcheckError(AssertionError):
    """Raised when analytic derivatives disagree with finite differences.

    The message is the full report. ``failures`` holds it as data: one :class:`Failure`
    per input whose derivatives are wrong.
    """

    def __init__(self, message, failures=()):
        super().__init__(message)
        self.failures = list(failures)


class Failure:
    """The wrong entries of one input's Jacobian, as a report lists them.

    Attributes: ``check`` (which comparison), ``input`` (its position in the inputs),
    ``label``, ``shape``, ``wrong`` and ``total`` (entry counts), ``entries`` (a list of
    :class:`Entry`, every wrong entry), ``diagnosis`` (a sentence, or '') and ``projected``.
    """

    def __init__(self, check, input, label, shape, wrong, total, entries, diagnosis, projected):
        self.check, self.input, self.label, self.shape = check, input, label, shape
        self.wrong, self.total, self.entries = wrong, total, entries
        self.diagnosis, self.projected = diagnosis, projected

    def __repr__(self):
        return f"<Failure {self.label}: {self.wrong} of {self.total} entries wrong>"


class Entry:
    """One wrong Jacobian entry: ``name`` (e.g. ``d out[1] / d input0[1]``), ``index`` (into
    the input), ``value`` (the input there), ``analytic``, ``numeric``, and the one-sided
    differences ``left``/``right`` where they disagree (a kink or a tie), else None."""

    def __init__(self, name, index, value, analytic, numeric, left=None, right=None):
        self.name, self.index, self.value = name, index, value
        self.analytic, self.numeric, self.left, self.right = analytic, numeric, left, right

    def __repr__(self):
        return f"<Entry {self.name}: analytic {self.analytic:.6g}, numeric {self.numeric:.6g}>"


# --------------------------------------------------------------------------------------------
# Inputs and outputs
# --------------------------------------------------------------------------------------------
def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _check_dtype(dtype):
    if dtype is None:
        return _FLOAT64
    dtype = _dtypes.as_dtype(dtype)
    if not _dtypes.is_float(dtype):
        raise ValueError(f"dtype must be one of {_dtypes.FLOAT_NAMES}, got {dtype}")
    return dtype


def _check_options(fn, eps, atol, rtol, max_report, full_jacobian, seed, raise_exception):
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    positive(eps, "eps")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None:
            non_negative(value, name)
    positive_int(max_report, "max_report")
    optional_flag(full_jacobian, "full_jacobian")
    flag(raise_exception, "raise_exception")
    non_negative_int(seed, "seed")


def _leaves(inputs, dtype):
    """The arguments twice: for the analytic side (float tensors cast to ``dtype``, leaves that
    require grad where the input does) and for the numeric side (the same values in float64);
    and which positions are checked. Other arguments are passed through unchanged."""
    analytic, numeric, checked = [], [], []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and _dtypes.is_float(x.dtype):
            leaf = Tensor(x.data, dtype=dtype, requires_grad=x.requires_grad)
            analytic.append(leaf)
            # the float64 copy of the *rounded* value: rounding the input is not an error
            numeric.append(Tensor(leaf.data, dtype=_FLOAT64, requires_grad=x.requires_grad))
            if x.requires_grad:
                checked.append(i)
        else:
            analytic.append(x)
            numeric.append(x)
    if not checked:
        raise ValueError("gradcheck needs at least one tensor with requires_grad=True among its "
                         "inputs")
    return analytic, numeric, checked


def _outputs(fn, args):
    outs = _as_tuple(fn(*args))
    for k, y in enumerate(outs):
        if not isinstance(y, Tensor):
            raise TypeError(f"fn must return Tensors; output {k} is {type(y).__name__}")
    return outs


def _index(shape, flat):
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _fmt_index(index):
    return "[" + ", ".join(str(i) for i in index) + "]"


class _Outputs:
    """Names and shapes of the outputs a check differentiates, and how an entry is named.

    First order: outputs ``out`` (or ``out0``, ``out1``, ...) and entries such as
    ``d out[1] / d input0[2]``. Second order (``wrt`` given): output ``k`` is the first
    derivative of ``names[k]`` with respect to input ``wrt[k]``, and an entry reads
    ``d²out[1] / d input0[2] d input0[0]``.
    """

    def __init__(self, names, shapes, wrt=None):
        self.names, self.shapes, self.wrt = names, shapes, wrt

    @property
    def order(self):
        return 1 if self.wrt is None else 2

    def entry(self, k, flat, column):
        index = _fmt_index(_index(self.shapes[k], flat)) if self.shapes[k] else ""
        if self.wrt is None:
            return f"d {self.names[k]}{index} / d {column}"
        return f"d²{self.names[k]} / d {self.wrt[k]}{index} d {column}"


def _fn_outputs(outs):
    """The positions of fn's float outputs (the others have no derivative) and their names."""
    float_outs = [k for k, y in enumerate(outs) if _dtypes.is_float(y.dtype)]
    names = ["out"] if len(outs) == 1 else [f"out{k}" for k in range(len(outs))]
    return float_outs, _Outputs([names[k] for k in float_outs], [outs[k].shape for k in float_outs])


# --------------------------------------------------------------------------------------------
# Rows of the compared Jacobian: every output element, or one random direction
# --------------------------------------------------------------------------------------------
class _Rows:
    """The rows compared: each element of each float output (the full Jacobian), or the one
    combination ``u · outputs`` for a random ``u`` (a projection)."""

    def __init__(self, outs, names, full, seed, dtype):
        self.outs, self.names, self.full, self.seed = outs, names, full, seed
        self.sizes = [y.size for y in outs]
        self.n = int(np.sum(self.sizes, dtype=np.int64)) if full else 1
        if not full:
            rng = np.random.default_rng(seed)
            # u rounded to the analytic dtype, so that both sides use the same u
            self.u = [rng.standard_normal(y.shape).astype(dtype).astype(_FLOAT64) for y in outs]

    def project(self, values):
        """The rows' values from the outputs' values (float64 arrays)."""
        if self.full:
            return np.concatenate([np.ravel(v) for v in values]) if values else np.zeros(0)
        return np.array([sum(float(np.sum(u * v)) for u, v in zip(self.u, values))])

    def project_error(self, errors):
        """A bound on the rows' rounding error from the outputs' (``|u| · error``)."""
        if self.full:
            return self.project(errors)
        return np.array([sum(float(np.sum(np.abs(u) * e)) for u, e in zip(self.u, errors))])

    def cotangents(self):
        """For each row: the outputs to differentiate and their cotangents."""
        if not self.full:
            pairs = [(y, Tensor(u, dtype=y.dtype)) for y, u in zip(self.outs, self.u) if y.requires_grad]
            yield [y for y, _ in pairs], [g for _, g in pairs]
            return
        for y in self.outs:
            for flat in range(y.size):
                if not y.requires_grad:
                    yield [], []
                    continue
                onehot = np.zeros(y.shape, dtype=y.dtype)
                onehot.flat[flat] = 1
                yield [y], [Tensor._wrap(onehot)]

    def locate(self, r):
        """(output number, flat index in it) of row ``r`` of a full Jacobian."""
        for k, size in enumerate(self.sizes):
            if r < size:
                return k, r
            r -= size
        raise IndexError(r)

    def entry(self, r, column):
        """The name of entry (row ``r``, ``column``), e.g. ``d out[1] / d input0[2]``."""
        if self.full:
            return self.names.entry(*self.locate(r), column)
        if self.names.order == 2:
            return f"d(u·first derivatives) / d {column}"
        names = self.names.names
        combined = names[0] if len(names) == 1 else "(" + " + ".join(names) + ")"
        return f"d(u·{combined}) / d {column}"


def _analytic_jacobian(rows, sources):
    """``A[r, c]``: the vector-Jacobian product of row ``r``, entry ``c`` of the sources
    (concatenated, flattened); and whether the tape reached each source at all."""
    offsets = np.cumsum([0] + [s.size for s in sources])
    A = np.zeros((rows.n, offsets[-1]))
    reached = [False] * len(sources)
    for r, (ys, gs) in enumerate(rows.cotangents()):
        if not ys:
            continue
        grads = grad(ys, sources, gs, retain_graph=True, allow_unused=True)
        for a, g in enumerate(grads):
            if g is not None:
                A[r, offsets[a]:offsets[a + 1]] = np.ravel(np.asarray(g.data, dtype=_FLOAT64))
                reached[a] = True
    return A, reached


# --------------------------------------------------------------------------------------------
# Numeric side: central differences of a float64 evaluation
# --------------------------------------------------------------------------------------------
def _evaluate_function(fn, float_outs):
    """``evaluate(args)`` for fn: its float outputs as float64 arrays, and their rounding
    error bound (``_FD_ROUNDING`` ulps of each output's dtype)."""

    def evaluate(args):
        outs = _outputs(fn, args)
        values, errors = [], []
        for k in float_outs:
            v = np.asarray(outs[k].data, dtype=_FLOAT64)
            values.append(v)
            errors.append(_FD_ROUNDING * float(_dtypes.finfo(outs[k].dtype).eps) * np.abs(v))
        return values, errors

    return evaluate


class _Numeric:
    """Central differences of ``evaluate`` over the checked inputs, for the rows ``rows``."""

    def __init__(self, evaluate, args, checked, rows, eps):
        self.evaluate, self.args, self.checked, self.rows, self.eps = evaluate, args, checked, rows, eps
        self.columns = [(a, j) for a, i in enumerate(checked) for j in range(args[i].size)]
        values, errors = evaluate(args)
        self.center = rows.project(values)

    def _at(self, a, j, value):
        i = self.checked[a]
        data = self.args[i].data.copy()
        data.flat[j] = value
        args = list(self.args)
        # Recording stays on, so that fn may itself take gradients (as the second-order checks do).
        args[i] = Tensor(data, dtype=_FLOAT64, requires_grad=True)
        values, errors = self.evaluate(args)
        return self.rows.project(values), self.rows.project_error(errors)

    def jacobian(self, columns=None, factor=1):
        """``N`` (central differences), ``noise`` (their rounding error bound), and the
        one-sided differences ``left`` and ``right``, for the given columns (default: all)."""
        columns = range(len(self.columns)) if columns is None else columns
        shape = (self.rows.n, len(columns))
        N, noise, left, right = (np.zeros(shape) for _ in range(4))
        for out, c in enumerate(columns):
            a, j = self.columns[c]
            x = float(self.args[self.checked[a]].data.flat[j])
            h = self.eps * factor * max(1.0, abs(x))
            up, down = x + h, x - h  # the steps actually taken, after rounding
            f_up, e_up = self._at(a, j, up)
            f_down, e_down = self._at(a, j, down)
            N[:, out] = (f_up - f_down) / (up - down)
            noise[:, out] = (e_up + e_down) / (up - down)
            right[:, out] = (f_up - self.center) / (up - x)
            left[:, out] = (self.center - f_down) / (x - down)
        return N, noise, left, right


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------
def _max_abs(M, axis):
    if M.shape[axis] == 0:
        return np.zeros(M.shape[1 - axis])
    return np.fmax.reduce(np.abs(M), axis=axis)  # fmax: NaN entries do not spread


def _tolerance(N, noise, scale, atol, rtol, dtype):
    """Per-entry ``atol + rtol * |N|`` (see the module docstring for the defaults)."""
    info = _dtypes.finfo(dtype)
    if atol is None:
        atol = noise + _ULPS * float(info.eps) * scale + _ULPS * float(info.smallest_subnormal)
    if rtol is None:
        rtol = _RTOL_FLOAT64 if dtype == _FLOAT64 else _ULPS * float(info.eps)
    return atol + rtol * np.abs(N)


def _agree(A, N, tol):
    with np.errstate(invalid="ignore"):
        return (np.abs(A - N) <= tol) | (A == N)


def _ulps(error, value, dtype):
    """``error`` in units of the spacing of ``dtype`` at ``value``."""
    info = _dtypes.finfo(dtype)
    value = abs(value)
    if not math.isfinite(value) or not math.isfinite(error):
        return math.nan
    if value < float(info.smallest_normal):
        spacing = float(info.smallest_subnormal)
    else:
        spacing = math.ldexp(float(info.eps), math.frexp(value)[1] - 1)
    return error / spacing


class _Comparison:
    """Analytic against numeric Jacobian, entry by entry.

    An entry that disagrees at step ``eps`` is tried again at 10 and 100 times the step, where
    rounding noise is smaller. It is called wrong only if it disagrees at every step, and by
    more than the differences at the three steps disagree with one another: a rounding error
    the noise model missed (a value formed by cancellation) shows as a spread between steps, a
    wrong derivative does not.
    """

    def __init__(self, A, numeric, *, atol, rtol, dtype, offsets, second_order):
        N, noise, left, right = numeric.jacobian()
        scale = np.maximum(_max_abs(N, 1)[:, None], _max_abs(N, 0)[None, :])
        if second_order:
            # A second derivative is a difference of rounded first-derivative terms
            # (d[s (1 - s)] = s' (1 - s) - s s'), so near a zero crossing it is only accurate to
            # ulps of the input's largest second derivative, not of its own size.
            for a, b in zip(offsets[:-1], offsets[1:]):
                block = N[:, a:b]
                scale[:, a:b] = np.maximum(scale[:, a:b], np.fmax.reduce(np.abs(block), axis=None)
                                           if block.size else 0)
        tol = _tolerance(N, noise, scale, atol, rtol, dtype)
        ok = _agree(A, N, tol)
        columns = np.flatnonzero(~ok.all(axis=0))
        if columns.size:
            steps = [(N[:, columns], tol[:, columns])]
            for factor in _SECOND_OPINION:
                # larger steps than asked for may leave fn's domain: not the caller's warning
                with np.errstate(all="ignore"):
                    N2, noise2, _, _ = numeric.jacobian(columns, factor)
                steps.append((N2, _tolerance(N2, noise2, scale[:, columns], atol, rtol, dtype)))
            values = np.stack([n for n, _ in steps])
            with np.errstate(invalid="ignore"):  # fmax/fmin skip NaN differences (a domain edge)
                spread = np.nan_to_num(np.fmax.reduce(values) - np.fmin.reduce(values))
                excess = np.stack([np.abs(A[:, columns] - n) - t for n, t in steps])
                ok[:, columns] |= np.fmin.reduce(excess) <= spread
        self.A, self.N, self.tol, self.ok = A, N, tol, ok
        self.left, self.right = left, right
        with np.errstate(invalid="ignore"):
            jump = np.abs(right - left)
            self.kink = jump > 0.25 * np.fmax(np.abs(right), np.abs(left)) + tol

    @property
    def passed(self):
        return bool(self.ok.all())


# --------------------------------------------------------------------------------------------
# Diagnosis: one line naming the pattern of one input's wrong entries
# --------------------------------------------------------------------------------------------
class _InputView:
    """One checked input's columns of a comparison, and what the diagnosis needs to know."""

    def __init__(self, cmp, cols, x, *, reached, rows, shape, others_ok, dtype):
        self.A, self.N, self.ok = cmp.A[:, cols], cmp.N[:, cols], cmp.ok[:, cols]
        self.tol, self.kink = cmp.tol[:, cols], cmp.kink[:, cols]
        self.left, self.right = cmp.left[:, cols], cmp.right[:, cols]
        self.wrong = ~self.ok
        self.x, self.reached, self.rows, self.shape, self.others_ok = x, reached, rows, shape, others_ok
        self.dtype = dtype
        # how far ratios may spread and still be "constant": the tolerance's own relative size
        self.ratio_tol = max(1e-3, 4 * _ULPS * float(_dtypes.finfo(dtype).eps))


def _broadcast_axes(in_shape, out_shape):
    """The output axes along which an input of ``in_shape`` is repeated in ``out_shape`` (an
    empty tuple when it is not, or when the shapes do not broadcast)."""
    lead = len(out_shape) - len(in_shape)
    if lead < 0 or any(n not in (1, out_shape[lead + i]) for i, n in enumerate(in_shape)):
        return ()
    return tuple(ax for ax in range(len(out_shape))
                 if out_shape[ax] > 1 and (ax < lead or in_shape[ax - lead] == 1))


def _single_output_axes(view):
    """The broadcast axes of this input in fn's one output (first order only), else ()."""
    rows = view.rows
    if rows.names.order != 1 or len(rows.outs) != 1:
        return ()
    return _broadcast_axes(view.shape, rows.outs[0].shape)


def _at_kinks(view):
    a = view.A[view.wrong]
    left, right, tol = view.left[view.wrong], view.right[view.wrong], view.tol[view.wrong]
    said = "neither one-sided derivative"
    for words, value in (("the right-hand derivative", right), ("the left-hand derivative", left),
                         ("the mean of the two", (left + right) / 2)):
        if np.all(np.abs(a - value) <= tol):
            said = words
            break
    return ("wrong only at ties or kinks: at every mismatch the one-sided differences disagree, "
            f"so the derivative is not unique there, and the analytic value is {said}; move the "
            "test inputs away from ties and kinks, or check the convention")


def _ratio_pattern(view, copies):
    a, n = view.A[view.wrong], view.N[view.wrong]
    if np.all(a == 0):
        return ["all zero: the analytic derivative is 0 at every mismatch and the numeric one is "
                "not (a missing term, or a vjp that returns zeros)"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = a / n
    if ratio.size < 2 or not np.all(np.isfinite(ratio)):
        return []
    middle = float(np.median(ratio))
    if np.all(np.abs(ratio - middle) <= view.ratio_tol * abs(middle)):
        if abs(middle + 1) <= view.ratio_tol:
            return ["wrong sign: analytic = -numeric at every mismatch"]
        facts = [f"a constant ratio: analytic = {middle:.6g} × numeric at every mismatch "
                 f"(a constant factor missing or extra)"]
        if copies and abs(middle * copies - 1) <= view.ratio_tol:
            facts.append(f"1/{copies} is one over the number of copies of this input broadcast in "
                         f"the output: a mean where a sum belongs")
        return facts
    if np.all(ratio > 0) or np.all(ratio < 0):
        return [f"the ratio analytic/numeric varies from {ratio.min():.4g} to {ratio.max():.4g}: "
                f"a factor that depends on the input is missing or extra (compare the ratio with "
                f"the input values)"]
    return []


def _broadcast_pattern(view, axes):
    if not axes:
        return []
    where = ", ".join(map(str, axes))
    rows = view.rows
    if rows.full:
        shape = rows.outs[0].shape
        first = np.array([all(_index(shape, r)[ax] == 0 for ax in axes) for r in range(rows.n)])
        if not view.wrong[first].any() and view.wrong[~first].any():
            return [f"wrong only at broadcast axes: right for the first copy along output axis "
                    f"{where}, over which this input is broadcast, and wrong for the other copies "
                    f"(the vjp does not sum the cotangent over the broadcast axes)"]
    elif view.others_ok:  # a projection shows no pattern; say what is likely
        return [f"only this input, broadcast over output axis {where}, is wrong: check that its "
                f"vjp sums the cotangent over the broadcast axes"]
    return []


def _sign_pattern(view):
    """'wrong only where the input is negative' (or positive, or zero), when it is so."""
    x = np.broadcast_to(view.x[None, :], view.wrong.shape)
    relevant = (view.N != 0) | view.wrong
    for words, test in (("negative", x < 0), ("positive", x > 0), ("zero", x == 0)):
        if view.wrong.any(axis=0).sum() >= 2 and test[view.wrong].all() and (relevant & ~test).any():
            return [f"wrong only where the input is {words}: every entry at other inputs agrees"]
    return []


def _not_finite(view):
    a, n = view.A[view.wrong], view.N[view.wrong]
    if not np.all(np.isfinite(n)):
        return ("the numeric derivative is not finite: fn is NaN or infinite within a step of "
                "these inputs (a domain boundary, or an overflow in fn)")
    if not np.any(np.isfinite(a)):
        wide = _dtypes.opmath(np.dtype(view.dtype))  # where the vjp computed
        largest = float(_dtypes.finfo(wide).max)
        where = "" if wide == view.dtype else f", in which {view.dtype} ops compute"
        return ("the analytic derivative is NaN or infinite at every mismatch and the numeric one "
                f"is finite: an overflow, 0/0 or inf - inf in the vjp (the largest {wide} "
                f"is {largest:.6g}{where})")
    return ""


def _diagnose(view):
    """One line naming the pattern of the wrong entries, or '' when none is clear."""
    not_finite = _not_finite(view)
    if not_finite:
        return not_finite
    if not view.reached:
        return ("all zero: the tape never reached this input (grad returned None), yet the "
                "outputs depend on it: a value taken through numpy (.data, .numpy()) or as a "
                "constant, or a vjp that returns None for it")
    if view.kink[view.wrong].all():
        return _at_kinks(view)
    axes = _single_output_axes(view)
    copies = int(np.prod([view.rows.outs[0].shape[ax] for ax in axes])) if axes else 0
    facts = _ratio_pattern(view, copies) + _broadcast_pattern(view, axes) + _sign_pattern(view)
    relevant = int(((view.N != 0) | view.wrong).sum())
    if view.wrong.sum() == 1 and relevant > 1:
        (j,) = np.nonzero(view.wrong.any(axis=0))[0]
        facts.append(f"only 1 of the {relevant} nonzero entries is wrong, at input value "
                     f"{view.x[j]:.6g}: a special case in the vjp?")
    return "; ".join(facts)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------
def _failure(title, position, label, leaf, view):
    """The :class:`Failure` of one input whose Jacobian has wrong entries."""
    entries = []
    for r, j in zip(*np.nonzero(view.wrong)):
        index = _index(leaf.shape, j)
        kink = bool(view.kink[r, j])
        entries.append(Entry(view.rows.entry(r, label + (_fmt_index(index) if leaf.shape else "")),
                             index, float(view.x[j]), float(view.A[r, j]), float(view.N[r, j]),
                             float(view.left[r, j]) if kink else None,
                             float(view.right[r, j]) if kink else None))
    return Failure(title, position, label, leaf.shape, int(view.wrong.sum()), int(view.wrong.size),
                   entries, _diagnose(view), not view.rows.full)


def _fmt(v):
    return f"{v:.6g}"


def _table(failure, dtype, max_report):
    """The wrong entries as aligned columns (at most ``max_report`` of them)."""
    low = dtype != _FLOAT64
    head = ["entry", "input value", "analytic", "numeric", "difference", "analytic/numeric"]
    head += [f"ulps of {dtype}"] if low else []
    lines, notes = [head], []
    for e in failure.entries[:max_report]:
        diff = e.analytic - e.numeric
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = float(np.float64(e.analytic) / np.float64(e.numeric)) + 0.0  # no "-0"
        row = [e.name, _fmt(e.value), _fmt(e.analytic), _fmt(e.numeric), _fmt(diff), _fmt(ratio)]
        row += [f"{_ulps(abs(diff), e.numeric, dtype):.1f}"] if low else []
        lines.append(row)
        notes.append("" if e.left is None else f"  (a kink: left {_fmt(e.left)}, right {_fmt(e.right)})")
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = ["    " + "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
            + note for row, note in zip(lines, [""] + notes)]
    if len(failure.entries) > max_report:
        text.append(f"    ... and {len(failure.entries) - max_report} more (max_report={max_report})")
    return text


def _how(rows, eps, atol, rtol, dtype, cmp):
    """How the comparison was made: the lines that end a report."""
    if rows.full:
        what = ("the full Jacobian, each entry one derivative (one vector-Jacobian product per "
                "output element, one central difference per input element)")
    else:
        what = (f"a projected Jacobian, because {rows.projected_because}: each entry is (u·J)[j] = sum over i of "
                f"u[i] d out[i] / d input[j], not one derivative, for a random u = "
                f"numpy.random.default_rng({rows.seed}).standard_normal(shape) drawn for each "
                f"output in turn (seed {rows.seed}); pass full_jacobian=True for single derivatives")
    low = dtype != _FLOAT64
    if rtol is None:
        rtol = _ULPS * float(_dtypes.finfo(dtype).eps) if low else _RTOL_FLOAT64
        rtol_words = f"rtol={rtol:.3g}" + (f" ({_ULPS} ulps of {dtype})" if low else "")
    else:
        rtol_words = f"rtol={rtol:.3g}"
    if atol is None:
        atol_words = ("atol per entry from the rounding noise of the difference"
                      + (f" and {_ULPS} ulps of {dtype} of the row's or column's largest entry" if low else ""))
    else:
        atol_words = f"atol={atol:.3g}"
    widest = float(np.max(cmp.tol[~cmp.ok]))
    analytic = f"{dtype}, inputs rounded to it" if low else "float64"
    return [f"  compared: {what}.",
            f"  analytic side in {analytic}; numeric side: float64 central differences with step "
            f"eps={eps:g} × max(1, |x|), retried at 10 and 100 times that before an entry is "
            f"called wrong. Entries agree when |analytic - numeric| <= atol + rtol × |numeric|, "
            f"{rtol_words}, {atol_words} (the tolerance at the wrong entries is {_fmt(widest)} at most)."]


def _report(title, failures, how, dtype, max_report):
    names = ", ".join(f.label for f in failures)
    lines = [f"{title}: wrong with respect to {names}"]
    for f in failures:
        kind = "projected Jacobian entries" if f.projected else "Jacobian entries"
        lines.append(f"  {f.label} (shape {f.shape}): {f.wrong} of {f.total} {kind} differ")
        lines.extend(_table(f, dtype, max_report))
        if f.diagnosis:
            lines.append(f"    diagnosis: {f.diagnosis}")
    return "\n".join(lines + how)


# --------------------------------------------------------------------------------------------
# The engine: an analytic Jacobian (from the tape) against a numeric one
# --------------------------------------------------------------------------------------------
class _Problem:
    """A recorded function of the inputs, its rows, and its analytic Jacobian."""

    def __init__(self, fn, args, checked, labels, *, dtype, full_jacobian, seed, names=None,
                 second_order=False, projected_because=None):
        self.fn, self.args, self.checked, self.labels = fn, args, checked, labels
        self.second_order = second_order  # fn is itself a first derivative
        outs = _outputs(fn, args)
        self.float_outs, default_names = _fn_outputs(outs)
        names = names or default_names
        outs = [outs[k] for k in self.float_outs]
        self.sources = [args[i] for i in checked]
        n_in, n_out = sum(s.size for s in self.sources), sum(y.size for y in outs)
        # one output element: the full Jacobian costs what a projection does
        full = (n_out <= 1 or n_in * n_out <= FULL_JACOBIAN_LIMIT) if full_jacobian is None else full_jacobian
        self.rows = _Rows(outs, names, full, seed, dtype)
        self.rows.projected_because = projected_because or (
            "full_jacobian=False was passed" if full_jacobian is False else
            f"the full one has more than FULL_JACOBIAN_LIMIT={FULL_JACOBIAN_LIMIT} entries")
        self.A, self.reached = _analytic_jacobian(self.rows, self.sources)


class _Part:
    """One comparison's outcome: a title, its failures (none: it passed) and how it compared."""

    def __init__(self, title, short, failures, how):
        self.title, self.short, self.failures, self.how = title, short, failures, how


class _Projected:
    """Rows for an ``evaluate`` that returns the projected value itself (one row)."""

    n = 1

    @staticmethod
    def project(values):
        return np.concatenate([np.ravel(v) for v in values])

    project_error = project


def _compare(title, short, problem, evaluate, numeric_args, *, eps, atol, rtol, dtype,
             numeric_rows=None):
    """Compare ``problem``'s analytic Jacobian with central differences of ``evaluate``
    (whose outputs ``numeric_rows`` projects; by default the problem's rows)."""
    numeric = _Numeric(evaluate, numeric_args, problem.checked, numeric_rows or problem.rows, eps)
    offsets = np.cumsum([0] + [s.size for s in problem.sources])
    cmp = _Comparison(problem.A, numeric, atol=atol, rtol=rtol, dtype=dtype, offsets=offsets,
                      second_order=problem.second_order)
    if cmp.passed:
        return _Part(title, short, [], [])
    inputs_ok = [bool(cmp.ok[:, offsets[a]:offsets[a + 1]].all()) for a in range(len(problem.sources))]
    failures = []
    for a, (position, leaf) in enumerate(zip(problem.checked, problem.sources)):
        if inputs_ok[a]:
            continue
        x = np.asarray(leaf.data, dtype=_FLOAT64).ravel()
        view = _InputView(cmp, slice(offsets[a], offsets[a + 1]), x, reached=problem.reached[a],
                          rows=problem.rows, shape=leaf.shape, dtype=dtype,
                          others_ok=all(ok for b, ok in enumerate(inputs_ok) if b != a))
        failures.append(_failure(title, position, problem.labels[a], leaf, view))
    return _Part(title, short, failures, _how(problem.rows, eps, atol, rtol, dtype, cmp))


def _conclude(parts, raise_exception, dtype, max_report):
    """True when every part passed; else raise the report of the failed ones (or return False)."""
    failed = [p for p in parts if p.failures]
    if not failed:
        return True
    if not raise_exception:
        return False
    texts = [_report(p.title, p.failures, p.how, dtype, max_report) for p in failed]
    if len(parts) > 1:
        texts.insert(0, "check_grads failed. " + "; ".join(
            f"{p.short}: {'WRONG' if p.failures else 'agree'}" for p in parts) + ".")
    raise GradcheckError("\n\n".join(texts), [f for p in failed for f in p.failures])


def _setup(fn, inputs, eps, atol, rtol, max_report, full_jacobian, dtype, seed,
           raise_exception=True):
    """Checked options; the arguments for each side; the checked positions and their labels."""
    _check_options(fn, eps, atol, rtol, max_report, full_jacobian, seed, raise_exception)
    dtype = _check_dtype(dtype)
    inputs = _as_tuple(inputs)
    args, numeric_args, checked = _leaves(inputs, dtype)
    return dtype, inputs, args, numeric_args, checked, [f"input{i}" for i in checked]


def _zeros_for_none(grads, sources):
    return [Tensor(np.zeros(s.shape, dtype=s.dtype)) if g is None else g for g, s in zip(grads, sources)]


# --------------------------------------------------------------------------------------------
# Public checks
# --------------------------------------------------------------------------------------------
def gradcheck(fn, inputs, *, eps=1e-6, atol=None, rtol=None, raise_exception=True, seed=0,
              dtype=None, full_jacobian=None, max_report=10):
    """Check ``fn``'s first derivatives, for every input that requires grad, against central
    differences of ``fn`` in float64.

    Parameters
    ----------
    fn : callable
        Takes the inputs (as positional arguments) and returns a Tensor or a tuple of Tensors.
    inputs : Tensor or sequence
        Arguments for ``fn``. Tensors with ``requires_grad=True`` are checked. Float tensors
        are passed as copies in ``dtype`` (float64 on the numeric side); other arguments are
        passed through unchanged.
    eps : float
        Step of the central differences ``(f(x + h) - f(x - h)) / 2h``, ``h = eps * max(1, |x|)``.
    atol, rtol : float or None
        Analytic ``a`` and numeric ``n`` agree when ``|a - n| <= atol + rtol * |n|``. None
        (the default) derives them per entry: ``atol`` from the rounding noise of that
        difference and of the analytic dtype, so that tiny derivatives are checked too;
        ``rtol`` is 1e-3 in float64 and 16 ulps of a lower ``dtype``.
    raise_exception : bool
        Raise :class:`GradcheckError` with the report (default); otherwise return False.
    seed : int
        Seed of the random output direction ``u`` of a projected Jacobian.
    dtype : dtype or None
        The dtype that the checked inputs are cast to and that ``fn`` and its backward pass run
        in: float64 (None, the default), float32, float16 or bfloat16. The numeric side always
        runs in float64, at the same (rounded) input values; the report then also gives each
        error in ulps of ``dtype``.
    full_jacobian : bool or None
        Compare the full Jacobian (each entry one derivative ``d out[i] / d input[j]``) or its
        projection ``u · J`` on a random ``u``. None: full when it has at most
        ``FULL_JACOBIAN_LIMIT`` (65536) entries, or one row (a single output element).
    max_report : int
        Wrong entries listed per input (all are counted).

    Returns
    -------
    bool
        True when every entry agrees (False instead of raising, with ``raise_exception=False``).

    Raises
    ------
    GradcheckError
        An ``AssertionError`` whose message lists, per input, the wrong entries (index, input
        value, analytic and numeric derivative, difference, ratio) and a one-line diagnosis.

    Examples
    --------
    >>> x = minigrad.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True)
    >>> minigrad.gradcheck(lambda x: (x.tanh() * x).sum(), [x])
    True
    >>> minigrad.gradcheck(lambda x: x.sigmoid(), [x], dtype="float32")  # vs float64 differences
    True
    """
    dtype, inputs, args, numeric_args, checked, labels = _setup(
        fn, inputs, eps, atol, rtol, max_report, full_jacobian, dtype, seed, raise_exception)
    problem = _Problem(fn, args, checked, labels, dtype=dtype, full_jacobian=full_jacobian, seed=seed)
    part = _compare("gradcheck", "first derivatives", problem,
                    _evaluate_function(fn, problem.float_outs), numeric_args,
                    eps=eps, atol=atol, rtol=rtol, dtype=dtype)
    return _conclude([part], raise_exception, dtype, max_report)


def gradgradcheck(fn, inputs, *, eps=1e-6, atol=None, rtol=None, raise_exception=True, seed=0,
                  dtype=None, full_jacobian=None, max_report=10):
    """PyTorch's second-order check: :func:`gradcheck` applied to ``fn``'s gradient.

    The gradient ``g(x, u) = u · d out / d x``, for a random output cotangent ``u`` (from
    ``numpy.random.default_rng(seed + 1)``), is computed with ``create_graph=True``. Its
    derivatives with respect to the inputs ``x`` and to ``u``, which the tape computes by
    differentiating the backward pass, are compared with central differences of ``g``.

    What it catches: a backward pass that the tape cannot differentiate (a ``vjp`` written in
    numpy, or using a constant where a value depends on the inputs), and a wrong derivative of
    the backward pass (an op used inside a ``vjp`` whose own ``vjp`` is wrong).

    What it does not catch: a wrong first derivative. It compares the backward pass with
    *itself*, so a ``vjp`` with a wrong but differentiable formula (one that drops a factor,
    say) passes. Run :func:`gradcheck` as well, or :func:`check_grads` with ``order=2``, which
    checks second derivatives against ``fn`` itself.

    Parameters are those of :func:`gradcheck`. The checked inputs include the cotangents, named
    ``u0``, ``u1``, ... (one per output) in the report; the gradient with respect to input
    ``i`` is named ``g{i}``.

    Examples
    --------
    >>> x = minigrad.tensor([0.5, -1.0], dtype="float64", requires_grad=True)
    >>> minigrad.gradgradcheck(lambda x: (x ** 3).sum(), [x])
    True
    """
    dtype, inputs, args, numeric_args, checked, labels = _setup(
        fn, inputs, eps, atol, rtol, max_report, full_jacobian, dtype, seed, raise_exception)
    outs = _outputs(fn, args)
    float_outs = [k for k, y in enumerate(outs) if _dtypes.is_float(y.dtype)]
    rng = np.random.default_rng(seed + 1)
    cotangents = [rng.standard_normal(outs[k].shape).astype(dtype) for k in float_outs]
    n = len(inputs)

    def first_gradient(*all_args):
        xs, us = all_args[:n], all_args[n:]
        sources = [xs[i] for i in checked]
        outs = _outputs(fn, xs)
        keep = [(outs[k], u) for k, u in zip(float_outs, us) if outs[k].requires_grad]
        grads = [None] * len(sources)
        if keep:
            grads = grad([y for y, _ in keep], sources, [u for _, u in keep], create_graph=True,
                         allow_unused=True)
        return tuple(_zeros_for_none(grads, sources))

    u_args = [Tensor(u, dtype=dtype, requires_grad=True) for u in cotangents]
    u_numeric = [Tensor(u, dtype=_FLOAT64, requires_grad=True) for u in cotangents]
    names = _Outputs([f"g{i}" for i in checked], [args[i].shape for i in checked])
    problem = _Problem(first_gradient, list(args) + u_args,
                       list(checked) + list(range(n, n + len(u_args))),
                       labels + [f"u{k}" for k in float_outs], names=names, dtype=dtype,
                       full_jacobian=full_jacobian, seed=seed, second_order=True)
    part = _compare("gradgradcheck (derivatives of the gradient g = u·d out/d input, against "
                    "central differences of g)", "second derivatives", problem,
                    _evaluate_function(first_gradient, list(range(len(checked)))),
                    list(numeric_args) + u_numeric, eps=eps, atol=atol, rtol=rtol, dtype=dtype)
    return _conclude([part], raise_exception, dtype, max_report)


def check_grads(fn, inputs, order=2, *, eps=1e-6, atol=None, rtol=None, seed=0, dtype=None,
                full_jacobian=None, max_report=10):
    """Check derivatives up to ``order`` against finite differences of ``fn``, as JAX's
    ``jax.test_util.check_grads`` does (reverse mode only: minigrad has no forward mode).

    * ``order=1``: the first derivatives against central differences of ``fn``, as
      :func:`gradcheck`.
    * ``order=2``: also the second derivatives, which the tape computes by differentiating the
      backward pass, against two references: central differences of the *analytic* first
      derivatives (what :func:`gradgradcheck` uses), and central differences of first
      derivatives computed *numerically* from ``fn`` (differences of differences, step
      ``eps ** (2/3)``). A wrong first derivative fails the first-order part; its second
      derivatives, even when consistent with it, fail the second reference. It cannot pass.

    The second derivatives compared are those of each output element,
    ``d²out[i] / d x[j] d x[k]``, when there are at most ``FULL_JACOBIAN_LIMIT`` of them,
    else those of ``u · outputs`` for a random ``u``. When comparing all of them would take
    more than 4096 evaluations of ``fn`` (about 32 input elements), they are projected on a
    random ``v`` as well, and the reference becomes a directional difference of ``fn`` (the
    comparison with the analytic first derivatives, 2 evaluations per input element, stays in
    full while its entries fit). The report says which, with the seeds.

    Parameters are those of :func:`gradcheck`, and ``order`` (1 or 2). Every part runs; the
    report lists each part that failed, after a line saying which agreed.

    Returns
    -------
    True
        When everything agrees (so that ``assert check_grads(...)`` reads as with gradcheck).

    Raises
    ------
    GradcheckError
        With the report of every failed part.

    Examples
    --------
    >>> x = minigrad.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True)
    >>> minigrad.check_grads(lambda x: x.tanh() * x, [x], order=2)
    True
    """
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r} (differences of differences of "
                         f"differences are too noisy in float64 to check a third order)")
    dtype, inputs, args, numeric_args, checked, labels = _setup(
        fn, inputs, eps, atol, rtol, max_report, full_jacobian, dtype, seed)
    first = _Problem(fn, args, checked, labels, dtype=dtype, full_jacobian=full_jacobian, seed=seed)
    evaluate = _evaluate_function(fn, first.float_outs)
    tolerances = dict(atol=atol, rtol=rtol, dtype=dtype)
    parts = [_compare("check_grads, first derivatives against central differences of fn",
                      "first derivatives", first, evaluate, numeric_args, eps=eps, **tolerances)]
    if order == 2:
        parts += _second_order(fn, args, numeric_args, first, evaluate, eps=eps,
                               full_jacobian=full_jacobian, seed=seed, **tolerances)
    return _conclude(parts, True, dtype, max_report)


def _second_order(fn, args, numeric_args, first, evaluate, *, eps, atol, rtol, dtype,
                  full_jacobian, seed):
    """check_grads' second-order parts: analytic second derivatives against differences of the
    analytic first derivatives, and of numeric ones."""
    checked, labels, sources = first.checked, first.labels, first.sources
    n_in = sum(s.size for s in sources)
    n_rows = sum(y.size for y in first.rows.outs)
    # rows of the first derivatives: each output element, or one random combination
    full = n_rows * n_in * n_in <= FULL_JACOBIAN_LIMIT if full_jacobian is None else full_jacobian
    # All second derivatives by differences of differences take 4 n_in² evaluations of fn;
    # past the budget they are projected on a random v, and v·(first derivatives) is a
    # directional difference: 4 n_in evaluations per first-derivative row.
    full_second = 4 * n_in * n_in <= _NESTED_BUDGET if full_jacobian is None else full_jacobian

    def first_rows(outs):
        return _Rows([outs[k] for k in first.float_outs], first.rows.names, full, seed + 2, dtype)

    rows = first_rows(_outputs(fn, args))
    if full:
        expressions = [rows.names.names[k] + (_fmt_index(_index(rows.names.shapes[k], flat))
                                              if rows.names.shapes[k] else "")
                       for k, flat in map(rows.locate, range(rows.n))]
    else:
        expressions = ["(u·" + ("out" if len(rows.outs) == 1 else "outputs") + ")"]
    names = _Outputs([e for e in expressions for _ in sources], [s.shape for _ in expressions for s in sources],
                     wrt=[label for _ in expressions for label in labels])

    def first_derivatives(*xs):
        rows = first_rows(_outputs(fn, xs))
        row_sources = [xs[i] for i in checked]
        result = []
        for ys, gs in rows.cotangents():
            grads = (grad(ys, row_sources, gs, create_graph=True, allow_unused=True) if ys
                     else [None] * len(row_sources))
            result.extend(_zeros_for_none(grads, row_sources))
        return tuple(result)

    # Nested central differences lose eps_machine / h² to rounding and h² to truncation;
    # h ~ 1e-4 balances them: eps ** (2/3) for the default eps.
    eps2 = eps ** (2 / 3)
    offsets = np.cumsum([0] + [s.size for s in sources])

    def numeric_first_derivatives(xs):
        rows = first_rows(_outputs(fn, xs))
        N, noise, _, _ = _Numeric(evaluate, xs, checked, rows, eps2).jacobian()
        pieces = [(r, a) for r in range(rows.n) for a in range(len(sources))]
        return ([N[r, offsets[a]:offsets[a + 1]].reshape(sources[a].shape) for r, a in pieces],
                [noise[r, offsets[a]:offsets[a + 1]].reshape(sources[a].shape) for r, a in pieces])

    budget = (f"all second derivatives by differences would take 4 n² = {4 * n_in * n_in} "
              f"evaluations of fn, more than {_NESTED_BUDGET}")
    second = _Problem(first_derivatives, args, checked, labels, names=names, dtype=dtype,
                      full_jacobian=full_second, seed=seed + 3, second_order=True,
                      projected_because=None if full_jacobian is not None else budget)

    def numeric_directional(xs):
        """v·(first derivatives) at ``xs``: each first-derivative row of fn differentiated
        along its part of v by one central difference."""
        rows = first_rows(_outputs(fn, xs))
        x0 = [np.asarray(xs[i].data, dtype=_FLOAT64) for i in checked]
        reach = max([1.0] + [float(np.max(np.abs(x))) for x in x0 if x.size])
        value = error = 0.0
        for r in range(rows.n):
            direction = second.rows.u[r * len(sources):(r + 1) * len(sources)]
            size = max([0.0] + [float(np.max(np.abs(d))) for d in direction if d.size])
            if size == 0:
                continue
            h = eps2 * reach / size
            ends = []
            for sign in (1, -1):
                moved = list(xs)
                for i, d, x in zip(checked, direction, x0):
                    moved[i] = Tensor(x + sign * h * d, dtype=_FLOAT64, requires_grad=True)
                values, errors = evaluate(moved)
                ends.append((rows.project(values)[r], rows.project_error(errors)[r]))
            (up, e_up), (down, e_down) = ends
            value += (up - down) / (2 * h)
            error += (e_up + e_down) / (2 * h)
        return [np.array([value])], [np.array([error])]

    # The analytic reference costs 2 n_in evaluations of the first derivatives whatever the
    # size, so it compares in full wherever the entries fit, also past the nested budget.
    analytic = second if second.rows.full or full_jacobian is not None else _Problem(
        first_derivatives, args, checked, labels, names=names, dtype=dtype, full_jacobian=None,
        seed=seed + 3, second_order=True)
    options = dict(atol=atol, rtol=rtol, dtype=dtype)
    analytic_ref = _compare(
        "check_grads, second derivatives against central differences of the analytic first "
        "derivatives", "second derivatives vs analytic first", analytic,
        _evaluate_function(first_derivatives, list(range(len(names.names)))), numeric_args,
        eps=eps, **options)
    numeric_ref = _compare(
        "check_grads, second derivatives against central differences of numeric first "
        "derivatives (differences of differences of fn)", "second derivatives vs fn", second,
        numeric_first_derivatives if second.rows.full else numeric_directional, numeric_args,
        eps=eps2, numeric_rows=None if second.rows.full else _Projected, **options)
    return [analytic_ref, numeric_ref]
