"""One training script for the data-parallel tests: run as is (one process) or under torchrun (several).

``python tests/training/ddp_child.py DATA RUN_DIR OUT [--dropout] [--kill-at N] [--term-at N] [--rows N] [--mmap FOLDER]``

The same script whatever the launcher, as a user writes it. Each process
writes, into OUT (not the run directory): its final weights
(``weights-rank{R}.pt``) and the files it opened for writing, renamed or
removed inside RUN_DIR (``writes-rank{R}-attempt{A}.json``, from an audit
hook). ``--kill-at N``: rank 1 of torchrun's first attempt SIGKILLs itself at
its N-th optimizer step; ``--term-at N``: rank 0 sends itself SIGTERM there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import mariana as mar
import mariana.activations as MA
import mariana.costs as MC
import mariana.decorators as MD
import mariana.layers as ML
import mariana.scenari as MS
from mariana.training import DatasetMapper, Trainer, recorders, stops

EPOCHS = 3


def network(dropout: bool, variant: str | None = None) -> mar.Network:
    """The MLP of every test. ``variant="weighted"``: a frozen first layer, class weights, weights drawn differently
    on each rank (DDP must start every rank from rank 0's); ``"batchnorm"``: a BatchNorm after the hidden layer."""
    mar.seed(int(os.environ.get("RANK", "0")) if variant == "weighted" else 0)
    hidden = ML.Hidden(32, activation=MA.ReLU(), decorators=[MD.BinomialDropout(0.2)] if dropout else [], name="hid")
    cost = MC.NegativeLogLikelihood(class_weights=[1.0 + k for k in range(10)]) if variant == "weighted" else None
    out = ML.SoftmaxClassifier(10, learning_scenari=[MS.Adam(lr=0.01)], cost=cost, name="out")
    if variant == "weighted":
        frozen = ML.Hidden(48, activation=MA.Tanh(), learning_scenari=[MS.Fixed()], name="frozen")
        return ML.Input(64, name="inp") > frozen > hidden > out
    if variant == "batchnorm":
        return ML.Input(64, name="inp") > hidden > ML.BatchNorm(name="bn") > out
    return ML.Input(64, name="inp") > hidden > out


def watch_writes(run_dir: str, log: list) -> None:
    """Record every file this process creates, writes, renames or removes under ``run_dir``."""
    root = os.path.realpath(run_dir)

    def inside(path) -> bool:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return False
        real = os.path.realpath(os.fsdecode(path))
        return real == root or real.startswith(root + os.sep)

    def hook(event, args):
        if event == "open" and args and inside(args[0]):
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)):
                log.append(["open", os.fsdecode(args[0])])
        elif event == "os.rename" and (inside(args[0]) or inside(args[1])):  # os.replace too
            log.append([event, os.fsdecode(args[1])])
        elif event in ("os.remove", "os.mkdir", "os.rmdir") and args and inside(args[0]):
            log.append([event, os.fsdecode(args[0])])

    sys.addaudithook(hook)


def step_hook(rank_wanted: int, at: int, signum: int):
    steps = [0]

    def after_step(optimizer, args, kwargs):
        steps[0] += 1
        if steps[0] == at and int(os.environ.get("RANK", "0")) == rank_wanted:
            signal.raise_signal(signum)

    register_optimizer_step_post_hook(after_step)


class FailsAtEpochEnd(recorders.Recorder):
    """A recorder that raises on rank 0 only (recorders run on every rank: the other ranks do not share the error)."""

    def on_epoch_end(self, trainer, entry):
        if trainer.distributed.is_writer:
            raise RuntimeError(f"recorder failure at the end of epoch {entry['epoch']}")


class HooksSeen(recorders.Recorder):
    """A user's recorder that acts on its own rank: it keeps the hooks it received, written by main() into OUT."""

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, trainer, entry):
        self.seen.append(["epoch_end", trainer.distributed.rank, entry["epoch"]])

    def on_end(self, trainer, reason):
        self.seen.append(["end", trainer.distributed.rank, reason])


class StopsOnRank1(stops.Stop):
    """A stop on a local signal (a node-local STOP file, the local clock): it fires on rank 1 only, after epoch 1."""

    def update(self, trainer, entry):
        return "StopsOnRank1: rank 1's local signal" if trainer.distributed.rank == 1 and entry["epoch"] >= 1 else None


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--dropout", action="store_true")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--term-at", type=int)
    parser.add_argument("--accumulate", type=int, default=1)
    parser.add_argument("--variant", choices=["weighted", "batchnorm"])
    parser.add_argument("--fail-on-rank-0", action="store_true", help="a recorder raises at the end of epoch 1")
    parser.add_argument("--local-stop", action="store_true", help="a stop that fires on rank 1 only, after epoch 1")
    parser.add_argument("--step-wall", type=int, help="end after this many optimizer steps (mid-epoch)")
    parser.add_argument("--rows", type=int, help="train on the first ROWS rows (one that leaves a short last batch)")
    parser.add_argument("--mmap", metavar="FOLDER", help="read x, y, vx, vy from FOLDER/<name>.npy, memory-mapped")
    options = parser.parse_args(argv)
    torch.set_num_threads(1)
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    writes: list = []
    watch_writes(options.run_dir, writes)
    if options.kill_at and attempt == 0:
        step_hook(1, options.kill_at, signal.SIGKILL)
    if options.term_at and attempt == 0:
        step_hook(0, options.term_at, signal.SIGTERM)
    if options.mmap:
        arrays = {name: np.load(os.path.join(options.mmap, f"{name}.npy"), mmap_mode="r") for name in ("x", "y", "vx", "vy")}
    else:
        with np.load(options.data) as stored:
            arrays = dict(stored)
    train = DatasetMapper(inp=arrays["x"][:options.rows], out=arrays["y"][:options.rows])
    valid = DatasetMapper(inp=arrays["vx"][:options.rows], out=arrays["vy"][:options.rows], sampler="sequential")
    seen = HooksSeen()
    stop_list = [stops.EpochWall(EPOCHS), *([StopsOnRank1()] if options.local_stop else []),
                 *([stops.StepWall(options.step_wall)] if options.step_wall else [])]
    trainer = Trainer(network(options.dropout, options.variant), "out", batch_size=32, stops=stop_list,
                      recorders=[recorders.CSV("log.csv"), seen, *([FailsAtEpochEnd()] if options.fail_on_rank_0 else [])],
                      run_dir=options.run_dir, seed=7, resume="auto",
                      accumulate=options.accumulate)
    rank = trainer.distributed.rank
    try:
        trainer.start(train, valid=valid)
        torch.save(trainer.net.state_dict(), os.path.join(options.out, f"weights-rank{rank}.pt"))
        with open(os.path.join(options.out, f"history-rank{rank}.json"), "w") as file:
            json.dump(list(trainer.history), file)
        with open(os.path.join(options.out, f"hooks-rank{rank}.json"), "w") as file:
            json.dump(seen.seen, file)
    finally:
        with open(os.path.join(options.out, f"writes-rank{rank}-attempt{attempt}.json"), "w") as file:
            json.dump(writes, file)


if __name__ == "__main__":
    main(sys.argv[1:])
