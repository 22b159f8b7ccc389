"""A slow map-style Dataset read by worker processes: does reading keep up with the training step?

The work: the MNIST MLP (784-500-10, ReLU, softmax, SGD with momentum 0.9),
batch 64, trained by the Trainer on real MNIST (``$MARIANA_DATA`` or
``--data-dir``; never downloaded). The same images come

* from in-memory arrays (the reference),
* from a map-style ``torch.utils.data.Dataset`` whose ``__getitem__`` sleeps 1 ms
  per item (a stand-in for decoding a JPEG or reading a file), read
  ``DatasetMapper.from_dataset(..., workers=W, threads=T)``: ``W`` worker processes
  read batches ahead; each reads its batch's items on ``T`` threads.

Reported: images/s of the second epoch (workers started, steady state), the
median over ``--repeats`` interleaved runs, and the ratio to in-memory. The
slow configurations train on ``--slow-rows`` images (a rate, not a total, is
compared). Every run also checks that the trained weights equal the
in-memory run's on the same rows (bit-identical), so speed is never bought
with other results.

    $ python benchmarks/dataset_workers.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.data import Dataset

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS
from mariana.datasets import mnist
from mariana.training import DatasetMapper, Trainer, recorders, stops

BATCH, LR, MOMENTUM, EPOCHS = 64, 0.01, 0.9, 2


class SlowImages(Dataset):
    """``(x[i], y[i])``, after sleeping ``delay`` seconds (IO or decoding that waits, not computes)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, delay: float) -> None:
        self.x, self.y, self.delay = x, y, delay

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        time.sleep(self.delay)
        return self.x[index], int(self.y[index])


class EpochClock(recorders.Recorder):
    """Seconds per epoch, from the epoch's first step to its end."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_start(self, trainer, epoch, steps):
        self._start = time.perf_counter()

    def on_epoch_end(self, trainer, entry):
        self.seconds.append(time.perf_counter() - self._start)


def train(mapper: DatasetMapper) -> tuple[float, list[torch.Tensor]]:
    """Images/s of the last epoch, and the trained weights."""
    mar.seed(0)
    net = ML.Input(784, name="inp") > ML.Hidden(500, activation=MA.ReLU(), name="hid") > ML.SoftmaxClassifier(
        10, learning_scenari=[MS.GradientDescent(lr=LR, momentum=MOMENTUM)], name="out")
    clock = EpochClock()
    trainer = Trainer(net, "out", batch_size=BATCH, stops=[stops.EpochWall(EPOCHS)], recorders=[clock], seed=0)
    trainer.start(mapper)
    return len(mapper) / clock.seconds[-1], [p.detach().clone() for p in trainer.net.parameters()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="the MNIST idx files (default: $MARIANA_DATA)")
    parser.add_argument("--rows", type=int, default=20000, help="training images for the in-memory reference")
    parser.add_argument("--slow-rows", type=int, default=6000, help="training images for the Dataset runs")
    parser.add_argument("--delay", type=float, default=0.001, help="seconds each __getitem__ sleeps")
    parser.add_argument("--threads", type=int, default=8, help="item-reading threads per worker in the threaded rows")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    data = mnist(options.data_dir)["train"]
    x, y = data["x"][:options.rows], data["y"][:options.rows]
    slow_x, slow_y = x[:options.slow_rows], y[:options.slow_rows]
    configurations = {
        "in-memory arrays": lambda: DatasetMapper(inp=x, out=y),
        "Dataset, 0 workers": lambda: DatasetMapper.from_dataset(SlowImages(slow_x, slow_y, options.delay), inp=0, out=1),
        "Dataset, 4 workers": lambda: DatasetMapper.from_dataset(SlowImages(slow_x, slow_y, options.delay), inp=0, out=1, workers=4),
        f"Dataset, 4 workers x {options.threads} threads": lambda: DatasetMapper.from_dataset(
            SlowImages(slow_x, slow_y, options.delay), inp=0, out=1, workers=4, threads=options.threads),
    }
    _, reference = train(DatasetMapper(inp=slow_x, out=slow_y))  # the weights every Dataset run must reproduce
    rates: dict[str, list[float]] = {name: [] for name in configurations}
    for _ in range(options.repeats):
        for name, make in configurations.items():
            rate, weights = train(make())
            if name != "in-memory arrays" and not all(torch.equal(a, b) for a, b in zip(weights, reference)):
                raise SystemExit(f"{name}: the trained weights differ from the in-memory run's on the same rows")
            rates[name].append(rate)
    base = statistics.median(rates["in-memory arrays"])
    print(f"dataset_workers: MNIST MLP 784-500-10, batch {BATCH}, epoch {EPOCHS} of {EPOCHS}, {options.delay * 1000:g} ms per item, "
          f"median of {options.repeats}, torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    print(f"{'reading':<34} {'images/s':>10} {'ratio':>7}   (every Dataset run bit-identical to in-memory)")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<34} {rate:>10.0f} {rate / base:>7.2f}")


if __name__ == "__main__":
    main()
