"""Threads and forked processes (issue 9): results are the same bits whoever runs them.

* 8 Python threads call the raw ops and each train a small model of their own while the
  main thread keeps changing ``set_num_threads``; every result equals, bit for bit, the same
  work run serially first.
* A child forked (multiprocessing, fork start method) after 2-thread kernels ran in the
  parent computes the same bits as the parent, on one thread, and does not hang.
"""

import multiprocessing
import sys
import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad import _config, nn, optim, raw_ops

# Above PARALLEL_MIN_SIZE, so the kernels really split rows over threads when allowed to.
BIG = (1024, 1024)
assert BIG[0] * BIG[1] >= _config.PARALLEL_MIN_SIZE


def _work(seed):
    """Raw ops on a large batch, a GradientTape gradient, and a few training steps of a
    small model: everything a thread computes, as arrays."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(BIG).astype(np.float32)
    labels = rng.integers(0, BIG[1], BIG[0])
    probs = rng.dirichlet(np.ones(BIG[1]), BIG[0]).astype(np.float32)
    out = list(raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=logits, labels=labels))
    out += list(raw_ops.SoftmaxCrossEntropyWithLogits(features=logits, labels=probs))

    w = mg.tensor(rng.standard_normal((8, 4)))
    with mg.GradientTape() as tape:
        tape.watch(w)
        loss = nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels[:16] % 4, logits=mg.tensor(logits[:16, :8].astype(np.float64)) @ w)
    out.append(tape.gradient(loss, w))

    model = nn.Sequential(nn.Linear(8, 16, rng=seed), nn.ReLU(), nn.Linear(16, 3, rng=seed + 1))
    opt = optim.Adam(model.parameters(), lr=1e-2) if seed % 2 else \
        optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = rng.standard_normal((32, 8)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    for _ in range(5):
        opt.zero_grad()
        loss = nn.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    out += [loss] + model.parameters()
    return [np.array(t.numpy() if isinstance(t, mg.Tensor) else t) for t in out]


def _assert_same_bits(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


def test_eight_threads_get_the_serial_bits_while_the_thread_count_changes():
    old = mg.get_num_threads()
    try:
        mg.set_num_threads(1)
        serial = {seed: _work(seed) for seed in range(8)}
        results, errors = {}, []
        stop = threading.Event()

        def worker(seed):
            try:
                results[seed] = _work(seed)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        def toggle():
            counts = [1, 2, min(3, _config.MAX_THREADS)]
            i = 0
            while not stop.is_set():
                mg.set_num_threads(counts[i % len(counts)])
                i += 1
                stop.wait(0.0005)

        toggler = threading.Thread(target=toggle)
        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
        toggler.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        toggler.join()
        assert not errors, errors
        for seed in range(8):
            _assert_same_bits(results[seed], serial[seed])
    finally:
        mg.set_num_threads(old)


def _child(queue):
    queue.put((mg.get_num_threads(), _work(3)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork start method is "
                    "Linux-only here (macOS defaults to spawn; Windows has no fork)")
def test_a_forked_child_works_after_two_thread_kernels_ran():
    old = mg.get_num_threads()
    try:
        mg.set_num_threads(2)
        expected = _work(3)          # 2-thread kernels ran in the parent: libgomp's pool exists
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child, args=(queue,))
        child.start()
        try:
            threads, got = queue.get(timeout=120)   # a hung child fails here, not forever
            child.join(timeout=120)
        finally:
            if child.is_alive():
                child.kill()
        assert child.exitcode == 0
        assert threads == 1           # the child runs (and reports) one thread
        _assert_same_bits(got, expected)
        assert mg.get_num_threads() == 2
    finally:
        mg.set_num_threads(old)
