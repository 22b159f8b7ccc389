"""The history of a run: one entry per epoch, and why the run stopped.

In Jupyter a history shows its curves (one chart per output and metric, a
line per stream) and the stop reason; IPython without HTML prints one line per epoch.

Example:
    >>> history = History([{"epoch": 1}], stop_reason="EpochWall: reached 1 epoch(s)")
    >>> len(history), history.stop_reason
    (1, 'EpochWall: reached 1 epoch(s)')
    >>> print(History([{"epoch": 1, "time": 0.5, "train": {"out": {"loss": 0.25}}}], "EpochWall").text())
    epoch 1 - train: loss 0.2500
    Stopped after epoch 1: EpochWall
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mariana.training.callbacks.progress_display import epoch_line

#: A longer history shows its first and last epochs as text.
TEXT_EPOCHS = 20


class History(list):
    """A list of epoch entries (as ``trainer.start`` and ``net.fit`` return it) that also says why the run stopped.

    ``stop_reason`` is None until a stop fires, then the stops' reasons joined by "; ".
    """

    def __init__(self, entries: Iterable[dict] = (), stop_reason: str | None = None) -> None:
        super().__init__(entries)
        self.stop_reason = stop_reason

    def text(self) -> str:
        """One line per epoch (the middle ones elided past ``TEXT_EPOCHS``), then the stop reason."""
        entries = list(self)
        shown = entries if len(entries) <= TEXT_EPOCHS else entries[:TEXT_EPOCHS // 2] + [None] + entries[-TEXT_EPOCHS // 2:]
        lines = [f"... {len(entries) - TEXT_EPOCHS} epochs ..." if entry is None else epoch_line(entry) for entry in shown]
        lines.append(f"Stopped after epoch {len(entries)}: {self.stop_reason}" if self.stop_reason else
                     f"{len(entries)} epoch(s); no stop has fired.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter shows the curves and the stop reason (see :mod:`mariana.report.notebook`)."""
        from mariana.report.notebook import history_html

        return history_html(self, self.stop_reason)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("History([...])" if cycle else self.text())
