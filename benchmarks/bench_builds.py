"""This build's cross-entropy kernels against another revision's, side by side in one process.

Run from the repository (the current build must be in place: ``python setup.py build_ext
--inplace``; OpenBLAS variables set on this machine slow numpy down):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_builds.py --base REV

The base revision's ``kernels/`` is built into a scratch directory as the extension module
``minigrad._xent_base`` (the same flags; another name, so both load into one process), and
its ``minigrad/_kernels.py`` is loaded over it as ``_kernels_base``. Each case then times both
builds in alternating rounds (base, new, base, new, ...; each round the median of repeated
calls) and prints the per-round times and the median ratio new / base, so that the machine's
drift hits both alike. Kernel calls reuse preallocated outputs; ``_kernels`` calls allocate
theirs, as the tape node does. A base kernel without the ``stats`` argument (before per-row
stats) is called without it.
"""
import argparse
import glob
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import minigrad
from minigrad import _dtypes, _kernels, _xent

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_base(rev, where):
    """Build rev's kernels as minigrad._xent_base under ``where``; return (kernel module,
    _kernels module bound to it)."""
    src = os.path.join(where, "src")
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", REPO, "archive", rev, "kernels", "minigrad", "setup.py"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    os.rename(os.path.join(src, "kernels", "_xent.pyx"), os.path.join(src, "kernels", "_xent_base.pyx"))
    for stub in glob.glob(os.path.join(src, "kernels", "*.pyi")):
        os.remove(stub)
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace", "-q"], cwd=src, check=True,
                   capture_output=True)
    path = glob.glob(os.path.join(src, "minigrad", "_xent_base*.so"))[0]
    spec = importlib.util.spec_from_file_location("minigrad._xent_base", path)
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    sys.modules["minigrad._xent_base"] = minigrad._xent_base = kernels
    with open(os.path.join(src, "minigrad", "_kernels.py")) as f:
        source = f.read().replace("from minigrad import _xent\n", "from minigrad import _xent_base as _xent\n")
        source = source.replace("from minigrad import _dtypes, _xent\n",
                                "from minigrad import _dtypes, _xent_base as _xent\n")
    layer = type(sys)("minigrad._kernels_base")
    exec(compile(source, "_kernels_base.py", "exec"), layer.__dict__)
    return kernels, layer


def takes_stats(kernel):
    """Whether a kernel entry point takes the stats argument (added with per-row stats)."""
    return "stats" in inspect.signature(kernel).parameters


def kernel_call(module, kind, logits, labels, threads):
    """A call of the module's raw kernel for the logits' dtype, outputs preallocated."""
    suffix = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}[logits.dtype.name]
    kernel = getattr(module, f"dense_{suffix}" if kind == "dense" else f"sparse_{suffix}_i64")
    bits = np.uint16 if logits.dtype.itemsize == 2 else logits.dtype
    out = [np.empty(len(logits), bits), np.empty(logits.shape, bits)]
    if takes_stats(kernel):
        out.append(np.empty((len(logits), 2)))
    x, labels = logits.view(bits), labels.view(bits) if kind == "dense" else labels
    return lambda: kernel(x, labels, *out, threads)


def layer_call(module, kind, logits, labels):
    fn = module.dense_loss_backprop if kind == "dense" else module.sparse_loss_backprop
    return lambda: fn(logits, labels)


def median_seconds(fn, min_time):
    """Median of repeated calls, in a loop long enough to time (at least 5 calls)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def compare(label, base_fn, new_fn, rounds, min_time, names=("base", "new")):
    base, new = [], []
    for r in range(rounds):
        # alternate which goes first, so that neither always runs on a warmer machine
        pair = [(base, base_fn), (new, new_fn)] if r % 2 == 0 else [(new, new_fn), (base, base_fn)]
        for times, fn in pair:
            times.append(median_seconds(fn, min_time))
    ratios = np.array(new) / np.array(base)
    unit, scale = ("ms", 1e3) if np.median(base) > 1e-4 else ("us", 1e6)
    first, second = names
    print(f"{label:<38} {first:>4} {np.median(base) * scale:8.3f} {unit}  {second:>4} {np.median(new) * scale:8.3f} "
          f"{unit}  {second}/{first} {np.median(ratios):5.3f} (rounds {ratios.min():.3f}-{ratios.max():.3f})", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per measurement")
    args = parser.parse_args()
    where = tempfile.mkdtemp(prefix="minigrad-base-")
    try:
        base, base_layer = build_base(args.base, where)
        print(f"base {args.base}: {base.COMPILE_ARGS}, clones {base.TARGET_CLONES}; "
              f"new: {_xent.COMPILE_ARGS}, clones {_xent.TARGET_CLONES}")
        rng = np.random.default_rng(0)
        for dtype in (np.float32, np.float16):
            for batch, classes in [(4096, 1000), (128, 10)]:
                logits = rng.standard_normal((batch, classes)).astype(dtype)
                labels = rng.integers(0, classes, batch)
                probs = rng.random((batch, classes))
                probs = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
                name = f"[{batch},{classes}] {np.dtype(dtype).name}"
                for kind, lab in (("sparse", labels), ("dense", probs)):
                    for threads in ((1, 2) if batch * classes > 1 << 20 and dtype == np.float32 else (1,)):
                        compare(f"{name} {kind} kernel {threads}t",
                                kernel_call(base, kind, logits, lab, threads),
                                kernel_call(_xent, kind, logits, lab, threads), args.rounds, args.min_time)
                    if batch * classes <= 1 << 20 and dtype == np.float32:
                        compare(f"{name} {kind} _kernels layer",
                                layer_call(base_layer, kind, logits, lab),
                                layer_call(_kernels, kind, logits, lab), args.rounds, args.min_time)
                    if dtype == np.float16 and _dtypes.bfloat16 is not None:
                        # bfloat16 has no base: beside this build's float16 (the same widening path)
                        bf16 = logits.astype(_dtypes.bfloat16)
                        compare(f"[{batch},{classes}] bfloat16 {kind} kernel 1t",
                                kernel_call(_xent, kind, logits, lab, 1),
                                kernel_call(_xent, kind, bf16, lab.astype(bf16.dtype) if kind == "dense" else lab, 1),
                                args.rounds, args.min_time, names=("f16", "bf16"))
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
