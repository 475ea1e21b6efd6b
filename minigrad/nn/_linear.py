"""``x @ weight.T + bias`` as one primitive (PyTorch's ``addmm``), its VJP in minigrad ops.

As two ops (a matmul, then a broadcast add) the product before the bias stays alive until
backward (the add's node holds it), one extra activation-sized array per layer, and the
backward walks two nodes with an un-broadcasting sum. Fused, the bias is added in place and the
VJP is three products of the 2-D operands::

    gx = g @ W,   gW = g^T @ x,   gb = sum(g, axis=0)

Inputs with more than two dimensions are flattened to ``[-1, in_features]`` first by the
caller: numpy's stacked matmul against a transposed weight view falls back to a slow loop
(measured 9x slower at ``[64, 8, 64] @ [64, 192]``), and so would its gradients.
"""

import numpy as np

from .._autograd import Op

__all__ = ["LinearOp"]


class LinearOp(Op):
    """``x @ w.T (+ b)`` for 2-D ``x [N, in]``, ``w [out, in]``, optional ``b [out]``."""

    def forward(self, x, w, b=None):
        y = np.matmul(x, w.T)
        if b is not None:
            if np.result_type(y, b) == y.dtype:
                y += b
            else:
                y = y + b
        return y

    def vjp(self, g, out):
        x, w = self.inputs[0], self.inputs[1]
        gx = g @ w if self.needs[0] else None
        gw = g.T @ x if self.needs[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (g.sum(axis=0) if self.needs[2] else None)
