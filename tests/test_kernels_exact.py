"""How exact the cross-entropy kernels are, dtype by dtype (issue 7, and issue 9 item 2).

* float32 and float64: loss and backprop element by element within an error bound derived
  from the arithmetic (``error_bounds``), against the float64 reference;
* the per-row stats (max, log-sum) against the reference and, for a few rows, exact values;
* float16 and bfloat16: bit for bit the float32 kernel on the widened logits, rounded once;
  and equal to the reference (float64, rounded to float32, then to the dtype) except where
  the float32 error bound straddles a rounding boundary of the narrow dtype;
* the dense float32 rows over 16 classes: ``y * (x - max)`` formed in double (issue 9);
* bfloat16 <-> float32 conversions against ml_dtypes, and the package without ml_dtypes.

Imports the installed package only; bfloat16 tests skip without ml_dtypes.
"""
import decimal
import os
import subprocess
import sys

import numpy as np
import pytest

from minigrad import _config, _dtypes, _kernels, _xent
from minigrad._xent_reference import (dense_loss_backprop_reference, row_stats_reference,
                                      sparse_loss_backprop_reference)

BF16 = _dtypes.bfloat16
needs_bf16 = pytest.mark.skipif(BF16 is None, reason="bfloat16 needs the optional ml_dtypes")
LOW = [pytest.param("float16"), pytest.param("bfloat16", marks=needs_bf16)]
EVERY = LOW + [pytest.param("float32"), pytest.param("float64")]
SUFFIX = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
F64_EPS = np.finfo(np.float64).eps


def run(kind, logits, labels, threads=1, **scale):
    """The raw kernel for ``logits``' dtype on C-contiguous arrays: (loss, backprop, stats);
    ``scale=`` passed on if given."""
    dtype = logits.dtype
    bits = np.uint16 if dtype.itemsize == 2 else dtype
    name = f"{kind}_{SUFFIX[dtype.name]}" + ("_i64" if kind == "sparse" else "")
    loss, backprop, stats = np.empty(len(logits), dtype), np.empty(logits.shape, dtype), np.empty((len(logits), 2))
    labels = labels.view(bits) if kind == "dense" else labels.astype(np.int64)
    bad = getattr(_xent, name)(logits.view(bits), labels, loss.view(bits), backprop.view(bits), stats, threads,
                               **scale)
    assert bad in (None, -1)
    return loss, backprop, stats


def reference(kind, logits, labels):
    ref = dense_loss_backprop_reference if kind == "dense" else sparse_loss_backprop_reference
    return ref(logits, labels)


def dense_labels(kind, labels, classes):
    """Labels as probability rows (sparse: one-hot) in float64, for the error model."""
    if kind == "dense":
        return labels.astype(np.float64)
    return np.eye(classes)[labels]


# ---- inputs: random rows of many scales with nasty rows at the start, middle and end ------

def nasty_rows(classes, dtype):
    """One row per case that breaks a naive formula ([classes] wide; the first entries set)."""
    top = float(_dtypes.finfo(dtype).max) * 0.9
    tiny = float(_dtypes.finfo(dtype).smallest_subnormal)
    inf, nan = np.inf, np.nan
    cases = [
        (0.0, [nan]),              # NaN: the row is NaN
        (0.0, [0.0, inf]),         # +inf: NaN (inf - inf)
        (-inf, []),                # only -inf: NaN, as TensorFlow
        (0.0, [-inf]),             # a -inf class has probability 0
        (-inf, [-1000.0, 1.0]),    # [-1000, 1]
        (5.0, []),                 # equal logits
        (-top, [top]),             # span 2 * max: x - max overflows in the row's dtype
        (top, []),                 # all at the top of the range
        (tiny, [0.0, -tiny]),      # subnormals
        (0.0, [30.0]),             # one class takes (nearly) everything
        (1e4 if dtype != np.float16 else 1e3, [-1e4 if dtype != np.float16 else -1e3]),
    ]
    rows = np.empty((len(cases), classes))
    for row, (fill, head) in zip(rows, cases):
        row[:] = fill
        row[:min(len(head), classes)] = head[:classes]
    with np.errstate(over="ignore"):
        return rows.astype(dtype)


def problem(kind, dtype, classes, batch, seed):
    """(logits, labels): random rows of scales 1e-3..1e4 with the nasty rows at the start,
    middle and end; dense labels are probability rows with zeros (a zero label at every -inf
    logit but in the last row, whose loss is inf), sparse labels avoid -inf logits but in the
    last row."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    top = float(_dtypes.finfo(dtype).max)
    scale = 10.0 ** rng.uniform(-3, 4, (batch, 1))
    x = np.clip(rng.standard_normal((batch, classes)) * scale, -top, top)
    x[rng.random(x.shape) < 0.03] = -np.inf
    nasty = nasty_rows(classes, dtype).astype(np.float64)
    middle = batch // 2
    x = np.vstack([nasty, x[:middle], nasty, x[middle:], nasty]).astype(dtype)
    if kind == "dense":
        y = rng.random(x.shape) ** 3
        y[rng.random(x.shape) < 0.3] = 0.0
        y[:, 0] += 1e-3
        y[np.isneginf(x.astype(np.float64))] = 0.0
        y[-1, :] = 1.0 / classes              # labels on the -inf logits: loss inf
        labels = (y / np.maximum(y.sum(axis=1, keepdims=True), 1e-300)).astype(dtype)
    else:
        finite = ~np.isneginf(x.astype(np.float64))
        labels = np.array([rng.choice(np.flatnonzero(f)) if f.any() else 0 for f in finite])
        labels[-1] = int(np.argmin(finite[-1]))   # a -inf logit where there is one
    return x, labels


# ---- the error model -----------------------------------------------------------------------

def error_bounds(logits, labels64, compute):
    """Bounds on the kernel's error before the final rounding, from its arithmetic.

    With m the row max, p the softmax, d_j = |x_j - m| (0 at -inf), eps that of the compute
    type (float32 for float16/bfloat16/float32) and n classes:

    * log-sum: ``eps sum_{j: d_j > 0} p_j (1 + d_j) + 2 sqrt(n) eps64``. Each exp is within
      an ulp (exp(0) = 1 exactly), and its argument x_j - m is rounded in the compute type
      (a relative error d_j eps in e_j); the sum and its log run in double over n terms.
    * backprop_j: ``p_j (eps (1 + d_j) + log-sum bound)``: e_j, then 1 / sum and the product
      rounded in the compute type.
    * loss: ``sum_j |y_j| * log-sum bound + 4 sqrt(n) eps64 sum_j |y_j| d_j``: the labelled
      shift y_j (x_j - m) is formed and summed in double.

    Returns (log-sum bound [rows], backprop bound [rows, n], loss bound [rows]); NaN rows NaN.
    """
    x = logits.astype(np.float64)
    eps = np.finfo(compute).eps
    accumulate = 2 * np.sqrt(x.shape[1]) * F64_EPS
    stats = row_stats_reference(x)
    with np.errstate(invalid="ignore", over="ignore"):   # NaN rows; float64 spans past its max
        d = np.where(np.isneginf(x), 0.0, np.abs(x - stats[:, :1]))
        p = np.exp(x - stats[:, :1] - stats[:, 1:])
        log_sum = eps * np.where((p == 0) | (d == 0), 0.0, p * (1 + d)).sum(axis=1) + accumulate
        backprop = np.where(p == 0, 0.0, p * (eps * (1 + d) + log_sum[:, None]))
        y = np.abs(labels64)
        loss = y.sum(axis=1) * log_sum + 2 * accumulate * np.where(y == 0, 0.0, y * d).sum(axis=1)
    return log_sum, backprop, loss


def ulp(values, dtype):
    """The spacing of ``dtype`` at each of ``values`` (float64 in and out)."""
    with np.errstate(over="ignore"):
        return np.abs(np.spacing(np.abs(values).astype(dtype)).astype(np.float64))


def assert_within(got, want, bound, what):
    """NaN and +-inf where ``want`` has them; elsewhere |got - want| <= bound + 1 ulp."""
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(got64), np.isnan(want64), err_msg=f"{what}: NaN places")
    infinite = np.isinf(want64)
    np.testing.assert_array_equal(got64[infinite], want64[infinite], err_msg=f"{what}: infinities")
    finite = np.isfinite(want64)
    err = np.abs(got64[finite] - want64[finite])
    allowed = (np.broadcast_to(bound, want64.shape)[finite]
               + ulp(np.maximum(np.abs(got64), np.abs(want64))[finite], got.dtype))
    worst = np.argmax(err - allowed) if err.size else None
    assert (err <= allowed).all(), (
        f"{what}: error {err[worst]:.3g} > allowed {allowed[worst]:.3g} "
        f"(got {got64[finite][worst]!r}, want {want64[finite][worst]!r})")


CLASSES = [1, 2, 10, 16, 17, 100, 1000]     # <= 16: the short-row path


def batch_for(classes):
    return max(8, min(120, 40000 // classes))


# ---- float32 and float64: loss, backprop and stats within the error model ------------------

@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("classes", CLASSES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float32_float64_within_the_error_model(dtype, classes, kind):
    x, labels = problem(kind, dtype, classes, batch_for(classes), seed=classes)
    want_loss, want_backprop = reference(kind, x, labels)
    log_sum_bound, backprop_bound, loss_bound = error_bounds(x, dense_labels(kind, labels, classes), dtype)
    want_stats = row_stats_reference(x)
    results = [run(kind, x, labels, threads) for threads in (1, 2)]
    for loss, backprop, stats in results:
        assert_within(loss, want_loss, loss_bound, "loss")
        assert_within(backprop, want_backprop, backprop_bound, "backprop")
        np.testing.assert_array_equal(stats[:, 0], want_stats[:, 0])   # the max, exactly
        assert_within(stats[:, 1], want_stats[:, 1], log_sum_bound, "log-sum")
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("level", ["avx2", "avx512"])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("dtype", EVERY)
def test_simd_reductions_agree_with_the_generic_loops(dtype, kind, level):
    """The long rows' SIMD max and sum combine the same values as the generic loops in
    another order: the same max (NaNs passed over alike), NaN in the same places, the
    double sum within a few of its ulps, and so loss and backprop within the error model."""
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    try:
        if _xent.use_simd(level) != level:
            pytest.skip(f"the CPU has no {level} (or MINIGRAD_SIMD caps it)")
        results = {}
        for classes in (17, 24, 33, 100, 1000, 1031):
            x, labels = problem(kind, dtype, classes, 60, seed=classes + 11)
            assert _xent.use_simd(level) == level
            fast = run(kind, x, labels)
            assert _xent.use_simd("generic") == "generic"
            results[classes] = x, labels, fast, run(kind, x, labels)
    finally:
        _xent.use_simd(_xent.SIMD)
    for classes, (x, labels, fast, generic) in results.items():
        np.testing.assert_array_equal(fast[2][:, 0], generic[2][:, 0])            # the max
        # a few ulps of the sum: an absolute error in its log
        np.testing.assert_allclose(fast[2][:, 1], generic[2][:, 1], rtol=1e-14, atol=1e-14)
        # both within the error model of the exact values, so within twice it of each other
        compute = np.float64 if dtype == np.float64 else np.float32
        _, backprop_bound, loss_bound = error_bounds(x, dense_labels(kind, labels, classes), compute)
        assert_within(fast[0], generic[0], 2 * loss_bound, f"loss, {classes} classes")
        assert_within(fast[1], generic[1], 2 * backprop_bound, f"backprop, {classes} classes")


@pytest.mark.parametrize("dtype", EVERY)
def test_infinite_dense_labels_give_the_references_loss(dtype):
    """ysum * log-sum - sum_j y_j (x_j - m) is inf - inf for an infinite label; those rows'
    loss is formed term by term: +-inf as TensorFlow and the reference give (NaN where a term
    is inf * 0, as in the reference), the other rows untouched."""
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    for classes in (1, 2, 16, 17, 100):
        x = np.tile(np.linspace(1.0, -1.0, classes), (5, 1))
        y = np.full((5, classes), 1.0 / classes)
        y[0, -1] = np.inf                          # +inf label, probability < 1: +inf
        y[1, -1] = -np.inf                         # -inf label: -inf
        y[2, 0], y[2, -1] = np.inf, -np.inf        # both: inf - inf term by term too: NaN
        y[3, 0] = np.inf                           # on the max; one class: inf * 0 = NaN
        x, y = x.astype(dtype), y.astype(dtype)
        with np.errstate(invalid="ignore"):            # the reference's inf - inf, on purpose
            want, _ = dense_loss_backprop_reference(x, y)
        x1, y1 = x[:1, :1], y[:1, :1]                  # one class, label inf: the others' sum is 0
        with np.errstate(invalid="ignore"):
            want_one = dense_loss_backprop_reference(x1, y1)
        for threads in (1, 2):
            loss, backprop, _ = run("dense", x, y, threads)
            with np.errstate(invalid="ignore"):
                want_backprop = dense_loss_backprop_reference(x, y)[1].astype(np.float64)
            np.testing.assert_array_equal(np.isnan(backprop.astype(np.float64)), np.isnan(want_backprop))
            np.testing.assert_array_equal(np.isinf(backprop.astype(np.float64)), np.isinf(want_backprop))
            for got_one, want_part in zip(run("dense", x1, y1, threads)[:2], want_one):
                np.testing.assert_array_equal(got_one.astype(np.float64), want_part.astype(np.float64))
            got = loss.astype(np.float64)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want.astype(np.float64)), err_msg=str(classes))
            np.testing.assert_array_equal(got[np.isinf(got)], want.astype(np.float64)[np.isinf(got)])
            assert np.isfinite(got[4]) and np.isinf(got[:2]).all() == (classes > 1), (classes, got)


@pytest.mark.parametrize("dtype", EVERY)
def test_stats_of_the_nasty_rows(dtype):
    for classes in (1, 2, 5, 16, 17, 40):
        x = nasty_rows(classes, np.dtype(_dtypes.as_dtype(dtype)))
        for kind in ("dense", "sparse"):
            labels = np.zeros(len(x), np.int64) if kind == "sparse" else np.full(x.shape, 1 / classes, x.dtype)
            _, _, stats = run(kind, x, labels)
            want = row_stats_reference(x)
            # NaN, +inf, only -inf: both NaN; elsewhere the max exactly
            np.testing.assert_array_equal(np.isnan(stats), np.isnan(want))
            np.testing.assert_array_equal(stats[:, 0], want[:, 0])
            nan_rows = [0, 1, 2] if classes > 1 else [0, 2, 3]  # one class: [0.0] and [-inf]
            np.testing.assert_array_equal(np.flatnonzero(np.isnan(stats[:, 1])), nan_rows)


def test_stats_against_exact_values():
    """A few rows against their log-sum computed to 40 digits (the decimal module's exp and
    ln are correctly rounded at any precision)."""
    rng = np.random.default_rng(7)
    rows = [[-1000.0, 1.0], [0.1, 0.2, 0.3], [1e4] * 7, [3e38, -3e38, 0.0], [1e-40, -1e-40, 0.0],
            list(rng.standard_normal(1000) * 3), list(rng.standard_normal(20) * 0.01)]
    with decimal.localcontext() as context:
        context.prec = 40
        for dtype in (np.float32, np.float64):
            for values in rows:
                x = np.array([values], dtype)
                top = decimal.Decimal(float(x.max()))
                exact = float(sum((decimal.Decimal(float(v)) - top).exp() for v in x[0]).ln())
                log_sum_bound = error_bounds(x, np.zeros(x.shape), dtype)[0][0]
                for kind, labels in (("sparse", np.zeros(1, np.int64)), ("dense", np.eye(len(values), dtype=dtype)[:1])):
                    _, _, stats = run(kind, x, labels)
                    assert stats[0, 0] == float(x.max())
                    assert abs(stats[0, 1] - exact) <= log_sum_bound + ulp(exact, np.float64), (dtype, values[:3])


@pytest.mark.parametrize("dtype", EVERY)
def test_sparse_equals_dense_one_hot(dtype):
    """Same max, same sums, same loss; the backprop's label column may differ by the one
    rounding a fused multiply-add saves the dense rows (softmax * 1/sum - 1)."""
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    for classes in (3, 16, 17, 300):
        x, labels = problem("sparse", dtype, classes, 50, seed=classes + 1)
        one_hot = np.eye(classes, dtype=dtype)[labels]
        sparse, dense = run("sparse", x, labels), run("dense", x, one_hot)
        np.testing.assert_array_equal(sparse[2], dense[2])
        np.testing.assert_array_equal(sparse[0], dense[0])
        off_label = one_hot == 0
        np.testing.assert_array_equal(sparse[1][off_label], dense[1][off_label])
        assert_within(sparse[1], dense[1], 0.0, "label column")


# ---- the backprop's scale (a reduction folded into the kernel) ------------------------------

def same_bits(a, b):
    return np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("dtype", EVERY)
def test_scale_one_is_the_unscaled_kernel_and_powers_of_two_are_exact(dtype):
    """inv = scale / sum and sc = scale are rounded once to the row's type: scale = 1 gives
    the unscaled bits, and a power of two scales every backprop exactly where it is a normal
    number before and after (a subnormal one has fewer bits on one side). Loss and stats do
    not depend on the scale."""
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    compute = np.float64 if dtype == np.float64 else np.float32
    for kind in ("dense", "sparse"):
        for classes in (1, 3, 16, 17, 300):
            x, labels = problem(kind, dtype, classes, batch_for(classes), seed=classes + 5)
            for threads in (1, 2):
                plain = run(kind, x, labels, threads)
                one = run(kind, x, labels, threads, scale=1.0)
                assert all(same_bits(a, b) for a, b in zip(plain, one))
                for k in (-12, -1, 3):
                    loss, backprop, stats = run(kind, x, labels, threads, scale=2.0 ** k)
                    assert same_bits(loss, plain[0]) and same_bits(stats, plain[2])
                    if dtype.itemsize == 2:
                        continue   # rounded from float32: checked against the float32 kernel below
                    want = plain[1].astype(compute) * compute(2.0 ** k)
                    tiny = np.finfo(compute).tiny       # subnormal before or after: not exact
                    normal = (np.abs(want) >= tiny) & (np.abs(plain[1]) >= tiny)
                    np.testing.assert_array_equal(np.isnan(backprop), np.isnan(want))
                    assert same_bits(backprop[normal], want[normal].astype(dtype))


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("classes", [1, 2, 10, 16, 17, 100, 1000])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scaled_backprop_within_the_error_model(dtype, classes, kind):
    """scale * (softmax - y) against the float64 reference times scale: the unscaled bound
    times |scale|, plus the rounding of y_j * sc (sc = scale rounded to the row's type, then
    the product rounded: at most eps |scale y_j|), plus |scale| times the smallest subnormal
    for an e_j that fell in the subnormals (its absolute error, up to half of that, is
    within the unscaled result's own last-place slack, but a scale above 1 magnifies it)."""
    x, labels = problem(kind, dtype, classes, batch_for(classes), seed=classes + 6)
    _, want_backprop = reference(kind, x.astype(np.float64), labels if kind == "sparse" else labels.astype(np.float64))
    y = dense_labels(kind, labels, classes)
    _, backprop_bound, _ = error_bounds(x, y, dtype)
    eps, subnormal = np.finfo(dtype).eps, np.finfo(dtype).smallest_subnormal
    for scale in (1 / 3, -1 / 4096, 1e-7, 7.0):
        for threads in (1, 2):
            loss, backprop, stats = run(kind, x, labels, threads, scale=scale)
            with np.errstate(invalid="ignore", over="ignore"):
                want = (want_backprop * scale).astype(dtype)
            bound = abs(scale) * (backprop_bound + eps * np.abs(y) + subnormal)
            assert_within(backprop, want, bound, f"backprop * {scale}")


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("dtype", LOW)
def test_low_precision_scaled_is_the_float32_kernel_rounded_once(dtype, kind):
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    for classes in (3, 17, 300):
        x, labels = problem(kind, dtype, classes, max(2, 6000 // classes), seed=classes + 7)
        wide_labels = labels.astype(np.float32) if kind == "dense" else labels
        for scale in (1 / 3, 1 / 4096):
            loss32, backprop32, stats32 = run(kind, x.astype(np.float32), wide_labels, scale=scale)
            loss, backprop, stats = run(kind, x, labels, scale=scale)
            assert_same_bits(loss, rounded(loss32, dtype), "loss")
            assert_same_bits(backprop, rounded(backprop32, dtype), "backprop")
            np.testing.assert_array_equal(stats, stats32)


def test_kernels_layer_passes_the_scale():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 30)).astype(np.float32)
    labels = rng.integers(0, 30, 40)
    y = np.eye(30, dtype=np.float32)[labels]
    for scale in (1.0, 0.025):
        for got, want in ((_kernels.sparse_loss_backprop(x, labels, scale=scale), run("sparse", x, labels, scale=scale)),
                          (_kernels.dense_loss_backprop(x, y, scale=scale), run("dense", x, y, scale=scale))):
            assert all(same_bits(a, b) for a, b in zip(got, want))


# ---- float16 and bfloat16: the float32 kernel on the widened logits, rounded once -----------

def rounded(values, dtype):
    """float32 (or float64: rounded to float32 first) values rounded to ``dtype`` by numpy
    (float16) or ml_dtypes (bfloat16)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(np.float32).astype(dtype)


def assert_same_bits(got, want, what):
    """Bit for bit where ``want`` is a number; NaN where it is NaN (ml_dtypes drops payloads)."""
    nan = np.isnan(want.astype(np.float32))
    np.testing.assert_array_equal(np.isnan(got.astype(np.float32)), nan, err_msg=f"{what}: NaN places")
    np.testing.assert_array_equal(got.view(np.uint16)[~nan], want.view(np.uint16)[~nan], err_msg=what)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("classes", [1, 3, 16, 17, 100, 5000])
@pytest.mark.parametrize("dtype", LOW)
def test_low_precision_is_the_float32_kernel_rounded_once(dtype, classes, kind, threads):
    # several widening blocks (about 4096 logits each) and thread shares
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    x, labels = problem(kind, dtype, classes, max(2, 6000 // classes), seed=classes)
    wide_labels = labels.astype(np.float32) if kind == "dense" else labels
    loss32, backprop32, stats32 = run(kind, x.astype(np.float32), wide_labels, threads)
    loss, backprop, stats = run(kind, x, labels, threads)
    assert_same_bits(loss, rounded(loss32, dtype), "loss")
    assert_same_bits(backprop, rounded(backprop32, dtype), "backprop")
    np.testing.assert_array_equal(stats, stats32)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("classes", [1, 2, 10, 16, 17, 100, 1000])
@pytest.mark.parametrize("dtype", LOW)
def test_low_precision_equals_the_reference(dtype, classes, kind):
    """Equal to the reference's float64 result rounded to float32 then to the dtype, except
    where the float32 computation's error bound straddles a rounding boundary of the dtype:
    there either neighbour is right. Such elements must be rare among the values of normal
    float32 size (below it, and at the exact zeros of one-class rows, float32 has no relative
    precision to speak of), or this test says little. Most that straddle are ties: a loss
    m - x_label of two bfloat16 logits on a midpoint of the dtype."""
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    x, labels = problem(kind, dtype, classes, batch_for(classes), seed=classes + 2)
    loss, backprop, _ = run(kind, x, labels)
    exact = reference(kind, x.astype(np.float64), labels if kind == "sparse" else labels.astype(np.float64))
    want = reference(kind, x, labels)
    _, backprop_bound, loss_bound = error_bounds(x, dense_labels(kind, labels, classes), np.float32)
    bounds = loss_bound, backprop_bound
    straddling = total = 0
    for got, exact64, want_low, bound, what in zip((loss, backprop), exact, want, bounds, ("loss", "backprop")):
        # the reference is the float64 result rounded twice
        np.testing.assert_array_equal(want_low.astype(np.float64),
                                      rounded(exact64, dtype).astype(np.float64))
        with np.errstate(invalid="ignore"):
            slack = bound + ulp(exact64, np.float32)
            low = rounded(exact64 - slack, dtype).astype(np.float64)
            high = rounded(exact64 + slack, dtype).astype(np.float64)
        got64, want64 = got.astype(np.float64), want_low.astype(np.float64)
        np.testing.assert_array_equal(np.isnan(got64), np.isnan(want64), err_msg=what)
        finite = np.isfinite(want64)
        np.testing.assert_array_equal(got64[~finite], want64[~finite], err_msg=what)
        inside = (low <= got64) & (got64 <= high)
        assert inside[finite].all(), f"{what}: {got64[finite & ~inside][:5]} vs {want64[finite & ~inside][:5]}"
        exact_here = finite & (low == high)
        np.testing.assert_array_equal(got64[exact_here], want64[exact_here], err_msg=what)
        normal = finite & (np.abs(exact64) >= np.finfo(np.float32).tiny)
        straddling += int((normal & (low != high)).sum())
        total += int(normal.sum())
    assert straddling <= 0.05 * total, f"{straddling} of {total} elements could round either way"


# ---- issue 8: the label entry of a confident row, without cancellation ----------------------

def confident_rows(classes, dtype, gaps, seed):
    """Rows whose label logit is 0, the max, and the others -(gap + d) with d a multiple of
    1/64 in [0, 4): the label's probability is 1 - (others) / (1 + others), and x - max is
    exact in every dtype (the kernel rounds x - max in the row's type, an error of its own
    that the error model covers elsewhere)."""
    rng = np.random.default_rng(seed)
    rows = len(gaps)
    x = -(np.asarray(gaps, np.float64)[:, None] + rng.integers(0, 256, (rows, classes)) / 64)
    labels = rng.integers(0, classes, rows)
    x[np.arange(rows), labels] = 0.0
    return x.astype(dtype), labels


def exact_label_entry(x, labels, scale):
    """scale * (softmax_label - 1) = -scale * others / (1 + others), others = sum of e^x_j
    over j != label, to 40 digits (the decimal module's exp is correctly rounded)."""
    with decimal.localcontext() as context:
        context.prec = 40
        out = []
        for row, label in zip(x.astype(np.float64), labels):
            others = sum(decimal.Decimal(float(v)).exp() for j, v in enumerate(row) if j != label)
            out.append(float(-decimal.Decimal(scale) * others / (1 + others)))
    return np.array(out)


def ulps_off(got, exact, dtype):
    """|got - exact| in units of the spacing of ``dtype`` at the exact value (float64 in)."""
    return np.abs(got.astype(np.float64) - exact) / ulp(exact, dtype)


@pytest.mark.parametrize("classes", [2, 10, 16, 17, 100, 1000])   # <= 16: the short rows
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_confident_label_entry_is_exact(dtype, classes):
    """softmax_label - 1 for a confident row (logit gaps 10..100) against its exact value,
    sparse and dense one-hot alike (the same bits), on 1 and 2 threads and with a scale: it
    is formed as -others / sum from the sum of the other exps (xent_set_aside_* in
    _xent_row.h), so its error is that of the others' sum plus two roundings.

    * float32: the others' exps (within an ulp each) are summed in double, so the sum keeps
      their relative accuracy: 1.5 ulp. Where some of them fall in the subnormals (gaps over
      87), each carries an absolute error of up to half the smallest subnormal.
    * float64: the sum of the others is accumulated in double like every row sum, which the
      error model allows 2 sqrt(n) eps64 (relative); measured: 2 ulp up to 100 classes, 4 at
      1000.

    Formed as e_label / sum - 1 in the row's type, the entry cancels: the last check shows
    that form off by over a million ulp on the same rows (in float64: 0 instead of -1e-40)."""
    dtype = np.dtype(dtype)
    gaps = np.linspace(10, 100, 46)
    x, labels = confident_rows(classes, dtype, gaps, seed=classes)
    one_hot = np.eye(classes, dtype=dtype)[labels]
    rows = np.arange(len(labels))
    info = np.finfo(dtype)
    with np.errstate(under="ignore"):
        subnormal_others = (np.exp(x.astype(np.float64)) < info.tiny).sum(axis=1)
    for scale in (1.0, 1 / 3):
        exact = exact_label_entry(x, labels, scale)
        spacing = ulp(exact, dtype)
        accumulate = 2 * np.sqrt(classes) * F64_EPS if dtype == np.float64 else 0.0
        allowed = 1.5 + (np.abs(exact) * accumulate
                         + subnormal_others * abs(scale) * float(info.smallest_subnormal)) / spacing
        for threads in (1, 2):
            _, sparse, _ = run("sparse", x, labels, threads, scale=scale)
            _, dense, _ = run("dense", x, one_hot, threads, scale=scale)
            np.testing.assert_array_equal(dense[rows, labels], sparse[rows, labels])
            off = ulps_off(sparse[rows, labels], exact, dtype)
            worst = np.argmax(off - allowed)
            assert (off <= allowed).all(), (f"label entry {off[worst]:.3g} ulp off at gap "
                                            f"{gaps[worst]}, allowed {allowed[worst]:.3g}")
    # the cancelling form, e_label * (1 / sum) - 1 in the row's type, on the same rows
    with np.errstate(under="ignore"):
        sums = np.exp(x.astype(np.float64)).sum(axis=1)   # e_label = e^0 = 1
    naive = (dtype.type(1) * (1 / sums).astype(dtype) - dtype.type(1)).astype(np.float64)
    assert ulps_off(naive, exact_label_entry(x, labels, 1.0), dtype).max() > 1e6


@pytest.mark.parametrize("dtype", LOW)
def test_confident_label_entry_low_precision(dtype):
    """float16 and bfloat16 through the float32 kernel: the float32 entry rounded once, so
    within an ulp of the dtype (bfloat16 has float32's range; in float16 these entries are
    below its smallest subnormal, and round to zero or to it)."""
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    gaps = np.linspace(10, 80, 15)
    x, labels = confident_rows(40, dtype, gaps, seed=3)
    rows = np.arange(len(labels))
    _, backprop, _ = run("sparse", x, labels)
    _, backprop32, _ = run("sparse", x.astype(np.float32), labels)
    assert_same_bits(backprop, rounded(backprop32, dtype), "backprop")
    exact = exact_label_entry(x, labels, 1.0)
    got = backprop[rows, labels].astype(np.float64)
    spacing = np.abs(np.spacing(np.abs(exact).astype(dtype)).astype(np.float64))
    assert (np.abs(got - exact) <= spacing).all()


# ---- issue 9: dense float32 rows over 16 classes -------------------------------------------

@pytest.mark.parametrize("dtype", [pytest.param("bfloat16", marks=needs_bf16), "float32", "float64"])
def test_dense_huge_span_is_finite_on_both_row_paths(dtype):
    """x = [3e38, -3e38, ...], y = [0.999, 0.001, 0, ...]: loss 0.001 * 6e38 on every row
    length (the short rows formed y * (x - max) in double, the long ones overflowed)."""
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    losses = []
    for classes in range(1, 41):
        x = np.full((1, classes), -3e38).astype(dtype)
        x[0, 0] = 3e38
        y = np.zeros((1, classes), dtype)
        y[0, :2] = [0.999, 0.001][:classes]
        for threads in (1, 2):
            loss, backprop, stats = run("dense", x, y, threads)
            want_loss, want_backprop = dense_loss_backprop_reference(x, y)
            np.testing.assert_array_equal(loss, want_loss)
            np.testing.assert_array_equal(backprop, want_backprop)
            np.testing.assert_array_equal(stats, [[float(x[0, 0]), 0.0]])
        losses.append(float(loss[0]))
    y_1 = float(np.array(0.001).astype(dtype))
    expected = float(np.array(y_1 * (float(x[0, 0]) - float(x[0, 1]))).astype(dtype))
    assert losses == [0.0] + [expected] * 39 and np.isfinite(expected)


# ---- layouts: strided, Fortran, read-only and unaligned inputs through _kernels -------------

@pytest.mark.parametrize("dtype", EVERY)
def test_layouts_give_the_contiguous_result(dtype):
    dtype = np.dtype(_dtypes.as_dtype(dtype))
    for kind in ("dense", "sparse"):
        for classes in (7, 40):
            x, labels = problem(kind, dtype, classes, 30, seed=3)
            want = run(kind, x, labels)
            wide = np.zeros((x.shape[0], 2 * classes), dtype)
            wide[:, ::2] = x
            readonly = x.copy()
            readonly.flags.writeable = False
            for logits in (wide[:, ::2], np.asfortranarray(x), readonly):
                call = _kernels.dense_loss_backprop if kind == "dense" else _kernels.sparse_loss_backprop
                got = call(logits, np.asfortranarray(labels) if kind == "dense" else labels)
                for g, w in zip(got, want):
                    assert g.dtype == w.dtype and g.flags.c_contiguous
                    np.testing.assert_array_equal(g.view(np.uint8), w.view(np.uint8))


def test_bad_sparse_labels_give_nan_rows_in_every_dtype():
    for dtype in [d for d in _kernels.LOGIT_DTYPES]:
        for classes in (4, 40):
            x = np.zeros((6, classes), dtype)
            labels = np.array([0, classes, 1, -1, 2, 3], np.int64)
            bits = np.uint16 if dtype.itemsize == 2 else dtype
            loss, backprop, stats = np.empty(6, dtype), np.empty(x.shape, dtype), np.empty((6, 2))
            kernel = getattr(_xent, f"sparse_{SUFFIX[dtype.name]}_i64")
            assert kernel(x.view(bits), labels, loss.view(bits), backprop.view(bits), stats, 1) == 1
            assert np.isnan(loss.astype(np.float32)[[1, 3]]).all() and np.isnan(stats[[1, 3]]).all()
            good = [0, 2, 4, 5]
            np.testing.assert_allclose(loss.astype(np.float64)[good], np.log(classes), rtol=1e-2)
            np.testing.assert_array_equal(stats[good, 0], 0.0)
            np.testing.assert_allclose(stats[good, 1], np.log(classes), rtol=4e-16)   # exps all 1


# ---- bfloat16 conversions --------------------------------------------------------------------

@needs_bf16
def test_bf16_to_float_exhaustive():
    bits = np.arange(2**16, dtype=np.uint16)
    out = np.empty(2**16, np.float32)
    _xent.bf16_to_float(bits, out)
    np.testing.assert_array_equal(out.view(np.uint32), bits.astype(np.uint32) << 16)   # NaN payloads too
    with np.errstate(invalid="ignore"):
        expected = bits.view(BF16).astype(np.float32)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(out.view(np.uint32)[~nan], expected.view(np.uint32)[~nan])


@needs_bf16
def test_float_to_bf16_rounds_to_nearest_even_as_ml_dtypes():
    rng = np.random.default_rng(8)
    finite = np.arange(2**16, dtype=np.uint16).view(BF16).astype(np.float32)
    finite = np.unique(finite[np.isfinite(finite) & (finite >= 0)])
    mids = ((finite[1:].astype(np.float64) + finite[:-1]) / 2).astype(np.float32)   # exact in float32
    top = float(_dtypes.finfo(BF16).max)
    half_ulp_at_top = 2.0 ** (127 - 8)
    values = np.concatenate([
        finite, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(0)),
        rng.standard_normal(200000).astype(np.float32) * np.float32(2.0) ** rng.integers(-149, 127, 200000),
        np.array([top, top + half_ulp_at_top, np.nextafter(np.float32(top + half_ulp_at_top), np.float32(0)),
                  np.finfo(np.float32).max, np.inf, 2.0 ** -149, 2.0 ** -126, 0.0], np.float32),
    ]).astype(np.float32)
    values = np.concatenate([values, -values])
    out = np.empty(values.size, np.uint16)
    _xent.float_to_bf16(values, out)
    with np.errstate(over="ignore"):
        expected = values.astype(BF16).view(np.uint16)
    np.testing.assert_array_equal(out, expected)
    # the top: the largest bfloat16 plus half an ulp is a tie, rounded to even: inf
    assert out[np.flatnonzero(values == np.float32(top + half_ulp_at_top))[0]] == 0x7F80


@needs_bf16
def test_float_to_bf16_keeps_nan_quiet_with_sign_and_top_payload():
    rng = np.random.default_rng(9)
    payload = rng.integers(1, 2**23, 10000, dtype=np.uint32)
    sign = rng.integers(0, 2, 10000, dtype=np.uint32) << 31
    nans = (sign | 0x7F800000 | payload).view(np.float32)
    out = np.empty(nans.size, np.uint16)
    _xent.float_to_bf16(nans, out)
    wide = nans.view(np.uint32)
    np.testing.assert_array_equal(out, ((wide >> 16) | 0x40).astype(np.uint16))   # never inf
    with np.errstate(invalid="ignore"):
        assert np.isnan(out.view(BF16).astype(np.float32)).all()   # ml_dtypes: a canonical NaN


# ---- configuration and the package without ml_dtypes ---------------------------------------

def test_show_config_reports_bfloat16(capsys):
    info = _config.show_config()
    printed = capsys.readouterr().out
    assert info["bfloat16"] is (BF16 is not None) and "bfloat16" in printed
    if BF16 is not None:
        import ml_dtypes
        assert info["ml_dtypes"] == ml_dtypes.__version__
        assert BF16 in _kernels.LOGIT_DTYPES
    else:
        assert info["ml_dtypes"] is None


def test_without_ml_dtypes_everything_else_runs(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['ml_dtypes'] = None   # import ml_dtypes now raises ImportError\n"
        "import numpy as np\n"
        "from minigrad import _config, _dtypes, _kernels\n"
        "assert _dtypes.bfloat16 is None\n"
        "assert [d.name for d in _kernels.LOGIT_DTYPES] == ['float16', 'float32', 'float64']\n"
        "info = _config.show_config(print_=False)\n"
        "assert info['bfloat16'] is False and info['ml_dtypes'] is None\n"
        "for dtype in _kernels.LOGIT_DTYPES:\n"
        "    loss, backprop, stats = _kernels.sparse_loss_backprop(np.zeros((2, 3), dtype), np.array([0, 1]))\n"
        "    assert abs(float(loss[0]) - np.log(3)) < 1e-3 and (stats[:, 0] == 0).all()\n"
        "try:\n"
        "    _kernels.dense_loss_backprop(np.zeros((1, 2), np.uint16), np.zeros((1, 2), np.uint16))\n"
        "except TypeError as e:\n"
        "    assert 'float16, float32 or float64, got uint16' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('uint16 logits were accepted')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env=dict(os.environ))   # not the repo root: the installed package
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
