"""Strategies: how the processes of a run share its work (see ``base``); ``strategy_for`` picks one by name.

Example:
    >>> strategy_for("auto").name        # no torchrun here: one process
    'single'
    >>> strategy_for("fsdp")
    Traceback (most recent call last):
    ...
    NotImplementedError: Trainer: strategy='fsdp' (sharded training) is not built yet; use 'auto' or 'ddp'.
"""

from __future__ import annotations

from typing import Any

from mariana.training.strategies.base import SingleProcess, Strategy
from mariana.training.strategies.ddp import DataParallel
from mariana.training.strategies.process_group import torchrun_world

#: ``Trainer(strategy=...)`` names; "auto" is DDP under torchrun (several processes), one process otherwise.
STRATEGIES: dict[str, type[Strategy]] = {"single": SingleProcess, "ddp": DataParallel}
NOT_BUILT = {"fsdp": "sharded training"}


def strategy_for(name: Any) -> Strategy:
    """The strategy ``Trainer(strategy=name)`` asks for, knowing this process's place from torchrun's environment.

    Nothing is joined yet: that happens when training starts (``Strategy.setup``).
    """
    if isinstance(name, Strategy):
        return name
    if name in NOT_BUILT:
        raise NotImplementedError(f"Trainer: strategy={name!r} ({NOT_BUILT[name]}) is not built yet; use 'auto' or 'ddp'.")
    if not isinstance(name, str) or (name not in STRATEGIES and name != "auto"):
        raise ValueError(f"Trainer: strategy must be 'auto', {', '.join(map(repr, STRATEGIES))} or a Strategy, "
                         f"but received {name!r}.")
    rank, world, local_rank = torchrun_world()
    if name in ("auto", "ddp"):  # "ddp" in one process has nothing to share: the one-process run
        name = "ddp" if world > 1 else "single"
    if name == "single" and world > 1:
        raise ValueError(f"Trainer: strategy='single' trains in one process, but this is process {rank} of {world} "
                         f"(torchrun); use strategy='auto' or 'ddp'.")
    return STRATEGIES[name](rank, world, local_rank)
