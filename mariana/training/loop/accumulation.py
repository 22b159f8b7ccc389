"""Gradient accumulation: ``accumulate=k`` adds the gradients of k batches before one optimizer step.

A group is k consecutive batches of an epoch (fewer at its end). Each batch adds
its share of the group's rows times its gradient, and the optimizers step on the
group's last batch: the step of one batch as large as the group.

Example:
    >>> [group_of(step, steps=5, total=300, batch_size=64, accumulate=2) for step in range(5)]
    [(False, 128), (True, 128), (False, 128), (True, 128), (True, 44)]
"""

from __future__ import annotations

from typing import Any

from mariana.checks import int_at_least


def checked_accumulate(accumulate: Any, order: str, outputs: list[str]) -> int:
    """``accumulate`` checked: at least 1, and with several outputs only in order "simultaneous"."""
    accumulate = int_at_least(accumulate, 1, "Trainer: accumulate")
    if accumulate > 1 and order != "simultaneous" and len(outputs) > 1:
        raise ValueError(f"Trainer: accumulate={accumulate} needs order='simultaneous' with several outputs: the outputs' "
                         f"steps would add to each other's gradients in order={order!r}.")
    return accumulate


def group_of(step: int, steps: int, total: int, batch_size: int, accumulate: int) -> tuple[bool, int]:
    """For batch ``step`` of an epoch of ``steps`` batches over ``total`` rows: whether the optimizers step after
    it (the group's last batch), and the rows of its group."""
    first = step - step % accumulate
    size = min(accumulate, steps - first)
    return step + 1 == first + size, min(total, (first + size) * batch_size) - first * batch_size
