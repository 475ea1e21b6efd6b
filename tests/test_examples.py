"""Every example runs (shortened by its arguments) and prints what it promises.

The examples are found next to this file's directory (``<repo>/examples``), so the tests work
from any working directory; they run in a subprocess with the *installed* minigrad, in a
temporary directory so that nothing is written into the source tree.
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.skipif(
    not (EXAMPLES / "train_digits.py").is_file(),
    reason=f"the examples directory was not found at {EXAMPLES} (tests run outside a source checkout)",
)


def run_example(name, *args, cwd, timeout=120):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def check_default_run(out, epochs, plot, minimum):
    """The checks every digits example's default run shares; returns the printed accuracy."""
    losses = re.findall(rf"^epoch +(\d+)/{epochs} +loss ([\d.]+)", out, flags=re.M)
    assert len(losses) == epochs, out
    assert float(losses[-1][1]) < float(losses[0][1])
    accuracy = float(re.search(r"^test accuracy: ([\d.]+)% \((\d+)/(\d+) held-out", out, flags=re.M).group(1))
    assert accuracy >= minimum, out
    try:
        import matplotlib  # noqa: F401
        assert plot.stat().st_size > 0
    except ImportError:
        assert "matplotlib is not installed" in out and not plot.exists()
    return accuracy


def import_examples():
    """The example modules (train_digits, train_digits_cnn, digits_data), imported from EXAMPLES."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import digits_data
        import train_digits
        import train_digits_cnn
    finally:
        sys.path.remove(str(EXAMPLES))
    return train_digits, train_digits_cnn, digits_data


def test_train_digits_default_run_reaches_95_percent(tmp_path):
    # The README's first command, default arguments (about 2 s on 2 cores).
    out = run_example("train_digits.py", "--plot", tmp_path / "curves.png", "--save",
                      tmp_path / "weights.npz", cwd=tmp_path)
    accuracy = check_default_run(out, 30, tmp_path / "curves.png", 95.0)

    # The saved weights reproduce the printed accuracy.
    train_digits, _, digits_data = import_examples()
    rng = np.random.default_rng(0)
    images, labels = digits_data.load_digits()
    _, x_test, _, y_test = digits_data.train_test_split(images.astype(np.float32), labels, rng=rng)
    model = train_digits.make_model([128, 64], rng).load(tmp_path / "weights.npz")
    assert train_digits.accuracy(model, x_test, y_test) * 100 == pytest.approx(accuracy, abs=0.005)


def _without_times(text):
    return re.sub(r"\d+\.\ds", "<time>", text)


def test_train_digits_options_and_same_seed_same_run(tmp_path):
    args = ("--epochs", 2, "--hidden", 16, 8, "--batch-size", 64, "--lr", 0.01, "--seed", 3, "--no-plot")
    first = run_example("train_digits.py", *args, cwd=tmp_path)
    assert "MLP 64 -> 16 -> 8 -> 10 (1266 parameters)" in first
    assert len(re.findall(r"^epoch +\d+/2 ", first, flags=re.M)) == 2
    assert not list(tmp_path.glob("*.png"))
    assert _without_times(first) == _without_times(run_example("train_digits.py", *args, cwd=tmp_path))
    other = run_example("train_digits.py", *args[:-3], "--seed", 4, "--no-plot", cwd=tmp_path)
    assert _without_times(other) != _without_times(first)


def test_train_digits_rejects_bad_arguments(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "train_digits.py"), "--epochs", "0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--epochs" in proc.stderr


def test_gradient_check_example_catches_each_bug_with_its_check(tmp_path):
    out = run_example("gradient_check.py", cwd=tmp_path)
    assert "LogAddExp(" in out
    for name in ("test_forward_matches_numpy", "test_gradient", "test_second_derivative",
                 "test_all_dtypes_in_one_assertion"):
        assert f"{name}: passed" in out
    outcomes = re.findall(r"^   -> (.+)$", out, flags=re.M)
    assert outcomes == [
        "caught by gradcheck: input1 (12 wrong entries)",      # y's exponent slip
        "gradcheck passed",                                    # numpy backward: first order right
        "caught by gradgradcheck: input0 (24 wrong entries), input1 (16 wrong entries), "
        "u0 (24 wrong entries)",                               # ... but not differentiable
        "gradgradcheck passed",                                # smooth wrong vjp: self-consistent
        "caught by check_grads: input1 (12 wrong entries), input0 (12 wrong entries), "
        "input1 (12 wrong entries)",                           # ... caught against fn itself
        "gradcheck passed",                                    # naive formula, fine in float64
        "caught by gradcheck: input0 (144 wrong entries)",     # ... overflows in float16's float32
    ], out
    reports = out.split("\n== ")[1:]  # one section per check run
    assert len(reports) == 7
    assert "d out[0, 0] / d input1[0]" in reports[0] and "input value" in reports[0]
    assert "diagnosis: all zero: the tape never reached this input" in reports[2]
    assert ("check_grads failed. first derivatives: WRONG; second derivatives vs analytic first: "
            "agree; second derivatives vs fn: WRONG.") in reports[4]
    assert "diagnosis: wrong sign" in reports[4]
    assert "ulps of float16" in reports[6] and "an overflow, 0/0 or inf - inf" in reports[6]
    assert out.rstrip().endswith("all checks behaved as expected")


def test_gradient_check_example_runs_under_pytest(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(EXAMPLES / "gradient_check.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "4 passed" in proc.stdout, proc.stdout + proc.stderr


def test_labels_v1_v2_example_shows_the_difference(tmp_path):
    out = run_example("labels_v1_v2.py", "--steps", 30, cwd=tmp_path)
    row = re.search(r"^gradient into soft targets.*?(none \(constants\)) +([\d.e+-]+)$", out, flags=re.M)
    assert row and float(row.group(2)) > 0, out
    shift = re.search(r"^teacher weights vs teacher trained alone.*? ([\d.e+-]+) +([\d.e+-]+)$", out, flags=re.M)
    assert float(shift.group(1)) == 0.0 and float(shift.group(2)) > 0, out
    assert "v1: the teacher is exactly the teacher trained alone" in out


def test_tape_tour_example(tmp_path):
    out = run_example("tape_tour.py", cwd=tmp_path)
    for heading in ("1. Recording", "2. The graph behind f", "3. Backward, one node at a time",
                    "4. A second derivative"):
        assert f"== {heading}" in out
    assert "GradientTape(persistent=False) with 3 ops:" in out
    assert "(added to the earlier contribution)" in out
    by_hand = re.search(r"By hand: +df/dx = ([-+\d.]+) +df/dw = ([-+\d.]+)", out)
    calculus = re.search(r"calculus: +df/dx = .*?= ([-+\d.]+) +df/dw = .*?= ([-+\d.]+)", out)
    assert by_hand.groups() == calculus.groups()
    second = re.search(r"d2f/dx2 = ([-+\d.]+) +\(calculus: .*?= ([-+\d.]+),", out)
    assert second.group(1) == second.group(2)
    other = run_example("tape_tour.py", "--x", 2.0, "--w", 0.25, cwd=tmp_path)
    assert other != out and "d2f/dx2" in other


# -- examples/char_transformer.py -------------------------------------------------------------
TRANSFORMER_ARGS = ("--steps", 60, "--eval-every", 30, "--d-model", 32, "--heads", 2,
                    "--layers", 1, "--batch-size", 32, "--samples", 3)


def test_char_transformer_short_run_learns_samples_and_saves(tmp_path):
    # A shortened run (about 2 s); the default run reaches 100% (README.md, examples)
    out = run_example("char_transformer.py", *TRANSFORMER_ARGS, "--save", tmp_path / "gpt.npz",
                      cwd=tmp_path)
    assert re.search(r"^2-digit addition: 8000 training and 2000 held-out problems, e\.g\. "
                     r"'\d\d\+\d\d=\d\d\d'; transformer 1x\(d=32, heads=2\), \d+ parameters$", out, flags=re.M), out
    steps = re.findall(r"^step +(\d+)/60  loss ([\d.]+)  held-out exact match +([\d.]+)%", out, flags=re.M)
    assert [s[0] for s in steps] == ["30", "60"], out
    assert float(steps[1][1]) < float(steps[0][1]) < 2.6  # below log(12) = 2.48 plus noise: it learns
    final = re.search(r"^held-out exact-match accuracy: ([\d.]+)% \((\d+)/2000 problems\) after 60 steps",
                      out, flags=re.M)
    samples = re.findall(r"^  (\d\d)\+(\d\d)=(\d\d\d)  (right|wrong, expected \d\d\+\d\d=(\d\d\d))$", out, flags=re.M)
    assert len(samples) == 3, out
    for a, b, got, verdict, expected in samples:
        assert (verdict == "right") == (int(got) == int(a) + int(b))
        assert verdict == "right" or int(expected) == int(a) + int(b)

    # The saved weights give back the printed accuracy.
    sys.path.insert(0, str(EXAMPLES))
    try:
        import char_transformer as ct
    finally:
        sys.path.remove(str(EXAMPLES))
    rng = np.random.default_rng(0)
    _, test = ct.make_problems(rng)
    model = ct.TinyGPT(32, 2, 1, rng).load(tmp_path / "gpt.npz")
    assert round(ct.exact_match(model, test) * 2000) == int(final.group(2))


def test_char_transformer_same_seed_same_run_and_bad_arguments(tmp_path):
    args = ("--steps", 20, "--eval-every", 10, "--d-model", 16, "--heads", 2, "--layers", 1,
            "--batch-size", 16, "--samples", 2, "--seed", 5)
    first = run_example("char_transformer.py", *args, cwd=tmp_path)
    assert _without_times(first) == _without_times(run_example("char_transformer.py", *args, cwd=tmp_path))
    other = run_example("char_transformer.py", *args[:-1], 6, cwd=tmp_path)
    assert _without_times(other) != _without_times(first)
    for bad in (("--steps", "0"), ("--d-model", "30", "--heads", "4"), ("--lr", "-1")):
        proc = subprocess.run([sys.executable, str(EXAMPLES / "char_transformer.py"), *bad],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "error" in proc.stderr, bad


def test_train_digits_cnn_default_run_reaches_98_percent(tmp_path):
    # The default run (about 6 s on 2 cores): conv, batch norm and pooling on the digits.
    out = run_example("train_digits_cnn.py", "--plot", tmp_path / "cnn.png", "--save",
                      tmp_path / "cnn.npz", cwd=tmp_path)
    assert "CNN conv32-conv32-pool-conv64-pool-linear (30762 parameters)" in out
    accuracy = check_default_run(out, 15, tmp_path / "cnn.png", 98.0)

    # The saved weights (PyTorch's names, running statistics included) reproduce the accuracy.
    train_digits, train_digits_cnn, digits_data = import_examples()
    images, labels = digits_data.load_digits()
    _, x_test, _, y_test = digits_data.train_test_split(
        images.astype(np.float32).reshape(-1, 1, 8, 8), labels, rng=np.random.default_rng(0))
    model = train_digits_cnn.DigitsCNN(rng=1).load(tmp_path / "cnn.npz").eval()
    assert "features.1.running_var" in model.state_dict()
    assert train_digits.accuracy(model, x_test, y_test) * 100 == pytest.approx(accuracy, abs=0.005)


def test_train_digits_cnn_options_and_same_seed_same_run(tmp_path):
    args = ("--epochs", 2, "--channels", 4, 8, "--batch-size", 64, "--lr", 0.01,
            "--label-smoothing", 0, "--seed", 3, "--no-plot")
    first = run_example("train_digits_cnn.py", *args, cwd=tmp_path)
    assert "CNN conv4-conv4-pool-conv8-pool-linear (" in first
    assert len(re.findall(r"^epoch +\d+/2 ", first, flags=re.M)) == 2
    assert _without_times(first) == _without_times(run_example("train_digits_cnn.py", *args, cwd=tmp_path))
    proc = subprocess.run([sys.executable, str(EXAMPLES / "train_digits_cnn.py"), "--channels", "0", "8"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--channels" in proc.stderr
