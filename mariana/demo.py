"""``mariana demo``: train a demo network with the Trainer and keep the run in a run directory.

Digits (scikit-learn's embedded 8x8 images) by default; ``--dataset mnist``
or ``fashion-mnist`` read the idx files from ``--data-dir`` or
``$MARIANA_DATA``. ``--model`` names a builder in ``mariana.models.BUILDERS``.
The run directory gets the CSV log, the HTML report, the checkpoints and the saved model.
MNIST's arrays are memory-mapped from the decoded copy that
``mariana.datasets.mnist(path, mmap=True)`` keeps in ``$MARIANA_CACHE``
(default ``~/.cache/mariana``): the run directory records those files by path,
size and sha256 instead of copying 180 MB into every run, and
``mariana resume`` reopens them. The digits are small and copied.

Example:
    $ mariana demo --epochs 30
    $ mariana demo --dataset mnist --data-dir ../shared/data/mnist --epochs 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import mariana as mar
from mariana import datasets
from mariana.arguments import CommandError, at_least
from mariana.models import BUILDERS

#: name -> (loader, image shape (channels, rows, cols), default epochs)
DATASETS = {
    "digits": (lambda path: datasets.digits(), (1, 8, 8), 30),
    "mnist": (lambda path: datasets.mnist(path, mmap=True), (1, 28, 28), 5),
    "fashion-mnist": (lambda path: datasets.fashion_mnist(path, mmap=True), (1, 28, 28), 5),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's command-line options (used by ``mariana.cli``)."""
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--data-dir", default=None, help="folder with the idx files (default: $MARIANA_DATA)")
    parser.add_argument("--model", choices=sorted(BUILDERS), default="mlp")
    parser.add_argument("--epochs", type=at_least(1), default=None, help="training epochs (default: 30 on digits, 5 on MNIST)")
    parser.add_argument("--batch-size", type=at_least(1), default=32)
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--run-dir", default=None, help="a new folder for the run (default: runs/demo-<dataset>-<time>)")
    parser.add_argument("--threads", type=at_least(1), default=None,
                        help="torch intra-op threads (default: 1 for digits, whose tiny steps only lose from more; torch's default otherwise)")


def check_run_dir(run_dir: Path) -> None:
    """``CommandError`` unless ``run_dir`` can hold a new run: absent, or an empty folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise CommandError(f"--run-dir {str(run_dir)!r} is a file; give a new folder")
    if (run_dir / "run.json").exists():
        raise CommandError(f"--run-dir {str(run_dir)!r} already holds a run; finish it with `mariana resume {run_dir}` or give a new folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise CommandError(f"--run-dir {str(run_dir)!r} already exists and is not empty; give a new folder")


def run_demo(args: argparse.Namespace) -> int:
    from mariana.training import DatasetMapper, Trainer, recorders, stops

    loader, image_shape, default_epochs = DATASETS[args.dataset]
    epochs = args.epochs if args.epochs is not None else default_epochs
    run_dir = Path(args.run_dir or f"runs/demo-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_run_dir(run_dir)
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise CommandError(f"--data-dir {args.data_dir!r} is not a folder")
    try:
        data = loader(args.data_dir)
    except (FileNotFoundError, ValueError) as error:  # missing or damaged idx files
        hint = "" if "MARIANA_DATA" in str(error) else " Pass --data-dir FOLDER or set MARIANA_DATA (the demo downloads nothing)."
        raise CommandError(f"{error}{hint}") from None
    except OSError as error:  # the decoded copy cannot be written to the cache
        raise CommandError(f"cannot write the decoded {args.dataset} to {datasets.cache_folder()} ({error.strerror}); "
                           f"set MARIANA_CACHE to a writable folder") from None
    threads = args.threads or (1 if args.dataset == "digits" else None)
    if threads:
        torch.set_num_threads(threads)
    mar.seed(args.seed)
    net = BUILDERS[args.model](image_shape, 10)
    shape = net["inp"].shape
    x, y = data["train"]["x"].reshape(-1, *shape), data["train"]["y"]
    x_test, y_test = data["test"]["x"].reshape(-1, *shape), data["test"]["y"]
    cut = len(x) - len(x) // 10  # last tenth of the training set for validation
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
    if not np.isfinite(last["train"]["out"]["loss"]):
        print(f"The training loss is {last['train']['out']['loss']}: the run diverged.", file=sys.stderr)
        return 1
    if args.dataset == "digits" and epochs >= default_epochs and accuracy < 0.95:  # the demo's own sanity check
        print(f"Held-out accuracy {accuracy:.4f} is below the 0.95 the digits demo reaches in {default_epochs} epochs.", file=sys.stderr)
        return 1
    return 0
