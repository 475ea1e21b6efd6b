"""Forward+backward of softmax cross-entropy: minigrad's kernels vs the numpy reference and PyTorch.

Run (OpenBLAS variables set on this machine slow numpy down):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_xent.py [--quick | --tape]

Every timing is the median of repeated calls, all peers on the same inputs in
the same run. minigrad's kernels give loss and backprop in one call; PyTorch is
``F.cross_entropy(logits, target, reduction='sum')`` plus ``.backward()``
(class-index targets for sparse, probability targets for dense). "copy" is a
same-size ``np.copyto`` of the logits measured alongside: ``vs copy`` is the
kernel's time over the copy's time, ``GB/s`` counts bytes read and written
once, and ``of copy`` is that bandwidth as a fraction of the copy's.
"""
import argparse
import os
import platform
import time

import numpy as np

from minigrad import _config, _kernels, _xent
from minigrad._xent_reference import dense_loss_backprop_reference, sparse_loss_backprop_reference

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None

SHAPES = [(128, 10), (1024, 100), (4096, 1000), (8192, 1000), (256, 32000), (64, 128000)]


def median_time(fn, setup=None, min_time=0.2, max_reps=200, min_reps=3):
    """Median seconds of fn() over repetitions; setup() runs untimed before each."""
    fn()                                   # warm up: allocation, page faults, thread start
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def torch_step(logits, target):
    def step():
        x = torch.from_numpy(logits).requires_grad_()
        F.cross_entropy(x, target, reduction="sum").backward()
    return step


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}" + (
        f", torch {torch.__version__}" if torch is not None else ", torch not installed")


def bench_shapes(shapes, dtypes, thread_counts):
    rng = np.random.default_rng(0)
    print(f"{'shape':>13} {'dtype':>7} {'kind':>6} {'thr':>3} {'minigrad':>10} {'vs copy':>7} {'GB/s':>6} "
          f"{'of copy':>7} {'numpy ref':>10} {'ref/mg':>7} {'torch':>10} {'torch/mg':>8}")
    for batch, classes in shapes:
        for dtype in dtypes:
            logits = rng.standard_normal((batch, classes)).astype(dtype)
            labels = rng.integers(0, classes, batch)
            probs = rng.random((batch, classes)).astype(dtype)
            probs /= probs.sum(axis=1, keepdims=True)
            out = np.empty_like(logits)
            copy_time = median_time(lambda: np.copyto(out, logits))
            copy_bw = 2 * logits.nbytes / copy_time
            itemsize = logits.itemsize
            for kind in ("sparse", "dense"):
                if kind == "sparse":
                    ours = lambda: _kernels.sparse_loss_backprop(logits, labels)
                    ref = lambda: sparse_loss_backprop_reference(logits, labels)
                    nbytes = 2 * logits.nbytes + batch * (8 + itemsize)
                    target = torch.from_numpy(labels) if torch is not None else None
                else:
                    ours = lambda: _kernels.dense_loss_backprop(logits, probs)
                    ref = lambda: dense_loss_backprop_reference(logits, probs)
                    nbytes = 3 * logits.nbytes + batch * itemsize
                    target = torch.from_numpy(probs) if torch is not None else None
                ref_time = median_time(ref, min_time=0.05, max_reps=20, min_reps=1)
                for threads in thread_counts:
                    _config.set_num_threads(threads)
                    used = _config.threads_for(logits.size)
                    ours_time = median_time(ours)
                    torch_text = f"{'-':>10} {'-':>8}"
                    if torch is not None:
                        torch.set_num_threads(threads)
                        torch_time = median_time(torch_step(logits, target))
                        torch_text = f"{torch_time * 1e3:8.3f}ms {torch_time / ours_time:7.1f}x"
                    bw = nbytes / ours_time
                    print(f"{str([batch, classes]):>13} {np.dtype(dtype).name:>7} {kind:>6} {used:>3} "
                          f"{ours_time * 1e3:8.3f}ms {ours_time / copy_time:6.2f}x {bw / 1e9:6.1f} "
                          f"{bw / copy_bw:7.2f} {ref_time * 1e3:8.2f}ms {ref_time / ours_time:6.1f}x {torch_text}",
                          flush=True)


def bench_after_matmul(shapes, thread_counts):
    """The loss right after a numpy matmul (OpenBLAS workers still spinning) vs alone."""
    print("\nloss right after `hidden @ weights` (float32 sparse; thr: threads used) vs alone")
    print(f"{'shape':>13} {'thr':>3} {'alone':>10} {'after matmul':>12} {'ratio':>6}")
    rng = np.random.default_rng(1)
    for batch, classes in shapes:
        hidden = rng.standard_normal((batch, 256)).astype(np.float32)
        weights = rng.standard_normal((256, classes)).astype(np.float32) / 16
        logits = hidden @ weights
        labels = rng.integers(0, classes, batch)
        for threads in thread_counts:
            _config.set_num_threads(threads)
            call = lambda: _kernels.sparse_loss_backprop(logits, labels)
            alone = median_time(call, min_time=0.3)
            after = median_time(call, setup=lambda: hidden @ weights, min_time=0.3)
            print(f"{str([batch, classes]):>13} {_config.threads_for(logits.size):>3} {alone * 1e3:8.3f}ms "
                  f"{after * 1e3:10.3f}ms {after / alone:6.2f}")


def bench_thread_policy(shapes):
    """1 vs 2 forced threads: back to back, after a 5 ms idle pause, right after a matmul."""
    print("\nthread policy: float32 sparse kernel, forced thread count, median microseconds")
    print(f"{'shape':>13} {'hot 1t':>8} {'hot 2t':>8} {'idle 1t':>8} {'idle 2t':>8} {'mm 1t':>8} {'mm 2t':>8}")
    rng = np.random.default_rng(2)
    square = rng.standard_normal((512, 512)).astype(np.float32)
    for batch, classes in shapes:
        logits = rng.standard_normal((batch, classes)).astype(np.float32)
        labels = rng.integers(0, classes, batch)
        loss, backprop, stats = np.empty(batch, np.float32), np.empty_like(logits), np.empty((batch, 2))
        row = []
        for setup in (None, lambda: time.sleep(0.005), lambda: square @ square):
            for threads in (1, 2):
                call = lambda: _xent.sparse_f32_i64(logits, labels, loss, backprop, stats, threads)
                row.append(median_time(call, setup=setup, min_time=0.2, max_reps=60) * 1e6)
        print(f"{str([batch, classes]):>13} " + " ".join(f"{t:8.0f}" for t in row), flush=True)


def bench_call_overhead():
    """Fixed cost of one call at [128, 10] float32, layer by layer (targets: raw op <= 10 us,
    an nn call through the tape <= 25 us)."""
    import minigrad

    rng = np.random.default_rng(3)
    logits = rng.standard_normal((128, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 128)
    probs = np.eye(10, dtype=np.float32)[labels]
    leaf = minigrad.tensor(logits, requires_grad=True)
    nn, raw = minigrad.nn, minigrad.raw_ops

    def nn_backward(fn):
        def step():
            leaf.grad = None
            fn().sum().backward()
        return step

    rows = {
        "sparse": [
            ("_kernels layer", lambda: _kernels.sparse_loss_backprop(logits, labels)),
            ("raw op", lambda: raw.SparseSoftmaxCrossEntropyWithLogits(features=logits, labels=labels)),
            ("nn call (tape)", lambda: nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=leaf)),
            ("nn + backward", nn_backward(lambda: nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=leaf))),
        ],
        "dense": [
            ("_kernels layer", lambda: _kernels.dense_loss_backprop(logits, probs)),
            ("raw op", lambda: raw.SoftmaxCrossEntropyWithLogits(features=logits, labels=probs)),
            ("nn call (tape)", lambda: nn.softmax_cross_entropy_with_logits(labels=probs, logits=leaf)),
            ("nn + backward", nn_backward(lambda: nn.softmax_cross_entropy_with_logits(labels=probs, logits=leaf))),
        ],
    }
    print("\none call at [128, 10] float32, median microseconds")
    for kind, calls in rows.items():
        line = [f"{kind:>6}:"]
        for name, fn in calls:
            t = median_time(fn, min_time=0.3, max_reps=100000)
            line.append(f"{name} {t * 1e6:5.1f}")
        if torch is not None:
            target = torch.from_numpy(labels if kind == "sparse" else probs)
            line.append(f"torch fwd+bwd {median_time(torch_step(logits, target), min_time=0.3, max_reps=100000) * 1e6:5.1f}")
        print("  ".join(line), flush=True)


def bench_tape(shapes, thread_counts, rounds=5):
    """What users run, against the raw op and PyTorch, float32, in rotating rounds.

    * raw sparse / raw dense: ``raw_ops.*SoftmaxCrossEntropyWithLogits`` on ndarrays (the
      backprop *is* the gradient);
    * tape: ``nn.sparse_softmax_cross_entropy_with_logits`` on a leaf, ``.sum().backward()``;
    * mean: ``nn.cross_entropy`` (mean) on a leaf, ``.backward()``;
    * torch: ``F.cross_entropy`` (sum) on a leaf + backward, at the same thread count.
    Each round times every block after a 0.3 s pause (thread pools go idle); the table gives
    the median over rounds of each time and of the per-round ratios.
    """
    import minigrad
    from minigrad import nn, raw_ops

    print("through the tape, float32 (median of rounds; ratios per round, then median)")
    header = (f"{'shape':>14} {'thr':>3} {'raw sp ms':>9} {'tape ms':>8} {'mean ms':>8} "
              f"{'raw de ms':>9} {'torch sp':>8} {'torch de':>8} {'tape/raw':>8} "
              f"{'torch/raw':>9} {'torch/tape':>10} {'torch/dense':>11}")
    print(header)
    print("-" * len(header))
    for n, c in shapes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, c)).astype(np.float32)
        y = rng.integers(0, c, n)
        probs = np.full((n, c), 1.0 / c, np.float32)
        for threads in thread_counts:
            _config.set_num_threads(threads)
            if torch is not None:
                torch.set_num_threads(threads)
            leaf = minigrad.tensor(x, requires_grad=True)

            def tape():
                leaf.grad = None
                nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=leaf).sum().backward()

            def mean():
                leaf.grad = None
                nn.cross_entropy(leaf, y).backward()

            blocks = {
                "raw_sp": lambda: raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=x, labels=y),
                "tape": tape, "mean": mean,
                "raw_de": lambda: raw_ops.SoftmaxCrossEntropyWithLogits(features=x, labels=probs),
            }
            if torch is not None:
                ty, tp = torch.from_numpy(y), torch.from_numpy(probs)
                blocks["torch_sp"] = torch_step(x, ty)
                blocks["torch_de"] = torch_step(x, tp)
            times = {k: [] for k in blocks}
            for _ in range(rounds):
                for name, fn in blocks.items():
                    time.sleep(0.3)
                    times[name].append(median_time(fn, min_time=0.3))
            med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
            ratio = lambda a, b: float(np.median(np.array(times[a]) / np.array(times[b])))  # noqa: E731
            t = (f"{ratio('torch_sp', 'raw_sp'):>9.2f} {ratio('torch_sp', 'tape'):>10.2f} "
                 f"{ratio('torch_de', 'raw_de'):>11.2f}" if torch is not None else "")
            print(f"{str((n, c)):>14} {threads:>3} {med['raw_sp']:>9.3f} {med['tape']:>8.3f} "
                  f"{med['mean']:>8.3f} {med['raw_de']:>9.3f} "
                  f"{med.get('torch_sp', float('nan')):>8.3f} {med.get('torch_de', float('nan')):>8.3f} "
                  f"{ratio('tape', 'raw_sp'):>8.2f} {t}")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes, float32 only")
    parser.add_argument("--tape", action="store_true",
                        help="only the tape-level table (what users run) at [4096, 1000] and "
                             "[256, 32000], 1 and 2 threads, against the raw ops and PyTorch")
    args = parser.parse_args()
    if args.tape:
        print(machine())
        default_threads = _config.get_num_threads()
        try:
            bench_tape([(4096, 1000), (256, 32000)], [1, 2])
        finally:
            _config.set_num_threads(default_threads)
        return
    print(machine())
    info = _config.show_config(print_=False)
    print(f"minigrad: openmp={info['openmp']} flags='{info['compile_args']}' "
          f"target_clones={info['target_clones']} parallel_min_size={info['parallel_min_size']}\n")
    default_threads = _config.get_num_threads()
    shapes = SHAPES[1:3] if args.quick else SHAPES
    dtypes = [np.float32] if args.quick else [np.float32, np.float64]
    try:
        bench_shapes(shapes, dtypes, [1, 2])
        _config.set_num_threads(default_threads)
        if torch is not None:
            torch.set_num_threads(default_threads)
        bench_after_matmul([(128, 10), (1024, 100), (4096, 1000), (8192, 1000), (512, 65536)], [1, 2])
        bench_thread_policy([(128, 10), (1024, 100), (1024, 256), (2048, 256), (4096, 256), (4096, 1000)])
        bench_call_overhead()
    finally:
        _config.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
