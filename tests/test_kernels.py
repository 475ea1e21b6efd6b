"""The compiled cross-entropy kernels against the numpy reference.

Imports the installed package only (minigrad._kernels and friends know nothing
of Tensors, so these tests do not depend on the autograd core).
"""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigrad import _config, _dtypes, _xent
from minigrad._kernels import dense_loss_backprop, sparse_loss_backprop
from minigrad._xent_reference import dense_loss_backprop_reference, sparse_loss_backprop_reference

BF16 = _dtypes.bfloat16          # None without the optional ml_dtypes
FLOATS = [np.dtype(d) for d in (np.float16, BF16, np.float32, np.float64) if d is not None]
INTS = [np.int32, np.int64]
# relative to the row's scale: float16 and bfloat16 are computed in float32 and rounded once
# (tests/test_kernels_exact.py holds every dtype to tighter, per-element bounds)
EPS = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 3e-6, np.dtype(np.float64): 1e-12}
if BF16 is not None:
    EPS[BF16] = 1.6e-2
# kernel name suffix and the array type the kernel takes
SUFFIX = {np.dtype(np.float16): "f16", BF16: "bf16", np.dtype(np.float32): "f32",
          np.dtype(np.float64): "f64"}


def assert_matches(actual, expected, scale=1.0):
    """Kernel vs reference: same dtype and shape, NaN in the same places, close elsewhere."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    eps = EPS[actual.dtype]
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=eps, atol=eps * scale, equal_nan=True)


def logit_scale(logits):
    finite = np.abs(logits[np.isfinite(logits)].astype(np.float64))
    return 1.0 + (finite.max() if finite.size else 0.0)


def random_probabilities(rng, shape, dtype, zeros=True):
    p = rng.random(shape) ** 3
    if zeros:
        p[rng.random(shape) < 0.3] = 0.0
    p[:, 0] += 1e-3                       # no all-zero rows
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


# ---- hypothesis: kernel vs reference over shapes, dtypes, values -------------

@st.composite
def problems(draw):
    batch = draw(st.integers(0, 24))
    classes = draw(st.one_of(st.integers(1, 40), st.sampled_from([1, 2, 255, 256, 257, 5000])))
    if batch * classes > 20000:
        batch = 20000 // classes
    dtype = np.dtype(draw(st.sampled_from(FLOATS)))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1.0, 10.0, 100.0, 1e4]))
    specials = draw(st.booleans())
    layout = draw(st.sampled_from(["C", "F", "strided", "readonly"]))
    return batch, classes, dtype, seed, scale, specials, layout


def make_logits(batch, classes, dtype, seed, scale, specials, layout):
    rng = np.random.default_rng(seed)
    if dtype == np.float16:
        scale = min(scale, 1e3)
    x = (rng.standard_normal((batch, classes)) * scale).astype(dtype)
    if specials and batch:
        x[rng.random(x.shape) < 0.1] = -np.inf
        row = rng.integers(batch)
        x[row, rng.integers(classes)] = rng.choice([np.nan, np.inf, -np.inf])
    if layout == "F":
        x = np.asfortranarray(x)
    elif layout == "strided":
        wide = np.zeros((batch, 2 * classes), dtype)
        wide[:, ::2] = x
        x = wide[:, ::2]
    elif layout == "readonly":
        x.flags.writeable = False
    return x, rng


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_dense_matches_reference(problem):
    logits, rng = make_logits(*problem)
    labels = random_probabilities(rng, logits.shape, logits.dtype)
    before = logits.copy(), labels.copy()
    loss, backprop, _ = dense_loss_backprop(logits, labels)
    ref_loss, ref_backprop = dense_loss_backprop_reference(logits, labels)
    assert_matches(loss, ref_loss, scale=logit_scale(logits))
    assert_matches(backprop, ref_backprop)
    np.testing.assert_array_equal(logits, before[0])
    np.testing.assert_array_equal(labels, before[1])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.sampled_from(INTS))
def test_sparse_matches_reference(problem, label_dtype):
    logits, rng = make_logits(*problem)
    labels = rng.integers(0, logits.shape[1], logits.shape[0]).astype(label_dtype)
    loss, backprop, _ = sparse_loss_backprop(logits, labels)
    ref_loss, ref_backprop = sparse_loss_backprop_reference(logits, labels)
    assert_matches(loss, ref_loss, scale=logit_scale(logits))
    assert_matches(backprop, ref_backprop)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(0, 5), (1, 1), (7, 1), (3, 5000)])
def test_edge_shapes(shape, dtype):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(shape).astype(dtype)
    labels = rng.integers(0, shape[1], shape[0])
    loss, backprop, stats = sparse_loss_backprop(logits, labels)
    assert loss.shape == shape[:1] and backprop.shape == shape and loss.dtype == dtype
    assert stats.shape == (shape[0], 2) and stats.dtype == np.float64
    assert_matches(loss, sparse_loss_backprop_reference(logits, labels)[0])
    dense = np.eye(shape[1], dtype=dtype)[labels]
    assert_matches(dense_loss_backprop(logits, dense)[1], backprop)
    if shape[1] == 1:   # one class: probability 1, loss 0, gradient 0
        assert not loss.any() and not backprop.any()


# ---- hand-computed cases and nasty rows ---------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_hand_computed(dtype):
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0], [-1000.0, 1.0], [5.0, 5.0]], dtype)
    labels = np.array([[1.0, 0.0], [0.25, 0.75], [1.0, 0.0], [0.5, 0.5]], dtype)
    # softmax rows: [1/2, 1/2], [3/4, 1/4], [~0, ~1], [1/2, 1/2]
    expected_loss = [np.log(2), -(0.25 * np.log(0.75) + 0.75 * np.log(0.25)), 1001.0, np.log(2)]
    expected_backprop = [[-0.5, 0.5], [0.5, -0.5], [-1.0, 1.0], [0.0, 0.0]]
    loss, backprop, _ = dense_loss_backprop(logits, labels)
    tol = dict(rtol=EPS[np.dtype(dtype)] * 2, atol=EPS[np.dtype(dtype)] * 2)
    np.testing.assert_allclose(loss.astype(float), expected_loss, **tol)
    np.testing.assert_allclose(backprop.astype(float), expected_backprop, **tol)
    loss, backprop, _ = sparse_loss_backprop(logits[[0, 2]], np.array([0, 0]))
    np.testing.assert_allclose(loss.astype(float), [np.log(2), 1001.0], **tol)


@pytest.mark.parametrize("dtype", FLOATS)
def test_nonfinite_rows(dtype):
    inf, nan = np.inf, np.nan
    logits = np.array([
        [1.0, 2.0, 3.0],        # ordinary
        [nan, 0.0, 0.0],        # NaN -> row NaN
        [-inf, -inf, -inf],     # all -inf -> NaN, as TensorFlow
        [inf, 0.0, 0.0],        # +inf -> NaN
        [-inf, 0.0, 0.0],       # -inf class gets probability 0
        [1e4, -1e4, 0.0],       # extreme but finite
    ], dtype)
    labels = np.array([[0.2, 0.3, 0.5], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0.0, 0.5, 0.5], [0, 0, 1]], dtype)
    loss, backprop, stats = dense_loss_backprop(logits, labels)
    assert np.isnan(stats[1:4]).all() and np.isfinite(stats[[0, 4, 5]]).all()
    assert np.isnan(loss[1:4]).all() and np.isnan(backprop[1:4]).all()
    assert np.isfinite(loss[[0, 4, 5]]).all() and np.isfinite(backprop[[0, 4, 5]]).all()
    # the zero label at the -inf logit contributes its limit 0 (TensorFlow: 0 * inf = NaN)
    np.testing.assert_allclose(float(loss[4]), np.log(2), rtol=EPS[np.dtype(dtype)])
    np.testing.assert_array_equal(backprop[4].astype(float), [0, 0, 0])
    if dtype != np.float16:
        np.testing.assert_allclose(float(loss[5]), 1e4, rtol=EPS[np.dtype(dtype)])
    # a non-zero label on a -inf logit costs infinitely much
    inf_loss, _, _ = dense_loss_backprop(logits[4:5], np.array([[1, 0, 0]], dtype))
    assert inf_loss[0] == np.inf
    sparse_loss, sparse_backprop, _ = sparse_loss_backprop(logits, np.array([2, 1, 1, 0, 0, 2]))
    assert np.isnan(sparse_loss[1:4]).all() and np.isnan(sparse_backprop[1:4]).all()
    assert sparse_loss[4] == np.inf and np.isfinite(sparse_loss[[0, 5]]).all()
    for kernel, reference, lab in [(dense_loss_backprop, dense_loss_backprop_reference, labels),
                                   (sparse_loss_backprop, sparse_loss_backprop_reference,
                                    np.array([2, 1, 1, 0, 0, 2]))]:
        for got, want in zip(kernel(logits, lab), reference(logits, lab)):
            assert_matches(got, want, scale=1e4)


def test_equal_logits_and_large_offsets():
    for offset in [0.0, 1e4, -1e4]:
        logits = np.full((3, 4), offset)
        loss, backprop, stats = sparse_loss_backprop(logits, np.array([0, 1, 3]))
        np.testing.assert_allclose(loss, np.log(4), rtol=1e-14)
        assert (stats[:, 0] == offset).all()
        np.testing.assert_allclose(stats[:, 1], np.log(4), rtol=1e-15)
        np.testing.assert_allclose(backprop.sum(axis=1), 0, atol=1e-15)


def test_sparse_equals_dense_one_hot():
    rng = np.random.default_rng(1)
    for dtype in FLOATS:
        logits = rng.standard_normal((50, 13)).astype(dtype)
        labels = rng.integers(0, 13, 50)
        sparse = sparse_loss_backprop(logits, labels)
        dense = dense_loss_backprop(logits, np.eye(13, dtype=dtype)[labels])
        for s, d in zip(sparse, dense):
            assert_matches(s, d)


def test_finite_differences_equal_backprop():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 6)) * 3
    labels = random_probabilities(rng, (4, 6), np.float64)
    _, backprop, _ = dense_loss_backprop(logits, labels)
    h = 1e-6
    numeric = np.empty_like(logits)
    for i, j in np.ndindex(*logits.shape):
        plus, minus = logits.copy(), logits.copy()
        plus[i, j] += h
        minus[i, j] -= h
        numeric[i, j] = (dense_loss_backprop(plus, labels)[0][i] - dense_loss_backprop(minus, labels)[0][i]) / (2 * h)
    np.testing.assert_allclose(backprop, numeric, rtol=1e-7, atol=1e-8)


# ---- sparse label errors --------------------------------------------------------

@pytest.mark.parametrize("label_dtype", INTS)
@pytest.mark.parametrize("bad", [5, 7, -1])
def test_label_out_of_range(label_dtype, bad):
    logits = np.zeros((12, 5), np.float32)
    labels = np.zeros(12, label_dtype)
    labels[[7, 9]] = bad
    logits_before, labels_before = logits.copy(), labels.copy()
    message = rf"labels\[1, 3\] = {bad} is out of range: expected a class index in \[0, 5\)"
    with pytest.raises(ValueError, match=message):
        sparse_loss_backprop(logits, labels, labels_shape=(3, 4))
    with pytest.raises(ValueError, match=rf"labels\[7\] = {bad} is out of range"):
        sparse_loss_backprop(logits, labels)
    with pytest.raises(ValueError, match=message):
        sparse_loss_backprop_reference(logits, labels, labels_shape=(3, 4))
    np.testing.assert_array_equal(logits, logits_before)
    np.testing.assert_array_equal(labels, labels_before)


def test_label_out_of_range_float16_and_threads():
    logits = np.zeros((8192, 200), np.float16)          # above the parallel threshold
    labels = np.zeros(8192, np.int64)
    labels[1500] = 2**40
    with pytest.raises(ValueError, match=r"labels\[1500\] = 1099511627776 is out of range"):
        sparse_loss_backprop(logits, labels)


@pytest.mark.parametrize("call, message", [
    (lambda: dense_loss_backprop(np.zeros(3), np.zeros(3)), r"2-D.*\(3,\)"),
    (lambda: dense_loss_backprop(np.zeros((2, 0)), np.zeros((2, 0))), r"at least one class.*\(2, 0\)"),
    (lambda: dense_loss_backprop(np.zeros((2, 3)), np.zeros((2, 4))), r"\(2, 4\).*\(2, 3\)"),
    (lambda: dense_loss_backprop(np.zeros((2, 3)), np.zeros((2, 3), np.float32)), "float32"),
    (lambda: dense_loss_backprop(np.zeros((2, 3), int), np.zeros((2, 3), int)), "int64"),
    (lambda: sparse_loss_backprop(np.zeros((2, 3)), np.zeros(2)), "float64"),
    (lambda: sparse_loss_backprop(np.zeros((2, 3)), np.zeros(3, int)), r"\(3,\).*\(2, 3\)"),
])
def test_wrapper_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ---- threads -------------------------------------------------------------------

def test_releases_the_gil():
    logits = np.random.default_rng(3).standard_normal((20000, 2000)).astype(np.float32)
    labels = np.zeros(20000, np.int64)
    loss, backprop, stats = np.empty(20000, np.float32), np.empty_like(logits), np.empty((20000, 2))
    count, running, stop = [0], threading.Event(), threading.Event()

    def counter():
        running.set()
        while not stop.is_set():
            count[0] += 1

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    thread = threading.Thread(target=counter)
    try:
        thread.start()
        running.wait()
        time.sleep(0.01)
        before = count[0]
        start = time.perf_counter()
        _xent.sparse_f32_i64(logits, labels, loss, backprop, stats, 1)   # one thread: leave a core free
        elapsed = time.perf_counter() - start
        during = count[0] - before
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old_interval)
    assert elapsed > 0.005
    assert during > 1000, f"the counter advanced only {during} times in {elapsed * 1e3:.1f} ms"


@pytest.mark.parametrize("classes", [300, 10])   # 10: the short-row path
@pytest.mark.parametrize("dtype", FLOATS)
def test_one_and_two_threads_agree_bitwise(dtype, classes):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((1001, classes)).astype(dtype)
    logits[17] = np.nan
    labels = rng.integers(0, classes, 1001)
    probabilities = random_probabilities(rng, logits.shape, dtype)
    bits = np.uint16 if dtype.itemsize == 2 else dtype
    for kernel, lab in [(getattr(_xent, "dense_" + SUFFIX[dtype]), probabilities.view(bits)),
                        (getattr(_xent, "sparse_" + SUFFIX[dtype] + "_i64"), labels)]:
        results = []
        for threads in (1, 2):
            out = np.empty(1001, bits), np.empty((1001, classes), bits), np.empty((1001, 2))
            kernel(logits.view(bits), lab, *out, threads)
            results.append(out)
        for one, two in zip(*results):
            np.testing.assert_array_equal(one, two)


def test_set_get_num_threads():
    old = _config.get_num_threads()
    try:
        _config.set_num_threads(1)
        assert _config.get_num_threads() == 1 and _config.threads_for(10**9) == 1
        _config.set_num_threads(np.int64(3))
        assert _config.get_num_threads() == 3
        assert _config.threads_for(_config.PARALLEL_MIN_SIZE) == 3
        assert _config.threads_for(_config.PARALLEL_MIN_SIZE - 1) == 1
        for bad, error in [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError),
                           (True, TypeError), (None, TypeError)]:
            with pytest.raises(error, match="set_num_threads"):
                _config.set_num_threads(bad)
        assert _config.get_num_threads() == 3
    finally:
        _config.set_num_threads(old)


@pytest.mark.parametrize("env, expected", [("3", 3), ("2,1", 2), ("", 1), ("junk", 1), ("0", 1)])
def test_default_threads_honour_omp_num_threads(env, expected, tmp_path):
    out = subprocess.run([sys.executable, "-c", "from minigrad._config import get_num_threads as g; print(g())"],
                         env={**os.environ, "OMP_NUM_THREADS": env}, capture_output=True, text=True, check=True,
                         cwd=tmp_path)  # not the repo root, whose uncompiled source would shadow the install
    assert int(out.stdout) == expected


def test_show_config(capsys):
    info = _config.show_config()
    printed = capsys.readouterr().out
    assert info["openmp"] == bool(_xent.OPENMP_VERSION)
    assert info["num_threads"] == (_config.get_num_threads() if info["openmp"] else 1)
    assert info["numpy"] == np.__version__
    assert "-O3" in info["compile_args"] and "fast-math" not in info["compile_args"]
    for key in ("openmp", "compile_args", "num_threads", "numpy"):
        assert key in printed


# ---- the C helpers through their test shims -----------------------------------

def test_half_to_float_exhaustive():
    bits = np.arange(2**16, dtype=np.uint16)
    out = np.empty(2**16, np.float32)
    _xent.half_to_float(bits, out)
    expected = bits.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(out.view(np.uint32)[~np.isnan(expected)],
                                  expected.view(np.uint32)[~np.isnan(expected)])
    assert np.isnan(out[np.isnan(expected)]).all()


def test_float_to_half_matches_numpy():
    rng = np.random.default_rng(5)
    halves = np.arange(2**16, dtype=np.uint16).view(np.float16)
    halves = halves[np.isfinite(halves)].astype(np.float32)
    # every half, the midpoints between neighbours (ties to even) and one float either side
    ordered = np.sort(np.unique(halves))
    mids = ((ordered[1:].astype(np.float64) + ordered[:-1]) / 2).astype(np.float32)
    values = np.concatenate([
        halves, mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)),
        rng.standard_normal(100000).astype(np.float32) * np.float32(10.0) ** rng.integers(-9, 6, 100000),
        np.array([65504, 65519.99, 65520, 1e9, np.inf, -np.inf, 2.0**-25, 2.0**-24 * 1.5, 1e-30, -0.0],
                 np.float32),
    ])
    values = np.concatenate([values, -values]).astype(np.float32)
    out = np.empty(values.size, np.uint16)
    _xent.float_to_half(values, out)
    with np.errstate(over="ignore"):      # numpy warns where values round to inf
        expected = values.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(out, expected)
    nans = np.array([np.nan, -np.nan], np.float32)
    _xent.float_to_half(nans, out[:2])
    assert np.isnan(out[:2].view(np.float16)).all()


@pytest.mark.parametrize("dtype, low, ulps", [(np.float32, -110.0, 1), (np.float64, -760.0, 1)])
def test_exp_accuracy(dtype, low, ulps):
    x = np.concatenate([np.linspace(low, 0, 200001), [-np.inf, -0.0]]).astype(dtype)
    out = np.empty_like(x)
    (_xent.exp_f32 if dtype == np.float32 else _xent.exp_f64)(x, out)
    expected = np.exp(x.astype(np.longdouble))
    error = np.abs(out - expected) / np.spacing(expected.astype(dtype))  # in ulps, subnormals included
    assert error.max() <= ulps
    nan_out = np.empty(1, dtype)
    (_xent.exp_f32 if dtype == np.float32 else _xent.exp_f64)(np.array([np.nan], dtype), nan_out)
    assert np.isnan(nan_out[0])


@pytest.mark.parametrize("dtype, ulps", [(np.float64, 1)])
def test_log_accuracy(dtype, ulps):
    rng = np.random.default_rng(6)
    x = np.concatenate([np.linspace(1, 16, 200001), 1 + rng.random(10000) * 1e-6,
                        np.nextafter(1.0, 2.0) + np.arange(1000) * 2.2e-16,
                        np.sqrt(2) * (1 + np.arange(-500, 500) * 1e-16), 2.0 ** np.arange(-1022, 1024.0)])
    out = np.empty_like(x)
    _xent.log_f64(x, out)
    expected = np.log(x.astype(np.longdouble))
    error = np.abs(out - expected) / np.spacing(np.maximum(np.abs(expected.astype(dtype)), 1e-300))
    assert error.max() <= ulps and out[0] == 0.0                 # log(1) is exactly 0
    _xent.log_f64(np.array([np.nan]), out[:1])
    assert np.isnan(out[0])


# ---- the short-row path (classes <= 16): whole-block loads and stores ------------

SHORT = {np.float32: "f32", np.float64: "f64"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [1, 2, 3, 10, 15, 16])
@pytest.mark.parametrize("threads", [1, 2])
def test_short_rows_stay_inside_their_rows(dtype, classes, threads):
    rng = np.random.default_rng(classes)
    batch = 77
    logits = rng.standard_normal((batch, classes)).astype(dtype)
    labels = rng.integers(0, classes, batch)
    probabilities = random_probabilities(rng, logits.shape, dtype)
    # outputs inside larger buffers: the guard elements after them must survive
    loss_buffer, backprop_buffer = np.full(batch + 32, 7.0, dtype), np.full(batch * classes + 32, 7.0, dtype)
    stats_buffer = np.full(2 * batch + 32, 7.0)
    loss, backprop = loss_buffer[:batch], backprop_buffer[:batch * classes].reshape(batch, classes)
    stats = stats_buffer[:2 * batch].reshape(batch, 2)

    def guards_intact():
        return ((loss_buffer[batch:] == 7).all() and (backprop_buffer[batch * classes:] == 7).all()
                and (stats_buffer[2 * batch:] == 7).all())

    dense = getattr(_xent, "dense_" + SHORT[dtype])
    assert dense(logits, probabilities, loss, backprop, stats, threads) is None
    assert guards_intact()
    ref_loss, ref_backprop = dense_loss_backprop_reference(logits, probabilities)
    assert_matches(loss, ref_loss)
    assert_matches(backprop, ref_backprop)
    sparse = getattr(_xent, f"sparse_{SHORT[dtype]}_i64")
    assert sparse(logits, labels, loss, backprop, stats, threads) == -1
    assert guards_intact()
    ref_loss, ref_backprop = sparse_loss_backprop_reference(logits, labels)
    assert_matches(loss, ref_loss)
    assert_matches(backprop, ref_backprop)
    labels[[5, batch - 1]] = [classes, -1]
    assert sparse(logits, labels, loss, backprop, stats, threads) == 5
    assert guards_intact()
    assert np.isnan(loss[[5, batch - 1]]).all() and np.isnan(stats[[5, batch - 1]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classes", [2, 10, 16])
@pytest.mark.parametrize("threads", [1, 2])
def test_short_rows_special_rows(dtype, classes, threads):
    """The non-finite rows of test_nonfinite_rows, at the first rows, mid-array and in the
    last rows (copied element by element), dense and sparse."""
    inf, nan = np.inf, np.nan
    rng = np.random.default_rng(classes + 100)
    batch = 70
    logits = rng.standard_normal((batch, classes)).astype(dtype)
    probabilities = random_probabilities(rng, logits.shape, dtype)
    labels = rng.integers(1, classes, batch)
    nan_rows, neg_rows, pos_rows, zero_label_rows = [0, 33, batch - 4], [1, 34, batch - 3], [2, 35, batch - 2], \
        [3, 36, batch - 1]
    logits[nan_rows, -1] = nan
    logits[neg_rows] = -inf
    logits[pos_rows, -1] = inf
    logits[zero_label_rows, 0] = -inf          # a -inf logit whose label is exactly 0
    probabilities[zero_label_rows, 0] = 0
    probabilities[zero_label_rows, 1:] = (1 / (classes - 1))
    loss, backprop, stats = np.empty(batch, dtype), np.empty((batch, classes), dtype), np.empty((batch, 2))
    getattr(_xent, "dense_" + SHORT[dtype])(logits, probabilities, loss, backprop, stats, threads)
    bad = nan_rows + neg_rows + pos_rows
    good = np.setdiff1d(np.arange(batch), bad)
    assert np.isnan(loss[bad]).all() and np.isnan(backprop[bad]).all() and np.isnan(stats[bad]).all()
    assert np.isfinite(loss[good]).all() and np.isfinite(backprop[good]).all() and np.isfinite(stats[good]).all()
    assert (backprop[zero_label_rows, 0] == 0).all()
    ref_loss, ref_backprop = dense_loss_backprop_reference(logits, probabilities)
    assert_matches(loss, ref_loss)
    assert_matches(backprop, ref_backprop)
    # a non-zero label on the -inf logit costs infinitely much
    probabilities[zero_label_rows, 0] = 0.5
    getattr(_xent, "dense_" + SHORT[dtype])(logits, probabilities, loss, backprop, stats, threads)
    assert (loss[zero_label_rows] == inf).all()
    assert getattr(_xent, f"sparse_{SHORT[dtype]}_i64")(logits, labels, loss, backprop, stats, threads) == -1
    assert np.isnan(loss[bad]).all() and np.isnan(backprop[bad]).all()
    for got, want in zip((loss, backprop), sparse_loss_backprop_reference(logits, labels)):
        assert_matches(got, want)


def test_kernel_argument_checks():
    logits, labels = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    loss, backprop, stats = np.empty(4, np.float32), np.empty((4, 3), np.float32), np.empty((4, 2))
    readonly = np.empty((4, 3), np.float32)
    readonly.flags.writeable = False
    for args, message in [
        ((logits.astype(np.float64), labels, loss, backprop, stats), "logits must be a C-contiguous f4 array"),
        ((np.zeros((4, 6), np.float32)[:, ::2], labels, loss, backprop, stats), "logits must be a C-contiguous"),
        ((logits, labels.astype(np.int32), loss, backprop, stats), r"labels must be .* i8 array of shape \[4\]"),
        ((logits, labels[:3], loss, backprop, stats), "labels"),
        ((logits, labels, loss, readonly, stats), "backprop must be a C-contiguous writeable"),
        ((logits, labels, loss, np.empty((4, 4), np.float32), stats), r"shape \[4, 3\]"),
        ((logits, labels, loss, backprop, np.empty((4, 2), np.float32)), r"stats must be .* f8 array of shape \[4, 2\]"),
        ((logits, labels, loss, backprop, np.empty((4, 3))), r"stats .* shape \[4, 2\], got float64 \(4, 3\)"),
        ((logits, labels, loss, backprop, np.empty((2, 4))[:, ::2]), "stats must be a C-contiguous"),
        ((logits[0], labels, loss, backprop, stats), "2-D"),
    ]:
        with pytest.raises(ValueError, match=message):
            _xent.sparse_f32_i64(*args, 1)
    readonly_stats = np.empty((4, 2))
    readonly_stats.flags.writeable = False
    with pytest.raises(ValueError, match=r"stats must be a C-contiguous writeable"):
        _xent.dense_f32(logits, logits, loss, backprop, readonly_stats, 1)
    with pytest.raises(TypeError):
        _xent.sparse_f32_i64(logits.tolist(), labels, loss, backprop, stats, 1)
    with pytest.raises(TypeError):   # the stats argument is not optional
        _xent.sparse_f32_i64(logits, labels, loss, backprop, 1)
    # inputs may be read-only
    readonly_logits = logits.copy()
    readonly_logits.flags.writeable = False
    assert _xent.sparse_f32_i64(readonly_logits, labels, loss, backprop, stats, 1) == -1


def test_all_minus_inf_rows_are_nan_on_every_path():
    # short (<= 16 classes) and long rows, dense and sparse: a row of only -inf is NaN
    for classes in (1, 5, 16, 17, 40):
        x = np.full((3, classes), -np.inf, np.float32)
        x[1] = 0.0
        loss, backprop, stats = sparse_loss_backprop(x, np.zeros(3, np.int64))
        assert np.isnan(loss[[0, 2]]).all() and np.isfinite(loss[1])
        assert np.isnan(backprop[[0, 2]]).all() and np.isnan(stats[[0, 2]]).all()
        y = np.full((3, classes), 1.0 / classes, np.float32)
        loss, backprop, stats = dense_loss_backprop(x, y)
        assert np.isnan(loss[[0, 2]]).all() and np.isfinite(loss[1])
        assert np.isnan(stats[[0, 2]]).all()
        np.testing.assert_allclose(stats[1], [0, np.log(classes)], rtol=2.3e-16, atol=0)  # exps all 1


def test_misaligned_inputs_are_accepted():
    raw = np.zeros(4 * 10 * 3 + 1, np.uint8)
    x = raw[1:].view(np.float32).reshape(3, 10)  # offset by one byte
    assert not x.flags.aligned
    x[...] = np.arange(30, dtype=np.float32).reshape(3, 10) / 7
    loss, _, _ = sparse_loss_backprop(x, np.array([0, 3, 9]))
    ref, _ = sparse_loss_backprop_reference(np.array(x), np.array([0, 3, 9]))
    np.testing.assert_allclose(loss, ref, rtol=1e-6)


def test_thread_count_is_bounded_and_a_forked_child_runs_one_thread():
    with pytest.raises(ValueError, match="set_num_threads"):
        _config.set_num_threads(_config.MAX_THREADS + 1)
    x = np.zeros((4, 5), np.float32)
    loss, bp, stats = np.empty(4, np.float32), np.empty_like(x), np.empty((4, 2))
    _xent.dense_f32(x, np.full_like(x, 0.2), loss, bp, stats, 100000)  # capped to the rows
    np.testing.assert_allclose(loss, np.log(5.0), rtol=1e-6)
    if hasattr(os, "fork"):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            os.write(w, str(_config.threads_for(10**9)).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(r, 16) == b"1"
