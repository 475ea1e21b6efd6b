"""Scaled dot-product attention: the attention weights as one primitive, the rest in ops.

``AttentionWeights`` computes ``softmax(q k^T * scale + bias)`` over the keys, with masked
positions excluded, in one op (one batched matmul, the mask, a max-shifted softmax in place). Its
VJP is written in minigrad ops, so second derivatives work::

    gs = p * (g - sum(g * p, keys))       # through the softmax
    gq = (gs * scale) @ k,  gk = (gs * scale)^T @ q,  gbias = gs

A query row with no key allowed to attend (every position masked, or every score ``-inf``)
gets weights of zero, hence an output of zero and no gradient: the "safe softmax" that
PyTorch's ``scaled_dot_product_attention`` also uses on CPU (PyTorch's ``MultiheadAttention``
with ``need_weights=True`` returns NaN there instead; minigrad gives zeros in both).
"""

import math

import numpy as np

from .. import _ops
from .._checks import probability
from .._autograd import Op
from .._dtypes import is_float
from .._random import as_generator
from .._tensor import Tensor, _float_tensor
from ._rows import row_max_array, row_sum, row_sum_array

__all__ = ["AttentionWeights", "attention", "scaled_dot_product_attention"]


class AttentionWeights(Op):
    """``softmax(q @ k^T * scale + bias)`` over the last axis; ``allowed`` (bool, broadcast to
    the scores) marks the positions that take part, ``bias`` is an optional third input."""

    def __init__(self, scale, allowed):
        self.scale, self.allowed = scale, allowed

    def forward(self, q, k, bias=None):
        s = np.matmul(q, np.swapaxes(k, -1, -2))
        s *= np.asarray(self.scale, dtype=s.dtype)
        if bias is not None:
            s = s + bias
        if self.allowed is not None:  # -inf added where not allowed: an additive mask of the
            # mask's own shape is far cheaper than np.where over the scores
            s = s + np.where(self.allowed, 0, -np.inf).astype(s.dtype)
        m = row_max_array(s)
        m[~np.isfinite(m)] = 0  # a row of only -inf keeps its -inf scores: exp gives zeros
        s -= m
        e = np.exp(s, out=s)
        total = row_sum_array(e)
        total[total == 0] = 1  # safe softmax: a row with nothing to attend to stays zero
        e /= total
        return e.astype(np.result_type(q, k), copy=False)

    def vjp(self, g, out):
        q, k = self.inputs[0], self.inputs[1]
        gs = out * (g - row_sum(g * out))
        gq = gk = None
        if self.needs[0] or self.needs[1]:
            gs_scaled = gs * self.scale
            if self.needs[0]:
                gq = gs_scaled @ k
            if self.needs[1]:
                gk = gs_scaled.swapaxes(-1, -2) @ q
        return (gq, gk) if len(self.inputs) == 2 else (gq, gk, gs)


def _mask_array(mask, name):
    """A mask's ndarray and whether it is boolean; TypeError for other dtypes."""
    data = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if data.dtype == np.bool_:
        return data, True
    if not is_float(data.dtype):
        raise TypeError(f"{name} must be a boolean or floating-point mask, got dtype {data.dtype}")
    return data, False


def _dropout(p, rate, rng):
    """Inverted dropout of the weights ``p`` (the mask and its scale are constants)."""
    keep = as_generator(rng).random(p.shape) >= rate
    scale = keep / (1.0 - rate) if rate < 1.0 else np.zeros(p.shape)
    return p * scale.astype(p.dtype)


def attention(q, k, v, *, allowed=None, bias=None, scale=None, dropout_p=0.0, rng=None):
    """``(output, weights)`` for checked tensors: ``allowed`` a bool ndarray or None, ``bias``
    a float tensor or None (both broadcast against the scores ``[..., L, S]``)."""
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    inputs = (q, k) if bias is None else (q, k, bias)
    p = AttentionWeights.apply(*inputs, scale=float(scale), allowed=allowed)
    if dropout_p > 0.0:
        p = _dropout(p, dropout_p, rng)
    return p @ v, p


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False, *, rng=None):
    """Attention of ``query`` over ``key``/``value``: ``softmax(q k^T * scale + mask) @ v``.

    Follows ``torch.nn.functional.scaled_dot_product_attention``: shapes ``query [..., L, E]``,
    ``key [..., S, E]``, ``value [..., S, Ev]``, output ``[..., L, Ev]``; leading axes
    broadcast.

    Parameters
    ----------
    query, key, value : Tensor or array_like
        Float tensors of one dtype.
    attn_mask : array_like or Tensor, optional
        Broadcastable to ``[..., L, S]``. A **boolean** mask says which positions **take part**
        (True) — the opposite of ``MultiheadAttention``'s masks. A **float** mask is added to
        the scores (``-inf`` excludes); it may require grad, and an ndarray is cast to the
        query's dtype.
    dropout_p : float
        Dropout on the attention weights, always applied when > 0 (pass 0.0 in evaluation,
        as with PyTorch).
    is_causal : bool
        Query ``i`` attends to keys ``j <= i`` (the mask is aligned top-left when ``L != S``,
        as PyTorch's). Cannot be combined with ``attn_mask`` (ValueError), as PyTorch
        documents; PyTorch 2.13's CPU kernel silently combines the two instead.
    scale : float, optional
        Multiplies the scores; ``1 / sqrt(E)`` by default.
    enable_gqa : bool
        Grouped-query attention: ``key``/``value`` may have fewer heads (axis -3) than
        ``query``, a divisor of its count; each is shared by consecutive query heads.
    rng : None, int or numpy.random.Generator
        Source of the dropout masks (minigrad draws nothing from global state).

    Returns
    -------
    Tensor
        ``[..., L, Ev]``. A query row that may attend to no key gives zeros (see the module
        notes): PyTorch does the same on CPU.

    Examples
    --------
    >>> q = k = v = minigrad.tensor(np.eye(2))
    >>> out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    >>> out.numpy().round(3)            # row 0 sees only key 0; row 1 both, key 1 more
    array([[1.  , 0.  ],
           [0.33, 0.67]])
    """
    q, k, v = _float_tensor(query, "query"), _float_tensor(key, "key"), _float_tensor(value, "value")
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.ndim < 2:
            raise ValueError(f"{name} must have at least 2 dimensions [..., seq, features], "
                             f"got shape {t.shape}")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"query, key and value must have one dtype, got {q.dtype}, {k.dtype} "
                        f"and {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"query and key must have the same last dimension (features), got "
                         f"shapes {q.shape} and {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"key and value must have the same sequence length (axis -2), got "
                         f"shapes {k.shape} and {v.shape}")
    dropout_p = probability(dropout_p, "dropout_p")
    if scale is not None:
        scale = float(scale)
    if enable_gqa:
        k, v = _repeat_kv_heads(q, k, "key"), _repeat_kv_heads(q, v, "value")
    L, S = q.shape[-2], k.shape[-2]
    allowed = bias = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError("is_causal=True cannot be combined with attn_mask: give one of them "
                             "(fold the causal mask into attn_mask to use both)")
        allowed = np.tri(L, S, dtype=bool)
    if attn_mask is not None:
        data, boolean = _mask_array(attn_mask, "attn_mask")
        try:
            np.broadcast_shapes(data.shape, q.shape[:-2] + (L, S))
        except ValueError:
            raise ValueError(f"attn_mask of shape {data.shape} does not broadcast to the "
                             f"attention scores' shape {q.shape[:-2] + (L, S)}") from None
        if boolean:
            allowed = data
        else:
            bias = attn_mask.astype(q.dtype) if isinstance(attn_mask, Tensor) else \
                Tensor._wrap(data.astype(q.dtype, copy=False))
    out, _ = attention(q, k, v, allowed=allowed, bias=bias, scale=scale, dropout_p=dropout_p,
                       rng=rng)
    return out


def _repeat_kv_heads(q, t, name):
    """``t`` with each head (axis -3) repeated for the query heads that share it."""
    if q.ndim < 3 or t.ndim < 3:
        raise ValueError(f"enable_gqa needs a heads axis (-3) on query and {name}, got shapes "
                         f"{q.shape} and {t.shape}")
    hq, hk = q.shape[-3], t.shape[-3]
    if hq % hk:
        raise ValueError(f"enable_gqa: query has {hq} heads, not a multiple of {name}'s {hk}")
    if hq == hk:
        return t
    lead, (s, e) = t.shape[:-3], t.shape[-2:]
    wide = _ops.broadcast_to(_ops.expand_dims(t, -3), lead + (hk, hq // hk, s, e))
    return wide.reshape(lead + (hq, s, e))
