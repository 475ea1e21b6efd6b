"""Gradient clipping, RMSprop and the new schedules against written-out references (and PyTorch)."""

import math

import numpy as np
import pytest

import minigrad
from minigrad import nn, optim
from minigrad.nn.utils import clip_grad_norm_, clip_grad_value_

from torch_or_skip import needs_torch, torch


def _params_with_grads(seed=0, scale=1.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = [minigrad.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
              for s in [(3, 4), (4,), (2, 2, 2)]]
    for p in params:
        p.grad = minigrad.tensor((rng.standard_normal(p.shape) * scale).astype(dtype))
    params.append(minigrad.tensor(np.zeros(2, dtype), requires_grad=True))   # no grad: skipped
    return params


# -- clipping ---------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf, "inf"])
def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm(norm_type):
    params = _params_with_grads(scale=5.0)
    flat = np.concatenate([p.grad.numpy().ravel().astype(np.float64) for p in params[:3]])
    p = math.inf if norm_type == "inf" else norm_type
    expected = np.abs(flat).max() if p == math.inf else (np.abs(flat) ** p).sum() ** (1 / p)
    before = [q.grad.numpy().copy() for q in params[:3]]
    total = clip_grad_norm_(params, max_norm=1.5, norm_type=norm_type)
    assert isinstance(total, minigrad.Tensor) and total.dtype == np.float32
    assert float(total) == pytest.approx(expected, rel=1e-6)
    for q, b in zip(params, before):
        np.testing.assert_allclose(q.grad.numpy(), b * 1.5 / (expected + 1e-6), rtol=1e-6)
    after = np.concatenate([q.grad.numpy().ravel().astype(np.float64) for q in params[:3]])
    after_norm = np.abs(after).max() if p == math.inf else (np.abs(after) ** p).sum() ** (1 / p)
    assert after_norm == pytest.approx(1.5, rel=1e-5)
    assert params[3].grad is None


def test_clip_grad_norm_leaves_small_gradients_alone_and_accepts_one_tensor():
    params = _params_with_grads(scale=0.01)
    before = [q.grad.numpy().copy() for q in params[:3]]
    total = clip_grad_norm_(iter(params), max_norm=10.0)
    assert float(total) < 10
    for q, b in zip(params, before):
        np.testing.assert_array_equal(q.grad.numpy(), b)
    w = minigrad.tensor([3.0, 4.0], requires_grad=True)
    w.grad = minigrad.tensor([3.0, 4.0])
    assert float(clip_grad_norm_(w, 1.0)) == 5.0
    np.testing.assert_allclose(w.grad.numpy(), [0.6, 0.8], rtol=1e-6)
    assert float(clip_grad_norm_([minigrad.tensor([1.0], requires_grad=True)], 1.0)) == 0.0
    assert float(clip_grad_norm_(w, math.inf)) == pytest.approx(1.0)   # inf: measure only


def test_clip_grad_norm_nonfinite_and_read_only_gradients():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    w.grad = minigrad.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match=r"norm of the gradients is inf"):
        clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(w.grad.numpy(), [np.inf, 1.0])     # unchanged
    w.grad = minigrad.tensor([np.nan, 1.0])
    assert math.isnan(float(clip_grad_norm_([w], 1.0)))
    assert np.isnan(w.grad.numpy()).all()                             # as PyTorch: scaled by NaN
    v = minigrad.tensor([3.0, 4.0], requires_grad=True)
    v.grad = minigrad.tensor(np.broadcast_to(np.float32(10.0), (2,)))   # a read-only view
    clip_grad_norm_([v], 1.0)
    np.testing.assert_allclose(v.grad.numpy(), [np.sqrt(0.5)] * 2, rtol=1e-5)


def test_clip_grad_value():
    params = _params_with_grads(scale=3.0)
    before = [q.grad.numpy().copy() for q in params[:3]]
    assert clip_grad_value_(params, 1.25) is None
    for q, b in zip(params, before):
        np.testing.assert_array_equal(q.grad.numpy(), np.clip(b, -1.25, 1.25))


def test_clipping_errors_name_the_argument():
    params = _params_with_grads()
    with pytest.raises(ValueError, match=r"max_norm must be >= 0, got -1.0"):
        clip_grad_norm_(params, -1.0)
    with pytest.raises(ValueError, match=r"norm_type must be > 0 \(or inf\), got 0.0"):
        clip_grad_norm_(params, 1.0, norm_type=0)
    with pytest.raises(TypeError, match=r"max_norm must be a real number, got str"):
        clip_grad_norm_(params, "1")
    with pytest.raises(ValueError, match=r"clip_value must be >= 0, got -0.5"):
        clip_grad_value_(params, -0.5)
    with pytest.raises(TypeError, match=r"parameters must be Tensors; item 1 is ndarray"):
        clip_grad_value_([params[0], np.zeros(2)], 1.0)


@needs_torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clipping_matches_torch(norm_type):
    ours = _params_with_grads(seed=3, scale=4.0, dtype=np.float64)[:3]
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in ours]
    for p, t in zip(ours, theirs):
        t.grad = torch.tensor(p.grad.numpy())
    total = clip_grad_norm_(ours, 2.0, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 2.0, norm_type)
    assert float(total) == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    clip_grad_value_(ours, 0.1)
    torch.nn.utils.clip_grad_value_(theirs, 0.1)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


# -- RMSprop -----------------------------------------------------------------------------------
def rmsprop_ref(w, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    """RMSprop written out step by step in float64 (Hinton's lecture 6e; PyTorch's variant)."""
    w = w.astype(np.float64)
    v = np.zeros_like(w)
    m = np.zeros_like(w)
    buf = np.zeros_like(w)
    for g in grads:
        g = g(w) + weight_decay * w
        v = alpha * v + (1 - alpha) * g ** 2
        denom = v
        if centered:
            m = alpha * m + (1 - alpha) * g
            denom = v - m ** 2
        step = g / (np.sqrt(denom) + eps)
        if momentum > 0:
            buf = momentum * buf + step
            step = buf
        w = w - lr * step
    return w


RMS_SETTINGS = [dict(), dict(lr=0.05, momentum=0.9), dict(centered=True),
                dict(alpha=0.9, eps=1e-3, weight_decay=0.1, momentum=0.5, centered=True)]


@pytest.mark.parametrize("kw", RMS_SETTINGS)
def test_rmsprop_matches_reference(kw):
    w0 = np.array([1.0, -2.0, 0.5, 3.0])
    grad_fn = lambda w: 3 * w ** 2 - 1  # noqa: E731  (d/dw of sum(w^3 - w))
    w = minigrad.tensor(w0, requires_grad=True)
    opt = optim.RMSprop([w], **kw)
    for _ in range(6):
        opt.zero_grad()
        (w * w * w - w).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), rmsprop_ref(w0, [grad_fn] * 6, **kw), rtol=1e-12)


def test_rmsprop_defaults_and_errors():
    w = minigrad.tensor([1.0], requires_grad=True)
    group = optim.RMSprop([w]).param_groups[0]
    assert {k: group[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")} == \
        dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False)
    for kw, match in [(dict(lr=-1.0), r"lr must be >= 0, got -1.0"),
                      (dict(alpha=-0.1), r"alpha must be >= 0, got -0.1"),
                      (dict(eps=-1e-8), r"eps must be >= 0"),
                      (dict(momentum=-0.5), r"momentum must be >= 0"),
                      (dict(weight_decay=-1.0), r"weight_decay must be >= 0")]:
        with pytest.raises(ValueError, match=match):
            optim.RMSprop([w], **kw)
    with pytest.raises(TypeError, match=r"centered must be True or False"):
        optim.RMSprop([w], centered="yes")
    with pytest.raises(TypeError, match=r"alpha must be a real number"):
        optim.RMSprop([w], alpha=None)


@needs_torch
@pytest.mark.parametrize("kw", RMS_SETTINGS)
def test_rmsprop_matches_torch(kw):
    w0 = np.random.default_rng(0).standard_normal(6)
    ours, theirs = minigrad.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    opt, topt = optim.RMSprop([ours], **kw), torch.optim.RMSprop([theirs], **kw)
    for _ in range(5):
        opt.zero_grad()
        topt.zero_grad()
        (ours * ours * ours).sum().backward()
        (theirs ** 3).sum().backward()
        opt.step()
        topt.step()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)


# -- schedules ---------------------------------------------------------------------------------
def _opt(lr=0.5, groups=1):
    return optim.SGD([{"params": [minigrad.tensor([0.0], requires_grad=True)], "lr": lr * (i + 1)}
                      for i in range(groups)])


def _lrs(opt, sched, epochs, metrics=None):
    out = []
    for epoch in range(epochs):
        out.append([g["lr"] for g in opt.param_groups])
        sched.step() if metrics is None else sched.step(metrics[epoch])
    return out


def test_lambda_lr_one_and_per_group():
    opt = _opt(groups=2)
    lrs = _lrs(opt, optim.LambdaLR(opt, [lambda e: 1 / (e + 1), lambda e: 0.5 ** e]), 4)
    assert lrs == [[0.5, 1.0], [0.25, 0.5], [0.5 / 3, 0.25], [0.125, 0.125]]
    with pytest.raises(ValueError, match=r"expected 2 lr_lambdas \(one per parameter group\), got 1"):
        optim.LambdaLR(_opt(groups=2), [lambda e: 1.0])
    with pytest.raises(TypeError, match=r"lr_lambda must be a callable.*item 0 is float"):
        optim.LambdaLR(_opt(), 0.5)


def test_linear_lr_warm_up_closed_form():
    opt = _opt(lr=1.0)
    lrs = [lr[0] for lr in _lrs(opt, optim.LinearLR(opt, start_factor=0.1, end_factor=0.9, total_iters=4), 7)]
    np.testing.assert_allclose(lrs, [0.1, 0.3, 0.5, 0.7, 0.9, 0.9, 0.9])
    opt = _opt(lr=3.0)
    assert _lrs(opt, optim.LinearLR(opt), 7)[-1] == [3.0]   # defaults: 1/3 -> 1 over 5 steps
    for kw, match in [(dict(start_factor=0.0), r"start_factor must be in \(0, 1\], got 0.0"),
                      (dict(start_factor=1.5), r"start_factor must be in \(0, 1\]"),
                      (dict(end_factor=-0.1), r"end_factor must be in \[0, 1\], got -0.1"),
                      (dict(total_iters=0), r"total_iters must be >= 1, got 0")]:
        with pytest.raises(ValueError, match=match):
            optim.LinearLR(_opt(), **kw)


def plateau_ref(metrics, lr, mode="min", factor=0.1, patience=10, threshold=1e-4,
                threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
    """The schedule's rule written out as a loop (the learning rate before each epoch)."""
    best = math.inf if mode == "min" else -math.inf
    bad = cool = 0
    out = []
    for value in metrics:
        out.append(lr)
        sign = 1 if mode == "min" else -1
        margin = abs(best) * threshold if threshold_mode == "rel" else threshold
        if math.isinf(best) or sign * (best - value) > margin:
            best, bad = value, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            cool, bad = cooldown, 0
    return out


PLATEAU_SETTINGS = [dict(), dict(patience=2, factor=0.5), dict(mode="max", patience=1, cooldown=2),
                    dict(patience=0, threshold=0.05, threshold_mode="abs", min_lr=0.01, factor=0.3),
                    dict(mode="max", patience=1, threshold=0.1, threshold_mode="rel", eps=0.2)]


def _metrics():
    rng = np.random.default_rng(4)
    return list(np.r_[np.linspace(1.0, 0.5, 10), np.full(25, 0.5)] + rng.random(35) * 0.05)


@pytest.mark.parametrize("kw", PLATEAU_SETTINGS)
def test_reduce_lr_on_plateau_matches_reference(kw):
    metrics = _metrics()
    opt = _opt(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, **kw)
    ours = [lr[0] for lr in _lrs(opt, sched, len(metrics), metrics)]
    ref = plateau_ref(metrics, 1.0, **kw)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    assert sched.get_last_lr() == [opt.param_groups[0]["lr"]]


def test_reduce_lr_on_plateau_reduces_and_respects_min_lr_per_group():
    opt = _opt(lr=1.0, groups=2)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=[0.3, 0.0])
    for value in [1.0, 1.0, 1.0, 1.0]:
        sched.step(minigrad.tensor(value))           # a one-element tensor works
    assert sched.get_last_lr() == [0.3, 0.25]


def test_reduce_lr_on_plateau_errors():
    for kw, error, match in [
            (dict(mode="lowest"), ValueError, r"mode must be 'min' or 'max', got 'lowest'"),
            (dict(factor=1.0), ValueError, r"factor must be in \[0, 1\) \(a reduction\), got 1.0"),
            (dict(threshold_mode="pct"), ValueError, r"threshold_mode must be 'rel' or 'abs'"),
            (dict(patience=-1), ValueError, r"patience must be >= 0, got -1"),
            (dict(patience=1.5), TypeError, r"patience must be an int, got float"),
            (dict(cooldown=-2), ValueError, r"cooldown must be >= 0"),
            (dict(threshold=-1e-4), ValueError, r"threshold must be >= 0"),
            (dict(min_lr=[0.1, 0.2]), ValueError, r"expected 1 min_lrs"),
            (dict(min_lr=-0.1), ValueError, r"min_lr must be >= 0"),
            (dict(eps=-1.0), ValueError, r"eps must be >= 0")]:
        with pytest.raises(error, match=match):
            optim.ReduceLROnPlateau(_opt(), **kw)
    with pytest.raises(TypeError, match=r"optimizer must be a minigrad.optim.Optimizer"):
        optim.ReduceLROnPlateau(object())


@needs_torch
@pytest.mark.parametrize("kw", PLATEAU_SETTINGS)
def test_schedules_match_torch(kw):
    S = torch.optim.lr_scheduler  # noqa: N806
    metrics = _metrics()

    def torch_lrs(make, epochs, metrics=None):
        topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        sched, out = make(topt), []
        for epoch in range(epochs):
            out.append(topt.param_groups[0]["lr"])
            topt.step()
            sched.step() if metrics is None else sched.step(metrics[epoch])
        return out

    opt = _opt(lr=1.0)
    ours = [lr[0] for lr in _lrs(opt, optim.ReduceLROnPlateau(opt, **kw), len(metrics), metrics)]
    np.testing.assert_allclose(ours, torch_lrs(lambda o: S.ReduceLROnPlateau(o, **kw), len(metrics), metrics), rtol=1e-12)
    opt = _opt(lr=1.0)
    ours = [lr[0] for lr in _lrs(opt, optim.LinearLR(opt, 0.2, 0.8, 6), 10)]
    np.testing.assert_allclose(ours, torch_lrs(lambda o: S.LinearLR(o, 0.2, 0.8, 6), 10), rtol=1e-12)
    opt = _opt(lr=1.0)
    ours = [lr[0] for lr in _lrs(opt, optim.LambdaLR(opt, lambda e: 0.9 ** e), 10)]
    np.testing.assert_allclose(ours, torch_lrs(lambda o: S.LambdaLR(o, lambda e: 0.9 ** e), 10), rtol=1e-12)


def test_clipping_and_rmsprop_in_a_training_loop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], np.float32))[:, None]
    model = nn.Linear(3, 1, rng=0)
    opt = optim.RMSprop(model.parameters(), lr=0.01)
    sched = optim.ReduceLROnPlateau(opt, patience=3)
    for _ in range(300):
        opt.zero_grad()
        loss = nn.mse_loss(model(x), y)
        loss.backward()
        clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step(loss)
    assert float(loss) < 1e-3
