"""Stops and recorders are the Trainer's callbacks; this module checks them and carries their state.

Hooks, in the order the Trainer calls them. Stops and recorders run on every
process of a distributed run; recorders that write files or print
(``writes_files = True``) run on rank 0 only.

* ``Recorder.on_start(trainer, resumed)`` once per session (a resume is a new session);
* ``Recorder.on_epoch_start(trainer, epoch, steps)`` before each epoch's steps;
* ``Recorder.on_step(trainer, step, steps)`` after each step (only when overridden: it costs);
* ``Stop.update_step(trainer, steps)`` after each optimizer step (only when overridden), returning a
  reason to end the run now (the partial epoch is then evaluated and recorded as the last) or None;
* ``Stop.update(trainer, entry)`` at the end of each epoch, returning a reason to stop or None
  (any process's reason stops every process), then ``Recorder.on_epoch_end(trainer, entry)`` once the entry is in ``trainer.history``;
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

from collections.abc import Sequence
from typing import Any


def checked_list(items: Sequence[Any] | None, base: type, label: str, module: str, empty: str | None = None) -> list:
    """``items`` as a list, every one an instance of ``base``; else a TypeError naming ``module``
    (and a ValueError saying ``empty`` when it is empty and that is not allowed)."""
    if isinstance(items, base) or (items is not None and not isinstance(items, (list, tuple))):
        raise TypeError(f"Trainer: {label} expects a list of {module} objects, but received {items!r}; "
                        f"pass a list: {label}=[{items!r}].")
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
