"""Embedding, LayerNorm, Softmax/LogSoftmax, Identity and ModuleList: forward values and
gradients against float64 numpy references, gradcheck/gradgradcheck, errors, state dicts, and
PyTorch's values and state-dict layouts where torch is installed."""

import doctest
import importlib
import warnings

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad import nn

RNG = np.random.default_rng(11)


def f64(shape, requires_grad=True, scale=1.0):
    return mg.tensor(RNG.standard_normal(shape) * scale, dtype="float64", requires_grad=requires_grad)


# -- linear ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (3,), (2, 1, 2, 3), (0, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_numpy_and_gradchecks(shape, with_bias):
    x, w = f64(shape), f64((4, 3))
    b = f64((4,)) if with_bias else None
    out = F.linear(x, w, b)
    expected = np.einsum("...i,oi->...o", x.numpy(), w.numpy()) + (b.numpy() if with_bias else 0)
    assert out.shape == shape[:-1] + (4,)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-13, atol=1e-14)
    if x.size:
        args = [x, w] + ([b] if with_bias else [])
        assert mg.gradcheck(lambda *a: F.linear(*a), args)
        assert mg.gradgradcheck(lambda *a: F.linear(*a) ** 2, args)


def test_linear_dtypes_errors_and_module():
    x = np.ones((2, 3), np.float32)
    w = mg.tensor(np.ones((4, 3), np.float32), requires_grad=True)
    assert F.linear(x, w).dtype == np.float32
    assert F.linear(x.astype(np.float64), w).dtype == np.float64  # numpy's promotion
    with pytest.raises(ValueError, match=r"last axis of x must have size in_features = 3, got x of shape \(2, 4\)"):
        F.linear(np.ones((2, 4)), w)
    with pytest.raises(ValueError, match=r"weight must be 2-D"):
        F.linear(x, np.ones(3))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\), got \(3,\)"):
        F.linear(x, w, np.ones(3, np.float32))
    layer = nn.Linear(3, 2, rng=0, dtype=np.float64)
    y = layer(np.ones((2, 5, 3)))  # leading axes flattened into one product
    np.testing.assert_allclose(y.numpy(), np.ones((2, 5, 3)) @ layer.weight.numpy().T + layer.bias.numpy())


def test_row_reductions_match_numpy():
    from minigrad.nn._rows import row_max_array, row_sum, row_sum_array
    for shape in ((3, 4, 8), (2, 40), (5, 1), (0, 3), (2, 0)):
        a = RNG.standard_normal(shape)
        np.testing.assert_allclose(row_sum_array(a), a.sum(axis=-1, keepdims=True), rtol=1e-13, atol=1e-15)
        if shape[-1]:
            np.testing.assert_array_equal(row_max_array(a), a.max(axis=-1, keepdims=True))
    a = np.array([[1.0, np.nan, 3.0], [-np.inf, -np.inf, -np.inf]])
    m = row_max_array(a)
    assert np.isnan(m[0, 0]) and m[1, 0] == -np.inf
    t = f64((2, 3, 4))
    np.testing.assert_allclose(row_sum(t, 2).numpy(), t.numpy().sum(axis=(1, 2), keepdims=True), rtol=1e-13)
    assert mg.gradgradcheck(lambda t: row_sum(t * t, 2), [t])


# -- Embedding --------------------------------------------------------------------------------
def embedding_grad_reference(indices, upstream, num, padding_idx=None, by_freq=False):
    """d sum(upstream * out) / d weight, one looked-up row at a time."""
    grad = np.zeros((num, upstream.shape[-1]))
    flat, rows = indices.reshape(-1), upstream.reshape(-1, upstream.shape[-1])
    counts = {i: int(np.sum(flat == i)) for i in set(flat.tolist())}
    for i, row in zip(flat, rows):
        if i == padding_idx:
            continue
        grad[i] += row / (counts[i] if by_freq else 1)
    return grad


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 2), (0, 3)])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
@pytest.mark.parametrize("by_freq", [False, True])
def test_embedding_forward_and_gradient_match_the_reference(shape, padding_idx, by_freq):
    num, dim = 6, 3
    weight = f64((num, dim))
    indices = RNG.integers(0, num, size=shape)
    out = F.embedding(indices, weight, padding_idx=padding_idx, scale_grad_by_freq=by_freq)
    np.testing.assert_array_equal(out.numpy(), weight.numpy()[indices])
    upstream = RNG.standard_normal(out.shape)
    (g,) = mg.grad(out, weight, upstream)
    pad = None if padding_idx is None else padding_idx % num
    np.testing.assert_allclose(g.numpy(), embedding_grad_reference(indices, upstream, num, pad, by_freq),
                               rtol=1e-14, atol=1e-15)


def test_embedding_gradcheck_and_second_order_on_the_rows_it_leaves_alone():
    weight = f64((5, 2))
    idx = np.array([[0, 3, 3], [1, 0, 4]])
    square = lambda w: (F.embedding(idx, w) ** 2 * F.embedding(idx[::-1], w)).sum(axis=-1)  # noqa: E731
    assert mg.gradcheck(square, [weight]) and mg.gradgradcheck(square, [weight])
    # The padded and frequency-scaled gradient is not the derivative (on purpose), but it is
    # linear in the upstream, and its VJP (a scaled gather) must be its exact transpose.
    def padded_gradient(u):
        w = mg.tensor(weight.numpy(), requires_grad=True)
        out = F.embedding(idx, w, padding_idx=3, scale_grad_by_freq=True)
        return mg.grad(out, w, u, create_graph=True)[0]
    assert mg.gradcheck(padded_gradient, [f64((2, 3, 2))])


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    emb = nn.Embedding(10, 4, padding_idx=-2, rng=0)
    assert emb.padding_idx == 8 and not emb.weight.data[8].any() and emb.weight.data[7].any()
    out = emb(np.array([[8, 1, 8], [1, 2, 3]]))
    np.testing.assert_array_equal(out.numpy()[0, 0], np.zeros(4, np.float32))
    (out * out).sum().backward()
    assert not emb.weight.grad.numpy()[8].any() and emb.weight.grad.numpy()[1].any()
    assert emb.weight.dtype == np.float32 and out.dtype == np.float32


def test_embedding_init_is_standard_normal_seeded_and_reproducible():
    w = nn.Embedding(2000, 50, rng=3, dtype=np.float64).weight.data
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
    assert nn.Embedding(5, 3, rng=4).weight.data.tobytes() == nn.Embedding(5, 3, rng=4).weight.data.tobytes()
    assert nn.Embedding(5, 3, rng=4).weight.data.tobytes() != nn.Embedding(5, 3, rng=5).weight.data.tobytes()


def test_embedding_max_norm_renormalises_used_rows_in_place():
    weight = mg.tensor(np.array([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]]), requires_grad=True)
    out = F.embedding(np.array([0, 1, 0]), weight, max_norm=1.0)
    np.testing.assert_allclose(weight.numpy()[0], [0.6, 0.8], rtol=1e-6)  # 5 -> 1
    np.testing.assert_array_equal(weight.numpy()[1:], [[0.3, 0.4], [6.0, 8.0]])  # short or unused
    np.testing.assert_allclose(out.numpy()[0], [0.6, 0.8], rtol=1e-6)
    F.embedding(np.array([2]), weight, max_norm=2.0, norm_type=1.0)
    np.testing.assert_allclose(weight.numpy()[2], [6 / 7, 8 / 7], rtol=1e-6)


def test_embedding_from_pretrained_and_repr():
    table = np.arange(6.0).reshape(3, 2)
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad and frozen.parameters() == []
    assert list(frozen.state_dict()) == ["weight"]  # a buffer, still saved
    trainable = nn.Embedding.from_pretrained(mg.tensor(table), freeze=False, padding_idx=0)
    assert trainable.weight.requires_grad and trainable.weight.dtype == np.float64
    np.testing.assert_array_equal(trainable.weight.numpy(), table)  # pretrained rows kept as given
    assert repr(trainable) == "Embedding(3, 2, padding_idx=0)"


def test_embedding_errors():
    weight = f64((4, 2))
    with pytest.raises(ValueError, match=r"input\[1, 0\] = 4 is out of range: expected an index in \[0, 4\)"):
        F.embedding(np.array([[0, 1], [4, 0]]), weight)
    with pytest.raises(ValueError, match=r"input\[0\] = -1 is out of range"):
        F.embedding(np.array([-1]), weight)
    with pytest.raises(TypeError, match=r"integer indices, got dtype float64"):
        F.embedding(np.array([0.0]), weight)
    with pytest.raises(ValueError, match=r"sparse=True is not supported"):
        nn.Embedding(4, 2, sparse=True)
    with pytest.raises(ValueError, match=r"padding_idx must be within \[-4, 4\).*got 4"):
        nn.Embedding(4, 2, padding_idx=4)
    with pytest.raises(TypeError, match=r"padding_idx must be an int or None, got float"):
        F.embedding(np.array([0]), weight, padding_idx=1.0)
    with pytest.raises(TypeError, match=r"weight must be a 2-D floating-point Tensor"):
        F.embedding(np.array([0]), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"num_embeddings must be >= 1, got 0"):
        nn.Embedding(0, 3)
    before = weight.numpy().copy()
    with pytest.raises(ValueError):
        F.embedding(np.array([9]), weight, max_norm=0.1)
    np.testing.assert_array_equal(weight.numpy(), before)  # a bad call changes nothing


# -- LayerNorm --------------------------------------------------------------------------------
def layer_norm_reference(x, n_axes, weight=None, bias=None, eps=1e-5):
    """Row by row over the flattened normalised axes, in float64."""
    lead = x.shape[:x.ndim - n_axes]
    rows = x.reshape(-1, int(np.prod(x.shape[x.ndim - n_axes:]))).astype(np.float64)
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        mu = sum(row) / len(row)
        var = sum((v - mu) ** 2 for v in row) / len(row)
        out[i] = (row - mu) / np.sqrt(var + eps)
    out = out.reshape(x.shape)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out.reshape(lead + x.shape[len(lead):])


@pytest.mark.parametrize("shape,normalized", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((6,), 6),
                                              ((2, 1, 3), (3,)), ((0, 3), (3,))])
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm_matches_the_reference_and_gradchecks(shape, normalized, affine):
    x = f64(shape, scale=3.0)
    ns = (normalized,) if isinstance(normalized, int) else normalized
    w = f64(ns) if affine != "none" else None
    b = f64(ns) if affine == "both" else None
    fn = lambda *args: F.layer_norm(args[0], normalized, *args[1:], eps=1e-3)  # noqa: E731
    args = [t for t in (x, w, b) if t is not None]
    np.testing.assert_allclose(fn(*args).numpy(),
                               layer_norm_reference(x.numpy(), len(ns), None if w is None else w.numpy(),
                                                    None if b is None else b.numpy(), eps=1e-3),
                               rtol=1e-12, atol=1e-12)
    if x.size:
        assert mg.gradcheck(fn, args)
        assert mg.gradgradcheck(fn, args)


def test_layer_norm_third_order_and_gradient_reference():
    x, w = f64((3, 4)), f64((4,))
    upstream = RNG.standard_normal((3, 4))
    (gx, gw) = mg.grad(F.layer_norm(x, 4, w), [x, w], upstream)
    xn = x.numpy()
    xhat = (xn - xn.mean(1, keepdims=True)) / np.sqrt(xn.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(gw.numpy(), (upstream * xhat).sum(0), rtol=1e-12)
    gh = upstream * w.numpy()  # the textbook formula for gx
    expected = (gh - gh.mean(1, keepdims=True) - xhat * (gh * xhat).mean(1, keepdims=True)) \
        / np.sqrt(xn.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(gx.numpy(), expected, rtol=1e-10, atol=1e-12)

    def hessian_diag_sum(x):
        (g,) = mg.grad((F.layer_norm(x, 4, w) ** 3).sum(), x, create_graph=True)
        (h,) = mg.grad((g * g).sum(), x, create_graph=True)
        return h
    assert mg.gradcheck(hessian_diag_sum, [x], atol=1e-4)


def test_layer_norm_float32_large_offset_and_constant_rows():
    x = (RNG.standard_normal((5, 64)) + 1e4).astype(np.float32)
    y = nn.LayerNorm(64)(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), layer_norm_reference(x, 1), atol=2e-3)  # two-pass variance
    flat = nn.LayerNorm(3)(mg.tensor(np.full((2, 3), 7.0), requires_grad=True))  # var 0: eps
    np.testing.assert_array_equal(flat.numpy(), np.zeros((2, 3)))


def test_layer_norm_module_parameters_and_errors():
    ln = nn.LayerNorm((2, 3), eps=1e-6)
    assert ln.weight.shape == ln.bias.shape == (2, 3)
    assert ln.weight.numpy().tolist() == [[1, 1, 1]] * 2 and not ln.bias.numpy().any()
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    assert nn.LayerNorm(4, bias=False).bias is None
    assert nn.LayerNorm(4, elementwise_affine=False).parameters() == []
    assert repr(ln) == "LayerNorm((2, 3), eps=1e-06, elementwise_affine=True)"
    with pytest.raises(ValueError, match=r"last dimensions are \(2, 3\), got shape \(3, 2\)"):
        ln(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"weight must have shape normalized_shape \(3,\), got \(4,\)"):
        F.layer_norm(np.zeros((2, 3)), 3, weight=np.ones(4))
    with pytest.raises(ValueError, match=r"normalized_shape must be positive ints"):
        nn.LayerNorm((2, 0))
    with pytest.raises(ValueError, match=r"eps must be >= 0, got -1"):
        nn.LayerNorm(3, eps=-1)
    with pytest.raises(TypeError, match=r"input must be a floating-point tensor, got dtype int64"):
        F.layer_norm(np.zeros((2, 3), dtype=np.int64), 3)


# -- Softmax, LogSoftmax, Identity -----------------------------------------------------------
def test_softmax_modules_and_functions():
    x = f64((2, 3, 4))
    for dim in (0, 1, -1):
        e = np.exp(x.numpy() - x.numpy().max(axis=dim, keepdims=True))
        ref = e / e.sum(axis=dim, keepdims=True)
        np.testing.assert_allclose(nn.Softmax(dim)(x).numpy(), ref, rtol=1e-14)
        np.testing.assert_allclose(F.log_softmax(x, dim).numpy(), np.log(ref), rtol=1e-13)
        np.testing.assert_allclose(nn.LogSoftmax(dim=dim)(x).numpy(), np.log(ref), rtol=1e-13)
    assert mg.gradgradcheck(lambda x: F.softmax(x, dim=1), [f64((2, 3))])
    half = F.softmax(np.zeros(4, np.float16), dim=0, dtype=np.float32)
    assert half.dtype == np.float32 and half.numpy().tolist() == [0.25] * 4
    with pytest.warns(UserWarning, match=r"Implicit dimension choice for softmax.*dim=0"):
        y = nn.Softmax()(x)  # PyTorch's legacy rule: dim 0 for 0-, 1- and 3-D inputs
    np.testing.assert_allclose(y.numpy().sum(axis=0), 1.0)
    with pytest.warns(UserWarning, match=r"dim=1"):
        F.log_softmax(f64((2, 3)))
    with pytest.raises(ValueError, match=r"dim 3 is out of range for a tensor of 3 dimensions"):
        F.softmax(x, 3)
    with pytest.raises(TypeError, match=r"dim must be an int, got float"):
        F.softmax(x, 1.0)
    assert repr(nn.LogSoftmax(1)) == "LogSoftmax(dim=1)"
    assert F.softmax(mg.tensor(3.0), dim=0).item() == 1.0


def test_identity():
    x = f64((2,))
    assert nn.Identity(54, unused="yes")(x) is x and nn.Identity().parameters() == []


# -- ModuleList -------------------------------------------------------------------------------
class Tower(nn.Module):
    def __init__(self):
        self.embed = nn.Embedding(5, 4, rng=0)
        self.layers = nn.ModuleList([nn.Linear(4, 4, rng=i) for i in range(3)])
        self.norm = nn.LayerNorm(4)

    def forward(self, idx):
        x = self.embed(idx)
        for layer in self.layers:
            x = layer(x).relu()
        return self.norm(x)


def test_module_list_names_parameters_like_pytorch():
    model = Tower()
    assert [n for n, _ in model.named_parameters()] == [
        "embed.weight", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
        "layers.2.weight", "layers.2.bias", "norm.weight", "norm.bias"]
    model(np.array([[1, 2]])).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    clone = Tower()
    clone.load_state_dict(model.state_dict())
    assert "(layers): ModuleList(\n    (0): Linear(" in repr(model)


def test_module_list_list_operations():
    a, b, c, d = (nn.Linear(2, 2, rng=i) for i in range(4))
    ml = nn.ModuleList([a, b])
    assert len(ml) == 2 and ml[0] is a and ml[-1] is b and list(ml) == [a, b]
    assert ml.append(c) is ml and list(ml) == [a, b, c]
    ml.insert(1, d)
    assert list(ml) == [a, d, b, c]
    assert isinstance(ml[1:3], nn.ModuleList) and list(ml[1:3]) == [d, b]
    ml[0] = c
    assert ml[0] is c
    del ml[0]
    assert list(ml) == [d, b, c]
    assert ml.pop() is c and list(ml) == [d, b]
    ml += [a]
    assert list(ml) == [d, b, a] and list(ml + nn.ModuleList([c])) == [d, b, a, c]
    assert ml.extend(nn.ModuleList([c])) is ml and len(ml) == 4
    del ml[1:3]
    assert list(ml) == [d, c]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert len(nn.ModuleList()) == 0
    with pytest.raises(TypeError, match=r"ModuleList.append takes Modules, got function"):
        ml.append(lambda x: x)
    with pytest.raises(TypeError, match=r"ModuleList.extend takes Modules, got int"):
        nn.ModuleList([a, 3])
    assert len(ml) == 2  # the failed calls changed nothing
    with pytest.raises(IndexError, match=r"index 2 is out of range for a ModuleList of 2"):
        ml[2]
    with pytest.raises(TypeError, match=r"indices must be ints or slices, got str"):
        ml["0"]
    with pytest.raises(NotImplementedError):
        ml(1)


def test_docstring_examples():
    for name in ("minigrad.nn.functional", "minigrad.nn._seq_modules", "minigrad.nn._special",
                 "minigrad.nn._attention"):
        module = importlib.import_module(name)
        result = doctest.testmod(module, extraglobs=dict(np=np, minigrad=mg, nn=nn, F=F),
                                 optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0, name


# -- PyTorch: same weights, same outputs and gradients; same state-dict layouts ----------------
def _torch():
    return pytest.importorskip("torch")


def test_state_dict_keys_and_shapes_match_pytorch():
    torch = _torch()
    pairs = [
        (nn.Embedding(7, 3, padding_idx=1), torch.nn.Embedding(7, 3, padding_idx=1)),
        (nn.LayerNorm((2, 5)), torch.nn.LayerNorm((2, 5))),
        (nn.LayerNorm(5, bias=False), torch.nn.LayerNorm(5, bias=False)),
        (nn.LayerNorm(5, elementwise_affine=False), torch.nn.LayerNorm(5, elementwise_affine=False)),
        (nn.ModuleList([nn.Linear(3, 4), nn.LayerNorm(4), nn.GELU(), nn.Identity()]),
         torch.nn.ModuleList([torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.GELU(),
                              torch.nn.Identity()])),
    ]
    for ours, theirs in pairs:
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


def test_linear_matches_pytorch():
    torch = _torch()
    x, w, b = RNG.standard_normal((2, 3, 5)), RNG.standard_normal((4, 5)), RNG.standard_normal(4)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    upstream = RNG.standard_normal((2, 3, 4))
    t_out = torch.nn.functional.linear(tx, tw, tb)
    t_out.backward(torch.tensor(upstream))
    mx, mw, mb = (mg.tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.linear(mx, mw, mb)
    out.backward(upstream)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-13)
    for ours, theirs in ((mx, tx), (mw, tw), (mb, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12)


def test_embedding_and_layer_norm_match_pytorch_given_the_same_weights():
    torch = _torch()
    t_emb = torch.nn.Embedding(9, 4, padding_idx=3, scale_grad_by_freq=True).double()
    emb = nn.Embedding(9, 4, padding_idx=3, scale_grad_by_freq=True, dtype=np.float64)
    emb.load_state_dict({k: v.detach().numpy() for k, v in t_emb.state_dict().items()})
    t_ln = torch.nn.LayerNorm((4,), eps=1e-4).double()
    with torch.no_grad():
        t_ln.weight.uniform_(0.5, 1.5)
        t_ln.bias.uniform_(-0.5, 0.5)
    ln = nn.LayerNorm(4, eps=1e-4, dtype=np.float64)
    ln.load_state_dict({k: v.detach().numpy() for k, v in t_ln.state_dict().items()})
    idx = RNG.integers(0, 9, size=(3, 5))
    upstream = RNG.standard_normal((3, 5, 4))
    t_out = torch.nn.functional.gelu(t_ln(t_emb(torch.tensor(idx))))
    t_out.backward(torch.tensor(upstream))
    out = F.gelu(ln(emb(idx)))
    out.backward(upstream)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-13)
    for ours, theirs in ((emb.weight, t_emb.weight), (ln.weight, t_ln.weight), (ln.bias, t_ln.bias)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-11, atol=1e-13)


def test_softmax_matches_pytorch_implicit_dim():
    torch = _torch()
    for shape in ((4,), (2, 3), (2, 3, 4), (2, 3, 4, 5)):
        x = RNG.standard_normal(shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = nn.Softmax()(mg.tensor(x)).numpy()
            theirs = torch.nn.Softmax()(torch.tensor(x)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-13)
