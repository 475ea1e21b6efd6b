"""Modules: objects that hold parameters and map inputs to outputs.

A :class:`Module` finds its parameters by looking at its attributes: a ``Tensor`` attribute
is a tensor of the module, a ``Module`` attribute is a submodule, and lists, tuples and dicts
of them count too. There is no registration step, so a model reads like plain Python::

    class MLP(nn.Module):
        def __init__(self, rng):
            self.hidden = nn.Linear(64, 32, rng=rng)
            self.out = nn.Linear(32, 10, rng=rng)

        def forward(self, x):
            return self.out(self.hidden(x).relu())

Tensors that require grad are *parameters* (what optimizers update); the others are
*buffers*. Both are saved by :meth:`Module.state_dict`.
"""

import collections
import os
import warnings
import zipfile

import numpy as np

from .. import _dtypes, _ops
from .._checks import flag, positive_int, probability
from .._random import as_generator
from .._tensor import Tensor, as_tensor
from . import init
from .losses import (_check_ignore_index, _check_reduction, _check_smoothing, _loss_weight,
                     cross_entropy)

__all__ = ["Module", "Linear", "Sequential", "ReLU", "Tanh", "Sigmoid", "Dropout",
           "CrossEntropyLoss", "IncompatibleKeys"]

IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _items(name, value):
    """``(name, item)`` for each Tensor or Module in an attribute value, containers unpacked."""
    if isinstance(value, (Tensor, Module)):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _items(f"{name}.{i}", v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _items(f"{name}.{k}", v)


class Module:
    """Base class of layers and models: subclass it and define ``forward``.

    Calling a module calls its ``forward``. Attributes holding Tensors, Modules, or lists,
    tuples and dicts of them are discovered by :meth:`named_parameters` and friends, with
    dotted names such as ``"layers.0.weight"``. A tensor shared by two submodules is listed
    once, under its first name.

    Examples
    --------
    >>> class Affine(nn.Module):
    ...     def __init__(self):
    ...         self.scale = minigrad.tensor([2.0], requires_grad=True)
    ...         self.shift = minigrad.tensor([0.5], requires_grad=True)
    ...     def forward(self, x):
    ...         return x * self.scale + self.shift
    >>> m = Affine()
    >>> [name for name, _ in m.named_parameters()]
    ['scale', 'shift']
    >>> m(minigrad.tensor([1.0]))
    tensor([2.5], dtype=float32, node=Add)
    """

    # A class attribute, so subclasses need not call super().__init__().
    training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- discovery --------------------------------------------------------------------------
    def named_children(self):
        """``(name, module)`` for each direct submodule, in attribute order."""
        for attr, value in vars(self).items():
            for name, item in _items(attr, value):
                if isinstance(item, Module):
                    yield name, item

    def named_modules(self, prefix=""):
        """``(name, module)`` for this module (name ``prefix``) and every submodule below it."""
        seen = set()

        def walk(module, name):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield name, module
            for child_name, child in module.named_children():
                yield from walk(child, f"{name}.{child_name}" if name else child_name)

        yield from walk(self, prefix)

    def modules(self):
        """This module and every submodule below it."""
        return [m for _, m in self.named_modules()]

    def named_tensors(self):
        """``(name, tensor)`` for every parameter and buffer, each tensor once.

        Only leaves count: a tensor made by a recorded op (say an activation kept as
        ``self.h`` for inspection) is a result, not state.
        """
        seen = set()
        for prefix, module in self.named_modules():
            for attr, value in vars(module).items():
                for name, item in _items(attr, value):
                    if isinstance(item, Tensor) and item.is_leaf and id(item) not in seen:
                        seen.add(id(item))
                        yield (f"{prefix}.{name}" if prefix else name), item

    def named_parameters(self):
        """``(name, tensor)`` for every tensor that requires grad, each once.

        >>> [(name, p.shape) for name, p in nn.Linear(3, 2, rng=0).named_parameters()]
        [('weight', (2, 3)), ('bias', (2,))]
        """
        return [(name, t) for name, t in self.named_tensors() if t.requires_grad]

    def parameters(self):
        """The tensors that require grad, as a list (what an optimizer takes).

        >>> sum(p.size for p in nn.Linear(3, 2, rng=0).parameters())
        8
        """
        return [t for _, t in self.named_parameters()]

    def zero_grad(self):
        """Forget the accumulated gradients (set every parameter's ``.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    # -- modes ------------------------------------------------------------------------------
    def train(self, mode=True):
        """Put this module and its submodules in training mode (or eval mode); return self."""
        mode = flag(mode, "mode")
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        """Evaluation mode: ``Dropout`` passes inputs through unchanged. Returns self."""
        return self.train(False)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self):
        """A dict ``{name: ndarray copy}`` of every parameter and buffer.

        >>> sorted(nn.Linear(3, 2, rng=0).state_dict())
        ['bias', 'weight']
        """
        return {name: t.data.copy() for name, t in self.named_tensors()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from ``state_dict`` into this module's tensors.

        The tensors stay the same objects (an optimizer built on them keeps working); their
        data is replaced by a copy cast to their dtype. Everything is checked before anything
        is changed.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            As made by :meth:`state_dict`.
        strict : bool
            Raise ``ValueError`` when keys are missing or unexpected (default). With False,
            load the matching keys and report the others.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, both empty when every key matched.

        Raises
        ------
        ValueError
            Missing or unexpected keys (when strict), or a shape that differs from the tensor's.
        TypeError
            A value that is not a numeric array, or ``state_dict`` not a mapping.

        Examples
        --------
        >>> a, b = nn.Linear(3, 2, rng=0), nn.Linear(3, 2, rng=1)
        >>> b.load_state_dict(a.state_dict())
        IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        >>> bool((a.weight.data == b.weight.data).all())
        True
        """
        strict = flag(strict, "strict")
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"state_dict must be a mapping of names to arrays, "
                            f"got {type(state_dict).__name__}")
        own = dict(self.named_tensors())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict does not match {type(self).__name__}: missing keys {missing}, "
                f"unexpected keys {unexpected}; expected exactly {list(own)}"
            )
        new = {}
        for name, t in own.items():
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            if not _dtypes.is_numeric(value.dtype):
                raise TypeError(f"state_dict[{name!r}] must be numeric, got dtype {value.dtype}")
            if value.shape != t.shape:
                raise ValueError(
                    f"state_dict[{name!r}] has shape {value.shape}, but the module's tensor "
                    f"has shape {t.shape}"
                )
            new[name] = _cast_for_load(name, value, t.dtype)
        for name, value in new.items():
            own[name].data = value
        return IncompatibleKeys(missing, unexpected)

    def save(self, path):
        """Write :meth:`state_dict` to an ``.npz`` file (numpy appends ``.npz`` if missing).

        >>> import os, tempfile
        >>> m = nn.Linear(3, 2, rng=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "linear.npz")
        >>> m.save(path)
        >>> nn.Linear(3, 2, rng=1).load(path).weight.shape
        (2, 3)
        """
        path = _npz_path(path)
        # Written member by member (np.savez's own keywords, such as ``file``, would clash
        # with tensor names) into a temporary file that replaces the old one only when
        # complete, so an interrupted save never truncates a checkpoint.
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with zipfile.ZipFile(tmp, "w") as archive:
                for name, value in self.state_dict().items():
                    with archive.open(name + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, value, allow_pickle=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load(self, path, strict=True):
        """Load an ``.npz`` file written by :meth:`save` (see :meth:`load_state_dict`); return self.

        ``path`` may omit ``.npz``, as for :meth:`save`. With ``strict=False``, keys that do not
        match are reported in a warning.
        """
        with np.load(_npz_path(path), allow_pickle=False) as f:
            result = self.load_state_dict({k: f[k] for k in f.files}, strict=strict)
        if result.missing_keys or result.unexpected_keys:
            warnings.warn(f"loaded {path} into {type(self).__name__} with missing keys "
                          f"{result.missing_keys} and unexpected keys {result.unexpected_keys}")
        return self

    # -- printing ---------------------------------------------------------------------------
    def extra_repr(self):
        """The text inside this module's parentheses when printed (override to add detail)."""
        return ""

    def __repr__(self):
        children = [
            f"  ({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self.named_children()
        ]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not children else head + "\n" + "\n".join(children) + "\n)"


def _npz_path(path):
    """``path`` with the ``.npz`` suffix numpy would give it."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def _cast_for_load(name, value, dtype):
    """``value`` as ``dtype``, refusing a cast that would change what it means."""
    if not np.can_cast(value.dtype, dtype, "same_kind"):
        raise TypeError(f"state_dict[{name!r}] has dtype {value.dtype}, which cannot be stored in "
                        f"the module's {dtype} tensor without losing its kind")
    with np.errstate(over="raise", invalid="raise"):
        try:
            cast = np.array(value, dtype=dtype)
        except FloatingPointError:
            cast = None
    if (cast is None or not np.array_equal(np.isfinite(cast), np.isfinite(value))
            or (dtype.kind in "biu" and not np.array_equal(cast, value))):
        raise ValueError(f"state_dict[{name!r}] has values out of the range of the module's "
                         f"{dtype} tensor")
    return cast


class Linear(Module):
    """Affine layer ``y = x @ weight.T + bias``, laid out as PyTorch's.

    ``weight`` has shape ``(out_features, in_features)``, as in PyTorch, so state dicts and
    habits carry over. It starts Glorot-uniform: drawn with shape ``(in_features,
    out_features)``, the initialisers' layout, and stored transposed. ``bias`` has shape
    ``(out_features,)`` and starts at zero.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis of the input and of the output.
    bias : bool
        Whether to add a learned bias.
    rng : None, int or numpy.random.Generator
        Source of the initial weights; the same seed gives the same bits.
    dtype : float dtype
        Dtype of the parameters (float32 by default). Inputs of another float dtype are
        promoted by numpy's rules, so feed float32 data to a float32 layer.
    weight_init : callable
        ``weight_init(shape, rng=..., dtype=...)`` returning an array, e.g.
        :func:`minigrad.nn.init.he_uniform`.

    Examples
    --------
    >>> layer = nn.Linear(4, 3, rng=0)
    >>> layer(np.ones((2, 4), dtype=np.float32)).shape
    (2, 3)
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32,
                 weight_init=init.glorot_uniform):
        self.in_features = positive_int(in_features, "in_features")
        self.out_features = positive_int(out_features, "out_features")
        bias = flag(bias, "bias")
        rng = as_generator(rng)
        # the initialisers take (fan_in, fan_out) shapes; PyTorch stores the transpose
        shape = (self.in_features, self.out_features)
        drawn = np.asarray(weight_init(shape, rng=rng, dtype=dtype))
        if drawn.shape != shape or not _dtypes.is_float(drawn.dtype):
            raise ValueError(f"weight_init{shape} returned an array of shape {drawn.shape} and "
                             f"dtype {drawn.dtype}; expected shape {shape} and a float dtype")
        self.weight = Tensor(np.ascontiguousarray(drawn.T), requires_grad=True)
        self.bias = (Tensor(init.zeros(self.out_features, dtype=dtype), requires_grad=True)
                     if bias else None)

    def forward(self, x):
        if np.shape(x)[-1:] != (self.in_features,):
            raise ValueError(f"Linear({self.in_features}, {self.out_features}) expects inputs "
                             f"whose last axis has size {self.in_features}, got shape {np.shape(x)}")
        return _ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Sequential(Module):
    """Modules applied one after another; parameters are named ``<i>.<name>``, as in PyTorch.

    Examples
    --------
    >>> model = nn.Sequential(nn.Linear(64, 32, rng=0), nn.ReLU(), nn.Linear(32, 10, rng=1))
    >>> model(np.zeros((5, 64), dtype=np.float32)).shape
    (5, 10)
    >>> [name for name, _ in model.named_parameters()][:2]
    ['0.weight', '0.bias']
    """

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes Modules; argument {i} is {type(layer).__name__}")
        self.layers = list(layers)

    def named_children(self):
        """``(str(i), layer)`` for each layer: PyTorch's names, so state dicts carry over."""
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def append(self, layer):
        """Add ``layer`` at the end; return self."""
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.append takes a Module, got {type(layer).__name__}")
        self.layers.append(layer)
        return self

    def __getitem__(self, index):
        return Sequential(*self.layers[index]) if isinstance(index, slice) else self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)


class ReLU(Module):
    """``max(x, 0)`` as a module (see :func:`minigrad.relu`)."""

    def forward(self, x):
        return _ops.relu(x)


class Tanh(Module):
    """``tanh(x)`` as a module (see :func:`minigrad.tanh`)."""

    def forward(self, x):
        return _ops.tanh(x)


class Sigmoid(Module):
    """``1 / (1 + exp(-x))`` as a module (see :func:`minigrad.sigmoid`)."""

    def forward(self, x):
        return _ops.sigmoid(x)


class Dropout(Module):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the
    rest by ``1 / (1 - p)``, so eval mode is the identity and needs no rescaling.

    Parameters
    ----------
    p : float
        Probability of dropping an element, in [0, 1].
    rng : None, int or numpy.random.Generator
        Source of the masks; a seed gives the same masks on every run.

    Examples
    --------
    >>> drop = nn.Dropout(0.5, rng=0)
    >>> drop(np.ones(4, dtype=np.float32))
    tensor([2., 0., 0., 0.], dtype=float32)
    >>> drop.eval()(np.ones(4, dtype=np.float32))      # the identity, on a tensor as in training
    tensor([1., 1., 1., 1.], dtype=float32)
    """

    def __init__(self, p=0.5, *, rng=None):
        self.p = probability(p, "p")
        self._rng = as_generator(rng)

    def forward(self, x):
        # checked in evaluation too, so that a bad input fails in both modes alike
        x = as_tensor(x)
        if not _dtypes.is_float(x.dtype):
            raise TypeError(f"Dropout needs a float input (its kept values are scaled by "
                            f"1/(1-p)), got {x.dtype}")
        if not self.training or self.p == 0.0:
            return x
        keep = self._rng.random(x.shape) >= self.p
        # The mask is a constant of the graph: the gradient is masked and scaled alike.
        scale = keep / (1.0 - self.p) if self.p < 1.0 else np.zeros(x.shape)
        return x * scale.astype(x.dtype)

    def extra_repr(self):
        return f"p={self.p}"


class CrossEntropyLoss(Module):
    """Module form of :func:`minigrad.nn.cross_entropy` (integer class targets), with
    PyTorch's arguments: ``CrossEntropyLoss(weight=None, *, ignore_index=-100,
    reduction="mean", label_smoothing=0.0)``.

    >>> loss_fn = nn.CrossEntropyLoss()
    >>> float(loss_fn(minigrad.tensor([[0.0, 0.0]]), np.array([1])))  # log 2
    0.6931471...
    >>> nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=0)
    CrossEntropyLoss(ignore_index=0, reduction='mean', label_smoothing=0.1)
    """

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        self.weight = _loss_weight(weight, "weight")  # a buffer, as in PyTorch's state_dict
        self.ignore_index = _check_ignore_index(ignore_index)
        self.reduction = _check_reduction(reduction)
        self.label_smoothing = _check_smoothing(label_smoothing)

    def forward(self, logits, target):
        return cross_entropy(logits, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self):
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}")
