"""What the layer and loss tests share: float64 leaves, and PyTorch when it is installed."""

import numpy as np
import pytest

import minigrad

try:
    import torch
except ImportError:  # the comparisons with PyTorch skip; everything else runs
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def t64(a, grad=True):
    """A float64 tensor of ``a`` that requires grad (for gradcheck's float64 differences)."""
    return minigrad.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)
