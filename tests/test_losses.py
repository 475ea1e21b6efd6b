"""The PyTorch-style losses against float64 numpy references, finite differences and PyTorch.

References loop over examples and use ``logaddexp`` forms, so they share nothing with the
fused kernels or the losses' own arithmetic.
"""

import itertools

import numpy as np
import pytest

import minigrad
from minigrad import nn
from minigrad.nn import functional as F

from torch_or_skip import needs_torch, t64, torch


def _rows(x, t):
    """[B, C] rows and [B] targets of PyTorch's layouts (class axis 1; [C] unbatched)."""
    if x.ndim == 1:
        return x[None, :], np.asarray(t).reshape(1)
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]), np.asarray(t).reshape(-1)


def xent_ref(x, t, weight=None, ignore_index=-100, reduction="mean", smoothing=0.0):
    rows, targets = _rows(x, t)
    c = rows.shape[1]
    w = np.ones(c) if weight is None else weight
    losses, total_weight = [], 0.0
    for z, k in zip(rows, targets):
        if k == ignore_index:
            losses.append(0.0)
            continue
        logp = z - np.logaddexp.reduce(z)
        nll = -w[k] * logp[k]
        smooth = -np.sum(w * logp) / c
        losses.append((1 - smoothing) * nll + smoothing * smooth)
        total_weight += w[k]
    losses = np.array(losses)
    if reduction == "none":
        return losses.reshape(np.shape(t))
    return losses.sum() if reduction == "sum" else losses.sum() / total_weight


def nll_ref(logp, t, weight=None, ignore_index=-100, reduction="mean"):
    rows, targets = _rows(logp, t)
    w = np.ones(rows.shape[1]) if weight is None else weight
    losses = np.array([0.0 if k == ignore_index else -w[k] * r[k] for r, k in zip(rows, targets)])
    if reduction == "none":
        return losses.reshape(np.shape(t))
    kept = sum(w[k] for k in targets if k != ignore_index)
    return losses.sum() if reduction == "sum" else losses.sum() / kept


def bce_ref(x, y, weight=None, pos_weight=None):
    """Per element -[p y log s(x) + (1 - y) log(1 - s(x))], logs as -logaddexp(0, -+x)."""
    p = 1.0 if pos_weight is None else pos_weight
    loss = p * y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)
    return loss if weight is None else loss * weight


def reduce_ref(loss, reduction, weight=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if weight is None else loss.sum() / weight.sum()


SHAPES = [((5, 4), (5,)), ((2, 4, 3, 2), (2, 3, 2)), ((4,), ())]
REDUCTIONS = ["mean", "sum", "none"]


def _xent_case(shape, tshape, seed, ignore=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    t = rng.integers(0, shape[1] if len(shape) > 1 else shape[0], size=tshape)
    if ignore and t.ndim:
        t.flat[1] = -100
    return x, t, rng.random(shape[1] if len(shape) > 1 else shape[0]) + 0.5


# -- cross_entropy -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape,tshape", SHAPES)
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.0), (False, 0.2), (True, 0.3)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_reference_and_gradcheck(shape, tshape, weighted, smoothing, reduction):
    x, t, w = _xent_case(shape, tshape, seed=len(shape))
    w = w if weighted else None
    fn = lambda x: nn.cross_entropy(x, t, w, reduction=reduction, label_smoothing=smoothing)  # noqa: E731
    loss = fn(t64(x))
    np.testing.assert_allclose(loss.numpy(), xent_ref(x, t, w, -100, reduction, smoothing), rtol=1e-12, atol=1e-14)
    assert loss.shape == (tshape if reduction == "none" else ())
    assert minigrad.gradcheck(fn, [t64(x)])


@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_second_order_with_ignore_weights_and_smoothing(smoothing):
    x, t, w = _xent_case((2, 3, 2), (2, 2), seed=9)
    for weight in (None, w):
        fn = lambda x: nn.cross_entropy(x, t, weight, label_smoothing=smoothing)  # noqa: E731
        assert minigrad.gradgradcheck(fn, [t64(x)])


def test_cross_entropy_keeps_its_old_call_and_the_fused_kernels_value():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    t = rng.integers(0, 5, 6)
    old = nn.sparse_softmax_cross_entropy_with_logits(labels=t, logits=x).numpy()
    np.testing.assert_array_equal(nn.cross_entropy(x, t, reduction="none").numpy(), old)
    assert nn.cross_entropy(x, t).dtype == np.float32
    assert nn.cross_entropy(x, t, label_smoothing=0.1, ignore_index=int(t[0])).dtype == np.float32


def test_cross_entropy_ignore_index_semantics():
    x = t64(np.array([[1.0, 2.0, 3.0], [np.inf, 0.0, 0.0], [0.5, 0.5, 0.0]]))
    t = np.array([2, 7, 0])
    loss = nn.cross_entropy(x, t, ignore_index=7, reduction="none")
    assert loss.numpy()[1] == 0.0 and np.isfinite(loss.numpy()).all()   # an ignored row is left out
    mean = nn.cross_entropy(x, t, ignore_index=7)
    assert float(mean) == pytest.approx(loss.numpy()[[0, 2]].mean())
    mean.backward()
    np.testing.assert_array_equal(x.grad.numpy()[1], 0.0)      # no NaN from the inf logit
    every = t64(np.zeros((3, 2)))
    nan = nn.cross_entropy(every, np.full(3, -100))
    assert np.isnan(float(nan))                                  # 0 / 0, as PyTorch
    nan.backward()
    np.testing.assert_array_equal(every.grad.numpy(), 0.0)
    assert float(nn.cross_entropy(every, np.full(3, -100), reduction="sum")) == 0.0


def test_cross_entropy_label_smoothing_one_is_the_uniform_target():
    x = np.random.default_rng(1).standard_normal((4, 5))
    logp = x - np.logaddexp.reduce(x, axis=1, keepdims=True)
    assert float(nn.cross_entropy(t64(x), np.arange(4), label_smoothing=1.0)) == pytest.approx(-logp.mean())


def test_cross_entropy_errors():
    x = t64(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"target\[1\] = 4 is out of range: expected a class index in \[0, 4\) or ignore_index=-100"):
        nn.cross_entropy(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"target\[0, 1\] = -1 is out of range"):
        nn.cross_entropy(t64(np.zeros((1, 4, 2))), np.array([[0, -1]]))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        nn.cross_entropy(x, np.array([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight must have one entry per class, shape \(4,\), got \(3,\)"):
        nn.cross_entropy(x, np.array([0, 1, 2]), np.ones(3))
    with pytest.raises(ValueError, match=r"without the class axis \(axis 1\), \(3,\); got input \(3, 4\) and target \(4,\)"):
        nn.cross_entropy(x, np.array([0, 1, 2, 3]))
    with pytest.raises(TypeError, match=r"ignore_index must be an int"):
        nn.cross_entropy(x, np.array([0, 1, 2]), ignore_index=1.0)
    with pytest.raises(TypeError, match=r"soft_cross_entropy"):
        nn.cross_entropy(x, np.zeros(3))
    with pytest.raises(ValueError, match=r"at least one class"):
        nn.cross_entropy(t64(np.zeros((3, 0))), np.zeros(3, np.int64))
    before = x.numpy().copy()
    np.testing.assert_array_equal(x.numpy(), before)


def test_cross_entropy_loss_module():
    x, t, w = _xent_case((5, 4), (5,), seed=2)
    module = nn.CrossEntropyLoss(w, ignore_index=-100, reduction="sum", label_smoothing=0.1)
    assert float(module(t64(x), t)) == pytest.approx(xent_ref(x, t, w, -100, "sum", 0.1))
    assert list(module.state_dict()) == ["weight"]    # a buffer, as in PyTorch
    assert nn.CrossEntropyLoss().state_dict() == {}
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        nn.CrossEntropyLoss(label_smoothing=-0.1)


# -- nll_loss ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,tshape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_reference_and_gradcheck(shape, tshape, weighted, reduction):
    x, t, w = _xent_case(shape, tshape, seed=3)
    w = w if weighted else None
    fn = lambda x: nn.nll_loss(x, t, w, reduction=reduction)  # noqa: E731
    np.testing.assert_allclose(fn(t64(x)).numpy(), nll_ref(x, t, w, -100, reduction), rtol=1e-12)
    assert minigrad.gradcheck(fn, [t64(x)]) and minigrad.gradgradcheck(fn, [t64(x)])


def test_nll_of_log_softmax_is_cross_entropy_and_module():
    x, t, w = _xent_case((2, 5, 3), (2, 3), seed=4)
    logp = t64(x).log_softmax(axis=1)
    np.testing.assert_allclose(nn.nll_loss(logp, t, w, ignore_index=-100).numpy(),
                               nn.cross_entropy(t64(x), t, w).numpy(), rtol=1e-12)
    module = nn.NLLLoss(w, reduction="none")
    np.testing.assert_allclose(module(logp, t).numpy(), nll_ref(logp.numpy(), t, w, reduction="none"))
    assert list(module.state_dict()) == ["weight"]


# -- regression losses -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_regression_losses(name, reduction, weighted):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w = rng.random((3, 4)) if weighted else None
    per = (x - y) ** 2 if name == "mse_loss" else np.abs(x - y)
    fn = lambda x, y: getattr(nn, name)(x, y, reduction=reduction, weight=w)  # noqa: E731
    np.testing.assert_allclose(fn(t64(x), t64(y)).numpy(),
                               reduce_ref(per if w is None else per * w, reduction, w), rtol=1e-12)
    assert minigrad.gradcheck(fn, [t64(x), t64(y)])      # gradients reach the target too
    assert minigrad.gradgradcheck(fn, [t64(x), t64(y)])


def test_regression_loss_modules_dtypes_and_errors():
    x, y = minigrad.tensor([1.0, 2.0, 4.0]), minigrad.tensor([0.0, 2.0, 1.0])
    assert float(nn.MSELoss()(x, y)) == pytest.approx(10 / 3)
    assert float(nn.L1Loss(reduction="sum")(x, y)) == 4.0
    assert nn.MSELoss()(x, y).dtype == np.float32
    x.requires_grad = True
    nn.L1Loss()(x, y).backward()
    np.testing.assert_allclose(x.grad.numpy(), [1 / 3, 0.0, 1 / 3])   # 0 where equal
    with pytest.raises(ValueError, match=r"mse_loss: target must have the input's shape \(3,\), got \(3, 1\)"):
        nn.mse_loss(x, np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"l1_loss: weight must have the input's shape"):
        nn.l1_loss(x, y, weight=np.ones(2))
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        nn.MSELoss(reduction="avg")


# -- binary cross-entropy with logits ----------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted,pos", list(itertools.product([False, True], repeat=2)))
def test_bce_with_logits_matches_reference_and_gradcheck(reduction, weighted, pos):
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((3, 4)) * 3, rng.random((3, 4))
    w = rng.random((1, 4)) + 0.5 if weighted else None
    p = rng.random(4) + 0.5 if pos else None
    fn = lambda x, y: nn.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=p)  # noqa: E731
    per = bce_ref(x, y, w, p)
    np.testing.assert_allclose(fn(t64(x), t64(y)).numpy(), reduce_ref(per, reduction), rtol=1e-12)
    assert minigrad.gradcheck(fn, [t64(x), t64(y)])
    assert minigrad.gradgradcheck(fn, [t64(x), t64(y)])


def test_bce_with_logits_is_stable_at_large_logits():
    x = minigrad.tensor(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32), requires_grad=True)
    y = np.array([1.0, 0.0, 0.5, 1.0, 0.0], np.float32)
    loss = nn.binary_cross_entropy_with_logits(x, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), bce_ref(x.numpy().astype(np.float64), y), rtol=1e-6)
    assert loss.dtype == np.float32
    loss.sum().backward()
    sig = 0.5 * (1 + np.tanh(x.numpy().astype(np.float64) / 2))
    np.testing.assert_allclose(x.grad.numpy(), sig - y, atol=1e-7)   # d/dx = sigmoid(x) - y


def test_bce_module_and_errors():
    module = nn.BCEWithLogitsLoss(pos_weight=np.array([2.0, 1.0]))
    assert list(module.state_dict()) == ["pos_weight"]
    x, y = np.zeros((2, 2)), np.ones((2, 2))
    assert float(module(t64(x), y)) == pytest.approx(1.5 * np.log(2))
    with pytest.raises(ValueError, match=r"target must have the input's shape \(2, 2\), got \(2,\)"):
        nn.binary_cross_entropy_with_logits(t64(x), np.ones(2))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(3,\) does not broadcast"):
        nn.binary_cross_entropy_with_logits(t64(x), y, pos_weight=np.ones(3))


def test_functional_names_are_the_same_functions():
    x, t, _ = _xent_case((3, 4), (3,), seed=7)
    assert float(F.cross_entropy(t64(x), t, ignore_index=-100, label_smoothing=0.1)) == \
        float(nn.cross_entropy(t64(x), t, label_smoothing=0.1))
    assert F.nll_loss is nn.nll_loss and F.mse_loss is nn.mse_loss and F.l1_loss is nn.l1_loss
    assert F.binary_cross_entropy_with_logits is nn.binary_cross_entropy_with_logits


# -- against PyTorch ---------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("shape,tshape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_class_losses_match_torch(shape, tshape, reduction):
    x, t, w = _xent_case(shape, tshape, seed=8)
    tf = torch.nn.functional
    for kw in [dict(), dict(weight=w), dict(label_smoothing=0.3), dict(weight=w, label_smoothing=0.2),
               dict(ignore_index=int(t.flat[-1]) if t.ndim else 0)]:
        tkw = {k: torch.tensor(v) if k == "weight" else v for k, v in kw.items()}
        target = t if "ignore_index" not in kw else np.where(t == -100, 0, t)
        ours, theirs = t64(x), torch.tensor(x, requires_grad=True)
        loss = nn.cross_entropy(ours, target, reduction=reduction, **kw)
        tloss = tf.cross_entropy(theirs, torch.tensor(target), reduction=reduction, **tkw)
        np.testing.assert_allclose(loss.numpy(), tloss.detach().numpy(), rtol=1e-12, atol=1e-14)
        u = np.random.default_rng(0).standard_normal(loss.shape)
        loss.backward(minigrad.tensor(u))
        tloss.backward(torch.tensor(u))
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-14)
        if "label_smoothing" not in kw:
            logp = t64(x).log_softmax(axis=1 if x.ndim > 1 else 0)
            tlogp = torch.tensor(logp.numpy())
            np.testing.assert_allclose(nn.nll_loss(logp, target, reduction=reduction, **kw).numpy(),
                                       tf.nll_loss(tlogp, torch.tensor(target), reduction=reduction, **tkw).numpy(),
                                       rtol=1e-12, atol=1e-14)


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_elementwise_losses_match_torch(reduction):
    rng = np.random.default_rng(10)
    x, y, w = rng.standard_normal((4, 3)) * 20, rng.random((4, 3)), rng.random((4, 3))
    p = rng.random(3) + 0.5
    tf = torch.nn.functional
    T = torch.tensor  # noqa: N806
    pairs = [
        (nn.mse_loss(t64(x), t64(y), reduction=reduction), tf.mse_loss(T(x), T(y), reduction=reduction)),
        (nn.mse_loss(t64(x), t64(y), reduction=reduction, weight=w), tf.mse_loss(T(x), T(y), reduction=reduction, weight=T(w))),
        (nn.l1_loss(t64(x), t64(y), reduction=reduction, weight=w), tf.l1_loss(T(x), T(y), reduction=reduction, weight=T(w))),
        (nn.binary_cross_entropy_with_logits(t64(x), t64(y), w, reduction=reduction, pos_weight=p),
         tf.binary_cross_entropy_with_logits(T(x), T(y), T(w), reduction=reduction, pos_weight=T(p))),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-14)
