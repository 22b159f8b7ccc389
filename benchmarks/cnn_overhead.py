"""Mariana's training step against a hand-written PyTorch loop on the classic CNN.

The CNN of examples/cnn_mnist.py (conv 20@5x5, pool 2, conv 50@5x5, pool 2,
dense 500 ReLU, softmax 10), Adam 1e-3, batch 64, 2 epochs over the first
8000 MNIST training images. Both run in this process from the same initial
weights on the same tensors sliced per batch, alternating, best of 3; the
ratio is Mariana's best time over PyTorch's (goal: <= 1.05).

Run from the repository root: ``python benchmarks/cnn_overhead.py [--threads 1] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import mariana as mar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import _data  # noqa: E402
from cnn_mnist import lenet  # noqa: E402

BATCH, EPOCHS, IMAGES = 64, 2, 8000


def torch_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10),
    )


def copy_weights(model: nn.Module, net) -> None:
    layers = [model[0], model[3], model[7], model[9]]
    with torch.no_grad():
        for module, name in zip(layers, ("conv1", "conv2", "hid", "out")):
            module.weight.copy_(net[name].W)
            module.bias.copy_(net[name].b)


def run_torch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for first in range(0, len(x), BATCH):
            loss = F.cross_entropy(model(x[first:first + BATCH]), y[first:first + BATCH])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    float(loss.detach())  # wait for the last step, as Mariana's side does below
    return time.perf_counter() - start


def run_mariana(net, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for first in range(0, len(x), BATCH):
            losses = net.train("out", inp=x[first:first + BATCH], out=y[first:first + BATCH])
    float(losses["out"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = _data.load(_data.MNIST)["train"]
    x, y = torch.from_numpy(data["x"][:IMAGES].copy()), torch.from_numpy(data["y"][:IMAGES].copy())
    times: dict[str, list[float]] = {"mariana": [], "torch": []}
    for repeat in range(args.repeats):
        mar.seed(repeat)
        net = lenet()
        model = torch_model()
        copy_weights(model, net)
        order = ("mariana", "torch") if repeat % 2 == 0 else ("torch", "mariana")
        for kind in order:
            times[kind].append(run_mariana(net, x, y) if kind == "mariana" else run_torch(model, x, y))
        print(f"repeat {repeat + 1}: mariana {times['mariana'][-1]:.2f} s, torch {times['torch'][-1]:.2f} s", flush=True)
    best_mariana, best_torch = min(times["mariana"]), min(times["torch"])
    print(f"best of {args.repeats}: mariana {best_mariana:.2f} s, plain torch {best_torch:.2f} s, "
          f"ratio {best_mariana / best_torch:.3f} ({args.threads} thread(s), {EPOCHS} epochs x {-(-IMAGES // BATCH)} steps)")


if __name__ == "__main__":
    main()
