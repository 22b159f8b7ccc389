"""The classic CNN on MNIST: conv 20@5x5, pool 2, conv 50@5x5, pool 2, dense 500 ReLU, softmax 10.

Run from the repository root: ``python examples/cnn_mnist.py [--epochs 4] [--threads 1]``.
Reads ../shared/data/mnist (idx files); prints the test accuracy after each
epoch and the total wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import mariana as mar
import mariana.activations as MA
import mariana.costs as MC
import mariana.layers as ML
import mariana.scenari as MS
from mariana.network import Network

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _data  # noqa: E402


def lenet(lr: float = 1e-3, shape: tuple[int, ...] = (1, 28, 28), halve_every: int | None = None) -> Network:
    """The classic CNN; Adam on every layer through the output's scenario, its rate halved every ``halve_every`` steps."""
    schedule = None if halve_every is None else MS.ExponentialDecay(0.5, halve_every)
    return (ML.Input(shape, name="inp")
            > ML.Conv2D(20, 5, activation=MA.ReLU(), name="conv1") > ML.MaxPool2D(2, name="pool1")
            > ML.Conv2D(50, 5, activation=MA.ReLU(), name="conv2") > ML.MaxPool2D(2, name="pool2")
            > ML.Hidden(500, activation=MA.ReLU(), name="hid")
            > ML.SoftmaxClassifier(10, cost=MC.NegativeLogLikelihood(),
                                   learning_scenari=[MS.Adam(lr, schedule=schedule)], name="out"))


def train(net: Network, data: dict, epochs: int, batch_size: int = 64, seed: int = 0) -> list[float]:
    """Shuffled mini-batches with ``net.train``; returns the test accuracy after each epoch."""
    rng = np.random.default_rng(seed)
    x, y = data["train"]["x"], data["train"]["y"]
    accuracies = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        total = 0.0
        for first in range(0, len(x), batch_size):
            rows = order[first:first + batch_size]
            total += float(net.train("out", inp=x[rows], out=y[rows])["out"]) * len(rows)
        accuracy = net.accuracy("out", inp=data["test"]["x"], out=data["test"]["y"], batch_size=1000)
        accuracies.append(accuracy)
        print(f"epoch {epoch}: train loss {total / len(x):.4f}, test accuracy {accuracy:.4f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    return accuracies


def main(dataset: str = _data.MNIST, default_epochs: int = 4, halve_every_epochs: int = 1) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=default_epochs)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: fastest on a busy shared machine, where 2 were 8x slower)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mar.seed(0)
    data = _data.load(dataset)
    net = lenet(halve_every=halve_every_epochs * len(data["train"]["x"]) // 64)
    start = time.perf_counter()
    accuracies = train(net, data, args.epochs)
    print(f"final test accuracy {accuracies[-1]:.4f} after {args.epochs} epochs, "
          f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
