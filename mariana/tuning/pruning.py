"""The pruning stop: reports the search's objective to its Optuna trial after each epoch and ends the run when the pruner says so.

The run's stop reason then reads "pruned by the median pruner at epoch 3".
The stop is kept in run.json like any stop (its config names the objective
and the pruner, not the trial), so a trial's run directory resumes with
``mariana resume --import mariana.tuning RUN_DIR``; rebuilt that way it has no
trial to report to and never fires.

Example:
    >>> import optuna
    >>> study = optuna.create_study(direction="maximize")
    >>> stop = PruneTrial("valid", "out", "accuracy", pruner="median", trial=study.ask())
    >>> stop.update(None, {"epoch": 1, "valid": {"out": {"accuracy": 0.5}}}) is None
    True
    >>> PruneTrial("valid", "out", "accuracy").get_config()
    {'stream': 'valid', 'output': 'out', 'metric': 'accuracy', 'pruner': 'median'}
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mariana.training.stops import Stop

if TYPE_CHECKING:
    from mariana.training import Trainer

STREAMS = ("train", "valid", "test")
#: How the stop's reason begins ("pruned by the median pruner at epoch 3").
PRUNED = "pruned by the"
METRICS = ("loss", "accuracy")


class PruneTrial(Stop):
    """Report ``entry[stream][output][metric]`` to ``trial`` each epoch; stop when ``trial.should_prune()``.

    ``pruner`` is the pruner's name as the stop reason shows it ("median").
    ``trial`` (an Optuna trial, not kept in the config) may be None: the stop then never fires.
    """

    hyperparameters = ("stream", "output", "metric", "pruner")

    def __init__(self, stream: str, output: str, metric: str = "loss", pruner: str = "median", trial: Any = None) -> None:
        if stream not in STREAMS:
            raise ValueError(f"PruneTrial: stream must be one of {STREAMS}, but received {stream!r}.")
        if metric not in METRICS:
            raise ValueError(f"PruneTrial: metric must be one of {METRICS}, but received {metric!r}.")
        if not isinstance(output, str) or not isinstance(pruner, str):
            raise TypeError(f"PruneTrial: output and pruner must be str, but received {output!r} and {pruner!r}.")
        self.stream, self.output, self.metric, self.pruner = stream, output, metric, pruner
        self.trial = trial
        #: The epoch at which the pruner stopped the run (None: it did not).
        self.pruned_at: int | None = None
        self._reported: set[int] = set()

    def check(self, streams: list[str], outputs: dict[str, bool]) -> None:
        if self.stream not in streams:
            raise ValueError(f"The search's objective reads stream {self.stream!r}, but the run has streams {streams}; "
                             f"pass the {self.stream} data to the search.")
        if self.output not in outputs:
            raise ValueError(f"The search's objective reads output {self.output!r}, but the run trains outputs {list(outputs)}.")
        if self.metric == "accuracy" and not outputs[self.output]:
            raise ValueError(f"The search's objective is the accuracy of {self.output!r}, which is not a classifier; use 'loss'.")

    def update(self, trainer: Trainer | None, entry: dict) -> str | None:
        if self.trial is None:
            return None
        self.report([*(trainer.history if trainer is not None else []), entry])
        if not self.trial.should_prune():
            return None
        self.pruned_at = entry["epoch"]
        return f"{PRUNED} {self.pruner} pruner at epoch {entry['epoch']}"

    def report(self, history: list[dict]) -> None:
        """Report every epoch of ``history`` this trial has not been told yet (a continued run's earlier epochs too)."""
        for entry in history:
            if entry["epoch"] not in self._reported and self.stream in entry:
                self.trial.report(float(entry[self.stream][self.output][self.metric]), step=int(entry["epoch"]))
                self._reported.add(entry["epoch"])


def ended_by_pruning(stop_reason: str | None) -> bool:
    """Whether a run's stop reason says the pruning stop fired (alone, or with other stops at the same epoch).

    Example:
        >>> ended_by_pruning("EpochWall: reached 4 epoch(s); pruned by the median pruner at epoch 4"), ended_by_pruning(None)
        (True, False)
    """
    return stop_reason is not None and any(part.startswith(PRUNED) for part in stop_reason.split("; "))


def pruner_name(pruner: Any) -> str:
    """How a stop reason names an Optuna pruner: ``MedianPruner()`` -> "median", ``SuccessiveHalvingPruner()`` -> "successive halving".

    Example:
        >>> import optuna
        >>> pruner_name(optuna.pruners.MedianPruner()), pruner_name(optuna.pruners.SuccessiveHalvingPruner())
        ('median', 'successive halving')
    """
    name = type(pruner).__name__.removesuffix("Pruner") or type(pruner).__name__
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower()
