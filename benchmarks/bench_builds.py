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

With ``--wall``, each case (``--shapes``, ``--dtypes``, ``--threads``) times in rotating rounds
the base kernel, this build's kernel and ``_kernels`` layer, an ``np.copyto`` of the logits'
bytes and PyTorch's ``F.cross_entropy`` + ``backward`` at the same thread count (class indices
or probability targets), and prints the time ratios: new/base, copy/new (the bandwidth
fraction of the issue's memory-wall target) and torch/new. Blocks with two threads or PyTorch
start after an idle ``--pause``, so that no thread pool is still spinning from the block before.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_builds.py --base REV --wall
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


def cpu_counters():
    """(busy and total CPU seconds of the whole machine, CPU seconds of this process); the
    machine's from /proc/stat (zeros where there is none)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        ticks = [0] * 8
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz, time.process_time()


def others_share(before, after):
    """The share of the machine's CPU time that other processes used between two
    cpu_counters() readings (0 to 1; NaN without /proc/stat)."""
    busy, total, ours = (b - a for a, b in zip(before, after))
    return max(0.0, busy - ours) / total if total else float("nan")


def measure(fns, rounds, min_time, pause):
    """{name: [seconds per round]}: each round times every fn (the median of repeated calls),
    rotating which goes first, so that drift and a warm machine hit all alike. With pause >
    0, sleep that long before each block, so that the thread pools of the previous block
    (ours, PyTorch's) have gone idle and do not compete with this one for the 2 vCPUs."""
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if pause:
                time.sleep(pause)
            times[name].append(median_seconds(fns[name], min_time))
    return {name: np.array(t) for name, t in times.items()}


def ratio_text(num, den):
    ratios = num / den
    return f"{np.median(ratios):6.3f} ({ratios.min():.2f}-{ratios.max():.2f})"


def time_text(seconds):
    t = np.median(seconds)
    return f"{t * 1e3:8.3f} ms" if t > 1e-4 else f"{t * 1e6:8.3f} us"


def compare(label, base_fn, new_fn, rounds, min_time, names=("base", "new")):
    first, second = names
    t = measure({first: base_fn, second: new_fn}, rounds, min_time, 0.0)
    print(f"{label:<38} {first:>4} {time_text(t[first])}  {second:>4} {time_text(t[second])}  "
          f"{second}/{first} {ratio_text(t[second], t[first])}", flush=True)


def torch_call(kind, logits, labels, threads):
    """PyTorch's F.cross_entropy (class indices or probability targets) + backward, or None."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    if logits.dtype.itemsize == 2:   # float16 or bfloat16 (ml_dtypes): through float32
        x = torch.from_numpy(logits.astype(np.float32)).to(getattr(torch, logits.dtype.name))
    else:
        x = torch.from_numpy(logits)
    target = torch.from_numpy(labels) if kind == "sparse" else torch.from_numpy(labels.astype(np.float32)).to(x.dtype)

    def step():
        torch.set_num_threads(threads)
        leaf = x.detach().requires_grad_()
        F.cross_entropy(leaf, target, reduction="sum").backward()
    return step


def wall(base, args):
    """The kernels against the base build, a same-size np.copyto and PyTorch, per case."""
    from minigrad import _config
    rng = np.random.default_rng(0)
    dtypes = [_dtypes.as_dtype(d) for d in args.dtypes.split(",")]
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    threads_list = [int(t) for t in args.threads.split(",")]
    print("new/base: time ratio (< 1: faster); copy/new: a same-size np.copyto's time over the kernel's "
          "(the bandwidth fraction); torch/new and torch/layer: PyTorch's time over ours. Medians over "
          "rounds, (min-max) in brackets. kernel: preallocated outputs; layer: _kernels.*_loss_backprop, "
          "which allocates them (as the tape node does). others: the share of the machine's CPU time "
          "that other processes used during the case.")
    for dtype in dtypes:
        for batch, classes in shapes:
            logits = rng.standard_normal((batch, classes)).astype(dtype)
            labels = rng.integers(0, classes, batch)
            probs = rng.random((batch, classes))
            probs = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
            out = np.empty_like(logits)
            for kind, lab in (("sparse", labels), ("dense", probs)):
                for threads in threads_list:
                    _config.set_num_threads(threads)
                    layer = layer_call(_kernels, kind, logits, lab)
                    fns = {"new": kernel_call(_xent, kind, logits, lab, threads),
                           "layer": layer, "copy": lambda: np.copyto(out, logits)}
                    if hasattr(base, f"{kind}_{SUFFIX[logits.dtype.name]}" + ("_i64" if kind == "sparse" else "")):
                        fns["base"] = kernel_call(base, kind, logits, lab, threads)
                    step = torch_call(kind, logits, lab, threads) if args.torch else None
                    if step is not None:
                        fns["torch"] = step
                    before = cpu_counters()
                    t = measure(fns, args.rounds, args.min_time, args.pause if threads > 1 or step else 0.0)
                    others = others_share(before, cpu_counters())
                    line = f"[{batch},{classes}] {np.dtype(dtype).name} {kind} {threads}t".ljust(30)
                    if "base" in t:
                        line += f" base {time_text(t['base'])}"
                    line += f"  new {time_text(t['new'])}  layer {time_text(t['layer'])}"
                    if "base" in t:
                        line += f"  new/base {ratio_text(t['new'], t['base'])}"
                    line += f"  copy/new {ratio_text(t['copy'], t['new'])}"
                    if "torch" in t:
                        line += (f"  torch {time_text(t['torch'])}  torch/new {ratio_text(t['torch'], t['new'])}"
                                 f"  torch/layer {ratio_text(t['torch'], t['layer'])}")
                    print(line + f"  others {others:.0%}", flush=True)


SUFFIX = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per measurement")
    parser.add_argument("--wall", action="store_true",
                        help="per shape, dtype and thread count: base, new, copy and PyTorch side by side")
    parser.add_argument("--shapes", default="4096x1000,256x32000,128x10,32768x1000", help="with --wall")
    parser.add_argument("--dtypes", default="float32", help="with --wall, e.g. float32,float16,bfloat16")
    parser.add_argument("--threads", default="1,2", help="with --wall")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="with --wall")
    parser.add_argument("--pause", type=float, default=0.3,
                        help="with --wall: idle seconds before each block with 2+ threads or PyTorch")
    args = parser.parse_args()
    where = tempfile.mkdtemp(prefix="minigrad-base-")
    try:
        base, base_layer = build_base(args.base, where)
        print(f"base {args.base}: {base.COMPILE_ARGS}, clones {base.TARGET_CLONES}; "
              f"new: {_xent.COMPILE_ARGS}, clones {_xent.TARGET_CLONES}")
        if args.wall:
            wall(base, args)
            return
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
