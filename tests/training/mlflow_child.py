"""A small run reporting to MLflow, as its own process, for the kill-and-rerun test.

``python tests/training/mlflow_child.py TRACKING_URI RUN_DIR MODE [EPOCH STEP]`` trains with
``resume="auto"`` (so rerunning the command continues the run) and prints the history as JSON at the end.
MODE ``kill EPOCH STEP``: SIGKILL itself after that step of that epoch (STEP 0: after the epoch's end was
reported to MLflow, before its checkpoint); ``finish``: train to the end.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import torch

import mariana as mar
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, recorders, stops

EPOCHS = 4


@mar.register
class KillAt(recorders.Recorder):
    """SIGKILLs its own process after a given step, or after the epoch's end was recorded (step 0)."""

    hyperparameters = ("epoch", "step")

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step = epoch, step

    def on_step(self, trainer, step, steps):
        if self.step and trainer.epoch + 1 == self.epoch and step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(self, trainer, entry):
        if not self.step and entry["epoch"] == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


def main(uri: str, run_dir: str, mode: str, *where: str) -> None:
    torch.set_num_threads(1)
    mar.seed(0)
    x = np.random.default_rng(0).normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    killer = [KillAt(int(where[0]), int(where[1]))] if mode == "kill" else []
    trainer = Trainer(build_mlp((4,), 2, hidden=8), outputs="out", batch_size=16, stops=[stops.EpochWall(EPOCHS)],
                      recorders=[recorders.MLflow("killed", tracking_uri=uri), *killer], run_dir=run_dir, seed=1, resume="auto")
    history = trainer.start(DatasetMapper(inp=x, out=y), valid=DatasetMapper(inp=x[:32], out=y[:32]))
    print(json.dumps(list(history)))


if __name__ == "__main__":
    main(*sys.argv[1:])
