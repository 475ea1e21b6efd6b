"""Check analytic gradients against central finite differences, in float64.

``gradcheck`` compares the vector-Jacobian product that the tape computes, for a random
upstream vector, with the same product computed from central differences of the function,
element by element of every input that requires grad. ``gradgradcheck`` does the same for
the gradient itself, which checks second derivatives.
"""

import numpy as np

from ._autograd import grad
from ._checks import flag, integer, non_negative, real
from ._tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """Raised by :func:`gradcheck` when an analytic gradient disagrees with finite differences."""


def _check_args(fn, eps, atol, rtol, raise_exception, seed):
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if real(eps, "eps") <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    non_negative(atol, "atol")
    non_negative(rtol, "rtol")
    flag(raise_exception, "raise_exception")
    if integer(seed, "seed") < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _leaves(inputs):
    """Float64 leaf copies of the inputs; which of them are checked."""
    leaves, checked = [], []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad:
            leaves.append(Tensor(x.data, dtype=np.float64, requires_grad=True))
            checked.append(i)
        else:
            leaves.append(x)
    if not checked:
        raise ValueError("gradcheck needs at least one tensor with requires_grad=True among its "
                         "inputs")
    return leaves, checked


def _outputs(fn, args):
    outs = _as_tuple(fn(*args))
    for k, y in enumerate(outs):
        if not isinstance(y, Tensor):
            raise TypeError(f"fn must return Tensors; output {k} is {type(y).__name__}")
    return outs


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Check ``fn``'s gradients with respect to every input that requires grad.

    Parameters
    ----------
    fn : callable
        Takes the inputs (as positional arguments) and returns a Tensor or a tuple of Tensors.
    inputs : Tensor or sequence
        Arguments for ``fn``. Tensors with ``requires_grad=True`` are checked; they are
        converted to float64 first. Other arguments are passed through unchanged.
    eps : float
        Step of the central differences ``(f(x + eps) - f(x - eps)) / (2 eps)``.
    atol, rtol : float
        Analytic ``a`` and numeric ``n`` agree when ``|a - n| <= atol + rtol * |n|``.
    raise_exception : bool
        Raise :class:`GradcheckError` on the first mismatch (default); otherwise return False.
    seed : int
        Seed of the random upstream vectors.

    Returns
    -------
    bool
        True when every element agrees.

    Examples
    --------
    >>> x = minigrad.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True)
    >>> minigrad.gradcheck(lambda x: (x.tanh() * x).sum(), [x])
    True
    """
    _check_args(fn, eps, atol, rtol, raise_exception, seed)
    leaves, checked = _leaves(_as_tuple(inputs))
    outs = _outputs(fn, leaves)
    rng = np.random.default_rng(seed)
    upstream = [rng.standard_normal(y.shape) for y in outs]

    differentiable = [k for k, y in enumerate(outs) if y.requires_grad]
    if differentiable:
        analytic = grad([outs[k] for k in differentiable], [leaves[i] for i in checked],
                        [Tensor(upstream[k], dtype=outs[k].dtype) for k in differentiable],
                        allow_unused=True)
    else:
        analytic = [None] * len(checked)

    def probe(i, flat_index, step):
        args = list(leaves)
        data = leaves[i].data.copy()
        data.flat[flat_index] += step
        # Recording stays on, so that fn may itself take gradients (as in gradgradcheck).
        args[i] = Tensor(data, dtype=np.float64, requires_grad=True)
        values = _outputs(fn, args)
        return sum(float(np.sum(np.asarray(y.data, dtype=np.float64) * u)) for y, u in zip(values, upstream))

    for g, i in zip(analytic, checked):
        x = leaves[i]
        a = np.zeros(x.shape) if g is None else np.asarray(g.data, dtype=np.float64)
        for flat in range(x.size):
            numeric = (probe(i, flat, eps) - probe(i, flat, -eps)) / (2 * eps)
            value = float(a.flat[flat])
            if not (abs(value - numeric) <= atol + rtol * abs(numeric)):
                if not raise_exception:
                    return False
                where = np.unravel_index(flat, x.shape) if x.ndim else ()
                raise GradcheckError(
                    f"gradient mismatch for input {i} (shape {x.shape}) at index {tuple(int(j) for j in where)}: "
                    f"analytic {value!r}, numeric {numeric!r} "
                    f"(|difference| {abs(value - numeric):.3g} > atol {atol} + rtol {rtol} * |numeric|)"
                )
    return True


def gradgradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Check second derivatives: :func:`gradcheck` applied to ``fn``'s gradient.

    The gradient, for a random upstream vector ``u``, is computed with ``create_graph=True``;
    it is then checked against finite differences with respect to the inputs and ``u``.
    Parameters are those of :func:`gradcheck`.

    Examples
    --------
    >>> x = minigrad.tensor([0.5, -1.0], dtype="float64", requires_grad=True)
    >>> minigrad.gradgradcheck(lambda x: (x ** 3).sum(), [x])
    True
    """
    _check_args(fn, eps, atol, rtol, raise_exception, seed)
    inputs = _as_tuple(inputs)
    leaves, checked = _leaves(inputs)
    rng = np.random.default_rng(seed + 1)
    upstream = [Tensor(rng.standard_normal(y.shape), dtype=np.float64, requires_grad=True)
                for y in _outputs(fn, leaves)]
    n = len(inputs)

    def first_gradient(*args):
        xs, us = args[:n], args[n:]
        outs = _outputs(fn, xs)
        keep = [k for k, y in enumerate(outs) if y.requires_grad]
        sources = [xs[i] for i in checked]
        if not keep:
            return tuple(Tensor(np.zeros(s.shape)) for s in sources)
        grads = grad([outs[k] for k in keep], sources, [us[k] for k in keep],
                     create_graph=True, allow_unused=True)
        return tuple(Tensor(np.zeros(s.shape)) if g is None else g for g, s in zip(grads, sources))

    return gradcheck(first_gradient, list(leaves) + upstream, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, seed=seed)
