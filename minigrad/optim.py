"""Optimizers and learning-rate schedules, with PyTorch's update rules and keyword names.

An optimizer holds parameter tensors and, on :meth:`~Optimizer.step`, updates their
``.data`` in place from their ``.grad``. The update is plain numpy on the arrays, so nothing
is recorded on the tape and the parameters stay leaves. Parameters whose ``.grad`` is None
are skipped.

float16 and bfloat16 parameters follow minigrad's low-precision rule: the update and the
optimizer's state (momentum, Adam's moments) are float32, and the new value is rounded into
the parameter once per step. In float16 arithmetic Adam's default ``eps=1e-8`` would round to
0, and a zero gradient entry would make its weight NaN.

A typical step::

    opt = minigrad.optim.Adam(model.parameters(), lr=1e-3)
    for xb, yb in minigrad.data.minibatches(x, y, batch_size=32, rng=rng):
        opt.zero_grad()
        loss = minigrad.nn.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()

Like PyTorch, ``params`` may also be a list of dicts (parameter groups), each with its own
``"params"`` and any hyperparameters to override; schedules change each group's ``"lr"``.
"""

import math

import numpy as np

from . import _dtypes
from ._checks import flag, non_negative, non_negative_int, positive_int, real
from ._tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "LRScheduler", "StepLR",
           "CosineAnnealingLR", "LambdaLR", "LinearLR", "ReduceLROnPlateau"]


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and ``step``.

    Subclasses define ``_check(group)`` (validate hyperparameters) and
    ``_update(w, grad, state, group)`` (update the float ndarray ``w`` in place from the
    ndarray ``grad``; ``w`` is the parameter's data, or a float32 copy of it for float16 and
    bfloat16, whose state the subclass should make like ``w``).
    """

    def __init__(self, params, defaults):
        if isinstance(params, (Tensor, dict)):
            raise TypeError(f"params must be an iterable of Tensors (e.g. model.parameters()) or "
                            f"of parameter-group dicts, got a single {type(params).__name__}; "
                            f"wrap it in a list")
        params = _ordered(params, "params", "of Tensors (e.g. model.parameters()) or of "
                                            "parameter-group dicts")
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        # The defaults are checked on their own: a group that overrides a bad default must not
        # hide it (it would surface in the next group added without an override).
        self._check_settings(defaults, "")
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # id(param) -> dict; ids are stable because the groups hold the params
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a dict with ``"params"`` and optional hyperparameters overriding the defaults."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"a parameter group must be a dict with a 'params' key, got {group!r}")
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else _ordered(
            params, "a parameter group's 'params'", "of Tensors")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer params must be minigrad Tensors; item {i} is "
                                f"{type(p).__name__}")
            if not _dtypes.is_float(p.dtype):
                raise TypeError(f"optimizer params must be float tensors; item {i} has dtype {p.dtype}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf tensor (item {i}, made by "
                                 f"{p.node.name}); optimize the leaves it was computed from")
            if id(p) in seen:
                raise ValueError(f"item {i} (shape {p.shape}) appears in more than one parameter "
                                 f"group or twice in a group")
            seen.add(id(p))
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_settings(group, f"parameter group {len(self.param_groups)}: ")
        self.param_groups.append(group)

    def _check_settings(self, settings, where):
        """``_check`` on the defaults or on a group, the group named in the message."""
        try:
            self._check(settings)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}{e}") from None

    def zero_grad(self):
        """Set every parameter's ``.grad`` to None (``backward`` accumulates into it)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if not isinstance(g, Tensor) or g.shape != p.shape or not _dtypes.is_float(g.dtype):
                    _refuse_grad(p)
                state = self.state.setdefault(id(p), {})
                if _dtypes.is_low(p.dtype):  # float32 arithmetic and state, rounded once
                    w = p.data.astype(np.float32)
                    self._update(w, g.data.astype(np.float32), state, group)
                    p.data[...] = w
                else:
                    self._update(p.data, g.data, state, group)

    def _check(self, group):
        raise NotImplementedError

    def _update(self, w, grad, state, group):
        raise NotImplementedError

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {settings}")
        return "\n".join(lines + [")"])


def _ordered(items, what, of):
    """``items`` as a list, if it is an iterable with an order (a set would shuffle the state)."""
    if isinstance(items, (set, frozenset, str, bytes, dict)) or not hasattr(items, "__iter__"):
        raise TypeError(f"{what} must be an ordered iterable {of}, got "
                        f"{type(items).__name__} {items!r:.60}")
    return list(items)


def _refuse_grad(p):
    """Say why a parameter's ``.grad`` (which users may assign) is not a float tensor of its
    shape."""
    if not isinstance(p.grad, Tensor):
        raise TypeError(f"the .grad of a parameter of shape {p.shape} must be a Tensor or None, "
                        f"got {type(p.grad).__name__}")
    if p.grad.shape != p.shape or not _dtypes.is_float(p.grad.dtype):
        raise ValueError(f"the .grad of a parameter of shape {p.shape} must have its shape and "
                         f"a float dtype, got shape {p.grad.shape} and dtype {p.grad.dtype}")


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    PyTorch's rule, for gradient ``g``, parameter ``p`` and step ``t``::

        g = g + weight_decay * p
        b = g                                      at t = 1
        b = momentum * b + (1 - dampening) * g     after
        g = g + momentum * b   if nesterov else  b   (when momentum != 0)
        p = p - lr * g

    Examples
    --------
    >>> w = minigrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = minigrad.optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()                  # w - 0.1 * 2w
    >>> w
    tensor([ 0.8, -1.6], dtype=float32, requires_grad=True)
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check(self, group):
        non_negative(group["lr"], "lr")
        non_negative(group["momentum"], "momentum")
        real(group["dampening"], "dampening")
        non_negative(group["weight_decay"], "weight_decay")
        if flag(group["nesterov"], "nesterov") and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, w, g, state, group):
        # Python floats: a numpy float32 hyper-parameter would make the arithmetic float32
        lr, momentum, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        if wd != 0:
            g = g + wd * w
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # A copy: the gradient array may be read-only or shared with the graph.
                buf = state["momentum_buffer"] = np.array(g, dtype=w.dtype)
            else:
                buf *= momentum
                buf += (1 - float(group["dampening"])) * g
            g = g + momentum * buf if group["nesterov"] else buf
        w -= lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's rule; ``weight_decay`` is an L2 term.

    For gradient ``g`` at step ``t`` (from 1)::

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                               (amsgrad only; then v := v_max)
        p = p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    Examples
    --------
    >>> w = minigrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = minigrad.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()                  # the first Adam step moves each weight by about lr
    >>> np.round(w.numpy(), 6)
    array([ 0.9, -1.9], dtype=float32)
    """

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _check(self, group):
        non_negative(group["lr"], "lr")
        non_negative(group["eps"], "eps")
        non_negative(group["weight_decay"], "weight_decay")
        flag(group["amsgrad"], "amsgrad")
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= real(beta, f"betas[{i}]") < 1.0:
                raise ValueError(f"invalid betas[{i}]: {beta}, expected 0 <= beta < 1")

    def _update(self, w, g, state, group):
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])   # Python floats, as for SGD
        if wd != 0:
            if self._decoupled:
                w *= 1 - lr * wd
            else:
                g = g + wd * w
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        # One scratch array for every intermediate (the same arithmetic as the one-line
        # forms, m += (1 - beta1) * g and so on, without a fresh array per operation).
        scratch = np.multiply(g, 1 - beta1)
        m *= beta1
        m += scratch
        np.multiply(g, g, out=scratch)
        scratch *= 1 - beta2
        v *= beta2
        v += scratch
        if group["amsgrad"]:  # the buffer is made on first use: amsgrad may be switched on later
            v_max = state.setdefault("max_exp_avg_sq", np.zeros_like(w))
            v = np.maximum(v_max, v, out=v_max)
        # Bias corrections folded into the step size and the denominator, as PyTorch does:
        # w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
        denom = np.sqrt(v, out=scratch)
        denom /= math.sqrt(1 - beta2 ** t)
        denom += eps
        step = np.divide(m, denom, out=scratch)
        step *= lr / (1 - beta1 ** t)
        w -= step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), PyTorch's rule.

    The decay shrinks the parameter directly, ``p = p * (1 - lr * weight_decay)``, before the
    Adam step (which then sees the raw gradient), instead of adding ``weight_decay * p`` to
    the gradient.

    Examples
    --------
    >>> w = minigrad.tensor([1.0], requires_grad=True)
    >>> opt = minigrad.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.backward(minigrad.tensor([0.0]))
    >>> opt.step()                  # zero gradient: only the decay, 1 * (1 - 0.1 * 0.5)
    >>> w
    tensor([0.95], dtype=float32, requires_grad=True)
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e) with PyTorch's rule, keywords and defaults.

    For gradient ``g``::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        m = alpha * m + (1 - alpha) * g ;  v_hat = v - m * m     (centered only; else v_hat = v)
        b = momentum * b + g / (sqrt(v_hat) + eps) ;  p = p - lr * b     (momentum > 0)
        p = p - lr * g / (sqrt(v_hat) + eps)                              (momentum = 0)

    Examples
    --------
    >>> w = minigrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = minigrad.optim.RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward()
    >>> opt.step()                  # first step: g / sqrt(0.01 g^2) = 10 sign(g), times lr
    >>> np.round(w.numpy(), 5)
    array([ 0.9, -1.9], dtype=float32)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _check(self, group):
        non_negative(group["lr"], "lr")
        non_negative(group["alpha"], "alpha")
        non_negative(group["eps"], "eps")
        non_negative(group["weight_decay"], "weight_decay")
        non_negative(group["momentum"], "momentum")
        flag(group["centered"], "centered")

    def _update(self, w, g, state, group):
        # Python floats: a numpy float32 hyper-parameter would make the arithmetic float32
        alpha, eps = float(group["alpha"]), float(group["eps"])
        wd, momentum, lr = float(group["weight_decay"]), float(group["momentum"]), float(group["lr"])
        if wd != 0:
            g = g + wd * w
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(w)
        state["step"] += 1
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * (g * g)
        if group["centered"]:
            m = state.setdefault("grad_avg", np.zeros_like(w))
            m *= alpha
            m += (1 - alpha) * g
            avg = np.sqrt(v - m * m)
        else:
            avg = np.sqrt(v)
        avg += eps
        if momentum > 0:
            buf = state.setdefault("momentum_buffer", np.zeros_like(w))
            buf *= momentum
            buf += g / avg
            w -= lr * buf
        else:
            w -= lr * (g / avg)


# ------------------------------------------------------------------------------------------
# Learning-rate schedules
# ------------------------------------------------------------------------------------------
class LRScheduler:
    """Base class: sets each group's ``"lr"`` from ``get_lr()`` at every :meth:`step`.

    As in PyTorch, making a scheduler counts as step 0 (each group's learning rate is
    recorded as ``"initial_lr"`` and set for epoch 0), and ``step()`` is called once per
    epoch, after the epoch's optimizer steps.
    """

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a minigrad.optim.Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def get_lr(self):
        raise NotImplementedError

    def step(self):
        """Advance one epoch and set the new learning rates."""
        self.last_epoch += 1
        self._last_lr = list(self.get_lr())
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr

    def get_last_lr(self):
        """The learning rates set by the latest :meth:`step`, one per parameter group."""
        return list(self._last_lr)


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    ``lr = initial_lr * gamma ** (epoch // step_size)``

    Examples
    --------
    >>> opt = minigrad.optim.SGD([minigrad.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = minigrad.optim.StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(opt.param_groups[0]["lr"])
    ...     sched.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = positive_int(step_size, "step_size")
        non_negative(gamma, "gamma")
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the initial learning rate to ``eta_min`` over ``T_max`` epochs.

    ``lr = eta_min + (initial_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2`` (SGDR,
    Loshchilov & Hutter 2017, without restarts; past ``T_max`` it rises again, as in PyTorch).

    Examples
    --------
    >>> opt = minigrad.optim.SGD([minigrad.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = minigrad.optim.CosineAnnealingLR(opt, T_max=4)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(round(opt.param_groups[0]["lr"], 4))
    ...     sched.step()
    >>> lrs
    [1.0, 0.8536, 0.5, 0.1464, 0.0]
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = positive_int(T_max, "T_max")
        non_negative(eta_min, "eta_min")
        self.eta_min = eta_min
        super().__init__(optimizer)

    def get_lr(self):
        cos = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]


class LambdaLR(LRScheduler):
    """The initial learning rate times ``lr_lambda(epoch)`` (one function, or one per group).

    Examples
    --------
    >>> opt = minigrad.optim.SGD([minigrad.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = minigrad.optim.LambdaLR(opt, lambda epoch: 0.5 ** epoch)
    >>> lrs = []
    >>> for epoch in range(4):
    ...     lrs.append(opt.param_groups[0]["lr"])
    ...     sched.step()
    >>> lrs
    [1.0, 0.5, 0.25, 0.125]
    """

    def __init__(self, optimizer, lr_lambda):
        n = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
        if isinstance(lr_lambda, (list, tuple)) and len(lambdas) != n:
            raise ValueError(f"expected {n} lr_lambdas (one per parameter group), got {len(lambdas)}")
        for i, fn in enumerate(lambdas):
            if not callable(fn):
                raise TypeError(f"lr_lambda must be a callable or a list of callables; item {i} "
                                f"is {type(fn).__name__}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer)

    def get_lr(self):
        return [base * fn(self.last_epoch) for base, fn in zip(self.base_lrs, self.lr_lambdas)]


class LinearLR(LRScheduler):
    """Linear warm-up (or decay): the factor goes from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps, then stays there.

    ``lr = initial_lr * (start_factor + (end_factor - start_factor) * min(epoch, total_iters)
    / total_iters)``, PyTorch's ``LinearLR`` in closed form.

    Examples
    --------
    >>> opt = minigrad.optim.SGD([minigrad.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = minigrad.optim.LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> lrs = []
    >>> for epoch in range(5):
    ...     lrs.append(opt.param_groups[0]["lr"])
    ...     sched.step()
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        if not 0.0 < real(start_factor, "start_factor") <= 1.0:
            raise ValueError(f"start_factor must be in (0, 1], got {start_factor}")
        if not 0.0 <= real(end_factor, "end_factor") <= 1.0:
            raise ValueError(f"end_factor must be in [0, 1], got {end_factor}")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = positive_int(total_iters, "total_iters")
        super().__init__(optimizer)

    def get_lr(self):
        done = min(self.last_epoch, self.total_iters) / self.total_iters
        factor = self.start_factor + (self.end_factor - self.start_factor) * done
        return [base * factor for base in self.base_lrs]


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when a metric has stopped improving.

    Call ``step(metric)`` once per epoch with the monitored value (a validation loss, say).
    PyTorch's rule: the metric improves when it is better than the best so far by more than
    ``threshold`` (relative: ``best * (1 -/+ threshold)``; absolute: ``best -/+ threshold``).
    After more than ``patience`` epochs without improvement, each group's learning rate
    becomes ``max(lr * factor, min_lr)`` (a change smaller than ``eps`` is skipped), and then
    ``cooldown`` epochs pass before bad epochs are counted again.

    Parameters
    ----------
    optimizer : Optimizer
    mode : {"min", "max"}
        Whether lower or higher metrics are better.
    factor : float in [0, 1)
    patience, cooldown : int >= 0
    threshold : float >= 0
    threshold_mode : {"rel", "abs"}
    min_lr : float or list of floats (one per group), >= 0
    eps : float >= 0

    Examples
    --------
    >>> opt = minigrad.optim.SGD([minigrad.tensor([0.0], requires_grad=True)], lr=1.0)
    >>> sched = minigrad.optim.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
    ...     sched.step(loss)
    >>> sched.get_last_lr()          # reduced after the 2nd and the 4th epoch without progress
    [0.25]
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a minigrad.optim.Optimizer, "
                            f"got {type(optimizer).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0.0 <= real(factor, "factor") < 1.0:
            raise ValueError(f"factor must be in [0, 1) (a reduction), got {factor}")
        groups = optimizer.param_groups
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * len(groups)
        if len(min_lrs) != len(groups):
            raise ValueError(f"expected {len(groups)} min_lrs (one per parameter group), "
                             f"got {len(min_lrs)}")
        for i, value in enumerate(min_lrs):
            non_negative(value, f"min_lr[{i}]" if isinstance(min_lr, (list, tuple)) else "min_lr")
        self.optimizer, self.mode, self.threshold_mode = optimizer, mode, threshold_mode
        self.factor = factor
        self.patience = non_negative_int(patience, "patience")
        self.threshold = non_negative(threshold, "threshold")
        self.cooldown = non_negative_int(cooldown, "cooldown")
        self.min_lrs = min_lrs
        self.eps = non_negative(eps, "eps")
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in groups]

    def is_better(self, current, best):
        """Whether ``current`` improves on ``best`` by more than the threshold."""
        if self.threshold_mode == "rel":
            scale = 1 - self.threshold if self.mode == "min" else 1 + self.threshold
            bound = best * scale
        else:
            bound = best - self.threshold if self.mode == "min" else best + self.threshold
        return current < bound if self.mode == "min" else current > bound

    def step(self, metrics):
        """Record this epoch's metric (a number or one-element tensor) and maybe reduce."""
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The learning rates after the latest :meth:`step`, one per parameter group."""
        return list(self._last_lr)
