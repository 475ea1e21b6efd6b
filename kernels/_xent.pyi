"""Typing stub for the compiled ``minigrad._xent`` (source: kernels/_xent.pyx).

Each kernel writes the caller-allocated OUT arrays ``loss[batch]``,
``backprop[batch, classes]`` (``scale * (softmax - labels)``; ``scale=1`` is the unscaled
result bit for bit) and ``stats[batch, 2]`` (float64: each row's max logit and
``log(sum_k exp(logits_k - max))``, NaN for both in a row whose log-sum-exp is not finite);
IN arrays are C-contiguous and may be read-only. float16 and bfloat16 arrays are passed as
their ``uint16`` bit patterns; they are computed in float32 and rounded once (nearest even).
Sparse kernels return the first row whose label is outside ``[0, classes)``, or -1; that
row's loss and stats are NaN and its backprop is not written.
Arguments of the wrong dtype, layout or shape, or read-only outputs, raise ValueError.
"""
import numpy as np
import numpy.typing as npt

OPENMP_VERSION: int
COMPILE_ARGS: str
TARGET_CLONES: bool

_F64 = npt.NDArray[np.float64]

def dense_f32(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.float32],
              loss: npt.NDArray[np.float32], backprop: npt.NDArray[np.float32],
              stats: _F64, num_threads: int, scale: float = 1.0) -> None: ...
def dense_f64(logits: npt.NDArray[np.float64], labels: npt.NDArray[np.float64],
              loss: npt.NDArray[np.float64], backprop: npt.NDArray[np.float64],
              stats: _F64, num_threads: int, scale: float = 1.0) -> None: ...
def dense_f16(logits: npt.NDArray[np.uint16], labels: npt.NDArray[np.uint16],
              loss: npt.NDArray[np.uint16], backprop: npt.NDArray[np.uint16],
              stats: _F64, num_threads: int, scale: float = 1.0) -> None: ...
def dense_bf16(logits: npt.NDArray[np.uint16], labels: npt.NDArray[np.uint16],
               loss: npt.NDArray[np.uint16], backprop: npt.NDArray[np.uint16],
               stats: _F64, num_threads: int, scale: float = 1.0) -> None: ...
def sparse_f32_i32(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int32],
                   loss: npt.NDArray[np.float32], backprop: npt.NDArray[np.float32],
                   stats: _F64, num_threads: int, scale: float = 1.0) -> int: ...
def sparse_f32_i64(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64],
                   loss: npt.NDArray[np.float32], backprop: npt.NDArray[np.float32],
                   stats: _F64, num_threads: int, scale: float = 1.0) -> int: ...
def sparse_f64_i32(logits: npt.NDArray[np.float64], labels: npt.NDArray[np.int32],
                   loss: npt.NDArray[np.float64], backprop: npt.NDArray[np.float64],
                   stats: _F64, num_threads: int, scale: float = 1.0) -> int: ...
def sparse_f64_i64(logits: npt.NDArray[np.float64], labels: npt.NDArray[np.int64],
                   loss: npt.NDArray[np.float64], backprop: npt.NDArray[np.float64],
                   stats: _F64, num_threads: int, scale: float = 1.0) -> int: ...
def sparse_f16_i32(logits: npt.NDArray[np.uint16], labels: npt.NDArray[np.int32],
                   loss: npt.NDArray[np.uint16], backprop: npt.NDArray[np.uint16],
                   stats: _F64, num_threads: int, scale: float = 1.0) -> int: ...
def sparse_f16_i64(logits: npt.NDArray[np.uint16], labels: npt.NDArray[np.int64],
                   loss: npt.NDArray[np.uint16], backprop: npt.NDArray[np.uint16],
                   stats: _F64, num_threads: int, scale: float = 1.0) -> int: ...
def sparse_bf16_i32(logits: npt.NDArray[np.uint16], labels: npt.NDArray[np.int32],
                    loss: npt.NDArray[np.uint16], backprop: npt.NDArray[np.uint16],
                    stats: _F64, num_threads: int, scale: float = 1.0) -> int: ...
def sparse_bf16_i64(logits: npt.NDArray[np.uint16], labels: npt.NDArray[np.int64],
                    loss: npt.NDArray[np.uint16], backprop: npt.NDArray[np.uint16],
                    stats: _F64, num_threads: int, scale: float = 1.0) -> int: ...

def empty_outputs(logits: npt.NDArray) -> tuple[npt.NDArray, npt.NDArray, _F64]: ...

# test shims for the C helpers
def half_to_float(bits: npt.NDArray[np.uint16], out: npt.NDArray[np.float32]) -> None: ...
def float_to_half(values: npt.NDArray[np.float32], out: npt.NDArray[np.uint16]) -> None: ...
def bf16_to_float(bits: npt.NDArray[np.uint16], out: npt.NDArray[np.float32]) -> None: ...
def float_to_bf16(values: npt.NDArray[np.float32], out: npt.NDArray[np.uint16]) -> None: ...
def exp_f32(x: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None: ...
def exp_f64(x: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None: ...
def log_f64(x: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None: ...
