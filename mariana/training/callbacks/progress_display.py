"""How the progress bar shows a run: one plain line per epoch, a live bar in a terminal, or one in Jupyter.

:class:`mariana.training.recorders.ProgressBar` picks a display; the
displays only format and draw, so they know nothing of the Trainer.

Example:
    >>> epoch_line({"epoch": 2, "time": 1.5, "train": {"out": {"loss": 0.25, "accuracy": 0.9}}}, epochs=10, seconds=1.25)
    'epoch 2/10 - 1.2 s - train: loss 0.2500 accuracy 0.9000'
"""

from __future__ import annotations

import io
from typing import Any

STREAMS = ("train", "valid", "test")


def metric_groups(entry: dict, outputs: list[str] | None = None) -> list[str]:
    """``["train: loss 0.2500 accuracy 0.9000", ...]``: one group per stream and output of a history entry.

    With one output the group is labelled by the stream only; with several, by
    stream and output (``"valid out2: loss ..."``).
    """
    streams = [(stream, entry[stream]) for stream in STREAMS if stream in entry]
    names = outputs if outputs is not None else list(dict.fromkeys(o for _, metrics in streams for o in metrics))
    groups = []
    for stream, metrics in streams:
        for output, values in metrics.items():
            label = stream if len(names) == 1 else f"{stream} {output}"
            groups.append(f"{label}: " + " ".join(f"{metric} {value:.4f}" for metric, value in values.items()))
    return groups


def epoch_line(entry: dict, epochs: int | None = None, seconds: float | None = None, outputs: list[str] | None = None) -> str:
    """One plain line for an epoch (logs): ``epoch 2/10 - 0.7 s - train: loss ... - valid: loss ...``."""
    parts = [f"epoch {entry['epoch']}" + (f"/{epochs}" if epochs else "")]
    if seconds is not None:
        parts.append(_duration(seconds))
    return " - ".join(parts + metric_groups(entry, outputs))


def _duration(seconds: float) -> str:
    """``45 ms``, ``2.5 s``, ``3 min 05 s``."""
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    rounded = round(seconds)
    return f"{rounded // 60} min {rounded % 60:02d} s"


def wrap_groups(groups: list[str], width: int, indent: str = "  ") -> list[str]:
    """Lines of at most ``width`` characters (when a group fits), never breaking inside a group."""
    lines: list[str] = []
    for group in groups:
        if lines and len(lines[-1]) + 3 + len(group) <= width:
            lines[-1] += " | " + group
        else:
            lines.append(indent + group)
    return lines


class Display:
    """How a ProgressBar shows a run: live (terminal, notebook) or one line per epoch."""

    live = False

    def __init__(self, console: Any) -> None:
        self.console = console

    def begin(self, epoch: int, steps: int, done: int) -> None:
        pass

    def advance(self, step: int, groups: list[str]) -> None:
        pass

    def end(self, entry: dict, epochs: int | None, seconds: float | None, outputs: list[str]) -> None:
        raise NotImplementedError

    def say(self, text: str) -> None:
        self.write(text)

    def write(self, text: str) -> None:
        file = self.console.file
        file.write(text + "\n")
        file.flush()  # a log file should show each epoch as it ends, not when a buffer fills

    def close(self) -> None:
        pass


class PlainLines(Display):
    """One plain line per epoch: no bar, no escape codes, never wrapped."""

    def end(self, entry: dict, epochs: int | None, seconds: float | None, outputs: list[str]) -> None:
        self.write(epoch_line(entry, epochs, seconds, outputs))


class TerminalBar(Display):
    """A rich bar redrawn in place; each finished epoch stays above it with its metrics on their own lines."""

    live = True

    def __init__(self, console: Any, epochs: int | None) -> None:
        super().__init__(console)
        self.epochs = epochs
        self.running: list[str] = []
        self.task: Any = None
        self.progress = _progress(console, self)
        self.progress.start()

    def label(self, epoch: int) -> str:
        return f"epoch {epoch}" + (f"/{self.epochs}" if self.epochs else "")

    def begin(self, epoch: int, steps: int, done: int) -> None:
        self.running = []
        self.task = self.progress.add_task(self.label(epoch), total=steps, completed=done)

    def advance(self, step: int, groups: list[str]) -> None:
        self.running = groups
        self.progress.update(self.task, completed=step)
        self.progress.refresh()

    def end(self, entry: dict, epochs: int | None, seconds: float | None, outputs: list[str]) -> None:
        if self.task is None:  # a run resumed at the end of an epoch: no bar for it
            self.progress.console.print(self.label(entry["epoch"]), markup=False, highlight=False)
        else:
            task = next(t for t in self.progress.tasks if t.id == self.task)
            self.progress.console.print(self.progress.make_tasks_table([task]))
            self.progress.remove_task(self.task)
        for line in wrap_groups(metric_groups(entry, outputs), self.console.width):
            self.progress.console.print(line, markup=False, highlight=False, overflow="fold")
        self.task, self.running = None, []
        self.progress.refresh()

    def say(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def extra(self) -> list[str]:
        return wrap_groups(self.running, self.console.width) if self.task is not None else []

    def close(self) -> None:
        self.progress.stop()


class NotebookBar(TerminalBar):
    """The same bar in Jupyter, drawn as text into a display updated in place (IPython only, no ipywidgets)."""

    def __init__(self, console: Any, epochs: int | None) -> None:
        from rich.console import Console

        self.canvas = io.StringIO()
        # Renders into a string; each draw replaces the epoch's output cell content.
        text_console = Console(file=self.canvas, width=min(console.width, 100), force_terminal=False, force_jupyter=False,
                               color_system=None, highlight=False)
        Display.__init__(self, text_console)
        self.epochs = epochs
        self.running, self.task, self.handle = [], None, None
        self.progress = _progress(text_console, self)

    def _draw(self) -> None:
        from IPython.display import display

        self.canvas.seek(0)
        self.canvas.truncate()
        self.console.print(self.progress.get_renderable())
        content = {"text/plain": self.canvas.getvalue().rstrip("\n")}
        if self.handle is None:
            self.handle = display(content, raw=True, display_id=True)
        else:
            self.handle.update(content, raw=True)

    def begin(self, epoch: int, steps: int, done: int) -> None:
        self.running, self.handle = [], None
        self.task = self.progress.add_task(self.label(epoch), total=steps, completed=done)
        self._draw()

    def advance(self, step: int, groups: list[str]) -> None:
        self.running = groups
        self.progress.update(self.task, completed=step)
        self._draw()

    def end(self, entry: dict, epochs: int | None, seconds: float | None, outputs: list[str]) -> None:
        if self.task is None:  # a run resumed at the end of an epoch: no bar for it
            self.say("\n".join([self.label(entry["epoch"]), *wrap_groups(metric_groups(entry, outputs), self.console.width)]))
            return
        self.running = metric_groups(entry, outputs)  # the epoch's cell keeps its final bar and metrics
        self._draw()
        self.progress.remove_task(self.task)
        self.task = None

    def say(self, text: str) -> None:
        from IPython.display import display

        display({"text/plain": text}, raw=True)

    def extra(self) -> list[str]:
        return wrap_groups(self.running, self.console.width) if self.task is not None else []

    def close(self) -> None:
        pass


def _progress(console: Any, owner: TerminalBar) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.text import Text

    class EpochProgress(Progress):
        def get_renderables(self):  # the bar, then the running metrics on lines of their own
            yield self.make_tasks_table(self.tasks)
            for line in owner.extra():
                yield Text(line, no_wrap=False, overflow="fold")

    return EpochProgress(
        TextColumn("[bold]{task.description}"), BarColumn(bar_width=None), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), console=console, auto_refresh=False, transient=False, expand=True,
    )
