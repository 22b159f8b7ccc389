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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mariana.registry import Configurable
from mariana.training.callbacks.progress_display import STREAMS, Display, NotebookBar, PlainLines, TerminalBar, metric_groups

if TYPE_CHECKING:
    from mariana.training.trainer import Trainer



class Recorder(Configurable):
    """Base class; override the hooks you need (``on_step`` only if you must: it runs every step).

    Recorders run on every process of a distributed run (as Keras' and Lightning's callbacks do), except
    those with ``writes_files = True`` (files, logs, the progress display), which run on rank 0 only.
    """

    #: Whether this recorder writes files or shows output: then only rank 0 runs it.
    writes_files = False

    def check(self) -> None:
        """Raise now if this recorder cannot work (a missing package): the Trainer calls it when it is built,
        before anything is written. Default: nothing to check."""

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

    writes_files = True
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

    writes_files = True
    hyperparameters = ("log_dir",)

    def __init__(self, log_dir: str = "tensorboard") -> None:
        self.log_dir = str(log_dir)
        self._writer: Any = None

    def check(self) -> None:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError as error:
            raise ImportError(f"recorders.TensorBoard needs the tensorboard package (pip install tensorboard): {error}") from None

    def on_start(self, trainer: Trainer, resumed: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter  # check() found it when the Trainer was built

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

    writes_files = True
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
    """What a run is doing, on stdout, as Keras users expect it.

    ``verbose=1`` (default): a live bar (epoch, steps, elapsed time, ETA and the
    running train metrics) in a terminal or a Jupyter notebook, and one plain
    line per epoch when stdout is neither (a log file, nohup, CI).
    ``verbose=2``: one plain line per epoch everywhere. ``verbose=0``: silent.
    At the end of each epoch its metrics get lines of their own, wrapped to the
    console's width; a run that prints ends with the reason it stopped. The bar
    redraws at most ``refresh_per_second`` times a second, from the training
    loop itself (no background thread). ``console``: a ``rich.console.Console``
    to draw on (default: stdout).

    Example:
        >>> ProgressBar(verbose=2).verbose
        2
    """

    writes_files = True
    hyperparameters = ("refresh_per_second", "verbose")

    def __init__(self, refresh_per_second: float = 8.0, console: Any = None, verbose: int = 1) -> None:
        if isinstance(verbose, bool) or verbose not in (0, 1, 2):
            raise ValueError(f"ProgressBar: verbose must be 0 (silent), 1 (a live bar; one line per epoch when stdout is not a "
                             f"terminal) or 2 (one line per epoch), but received {verbose!r}.")
        if isinstance(refresh_per_second, bool) or not isinstance(refresh_per_second, (int, float)) or not refresh_per_second > 0:
            raise ValueError(f"ProgressBar: refresh_per_second must be a number > 0, but received {refresh_per_second!r}.")
        self.refresh_per_second = float(refresh_per_second)
        self.verbose = int(verbose)
        self._console = console
        self._display: Display | None = None
        self._interval = 1.0 / self.refresh_per_second
        self._next_draw = 0.0
        self._epoch_started = 0.0

    def on_start(self, trainer: Trainer, resumed: bool) -> None:
        self._display, self._epoch_started = None, 0.0
        if self.verbose == 0:
            return
        from rich.console import Console

        console = self._console if self._console is not None else Console()
        self._epochs = _planned_epochs(trainer)
        self._outputs = list(trainer.outputs)
        if self.verbose == 1 and console.is_jupyter:
            self._display = NotebookBar(console, self._epochs)
        elif self.verbose == 1 and console.is_terminal and not console.is_dumb_terminal:
            self._display = TerminalBar(console, self._epochs)
        else:
            self._display = PlainLines(console)

    def on_epoch_start(self, trainer: Trainer, epoch: int, steps: int) -> None:
        if self._display is None:
            return
        self._epoch_started = time.monotonic()
        self._display.begin(epoch, steps, trainer.progress.step)
        self._next_draw = 0.0

    def on_step(self, trainer: Trainer, step: int, steps: int) -> None:
        if self._display is None or not self._display.live:
            return
        now = time.monotonic()
        if now < self._next_draw and step < steps:
            return
        self._next_draw = now + self._interval
        self._display.advance(step, metric_groups({"train": trainer.running_metrics()}, self._outputs))

    def on_epoch_end(self, trainer: Trainer, entry: dict) -> None:
        if self._display is None:
            return
        seconds = time.monotonic() - self._epoch_started if self._epoch_started else None  # None: resumed at the epoch's end
        self._display.end(entry, self._epochs, seconds, self._outputs)
        self._epoch_started = 0.0

    def on_end(self, trainer: Trainer, reason: str) -> None:
        if self._display is not None:
            self._display.say(f"Stopped after epoch {len(trainer.history)}: {reason}")

    def close(self) -> None:
        if self._display is not None:
            self._display.close()
            self._display = None


def _planned_epochs(trainer: Trainer) -> int | None:
    """The epoch count an EpochWall sets, for "epoch 3/30" (None when no EpochWall bounds the run)."""
    from mariana.training.stops import EpochWall

    walls = [stop.epochs for stop in trainer.stops if isinstance(stop, EpochWall)]
    return min(walls) if walls else None


from mariana.training.callbacks.mlflow_tracking import MLflowTracking  # noqa: E402


class MLflow(MLflowTracking, Recorder):
    """``MLflow(experiment="mariana", tracking_uri=None, run_name=None)``: params, per-epoch metrics and the final model and report in
    an MLflow run, continued by a resume (needs ``pip install mariana[mlflow]``; see :mod:`mariana.training.callbacks.mlflow_tracking`)."""

    writes_files = True  # one MLflow run, written by rank 0
