# cython: language_level=3
"""Elementwise kernels that numpy cannot do in one pass at the accuracy the ops promise.

``tanh_grad_f32(upstream, x, out)`` and ``sigmoid_grad_f32``: tanh's and the sigmoid's VJPs
for float32, ``upstream * sech^2(x)`` and ``upstream * s(x) s(-x)``, formed in double and
rounded once (``kernels/_elementwise.h``, ``mg_tanh_grad_f32``). numpy needs
six passes for the same arithmetic (casts, a float64 cosh, a square, a divide, a cast
back); this is one. The op (``minigrad._ops.TanhBackward``) validates and falls back to
numpy for other dtypes and shapes (``SigmoidBackward`` likewise).
"""
cimport numpy as cnp

cdef extern from "_elementwise.h" nogil:
    void mg_tanh_grad_f32(const float *g, const float *x, float *out, Py_ssize_t n)
    void mg_sigmoid_grad_f32(const float *g, const float *x, float *out, Py_ssize_t n)

cnp.import_array()


cdef int _check_f32(cnp.ndarray a, str name, cnp.npy_intp size, bint out) except -1:
    """a is a C-contiguous native float32 array of ``size`` elements (writeable if out)."""
    if (cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(a)
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_SIZE(a) != size
            or (out and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(f"{name} must be a C-contiguous{' writeable' if out else ''} float32 "
                         f"array of {size} elements, got {(<object>a).dtype} {(<object>a).shape}")
    return 0


ctypedef void (*grad_kernel)(const float *, const float *, float *, Py_ssize_t) noexcept nogil


cdef _run(grad_kernel kernel, cnp.ndarray upstream, cnp.ndarray x, cnp.ndarray out):
    cdef cnp.npy_intp n = cnp.PyArray_SIZE(out)
    _check_f32(upstream, "upstream", n, False)
    _check_f32(x, "x", n, False)
    _check_f32(out, "out", n, True)
    with nogil:
        kernel(<const float *>cnp.PyArray_DATA(upstream), <const float *>cnp.PyArray_DATA(x),
               <float *>cnp.PyArray_DATA(out), n)


def tanh_grad_f32(cnp.ndarray upstream not None, cnp.ndarray x not None,
                  cnp.ndarray out not None):
    """OUT ``out = upstream * sech^2(x)`` (IN ``upstream``, ``x``: float32, C-contiguous,
    of ``out``'s size), within half an ulp of float32 plus ~1e-15 relative."""
    _run(mg_tanh_grad_f32, upstream, x, out)


def sigmoid_grad_f32(cnp.ndarray upstream not None, cnp.ndarray x not None,
                     cnp.ndarray out not None):
    """OUT ``out = upstream * s(x) s(-x)`` (the sigmoid's derivative), as
    ``tanh_grad_f32``."""
    _run(mg_sigmoid_grad_f32, upstream, x, out)
