"""Recorders: what a run reports while it trains (progress bar, CSV, JSONL, TensorBoard, HTML).

A recorder receives ``on_start``, ``on_step`` (after every training step;
keep it cheap), ``on_epoch_end`` with the epoch's history entry, and
``on_end`` with the reason the run stopped. Relative paths are resolved
against the trainer's ``run_dir`` when it has one. File recorders rewrite
their file from the history on resume, so logs always match the checkpoint.
Recorders never draw random numbers, so they cannot change a run.

Example:
    >>> from mariana.training import recorders
    >>> trainer_recorders = [recorders.ProgressBar(), recorders.CSV("log.csv"), recorders.JSONL("log.jsonl")]
    >>> recorders.flatten_entry({"epoch": 1, "time": 0.5, "train": {"out": {"loss": 0.25, "accuracy": 0.9}}})
    {'epoch': 1, 'time': 0.5, 'train_out_loss': 0.25, 'train_out_accuracy': 0.9}
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mariana.registry import Configurable

if TYPE_CHECKING:
    from mariana.training.trainer import Trainer

STREAMS = ("train", "valid", "test")


class Recorder(Configurable):
    """Base class; override the hooks you need (``on_step`` only if you must: it runs every step)."""

    def on_start(self, trainer: Trainer, resumed: bool) -> None:
        pass

    def on_epoch_start(self, trainer: Trainer, epoch: int, steps: int) -> None:
        pass

    def on_step(self, trainer: Trainer, step: int, steps: int) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, entry: dict) -> None:
        pass

    def on_end(self, trainer: Trainer, reason: str) -> None:
        pass

    def close(self) -> None:
        """Always called when the run leaves ``start`` (also on errors)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def flatten_entry(entry: dict) -> dict[str, float]:
    """``{"epoch", "time", "<stream>_<output>_<metric>": value}`` for one history entry."""
    row = {"epoch": entry["epoch"], "time": entry["time"]}
    for stream in STREAMS:
        for output, metrics in entry.get(stream, {}).items():
            for metric, value in metrics.items():
                row[f"{stream}_{output}_{metric}"] = value
    return row


def _resolve(path: str | os.PathLike, trainer: Trainer) -> Path:
    path = Path(path)
    if not path.is_absolute() and trainer.run_dir is not None:
        path = trainer.run_dir / path
    return path


class _FileRecorder(Recorder):
    """Writes a header and one row per epoch; on start (and resume) rewrites what the history holds."""

    hyperparameters = ("path",)

    def __init__(self, path: str) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{type(self).__name__}: path must be a str or path, but received {path!r}.")
        self.path = str(path)
        self._file: Any = None
        self._header: dict = {}

    def on_start(self, trainer: Trainer, resumed: bool) -> None:
        self._target = _resolve(self.path, trainer)
        self._target.parent.mkdir(parents=True, exist_ok=True)
        self.write_all(trainer.history, trainer.describe())

    def write_all(self, history: list[dict], header: dict) -> None:
        """(Re)write the file: the header, then one row per history entry; keep it open for more."""
        target = getattr(self, "_target", None) or Path(self.path)
        self._header = header
        self.close()
        self._file = open(target, "w", newline="", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._begin(history)
        for entry in history:
            self._row(entry)
        self._file.flush()

    def on_epoch_end(self, trainer: Trainer, entry: dict) -> None:
        self._row(entry)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _begin(self, history: list[dict]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _begin(history): write the file's header.")

    def _row(self, entry: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _row(entry): write one epoch.")


class CSV(_FileRecorder):
    """A CSV file: a header (``epoch,time,<stream>_<output>_<metric>...``), then one row per epoch."""

    def _begin(self, history: list[dict]) -> None:
        self._writer = csv.writer(self._file)
        self._columns = list(flatten_entry(history[0])) if history else None
        if self._columns:
            self._writer.writerow(self._columns)

    def _row(self, entry: dict) -> None:
        row = flatten_entry(entry)
        if self._columns is None:
            self._columns = list(row)
            self._writer.writerow(self._columns)
        self._writer.writerow([row.get(column, "") for column in self._columns])


class JSONL(_FileRecorder):
    """JSON lines: a header object ``{"header": {...run description...}}``, then one history entry per line."""

    def _begin(self, history: list[dict]) -> None:
        self._file.write(json.dumps({"header": self._header}) + "\n")

    def _row(self, entry: dict) -> None:
        self._file.write(json.dumps(entry) + "\n")


class TensorBoard(Recorder):
    """Scalars ``<stream>/<output>/<metric>`` per epoch through ``torch.utils.tensorboard`` (needs ``tensorboard``)."""

    hyperparameters = ("log_dir",)

    def __init__(self, log_dir: str = "tensorboard") -> None:
        self.log_dir = str(log_dir)
        self._writer: Any = None

    def on_start(self, trainer: Trainer, resumed: bool) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(f"recorders.TensorBoard needs the tensorboard package (pip install tensorboard): {error}") from None
        # purge_step drops events written after the checkpoint we resume from.
        self._writer = SummaryWriter(str(_resolve(self.log_dir, trainer)), purge_step=len(trainer.history) + 1 if resumed else None)

    def on_epoch_end(self, trainer: Trainer, entry: dict) -> None:
        for name, value in flatten_entry(entry).items():
            if name not in ("epoch", "time"):
                stream, rest = name.split("_", 1)
                output, metric = rest.rsplit("_", 1)
                self._writer.add_scalar(f"{stream}/{output}/{metric}", value, entry["epoch"])
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class HTMLReport(Recorder):
    """At the end of a run, ``net.to_html(path or run_dir/"report.html", history=trainer.history)``."""

    hyperparameters = ("path",)

    def __init__(self, path: str | None = None) -> None:
        self.path = None if path is None else str(path)

    def on_start(self, trainer: Trainer, resumed: bool) -> None:
        if self.path is None and trainer.run_dir is None:
            raise ValueError("recorders.HTMLReport: give it a path, or give the Trainer a run_dir to write report.html into.")

    def on_end(self, trainer: Trainer, reason: str) -> None:
        target = _resolve(self.path, trainer) if self.path is not None else trainer.run_dir / "report.html"
        trainer.net.to_html(str(target), history=trainer.history)


class ProgressBar(Recorder):
    """A rich progress bar with the running loss/accuracy and the ETA; silent when stdout is not a terminal.

    It redraws at most ``refresh_per_second`` times a second, from the
    training loop itself (no background thread).
    """

    hyperparameters = ("refresh_per_second",)

    def __init__(self, refresh_per_second: float = 8.0, console: Any = None) -> None:
        self.refresh_per_second = float(refresh_per_second)
        self._console = console
        self._progress: Any = None
        self._interval = 1.0 / self.refresh_per_second
        self._next_draw = 0.0

    def on_start(self, trainer: Trainer, resumed: bool) -> None:
        from rich.console import Console

        console = self._console if self._console is not None else Console(file=sys.stdout)
        if not console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"),
            console=console, auto_refresh=False, transient=False,
        )
        self._progress.start()
        self._task = None

    def on_epoch_start(self, trainer: Trainer, epoch: int, steps: int) -> None:
        if self._progress is None:
            return
        self._task = self._progress.add_task(f"epoch {epoch}", total=steps, completed=trainer.position_step, metrics="")
        self._next_draw = 0.0

    def on_step(self, trainer: Trainer, step: int, steps: int) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now < self._next_draw and step < steps:
            return
        self._next_draw = now + self._interval
        self._progress.update(self._task, completed=step, metrics=_metrics_text(trainer.running_metrics()))
        self._progress.refresh()

    def on_epoch_end(self, trainer: Trainer, entry: dict) -> None:
        if self._progress is None or self._task is None:
            return
        parts = [f"{stream} {_metrics_text(entry[stream])}" for stream in STREAMS if stream in entry]
        self._progress.update(self._task, metrics="  ".join(parts))
        self._progress.refresh()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _metrics_text(metrics: dict[str, dict[str, float]]) -> str:
    return " ".join(f"{output} " + " ".join(f"{k} {v:.4f}" for k, v in values.items()) for output, values in metrics.items())

