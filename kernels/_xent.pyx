# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Fused softmax cross-entropy kernels: loss and backprop in one pass per row.

Design
------
* These functions know nothing of Tensors. Inputs are C-contiguous
  ``[batch, classes]`` arrays (``classes >= 1``), outputs are allocated by the
  caller (``minigrad._kernels``), which also validates shapes and dtypes; the
  entry points re-check those guarantees with a few C macros (cheap) and raise
  ValueError, so a wrong call cannot reach the unchecked row code.
* Arguments are marked IN and OUT. IN arrays are ``const`` views, so read-only
  arrays are accepted and never written.
* Rows are spread over OpenMP threads with ``prange(schedule='static')`` with
  the GIL released; the caller passes the thread count (its size policy lives
  in ``minigrad._config``). Without OpenMP the same code runs serially.
* The arithmetic of one row lives in ``_xent_row.h`` (C, for the
  ``omp simd`` reductions that gcc needs to vectorize; see that file for the
  formulas and the IEEE cases). float32 and float64 run natively; float16 and
  bfloat16 are passed as ``uint16`` bits, widened to float32 by blocks of rows
  in per-thread scratch, computed by the float32 code, and narrowed back with
  round-to-nearest-even: the float32 results on the widened logits, rounded once.
* The backprop comes out multiplied by ``scale`` (a reduction folded in by the
  caller, 1/N for a mean), in the same pass; ``scale=1`` gives the unscaled bits
  (``_xent_row.h`` says how it is rounded). The loss and stats are unscaled.
* Besides loss and backprop, every row gives its max and log-sum (OUT ``stats``,
  float64 [rows, 2]), from which the caller forms logsumexp and log-softmax in
  double and rounds once.
* A sparse label outside ``[0, classes)`` is detected inside the parallel loop:
  the row is skipped (never indexed) and counted; the kernel then returns the
  first bad row so that the wrapper can raise with the GIL held.
"""
import os

cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport NAN
from libc.stdint cimport int32_t, int64_t, uint16_t
from libc.stdlib cimport free, malloc

cdef extern from "_xent_row.h" nogil:
    # bfloat16 bits, as a type of their own so that the fused type below tells them from
    # float16 bits; arrays of it are arrays of uint16.
    ctypedef struct xent_bf16:
        uint16_t bits
    double xent_dense_row_f32(const float *x, const float *y, float *bp, Py_ssize_t n,
                              double scale, double *stats)
    double xent_dense_row_f64(const double *x, const double *y, double *bp, Py_ssize_t n,
                              double scale, double *stats)
    double xent_sparse_row_f32(const float *x, Py_ssize_t label, float *bp, Py_ssize_t n,
                               double scale, double *stats)
    double xent_sparse_row_f64(const double *x, Py_ssize_t label, double *bp, Py_ssize_t n,
                               double scale, double *stats)
    Py_ssize_t xent_dense_short_rows_f32(const float *x, const float *y, float *loss, float *bp,
                                         double scale, double *stats, Py_ssize_t rows,
                                         Py_ssize_t n)
    Py_ssize_t xent_dense_short_rows_f64(const double *x, const double *y, double *loss,
                                         double *bp, double scale, double *stats,
                                         Py_ssize_t rows, Py_ssize_t n)
    Py_ssize_t xent_sparse_short_rows_f32_i32(const float *x, const int32_t *labels, float *loss,
                                              float *bp, double scale, double *stats,
                                              Py_ssize_t rows, Py_ssize_t n)
    Py_ssize_t xent_sparse_short_rows_f32_i64(const float *x, const int64_t *labels, float *loss,
                                              float *bp, double scale, double *stats,
                                              Py_ssize_t rows, Py_ssize_t n)
    Py_ssize_t xent_sparse_short_rows_f64_i32(const double *x, const int32_t *labels,
                                              double *loss, double *bp, double scale,
                                              double *stats, Py_ssize_t rows, Py_ssize_t n)
    Py_ssize_t xent_sparse_short_rows_f64_i64(const double *x, const int64_t *labels,
                                              double *loss, double *bp, double scale,
                                              double *stats, Py_ssize_t rows, Py_ssize_t n)
    void xent_widen_f16(const uint16_t *src, float *dst, Py_ssize_t n)
    void xent_narrow_f16(const float *src, uint16_t *dst, Py_ssize_t n)
    void xent_widen_bf16(const uint16_t *src, float *dst, Py_ssize_t n)
    void xent_narrow_bf16(const float *src, uint16_t *dst, Py_ssize_t n)
    void xent_exp_block_f32(const float *x, float *out, Py_ssize_t n)
    void xent_exp_block_f64(const double *x, double *out, Py_ssize_t n)
    void xent_log_block(const double *x, double *out, Py_ssize_t n)
    int XENT_HAVE_CLONES
    int XENT_SHORT_ROW
    int xent_simd_init(int most)
    int xent_simd_level

# What the build used; setup.py passes these as macros.
cdef extern from *:
    """
    #ifdef _OPENMP
    #define XENT_OPENMP_VERSION _OPENMP
    #else
    #define XENT_OPENMP_VERSION 0
    #endif
    #ifndef MINIGRAD_COMPILE_ARGS
    #define MINIGRAD_COMPILE_ARGS "unknown"
    #endif
    """
    int XENT_OPENMP_VERSION
    const char *MINIGRAD_COMPILE_ARGS

cnp.import_array()

OPENMP_VERSION = XENT_OPENMP_VERSION   # e.g. 201511; 0 for a serial build
COMPILE_ARGS = MINIGRAD_COMPILE_ARGS.decode()
TARGET_CLONES = bool(XENT_HAVE_CLONES)  # x86-64-v4/v3/baseline clones, one chosen at load time


SIMD_LEVELS = ("generic", "avx2", "avx512")


def use_simd(level):
    """Let the long rows' max and double sum use SIMD reductions up to ``level``:
    ``"avx512"``, ``"avx2"`` or ``"generic"`` (the compiler's loops). The best level the CPU
    has, at most that one, is used and returned. For tests and benchmarks comparing the
    paths; not while a kernel runs in another thread."""
    if level not in SIMD_LEVELS:
        raise ValueError(f"level must be one of {SIMD_LEVELS}, got {level!r}")
    return SIMD_LEVELS[xent_simd_init(SIMD_LEVELS.index(level))]


def simd_level():
    """The level the long rows' reductions use now (see ``use_simd``)."""
    return SIMD_LEVELS[xent_simd_level]


# the level chosen at load time: the best the CPU has, at most MINIGRAD_SIMD
SIMD = use_simd(os.environ.get("MINIGRAD_SIMD") or "avx512")

ctypedef fused logit_t:
    float
    double
    uint16_t        # float16 bits: computed in float32 scratch
    xent_bf16       # bfloat16 bits: likewise

ctypedef fused real_t:   # computed natively
    float
    double

ctypedef fused low_t:    # computed in float32 scratch
    uint16_t
    xent_bf16

ctypedef fused index_t:
    int32_t
    int64_t

# float16/bfloat16 rows are widened to float32 by blocks of about this many logits (whole
# rows, at least one): a few short rows per block would waste the short-row loop.
cdef enum:
    LOW_BLOCK = 4096


# ---- one thread's share of the rows: [0, rows) from the given pointers -------

cdef Py_ssize_t _dense_rows(const logit_t *x,    # IN  [rows, classes]
                            const logit_t *y,    # IN  [rows, classes], probability rows
                            logit_t *loss,       # OUT [rows]
                            logit_t *bp,         # OUT [rows, classes], scale * (softmax - y)
                            double *stats,       # OUT [rows, 2]: max, log-sum (_xent_row.h)
                            double scale, Py_ssize_t rows, Py_ssize_t classes) noexcept nogil:
    """Return 0, or -1 if the float16/bfloat16 scratch could not be allocated (nothing done)."""
    cdef Py_ssize_t i, k
    if logit_t is uint16_t or logit_t is xent_bf16:
        return _dense_low_rows(x, y, loss, bp, stats, scale, rows, classes)
    else:
        # short rows: the many-rows C loop (see _xent_row.h); it refuses no dense row
        if classes <= XENT_SHORT_ROW:
            if logit_t is float:
                return xent_dense_short_rows_f32(x, y, loss, bp, scale, stats, rows, classes)
            else:
                return xent_dense_short_rows_f64(x, y, loss, bp, scale, stats, rows, classes)
        for i in range(rows):
            k = i * classes
            if logit_t is float:
                loss[i] = <float>xent_dense_row_f32(x + k, y + k, bp + k, classes, scale,
                                                    stats + 2 * i)
            else:
                loss[i] = xent_dense_row_f64(x + k, y + k, bp + k, classes, scale, stats + 2 * i)
        return 0


cdef Py_ssize_t _sparse_rows(const logit_t *x,        # IN  [rows, classes]
                             const index_t *labels,   # IN  [rows], class indices
                             logit_t *loss,           # OUT [rows]
                             logit_t *bp,             # OUT [rows, classes]
                             double *stats,           # OUT [rows, 2]
                             double scale, Py_ssize_t rows, Py_ssize_t classes) noexcept nogil:
    """Return how many labels are outside [0, classes) (their rows are skipped, never
    indexed: loss and stats NaN, backprop not written), or -1 if the float16/bfloat16
    scratch could not be allocated."""
    cdef Py_ssize_t i, k, label, bad = 0
    if logit_t is float or logit_t is double:
        # short rows: the many-rows C loop (see _xent_row.h)
        if classes <= XENT_SHORT_ROW:
            return _sparse_short_rows(x, labels, loss, bp, stats, scale, rows, classes)
        for i in range(rows):
            k = i * classes
            label = labels[i]
            if label < 0 or label >= classes:
                bad += 1
                loss[i] = NAN
                stats[2 * i] = NAN
                stats[2 * i + 1] = NAN
            elif logit_t is float:
                loss[i] = <float>xent_sparse_row_f32(x + k, label, bp + k, classes, scale,
                                                     stats + 2 * i)
            else:
                loss[i] = xent_sparse_row_f64(x + k, label, bp + k, classes, scale, stats + 2 * i)
        return bad
    else:
        return _sparse_low_rows(x, labels, loss, bp, stats, scale, rows, classes)


cdef inline Py_ssize_t _sparse_short_rows(const real_t *x, const index_t *labels, real_t *loss,
                                          real_t *bp, double *stats, double scale,
                                          Py_ssize_t rows, Py_ssize_t classes) noexcept nogil:
    if real_t is float:
        if index_t is int32_t:
            return xent_sparse_short_rows_f32_i32(x, labels, loss, bp, scale, stats, rows, classes)
        else:
            return xent_sparse_short_rows_f32_i64(x, labels, loss, bp, scale, stats, rows, classes)
    else:
        if index_t is int32_t:
            return xent_sparse_short_rows_f64_i32(x, labels, loss, bp, scale, stats, rows, classes)
        else:
            return xent_sparse_short_rows_f64_i64(x, labels, loss, bp, scale, stats, rows, classes)


# ---- float16 and bfloat16: a block of rows widened to float32 scratch, computed by the
# float32 code above (short or long rows alike), loss and backprop narrowed back with
# round-to-nearest-even. The results are the float32 kernel's on the widened values,
# rounded once; the stats are the float32 kernel's as they are. ----------------------

cdef inline void _widen(const low_t *src, float *dst, Py_ssize_t n) noexcept nogil:
    if low_t is uint16_t:
        xent_widen_f16(src, dst, n)
    else:
        xent_widen_bf16(<const uint16_t *>src, dst, n)


cdef inline void _narrow(const float *src, low_t *dst, Py_ssize_t n) noexcept nogil:
    if low_t is uint16_t:
        xent_narrow_f16(src, dst, n)
    else:
        xent_narrow_bf16(src, <uint16_t *>dst, n)


cdef inline Py_ssize_t _low_block(Py_ssize_t rows, Py_ssize_t classes) noexcept nogil:
    """Rows per widened block: whole rows, about LOW_BLOCK logits, at least 1, at most rows."""
    cdef Py_ssize_t block = LOW_BLOCK // classes
    if block < 1:
        block = 1
    return block if block < rows else rows


cdef Py_ssize_t _dense_low_rows(const low_t *x, const low_t *y, low_t *loss, low_t *bp,
                                double *stats, double scale, Py_ssize_t rows,
                                Py_ssize_t classes) noexcept nogil:
    """_dense_rows for float16/bfloat16 bits. Return 0, or -1 without scratch memory."""
    cdef Py_ssize_t block = _low_block(rows, classes), r = 0, n, size = block * classes
    cdef float *xs
    if rows == 0:
        return 0
    xs = <float *>malloc((3 * size + block) * sizeof(float))   # logits, labels, backprop, loss
    if xs == NULL:
        return -1
    while r < rows:
        n = block if block < rows - r else rows - r
        _widen(x + r * classes, xs, n * classes)
        _widen(y + r * classes, xs + size, n * classes)
        _dense_rows(<const float *>xs, <const float *>(xs + size), xs + 3 * size, xs + 2 * size,
                    stats + 2 * r, scale, n, classes)
        _narrow(<const float *>(xs + 3 * size), loss + r, n)
        _narrow(<const float *>(xs + 2 * size), bp + r * classes, n * classes)
        r += n
    free(xs)
    return 0


cdef Py_ssize_t _sparse_low_rows(const low_t *x, const index_t *labels, low_t *loss, low_t *bp,
                                 double *stats, double scale, Py_ssize_t rows,
                                 Py_ssize_t classes) noexcept nogil:
    """_sparse_rows for float16/bfloat16 bits: the count of bad labels, or -1 without scratch."""
    cdef Py_ssize_t block = _low_block(rows, classes), r = 0, n, bad = 0, size = block * classes
    cdef float *xs
    if rows == 0:
        return 0
    xs = <float *>malloc((2 * size + block) * sizeof(float))   # logits, backprop, loss
    if xs == NULL:
        return -1
    while r < rows:
        n = block if block < rows - r else rows - r
        _widen(x + r * classes, xs, n * classes)
        bad += _sparse_rows(<const float *>xs, labels + r, xs + 2 * size, xs + size,
                            stats + 2 * r, scale, n, classes)
        _narrow(<const float *>(xs + 2 * size), loss + r, n)
        _narrow(<const float *>(xs + size), bp + r * classes, n * classes)
        r += n
    free(xs)
    return bad


# ---- all rows: one thread inline, else one contiguous share per thread ------
# With one thread there is no parallel region at all: entering and leaving one
# costs about a microsecond per call even for a team of one.

cdef int _dense(const logit_t *x, const logit_t *y, logit_t *loss, logit_t *bp, double *stats,
                double scale, Py_ssize_t rows, Py_ssize_t classes, int num_threads) noexcept nogil:
    """Return the number of thread shares left undone for lack of memory (normally 0)."""
    cdef Py_ssize_t t, start, stop, k
    cdef int failed = 0
    if num_threads > rows:  # no idle threads (and no team of absurd size)
        num_threads = <int>rows
    if num_threads <= 1:
        return -_dense_rows(x, y, loss, bp, stats, scale, rows, classes)
    for t in prange(num_threads, schedule='static', num_threads=num_threads):
        start = rows * t // num_threads
        stop = rows * (t + 1) // num_threads
        k = start * classes
        if _dense_rows(x + k, y + k, loss + start, bp + k, stats + 2 * start, scale,
                       stop - start, classes) < 0:
            failed += 1
    return failed


cdef Py_ssize_t _sparse(const logit_t *x, const index_t *labels, logit_t *loss, logit_t *bp,
                        double *stats, double scale, Py_ssize_t rows, Py_ssize_t classes,
                        int num_threads) noexcept nogil:
    """Return the first row whose label is out of range, -1 if none, -2 if out of memory."""
    cdef Py_ssize_t t, start, stop, k, r, bad = 0, failed = 0
    if num_threads > rows:  # no idle threads (and no team of absurd size)
        num_threads = <int>rows
    if num_threads <= 1:
        r = _sparse_rows(x, labels, loss, bp, stats, scale, rows, classes)
        if r < 0:
            failed = 1
        else:
            bad = r
    else:
        for t in prange(num_threads, schedule='static', num_threads=num_threads):
            start = rows * t // num_threads
            stop = rows * (t + 1) // num_threads
            k = start * classes
            r = _sparse_rows(x + k, labels + start, loss + start, bp + k, stats + 2 * start,
                             scale, stop - start, classes)
            if r < 0:
                failed += 1
            else:
                bad += r          # reductions: no shared write races
    if bad:
        return _first_bad(labels, rows, classes)
    return -2 if failed else -1


cdef Py_ssize_t _first_bad(const index_t *labels, Py_ssize_t rows, Py_ssize_t classes) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(rows):
        if labels[i] < 0 or labels[i] >= classes:
            return i
    return -1


# ---- Python entry points: one per dtype, so the wrapper picks by dict lookup
# instead of paying for fused-signature dispatch on every call. They take
# ndarrays and re-check the wrapper's guarantees with a few C macros: typed
# memoryviews did the same checks but cost ~0.1 us per array (measured), half
# a microsecond per call, as much as 30 short rows. ---------------------------

cdef int _check(cnp.ndarray a, str name, char kind, int itemsize, cnp.npy_intp rows,
                cnp.npy_intp cols, bint out) except -1:
    """a is a C-contiguous, native-order array of the kind, [rows] if cols < 0 else
    [rows, cols] (and writeable if out); raises ValueError naming the argument otherwise."""
    cdef int ndim = 1 if cols < 0 else 2
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
    if (a.descr.kind != kind or cnp.PyArray_ITEMSIZE(a) != itemsize
            or not cnp.PyArray_ISNOTSWAPPED(a) or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or cnp.PyArray_NDIM(a) != ndim or dims[0] != rows
            or (ndim == 2 and dims[1] != cols) or (out and not cnp.PyArray_ISWRITEABLE(a))):
        shape = f"[{rows}, {cols}]" if ndim == 2 else f"[{rows}]"
        raise ValueError(f"{name} must be a C-contiguous{' writeable' if out else ''} "
                         f"{chr(kind)}{itemsize} array of shape {shape}, got {(<object>a).dtype} {(<object>a).shape}")
    return 0


cdef int _check_args(cnp.ndarray logits, cnp.ndarray labels, cnp.ndarray loss, cnp.ndarray backprop,
                     cnp.ndarray stats, char kind, int itemsize, int label_size) except -1:
    """The arguments of a kernel: labels like the logits (dense, label_size 0), or
    [rows] integers of label_size bytes (sparse)."""
    cdef cnp.npy_intp rows, classes
    if cnp.PyArray_NDIM(logits) != 2:
        raise ValueError(f"logits must be 2-D, got shape {(<object>logits).shape}")
    rows, classes = cnp.PyArray_DIMS(logits)[0], cnp.PyArray_DIMS(logits)[1]
    _check(logits, "logits", kind, itemsize, rows, classes, False)
    if label_size:
        _check(labels, "labels", b'i', label_size, rows, -1, False)
    else:
        _check(labels, "labels", kind, itemsize, rows, classes, False)
    _check(loss, "loss", kind, itemsize, rows, -1, True)
    _check(backprop, "backprop", kind, itemsize, rows, classes, True)
    _check(stats, "stats", b'f', 8, rows, 2, True)
    return 0


cdef object _run_dense(const logit_t *x, const logit_t *y, logit_t *loss, logit_t *bp,
                       double *stats, cnp.ndarray logits, int num_threads, double scale):
    cdef Py_ssize_t rows = cnp.PyArray_DIMS(logits)[0], classes = cnp.PyArray_DIMS(logits)[1]
    cdef int failed
    with nogil:
        failed = _dense(x, y, loss, bp, stats, scale, rows, classes, num_threads)
    if failed:
        raise MemoryError("no memory for the float16/bfloat16 scratch rows")


cdef object _run_sparse(const logit_t *x, const index_t *labels, logit_t *loss, logit_t *bp,
                        double *stats, cnp.ndarray logits, int num_threads, double scale):
    cdef Py_ssize_t rows = cnp.PyArray_DIMS(logits)[0], classes = cnp.PyArray_DIMS(logits)[1]
    cdef Py_ssize_t bad
    with nogil:
        bad = _sparse(x, labels, loss, bp, stats, scale, rows, classes, num_threads)
    if bad == -2:
        raise MemoryError("no memory for the float16/bfloat16 scratch rows")
    return bad


def empty_outputs(cnp.ndarray logits not None):
    """(loss [rows], backprop [rows, classes], stats [rows, 2] float64): uninitialised
    C-contiguous outputs for the 2-D ``logits``, loss and backprop of their dtype.

    For the caller, which allocates the outputs: ``np.empty`` from Python parses its
    arguments on every call (~0.25 us per array, measured; a short-row call at [128, 10]
    takes ~2 us), the C API does not.
    """
    cdef cnp.npy_intp dims[2]
    cdef int type_num = logits.descr.type_num
    if cnp.PyArray_NDIM(logits) != 2:
        raise ValueError(f"logits must be 2-D, got shape {(<object>logits).shape}")
    dims[0], dims[1] = cnp.PyArray_DIMS(logits)[0], cnp.PyArray_DIMS(logits)[1]
    loss = cnp.PyArray_EMPTY(1, dims, type_num, 0)
    backprop = cnp.PyArray_EMPTY(2, dims, type_num, 0)
    dims[1] = 2
    return loss, backprop, cnp.PyArray_EMPTY(2, dims, cnp.NPY_DOUBLE, 0)


cdef inline void *_data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


def dense_f32(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
              cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
              double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'f', 4, 0)
    _run_dense(<const float *>_data(logits), <const float *>_data(labels), <float *>_data(loss),
               <float *>_data(backprop), <double *>_data(stats), logits, num_threads, scale)


def dense_f64(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
              cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
              double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'f', 8, 0)
    _run_dense(<const double *>_data(logits), <const double *>_data(labels), <double *>_data(loss),
               <double *>_data(backprop), <double *>_data(stats), logits, num_threads, scale)


def dense_f16(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
              cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
              double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'u', 2, 0)
    _run_dense(<const uint16_t *>_data(logits), <const uint16_t *>_data(labels),
               <uint16_t *>_data(loss), <uint16_t *>_data(backprop), <double *>_data(stats),
               logits, num_threads, scale)


def dense_bf16(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
               cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
               double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'u', 2, 0)
    _run_dense(<const xent_bf16 *>_data(logits), <const xent_bf16 *>_data(labels),
               <xent_bf16 *>_data(loss), <xent_bf16 *>_data(backprop), <double *>_data(stats),
               logits, num_threads, scale)


def sparse_f32_i32(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
                   cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
                   double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'f', 4, 4)
    return _run_sparse(<const float *>_data(logits), <const int32_t *>_data(labels),
                       <float *>_data(loss), <float *>_data(backprop), <double *>_data(stats),
                       logits, num_threads, scale)


def sparse_f32_i64(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
                   cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
                   double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'f', 4, 8)
    return _run_sparse(<const float *>_data(logits), <const int64_t *>_data(labels),
                       <float *>_data(loss), <float *>_data(backprop), <double *>_data(stats),
                       logits, num_threads, scale)


def sparse_f64_i32(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
                   cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
                   double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'f', 8, 4)
    return _run_sparse(<const double *>_data(logits), <const int32_t *>_data(labels),
                       <double *>_data(loss), <double *>_data(backprop), <double *>_data(stats),
                       logits, num_threads, scale)


def sparse_f64_i64(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
                   cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
                   double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'f', 8, 8)
    return _run_sparse(<const double *>_data(logits), <const int64_t *>_data(labels),
                       <double *>_data(loss), <double *>_data(backprop), <double *>_data(stats),
                       logits, num_threads, scale)


def sparse_f16_i32(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
                   cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
                   double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'u', 2, 4)
    return _run_sparse(<const uint16_t *>_data(logits), <const int32_t *>_data(labels),
                       <uint16_t *>_data(loss), <uint16_t *>_data(backprop), <double *>_data(stats),
                       logits, num_threads, scale)


def sparse_f16_i64(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
                   cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
                   double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'u', 2, 8)
    return _run_sparse(<const uint16_t *>_data(logits), <const int64_t *>_data(labels),
                       <uint16_t *>_data(loss), <uint16_t *>_data(backprop), <double *>_data(stats),
                       logits, num_threads, scale)


def sparse_bf16_i32(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
                    cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
                    double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'u', 2, 4)
    return _run_sparse(<const xent_bf16 *>_data(logits), <const int32_t *>_data(labels),
                       <xent_bf16 *>_data(loss), <xent_bf16 *>_data(backprop), <double *>_data(stats),
                       logits, num_threads, scale)


def sparse_bf16_i64(cnp.ndarray logits not None, cnp.ndarray labels not None, cnp.ndarray loss not None,
                    cnp.ndarray backprop not None, cnp.ndarray stats not None, int num_threads,
                    double scale=1.0):
    _check_args(logits, labels, loss, backprop, stats, b'u', 2, 8)
    return _run_sparse(<const xent_bf16 *>_data(logits), <const int64_t *>_data(labels),
                       <xent_bf16 *>_data(loss), <xent_bf16 *>_data(backprop), <double *>_data(stats),
                       logits, num_threads, scale)


# ---- shims that make the C helpers testable against numpy -------------------

# The conversions run through the block helpers the float16/bfloat16 kernels use.

cdef int _widen_shim(const uint16_t[::1] bits, float[::1] out, bint bf16) except -1:
    cdef Py_ssize_t n = bits.shape[0]
    if out.shape[0] < n:
        raise ValueError(f"out must hold {n} values, got {out.shape[0]}")
    if n:
        with nogil:
            if bf16:
                xent_widen_bf16(&bits[0], &out[0], n)
            else:
                xent_widen_f16(&bits[0], &out[0], n)
    return 0


cdef int _narrow_shim(const float[::1] values, uint16_t[::1] out, bint bf16) except -1:
    cdef Py_ssize_t n = values.shape[0]
    if out.shape[0] < n:
        raise ValueError(f"out must hold {n} values, got {out.shape[0]}")
    if n:
        with nogil:
            if bf16:
                xent_narrow_bf16(&values[0], &out[0], n)
            else:
                xent_narrow_f16(&values[0], &out[0], n)
    return 0


def half_to_float(const uint16_t[::1] bits, float[::1] out):
    """OUT[i] = the float16 with bit pattern bits[i], widened to float32."""
    _widen_shim(bits, out, False)


def float_to_half(const float[::1] values, uint16_t[::1] out):
    """OUT[i] = bits of values[i] rounded to float16 (nearest even)."""
    _narrow_shim(values, out, False)


def bf16_to_float(const uint16_t[::1] bits, float[::1] out):
    """OUT[i] = the bfloat16 with bit pattern bits[i], widened to float32."""
    _widen_shim(bits, out, True)


def float_to_bf16(const float[::1] values, uint16_t[::1] out):
    """OUT[i] = bits of values[i] rounded to bfloat16 (nearest even; NaN kept, quiet)."""
    _narrow_shim(values, out, True)


# exp and log through the clone the kernels run in (see _xent_row.h)

cdef int _check_out(Py_ssize_t n, Py_ssize_t size) except -1:
    if size < n:
        raise ValueError(f"out must hold {n} values, got {size}")
    return 0


def exp_f32(const float[::1] x, float[::1] out):
    """OUT = the kernels' float32 exp, valid for x <= 0, -inf and NaN."""
    _check_out(x.shape[0], out.shape[0])
    if x.shape[0]:
        with nogil:
            xent_exp_block_f32(&x[0], &out[0], x.shape[0])


def exp_f64(const double[::1] x, double[::1] out):
    """OUT = the kernels' float64 exp, valid for x <= 0, -inf and NaN."""
    _check_out(x.shape[0], out.shape[0])
    if x.shape[0]:
        with nogil:
            xent_exp_block_f64(&x[0], &out[0], x.shape[0])


def log_f64(const double[::1] x, double[::1] out):
    """OUT = the kernels' log, valid for positive normal x and NaN."""
    _check_out(x.shape[0], out.shape[0])
    if x.shape[0]:
        with nogil:
            xent_log_block(&x[0], &out[0], x.shape[0])
