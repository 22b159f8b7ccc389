"""Stops and recorders are the Trainer's callbacks; this module checks them and carries their state.

Hooks, in the order the Trainer calls them (all on the process that trains;
recorders may write files):

* ``Recorder.on_start(trainer, resumed)`` once per session (a resume is a new session);
* ``Recorder.on_epoch_start(trainer, epoch, steps)`` before each epoch's steps;
* ``Recorder.on_step(trainer, step, steps)`` after each step (only when overridden: it costs);
* ``Stop.update(trainer, entry)`` at the end of each epoch, returning a reason to stop or None,
  then ``Recorder.on_epoch_end(trainer, entry)`` once the entry is in ``trainer.history``;
* ``Stop.finish(trainer)`` for the stops that fired, then ``Recorder.on_end(trainer, reason)``;
* ``Recorder.close()`` always, even when the run fails.

Each stop and recorder's ``state_dict()`` is saved with every checkpoint and
given back on resume, so a user callback keeps counting where it was.

Example:
    >>> from mariana.training import stops
    >>> wall = stops.EpochWall(3)
    >>> saved = states([wall]); load_states([stops.EpochWall(3)], saved)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mariana.training.stops import EarlyStopping


def checked_list(items: Sequence[Any] | None, base: type, label: str, module: str, empty: str | None = None) -> list:
    """``items`` as a list, every one an instance of ``base``; else a TypeError naming ``module``
    (and a ValueError saying ``empty`` when it is empty and that is not allowed)."""
    items = list(items or [])
    if not items and empty is not None:
        raise ValueError(empty)
    for item in items:
        if not isinstance(item, base):
            raise TypeError(f"Trainer: {label} expects {module} objects, but received {item!r}.")
    return items


def states(objects: Sequence[Any]) -> list[dict]:
    """Each stop's or recorder's state, tagged with its class."""
    return [{"class": type(obj).__qualname__, "state": obj.state_dict()} for obj in objects]


def load_states(objects: Sequence[Any], saved_states: list[dict]) -> None:
    """Give each stop/recorder its saved state; one passed to ``resume`` in place of another starts fresh."""
    for obj, saved in zip(objects, saved_states):
        if saved["class"] == type(obj).__qualname__:
            obj.load_state_dict(saved["state"])


def checked_best(best: Any) -> tuple[str, str, str] | None:
    """The Trainer's ``best=`` argument checked: None, or a (stream, output, metric) triple of names."""
    if best is not None and (isinstance(best, str) or len(best) != 3 or not all(isinstance(part, str) for part in best)):
        raise ValueError(f"Trainer: best must be (stream, output, metric), e.g. ('valid', 'out', 'loss'), but received {best!r}.")
    return tuple(best) if best is not None else None


def best_monitor(best: Sequence[str] | None, stops: Sequence[Any], streams: list[str], outputs: list[str],
                 classifiers: list[str]) -> tuple[str, str, str]:
    """The (stream, output, metric) that picks the best checkpoint, checked against the run.

    Default: the first EarlyStopping's, else the valid (or train) loss of the first output.
    """
    if best is None:
        monitor = next((s for s in stops if isinstance(s, EarlyStopping)), None)
        best = ((monitor.stream, monitor.output, monitor.metric) if monitor is not None
                else ("valid" if "valid" in streams else "train", outputs[0], "loss"))
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
        if value is None or math.isnan(value):
            return False
        better = self.value is None or (value > self.value if self.metric == "accuracy" else value < self.value)
        if better:
            self.value = value
        return better
