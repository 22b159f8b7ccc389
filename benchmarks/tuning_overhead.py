"""Tuning overhead: the time a search spends per trial against plain Trainer runs of the same network and epochs.

The work: digits (the demo's split: 1293 train / 144 valid images), the
network 64-64-10 (ReLU, Adam lr 0.01), 4 epochs of batch 64, one torch thread.
Every contender trains ``--trials`` such networks; the search draws fixed
values (``hp.int("size", 64, 64)``...), so its trials are exactly the plain
runs. Contenders:

* ``trainer``: ``Trainer(...).start`` without a run directory (the reference);
* ``trainer + run_dir``: with a run directory, as each trial has one (run.json,
  the data copy, a checkpoint per epoch);
* ``search (memory)``: ``mariana.tuning.search`` on an in-memory study, with ``pruner=None`` so
  every trial trains all its epochs, as the plain runs do (each epoch's value is still reported);
* ``search (sqlite)``: the same on an SQLite file with heartbeats (what several workers share);
  the file's tables are created before the clock starts (once per study: its time is printed apart).

The search's own overhead is its time per trial minus ``trainer + run_dir``'s:
building the trial, Optuna's bookkeeping, reporting each epoch, measuring the
objective again on the trained network and saving it as a .mar. Best of
``--repeats``, alternating, after one warm-up of each.

    $ python benchmarks/tuning_overhead.py
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import optuna
import torch

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS
import mariana.tuning as MT
from mariana.datasets import digits
from mariana.training import DatasetMapper, Trainer, stops

EPOCHS, BATCH, SIZE, LR = 4, 64, 64, 0.01


def network(size: int = SIZE, activation: MA.Activation | None = None, lr: float = LR) -> mar.Network:
    return (ML.Input(64, name="inp") > ML.Hidden(size, activation=activation or MA.ReLU(), name="hid")
            > ML.SoftmaxClassifier(10, learning_scenari=[MS.Adam(lr=lr)], name="out"))


def build(hp: MT.HyperParameters) -> mar.Network:
    return network(hp.int("size", SIZE, SIZE), hp.choice("act", [MA.ReLU()]), hp.float("lr", LR, LR))


def trainer_runs(streams: dict, trials: int, run_root: Path | None) -> float:
    start = time.perf_counter()
    for trial in range(trials):
        mar.seed(trial)
        run_dir = None if run_root is None else run_root / f"run-{trial}"
        Trainer(network(), batch_size=BATCH, stops=[stops.EpochWall(EPOCHS)], recorders=[], seed=trial, run_dir=run_dir).start(**streams)
    return time.perf_counter() - start


def search_runs(streams: dict, trials: int, run_root: Path, storage: str | None) -> float:
    if storage is not None:  # a new database's tables are made once per study, not per trial: timed apart (create_database)
        optuna.storages.RDBStorage(storage)
    start = time.perf_counter()
    MT.search(build, streams["train"], streams["valid"], trials=trials, epochs=EPOCHS, batch_size=BATCH, objective=("valid", "out", "accuracy"),
              storage=storage, study_name="bench", run_root=run_root, pruner=None, verbose=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    data = digits()
    x, y = data["train"]["x"], data["train"]["y"]
    cut = len(x) - len(x) // 10
    streams = {"train": DatasetMapper(inp=x[:cut], out=y[:cut]), "valid": DatasetMapper(inp=x[cut:], out=y[cut:])}
    contenders = {
        "trainer": lambda root: trainer_runs(streams, args.trials, None),
        "trainer + run_dir": lambda root: trainer_runs(streams, args.trials, root),
        "search (memory)": lambda root: search_runs(streams, args.trials, root, None),
        "search (sqlite)": lambda root: search_runs(streams, args.trials, root, f"sqlite:///{root / 'study.db'}"),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name, run in contenders.items():
            root = Path(tempfile.mkdtemp(prefix="tuning-bench-"))
            try:
                seconds = run(root)
            finally:
                shutil.rmtree(root)
            if repeat:
                times[name].append(seconds / args.trials)
    root = Path(tempfile.mkdtemp(prefix="tuning-bench-"))
    start = time.perf_counter()
    optuna.storages.RDBStorage(f"sqlite:///{root / 'study.db'}")
    create_database = time.perf_counter() - start
    shutil.rmtree(root)
    reference = min(times["trainer"])
    with_run_dir = min(times["trainer + run_dir"])
    print(f"digits, 64-64-10 Adam, {EPOCHS} epochs x batch {BATCH}, {args.trials} trials per contender, "
          f"best of {args.repeats}, torch {torch.__version__}, optuna {optuna.__version__}, 1 thread")
    print(f"{'contender':<20} {'s/trial':>8} {'ratio':>7} {'minus run_dir':>14}   all (s/trial)")
    for name, values in times.items():
        best = min(values)
        extra = f"{(best - with_run_dir) * 1000:+10.1f} ms" if name.startswith("search") else ""
        print(f"{name:<20} {best:8.4f} {best / reference:7.3f} {extra:>14}   {', '.join(f'{v:.4f}' for v in values)}")
    print(f"creating a new SQLite study database (once per study, not in the figures above): {create_database:.3f} s")


if __name__ == "__main__":
    main()
