"""minigrad: a small, readable autograd library with a fused Cython softmax cross-entropy.

>>> import minigrad
>>> x = minigrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> loss = (x.exp() * x).sum()
>>> loss.backward()
>>> x.grad            # d/dx x e^x = (1 + x) e^x
tensor([ 5.436564, 22.167168, 80.34215 ], dtype=float32)
"""

from ._autograd import (GradientTape, Op, enable_grad, grad, is_grad_enabled, no_grad,
                        stop_gradient)
from ._graph import graph_string, to_dot
from ._ops import (abs, add, astype, broadcast_to, clip, concatenate, divide, exp, expand_dims,
                   getitem, linear, log, log_softmax, logsumexp, matmul, max, maximum, mean, min, minimum,
                   multiply, negative, power, relu, reshape, sigmoid, softmax, sqrt, squeeze,
                   stack, subtract, sum, sum_to, swapaxes, tanh, transpose, where)
from ._tensor import Tensor, as_tensor, from_dlpack, from_numpy, tensor
from .gradcheck import GradcheckError, check_grads, gradcheck, gradgradcheck

__version__ = "0.1.0"

from . import nn, raw_ops  # noqa: E402  (nn builds on the core above)
from .nn._special import erf, erfc  # noqa: E402  (numpy has no erf; fdlibm's, vectorized)
from ._config import get_num_threads, set_num_threads, show_config  # noqa: E402
from . import data, optim  # noqa: E402  (training utilities: minibatches, optimizers)
from . import testing  # noqa: E402  (assert_gradients_close, for tests of your own ops)
