"""Gradient clipping, as PyTorch's ``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``.

Both change each parameter's ``.grad`` in place (between ``backward`` and the optimizer's
``step``) and skip parameters without a gradient.
"""

import math
import numbers

import numpy as np

from .._tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters must be Tensors; item {i} is {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _scale_in_place(g, factor):
    if g.data.flags.writeable:
        g.data *= factor
    else:  # a read-only gradient (say, a broadcast view) gets an array of its own
        g.data = g.data * factor


def _number(value, what, *, allow_inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{what} must be {'a number (inf allowed)' if allow_inf else 'finite'}, "
                         f"got {value}")
    return value


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients so that their joint ``norm_type``-norm is at most ``max_norm``.

    The norm is taken over all gradients together, as if concatenated into one vector. When it
    exceeds ``max_norm`` every gradient is multiplied by ``max_norm / (norm + 1e-6)`` (PyTorch's
    rule, the 1e-6 guarding a zero norm); otherwise they are left as they are.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Typically ``model.parameters()``; those whose ``.grad`` is None are skipped.
    max_norm : float
        The largest norm allowed, >= 0 (``inf`` just measures).
    norm_type : float or "inf"
        p of the p-norm, > 0; ``inf`` for the largest absolute value.
    error_if_nonfinite : bool
        Raise ``RuntimeError`` (changing nothing) when the norm is NaN or infinite, instead of
        scaling by a NaN or zero factor as PyTorch's default does.
    foreach : None or bool
        Accepted for PyTorch compatibility; unused.

    Returns
    -------
    Tensor
        The total norm before clipping, a scalar of the gradients' dtype.

    Examples
    --------
    >>> w = minigrad.tensor([3.0, 4.0], requires_grad=True)
    >>> (w * w).sum().backward()                   # grad (6, 8): norm 10
    >>> nn.utils.clip_grad_norm_([w], max_norm=5.0)
    tensor(10., dtype=float32)
    >>> np.round(w.grad.numpy(), 4)
    array([3., 4.], dtype=float32)
    """
    max_norm = _number(max_norm, "max_norm", allow_inf=True)
    if max_norm < 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    if isinstance(norm_type, str) and norm_type.lower() == "inf":
        norm_type = math.inf
    norm_type = _number(norm_type, "norm_type", allow_inf=True)
    if norm_type <= 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type}")
    grads = _grads(parameters)
    if not grads:
        return Tensor(0.0)
    dtype = grads[0].dtype
    # one norm per gradient, then the norm of those norms: the norm of the concatenation
    with np.errstate(over="ignore"):
        norms = [np.linalg.norm(g.data.astype(np.float64, copy=False).ravel(), norm_type)
                 if g.size else 0.0 for g in grads]
        total = float(np.linalg.norm(np.array(norms), norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total {norm_type}-norm of the gradients is {total}, so they "
                           f"cannot be clipped; pass error_if_nonfinite=False to scale anyway")
    factor = min(max_norm / (total + 1e-6), 1.0) if not math.isnan(total) else math.nan
    if factor < 1.0 or math.isnan(factor):
        for g in grads:
            _scale_in_place(g, factor)
    return Tensor(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clip every gradient element to ``[-clip_value, clip_value]``, in place.

    Examples
    --------
    >>> w = minigrad.tensor([3.0, -4.0, 0.5], requires_grad=True)
    >>> (w * w).sum().backward()                   # grad (6, -8, 1)
    >>> nn.utils.clip_grad_value_([w], 2.0)
    >>> w.grad
    tensor([ 2., -2.,  1.], dtype=float32)
    """
    clip_value = _number(clip_value, "clip_value", allow_inf=True)
    if clip_value < 0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters):
        if g.data.flags.writeable:
            np.clip(g.data, -clip_value, clip_value, out=g.data)
        else:
            g.data = np.clip(g.data, -clip_value, clip_value)
