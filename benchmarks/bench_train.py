"""Time per training step, minigrad vs PyTorch CPU, side by side: a 64-256-256-10 MLP, the
digits CNN, the tiny transformer of ``examples/char_transformer.py``, and a chain of 20 small
elementwise ops (the per-op overhead).

Run (OpenBLAS variables set on this machine slow numpy down):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py [--quick]
        [--model mlp|cnn|transformer|chain|all]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/bench_train.py

PyTorch runs at numpy's BLAS thread count (``OPENBLAS_NUM_THREADS``, else the CPU count), and
each framework is timed in its own block, after a pause that lets the other's thread pool go
idle. ``--repeat N`` alternates the blocks N times and reports medians and the median of the
pairs' ratios.

One step is what a training loop does per minibatch: ``zero_grad``, forward, the loss,
backward, and an optimizer step. Both frameworks run float32, the same architecture, batch
sizes and optimizer, in the same process on the same inputs. Each figure is the median over
repeated steps after warm-up.

* **MLP**: three Linear layers with ReLU, the fused softmax cross-entropy against integer
  labels (mean), Adam (``--optimizer sgd`` for SGD with momentum). ``matmuls`` is the
  framework's matrix multiply alone doing the eight products of a step (3 forward, 5
  backward): the floor under each step.
* **CNN**: ``examples/train_digits_cnn.py``'s ``DigitsCNN`` (three 3x3 convolutions, 32-32-64
  channels, with batch norm and ReLU, two 2x2 max-pools, a linear layer) on ``[batch, 1, 8,
  8]`` float32 images, with the same model built from ``torch.nn`` layers and loaded with
  minigrad's initial weights; mean cross-entropy with label smoothing 0.1, AdamW.
* **Transformer**: the example's model (2 pre-norm blocks, d_model 64, 4 heads, GELU MLP,
  causal ``scaled_dot_product_attention``) on a batch of its addition problems, logits
  ``[batch, 3, 12]`` into the fused sparse cross-entropy, AdamW; the PyTorch model is the
  same architecture written with ``torch.nn`` and loaded with minigrad's initial weights (the
  printed first losses check that both compute the same function).
* **Chain**: 20 elementwise ops on ``[64, 64]`` float32 (tanh, multiply, add in turn), then a
  sum and backward: what each recorded op costs beyond its arithmetic.

Columns: ``fwd+bwd`` (no optimizer), ``step`` (with it), in microseconds; ``ratio`` is
minigrad's step time over PyTorch's (< 1: faster).
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import minigrad
from minigrad import nn, optim

try:
    import torch
except ImportError:
    torch = None

SIZES = (64, 256, 256, 10)
# numpy's BLAS thread count, which PyTorch is given too (pthreads OpenBLAS reads these)
BLAS_THREADS = int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
                   or os.cpu_count())
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")


def settle(seconds=0.5):
    """Pause so that the thread pool of whatever ran last stops spinning before the next block."""
    time.sleep(seconds)


def median_time(fn, min_time=0.5, max_reps=2000, min_reps=20, warmup=5, clock=time.perf_counter):
    """Median seconds of ``fn()`` over repetitions, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t = clock()
        fn()
        times.append(clock() - t)
    return float(np.median(times))


def minigrad_steps(x, y, optimizer, seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        layers += [nn.Linear(n_in, n_out, rng=rng), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    opt = (optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else optim.SGD(model.parameters(), lr=1e-2, momentum=0.9))

    def fwd_bwd():
        model.zero_grad()
        nn.cross_entropy(model(x), y).backward()

    def step():
        opt.zero_grad()
        nn.cross_entropy(model(x), y).backward()
        opt.step()

    return fwd_bwd, step


def torch_steps(x, y, optimizer):
    torch.manual_seed(0)
    layers = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.functional.cross_entropy

    def fwd_bwd():
        model.zero_grad()
        loss_fn(model(tx), ty).backward()

    def step():
        opt.zero_grad()
        loss_fn(model(tx), ty).backward()
        opt.step()

    return fwd_bwd, step


def matmuls_only(x, to_tensor=lambda a: a):
    """The eight products of one step (in numpy, or in torch with ``to_tensor``): the floor
    under a framework's step, whatever it does around its matrix products."""
    rng = np.random.default_rng(0)
    ws = [to_tensor(rng.standard_normal((a, b)).astype(np.float32))
          for a, b in zip(SIZES[:-1], SIZES[1:])]
    x = to_tensor(x)

    def run():
        h = [x]
        for w in ws:
            h.append(h[-1] @ w)
        g = h[-1]
        for i in reversed(range(len(ws))):
            _ = h[i].T @ g  # weight gradient
            if i:
                g = g @ ws[i].T  # input gradient
    return run


def cnn_steps(x, y):
    """minigrad's DigitsCNN: (fwd_bwd, step) closures and the model (for its weights)."""
    sys.path.insert(0, EXAMPLES)
    try:
        from train_digits_cnn import DigitsCNN
    finally:
        sys.path.remove(EXAMPLES)
    model = DigitsCNN(rng=0)
    opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)

    def fwd_bwd():
        model.zero_grad()
        nn.cross_entropy(model(x), y, label_smoothing=0.1).backward()

    def step():
        opt.zero_grad()
        nn.cross_entropy(model(x), y, label_smoothing=0.1).backward()
        opt.step()

    return fwd_bwd, step, model


def torch_cnn_steps(x, y, weights, channels=(32, 64)):
    """The same network from torch.nn layers, loaded with minigrad's initial ``weights``."""
    tn = torch.nn
    c1, c2 = channels
    model = tn.Module()
    model.features = tn.Sequential(
        tn.Conv2d(1, c1, 3, padding=1, bias=False), tn.BatchNorm2d(c1), tn.ReLU(),
        tn.Conv2d(c1, c1, 3, padding=1, bias=False), tn.BatchNorm2d(c1), tn.ReLU(), tn.MaxPool2d(2),
        tn.Conv2d(c1, c2, 3, padding=1, bias=False), tn.BatchNorm2d(c2), tn.ReLU(), tn.MaxPool2d(2))
    model.classifier = tn.Sequential(tn.Flatten(), tn.Linear(4 * c2, 10))
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def loss():
        return torch.nn.functional.cross_entropy(model.classifier(model.features(tx)), ty,
                                                 label_smoothing=0.1)

    def fwd_bwd():
        model.zero_grad()
        loss().backward()

    def step():
        opt.zero_grad()
        loss().backward()
        opt.step()

    return fwd_bwd, step


def bench_mlp(args, us):
    print(f"MLP {'-'.join(map(str, SIZES))} float32, ReLU, mean cross-entropy, {args.optimizer}")
    header = f"{'batch':>6} {'framework':>10} {'fwd+bwd us':>11} {'step us':>9} {'matmuls us':>11} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for batch in args.batch or [64, 512]:
        rng = np.random.default_rng(batch)
        x = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
        y = rng.integers(0, SIZES[-1], size=batch)
        fb, st = minigrad_steps(x, y, args.optimizer)
        rows = [("minigrad", us(fb), us(st), us(matmuls_only(x)))]
        if torch is not None:
            settle()
            with torch.no_grad():
                floor = us(matmuls_only(x, torch.from_numpy))
            fb, st = torch_steps(x, y, args.optimizer)
            rows.append(("pytorch", us(fb), us(st), floor))
            settle()
        for name, t_fb, t_step, t_mm in rows:
            ratio = f"{rows[0][2] / rows[1][2]:.2f}" if len(rows) > 1 and name == "minigrad" else ""
            print(f"{batch:>6} {name:>10} {t_fb:>11.0f} {t_step:>9.0f} {t_mm:>11.0f} {ratio:>7}")


def bench_cnn(args, us):
    print("digits CNN (examples/train_digits_cnn.py) float32 [batch, 1, 8, 8], label smoothing 0.1, AdamW")
    header = f"{'batch':>6} {'framework':>10} {'fwd+bwd us':>11} {'step us':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for batch in args.batch or [32, 128]:
        rng = np.random.default_rng(batch)
        x = rng.random((batch, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 10, size=batch)
        ours, theirs, ratios = [], [], []
        for _ in range(args.repeat):   # alternating blocks; the ratio is each pair's
            fb, st, model = cnn_steps(x, y)
            ours.append((us(fb), us(st)))
            if torch is not None:
                settle()
                fb, st = torch_cnn_steps(x, y, model.state_dict())
                theirs.append((us(fb), us(st)))
                ratios.append(ours[-1][1] / theirs[-1][1])
                settle()
        rows = [("minigrad", *np.median(ours, axis=0))]
        if theirs:
            rows.append(("pytorch", *np.median(theirs, axis=0)))
        for name, t_fb, t_step in rows:
            ratio = f"{np.median(ratios):.2f}" if ratios and name == "minigrad" else ""
            print(f"{batch:>6} {name:>10} {t_fb:>11.0f} {t_step:>9.0f} {ratio:>7}")
        if len(ratios) > 1:
            print(f"{'':>6} {'':>10} step ratios of the {len(ratios)} pairs: "
                  + " ".join(f"{r:.2f}" for r in ratios))


# -- the transformer of examples/char_transformer.py ---------------------------------------------
def load_example():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        import char_transformer
    finally:
        sys.path.pop(0)
    return char_transformer


def torch_tiny_gpt(ct, ours):
    """The example's TinyGPT written with torch.nn, holding ``ours``'s weights."""
    nn_ = torch.nn

    class Attention(nn_.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.heads, self.qkv, self.proj = heads, nn_.Linear(d, 3 * d), nn_.Linear(d, d)

        def forward(self, x):
            B, T, D = x.shape
            qkv = self.qkv(x).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
            y = torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(B, T, D))

    class Block(nn_.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn_.LayerNorm(d), Attention(d, heads), nn_.LayerNorm(d)
            self.mlp = nn_.Sequential(nn_.Linear(d, 4 * d), nn_.GELU(), nn_.Linear(4 * d, d))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class TinyGPT(nn_.Module):
        def __init__(self, d, heads, layers):
            super().__init__()
            self.tok = nn_.Embedding(len(ct.VOCAB), d)
            self.pos = nn_.Embedding(ct.SEQ - 1, d)
            self.blocks = nn_.ModuleList([Block(d, heads) for _ in range(layers)])
            self.ln_f, self.head = nn_.LayerNorm(d), nn_.Linear(d, len(ct.VOCAB))

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    d = ours.tok.weight.shape[1]
    model = TinyGPT(d, ours.blocks[0].attn.n_heads, len(ours.blocks))
    state = {k: torch.from_numpy(v) for k, v in ours.state_dict().items()}
    model.load_state_dict(state)
    return model


def transformer_steps(ct, batch, seed=0):
    """``(fwd_bwd, step)`` closures for minigrad and PyTorch, same weights and batch, and the
    two first losses."""
    rng = np.random.default_rng(seed)
    model = ct.TinyGPT(64, 4, 2, rng)
    train, _ = ct.make_problems(rng)
    data = train[rng.integers(0, len(train), size=batch)]
    opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)

    def mg_fwd_bwd():
        model.zero_grad()
        ct.answer_loss(model, data).backward()

    def mg_step():
        opt.zero_grad()
        ct.answer_loss(model, data).backward()
        opt.step()

    result = {"minigrad": (mg_fwd_bwd, mg_step, float(ct.answer_loss(model, data)))}
    if torch is not None:
        tmodel = torch_tiny_gpt(ct, model)
        topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-3, weight_decay=0.01)
        tdata = torch.from_numpy(data)
        prompt = ct.PROMPT

        def loss():
            logits = tmodel(tdata[:, :-1])[:, prompt - 1:]
            return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     tdata[:, prompt:].reshape(-1))

        def t_fwd_bwd():
            tmodel.zero_grad()
            loss().backward()

        def t_step():
            topt.zero_grad()
            loss().backward()
            topt.step()

        with torch.no_grad():
            first = float(loss())
        result["pytorch"] = (t_fwd_bwd, t_step, first)
    return result


def bench_transformer(args, us):
    ct = load_example()
    print(f"\ntransformer of examples/char_transformer.py: 2 blocks, d_model 64, 4 heads, "
          f"GELU (exact), float32, AdamW; tokens per example {ct.SEQ - 1}")
    header = f"{'batch':>6} {'framework':>10} {'fwd+bwd us':>11} {'step us':>9} {'ratio':>7}  loss"
    print(header)
    print("-" * len(header))
    for batch in args.batch or [64, 256]:
        closures = transformer_steps(ct, batch)
        rows = []
        for name, (fb, st, first) in closures.items():
            settle()  # the other framework's threads go idle before this block
            rows.append((name, us(fb), us(st), first))
        for name, t_fb, t_step, first in rows:
            ratio = f"{rows[0][2] / rows[1][2]:.2f}" if len(rows) > 1 and name == "minigrad" else ""
            print(f"{batch:>6} {name:>10} {t_fb:>11.0f} {t_step:>9.0f} {ratio:>7}  {first:.6f}")




# -- the chain of small ops: per-op overhead ------------------------------------------------------
def chain_steps(to_tensor, leaf):
    """20 ops on [64, 64] (tanh, multiply, add in turn), a sum, backward."""
    rng = np.random.default_rng(0)
    x = leaf(rng.standard_normal((64, 64)).astype(np.float32))
    w = to_tensor(rng.standard_normal((64, 64)).astype(np.float32))

    def run():
        x.grad = None
        h = x
        for i in range(20):
            h = h.tanh() if i % 3 == 0 else h * w if i % 3 == 1 else h + w
        h.sum().backward()
    return run


def bench_chain(args, us):
    print("\nchain: 20 elementwise ops on [64, 64] float32 (tanh, *, + in turn), sum, backward")
    header = f"{'':>6} {'framework':>10} {'fwd+bwd us':>11} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    ours, theirs = [], []
    for _ in range(args.repeat):
        ours.append(us(chain_steps(minigrad.tensor, lambda a: minigrad.tensor(a, requires_grad=True))))
        if torch is not None:
            settle()
            theirs.append(us(chain_steps(torch.from_numpy,
                                         lambda a: torch.from_numpy(a).requires_grad_())))
            settle()
    ratio = f"{np.median(np.array(ours) / np.array(theirs)):.2f}" if theirs else ""
    print(f"{'':>6} {'minigrad':>10} {np.median(ours):>11.0f} {ratio:>7}")
    if theirs:
        print(f"{'':>6} {'pytorch':>10} {np.median(theirs):>11.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (noisier)")
    parser.add_argument("--model", choices=["mlp", "cnn", "transformer", "chain", "all"],
                        default="all")
    parser.add_argument("--batch", type=int, nargs="+",
                        help="batch sizes (default: 64 512 for the MLP, 32 128 for the CNN, 64 256 "
                             "for the transformer)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="the MLP's")
    parser.add_argument("--repeat", type=int, default=1,
                        help="the CNN's and the chain's: time minigrad and PyTorch this many "
                             "times, alternating; medians, and the median of the pairs' ratios")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time (time.process_time) instead of the "
                             "wall clock: robust to other processes on a shared machine, but only "
                             "meaningful with one thread (OPENBLAS_NUM_THREADS=1)")
    args = parser.parse_args()
    if args.cpu_time and BLAS_THREADS != 1:
        parser.error("--cpu-time needs OPENBLAS_NUM_THREADS=1 (CPU time adds up every thread's)")
    min_time = 0.2 if args.quick else 1.0
    clock = time.process_time if args.cpu_time else time.perf_counter
    if torch is not None:
        torch.set_num_threads(BLAS_THREADS)
    print(f"python {platform.python_version()}, numpy {np.__version__} ({BLAS_THREADS} BLAS threads), "
          f"minigrad {minigrad.__version__}, "
          f"torch {torch.__version__ + f' ({torch.get_num_threads()} threads)' if torch else 'not installed'}, "
          f"{os.cpu_count()} CPUs")
    us = lambda fn: median_time(fn, min_time=min_time, clock=clock) * 1e6  # noqa: E731
    print(f"times: median {'process CPU' if args.cpu_time else 'wall-clock'} microseconds")
    if args.model in ("mlp", "all"):
        bench_mlp(args, us)
    if args.model in ("cnn", "all"):
        bench_cnn(args, us)
    if args.model in ("transformer", "all"):
        bench_transformer(args, us)
    if args.model in ("chain", "all"):
        bench_chain(args, us)


if __name__ == "__main__":
    main()
