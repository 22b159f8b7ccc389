"""Stop criteria: checked after every epoch (and, for step-level stops, after every optimizer step).

Every stop sees the epoch's history entry (``entry[stream][output][metric]``)
and returns the reason to stop, or None; a stop that overrides
``update_step(trainer, steps)`` is also asked after each optimizer step
(``steps``: taken since the run started) and may end the run mid-epoch: that
partial epoch is then evaluated and recorded as the last. Stops run on every
process of a distributed run, and any process's stop stops all of them at the
same boundary. A stop that fires may change the
network when the run ends (EarlyStopping restores the best weights, NaNGuard
the last finite ones). Their state is saved with every checkpoint.

Example:
    >>> from mariana.training import stops
    >>> wall = stops.EpochWall(2)
    >>> wall.update(None, {"epoch": 1}), wall.update(None, {"epoch": 2})
    (None, 'EpochWall: reached 2 epoch(s)')
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from mariana.checks import int_at_least, real_number
from mariana.registry import Configurable
from mariana.training.callbacks.best import higher_is_better, improves

if TYPE_CHECKING:
    from mariana.training.trainer import Trainer

METRICS = ("loss", "accuracy")


class Stop(Configurable):
    """Base class: ``update(trainer, entry)`` returns a reason (str) to stop, or None."""

    def check(self, streams: list[str], outputs: dict[str, bool]) -> None:
        """``ValueError`` when this stop names a stream, output or metric the run will not have."""

    def update(self, trainer: Trainer, entry: dict) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} must implement update(trainer, entry).")

    def update_step(self, trainer: Trainer, steps: int) -> str | None:
        """After each optimizer step (only when overridden: it costs): a reason to end the run now, or None."""
        return None

    def begin(self, trainer: Trainer) -> None:
        """Called once when a fresh run starts (not on resume)."""

    def finish(self, trainer: Trainer) -> None:
        """Called when this stop ended the run."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class EpochWall(Stop):
    """Stop after ``epochs`` epochs."""

    hyperparameters = ("epochs",)

    def __init__(self, epochs: int) -> None:
        self.epochs = int_at_least(epochs, 1, "EpochWall: epochs")

    def update(self, trainer: Trainer, entry: dict) -> str | None:
        return f"EpochWall: reached {self.epochs} epoch(s)" if entry["epoch"] >= self.epochs else None


class StepWall(Stop):
    """Stop after ``steps`` optimizer steps (Lightning's ``max_steps``), mid-epoch if need be.

    With ``accumulate=k`` an optimizer step takes k batches. The partial last
    epoch is evaluated and recorded like any other.

    Example:
        >>> wall = StepWall(3)
        >>> wall.update_step(None, 2), wall.update_step(None, 3)
        (None, 'StepWall: reached 3 optimizer step(s)')
    """

    hyperparameters = ("steps",)

    def __init__(self, steps: int) -> None:
        self.steps = int_at_least(steps, 1, "StepWall: steps")

    def update(self, trainer: Trainer, entry: dict) -> str | None:
        return None

    def update_step(self, trainer: Trainer, steps: int) -> str | None:
        return f"StepWall: reached {self.steps} optimizer step(s)" if steps >= self.steps else None


class TimeWall(Stop):
    """Stop after the first epoch that ends ``seconds`` or more after the run started (resumes included)."""

    hyperparameters = ("seconds",)

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"TimeWall: seconds must be a number > 0, but received {seconds!r}.")
        self.seconds = float(seconds)

    def update(self, trainer: Trainer, entry: dict) -> str | None:
        return f"TimeWall: {entry['time']:.1f} s >= {self.seconds:g} s" if entry["time"] >= self.seconds else None


class _Monitor(Stop):
    """A stop that watches ``entry[stream][output][metric]``; lower is better for loss, higher for accuracy."""

    def __init__(self, stream: str, output: str, metric: str = "loss") -> None:
        if metric not in METRICS:
            raise ValueError(f"{type(self).__name__}: metric must be one of {METRICS}, but received {metric!r}.")
        if stream not in ("train", "valid", "test"):
            raise ValueError(f"{type(self).__name__}: stream must be 'train', 'valid' or 'test', but received {stream!r}.")
        self.stream, self.output, self.metric = stream, output, metric

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)

    def check(self, streams: list[str], outputs: dict[str, bool]) -> None:
        name = type(self).__name__
        if self.stream not in streams:
            raise ValueError(f"{name} watches stream {self.stream!r}, but the run has streams {streams}; pass {self.stream}= to start().")
        if self.output not in outputs:
            raise ValueError(f"{name} watches output {self.output!r}, but the run trains outputs {list(outputs)}.")
        if self.metric == "accuracy" and not outputs[self.output]:
            raise ValueError(f"{name} watches the accuracy of {self.output!r}, which is not a classifier; watch 'loss'.")

    def value(self, entry: dict) -> float:
        return entry[self.stream][self.output][self.metric]

    def label(self) -> str:
        return f"{self.stream}/{self.output}/{self.metric}"


class ScoreWall(_Monitor):
    """Stop once a metric reaches ``threshold`` (loss at or below it, accuracy at or above it)."""

    hyperparameters = ("stream", "output", "metric", "threshold")

    def __init__(self, stream: str, output: str, metric: str = "loss", threshold: float = 0.0) -> None:
        super().__init__(stream, output, metric)
        self.threshold = real_number(threshold, "ScoreWall: threshold")

    def update(self, trainer: Trainer, entry: dict) -> str | None:
        value = self.value(entry)
        reached = value >= self.threshold if self.higher_is_better else value <= self.threshold
        return f"ScoreWall: {self.label()} = {value:.6g} reached {self.threshold:g}" if reached else None


class EarlyStopping(_Monitor):
    """Stop when a metric has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best=True`` the network gets back the weights of its best
    epoch when this stop ends the run.
    """

    hyperparameters = ("stream", "output", "metric", "patience", "min_delta", "restore_best")

    def __init__(self, stream: str, output: str, metric: str = "loss", patience: int = 3,
                 min_delta: float = 0.0, restore_best: bool = True) -> None:
        super().__init__(stream, output, metric)
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an int >= 1, but received {patience!r}.")
        if not real_number(min_delta, "EarlyStopping: min_delta") >= 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, but received {min_delta!r}.")
        self.patience, self.min_delta, self.restore_best = patience, float(min_delta), bool(restore_best)
        self.best: float | None = None
        self.best_epoch = 0
        self.waited = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def improved(self, value: float) -> bool:
        return improves(self.metric, value, self.best, self.min_delta)

    def update(self, trainer: Trainer, entry: dict) -> str | None:
        value = self.value(entry)
        if self.improved(value):
            self.best, self.best_epoch, self.waited = value, entry["epoch"], 0
            if self.restore_best:
                self.best_weights = {k: v.detach().clone() for k, v in trainer.net.state_dict().items()}
            return None
        self.waited += 1
        if self.waited >= self.patience:
            restored = "; restored its weights" if self.restore_best and self.best_weights is not None else ""
            best = f"best {self.best:.6g} at epoch {self.best_epoch}" if self.best is not None else "no finite value yet"
            return (f"EarlyStopping: {self.label()} did not improve by more than {self.min_delta:g} for {self.patience} "
                    f"epoch(s); {best}{restored}")
        return None

    def finish(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_weights is not None:
            trainer.net.module.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "waited": self.waited, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.waited = state["best"], state["best_epoch"], state["waited"]
        self.best_weights = state["best_weights"]


class NaNGuard(Stop):
    """Stop when a loss or a weight is NaN or infinite, and put back the last finite state.

    Checked once per epoch (losses are summed over the epoch, so one
    non-finite step shows): the weights and optimizer state go back to those
    at the end of the last finite epoch (or the start of the run).
    """

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None
        #: The epoch whose end state the snapshot holds (0: the start of the run).
        self.snapshot_epoch: int | None = None

    def _take(self, trainer: Trainer, epoch: int) -> None:
        self.snapshot = {
            "weights": {k: v.detach().clone() for k, v in trainer.net.state_dict().items()},
            "optimizer": _clone(trainer.net.optimizer_state_dict()),
        }
        self.snapshot_epoch = epoch

    def begin(self, trainer: Trainer) -> None:
        self._take(trainer, 0)

    def update(self, trainer: Trainer, entry: dict) -> str | None:
        bad = [
            f"{stream}/{output}/{metric}"
            for stream in ("train", "valid", "test") if stream in entry
            for output, metrics in entry[stream].items()
            for metric, value in metrics.items() if not math.isfinite(value)
        ]
        bad += [name for name, value in trainer.net.state_dict().items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
        if not bad:
            self._take(trainer, entry["epoch"])
            return None
        return f"NaNGuard: non-finite {', '.join(bad)} at epoch {entry['epoch']}; {self._restored()}"

    def _restored(self) -> str:
        if self.snapshot is None:
            return "no finite state was kept, so the weights were left as they are"
        if not self.snapshot_epoch:
            return "restored the initial weights and optimizer state (those of the start of the run, epoch 0)"
        return f"restored the weights and optimizer state of epoch {self.snapshot_epoch}, the last finite one"

    def finish(self, trainer: Trainer) -> None:
        if self.snapshot is not None:
            trainer.net.module.load_state_dict(self.snapshot["weights"])
            trainer.net.load_optimizer_state_dict(_clone(self.snapshot["optimizer"]), replace=True)

    def state_dict(self) -> dict:
        return {"snapshot": self.snapshot, "snapshot_epoch": self.snapshot_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.snapshot = state["snapshot"]
        self.snapshot_epoch = state.get("snapshot_epoch")  # absent from checkpoints written before it was kept


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value
