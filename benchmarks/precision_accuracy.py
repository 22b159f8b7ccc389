"""Test accuracy of bf16-mixed against float32 training on MNIST (issue 10: bf16 within 0.3 points of fp32).

The networks of ``mariana bench`` (:mod:`mariana.bench`): the MLP 784-500-10
(SGD lr 0.01, momentum 0.9) and the classic CNN (conv 20@5x5, pool 2, conv
50@5x5, pool 2, dense 500, softmax 10; Adam 1e-3), each trained by the
Trainer at precision "32" and "bf16-mixed" from the same initial weights,
with the same seed (same shuffles), batch 64. Prints the test accuracy of
each (the Trainer's evaluation after the last epoch, on the 10,000 test
images; with ``--seeds N`` the mean over seeds, and the seconds of all of
them together) and the difference in points. Defaults: the MLP 3 epochs on all
60,000 training images, the CNN 2 epochs on the first 12,000; a few minutes
on two CPU cores.

    $ python benchmarks/precision_accuracy.py --data-dir ../shared/data/mnist [--device auto] [--seeds 1]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from mariana.arguments import at_least
from mariana.bench import PRECISIONS, mariana_net, resolve_device
from mariana.datasets import mnist
from mariana.training import DatasetMapper, Trainer, stops

GOAL_POINTS = 0.3


def train(model: str, precision: str, data: dict, epochs: int, images: int, device: str, seed: int) -> tuple[float, float]:
    """Train one network; returns (test accuracy, seconds)."""
    shape = (-1, 1, 28, 28) if model == "cnn" else (-1, 784)
    train_set = DatasetMapper(inp=data["train"]["x"][:images].reshape(shape), out=data["train"]["y"][:images])
    test_set = DatasetMapper(inp=data["test"]["x"].reshape(shape), out=data["test"]["y"])
    net = mariana_net(model)  # seeded: the same initial weights at both precisions
    start = time.perf_counter()
    history = Trainer(net, "out", batch_size=64, stops=[stops.EpochWall(epochs)], recorders=[], seed=seed,
                      precision=PRECISIONS[precision], device=device).start(train_set, test=test_set)
    return history[-1]["test"]["out"]["accuracy"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MARIANA_DATA") or "../shared/data/mnist")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' (default: auto)")
    parser.add_argument("--mlp-epochs", type=at_least(1), default=3)
    parser.add_argument("--cnn-epochs", type=at_least(1), default=2)
    parser.add_argument("--cnn-images", type=at_least(1), default=12000, help="CNN training images (default: 12000)")
    parser.add_argument("--seeds", type=at_least(1), default=1, help="seeds 0..N-1; the table shows their mean (default: 1)")
    parser.add_argument("--models", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = mnist(args.data_dir)
    settings = {"mlp": (args.mlp_epochs, len(data["train"]["x"])), "cnn": (args.cnn_epochs, args.cnn_images)}
    print(f"MNIST, batch 64, device {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"seeds 0..{args.seeds - 1}")
    print(f"{'model':<6}{'epochs x images':>17}{'fp32 acc':>10}{'bf16 acc':>10}{'bf16 - fp32':>13}{'fp32 s':>8}{'bf16 s':>8}")
    worst = 0.0
    for model in args.models:
        epochs, images = settings[model]
        results = {precision: [train(model, precision, data, epochs, images, device, seed) for seed in range(args.seeds)]
                   for precision in PRECISIONS}
        accuracy = {precision: float(np.mean([a for a, _ in runs])) for precision, runs in results.items()}
        seconds = {precision: sum(s for _, s in runs) for precision, runs in results.items()}
        points = 100 * (accuracy["bf16"] - accuracy["fp32"])
        worst = min(worst, points)
        print(f"{model.upper():<6}{f'{epochs} x {images}':>17}{100 * accuracy['fp32']:>9.2f}%{100 * accuracy['bf16']:>9.2f}%"
              f"{points:>+12.2f} {seconds['fp32']:>8.1f}{seconds['bf16']:>8.1f}", flush=True)
    verdict = "within" if worst >= -GOAL_POINTS else "NOT within"
    print(f"bf16-mixed is {verdict} {GOAL_POINTS} points of fp32 (worst difference {worst:+.2f} points)")


if __name__ == "__main__":
    main()
