"""Which value of a metric is better (lower loss, higher accuracy), and the monitor that picks the best checkpoint.

Example:
    >>> improves("accuracy", 0.9, 0.8), improves("loss", 0.9, 0.8), improves("loss", 0.5, None)
    (True, False, True)
    >>> improves("loss", 0.75, 0.8, margin=0.1)
    False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def higher_is_better(metric: str) -> bool:
    """Accuracy grows as a model improves; every other metric Mariana records (losses) shrinks."""
    return metric == "accuracy"


def improves(metric: str, value: float, best: float | None, margin: float = 0.0) -> bool:
    """Whether ``value`` of ``metric`` beats ``best`` by more than ``margin`` (anything finite beats None; NaN never does)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best + margin if higher_is_better(metric) else value < best - margin


def checked_best(best: Any) -> tuple[str, str, str] | None:
    """The Trainer's ``best=`` argument checked: None, or a (stream, output, metric) triple of names."""
    if best is not None and (isinstance(best, str) or len(best) != 3 or not all(isinstance(part, str) for part in best)):
        raise ValueError(f"Trainer: best must be (stream, output, metric), e.g. ('valid', 'out', 'loss'), but received {best!r}.")
    return tuple(best) if best is not None else None


def best_monitor(best: Sequence[str] | None, watched: Sequence[str] | None, streams: list[str], outputs: list[str],
                 classifiers: list[str]) -> tuple[str, str, str]:
    """The (stream, output, metric) that picks the best checkpoint, checked against the run.

    Default: ``watched`` (the first EarlyStopping's), else the valid (or train) loss of the first output.
    """
    if best is None:
        best = watched if watched is not None else ("valid" if "valid" in streams else "train", outputs[0], "loss")
    stream, output, metric = best
    problem = (f"stream {stream!r} is not one of the run's {streams}" if stream not in streams
               else f"output {output!r} is not one of the trained {outputs}" if output not in outputs
               else f"metric {metric!r} is not 'loss' or (for a classifier) 'accuracy'"
               if metric != "loss" and not (metric == "accuracy" and output in classifiers) else None)
    if problem:
        raise ValueError(f"Trainer: best={tuple(best)!r} cannot be followed: {problem}.")
    return tuple(best)


class BestValue:
    """The best value so far of ``(stream, output, metric)`` over the epochs: lowest loss, highest accuracy."""

    def __init__(self, key: Sequence[str]) -> None:
        self.stream, self.output, self.metric = key
        self.value: float | None = None

    def improved(self, entry: dict) -> bool:
        """Whether ``entry`` (one epoch of the history) beats the best so far; it becomes the best if so."""
        value = entry.get(self.stream, {}).get(self.output, {}).get(self.metric)
        if value is None or not improves(self.metric, value, self.value):
            return False
        self.value = value
        return True
