"""A small training run, in-process or as its own process, for the interruption tests.

``python tests/training/run_child.py DATA RUN_DIR MODE [ARG...]`` trains the
same network on the same data (an ``.npz`` written by :func:`save_data`) as
:func:`make_trainer` does in-process:

* ``signal NAME EPOCH STEP``: send signal NAME to itself after that step (STEP 0: the epoch's last);
* ``raise EPOCH STEP``: a recorder raises RuntimeError after that step;
* ``sigkill-write N``: SIGKILL itself while fsyncing the N-th checkpoint file (mid-write);
* ``auto``: train with ``resume="auto"`` and a short sleep per step (the test kills it from outside
  and reruns the same command);
* ``plain``: train without interruption.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import torch

import mariana as mar
from mariana.datasets import digits
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, recorders, stops

EPOCHS = 3


@mar.register
class SignalAt(recorders.Recorder):
    """Sends a signal to its own process after a given step (step 0: the last of the epoch)."""

    hyperparameters = ("signal_name", "epoch", "step")

    def __init__(self, signal_name: str, epoch: int, step: int) -> None:
        self.signal_name, self.epoch, self.step = signal_name, epoch, step

    def on_step(self, trainer, step, steps):
        if trainer.epoch + 1 == self.epoch and step == (self.step or steps):
            os.kill(os.getpid(), getattr(signal, self.signal_name))


@mar.register
class RaiseAt(SignalAt):
    """Raises RuntimeError after a given step."""

    hyperparameters = ("epoch", "step")

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step = epoch, step

    def on_step(self, trainer, step, steps):
        if trainer.epoch + 1 == self.epoch and step == (self.step or steps):
            raise RuntimeError(f"recorder failure at epoch {self.epoch}, step {step}")


def save_data(path):
    """A slice of digits as .npz, so child processes need not import scikit-learn."""
    split = digits(seed=0)
    np.savez(path, x=split["train"]["x"][:640], y=split["train"]["y"][:640], vx=split["test"]["x"][:200], vy=split["test"]["y"][:200])


def data(path):
    with np.load(path) as arrays:
        train = DatasetMapper(inp=arrays["x"], out=arrays["y"])
        valid = DatasetMapper(inp=arrays["vx"], out=arrays["vy"], sampler="sequential")
    return train, valid


@mar.register
class Sleepy(recorders.Recorder):
    """Sleeps after every step, so a test has time to kill the process mid-run."""

    hyperparameters = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step(self, trainer, step, steps):
        time.sleep(self.seconds)


def make_trainer(run_dir=None, extra=(), **options):
    mar.seed(0)
    net = build_mlp((64,), 10, hidden=32)  # dropout: the run draws from torch's global RNG every step
    return Trainer(net, "out", batch_size=32, stops=[stops.EpochWall(EPOCHS)],
                   recorders=[*([recorders.CSV("log.csv")] if run_dir else []), *extra], run_dir=run_dir, seed=7, **options)


def main(argv):
    torch.set_num_threads(1)
    data_path, run_dir, mode, *args = argv
    extra = []
    if mode == "signal":
        extra = [SignalAt(args[0], int(args[1]), int(args[2]))]
    elif mode == "raise":
        extra = [RaiseAt(int(args[0]), int(args[1]))]
    elif mode == "sigkill-write":
        target, seen, real_fsync = int(args[0]), [], os.fsync

        def fsync(fd):
            name = os.readlink(f"/proc/self/fd/{fd}")
            if ".ckpt-" in name and name.endswith(".tmp") and ".sha256." not in name:  # checkpoints, not their sidecars
                seen.append(name)
                if len(seen) == target:
                    os.kill(os.getpid(), signal.SIGKILL)
            real_fsync(fd)

        os.fsync = fsync
        # The writer thread fsyncs checkpoint N after epoch N-1; hold the main thread before epoch N
        # so no later log row can be written before the kill lands, however loaded the machine is.
        real_epoch = Trainer._train_epoch

        def train_epoch(self):
            if self.epoch + 1 == target:
                time.sleep(60)
            real_epoch(self)

        Trainer._train_epoch = train_epoch
    options = {}
    if mode == "auto":
        extra, options = [Sleepy(float(args[0]))], {"resume": "auto"}
    train, valid = data(data_path)
    trainer = make_trainer(run_dir, extra, **options)
    trainer.start(train, valid=valid)
    torch.save(trainer.net.state_dict(), os.path.join(run_dir, "final_weights.pt"))  # for the test to compare


if __name__ == "__main__":
    main(sys.argv[1:])
