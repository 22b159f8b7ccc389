"""The history of a run: one entry per epoch, and why the run stopped.

Example:
    >>> history = History([{"epoch": 1}], stop_reason="EpochWall: reached 1 epoch(s)")
    >>> len(history), history.stop_reason
    (1, 'EpochWall: reached 1 epoch(s)')
"""

from __future__ import annotations

from collections.abc import Iterable


class History(list):
    """A list of epoch entries (as ``trainer.start`` and ``net.fit`` return it) that also says why the run stopped.

    ``stop_reason`` is None until a stop fires, then the stops' reasons joined by "; ".
    """

    def __init__(self, entries: Iterable[dict] = (), stop_reason: str | None = None) -> None:
        super().__init__(entries)
        self.stop_reason = stop_reason
