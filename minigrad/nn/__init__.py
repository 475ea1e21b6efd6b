"""Neural-network building blocks: modules, initialisers and losses.

* :class:`Module` and the layers :class:`Linear`, :class:`Sequential`, :class:`ReLU`,
  :class:`Tanh`, :class:`Sigmoid`, :class:`Dropout`, :class:`CrossEntropyLoss`;
* sequence layers: :class:`Embedding`, :class:`LayerNorm`, :class:`GELU`, :class:`Softmax`,
  :class:`LogSoftmax`, :class:`Identity`, :class:`ModuleList`, :class:`MultiheadAttention`;
* :mod:`minigrad.nn.functional`: the functional forms with ``torch.nn.functional``'s names
  (``embedding``, ``layer_norm``, ``gelu``, ``softmax``, ``log_softmax``,
  ``scaled_dot_product_attention``);
* :mod:`minigrad.nn.init`: Glorot/He initialisers drawing from a seeded generator;
* PyTorch-style losses with ``reduction``: :func:`cross_entropy` (integer targets) and
  :func:`soft_cross_entropy` (probability targets, v1 or v2 label gradients);
* the fused TensorFlow-named losses they are built on:
  ``sparse_softmax_cross_entropy_with_logits``, ``softmax_cross_entropy_with_logits`` (v1)
  and ``softmax_cross_entropy_with_logits_v2``.
"""

from . import init
from ._xent import (softmax_cross_entropy_with_logits, softmax_cross_entropy_with_logits_v2,
                    sparse_softmax_cross_entropy_with_logits)
from .losses import cross_entropy, soft_cross_entropy
from .modules import (CrossEntropyLoss, Dropout, IncompatibleKeys, Linear, Module, ReLU,
                      Sequential, Sigmoid, Tanh)
from . import functional
from ._seq_modules import (GELU, Embedding, Identity, LayerNorm, LogSoftmax, ModuleList,
                           MultiheadAttention, Softmax)
