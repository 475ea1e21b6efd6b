"""Accuracy in ulps: minigrad's worst error per op and dtype, beside PyTorch's on the same inputs.

Run from the repository root (the cases live beside the tests, in tests/_accuracy_cases.py):

    python benchmarks/accuracy.py [--markdown] [--only SUBSTRING] [--seeds N] [--explain]

For each case (an op, a gradient or a cross-entropy output) and each dtype (float16, bfloat16
with ml_dtypes, float32, float64) both frameworks compute the op on the same inputs: a sweep of
magnitudes (subnormal, the smallest normal, around 1, 1e4, 1e8, near the dtype's largest
number, both signs, within the op's domain). The error of each result element is measured in
ulps of the dtype against the exact value (float64 for float16/bfloat16/float32 results,
x87 extended precision for float64 ones; math.fsum for sums), and the table gives the worst.
A non-finite result counts as 0 where the exact value rounds to that same non-finite value,
and as inf otherwise. Where the result is a difference of larger terms (a VJP, a signed sum,
the cross-entropy's backprop) the ulps are taken at the size of those terms (see the cases).

PyTorch's column is there when torch is importable (it is never a dependency); without it only
minigrad's column is printed. ``worse`` marks a row where minigrad's worst error exceeds
PyTorch's by more than 0.1 ulp (less is sampling noise: each figure is
the largest of many rounding errors); ``np`` marks the rows of numpy's own float32 transcendentals,
which issue 7 accepts (about 2 ulp against PyTorch's < 1).
"""

import argparse
import os
import platform
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))

import _accuracy_cases as cases  # noqa: E402
from _ulp import DTYPES, wide_dtype  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def worst_of(case, dtype, framework, seeds):
    """The worst error over the seeds' inputs and its message (None where PyTorch lacks the op)."""
    found = None
    for seed in seeds:
        arrays = case.inputs(dtype, np.random.default_rng(seed))
        with np.errstate(all="ignore"):
            if framework is None:
                got = cases.run_minigrad(case, arrays)
            else:
                got = cases.run_torch(case, dtype, arrays, framework)
                if got is None:
                    return None
            err = cases.report(case, dtype, arrays, got)
        if found is None or err[0] > found[0]:
            found = err
    return found


def rows(only=None, seeds=(0,)):
    """(case, dtype name, minigrad's worst ulps, PyTorch's or None, mark, messages) per case
    and dtype."""
    for case in cases.CASES:
        if only and only not in case.name:
            continue
        for name, dtype in DTYPES.items():
            if name not in case.bounds or wide_dtype(dtype) is None:
                continue
            if case.dtypes_ok is not None and case.dtypes_ok(dtype) is not None:
                continue
            ours, why = worst_of(case, dtype, None, seeds)
            theirs = their_why = None
            if torch is not None and case.torch is not None:
                found = worst_of(case, dtype, torch, seeds)
                if found is not None:
                    theirs, their_why = found
            mark = ""
            if theirs is not None and ours > theirs + 0.1:
                mark = "np" if name in case.numpy_libm else "worse"
            yield case, name, ours, theirs, mark, (why, their_why)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true",
                        help="a markdown table: a row per case, a column per dtype")
    parser.add_argument("--only", help="only the cases whose name contains this")
    parser.add_argument("--seeds", type=int, default=3, help="input sets per case (default 3)")
    parser.add_argument("--explain", action="store_true",
                        help="after each row, the worst input of each framework")
    args = parser.parse_args()

    torch_version = torch.__version__ if torch is not None else "not installed"
    print(f"# Python {platform.python_version()}, numpy {np.__version__}, torch {torch_version}, "
          f"{platform.machine()} {platform.processor() or ''}".rstrip())
    fmt = lambda v: "-" if v is None else ("inf" if v == np.inf else f"{v:.3g}")
    if args.markdown:
        markdown(rows(args.only, range(args.seeds)), fmt)
        return
    columns = ["case", "dtype", "bound", "minigrad"] + (["pytorch", ""] if torch is not None else [])
    print((f"{columns[0]:48s} {columns[1]:9s}" + "".join(f" {c:>9s}" for c in columns[2:])).rstrip())
    for case, name, ours, theirs, mark, whys in rows(args.only, range(args.seeds)):
        cells = [case.name, name, fmt(case.bounds[name]), fmt(ours)]
        if torch is not None:
            cells += [fmt(theirs), mark]
        print(f"{cells[0]:48s} {cells[1]:9s}" + "".join(f" {c:>9s}" for c in cells[2:]).rstrip())
        if args.explain:
            for who, why in zip(("minigrad", "pytorch"), whys):
                if why is not None:
                    print(f"    {who}: {why}")


def markdown(found, fmt):
    """One row per case, one column per dtype: minigrad's worst ulps (/ PyTorch's) and mark."""
    table = {}
    for case, name, ours, theirs, mark, _ in found:
        cell = fmt(ours) if torch is None else f"{fmt(ours)} / {fmt(theirs)}"
        table.setdefault(case.name, {})[name] = f"{cell} **{mark}**" if mark else cell
    names = list(DTYPES)
    print("| case | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for case_name, cells in table.items():
        print(f"| {case_name} | " + " | ".join(cells.get(n, "") for n in names) + " |")

if __name__ == "__main__":
    main()
