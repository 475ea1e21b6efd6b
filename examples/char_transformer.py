"""Train a tiny decoder-only transformer to add two-digit numbers written as text.

    python examples/char_transformer.py                  # about 100% held-out exact match (seed 0)
    python examples/char_transformer.py --steps 300 --layers 1 --seed 1

The task is generated here, so nothing is downloaded: every problem ``a+b=`` with ``a, b`` in
0..99 is written as text with two-digit operands and a three-digit answer, ``"07+35=042"``,
in reading order (the carries must be worked out before the first answer digit is written;
two layers manage). A random fifth of the 10,000 problems is held out.

The model is GPT-shaped and small: token and position embeddings, ``--layers`` pre-norm
residual blocks of causal multi-head self-attention (``F.scaled_dot_product_attention`` with
``is_causal=True``) and a GELU MLP, a final LayerNorm and a linear head over the 12 characters.
It is trained with the fused sparse softmax cross-entropy on the rank-3 logits
``[batch, answer positions, vocab]`` (the operands' characters are not predicted), AdamW and a
cosine schedule. Progress lines report the loss and the exact-match accuracy on the held-out
problems, answered by greedy decoding one character at a time; a few answers are sampled at
the end. Everything random comes from ``--seed``: the same seed gives the same numbers.
"""

import argparse
import os
import sys
import time

# The matrices here are too small for BLAS threads to pay off: on 2 shared cores OpenBLAS's
# second thread made training 6-9x slower (benchmarks/README.md). Set before numpy loads;
# override from the shell (OPENBLAS_NUM_THREADS=2 python examples/char_transformer.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
import minigrad.nn.functional as F  # noqa: E402
from minigrad import nn, optim  # noqa: E402

VOCAB = "0123456789+="
CHAR_ID = {c: i for i, c in enumerate(VOCAB)}
PROMPT = 6  # "ab+cd="
ANSWER = 3  # three digits
SEQ = PROMPT + ANSWER


def encode(a, b):
    """Token ids of ``f"{a:02d}+{b:02d}={a + b:03d}"`` for arrays of operands."""
    text = [f"{x:02d}+{y:02d}={x + y:03d}" for x, y in zip(a, b)]
    return np.array([[CHAR_ID[c] for c in t] for t in text], dtype=np.int64)


def make_problems(rng, test_fraction=0.2):
    """Every pair (a, b) in 0..99 as token rows, split at random into train and held-out."""
    a, b = np.divmod(np.arange(10_000), 100)
    data = encode(a, b)
    order = rng.permutation(len(data))
    n_test = int(len(data) * test_fraction)
    return data[order[n_test:]], data[order[:n_test]]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position ``t`` sees positions ``<= t``."""

    def __init__(self, d_model, n_heads, rng):
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, rng=rng)
        self.proj = nn.Linear(d_model, d_model, rng=rng)

    def forward(self, x):
        B, T, D = x.shape
        # [B, T, 3D] -> three [B, heads, T, D / heads] tensors
        qkv = self.qkv(x).reshape(B, T, 3, self.n_heads, D // self.n_heads).transpose(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        return self.proj(y.transpose(0, 2, 1, 3).reshape(B, T, D))


class Block(nn.Module):
    """Pre-norm residual block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, d_model, n_heads, rng):
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, rng)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model, rng=rng), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model, rng=rng))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, d_model, n_heads, n_layers, rng, context=SEQ - 1):
        self.tok = nn.Embedding(len(VOCAB), d_model, rng=rng)
        self.pos = nn.Embedding(context, d_model, rng=rng)
        self.blocks = nn.ModuleList([Block(d_model, n_heads, rng) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, len(VOCAB), rng=rng)
        # GPT-2's small initial embeddings: N(0, 0.02) rather than Embedding's N(0, 1)
        for emb in (self.tok, self.pos):
            emb.weight.data *= np.float32(0.02)

    def forward(self, idx):
        """Logits ``[batch, time, vocab]`` for token ids ``[batch, time]``."""
        x = self.tok(idx) + self.pos(np.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def answer_loss(model, batch):
    """Mean cross-entropy of the answer digits, each predicted from the characters before it."""
    logits = model(batch[:, :-1])[:, PROMPT - 1:]  # rank 3: [batch, ANSWER, vocab]
    return nn.sparse_softmax_cross_entropy_with_logits(labels=batch[:, PROMPT:], logits=logits).mean()


@minigrad.no_grad()
def greedy_answers(model, prompts):
    """Complete each prompt row with ANSWER characters, always taking the likeliest next one."""
    seq = prompts
    for _ in range(ANSWER):
        nxt = model(seq).numpy()[:, -1].argmax(axis=-1)
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    return seq[:, PROMPT:]


def exact_match(model, problems):
    """Fraction of problems whose whole answer is right."""
    model.eval()
    got = greedy_answers(model, problems[:, :PROMPT])
    model.train()
    return float(np.mean(np.all(got == problems[:, PROMPT:], axis=1)))


def show(row, answer):
    """``"07+35=042"`` from a problem's prompt ids and answer ids."""
    return "".join(VOCAB[i] for i in row[:PROMPT]) + "".join(VOCAB[i] for i in answer)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument("--batch-size", type=int, default=64, help="problems per step (default 64)")
    parser.add_argument("--d-model", type=int, default=64, help="width of the model (default 64)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    parser.add_argument("--layers", type=int, default=2, help="transformer blocks (default 2)")
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW's peak learning rate (default 3e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, weights and batches")
    parser.add_argument("--eval-every", type=int, default=200, metavar="N",
                        help="report held-out accuracy every N steps (default 200)")
    parser.add_argument("--samples", type=int, default=8, help="answers to show at the end (default 8)")
    parser.add_argument("--save", metavar="PATH", help="save the trained weights to this .npz file")
    args = parser.parse_args(argv)
    if min(args.steps, args.batch_size, args.d_model, args.heads, args.layers, args.eval_every) < 1 \
            or args.lr <= 0 or args.samples < 0:
        parser.error("--steps, --batch-size, --d-model, --heads, --layers and --eval-every must be "
                     ">= 1, --lr > 0 and --samples >= 0")
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    return args


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    train, test = make_problems(rng)
    model = TinyGPT(args.d_model, args.heads, args.layers, rng)
    opt = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = optim.CosineAnnealingLR(opt, T_max=args.steps, eta_min=args.lr / 20)
    n_params = sum(p.size for p in model.parameters())
    print(f"2-digit addition: {len(train)} training and {len(test)} held-out problems, e.g. "
          f"{show(test[0], test[0][PROMPT:])!r}; "
          f"transformer {args.layers}x(d={args.d_model}, heads={args.heads}), {n_params} parameters")

    start, recent = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        batch = train[rng.integers(0, len(train), size=args.batch_size)]
        opt.zero_grad()
        loss = answer_loss(model, batch)
        loss.backward()
        opt.step()
        schedule.step()
        recent.append(float(loss))
        if step % args.eval_every == 0 or step == args.steps:
            print(f"step {step:5d}/{args.steps}  loss {np.mean(recent):.4f}  held-out exact match "
                  f"{exact_match(model, test):6.2%}  {time.perf_counter() - start:5.1f}s", flush=True)
            recent = []

    accuracy = exact_match(model, test)
    print(f"held-out exact-match accuracy: {accuracy:.2%} ({round(accuracy * len(test))}/{len(test)} "
          f"problems) after {args.steps} steps in {time.perf_counter() - start:.1f}s")
    if args.samples:
        picks = test[rng.choice(len(test), size=min(args.samples, len(test)), replace=False)]
        model.eval()
        answers = greedy_answers(model, picks[:, :PROMPT])
        print("greedy samples (held-out):")
        for row, answer in zip(picks, answers):
            ok = np.array_equal(answer, row[PROMPT:])
            print(f"  {show(row, answer)}  {'right' if ok else 'wrong, expected ' + show(row, row[PROMPT:])}")
    if args.save:
        model.save(args.save)
        print(f"saved weights to {args.save} (load with model.load(path))")
    return accuracy


if __name__ == "__main__":
    main(sys.argv[1:])
