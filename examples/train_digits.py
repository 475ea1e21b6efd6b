"""Train a small MLP on the 8x8 handwritten digits that ship with minigrad.

    python examples/train_digits.py                      # about 96% held-out accuracy (seed 0)
    python examples/train_digits.py --hidden 32 --epochs 5 --seed 1

The data are the 1,797 test images of E. Alpaydin and C. Kaynak's "Optical Recognition of
Handwritten Digits" (UCI Machine Learning Repository, CC BY 4.0), 8x8 pixels in 0..16, as
shipped in ``examples/data/digits.csv.gz`` (see ``examples/data/README.md``). Nothing is
downloaded.

The run: a stratified 80/20 split, an MLP ``64 -> hidden... -> 10`` with ReLU, the fused
softmax cross-entropy, Adam with a cosine learning-rate schedule, one line per epoch, and
the test accuracy at the end. With matplotlib installed it also saves the loss and
accuracy curves as a PNG; with tqdm installed it shows a progress bar within each epoch.
Everything random comes from ``--seed``: the same seed gives the same numbers.
"""

import argparse
import sys
import time

import numpy as np

import minigrad
from minigrad import nn, optim
from minigrad.data import minibatches

from digits_data import N_CLASSES, N_FEATURES, load_digits, train_test_split

try:
    from tqdm import tqdm
except ImportError:  # progress bars are a nicety, not a dependency
    tqdm = None


def make_model(hidden, rng):
    """``Linear -> ReLU`` per hidden size, then a Linear to the 10 class scores."""
    sizes = [N_FEATURES, *hidden]
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        # He initialisation keeps the activations' scale through ReLU layers.
        layers += [nn.Linear(n_in, n_out, rng=rng, weight_init=nn.init.he_uniform), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], N_CLASSES, rng=rng))
    return nn.Sequential(*layers)


@minigrad.no_grad()
def accuracy(model, x, y):
    """Fraction of rows of ``x`` whose highest score is the true class."""
    return float(np.mean(model(x).numpy().argmax(axis=1) == y))


def save_plot(history, path):
    """Loss and accuracy per epoch, side by side; skipped without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [h["loss"] for h in history])
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="loss")
    ax_acc.plot(epochs, [h["train_acc"] for h in history], label="train")
    ax_acc.plot(epochs, [h["test_acc"] for h in history], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"saved curves to {path}")


def common_parser(description, *, epochs, lr, plot):
    """The options every digits example takes; each example adds its model's own."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"passes over the training set (default {epochs})")
    parser.add_argument("--batch-size", type=int, default=32, help="examples per step (default 32)")
    parser.add_argument("--lr", type=float, default=lr,
                        help=f"the optimizer's initial learning rate (default {lr:g})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, weights and batches")
    parser.add_argument("--plot", default=plot, metavar="PATH",
                        help=f"PNG for the curves, if matplotlib is installed (default {plot})")
    parser.add_argument("--no-plot", action="store_true", help="do not save the curves")
    parser.add_argument("--save", metavar="PATH", help="save the trained weights to this .npz file")
    return parser


def parse_args(argv):
    parser = common_parser(__doc__.split("\n\n")[0], epochs=30, lr=3e-3, plot="digits_curves.png")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 64], metavar="N",
                        help="hidden layer sizes (default: 128 64)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or min(args.hidden) < 1 or args.lr <= 0:
        parser.error("--epochs, --batch-size and --hidden must be >= 1 and --lr > 0")
    return args


def train(model, opt, data, args, rng, *, describe, loss_fn=nn.cross_entropy):
    """Train with ``opt`` and a cosine schedule; a line per epoch; save, plot; the test accuracy.

    ``data`` is ``(x_train, x_test, y_train, y_test)``; ``describe`` names the model in the
    first line; ``loss_fn(scores, labels)`` is the training loss.
    """
    x_train, x_test, y_train, y_test = data
    schedule = optim.CosineAnnealingLR(opt, T_max=args.epochs)
    n_params = sum(p.size for p in model.parameters())
    print(f"digits: {len(x_train)} training and {len(x_test)} test images; {describe} "
          f"({n_params} parameters)")

    history, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        batches = minibatches(x_train, y_train, batch_size=args.batch_size, rng=rng)
        if tqdm is not None:  # disable=None: a bar only when writing to a terminal
            batches = tqdm(batches, total=-(-len(x_train) // args.batch_size), leave=False,
                           desc=f"epoch {epoch}", disable=None)
        total_loss = 0.0
        for xb, yb in batches:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total_loss += float(loss) * len(yb)
        lr = schedule.get_last_lr()[0]
        schedule.step()

        model.eval()
        history.append(dict(epoch=epoch, loss=total_loss / len(x_train),
                            train_acc=accuracy(model, x_train, y_train),
                            test_acc=accuracy(model, x_test, y_test)))
        h = history[-1]
        print(f"epoch {epoch:3d}/{args.epochs}  loss {h['loss']:.4f}  train acc {h['train_acc']:6.2%}  "
              f"test acc {h['test_acc']:6.2%}  lr {lr:.2e}  {time.perf_counter() - start:5.1f}s",
              flush=True)

    if args.save:
        model.save(args.save)
        print(f"saved weights to {args.save} (load with model.load(path))")
    if not args.no_plot:
        save_plot(history, args.plot)
    test_acc = history[-1]["test_acc"]
    print(f"test accuracy: {test_acc:.2%} ({round(test_acc * len(y_test))}/{len(y_test)} held-out "
          f"digits) after {args.epochs} epochs in {time.perf_counter() - start:.1f}s")
    return test_acc


def main(argv=None):
    args = parse_args(argv)
    # One generator for the whole run: the split, the initial weights and every epoch's
    # batch order all come from it, so --seed fixes every number printed.
    rng = np.random.default_rng(args.seed)
    images, labels = load_digits()
    data = train_test_split(images.astype(np.float32), labels, rng=rng)
    model = make_model(args.hidden, rng)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    return train(model, opt, data, args, rng,
                 describe=f"MLP {' -> '.join(map(str, [N_FEATURES, *args.hidden, N_CLASSES]))}")


if __name__ == "__main__":
    main(sys.argv[1:])
