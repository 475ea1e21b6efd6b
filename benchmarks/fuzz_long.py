"""The long fuzz profile: tests/test_fuzz.py with random seeds in subprocesses, until a total
number of examples has run, catching crashes (a signal kills the process) and hangs (a
subprocess runs past its timeout) as well as failed properties.

    python benchmarks/fuzz_long.py                      # 10^5 examples, from the repo root
    python benchmarks/fuzz_long.py --total 20000 --chunk 500 --jobs 2

Each subprocess runs the whole fuzz module with ``MINIGRAD_FUZZ_EXAMPLES=<chunk>`` (examples
per test) and its own ``--hypothesis-seed``, so any finding is reproducible from the seed
printed beside it (and hypothesis prints the failing example and its blob). The tests import
whatever ``import minigrad`` finds: the installed package, or the source tree with
``PYTHONPATH=$PWD`` after ``python setup.py build_ext --inplace``. Exit status 1 if anything
was found.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def run_chunk(seed, chunk, timeout):
    """One subprocess: (seed, outcome, examples per entry point, seconds, output tail)."""
    with tempfile.TemporaryDirectory() as tmp:
        counts_path = os.path.join(tmp, "counts.json")
        env = dict(os.environ, MINIGRAD_FUZZ_EXAMPLES=str(chunk), MINIGRAD_FUZZ_COUNTS=counts_path,
                   PYTHONFAULTHANDLER="1")
        cmd = [sys.executable, "-m", "pytest", os.path.join(REPO, "tests", "test_fuzz.py"), "-q",
               "-p", "no:cacheprovider", f"--hypothesis-seed={seed}",
               "-o", f"faulthandler_timeout={max(1, timeout - 30)}"]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            if proc.returncode < 0:
                outcome = f"CRASH (signal {-proc.returncode})"
            elif proc.returncode == 0:
                outcome = "ok"
            else:
                outcome = f"FAILED (exit {proc.returncode})"
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            outcome = f"HANG (over {timeout} s)"
            output = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
                else (e.stdout or "")
        seconds = time.perf_counter() - start
        counts = {}
        if os.path.exists(counts_path):
            with open(counts_path) as f:
                counts = json.load(f)
    return seed, outcome, counts, seconds, output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=100_000,
                        help="stop once this many examples have run (default 10^5)")
    parser.add_argument("--chunk", type=int, default=1500,
                        help="examples per fuzz test in one subprocess (default 1500)")
    parser.add_argument("--jobs", type=int, default=1, help="subprocesses at once (default 1)")
    parser.add_argument("--timeout", type=int, default=1800,
                        help="seconds before a subprocess counts as hung (default 1800)")
    parser.add_argument("--log-dir", default=os.path.join(tempfile.gettempdir(), "minigrad-fuzz"),
                        help="where the full output of a failed subprocess is written")
    parser.add_argument("--seed", type=int, default=int(time.time()),
                        help="first hypothesis seed (default: the time); chunk i uses seed + i")
    args = parser.parse_args(argv)

    totals, findings, examples, next_seed = {}, [], 0, args.seed
    start = time.perf_counter()
    print(f"long fuzz: >= {args.total} examples, {args.chunk} per test per subprocess, "
          f"{args.jobs} at once, seeds from {args.seed}", flush=True)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        running = set()
        while examples < args.total or running:
            while examples < args.total and len(running) < args.jobs:
                running.add(pool.submit(run_chunk, next_seed, args.chunk, args.timeout))
                next_seed += 1
            done, running = concurrent.futures.wait(running, return_when="FIRST_COMPLETED")
            for future in done:
                seed, outcome, counts, seconds, output = future.result()
                ran = sum(n for k, n in counts.items() if k.startswith("example."))
                examples += ran
                for entry, n in counts.items():
                    totals[entry] = totals.get(entry, 0) + n
                print(f"  seed {seed}: {outcome}, {ran} examples in {seconds:.0f} s "
                      f"(total {examples})", flush=True)
                if outcome != "ok":
                    os.makedirs(args.log_dir, exist_ok=True)
                    log = os.path.join(args.log_dir, f"seed{seed}.log")
                    with open(log, "w") as f:
                        f.write(output)
                    findings.append((seed, outcome, log))
                    print(output[-3000:] + f"\n  (full output: {log})", flush=True)
                if ran == 0:
                    args.total = examples   # nothing ran (an import error?): stop submitting
    elapsed = time.perf_counter() - start
    print(f"\n{examples} examples in {elapsed:.0f} s ({examples / max(elapsed, 1e-9):.0f}/s), "
          f"{len(findings)} finding(s)")
    print("examples per fuzz test, and calls per family of entry points:")
    families = {}
    for entry, n in totals.items():
        kind, name = entry.split(".", 1)
        key = name if kind == "example" else "calls: " + name.split(".")[0]
        families[key] = families.get(key, 0) + n
    for key, n in sorted(families.items()):
        print(f"  {key:<22s} {n}")
    for seed, outcome, log in findings:
        print(f"  seed {seed}: {outcome}, output in {log}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
