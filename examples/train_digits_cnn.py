"""Train a small convolutional network on the 8x8 handwritten digits that ship with minigrad.

    python examples/train_digits_cnn.py                     # about 99% held-out accuracy (seed 0)
    python examples/train_digits_cnn.py --channels 8 16 --epochs 5 --seed 1

The network, in PyTorch's layers and layouts (its ``state_dict`` loads into the same
``torch.nn`` model, and back)::

    [N, 1, 8, 8] -> Conv2d(1, c1, 3, padding=1) -> BatchNorm2d -> ReLU
                 -> Conv2d(c1, c1, 3, padding=1) -> BatchNorm2d -> ReLU -> MaxPool2d(2)   4x4
                 -> Conv2d(c1, c2, 3, padding=1) -> BatchNorm2d -> ReLU -> MaxPool2d(2)   2x2
                 -> Flatten -> Linear(4 c2, 10)

The convolutions have no bias (``bias=False``): the batch norm after each subtracts the mean,
bias included, and adds its own. The network is trained with the fused cross-entropy and label smoothing 0.1, AdamW (weight decay 0.01) and a
cosine schedule. The split, the progress lines and the optional plot are those of
``train_digits.py`` (the MLP, about 96%); see that file for the data.
"""

import os
import sys

# The products here are small (at most a few thousand rows by a few hundred columns): the
# OpenBLAS thread pool gains little on them, and on a busy machine its spinning workers made a
# run 30x slower. One BLAS thread, unless the environment asks for more. (It must be set before
# numpy loads.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from minigrad import nn, optim  # noqa: E402

from digits_data import N_CLASSES, load_digits, train_test_split  # noqa: E402
from train_digits import common_parser, train  # noqa: E402


class DigitsCNN(nn.Module):
    """Three 3x3 convolutions with batch norm, two 2x2 max-pools and a linear classifier."""

    def __init__(self, channels=(32, 64), rng=None):
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c1, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.MaxPool2d(2),                                               # 8x8 -> 4x4
            nn.Conv2d(c1, c2, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(c2), nn.ReLU(),
            nn.MaxPool2d(2),                                               # 4x4 -> 2x2
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * c2, N_CLASSES, rng=rng))

    def forward(self, x):
        return self.classifier(self.features(x))


def parse_args(argv):
    parser = common_parser(__doc__.split("\n\n")[0], epochs=15, lr=3e-3,
                           plot="digits_cnn_curves.png")
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64], metavar=("C1", "C2"),
                        help="channels of the first two and of the last convolution (default: 32 64)")
    parser.add_argument("--label-smoothing", type=float, default=0.1,
                        help="cross-entropy label smoothing (default 0.1)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or min(args.channels) < 1 or args.lr <= 0:
        parser.error("--epochs, --batch-size and --channels must be >= 1 and --lr > 0")
    if not 0 <= args.label_smoothing <= 1:
        parser.error("--label-smoothing must be in [0, 1]")
    return args


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)       # the split, the weights, the batch order
    images, labels = load_digits()
    data = train_test_split(images.astype(np.float32).reshape(-1, 1, 8, 8), labels, rng=rng)
    model = DigitsCNN(args.channels, rng=rng)
    opt = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    c1, c2 = args.channels
    return train(model, opt, data, args, rng,
                 describe=f"CNN conv{c1}-conv{c1}-pool-conv{c2}-pool-linear",
                 loss_fn=lambda scores, y: nn.cross_entropy(scores, y,
                                                            label_smoothing=args.label_smoothing))


if __name__ == "__main__":
    main(sys.argv[1:])
