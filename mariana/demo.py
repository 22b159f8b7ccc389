"""``mariana demo``: train a demo network with the Trainer and keep the run in a run directory.

Digits (scikit-learn's embedded 8x8 images) by default; ``--dataset mnist``
or ``fashion-mnist`` read the idx files from ``--data-dir`` or
``$MARIANA_DATA``. ``--model`` names a builder in ``mariana.models.BUILDERS``.
The run directory gets the CSV log, the HTML report, the checkpoints and the saved model.

Example:
    $ mariana demo --epochs 30
    $ mariana demo --dataset mnist --data-dir ../shared/data/mnist --epochs 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import mariana as mar
from mariana import datasets
from mariana.models import BUILDERS

#: name -> (loader, image shape (channels, rows, cols), default epochs)
DATASETS = {
    "digits": (lambda path: datasets.digits(), (1, 8, 8), 30),
    "mnist": (datasets.mnist, (1, 28, 28), 5),
    "fashion-mnist": (datasets.fashion_mnist, (1, 28, 28), 5),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's command-line options (used by ``mariana.cli``)."""
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--data-dir", default=None, help="folder with the idx files (default: $MARIANA_DATA)")
    parser.add_argument("--model", choices=sorted(BUILDERS), default="mlp")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--run-dir", default=None, help="default: runs/demo-<dataset>-<time>")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: 1 for digits, whose tiny steps only lose from more; torch's default otherwise)")


def run_demo(args: argparse.Namespace) -> int:
    from mariana.training import DatasetMapper, Trainer, recorders, stops

    loader, image_shape, default_epochs = DATASETS[args.dataset]
    epochs = args.epochs or default_epochs
    threads = args.threads or (1 if args.dataset == "digits" else None)
    if threads:
        torch.set_num_threads(threads)
    mar.seed(args.seed)
    data = loader(args.data_dir)
    net = BUILDERS[args.model](image_shape, 10)
    shape = net["inp"].shape
    x, y = data["train"]["x"].reshape(-1, *shape), data["train"]["y"]
    x_test, y_test = data["test"]["x"].reshape(-1, *shape), data["test"]["y"]
    cut = len(x) - len(x) // 10  # last tenth of the training set for validation
    run_dir = Path(args.run_dir or f"runs/demo-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"Training {net} on {args.dataset}: {cut} train / {len(x) - cut} valid / {len(x_test)} test, "
          f"{epochs} epochs; run directory {run_dir}")
    trainer = Trainer(net, "out", batch_size=args.batch_size, stops=[stops.EpochWall(epochs), stops.NaNGuard()],
                      recorders=[recorders.ProgressBar(), recorders.CSV("log.csv"), recorders.HTMLReport()], run_dir=run_dir, seed=args.seed,
                      hyperparameters={"dataset": args.dataset, "model": args.model})
    start = time.perf_counter()
    history = trainer.start(DatasetMapper(inp=x[:cut], out=y[:cut]), valid=DatasetMapper(inp=x[cut:], out=y[cut:]))
    seconds = time.perf_counter() - start
    last = history[-1]
    print(f"epoch {last['epoch']}: train loss {last['train']['out']['loss']:.4f}, "
          f"valid accuracy {last['valid']['out']['accuracy']:.4f}")
    accuracy = net.accuracy("out", batch_size=1024, inp=x_test, out=y_test)
    print(f"Final held-out accuracy: {accuracy:.4f} ({seconds:.1f} s of training)")
    net.save(str(run_dir / "model.mar"))
    print(f"Saved the model to {run_dir / 'model.mar'}")
    print(f"Report: {run_dir / 'report.html'}; log: {run_dir / 'log.csv'}; `mariana resume {run_dir}` finishes an interrupted run")
    threshold = 0.95 if args.dataset == "digits" else 0.0
    return 0 if accuracy >= threshold and np.isfinite(last["train"]["out"]["loss"]) else 1


def run_bench(args: argparse.Namespace) -> int:
    import runpy
    import sys

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
