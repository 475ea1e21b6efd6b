"""The tape and its three doors: backward, grad, GradientTape; graph release; grad modes."""

import gc
import weakref

import numpy as np
import pytest

import minigrad as mg


def test_backward_accumulates_into_leaves():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [5.0, 7.0])
    assert x.grad.dtype == np.float32 and not x.grad.requires_grad


def test_backward_with_explicit_gradient_and_intermediates_get_no_grad():
    x = mg.tensor([1.0, 2.0, 3.0], dtype="float64", requires_grad=True)
    h = x * 2
    y = h * h
    y.backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad.data, [8.0, 0.0, -24.0])
    assert h.grad is None


def test_backward_on_non_scalar_without_gradient_is_an_error():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"shape \(3,\).*shape \(2,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_without_graph_is_an_error():
    with pytest.raises(RuntimeError, match="requires_grad=True"):
        mg.tensor([1.0]).sum().backward()


def test_second_backward_through_released_graph_is_an_error():
    x = mg.tensor(2.0, requires_grad=True)
    y = x * x * x
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_walk():
    x = mg.tensor(2.0, requires_grad=True)
    y = x * x * x
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 24.0


def test_graph_is_freed_after_backward():
    x = mg.tensor(np.ones(4), requires_grad=True)
    h = x.exp()
    ref = weakref.ref(h)
    y = (h * 2).sum()
    del h
    gc.collect()
    assert ref() is not None  # the graph keeps the intermediate alive...
    y.backward()
    assert ref() is None  # ...until backward releases it (no cycles: refcounting frees it)


def test_no_grad_records_nothing():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with mg.no_grad():
        y = x * 2 + 1
        assert not mg.is_grad_enabled()
        with mg.enable_grad():
            z = x * 2
    assert mg.is_grad_enabled()
    assert not y.requires_grad and y.node is None
    assert z.requires_grad and z.node is not None

    @mg.no_grad()
    def f(t):
        return t * t

    assert f(x).node is None


def test_stop_gradient_and_detach_cut_the_graph():
    x = mg.tensor(3.0, dtype="float64", requires_grad=True)
    y = x * mg.stop_gradient(x) + x.detach() ** 2
    (g,) = mg.grad(y, x)
    assert g.item() == 3.0


def test_grad_returns_tuple_and_handles_unused():
    x = mg.tensor(2.0, requires_grad=True)
    z = mg.tensor(5.0, requires_grad=True)
    y = x ** 2
    with pytest.raises(RuntimeError, match="inputs\\[1\\].*allow_unused=True"):
        mg.grad(y, [x, z], retain_graph=True)
    gx, gz = mg.grad(y, [x, z], allow_unused=True)
    assert gx.item() == 4.0 and gz is None
    assert not (x.grad is not None)  # grad() does not touch .grad


def test_grad_with_respect_to_an_intermediate():
    x = mg.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    gh, gx = mg.grad(y, [h, x])
    np.testing.assert_array_equal(gh.data, 2 * h.data)
    np.testing.assert_array_equal(gx.data, 18 * x.data)


def test_grad_several_outputs_add_up():
    x = mg.tensor(2.0, dtype="float64", requires_grad=True)
    (g,) = mg.grad([x * 3, x * x], [x])
    assert g.item() == 7.0


def test_retain_graph_defaults_to_create_graph():
    x = mg.tensor(2.0, dtype="float64", requires_grad=True)
    y = x ** 3
    (g,) = mg.grad(y, x, create_graph=True)
    (g2,) = mg.grad(y, x)  # graph retained because create_graph=True
    assert g.item() == g2.item() == 12.0
    with pytest.raises(RuntimeError, match="second time"):
        mg.grad(y, x)


def test_higher_order_with_create_graph():
    x = mg.tensor(0.7, dtype="float64", requires_grad=True)
    y = x.tanh()
    (d1,) = mg.grad(y, x, create_graph=True)
    (d2,) = mg.grad(d1, x, create_graph=True)
    (d3,) = mg.grad(d2, x)
    t = np.tanh(0.7)
    np.testing.assert_allclose([d1.item(), d2.item(), d3.item()],
                               [1 - t**2, -2 * t * (1 - t**2), (1 - t**2) * (6 * t**2 - 2)])


def test_backward_create_graph_gives_differentiable_grad():
    x = mg.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [6.0, 12.0])


def test_hessian_vector_product():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3))
    x = mg.tensor(rng.standard_normal(3), dtype="float64", requires_grad=True)
    v = rng.standard_normal(3)
    f = (x @ (a @ x)) / 2  # Hessian (A + A^T) / 2
    (g,) = mg.grad(f, x, create_graph=True)
    (hv,) = mg.grad((g * v).sum(), x)
    np.testing.assert_allclose(hv.data, (a + a.T) / 2 @ v)


def test_tape_watches_constants_and_returns_structure():
    x = mg.tensor([1.0, 2.0])
    y = mg.tensor(3.0)
    with mg.GradientTape() as tape:
        tape.watch([x, y])
        z = (x * y).sum() + x.sum()
    gx, gy = tape.gradient(z, [x, y])
    np.testing.assert_array_equal(gx.data, [4.0, 4.0])
    assert gy.item() == 3.0
    assert x.grad is None


def test_tape_unwatched_source_is_none_or_zero():
    x, y = mg.tensor(1.0), mg.tensor(2.0)
    with mg.GradientTape(persistent=True) as tape:
        tape.watch(x)
        z = x * y
    assert tape.gradient(z, y) is None
    assert tape.gradient(z, y, unconnected_gradients="zero").item() == 0.0
    with pytest.raises(ValueError, match="unconnected_gradients"):
        tape.gradient(z, y, unconnected_gradients="zeros")


def test_tape_non_persistent_answers_once():
    x = mg.tensor(1.0)
    with mg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(RuntimeError, match="persistent=True"):
        tape.gradient(y, x)


def test_tape_non_scalar_target_is_summed():
    x = mg.tensor([1.0, 2.0])
    with mg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    np.testing.assert_array_equal(tape.gradient(y, x).data, [2.0, 4.0])


def test_tape_records_requires_grad_tensors_without_watch():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    with mg.GradientTape() as tape:
        y = (w * w).sum()
    np.testing.assert_array_equal(tape.gradient(y, w).data, [2.0, 4.0])


def test_backward_skips_a_leaf_only_watched_by_a_tape():
    # the walk's relevance sweep: a watched leaf without requires_grad gets no .grad, on its
    # own branch or on one shared with a requires_grad leaf
    a, b = mg.tensor([1.0, 2.0]), mg.tensor([3.0, 4.0], requires_grad=True)
    with mg.GradientTape() as tape:
        tape.watch(a)
        y = (a * a + b * b + a * b).sum()
    y.backward()
    assert a.grad is None
    np.testing.assert_array_equal(b.grad.data, [7.0, 10.0])


def test_nested_tapes_give_second_derivatives():
    x = mg.tensor(3.0, dtype="float64")
    with mg.GradientTape() as outer:
        outer.watch(x)
        with mg.GradientTape() as inner:
            inner.watch(x)
            y = x ** 3
        dy = inner.gradient(y, x)
    d2y = outer.gradient(dy, x)
    assert dy.item() == 27.0 and d2y.item() == 18.0


def test_stop_recording():
    x = mg.tensor(2.0)
    with mg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
        with tape.stop_recording():
            z = x * 5
        total = y + z
    assert not z.requires_grad
    assert tape.gradient(total, x).item() == 4.0


def test_printing_a_tape_and_a_graph_lists_ops_in_order():
    x = mg.tensor([1.0, 2.0, 3.0])
    with mg.GradientTape() as tape:
        tape.watch(x)
        y = (x.exp() * x).sum()
    text = str(tape)
    assert text.index("Exp") < text.index("Mul") < text.index("Sum")
    assert "(3,) float32" in text and "-> () float32" in text
    listing = y.graph()
    assert listing.splitlines()[0].startswith("t0 = leaf")
    assert "Mul(t1, t0)" in listing and listing.splitlines()[-1].startswith("t3 = Sum(t2)")
    dot = mg.to_dot(y)
    assert dot.startswith("digraph") and "t2 -> t3;" in dot


def test_requires_grad_only_on_floats_and_leaves():
    with pytest.raises(TypeError, match="int64"):
        mg.tensor([1, 2], requires_grad=True)
    y = mg.tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = False


def test_integer_inputs_are_never_differentiable():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    k = mg.tensor([3, 4])
    (g,) = mg.grad((x * k).sum(), x)
    np.testing.assert_array_equal(g.data, [3.0, 4.0])
    assert not (k * 2).requires_grad


def test_deep_graph_does_not_hit_recursion_limit():
    x = mg.tensor(1.0, dtype="float64", requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 5000)


def test_printing_a_graph_after_backward_shows_freed_nodes():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    assert y.graph() == "t0 = Sum(freed by backward) () float32"
    assert "Sum" in mg.to_dot(y)


def test_no_grad_decorator_survives_recursion_and_reuse():
    @mg.no_grad()
    def depth(t, n):
        return t if n == 0 else depth(t * 1.0, n - 1)

    x = mg.tensor([1.0], requires_grad=True)
    assert not depth(x, 3).requires_grad
    assert mg.is_grad_enabled()
    ctx = mg.no_grad()
    with ctx:
        with ctx:
            pass
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()


def test_leaf_grads_are_writable_arrays_of_their_own():
    a = mg.tensor([1.0, 2.0], requires_grad=True)
    b = mg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).backward(mg.tensor([1.0, 1.0]))
    assert a.grad.data is not b.grad.data
    a.grad.data *= 0.5
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])
    x = mg.tensor(np.ones((2, 3)), requires_grad=True)
    x.sum().backward()
    assert x.grad.data.flags.writeable


def test_explicit_gradient_is_cast_to_the_output_dtype():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).backward(mg.tensor(np.ones(2)))  # a float64 gradient for a float32 output
    assert x.grad.dtype == np.float32
