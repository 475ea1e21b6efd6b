"""minigrad.nn: modules, parameter discovery, state dicts, initialisers, dropout, losses."""

import numpy as np
import pytest

import minigrad
from minigrad import nn
from minigrad.nn import init


# -- initialisers ----------------------------------------------------------------------------
INITS = [init.glorot_uniform, init.glorot_normal, init.he_uniform, init.he_normal]


@pytest.mark.parametrize("fn", INITS)
def test_init_same_seed_same_bits_and_generator_equals_seed(fn):
    a = fn((30, 20), rng=7)
    b = fn((30, 20), rng=7)
    c = fn((30, 20), rng=np.random.default_rng(7))
    assert a.dtype == np.float32 and a.shape == (30, 20)
    assert a.tobytes() == b.tobytes() == c.tobytes()
    assert fn((30, 20), rng=8).tobytes() != a.tobytes()


@pytest.mark.parametrize("fn", INITS)
def test_init_float64_is_the_draw_float32_rounds(fn):
    # Drawn in float64 then cast: the float32 result is the rounding of the float64 one.
    np.testing.assert_array_equal(fn((5, 4), rng=3, dtype=np.float32),
                                  fn((5, 4), rng=3, dtype=np.float64).astype(np.float32))


def test_init_scales_match_the_formulas():
    n_in, n_out = 400, 300
    big = (n_in, n_out)
    limit = np.sqrt(6 / (n_in + n_out))
    w = init.glorot_uniform(big, rng=0, dtype=np.float64)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert np.std(w) == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert np.std(init.glorot_normal(big, rng=0)) == pytest.approx(np.sqrt(2 / (n_in + n_out)), rel=0.02)
    assert np.std(init.glorot_normal(big, gain=2.0, rng=0)) == pytest.approx(2 * np.sqrt(2 / (n_in + n_out)), rel=0.02)
    w = init.he_uniform(big, rng=0, dtype=np.float64)
    assert np.abs(w).max() <= np.sqrt(6 / n_in)
    assert np.std(w) == pytest.approx(np.sqrt(2 / n_in), rel=0.02)
    assert np.std(init.he_normal(big, rng=0)) == pytest.approx(np.sqrt(2 / n_in), rel=0.02)


def test_fans():
    assert init.fans((64, 10)) == (64, 10)
    assert init.fans((7,)) == (7, 7)
    assert init.fans((3, 3, 16, 32)) == (9 * 16, 9 * 32)
    with pytest.raises(ValueError, match=r"0-d"):
        init.fans(())


def test_zeros():
    z = init.zeros((2, 3), dtype=np.float64)
    assert z.dtype == np.float64 and not z.any()


def test_init_errors():
    with pytest.raises(TypeError, match=r"rng must be None, an int seed or a numpy.random.Generator, got str"):
        init.he_uniform((2, 2), rng="seed")
    with pytest.raises(TypeError, match=r"got float 1.5"):
        init.he_uniform((2, 2), rng=1.5)
    with pytest.raises(ValueError, match=r"non-negative.*-1"):
        init.he_uniform((2, 2), rng=-1)
    with pytest.raises(ValueError, match=r"shape\[1\] must be >= 0, got -2"):
        init.glorot_uniform((3, -2), rng=0)
    with pytest.raises(TypeError, match=r"shape\[0\] must be an int, got float"):
        init.glorot_uniform((3.0, 2), rng=0)
    with pytest.raises(TypeError, match=r"floating-point dtype, got int64"):
        init.he_normal((2, 2), rng=0, dtype=np.int64)
    with pytest.raises(ValueError, match=r"gain must be > 0, got -1"):
        init.glorot_normal((2, 2), gain=-1, rng=0)


# -- modules ---------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, rng):
        self.layers = [nn.Linear(3, 4, rng=rng), nn.Linear(4, 4, rng=rng)]
        self.heads = {"a": nn.Linear(4, 2, rng=rng), "b": nn.Linear(4, 1, bias=False, rng=rng)}
        self.scale = minigrad.tensor(np.ones(4, dtype=np.float32), requires_grad=True)
        self.running = minigrad.tensor(np.zeros(4, dtype=np.float32))  # a buffer
        self.note = "not a tensor"

    def forward(self, x):
        for layer in self.layers:
            x = layer(x).relu()
        x = x * self.scale
        return self.heads["a"](x), self.heads["b"](x)


def test_parameter_discovery_names_and_order():
    # A module's own tensors first, then each submodule's, as in PyTorch.
    m = Block(0)
    assert [name for name, _ in m.named_parameters()] == [
        "scale", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "heads.a.weight",
        "heads.a.bias", "heads.b.weight",
    ]
    assert [name for name, _ in m.named_tensors()][:2] == ["scale", "running"]
    assert "running" in m.state_dict() and all(p.requires_grad for p in m.parameters())
    assert len(m.modules()) == 5


def test_shared_parameter_is_listed_once():
    shared = nn.Linear(2, 2, rng=0)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_linear_forward_matches_numpy_and_backward_reaches_parameters():
    layer = nn.Linear(3, 2, rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((5, 3))
    y = layer(x)
    np.testing.assert_allclose(y.numpy(), x @ layer.weight.data.T + layer.bias.data)
    y.sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), np.ones((2, 1)) * x.sum(0)[None, :])
    assert layer.weight.shape == (2, 3)  # (out_features, in_features), as in PyTorch
    np.testing.assert_allclose(layer.bias.grad.numpy(), [5.0, 5.0])
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


def test_linear_gradcheck():
    layer = nn.Linear(3, 2, rng=0, dtype=np.float64)
    x = minigrad.tensor(np.random.default_rng(1).standard_normal((4, 3)), requires_grad=True)
    minigrad.gradcheck(lambda x, w, b: (x @ w.T + b).tanh(), [x, layer.weight, layer.bias])


def test_linear_same_seed_same_weights_and_errors():
    assert nn.Linear(5, 3, rng=4).weight.data.tobytes() == nn.Linear(5, 3, rng=4).weight.data.tobytes()
    assert nn.Linear(5, 3, rng=4).bias.data.tolist() == [0, 0, 0]
    assert nn.Linear(5, 3, bias=False, rng=0).bias is None
    with pytest.raises(ValueError, match=r"in_features must be >= 1, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match=r"out_features must be an int, got float 2.5"):
        nn.Linear(3, 2.5)
    with pytest.raises(ValueError, match=r"last axis has size 5, got shape \(2, 4\)"):
        nn.Linear(5, 3, rng=0)(np.zeros((2, 4), dtype=np.float32))


def test_sequential_and_activations():
    model = nn.Sequential(nn.Linear(4, 8, rng=0), nn.Tanh(), nn.Linear(8, 3, rng=1), nn.Sigmoid())
    x = np.random.default_rng(2).standard_normal((6, 4)).astype(np.float32)
    h = np.tanh(x @ model[0].weight.data.T + model[0].bias.data)
    expected = 1 / (1 + np.exp(-(h @ model[2].weight.data.T + model[2].bias.data)))
    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5)
    assert len(model) == 4 and isinstance(model[1:], nn.Sequential) and len(model[1:]) == 3
    assert nn.ReLU()(minigrad.tensor([-1.0, 2.0])).numpy().tolist() == [0.0, 2.0]
    assert "Linear(in_features=4, out_features=8, bias=True)" in repr(model)
    with pytest.raises(TypeError, match=r"argument 1 is function"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_module_without_forward_and_without_super_init():
    class Bare(nn.Module):
        def __init__(self):
            self.w = minigrad.tensor([1.0], requires_grad=True)

    m = Bare()
    assert m.training and m.eval() is m and not m.training
    with pytest.raises(NotImplementedError, match="Bare must define forward"):
        m(1)


def test_train_eval_recurse():
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Dropout(0.5, rng=0))
    model.eval()
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


# -- dropout ---------------------------------------------------------------------------------
def test_dropout_is_inverted_seeded_and_identity_in_eval():
    x = minigrad.tensor(np.ones((200, 50), dtype=np.float32), requires_grad=True)
    y = nn.Dropout(0.3, rng=5)(x)
    values = np.unique(y.numpy())
    np.testing.assert_allclose(values, [0.0, 1 / 0.7], rtol=1e-6)
    assert np.mean(y.numpy() == 0) == pytest.approx(0.3, abs=0.02)
    assert y.numpy().tobytes() == nn.Dropout(0.3, rng=5)(x).numpy().tobytes()
    y.sum().backward()  # the gradient is masked and scaled like the values
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())
    drop = nn.Dropout(0.3, rng=5).eval()
    assert drop(x) is x


def test_dropout_successive_calls_draw_new_masks_and_edge_probabilities():
    drop = nn.Dropout(0.5, rng=0)
    x = np.ones(64, dtype=np.float32)
    assert drop(x).numpy().tobytes() != drop(x).numpy().tobytes()
    assert not nn.Dropout(1.0, rng=0)(x).numpy().any()
    assert nn.Dropout(0.0, rng=0)(x).numpy() is x          # an array is taken as is, not copied
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(TypeError, match=r"got str"):
        nn.Dropout("0.5")


# -- state dicts -----------------------------------------------------------------------------
def test_state_dict_round_trip_keeps_tensor_identity():
    a, b = Block(0), Block(1)
    weight = b.layers[0].weight
    assert b.load_state_dict(a.state_dict()) == ([], [])
    assert b.layers[0].weight is weight
    for (name, ta), (_, tb) in zip(a.named_tensors(), b.named_tensors()):
        np.testing.assert_array_equal(ta.numpy(), tb.numpy(), err_msg=name)
    state = a.state_dict()
    state["scale"][:] = 42  # a copy: editing it leaves the module alone
    assert a.scale.numpy()[0] == 1


def test_state_dict_save_load(tmp_path):
    a, b = Block(0), Block(1)
    a.save(tmp_path / "block.npz")
    assert b.load(tmp_path / "block.npz") is b
    x = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    for ya, yb in zip(a(x), b(x)):
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_load_state_dict_errors_and_non_strict():
    a = nn.Linear(3, 2, rng=0)
    with pytest.raises(ValueError, match=r"missing keys \['bias'\], unexpected keys \['extra'\]"):
        a.load_state_dict({"weight": np.zeros((2, 3)), "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"state_dict\['weight'\] has shape \(3, 2\), but the module's tensor has shape \(2, 3\)"):
        a.load_state_dict({"weight": np.zeros((3, 2)), "bias": np.zeros(2)})
    with pytest.raises(TypeError, match=r"must be numeric"):
        a.load_state_dict({"weight": np.array([["a"] * 3] * 2), "bias": np.zeros(2)})
    with pytest.raises(TypeError, match=r"mapping"):
        a.load_state_dict([("weight", np.zeros((2, 3)))])
    before = a.weight.numpy().copy()
    # Nothing changes when a later key fails.
    with pytest.raises(ValueError):
        a.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(5)})
    np.testing.assert_array_equal(a.weight.numpy(), before)
    result = a.load_state_dict({"weight": np.ones((2, 3)), "other": 1}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    assert a.weight.dtype == np.float32 and (a.weight.numpy() == 1).all()


# -- losses ----------------------------------------------------------------------------------
def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_reductions_and_gradient(reduction):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, size=5)
    per_example = -_log_softmax(z)[np.arange(5), y]
    expected = {"mean": per_example.mean(), "sum": per_example.sum(), "none": per_example}[reduction]
    logits = minigrad.tensor(z, requires_grad=True)
    loss = nn.cross_entropy(logits, y, reduction=reduction)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    minigrad.gradcheck(lambda z: nn.cross_entropy(z, y, reduction=reduction), [logits])
    assert nn.CrossEntropyLoss(reduction=reduction)(logits, y).numpy().tolist() == loss.numpy().tolist()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_soft_cross_entropy_v1_v2(reduction):
    rng = np.random.default_rng(1)
    z = minigrad.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    p = minigrad.tensor(np.exp(_log_softmax(rng.standard_normal((3, 4)))), requires_grad=True)
    per_example = -(p.numpy() * _log_softmax(z.numpy())).sum(axis=1)
    expected = {"mean": per_example.mean(), "sum": per_example.sum(), "none": per_example}[reduction]
    for version in ("v1", "v2"):
        loss = nn.soft_cross_entropy(z, p, reduction=reduction, label_gradients=version)
        np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)
    # v1: the targets are constants; v2: they get -log_softmax(logits) per unit of upstream.
    g1 = minigrad.grad(nn.soft_cross_entropy(z, p, label_gradients="v1").sum(), [z, p], allow_unused=True)
    g2 = minigrad.grad(nn.soft_cross_entropy(z, p, label_gradients="v2").sum(), [z, p])
    assert g1[1] is None
    np.testing.assert_allclose(g2[1].numpy(), -_log_softmax(z.numpy()) / 3, rtol=1e-12)
    np.testing.assert_allclose(g1[0].numpy(), g2[0].numpy())
    minigrad.gradcheck(lambda z, p: nn.soft_cross_entropy(z, p, reduction=reduction, label_gradients="v2"), [z, p])


def test_loss_errors_name_the_valid_values():
    z = minigrad.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"reduction must be one of 'mean', 'sum', 'none', got 'avg'"):
        nn.cross_entropy(z, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"got None"):
        nn.soft_cross_entropy(z, np.full((2, 3), 1 / 3), reduction=None)
    with pytest.raises(ValueError, match=r"label_gradients must be 'v1' or 'v2', got 'v3'"):
        nn.soft_cross_entropy(z, np.full((2, 3), 1 / 3), label_gradients="v3")
    with pytest.raises(ValueError, match=r"reduction"):
        nn.CrossEntropyLoss(reduction="average")
    with pytest.raises(TypeError, match=r"weight .*string 'mean'.*reduction= by keyword"):
        nn.CrossEntropyLoss("mean")  # PyTorch's first positional argument is weight


def test_nn_reexports_the_fused_functions():
    for name in ("softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
                 "sparse_softmax_cross_entropy_with_logits"):
        assert callable(getattr(nn, name))


# -- the docstrings' examples ----------------------------------------------------------------
@pytest.mark.parametrize("module", ["minigrad.nn.init", "minigrad.nn.modules", "minigrad.nn.losses",
                                    "minigrad.optim", "minigrad.data", "minigrad._random"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(module)
    result = doctest.testmod(mod, extraglobs=dict(np=np, minigrad=minigrad, nn=nn),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_linear_draws_with_fan_in_equal_to_in_features():
    # the weight is stored (out, in) but drawn (in, out): He's std must follow in_features
    w = nn.Linear(400, 10, rng=0, dtype=np.float64, weight_init=init.he_normal).weight.data
    assert w.shape == (10, 400)
    assert abs(w.std() / np.sqrt(2 / 400) - 1) < 0.1


def test_cached_intermediates_are_not_parameters():
    class Keeps(nn.Module):
        def __init__(self):
            self.lin = nn.Linear(2, 2, rng=0)

        def forward(self, x):
            self.h = self.lin(x)
            return self.h

    m = Keeps()
    m(np.ones((1, 2), np.float32))
    assert [n for n, _ in m.named_parameters()] == ["lin.weight", "lin.bias"]
    assert sorted(m.state_dict()) == ["lin.bias", "lin.weight"]


def test_save_and_load_round_trips_any_names_and_paths(tmp_path):
    class Odd(nn.Module):
        def __init__(self):
            self.file = minigrad.tensor([1.0, 2.0], requires_grad=True)
            self.allow_pickle = minigrad.tensor([3.0], requires_grad=True)

    a = Odd()
    a.save(tmp_path / "odd")                # no suffix: .npz is added, as numpy does
    b = Odd()
    b.file.data[:] = 0
    b.load(tmp_path / "odd")
    np.testing.assert_array_equal(b.file.data, [1.0, 2.0])
    assert (tmp_path / "odd.npz").exists() and not list(tmp_path.glob("*.tmp*"))
    with pytest.warns(UserWarning, match=r"missing keys \['bias'\]"):
        nn.Linear(2, 2, rng=0).load(_saved_weight_only(tmp_path), strict=False)


def _saved_weight_only(tmp_path):
    class WeightOnly(nn.Module):
        def __init__(self):
            self.weight = minigrad.tensor(np.zeros((2, 2), np.float32), requires_grad=True)

    path = tmp_path / "weight.npz"
    WeightOnly().save(path)
    return path


def test_load_state_dict_refuses_lossy_casts():
    m = nn.Linear(2, 1, rng=0, dtype=np.float16)
    before = m.weight.data.copy()
    with pytest.raises(ValueError, match=r"state_dict\['weight'\].*float16"):
        m.load_state_dict({"weight": np.array([[1e6, 0.0]]), "bias": np.zeros(1)})
    with pytest.raises(TypeError, match=r"state_dict\['bias'\].*float64.*int"):
        class Counter(nn.Module):
            def __init__(self):
                self.bias = minigrad.tensor(np.zeros(1, np.int64))
        Counter().load_state_dict({"bias": np.array([3.7])})
    np.testing.assert_array_equal(m.weight.data, before)


def test_dropout_refuses_integer_input():
    with pytest.raises(TypeError, match="float"):
        nn.Dropout(0.3, rng=0)(np.full(8, 10))
    with pytest.raises(TypeError, match="float"):          # in evaluation as well
        nn.Dropout(0.3, rng=0).eval()(np.full(8, 10))


def test_cross_entropy_with_float_targets_points_to_soft_cross_entropy():
    with pytest.raises(TypeError, match="soft_cross_entropy"):
        nn.cross_entropy(np.zeros((2, 3), np.float32), np.array([0.0, 1.0]))


def test_bad_gain_and_bad_weight_init_are_clear_errors():
    with pytest.raises(TypeError, match="gain must be a real number, got str"):
        init.glorot_uniform((2, 3), gain="2", rng=0)
    with pytest.raises(ValueError, match="gain must be finite"):
        init.glorot_uniform((2, 3), gain=float("inf"), rng=0)
    with pytest.raises(ValueError, match=r"returned an array of shape \(3, 2\)"):
        nn.Linear(2, 3, weight_init=lambda shape, rng, dtype: np.zeros(shape[::-1], dtype))
