"""Time per training step, minigrad vs PyTorch CPU, side by side: a 64-256-256-10 MLP and the
tiny decoder-only transformer of ``examples/char_transformer.py``.

Run (OpenBLAS variables set on this machine slow numpy down):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py [--quick]
        [--model mlp|transformer|all]

One step is what a training loop does per minibatch: ``zero_grad``, forward (three Linear
layers with ReLU), the fused softmax cross-entropy against integer labels (mean), backward,
and an optimizer step. Both frameworks run float32, the same architecture, batch sizes and
optimizer (Adam; ``--optimizer sgd`` for SGD with momentum), in the same process on the same
inputs. Each figure is the median over repeated steps after warm-up.

Columns: ``fwd+bwd`` (no optimizer), ``step`` (with it), both in microseconds; ``matmuls`` is
the framework's matrix multiply alone doing the eight products of a step (3 forward, 5
backward), numpy's for minigrad and torch's for PyTorch: the floor under each step;
``ratio`` is minigrad's step time over PyTorch's (< 1: faster).

The transformer step: the example's model (2 pre-norm blocks, d_model 64, 4 heads, GELU MLP,
causal ``scaled_dot_product_attention``) on a batch of its addition problems, logits
``[batch, 3, 12]`` into the fused sparse cross-entropy, AdamW. The PyTorch model is the same
architecture written with ``torch.nn``, loaded with minigrad's initial weights (the printed
loss difference checks that both compute the same function). Each framework is timed in its
own block, after a pause that lets the other's thread pool go idle; both use the same thread
count (``OPENBLAS_NUM_THREADS`` for numpy, ``torch.set_num_threads`` for PyTorch; all CPUs
by default).
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


def median_time(fn, min_time=0.5, max_reps=2000, min_reps=20, warmup=5):
    """Median seconds of ``fn()`` over repetitions, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
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


def bench_mlp(args, min_time):
    print(f"MLP {'-'.join(map(str, SIZES))} float32, ReLU, mean cross-entropy, {args.optimizer}")
    header = f"{'batch':>6} {'framework':>10} {'fwd+bwd us':>11} {'step us':>9} {'matmuls us':>11} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for batch in args.batch:
        rng = np.random.default_rng(batch)
        x = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
        y = rng.integers(0, SIZES[-1], size=batch)
        us = lambda fn: median_time(fn, min_time=min_time) * 1e6  # noqa: E731
        fb, st = minigrad_steps(x, y, args.optimizer)
        rows = [("minigrad", us(fb), us(st), us(matmuls_only(x)))]
        if torch is not None:
            with torch.no_grad():
                floor = us(matmuls_only(x, torch.from_numpy))
            fb, st = torch_steps(x, y, args.optimizer)
            rows.append(("pytorch", us(fb), us(st), floor))
        for name, t_fb, t_step, t_mm in rows:
            ratio = f"{rows[0][2] / rows[1][2]:.2f}" if len(rows) > 1 and name == "minigrad" else ""
            print(f"{batch:>6} {name:>10} {t_fb:>11.0f} {t_step:>9.0f} {t_mm:>11.0f} {ratio:>7}")


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
    # minigrad's Sequential names its layers "layers.<i>", PyTorch's "<i>"
    state = {k.replace("mlp.layers.", "mlp."): torch.from_numpy(v) for k, v in ours.state_dict().items()}
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


def bench_transformer(args, min_time):
    ct = load_example()
    print(f"\ntransformer of examples/char_transformer.py: 2 blocks, d_model 64, 4 heads, "
          f"GELU (exact), float32, AdamW; tokens per example {ct.SEQ - 1}")
    header = f"{'batch':>6} {'framework':>10} {'fwd+bwd us':>11} {'step us':>9} {'ratio':>7}  loss"
    print(header)
    print("-" * len(header))
    for batch in args.tf_batch:
        closures = transformer_steps(ct, batch)
        rows = []
        for name, (fb, st, first) in closures.items():
            time.sleep(0.5)  # the other framework's threads go idle before this block
            rows.append((name, median_time(fb, min_time=min_time) * 1e6,
                         median_time(st, min_time=min_time) * 1e6, first))
        for name, t_fb, t_step, first in rows:
            ratio = f"{rows[0][2] / rows[1][2]:.2f}" if len(rows) > 1 and name == "minigrad" else ""
            print(f"{batch:>6} {name:>10} {t_fb:>11.0f} {t_step:>9.0f} {ratio:>7}  {first:.6f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (noisier)")
    parser.add_argument("--model", choices=["mlp", "transformer", "all"], default="all")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 512], help="MLP batch sizes (default 64 512)")
    parser.add_argument("--tf-batch", type=int, nargs="+", default=[64, 256],
                        help="transformer batch sizes (default 64 256)")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="for the MLP")
    args = parser.parse_args()
    min_time = 0.2 if args.quick else 1.0
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count()))
    if torch is not None:
        torch.set_num_threads(threads)
    print(f"python {platform.python_version()}, numpy {np.__version__}, minigrad {minigrad.__version__}, "
          f"torch {torch.__version__ + f' ({torch.get_num_threads()} threads)' if torch else 'not installed'}, "
          f"{os.cpu_count()} CPUs, {threads} BLAS threads, MALLOC_TOP_PAD_="
          f"{os.environ.get('MALLOC_TOP_PAD_', 'unset')}")
    if args.model in ("mlp", "all"):
        bench_mlp(args, min_time)
    if args.model in ("transformer", "all"):
        bench_transformer(args, min_time)


if __name__ == "__main__":
    main()
