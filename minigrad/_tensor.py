"""``Tensor``: a numpy array plus the node that made it.

The data lives in ``.data`` (a numpy array). A tensor made by a recorded op has a ``_node``
(the op instance, see ``_autograd.py``); a *leaf* has none. Operators and methods are thin
doors onto the functions of ``_ops.py``, where each op is defined once.
"""

import numbers

import numpy as np

from . import _autograd, _checks, _dtypes

__all__ = ["Tensor", "tensor", "from_numpy", "as_tensor", "from_dlpack"]


def _holds_arrays(data):
    """Whether (nested lists of) ``data`` are numpy arrays, numpy scalars or tensors, whose
    dtype is kept. Lists are taken to be homogeneous: their first item decides."""
    while isinstance(data, (list, tuple)) and data:
        data = data[0]
    return isinstance(data, (np.ndarray, np.generic, Tensor))


def _to_array(data, dtype, what="tensor data", python_floats=_dtypes.float32):
    """``data`` as a new numeric ndarray in native byte order; Python floats (and lists of
    them) default to ``python_floats``. Errors name ``what`` and, inside nested lists, the
    position of the bad item."""
    if isinstance(data, (np.ndarray, np.generic)):
        source = np.asarray(data)
        from_python = False
    else:
        from_python = not _holds_arrays(data)
        try:
            source = np.array(data)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{what} must be numbers or (nested lists of) arrays, got "
                            f"{type(data).__name__} data that numpy cannot read: {e}") from None
    if source.dtype == object:
        source = _from_objects(source, dtype, what)
    elif not _dtypes.is_numeric(source.dtype):
        raise TypeError(
            f"{what} must be numeric (bool, integer or float), got dtype {source.dtype}"
            f"{' from ' + type(data).__name__ if from_python else ''}"
        )
    if dtype is None:
        dtype = python_floats if from_python and source.dtype == np.float64 else source.dtype
    if not dtype.isnative:  # big-endian data on a little-endian machine: converted once
        dtype = dtype.newbyteorder("=")
    if from_python and dtype.kind in "iu" and source.dtype.kind in "iuf":
        _check_range(source, dtype, what, data)  # numpy refuses Python ints that do not fit
    if source is not data and source.base is None:  # already a new array of our own
        return source.astype(dtype, copy=False)
    return np.array(source, dtype=dtype)


def _position(index):
    return f" at index {''.join(f'[{i}]' for i in index)}" if index else ""


def _from_objects(source, dtype, what):
    """An object array (numpy's result for lists holding None, strings, or integers past
    64 bits) as numbers, or an error naming the first item that is not a real number or
    does not fit ``dtype``. A missing value is an error, never a NaN."""
    for index, item in np.ndenumerate(source):
        if not isinstance(item, (bool, np.bool_, numbers.Real)):
            raise TypeError(f"{what} must be numeric (bool, integer or float), got "
                            f"{type(item).__name__} {item!r}{_position(index)}")
    if dtype is not None and dtype.kind in "iu":
        _check_range(source, dtype, what)
    elif dtype is None:
        for index, item in np.ndenumerate(source):
            if isinstance(item, int) and not -2**63 <= item < 2**64:
                raise ValueError(f"{what}: the integer {item}{_position(index)} fits neither "
                                 f"int64 nor uint64; pass a float dtype to store it")
    return np.array(source.tolist(), dtype=dtype if dtype is not None else np.float64
                    ).reshape(source.shape)


def _check_range(source, dtype, what, data=None):
    """ValueError naming the first number of ``source`` that integer ``dtype`` cannot hold
    (read exactly from the Python ``data`` it came from, if given: numpy may have made
    integers past 2**63 floats)."""
    info = np.iinfo(dtype)
    if source.dtype != object:
        with np.errstate(invalid="ignore"):
            if ((source >= info.min) & (source < info.max + 1)).all():
                return
        if data is not None:
            source = np.array(data, dtype=object)
    for index, item in np.ndenumerate(source):
        if not (info.min <= item < info.max + 1):  # NaN fails too
            raise ValueError(f"{what}: {item}{_position(index)} is out of range for {dtype}: "
                             f"expected a number in [{info.min}, {info.max}]")


_new = object.__new__  # (no Python-level __new__ lookup per op output)


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    Make one with :func:`minigrad.tensor`. Arithmetic, ``@``, indexing and the methods below
    follow numpy, including broadcasting and dtype promotion. A tensor with
    ``requires_grad=True`` (or watched by a :class:`GradientTape`) has the ops applied to it
    recorded, so gradients can be taken with :meth:`backward`, :func:`minigrad.grad` or a tape.
    """

    __slots__ = ("data", "_requires_grad", "grad", "_node", "__weakref__")

    # numpy must defer to Tensor: ``ndarray + Tensor`` calls ``Tensor.__radd__``.
    __array_ufunc__ = None

    def __init__(self, data, *, dtype=None, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        self.data = _to_array(data, None if dtype is None else _dtypes.numeric_dtype(dtype))
        self.grad = None
        self._node = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array):
        """A leaf around ``array`` with no copy and no checks (for ops' outputs)."""
        t = _new(cls)
        t.data, t.grad, t._node, t._requires_grad = array, None, None, False
        return t

    # -- attributes -----------------------------------------------------------------------
    @property
    def requires_grad(self):
        """Whether ops on this tensor are recorded (always True for a recorded op's output)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        flag = _checks.flag(flag, "requires_grad")
        if self._node is not None:
            raise RuntimeError(
                "requires_grad can only be changed on a leaf tensor; use .detach() to get a leaf"
            )
        if flag and not _dtypes.is_float(self.data.dtype):
            raise TypeError(
                f"requires_grad=True needs a {_dtypes.FLOAT_NAMES} tensor (only those carry "
                f"gradients), this one is {self.data.dtype}; convert it first, e.g. "
                f"minigrad.tensor(x, dtype='float32')"
            )
        self._requires_grad = flag

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place and return ``self``."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        """True for a tensor not made by a recorded op."""
        return self._node is None

    @property
    def node(self):
        """The recorded op that made this tensor, or None for a leaf."""
        return self._node

    shape = property(lambda self: self.data.shape, doc="Tuple of array dimensions.")
    ndim = property(lambda self: self.data.ndim, doc="Number of dimensions.")
    dtype = property(lambda self: self.data.dtype, doc="numpy dtype of the data.")
    size = property(lambda self: self.data.size, doc="Number of elements.")

    def item(self):
        """The single element as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def numpy(self):
        """The data as a numpy array (shared, not copied; never part of a graph)."""
        return self.data

    def detach(self):
        """A leaf sharing this tensor's data, cut from the graph."""
        return Tensor._wrap(self.data)

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def __dlpack__(self, **kwargs):
        """Export the data through DLPack without a copy (``torch.from_dlpack(t)``,
        ``np.from_dlpack(t)``); the data is numpy's, so numpy's exporter does it. numpy has
        no DLPack code for bfloat16: such a tensor raises and says how to move it."""
        if _dtypes.bfloat16 is not None and self.data.dtype == _dtypes.bfloat16:
            raise BufferError(
                "numpy cannot export bfloat16 through DLPack; share the bits instead, e.g. "
                "torch.from_numpy(t.numpy().view(np.uint16)).view(torch.bfloat16)")
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.size != 1:
            raise TypeError("only integer tensors with one element can be used as an index")
        return int(self.item())

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = [f"dtype={self.dtype}"]
        if self._node is not None:
            extra.append(f"node={self._node.name}")
        elif self._requires_grad:
            extra.append("requires_grad=True")
        return f"tensor({body}, {', '.join(extra)})"

    def __hash__(self):
        return id(self)

    def __setitem__(self, index, value):
        raise TypeError(
            "tensors do not support item assignment (it would silently corrupt recorded graphs); "
            "build a new tensor with minigrad.where, or change .data under no_grad()"
        )

    # -- gradients ------------------------------------------------------------------------
    def backward(self, gradient=None, *, retain_graph=None, create_graph=False):
        """Accumulate d self / d leaf into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is the upstream gradient; it may be omitted only for a one-element tensor.
        The graph is freed afterwards unless ``retain_graph`` (default: ``create_graph``); a
        second backward through a freed graph raises ``RuntimeError``. With
        ``create_graph=True`` the backward pass is recorded, so ``.grad`` can be
        differentiated again.
        """
        _autograd.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def graph(self):
        """A readable listing of the recorded ops behind this tensor, inputs first."""
        from ._graph import graph_string

        return graph_string(self)


def tensor(data, *, dtype=None, requires_grad=False):
    """Make a tensor from array-like ``data`` (the data is copied).

    Parameters
    ----------
    data : array_like
        Numbers, nested lists, or a numpy array. Float16, float32 and float64 arrays keep their
        dtype; Python floats (and lists of them) become **float32**; Python ints become int64.
        Arrays of non-native byte order are converted to native order. ``None`` or a string
        among the numbers is a ``TypeError`` naming its index (numpy would make ``None`` a NaN
        under a float ``dtype``), and an integer that ``dtype`` cannot hold a ``ValueError``.
    dtype : numpy dtype, optional
        Force a dtype.
    requires_grad : bool
        Record ops on this tensor so gradients can flow back to it (float dtypes only). Must
        be ``True`` or ``False`` (a numpy bool too), not any truthy value.

    Examples
    --------
    >>> x = minigrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4., 6.], dtype=float32)
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array, *, requires_grad=False):
    """A tensor sharing memory with the numpy ``array`` (no copy), as ``torch.from_numpy``.

    Changes to the array show in the tensor and the other way round (through ``.data``), so
    do not change an array whose tensor is part of a graph still to be differentiated.

    Examples
    --------
    >>> a = np.array([1.0, 2.0], dtype=np.float32)
    >>> t = minigrad.from_numpy(a)
    >>> a[0] = 5.0
    >>> t
    tensor([5., 2.], dtype=float32)
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}; "
                        f"use minigrad.tensor() or minigrad.as_tensor() for other data")
    if not _dtypes.is_numeric(array.dtype):
        raise TypeError(f"from_numpy: the array's dtype {array.dtype} is not supported; "
                        f"tensors hold bools, integers and {_dtypes.FLOAT_NAMES}")
    if not array.dtype.isnative:
        raise ValueError(f"from_numpy: the array's byte order ({array.dtype.str}) is not the "
                         f"machine's, so its memory cannot be shared; minigrad.tensor(array) "
                         f"converts it (a copy)")
    t = Tensor._wrap(array)
    t.requires_grad = requires_grad
    return t


def as_tensor(data, dtype=None):
    """``data`` as a tensor, copying only when it must (as ``torch.as_tensor``).

    A tensor of the requested dtype is returned as is; a numpy array of the requested dtype
    (or any numeric dtype when ``dtype`` is None) is shared, not copied; anything else is
    converted as by :func:`minigrad.tensor` (Python floats become float32).

    Examples
    --------
    >>> a = np.zeros(3, dtype=np.float64)
    >>> minigrad.as_tensor(a).numpy() is a
    True
    >>> minigrad.as_tensor([1.0, 2.0]).dtype
    dtype('float32')
    """
    dtype = None if dtype is None else _dtypes.as_dtype(dtype)
    if isinstance(data, Tensor):
        return data if dtype is None or data.dtype == dtype else _ops.astype(data, dtype)
    if (isinstance(data, np.ndarray) and data.dtype.isnative and _dtypes.is_numeric(data.dtype)
            and (dtype is None or data.dtype == dtype)):
        return Tensor._wrap(data)
    return Tensor(data, dtype=dtype)


def _float_tensor(x, what):
    """``x`` as a tensor (shared where it can be, as by :func:`as_tensor`) of a
    floating-point dtype; otherwise a ``TypeError`` naming ``what`` (the layers' and
    losses' one check of their float inputs)."""
    t = x if isinstance(x, Tensor) else as_tensor(x)
    if not _dtypes.is_float(t.dtype):
        raise TypeError(f"{what} must be a floating-point tensor, got dtype {t.dtype}")
    return t


def from_dlpack(data):
    """A tensor sharing memory with any object that speaks DLPack (a PyTorch CPU tensor, a
    numpy array, ...), through ``numpy.from_dlpack``; no copy is made.

    Examples
    --------
    >>> t = minigrad.from_dlpack(np.arange(3.0))
    >>> t
    tensor([0., 1., 2.], dtype=float64)
    """
    return from_numpy(np.from_dlpack(data))


def _is_python_scalar(x):
    return type(x) in (bool, int, float, complex) or (
        isinstance(x, (int, float, complex)) and not isinstance(x, np.generic))


class _WeakScalar(Tensor):
    """A Python number next to a float16/bfloat16 tensor (internal; never a result).

    NEP 50 makes the number *weak*: ``float16 tensor * 0.1`` is float16. But the op computes
    in float32, and rounding 0.1 to float16 first would add an error the result does not
    deserve. So the number is held in float32 and ``promotes_as`` says which dtype it stands
    for when the op's result dtype is worked out (``Op.apply``).
    """

    __slots__ = ("promotes_as",)


def _operand(x, like=None, what="operand"):
    """``x`` as a Tensor operand. A Python scalar next to tensor ``like`` is a *weak* scalar:
    it takes numpy's promoted dtype (so ``float32 tensor * 2.0`` stays float32). Anything
    else is converted as :func:`tensor` converts it (a list of Python floats is float32,
    beside any tensor), and an array of non-native byte order is converted to native."""
    if isinstance(x, Tensor):
        return x
    if like is not None and _is_python_scalar(x):
        if isinstance(x, complex):
            raise TypeError(f"complex operands are not supported, got {x!r}")
        dtype = np.result_type(like.dtype, x)
        if _dtypes.is_low(dtype):
            weak = _WeakScalar._wrap(np.asarray(x, dtype=_dtypes.float32))
            weak.promotes_as = dtype
            return weak
        try:
            return Tensor._wrap(np.asarray(x, dtype=dtype))
        except OverflowError:  # NEP 50: a Python int must fit the other operand's dtype
            raise ValueError(f"{what} {x} is out of range for {dtype}, the dtype of the other "
                             f"operand (numpy's rule for Python ints)") from None
    if isinstance(x, (np.ndarray, np.generic)):
        arr = np.asarray(x)
        if arr.dtype.isnative and _dtypes.is_numeric(arr.dtype):
            return Tensor._wrap(arr)  # no copy: ops never write their inputs
    return Tensor._wrap(_to_array(x, None, what))


from . import _ops  # noqa: E402  (as_tensor casts with astype; _ops imports this module)
