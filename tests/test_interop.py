"""Zero-copy doors in and out: from_numpy, as_tensor, DLPack (numpy always, PyTorch if present)."""

import numpy as np
import pytest

import minigrad
from minigrad import _dtypes


def test_from_numpy_shares_memory_both_ways_and_can_require_grad():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = minigrad.from_numpy(a, requires_grad=True)
    assert t.numpy() is a and t.requires_grad
    a[0, 0] = 7.0
    assert t.data[0, 0] == 7.0
    (t * t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), 2 * a)


@pytest.mark.parametrize("bad, error, match", [
    ([1.0, 2.0], TypeError, "expects a numpy.ndarray, got list"),
    (np.array(["a"]), TypeError, "dtype <U1 is not supported"),
    (np.zeros(2, ">f4"), ValueError, "byte order"),
    (np.zeros(2, np.int64), TypeError, "requires_grad=True needs a float"),
])
def test_from_numpy_refuses_what_it_cannot_share(bad, error, match):
    with pytest.raises(error, match=match):
        minigrad.from_numpy(bad, requires_grad=bad is not None and getattr(bad, "dtype", None) == np.int64)


def test_as_tensor_copies_only_when_it_must():
    a = np.ones(3, np.float64)
    assert minigrad.as_tensor(a).numpy() is a
    t = minigrad.tensor([1.0, 2.0])
    assert minigrad.as_tensor(t) is t and minigrad.as_tensor(t, dtype="float32") is t
    assert minigrad.as_tensor(a, dtype="float32").dtype == np.float32
    assert not np.shares_memory(minigrad.as_tensor(a, dtype="float32").numpy(), a)
    assert minigrad.as_tensor([1.0]).dtype == np.float32           # Python floats: float32
    big = np.zeros(2, ">f8")
    assert minigrad.as_tensor(big).dtype.isnative                   # converted, not shared
    # a cast of a tensor that requires grad stays on the graph
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    minigrad.as_tensor(x, dtype="float64").sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_numpy_dlpack_round_trip_shares_memory():
    a = np.arange(4.0)
    t = minigrad.from_numpy(a)
    b = np.from_dlpack(t)
    assert np.shares_memory(a, b)
    back = minigrad.from_dlpack(b)
    assert np.shares_memory(back.numpy(), a)
    assert t.__dlpack_device__() == a.__dlpack_device__()


def test_bfloat16_dlpack_export_says_what_to_do():
    if _dtypes.bfloat16 is None:
        pytest.skip("ml_dtypes is not installed")
    with pytest.raises(BufferError, match="view"):
        np.from_dlpack(minigrad.tensor([1.0], dtype="bfloat16"))


def test_pytorch_takes_a_tensor_without_a_copy():
    torch = pytest.importorskip("torch")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = minigrad.from_numpy(a)
    pt = torch.from_dlpack(t)
    a[1, 2] = -1.0
    assert pt[1, 2].item() == -1.0 and pt.dtype == torch.float32
    m = minigrad.from_dlpack(torch.arange(3.0))
    assert m.dtype == np.float32 and m.numpy().tolist() == [0.0, 1.0, 2.0]
