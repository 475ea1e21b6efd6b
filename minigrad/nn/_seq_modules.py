"""Modules for sequence models, laid out as PyTorch's so that code and state dicts carry over:
:class:`Embedding`, :class:`LayerNorm`, :class:`GELU`, :class:`Softmax`, :class:`LogSoftmax`,
:class:`Identity`, :class:`ModuleList` and :class:`MultiheadAttention`.

Each forward is the functional form of :mod:`minigrad.nn.functional`; the modules hold the
parameters (initialised from ``rng=`` as PyTorch initialises them, in distribution) and check
shapes.
"""

import math
import numbers

import numpy as np

from .. import _ops
from .._checks import non_negative, positive_int, probability
from .._dtypes import float_dtype, is_float
from .._random import as_generator
from .._tensor import Tensor, _float_tensor, _operand
from . import _attention, functional as F, init
from .modules import Linear, Module

__all__ = ["Identity", "ModuleList", "Embedding", "LayerNorm", "GELU", "Softmax", "LogSoftmax",
           "MultiheadAttention"]


def _param(array, dtype):
    return Tensor(np.asarray(array, dtype=np.float64).astype(dtype), requires_grad=True)


def _float_dtype(dtype):
    return float_dtype(np.float32 if dtype is None else dtype)


class Identity(Module):
    """Returns its input unchanged; any constructor arguments are ignored (as PyTorch's)."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, input):
        return input


class ModuleList(Module):
    """A list of modules whose parameters are named ``<attr>.<i>.<name>``, as PyTorch's.

    Supports indexing (ints, negative ints, slices giving a new ``ModuleList``), assignment and
    deletion by index, ``len``, iteration, ``append``, ``extend``, ``insert``, ``pop`` and ``+=``.
    Like PyTorch's, it has no ``forward``: iterate over it in the owner's ``forward``.

    Examples
    --------
    >>> class Stack(nn.Module):
    ...     def __init__(self):
    ...         self.layers = nn.ModuleList([nn.Linear(4, 4, rng=i) for i in range(2)])
    ...     def forward(self, x):
    ...         for layer in self.layers:
    ...             x = layer(x)
    ...         return x
    >>> list(Stack().state_dict())
    ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']
    """

    def __init__(self, modules=None):
        self._modules = []
        if modules is not None:
            self.extend(modules)

    @staticmethod
    def _checked(module, where):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.{where} takes Modules, got {type(module).__name__}")
        return module

    def named_children(self):
        for i, module in enumerate(self._modules):
            yield str(i), module

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(self._modules[index])
        return self._modules[self._index(index)]

    def __setitem__(self, index, module):
        self._modules[self._index(index)] = self._checked(module, "__setitem__")

    def __delitem__(self, index):
        del self._modules[index if isinstance(index, slice) else self._index(index)]

    def _index(self, index):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"ModuleList indices must be ints or slices, got "
                            f"{type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a ModuleList of {len(self)}")
        return int(index)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(list(self) + list(other))

    def append(self, module):
        """Add ``module`` at the end; return self."""
        self._modules.append(self._checked(module, "append"))
        return self

    def extend(self, modules):
        """Add each module of an iterable at the end; return self."""
        modules = list(modules)
        for m in modules:
            self._checked(m, "extend")
        self._modules.extend(modules)
        return self

    def insert(self, index, module):
        """Insert ``module`` before position ``index`` (as ``list.insert``)."""
        self._modules.insert(index, self._checked(module, "insert"))

    def pop(self, index=-1):
        """Remove and return the module at ``index`` (the last by default)."""
        return self._modules.pop(self._index(index))


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

    ``weight`` has shape ``[num_embeddings, embedding_dim]`` and starts ``N(0, 1)``, as
    PyTorch's. With ``padding_idx``, that row starts at zero and never receives a gradient
    (so it stays zero under plain SGD; weight decay and Adam leave a zero row at zero too).
    The other arguments are those of :func:`minigrad.nn.functional.embedding`.

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    padding_idx : int, optional
        In ``[-num_embeddings, num_embeddings)``; negative values count from the end.
    max_norm, norm_type, scale_grad_by_freq, sparse
        As PyTorch's (``sparse=True`` is refused: gradients are dense).
    rng : None, int or numpy.random.Generator
        Source of the initial weights.
    dtype : float dtype
        float32 by default.

    Examples
    --------
    >>> emb = nn.Embedding(10, 3, padding_idx=0, rng=0)
    >>> emb(np.array([[0, 4], [4, 9]])).shape
    (2, 2, 3)
    >>> emb.weight.data[0]
    array([0., 0., 0.], dtype=float32)
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, *, rng=None,
                 dtype=None, _weight=None):
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.padding_idx = F._padding_index(padding_idx, self.num_embeddings)
        if sparse:
            raise ValueError("sparse=True is not supported: minigrad's gradients are dense arrays")
        self.max_norm = None if max_norm is None else float(non_negative(max_norm, "max_norm"))
        self.norm_type = float(norm_type)
        self.scale_grad_by_freq = bool(scale_grad_by_freq)
        self.sparse = False
        shape = (self.num_embeddings, self.embedding_dim)
        if _weight is None:
            weight = as_generator(rng).standard_normal(shape)
            if self.padding_idx is not None:
                weight[self.padding_idx] = 0.0
            self.weight = _param(weight, _float_dtype(dtype))
        else:
            weight = np.asarray(_weight.data if isinstance(_weight, Tensor) else _weight)
            if weight.shape != shape or not is_float(weight.dtype):
                raise ValueError(f"_weight must be a float array of shape {shape}, got "
                                 f"{weight.dtype} {weight.shape}")
            self.weight = Tensor(weight.astype(_float_dtype(dtype or weight.dtype)),
                                 requires_grad=True)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding holding a copy of ``embeddings`` (2-D), frozen (no gradient) unless
        ``freeze=False``.

        >>> nn.Embedding.from_pretrained(np.eye(3)).weight.requires_grad
        False
        """
        data = np.asarray(embeddings.data if isinstance(embeddings, Tensor) else embeddings)
        if data.ndim != 2:
            raise ValueError(f"embeddings must be 2-D [num_embeddings, embedding_dim], got shape "
                             f"{data.shape}")
        emb = cls(data.shape[0], data.shape[1], padding_idx, max_norm, norm_type,
                  scale_grad_by_freq, sparse, _weight=data)
        emb.weight.requires_grad = not freeze
        return emb

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq)

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        return text


class LayerNorm(Module):
    """Layer normalisation over the last ``len(normalized_shape)`` axes, as PyTorch's.

    ``weight`` (ones) and ``bias`` (zeros) have shape ``normalized_shape`` and exist when
    ``elementwise_affine`` (``bias=False`` drops the bias). See
    :func:`minigrad.nn.functional.layer_norm`.

    Examples
    --------
    >>> ln = nn.LayerNorm(4)
    >>> y = ln(np.arange(8, dtype=np.float32).reshape(2, 4))
    >>> y.numpy().round(3)
    array([[-1.342, -0.447,  0.447,  1.342],
           [-1.342, -0.447,  0.447,  1.342]], dtype=float32)
    >>> sorted(ln.state_dict())
    ['bias', 'weight']
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *,
                 dtype=None):
        self.normalized_shape = F._normalized_shape(normalized_shape)
        self.eps = float(non_negative(eps, "eps"))
        self.elementwise_affine = bool(elementwise_affine)
        dtype = _float_dtype(dtype)
        self.weight = self.bias = None
        if self.elementwise_affine:
            self.weight = _param(np.ones(self.normalized_shape), dtype)
            if bias:
                self.bias = _param(np.zeros(self.normalized_shape), dtype)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GELU(Module):
    """``x * Phi(x)`` as a module; ``approximate="tanh"`` for the tanh form (see
    :func:`minigrad.nn.functional.gelu`)."""

    def __init__(self, approximate="none"):
        if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """Softmax along ``dim`` as a module (``dim=None``: PyTorch's deprecated implicit choice,
    with a warning)."""

    def __init__(self, dim=None):
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Log-softmax along ``dim`` as a module."""

    def forward(self, input):
        return F.log_softmax(input, self.dim)


def _linear_default_init(shape, *, rng=None, dtype=np.float32):
    """PyTorch's ``Linear`` weight init, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, for the
    initialisers' ``(fan_in, fan_out)`` shape."""
    bound = 1.0 / math.sqrt(shape[0])
    return as_generator(rng).uniform(-bound, bound, size=shape).astype(dtype)


class MultiheadAttention(Module):
    """Multi-head attention with PyTorch's parameters, masks and return values.

    Parameters (state-dict names as PyTorch's): ``in_proj_weight [3E, E]`` and ``in_proj_bias
    [3E]`` (query, key, value rows stacked), or ``q_proj_weight [E, E]``, ``k_proj_weight [E,
    kdim]``, ``v_proj_weight [E, vdim]`` when ``kdim``/``vdim`` differ from ``embed_dim``;
    ``out_proj.weight [E, E]``, ``out_proj.bias [E]``; ``bias_k``, ``bias_v [1, 1, E]`` with
    ``add_bias_kv``. Initialised in PyTorch's distributions: Xavier-uniform projections, zero
    biases, ``U(+-1/sqrt(E))`` output weight, ``N(0, 1/E)`` ``bias_k``/``bias_v``.

    Parameters
    ----------
    embed_dim, num_heads : int
        ``embed_dim`` must be divisible by ``num_heads``.
    dropout : float
        Dropout on the attention weights in training mode.
    bias, add_bias_kv, add_zero_attn, kdim, vdim, batch_first
        As PyTorch's.
    rng : None, int or numpy.random.Generator
        Source of the initial weights and of the dropout masks.
    dtype : float dtype
        float32 by default.

    Notes
    -----
    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights or None)``.
    Shapes: ``[L, N, E]`` (``[N, L, E]`` with ``batch_first``) or unbatched ``[L, E]``.
    Masks use PyTorch's MultiheadAttention convention: a **boolean True masks out**
    (the opposite of :func:`~minigrad.nn.functional.scaled_dot_product_attention`); float
    masks are added to the scores. ``attn_mask`` is ``[L, S]`` or ``[N * num_heads, L, S]``,
    ``key_padding_mask`` is ``[N, S]`` (``[S]`` unbatched). ``is_causal`` is PyTorch's hint
    that ``attn_mask`` is the causal mask: it requires ``attn_mask`` (ValueError without),
    and the mask given is what is applied. The weights returned are those after dropout,
    averaged over heads unless ``average_attn_weights=False``. A query that may attend to no
    key gets zero weights and the output projection's bias (PyTorch returns NaN there when
    ``need_weights=True``). ``Transformer``-style fast paths and nested tensors do not exist.

    Examples
    --------
    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True, rng=0)
    >>> x = np.random.default_rng(1).standard_normal((3, 5, 8)).astype(np.float32)
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape
    ((3, 5, 8), (3, 5, 5))
    >>> [name for name, _ in mha.named_parameters()]
    ['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, *, rng=None,
                 dtype=None):
        self.embed_dim = positive_int(embed_dim, "embed_dim")
        self.num_heads = positive_int(num_heads, "num_heads")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got embed_dim="
                             f"{embed_dim} and num_heads={num_heads}")
        self.head_dim = self.embed_dim // self.num_heads
        self.kdim = self.embed_dim if kdim is None else positive_int(kdim, "kdim")
        self.vdim = self.embed_dim if vdim is None else positive_int(vdim, "vdim")
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.dropout = probability(dropout, "dropout")
        self.batch_first = bool(batch_first)
        self.add_zero_attn = bool(add_zero_attn)
        dtype = _float_dtype(dtype)
        self._rng = rng = as_generator(rng)
        E = self.embed_dim
        self.in_proj_weight = self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        if self._qkv_same_embed_dim:  # Xavier-uniform over [3E, E]: fan_in E, fan_out 3E
            self.in_proj_weight = _param(init.glorot_uniform((E, 3 * E), rng=rng).T, dtype)
        else:
            self.q_proj_weight = _param(init.glorot_uniform((E, E), rng=rng).T, dtype)
            self.k_proj_weight = _param(init.glorot_uniform((self.kdim, E), rng=rng).T, dtype)
            self.v_proj_weight = _param(init.glorot_uniform((self.vdim, E), rng=rng).T, dtype)
        self.in_proj_bias = _param(np.zeros(3 * E), dtype) if bias else None
        self.bias_k = self.bias_v = None
        if add_bias_kv:  # PyTorch's xavier_normal_ on [1, 1, E]: fan_in = fan_out = E
            self.bias_k = _param(rng.normal(0.0, 1 / math.sqrt(E), (1, 1, E)), dtype)
            self.bias_v = _param(rng.normal(0.0, 1 / math.sqrt(E), (1, 1, E)), dtype)
        self.out_proj = Linear(E, E, bias=bias, rng=rng, dtype=dtype,
                               weight_init=_linear_default_init)

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")

    # -- forward ----------------------------------------------------------------------------
    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        self_attention = query is key and key is value
        q, k, v = _operand(query), _operand(key), _operand(value)
        batched = self._check_inputs(q, k, v)
        if is_causal and attn_mask is None:
            raise ValueError("is_causal=True is a hint that attn_mask is the causal mask, as in "
                             "PyTorch: pass the mask as attn_mask too (for example "
                             "np.triu(np.ones((L, L), bool), 1))")
        # internally batch first: [N, L, E]
        if not batched:
            q, k, v = (_ops.expand_dims(t, 0) for t in (q, k, v))
        elif not self.batch_first:
            q, k, v = (t.swapaxes(0, 1) for t in (q, k, v))
        N, L, E = q.shape
        S = k.shape[1]
        H, hd = self.num_heads, self.head_dim

        qp, kp, vp = self._in_projection(q, k, v, self_attention and self._qkv_same_embed_dim)
        allowed, bias = self._masks(attn_mask, key_padding_mask, N, L, S, q.dtype, batched)
        extra = 0
        if self.bias_k is not None:
            kp = _ops.concatenate([kp, _ops.broadcast_to(self.bias_k, (N, 1, E))], axis=1)
            vp = _ops.concatenate([vp, _ops.broadcast_to(self.bias_v, (N, 1, E))], axis=1)
            extra += 1
        heads = lambda t: t.reshape(N, t.shape[1], H, hd).transpose(0, 2, 1, 3)  # noqa: E731
        qh, kh, vh = heads(qp), heads(kp), heads(vp)
        if self.add_zero_attn:
            zeros = Tensor._wrap(np.zeros((N, H, 1, hd), dtype=kh.dtype))
            kh = _ops.concatenate([kh, zeros], axis=2)
            vh = _ops.concatenate([vh, zeros], axis=2)
            extra += 1
        allowed, bias = _pad_key_columns(allowed, bias, extra)

        out, weights = _attention.attention(
            qh, kh, vh, allowed=allowed, bias=bias, scale=1.0 / math.sqrt(hd),
            dropout_p=self.dropout if self.training else 0.0, rng=self._rng)
        out = self.out_proj(out.transpose(0, 2, 1, 3).reshape(N, L, E))
        if not batched:
            out = out.reshape(L, E)
        elif not self.batch_first:
            out = out.swapaxes(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        return out, (weights if batched else weights.reshape(weights.shape[1:]))

    def _check_inputs(self, q, k, v):
        if q.ndim not in (2, 3):
            raise ValueError(f"query must be 3-D (batched) or 2-D (unbatched), got shape {q.shape}")
        if k.ndim != q.ndim or v.ndim != q.ndim:
            raise ValueError(f"query, key and value must have the same number of dimensions, "
                             f"got shapes {q.shape}, {k.shape} and {v.shape}")
        for name, t in (("query", q), ("key", k), ("value", v)):
            _float_tensor(t, name)
        for name, t, dim in (("query", q, self.embed_dim), ("key", k, self.kdim),
                             ("value", v, self.vdim)):
            if t.shape[-1] != dim:
                raise ValueError(f"{name} must have {dim} features (last axis), got shape {t.shape}")
        batch_axis = 0 if self.batch_first else 1
        if k.shape[:-1] != v.shape[:-1]:
            raise ValueError(f"key and value must have the same sequence and batch sizes, got "
                             f"shapes {k.shape} and {v.shape}")
        if q.ndim == 3 and q.shape[batch_axis] != k.shape[batch_axis]:
            raise ValueError(f"query and key must have the same batch size (axis {batch_axis}), "
                             f"got shapes {q.shape} and {k.shape}")
        return q.ndim == 3

    def _in_projection(self, q, k, v, packed):
        """The query, key and value projections ``[N, *, E]``; one matmul when ``packed``."""
        E, b = self.embed_dim, self.in_proj_bias
        if packed:
            qkv = _ops.linear(q, self.in_proj_weight, b)
            return qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            weights = (w[:E], w[E:2 * E], w[2 * E:])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        return tuple(_ops.linear(x, wi, None if b is None else b[i * E:(i + 1) * E])
                     for i, (x, wi) in enumerate(zip((q, k, v), weights)))

    def _masks(self, attn_mask, key_padding_mask, N, L, S, dtype, batched):
        """``(allowed, bias)`` broadcastable to ``[N, H, L, S]`` from PyTorch-style masks."""
        H = self.num_heads
        allowed, biases = None, []
        for name, mask in (("attn_mask", attn_mask), ("key_padding_mask", key_padding_mask)):
            if mask is None:
                continue
            data, boolean = _attention._mask_array(mask, name)
            if name == "attn_mask":
                if data.shape == (L, S):
                    shape = (L, S)
                elif data.shape == (N * H, L, S):
                    shape = (N, H, L, S)
                else:
                    raise ValueError(f"attn_mask must have shape (L, S) = {(L, S)} or "
                                     f"(N * num_heads, L, S) = {(N * H, L, S)}, got {data.shape}")
            else:
                expected = (N, S) if batched else (S,)
                if data.shape != expected:
                    raise ValueError(f"key_padding_mask must have shape {expected} (batch, source "
                                     f"length), got {data.shape}")
                shape = (N, 1, 1, S)
            if boolean:  # True masks out
                keep = ~data.reshape(shape)
                allowed = keep if allowed is None else allowed & keep
            else:
                t = mask.astype(dtype) if isinstance(mask, Tensor) else \
                    Tensor._wrap(data.astype(dtype, copy=False))
                biases.append(t.reshape(shape))
        bias = None
        for t in biases:
            bias = t if bias is None else bias + t
        return allowed, bias


def _pad_key_columns(allowed, bias, extra):
    """Masks widened by ``extra`` key columns that every query may attend to (``bias_k``,
    ``add_zero_attn``)."""
    if not extra:
        return allowed, bias
    if allowed is not None:
        pad = np.ones(allowed.shape[:-1] + (extra,), dtype=bool)
        allowed = np.concatenate([allowed, pad], axis=-1)
    if bias is not None:
        zeros = Tensor._wrap(np.zeros(bias.shape[:-1] + (extra,), dtype=bias.dtype))
        bias = _ops.concatenate([bias, zeros], axis=-1)
    return allowed, bias
