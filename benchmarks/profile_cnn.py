"""Where the digits CNN's training step spends its time: CPU time per op type, page faults.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/profile_cnn.py [--batch 32 128]

Each op class's ``forward`` is wrapped to add up its process CPU time (the backward pass is
made of the forward calls of the VJP ops), over steps of ``bench_train.py``'s CNN step; minor
page faults per step come from ``getrusage``. One BLAS thread, so CPU time is the step's time.
"""

import argparse
import collections
import resource
import time

import numpy as np

import minigrad
from bench_train import cnn_steps


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def profile(batch, steps):
    rng = np.random.default_rng(batch)
    x = rng.random((batch, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    _, step, _ = cnn_steps(x, y)
    for _ in range(10):
        step()
    spent, calls = collections.Counter(), collections.Counter()
    originals = {}
    for cls in set(_subclasses(minigrad.Op)):
        if "forward" in vars(cls):
            originals[cls] = forward = vars(cls)["forward"]

            def timed(self, *arrays, _forward=forward, _name=cls.__name__):
                t = time.process_time()
                try:
                    return _forward(self, *arrays)
                finally:
                    spent[_name] += time.process_time() - t
                    calls[_name] += 1
            cls.forward = timed
    try:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.process_time()
        for _ in range(steps):
            step()
        total = (time.process_time() - start) / steps
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
    finally:
        for cls, forward in originals.items():
            cls.forward = forward
    print(f"batch {batch}: step {total * 1e6:.0f} us CPU, {faults:.0f} minor page faults per step, "
          f"op forwards {sum(spent.values()) / steps * 1e6:.0f} us")
    for name, seconds in spent.most_common():
        print(f"  {name:<16} {seconds / steps * 1e6:8.1f} us  {calls[name] / steps:4.0f} calls")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    for batch in args.batch:
        profile(batch, args.steps)


if __name__ == "__main__":
    main()
