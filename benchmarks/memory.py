"""Memory over long runs: resident set size (RSS) while training and while taking gradients
in loops, to show that nothing accumulates.

    python benchmarks/memory.py              # 10^5 training steps, 10^4 loops of each kind
    python benchmarks/memory.py --quick      # a tenth of that

Reported, each as RSS in MB at evenly spaced checkpoints, and the growth from the first
checkpoint to the last:

* ``train``: training steps of a 64-128-10 MLP (Adam, batch 32, the fused sparse
  cross-entropy), RSS every 10^4 steps;
* ``create_graph``: a Hessian-vector product per loop (``grad(..., create_graph=True)``
  then a gradient of that gradient), RSS every 10^3 loops;
* ``persistent tape``: a new ``GradientTape(persistent=True)`` per loop, asked for two
  gradients;
* ``tape re-entered + reset``: one persistent tape re-entered every loop, ``reset()`` at the
  top of the loop (what the docs recommend);
* ``tape re-entered``: the same without ``reset()``: the tape keeps its printable listing of
  ops (documented), so this one grows by that listing, and by nothing else.

RSS is read from /proc/self/statm (Linux); elsewhere the peak from ``resource`` is shown.
"""

import argparse
import gc
import os
import sys
import time

import numpy as np

import minigrad as mg
from minigrad import nn, optim

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb():
    """Current resident set size in MB (peak size where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except OSError:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


def measure(name, loop, total, every):
    """Run ``loop(i)`` ``total`` times; return RSS (MB) at each ``every`` loops."""
    gc.collect()
    marks = []
    start = time.perf_counter()
    for i in range(1, total + 1):
        loop(i)
        if i % every == 0:
            gc.collect()
            marks.append(rss_mb())
    seconds = time.perf_counter() - start
    growth = marks[-1] - marks[0]
    per_loop = growth * 2**20 / (total - every)
    print(f"\n{name}: {total} loops in {seconds:.0f} s, RSS every {every} (MB):")
    print("  " + " ".join(f"{m:.1f}" for m in marks))
    print(f"  growth first -> last checkpoint: {growth:+.2f} MB ({per_loop:+.0f} bytes/loop)",
          flush=True)
    return marks


def training(total, every):
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(64, 128, rng=rng), nn.ReLU(), nn.Linear(128, 10, rng=rng))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = rng.standard_normal((1024, 64)).astype(np.float32)
    y = rng.integers(0, 10, 1024)

    def step(i):
        rows = slice((i * 32) % 1024, (i * 32) % 1024 + 32)
        opt.zero_grad()
        loss = nn.cross_entropy(model(x[rows]), y[rows])
        loss.backward()
        opt.step()

    return measure("train", step, total, every)


def hessian_vector(total, every):
    rng = np.random.default_rng(1)
    w = mg.tensor(rng.standard_normal((32, 16)), requires_grad=True)
    x = mg.tensor(rng.standard_normal((8, 32)))
    v = mg.tensor(rng.standard_normal((32, 16)))
    labels = rng.integers(0, 16, 8)

    def loop(i):
        loss = nn.cross_entropy(x @ w, labels)
        (g,) = mg.grad(loss, w, create_graph=True)
        (hv,) = mg.grad((g * v).sum(), w)
        return hv

    return measure("create_graph", loop, total, every)


def tapes(total, every):
    rng = np.random.default_rng(2)
    w = mg.tensor(rng.standard_normal((64, 16)))
    shared = mg.GradientTape(persistent=True)
    kept = mg.GradientTape(persistent=True)

    def body(tape):
        x = mg.tensor(rng.standard_normal((16, 64)))   # 8 KB watched per loop
        with tape:
            tape.watch([x, w])
            y = ((x @ w).tanh() ** 2).sum()
        return tape.gradient(y, x), tape.gradient(y, w)

    def fresh(i):
        body(mg.GradientTape(persistent=True))

    def reset(i):
        shared.reset()
        body(shared)

    def reentered(i):
        body(kept)

    return (measure("persistent tape", fresh, total, every),
            measure("tape re-entered + reset", reset, total, every),
            measure("tape re-entered", reentered, total, every))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the loops")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    print(f"minigrad {mg.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}; "
          f"RSS at start {rss_mb():.1f} MB")
    training(100_000 // scale, 10_000 // scale)
    hessian_vector(10_000 // scale, 1_000 // scale)
    tapes(10_000 // scale, 1_000 // scale)


if __name__ == "__main__":
    main()
