"""The tape: how an op is recorded, and the one walk that turns a graph into gradients.

Every differentiable primitive is an ``Op`` subclass with a ``forward`` on numpy arrays and a
``vjp`` (vector-Jacobian product) written in minigrad ops. ``Op.apply`` runs the forward and,
when gradients are being recorded, keeps the op instance as the *node* of its output: the node
holds the input tensors and whatever the forward saved. ``grad`` walks the nodes from the outputs
back to the inputs in reverse topological order, calling ``vjp`` once per node. Because ``vjp``
is made of recorded ops, running the walk with ``create_graph=True`` records the backward pass
too, and gradients of gradients come for free.

``Tensor.backward`` and ``GradientTape.gradient`` are thin doors onto ``grad``'s walk.
"""

import contextlib
import itertools
import threading
import weakref

import numpy as np

from ._checks import flag, optional_flag
from ._dtypes import FLOAT_SET, LOW, float32, is_float

__all__ = [
    "Op", "grad", "GradientTape", "no_grad", "enable_grad", "is_grad_enabled", "stop_gradient",
]


class _State(threading.local):
    """Per-thread recording state: the grad mode switch and the stack of open tapes."""

    def __init__(self):
        self.enabled = True
        self.tapes = []
        self.frees_graph = False


_state = _State()


def is_grad_enabled():
    """Return True when new ops are recorded (the default; False inside ``no_grad``)."""
    return _state.enabled


class _GradMode(contextlib.ContextDecorator):
    _flag = True

    def __init__(self):
        self._prev = []  # a stack: one object may be entered again before it exits

    def __enter__(self):
        self._prev.append(_state.enabled)
        _state.enabled = self._flag

    def __exit__(self, *exc):
        _state.enabled = self._prev.pop()
        return False

    def _recreate_cm(self):  # a fresh object per decorated call (recursion, threads)
        return type(self)()


class no_grad(_GradMode):
    """Context manager (or decorator) inside which no op is recorded.

    >>> x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    >>> with minigrad.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _flag = False


class enable_grad(_GradMode):
    """Context manager (or decorator) that switches recording back on inside ``no_grad``."""

    _flag = True


def _watched(t):
    """Whether ``t`` is watched by an open tape (ops on it are then recorded); ``watch`` takes
    only float tensors."""
    return any(tape._watches(t) for tape in _state.tapes)


class Op:
    """A differentiable primitive: ``forward`` on ndarrays, ``vjp`` in minigrad ops.

    Subclasses define::

        def forward(self, *arrays) -> ndarray
        def vjp(self, g, out) -> tuple      # one cotangent per input (None where not needed)

    ``g`` is the cotangent of the output and ``out`` the output tensor. ``self.inputs`` holds
    the input tensors and ``self.needs[i]`` says whether input ``i`` wants a gradient, so a
    ``vjp`` may skip work. The base class does the chores: it sums a cotangent back over
    broadcast axes, casts it to the input's dtype, releases what was saved once the graph is
    freed, and applies the low-precision rule below.

    **float16 and bfloat16** data keep their dtype, but an op computes in float32 and rounds
    its result once: ``apply`` runs the op on float32 casts of the inputs and casts the result
    back. The casts are recorded ops, so the backward pass runs in float32 as well and each
    input's gradient is rounded once, by its cast's VJP. Ops whose result is exact in any
    dtype (moving, selecting or negating values) set ``opmath = False`` and skip the casts,
    as do ops that compute in a wider type themselves.
    """

    released = False
    opmath = True

    @classmethod
    def apply(cls, *inputs, **params):
        """Run the op on tensors ``inputs``; record it when any input wants a gradient.

        A numpy array (or numpy scalar) among the inputs is taken as a constant.
        """
        for x in inputs:
            # numpy constants, weak Python scalars and float16/bfloat16 data: the rare cases
            if type(x) is not Tensor or x.data.dtype in LOW:
                return _apply_special(cls, inputs, params)
        return _run(cls, inputs, params)

    @property
    def name(self):
        return type(self).__name__

    def backward(self, g, out):
        """Cotangents for the inputs: ``vjp`` plus un-broadcasting and the input's dtype."""
        grads = self.vjp(g, out)
        inputs = self.inputs
        if not isinstance(grads, (tuple, list)) or len(grads) != len(inputs):
            raise _vjp_error(self, grads)
        result = []
        for x, need, gx in zip(inputs, self.needs, grads):
            if not need or gx is None:
                result.append(None)
                continue
            if type(gx) is not Tensor:  # (the slow check accepts a subclass)
                _check_cotangent(self, len(result), gx)
            if gx.data.shape != x.data.shape:
                gx = _sum_to(self, len(result), gx, x.shape)
            if gx.data.dtype != x.data.dtype:
                gx = gx.astype(x.data.dtype)
            result.append(gx)
        return result

    def release(self):
        """Free the inputs and saved values; a later walk through this node is an error."""
        self.__dict__ = {"released": True, "seq": self.__dict__.get("seq", -1)}

    def __repr__(self):
        return f"<{self.name}>"


def _check_cotangent(op, i, gx):
    if not isinstance(gx, Tensor):
        raise TypeError(f"{op.name}.vjp returned a {type(gx).__name__} for input {i}; a "
                        f"cotangent must be a minigrad Tensor (write the vjp with minigrad ops) "
                        f"or None")


def _sum_to(op, i, gx, shape):
    """A cotangent summed over the axes its input was broadcast along."""
    try:
        return gx.sum_to(shape)
    except ValueError:
        raise ValueError(f"{op.name}.vjp returned a cotangent of shape {gx.shape} for input {i} "
                         f"of shape {shape}; it must have the input's shape (or broadcast to "
                         f"it)") from None


def _run(cls, inputs, params):
    """The op's forward on plain tensors, recorded when an input wants a gradient."""
    # Plain loops, not comprehensions or map: on Python 3.11 either costs about 0.3 us more
    # per op than the loop (a comprehension is a function call), several percent of a small op.
    arrays, needs = [], []
    for x in inputs:
        arrays.append(x.data)
        needs.append(x._requires_grad)
    op = cls(**params)
    try:
        data = op.forward(*arrays)
    except (TypeError, ValueError) as e:  # numpy's own errors: say which op and operands
        raise _forward_error(cls, inputs, e) from e
    if type(data) is not np.ndarray:
        data = np.asarray(data)
    out = Tensor._wrap(data)
    if _state.enabled and data.dtype in FLOAT_SET:
        # (requires_grad is only ever set on float tensors, and only they are watched)
        tapes = _state.tapes
        if tapes:
            needs = [need or _watched(x) for x, need in zip(inputs, needs)]
        if True in needs:
            op.inputs, op.needs, op.seq = inputs, tuple(needs), next(_sequence)
            out._node = op
            out._requires_grad = True
            for tape in tapes:
                tape._record(op, out)
    return out


def _apply_special(cls, inputs, params):
    """``apply`` for inputs that are numpy constants, weak Python scalars or float16/bfloat16
    data: the constants wrapped, then the low-precision rule."""
    for x in inputs:
        if not isinstance(x, Tensor):
            inputs = _constants(cls, inputs)
            break
    low = _low_precision_result(inputs)
    if low is not None:
        if cls.opmath:
            return _apply_in_float32(cls, inputs, params, low)
        inputs = [_round_weak(x, low) for x in inputs]
    elif any(type(x) is _WeakScalar for x in inputs):  # (not next to low-precision data)
        inputs = [Tensor._wrap(x.data) if type(x) is _WeakScalar else x for x in inputs]
    return _run(cls, tuple(inputs), params)


def _constants(cls, inputs):
    """``inputs`` with numpy arrays and scalars wrapped as constant tensors, or a TypeError
    naming the op and the input that is neither."""
    converted = []
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            if not isinstance(x, (np.ndarray, np.generic)):
                raise TypeError(f"{cls.__name__}.apply takes minigrad Tensors (numpy arrays are "
                                f"taken as constants); input {i} is {type(x).__name__}")
            x = _tensor._operand(x, what=f"{cls.__name__}.apply input {i}")
        converted.append(x)
    return converted


def _forward_error(cls, inputs, e):
    operands = ", ".join(f"{x.data.dtype} {x.data.shape}" for x in inputs)
    message = f"{cls.__name__} on operands ({operands}): {e}"
    try:
        return type(e)(message)
    except Exception:  # an exception class that takes other arguments
        return (ValueError if isinstance(e, ValueError) else TypeError)(message)


def _vjp_error(op, grads):
    n = len(op.inputs)
    expected = (f"a tuple of {n} cotangent{'s' if n != 1 else ''}, one per input (None where "
                f"not needed)")
    if isinstance(grads, (tuple, list)):
        return ValueError(f"{op.name}.vjp returned {len(grads)} cotangent"
                          f"{'s' if len(grads) != 1 else ''} for {n} input"
                          f"{'s' if n != 1 else ''}; it must return {expected}")
    hint = " (write `return (g,)`, not `return g`)" if isinstance(grads, Tensor) and n == 1 else ""
    return TypeError(f"{op.name}.vjp returned a {type(grads).__name__}; it must return "
                     f"{expected}{hint}")


# -- the low-precision rule ---------------------------------------------------------------------
def _low_precision_result(inputs):
    """The float16/bfloat16 dtype of an op's result on ``inputs``, or None for any other.

    A weak Python scalar (``_WeakScalar``, float32 data) counts as the dtype it stands for.
    """
    dtype = np.result_type(*[x.promotes_as if type(x) is _WeakScalar else x.data.dtype
                             for x in inputs])
    return dtype if dtype in LOW else None


def _apply_in_float32(cls, inputs, params, low):
    """``cls`` on float32 casts of the low-precision ``inputs``, its result rounded to ``low``."""
    wide = [_ops.astype(x, float32) if x.data.dtype in LOW
            else Tensor._wrap(x.data) if type(x) is _WeakScalar else x for x in inputs]
    return _ops.astype(cls.apply(*wide, **params), low)


def _round_weak(x, low):
    """A weak scalar as a constant of dtype ``low``: for ops whose result is exact, rounding
    the scalar first gives the same result as rounding the result."""
    return Tensor._wrap(x.data.astype(low)) if type(x) is _WeakScalar else x


# Recorded nodes are numbered in the order they were recorded. A node's inputs were all made
# before it, so the reachable tensors sorted by their node's number (leaves first) are in
# topological order: one traversal and one sort of integers, no recursion however deep the graph.
_sequence = itertools.count()


def _toposort(outputs, allow_released=False):
    """Tensors reachable from ``outputs`` through recorded nodes, inputs before outputs.

    A freed node is an error, unless ``allow_released`` (for printing), where it ends the walk.
    """
    leaves, made = {}, {}  # id -> leaf; node number -> the tensor it made (one per node)
    stack = list(outputs)
    while stack:
        t = stack.pop()
        node = t._node
        if node is None:
            leaves[id(t)] = t
            continue
        seq = node.seq
        if seq in made:
            continue
        made[seq] = t
        if node.released:
            if allow_released:
                continue
            raise RuntimeError(
                f"trying to backward through the graph a second time: the graph behind "
                f"{node.name} was freed by an earlier backward. Pass retain_graph=True to "
                f"the first backward/grad call if you need to walk the graph again."
            )
        for x, need in zip(node.inputs, node.needs):
            if need:
                stack.append(x)
    return [*leaves.values(), *[made[seq] for seq in sorted(made)]]


def _relevant(order, wanted):
    """The ids of the tensors in ``order`` that a wanted tensor lies at or behind, or None
    when that is every one of them (see ``_backprop``)."""
    if wanted is None:
        # When every reached leaf requires grad, all are relevant, since a recorded tensor
        # reaches a leaf along the inputs it needs (the common case, ``backward()``; the sweep
        # below is for a tape's watched-only leaves and ``grad``'s chosen inputs).
        for t in order:  # the leaves come first
            if t._node is not None:
                return None
            if not t._requires_grad:
                break
    # ``order`` lists inputs first, so one forward sweep decides it.
    relevant = set()
    for t in order:
        node = t._node
        if node is None:
            if (t._requires_grad if wanted is None else id(t) in wanted):
                relevant.add(id(t))
            continue
        if wanted is not None and id(t) in wanted:
            relevant.add(id(t))
            continue
        for x, need in zip(node.inputs, node.needs):
            if need and id(x) in relevant:
                relevant.add(id(t))
                break
    return relevant


def _backprop(outputs, cotangents, wanted, *, create_graph, retain_graph):
    """The gradient walk shared by every door.

    ``wanted`` is a set of tensor ids, or None for every leaf that requires grad (the doors
    ``grad`` and ``backward``). Returns ``{id(t): (t, cotangent)}`` for every reached wanted
    tensor ``t``. Nodes that cannot reach a wanted tensor are skipped.
    """
    order = _toposort(outputs)
    relevant = _relevant(order, wanted)  # None: all of them

    grads, found = {}, {}
    for t, g in zip(outputs, cotangents):
        key = id(t)
        grads[key] = g if key not in grads else grads[key] + g
    # The backward pass is recorded only with create_graph. Without it, and when the graph is
    # freed as the walk goes, a node may hand over buffers that nothing else will see again
    # (``graph_private_buffers``).
    saved = _state.enabled, _state.frees_graph
    _state.enabled, _state.frees_graph = create_graph, not (retain_graph or create_graph)
    complete = skipped = False  # complete: every node walked (and released, unless retained)
    try:
        for t in reversed(order):
            key = id(t)
            g = grads.pop(key, None)
            if g is None or relevant is not None and key not in relevant:
                skipped = True
                continue
            node = t._node
            if node is None or wanted is not None and key in wanted:
                found[key] = (t, g)
                if node is None:
                    continue
            for x, gx in zip(node.inputs, node.backward(g, t)):
                if gx is not None:
                    key = id(x)
                    if relevant is None or key in relevant:
                        grads[key] = gx if key not in grads else grads[key] + gx
            if not retain_graph:
                node.release()
        complete = not skipped
    finally:
        _state.enabled, _state.frees_graph = saved
        if not (retain_graph or complete):  # free the nodes skipped, or left by an error
            for t in order:
                node = t._node
                if node is not None and not node.released:
                    node.release()
    return found


def graph_private_buffers():
    """True inside a gradient walk that records nothing and frees the graph as it goes: a
    node's VJP may then hand over an array it saved, when no tensor the user can reach shares
    it, since the node is released right after."""
    return _state.frees_graph


def _check_outputs(outputs, grad_outputs, *, implicit_ones_for_any_shape=False):
    """Validate outputs and their cotangents; return the cotangents as tensors."""
    for i, y in enumerate(outputs):
        if not isinstance(y, Tensor):
            raise TypeError(f"outputs[{i}] must be a minigrad.Tensor, got {type(y).__name__}")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(
            f"got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs; pass one per output"
        )
    cotangents = []
    for i, (y, g) in enumerate(zip(outputs, grad_outputs)):
        if g is None:
            if y.size != 1 and not implicit_ones_for_any_shape:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs, but outputs[{i}] "
                    f"has shape {y.shape}; pass a gradient of that shape (e.g. ones) explicitly"
                )
            g = Tensor._wrap(np.ones(y.shape, dtype=y.dtype))
        else:
            g = g.astype(y.dtype) if isinstance(g, Tensor) else Tensor(g, dtype=y.dtype)
            if g.shape != y.shape:
                raise ValueError(
                    f"grad_outputs[{i}] has shape {g.shape} but outputs[{i}] has shape {y.shape}; "
                    f"they must match"
                )
        cotangents.append(g)
    return cotangents


def _as_list(x, what):
    if isinstance(x, Tensor):
        return [x], True
    if isinstance(x, (list, tuple)):
        return list(x), False
    raise TypeError(f"{what} must be a Tensor or a sequence of Tensors, got {type(x).__name__}")


def grad(outputs, inputs, grad_outputs=None, *, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, as a tuple (one per input).

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
        What to differentiate. Several outputs add their contributions.
    inputs : Tensor or sequence of Tensor
        What to differentiate with respect to: leaves or intermediate tensors of the graph.
    grad_outputs : sequence, optional
        The cotangent (upstream gradient) of each output; may be omitted for outputs with one
        element, which get 1.
    retain_graph : bool, optional
        Keep the graph for another walk. Defaults to ``create_graph``.
    create_graph : bool
        Record the backward pass, so the returned gradients can be differentiated again.
    allow_unused : bool
        Return None for an input the outputs do not depend on, instead of raising.

    Examples
    --------
    >>> x = minigrad.tensor(3.0, requires_grad=True)
    >>> (dx,) = minigrad.grad(x ** 3, x, create_graph=True)   # 3 x^2 = 27
    >>> (ddx,) = minigrad.grad(dx, x)                        # 6 x = 18
    >>> float(dx), float(ddx)
    (27.0, 18.0)
    """
    create_graph = flag(create_graph, "create_graph")
    retain_graph = optional_flag(retain_graph, "retain_graph")
    allow_unused = flag(allow_unused, "allow_unused")
    outputs, _ = _as_list(outputs, "outputs")
    inputs, _ = _as_list(inputs, "inputs")
    if grad_outputs is not None and not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    cotangents = _check_outputs(outputs, grad_outputs)
    for i, y in enumerate(outputs):
        if not y.requires_grad:
            raise RuntimeError(
                f"outputs[{i}] does not require grad and has no recorded graph; make an input a "
                f"leaf with requires_grad=True (or watch it on a GradientTape) before computing it"
            )
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs[{i}] must be a minigrad.Tensor, got {type(x).__name__}")
        if not x.requires_grad:
            raise RuntimeError(
                f"inputs[{i}] does not require grad; create it with requires_grad=True"
            )
    if retain_graph is None:
        retain_graph = create_graph
    wanted = {id(x) for x in inputs}
    found = _backprop(outputs, cotangents, wanted,
                      create_graph=create_graph, retain_graph=retain_graph)
    result = []
    for i, x in enumerate(inputs):
        g = found.get(id(x), (None, None))[1]
        if g is None and not allow_unused:
            raise RuntimeError(
                f"inputs[{i}] (shape {x.shape}) was not used to compute the outputs; pass "
                f"allow_unused=True to get None for it"
            )
        result.append(g)
    return tuple(result)


def backward(tensor, gradient=None, *, retain_graph=None, create_graph=False):
    """Accumulate d tensor / d leaf into ``leaf.grad`` for every leaf that requires grad."""
    create_graph = flag(create_graph, "create_graph")
    retain_graph = optional_flag(retain_graph, "retain_graph")
    cotangents = _check_outputs([tensor], None if gradient is None else [gradient])
    if not tensor.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad and has no recorded graph; create "
            "its inputs with requires_grad=True"
        )
    if retain_graph is None:
        retain_graph = create_graph
    found = _backprop([tensor], cotangents, None,
                      create_graph=create_graph, retain_graph=retain_graph)
    owned = set()
    for leaf, g in found.values():
        if not create_graph:
            # A cotangent may be a read-only broadcast view, or one array handed to two
            # leaves (x + y): give each .grad a writable array of its own.
            data = g.data
            if not (data.flags.owndata and data.flags.writeable) or id(data) in owned:
                data = data.copy()
            owned.add(id(data))
            g = Tensor._wrap(data)
        leaf.grad = g if leaf.grad is None else leaf.grad + g


def stop_gradient(t):
    """Return ``t``'s value as a tensor that is treated as a constant by every gradient."""
    return t.detach() if isinstance(t, Tensor) else Tensor(t)


class GradientTape:
    """TensorFlow-style recording context; ``gradient`` runs the same walk as ``grad``.

    Inside ``with GradientTape() as tape:``, ops on watched tensors (``tape.watch(x)``) and on
    tensors with ``requires_grad=True`` are recorded. ``tape.gradient(target, sources)``
    returns d target / d sources in the structure of ``sources`` (None for an unconnected
    source). A non-scalar target is summed, as in TensorFlow. A tape that is not
    ``persistent`` answers ``gradient`` once.

    A ``persistent`` tape may be asked for gradients many times and re-entered (``with tape:``
    again); it keeps recording onto the same listing until :meth:`reset`. What it keeps: the
    watched tensors only weakly (a tensor nothing else holds is freed, and forgotten by the
    tape), the recorded graph never (that lives in the tensors), and its printable listing of
    ops (a few hundred bytes per op) until ``reset()``. So a persistent tape re-entered in a
    training loop grows by that listing each step: call ``tape.reset()`` at the top of the
    loop, or make a new tape per step.

    Nested tapes give higher-order gradients: a ``gradient`` call made while another tape is
    recording records its own backward pass on that tape.

    >>> x = minigrad.tensor(3.0)
    >>> with minigrad.GradientTape() as outer:
    ...     outer.watch(x)
    ...     with minigrad.GradientTape() as inner:
    ...         inner.watch(x)
    ...         y = x ** 3
    ...     dy = inner.gradient(y, x)           # 3 x^2 = 27
    >>> float(outer.gradient(dy, x))            # 6 x = 18
    18.0

    Printing a tape lists the ops it recorded, in order, with shapes and dtypes.
    """

    def __init__(self, persistent=False):
        self.persistent = flag(persistent, "persistent")
        # Weak: a watched tensor that nothing else holds is dropped (its entry goes with it,
        # before its id can be reused), so a persistent tape re-entered in a loop does not
        # keep every step's watched tensors alive.
        self._watched = weakref.WeakValueDictionary()
        self._records = []
        self._recording = False
        self._used = False

    def __enter__(self):
        if self._recording:
            raise RuntimeError("this GradientTape is already recording; tapes are not re-entrant")
        _state.tapes.append(self)
        self._recording = True
        return self

    def __exit__(self, *exc):
        _state.tapes.remove(self)
        self._recording = False
        return False

    def _watches(self, t):
        return id(t) in self._watched

    def _record(self, op, out):
        # ``out`` needs no watching: a recorded output has requires_grad set.
        self._records.append(
            (op.name, [(x.shape, x.dtype) for x in op.inputs], (out.shape, out.dtype))
        )

    def watch(self, tensor):
        """Record ops on ``tensor`` (or on each tensor of a list) from now on."""
        for i, t in enumerate(tensor if isinstance(tensor, (list, tuple)) else [tensor]):
            if not isinstance(t, Tensor):
                raise TypeError(f"watch() takes minigrad Tensors; item {i} is {type(t).__name__}")
            if not is_float(t.dtype):
                raise TypeError(
                    f"only floating-point tensors can be watched; item {i} has dtype {t.dtype}"
                )
            self._watched[id(t)] = t

    @contextlib.contextmanager
    def stop_recording(self):
        """Temporarily record nothing (on any tape, nor for ``requires_grad`` tensors)."""
        if not self._recording:
            raise RuntimeError("stop_recording() needs the tape to be recording (inside `with`)")
        with no_grad():
            yield

    def reset(self):
        """Forget everything recorded and watched so far (the listing too; see the class
        docstring on persistent tapes)."""
        self._watched.clear()
        self._records.clear()
        self._used = False

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d target / d sources, in the structure of ``sources``.

        ``target`` may be a tensor or a list of tensors (their gradients add up); a non-scalar
        target is treated as its sum unless ``output_gradients`` is given.
        ``unconnected_gradients`` is ``"none"`` (None for an unconnected source) or ``"zero"``.
        """
        if self._used and not self.persistent:
            raise RuntimeError(
                "a non-persistent GradientTape can only compute one gradient; create it with "
                "GradientTape(persistent=True) to call gradient() several times"
            )
        if not isinstance(unconnected_gradients, str) or \
                unconnected_gradients not in ("none", "zero"):
            raise ValueError(
                f"unconnected_gradients must be 'none' or 'zero', got {unconnected_gradients!r}"
            )
        targets, _ = _as_list(target, "target")
        srcs, single = _as_list(sources, "sources")
        for i, s in enumerate(srcs):
            if not isinstance(s, Tensor):
                raise TypeError(f"sources[{i}] must be a minigrad.Tensor, got {type(s).__name__}")
        if output_gradients is not None and not isinstance(output_gradients, (list, tuple)):
            output_gradients = [output_gradients]
        cotangents = _check_outputs(targets, output_gradients, implicit_ones_for_any_shape=True)
        self._used = True
        wanted = {id(s) for s in srcs}
        connected = [(t, g) for t, g in zip(targets, cotangents) if t.requires_grad or id(t) in wanted]
        found = {}
        if connected:
            # Record the backward pass when some tape is recording (nested tapes).
            recording = _state.enabled and any(tape._recording for tape in _state.tapes)
            found = _backprop([t for t, _ in connected], [g for _, g in connected],
                              wanted, create_graph=recording, retain_graph=True)
        result = []
        for s in srcs:
            g = found.get(id(s), (None, None))[1]
            if g is None and unconnected_gradients == "zero":
                g = Tensor._wrap(np.zeros(s.shape, dtype=s.dtype))
            result.append(g)
        if single:
            return result[0]
        return type(sources)(result) if isinstance(sources, tuple) else result

    def __str__(self):
        lines = [f"GradientTape(persistent={self.persistent}) with {len(self._records)} ops:"]
        for i, (name, ins, (shape, dtype)) in enumerate(self._records):
            args = ", ".join(f"{s} {d}" for s, d in ins)
            lines.append(f"  {i:3d}  {name:<12s} ({args}) -> {shape} {dtype}")
        return "\n".join(lines)

    __repr__ = __str__


from ._tensor import Tensor, _WeakScalar  # noqa: E402  (Tensor's module imports this one)
from . import _ops, _tensor  # noqa: E402  (the casts of the low-precision rule; constants)
