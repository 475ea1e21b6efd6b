"""Typing stub for the compiled ``minigrad._elementwise`` (source: kernels/_elementwise.pyx).

IN arrays are C-contiguous native float32 (they may be read-only), OUT arrays writeable;
all of one size. Anything else raises ValueError.
"""
import numpy as np
import numpy.typing as npt

_F32 = npt.NDArray[np.float32]

def tanh_grad_f32(upstream: _F32, x: _F32, out: _F32) -> None: ...
def sigmoid_grad_f32(upstream: _F32, x: _F32, out: _F32) -> None: ...
