"""Thread count and build information for the compiled kernels.

The kernels take their thread count as an argument on every call, so the
setting here is plain Python state: it touches no OpenMP global and no other
library in the process (numpy's OpenBLAS, PyTorch's own OpenMP runtime).
"""
import os

import numpy as np

__all__ = ["set_num_threads", "get_num_threads", "show_config"]

# Below this many logits (batch * classes) a call runs on one thread, whatever
# get_num_threads() says: waking a sleeping second thread costs about what it
# saves below ~1M logits (benchmarks/README.md, "Thread policy").
PARALLEL_MIN_SIZE = 1 << 20


def _default_num_threads():
    """OMP_NUM_THREADS if set, else ONE thread.

    One thread by default, by measurement (benchmarks/README.md, "Thread policy"): in a
    network the loss comes right after a numpy matmul, and OpenBLAS leaves its workers
    spinning on the other cores for 100-200 ms after one. A 2-thread call then waits
    3-11 ms for a core: slower than one thread at every size measured (2.3x at
    [4096, 1000], 1.2x at 32M logits). Opting in (OMP_NUM_THREADS, set_num_threads) pays where the loss is not next
    to BLAS calls: two threads halve the time above PARALLEL_MIN_SIZE. The OpenMP wait
    policy is left alone: it is process-wide, and PASSIVE made 2 threads no faster than
    1 on this VM.
    """
    env = os.environ.get("OMP_NUM_THREADS", "")
    # OMP_NUM_THREADS may be a list ("4,2") for nested levels: the first counts.
    first = env.split(",")[0].strip()
    if first.isdigit() and int(first) > 0:
        return min(int(first), MAX_THREADS)
    return 1


# More threads than this only oversubscribes the machine; a huge team makes libgomp fail.
MAX_THREADS = 4 * (os.cpu_count() or 1)


_num_threads = _default_num_threads()


def set_num_threads(n):
    """Set how many threads the cross-entropy kernels may use (``n >= 1``).

    Examples
    --------
    >>> from minigrad._config import set_num_threads, get_num_threads
    >>> old = get_num_threads()
    >>> set_num_threads(1); get_num_threads()
    1
    >>> set_num_threads(old)
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads() expects an int, got {type(n).__name__} {n!r}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads() expects 1 <= n <= {MAX_THREADS} (4 per CPU), got {n}")
    _num_threads = int(n)


def get_num_threads():
    """The thread count for the kernels: set_num_threads(), else OMP_NUM_THREADS, else 1;
    and 1 in a forked child process, where the kernels run on one thread (see below)."""
    return 1 if _in_forked_child else _num_threads


_in_forked_child = False


def _after_fork_in_child():
    # libgomp's thread pool does not survive fork(): a parallel call in the child of a
    # process that has used threads hangs. A forked child (e.g. a multiprocessing worker)
    # therefore runs the kernels on one thread.
    global _in_forked_child
    _in_forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def threads_for(size):
    """Threads for one kernel call over ``size`` logits: one below PARALLEL_MIN_SIZE, and
    one in a forked child process."""
    return 1 if size < PARALLEL_MIN_SIZE else get_num_threads()


def show_config(print_=True):
    """Report how the kernels were built and how they will run; returns the report as a dict.

    Examples
    --------
    >>> from minigrad._config import show_config
    >>> sorted(show_config(print_=False))  # doctest: +NORMALIZE_WHITESPACE
    ['bfloat16', 'compile_args', 'ml_dtypes', 'num_threads', 'numpy', 'openmp',
     'openmp_version', 'parallel_min_size', 'simd', 'target_clones']

    ``simd`` says which reductions the long rows use: ``"avx512"``, ``"avx2"`` (the best
    the CPU has, at most the environment variable ``MINIGRAD_SIMD``) or ``"generic"``.
    ``bfloat16`` says whether bfloat16 tensors and kernels are available (they need the
    optional package ml_dtypes), ``ml_dtypes`` its version, or None.
    """
    from minigrad import _dtypes, _xent

    info = {
        "openmp": bool(_xent.OPENMP_VERSION),
        "openmp_version": _xent.OPENMP_VERSION,
        "compile_args": _xent.COMPILE_ARGS,
        "target_clones": _xent.TARGET_CLONES,
        "simd": _xent.simd_level(),
        "num_threads": get_num_threads() if _xent.OPENMP_VERSION else 1,
        "parallel_min_size": PARALLEL_MIN_SIZE,
        "numpy": np.__version__,
        "bfloat16": _dtypes.bfloat16 is not None,
        "ml_dtypes": _dtypes.ml_dtypes.__version__ if _dtypes.ml_dtypes is not None else None,
    }
    if print_:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}} : {value}")
    return info
