"""``mariana demo``: an MLP on scikit-learn's embedded digits, trained with ``net.train``.

Example:
    $ mariana demo --epochs 30
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import mariana as mar
from mariana.datasets import digits
from mariana.models import BUILDERS


def run_demo(args: argparse.Namespace) -> int:
    epochs = args.epochs or 30
    mar.seed(args.seed)
    data = digits(seed=args.seed)
    x, y = data["train"]["x"], data["train"]["y"]
    net = BUILDERS["mlp"]((x.shape[1],), 10)
    print(f"Training {net} on digits: {len(x)} train / {len(data['test']['x'])} test images, {epochs} epochs")
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        total = 0.0
        for begin in range(0, len(x), 32):
            rows = order[begin:begin + 32]
            total += float(net.train("out", inp=x[rows], out=y[rows])["out"]) * len(rows)
        if epoch % 5 == 0 or epoch == 1:
            accuracy = net.accuracy("out", inp=data["test"]["x"], out=data["test"]["y"])
            print(f"epoch {epoch:3d}  train loss {total / len(x):.4f}  test accuracy {accuracy:.4f}")
    accuracy = net.accuracy("out", inp=data["test"]["x"], out=data["test"]["y"])
    print(f"Final held-out accuracy: {accuracy:.4f} ({time.perf_counter() - start:.1f} s)")
    return 0 if accuracy >= 0.95 else 1


def run_bench(args: argparse.Namespace) -> int:
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "step_overhead.py"
    if not script.exists():
        raise FileNotFoundError(f"mariana bench runs {script}, which is part of the source checkout.")
    argv = sys.argv
    sys.argv = [str(script), "--steps", str(args.steps)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    return 0
