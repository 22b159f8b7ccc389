"""The adding problem (Hochreiter & Schmidhuber, 1997) with an LSTM.

Each sequence has ``steps`` steps of two features: a random value in [0, 1]
and a marker that is 1 at exactly two steps (one in each half) and 0
elsewhere. The target is the sum of the two marked values. Always predicting
1 costs an MSE of about 0.167; solving the task means an MSE near 0, which
needs memory across the whole sequence.

Run from the repository root: ``python examples/lstm_adding.py [--steps 50] [--updates 3000]``.
Prints the learning curve (held-out MSE every 100 updates) and writes it to
``runs/lstm_adding.csv``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS


def adding_batch(rng: np.random.Generator, size: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    values = rng.uniform(0, 1, size=(size, steps)).astype(np.float32)
    markers = np.zeros((size, steps), dtype=np.float32)
    half = steps // 2
    rows = np.arange(size)
    markers[rows, rng.integers(0, half, size)] = 1
    markers[rows, rng.integers(half, steps, size)] = 1
    return np.stack([values, markers], axis=-1), (values * markers).sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="sequence length")
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--csv", type=Path, default=Path("runs/lstm_adding.csv"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    mar.seed(0)
    rng = np.random.default_rng(0)
    net = (ML.Input((args.steps, 2), name="seq") > ML.LSTM(64, name="lstm")
           > ML.Regression(1, learning_scenari=[MS.Adam(2e-3)], name="out"))
    valid_x, valid_y = adding_batch(rng, 1000, args.steps)
    print(f"predicting 1 always: MSE {float(np.mean((valid_y - 1) ** 2)):.4f}")
    curve = []
    start = time.perf_counter()
    for update in range(1, args.updates + 1):
        x, y = adding_batch(rng, 64, args.steps)
        net.train("out", seq=x, out=y)
        if update % 100 == 0:
            mse = float(net.test("out", seq=valid_x, out=valid_y)["out"])
            curve.append((update, mse, time.perf_counter() - start))
            print(f"update {update}: held-out MSE {mse:.5f} ({curve[-1][2]:.0f} s)", flush=True)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["update", "valid_mse", "seconds"])
        writer.writerows(curve)
    print(f"final held-out MSE {curve[-1][1]:.5f}; learning curve in {args.csv}")


if __name__ == "__main__":
    main()
