"""Neural-network building blocks: modules, initialisers and losses.

* :class:`Module` and the layers :class:`Linear`, :class:`Sequential`, :class:`ReLU`,
  :class:`Tanh`, :class:`Sigmoid`, :class:`Dropout`, :class:`CrossEntropyLoss`;
* sequence layers: :class:`Embedding`, :class:`LayerNorm`, :class:`GELU`, :class:`Softmax`,
  :class:`LogSoftmax`, :class:`Identity`, :class:`ModuleList`, :class:`MultiheadAttention`;
* vision layers with PyTorch's names and layouts: :class:`Conv1d`, :class:`Conv2d`,
  :class:`MaxPool1d`, :class:`MaxPool2d`, :class:`AvgPool1d`, :class:`AvgPool2d`,
  :class:`Flatten`, :class:`BatchNorm1d`, :class:`BatchNorm2d`, :class:`LeakyReLU`, and the
  loss modules :class:`MSELoss`, :class:`L1Loss`, :class:`BCEWithLogitsLoss`, :class:`NLLLoss`;
* :mod:`minigrad.nn.functional`: the functional forms with ``torch.nn.functional``'s names
  (``linear``, ``conv2d``, ``max_pool2d``, ``batch_norm``, ``cross_entropy``, ``embedding``,
  ``layer_norm``, ``gelu``, ``softmax``, ``scaled_dot_product_attention``, ...);
* :mod:`minigrad.nn.init`: Glorot/He initialisers drawing from a seeded generator;
* :mod:`minigrad.nn.utils`: ``clip_grad_norm_`` and ``clip_grad_value_``;
* PyTorch-style losses with ``reduction``: :func:`cross_entropy` (integer targets, with
  ``weight``, ``ignore_index`` and ``label_smoothing``), :func:`soft_cross_entropy`
  (probability targets, v1 or v2 label gradients), :func:`nll_loss`, :func:`mse_loss`,
  :func:`l1_loss`, :func:`binary_cross_entropy_with_logits`;
* the fused TensorFlow-named losses they are built on:
  ``sparse_softmax_cross_entropy_with_logits``, ``softmax_cross_entropy_with_logits`` (v1)
  and ``softmax_cross_entropy_with_logits_v2``.
"""

from . import init
from ._xent import (softmax_cross_entropy_with_logits, softmax_cross_entropy_with_logits_v2,
                    sparse_softmax_cross_entropy_with_logits)
from .losses import (binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss,
                     nll_loss, soft_cross_entropy)
from .modules import (CrossEntropyLoss, Dropout, IncompatibleKeys, Linear, Module, ReLU,
                      Sequential, Sigmoid, Tanh)
from ._seq_modules import (GELU, Embedding, Identity, LayerNorm, LogSoftmax, ModuleList,
                           MultiheadAttention, Softmax)
from .layers import (AvgPool1d, AvgPool2d, BatchNorm1d, BatchNorm2d, BCEWithLogitsLoss, Conv1d,
                     Conv2d, Flatten, L1Loss, LeakyReLU, MaxPool1d, MaxPool2d, MSELoss, NLLLoss)
from . import functional, utils
