"""The generation log: how a network was built, trained, saved and annotated.

Every network keeps ``net.log``, a list of ``{"time", "event", ...}`` dicts
(events: construct, connect, training, save, load, export, note). This
module presents it.

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(2, name="inp") > ML.Hidden(3, name="hid")
    >>> net.note("baseline")
    >>> [line.split("  ", 1)[1] for line in format_log(net.log).splitlines()][-2:]
    ['connect    inp > hid (shapes hid=[3])', 'note       baseline']
"""

from __future__ import annotations

import datetime
import unicodedata
from typing import Any


def describe_event(entry: dict) -> str:
    """One readable sentence for a log entry."""
    details = {key: value for key, value in entry.items() if key not in ("time", "event")}
    event = entry.get("event")
    if event == "construct":
        return f"{details.get('type', 'layer')} {details.get('layer', '?')!r} created"
    if event == "connect":
        sources = details.get("sources") or [details.get("source", "?")]
        text = f"{', '.join(map(str, sources))} > {details.get('target', '?')}"
        shapes = details.get("shapes")
        if shapes:
            text += f" (shapes {' '.join(f'{k}={v}' for k, v in shapes.items())})"
        return text
    if event == "note":
        return str(details.get("text", ""))
    if event == "save":
        kept = "with" if details.get("optimizer", True) else "without"
        steps = details.get("steps")
        return f"saved to {details.get('path')} {kept} optimizer state" + (f"; steps so far {readable(steps)}" if steps else "")
    if event == "load":
        return f"loaded from {details.get('path')}"
    if event == "training" and details.get("phase") in ("start", "end", "resume"):
        return _training(details)
    return ", ".join(f"{key}={_grouped(value)}" for key, value in details.items())


def _training(details: dict) -> str:
    phase = details.pop("phase")
    if phase == "end":
        metrics = details.pop("metrics", None)
        text = f"training ended after {readable(details.pop('epochs', '?'))} epoch(s)"
        reason = details.pop("reason", None)
        if reason:
            text += f" ({reason})"
        if isinstance(metrics, dict):
            groups = [f"{stream} {output} " + " ".join(f"{metric} {readable(value)}" for metric, value in values.items())
                      for stream, outputs in metrics.items() if isinstance(outputs, dict)
                      for output, values in outputs.items() if isinstance(values, dict)]
            text += ": " + "; ".join(groups) if groups else ""
    elif phase == "resume":
        text = f"training resumed at epoch {readable(details.pop('epoch', '?'))}, step {readable(details.pop('step', '?'))}"
    else:
        text = "training started"
    rest = [f"{key} {_grouped(value)}" for key, value in details.items() if value not in (None, {}, [])]
    return text + (": " if phase != "end" and rest else "; " if rest else "") + ", ".join(rest)


def _grouped(value: Any) -> str:
    text = readable(value)
    nested = (isinstance(value, dict) and set(value) != {"class", "config"}) or (isinstance(value, (list, tuple)) and len(value) > 1)
    return f"({text})" if nested else text


def readable(value: Any) -> str:
    """A log value as short text, whole: ``{"class": "Adam", "config": {...}}`` as ``Adam(lr=0.001)``,
    dicts as ``key value`` pairs, floats to 4 significant digits, lists comma-separated."""
    if isinstance(value, dict):
        if set(value) == {"class", "config"} and isinstance(value["config"], dict):
            return f"{value['class']}({', '.join(f'{k}={readable(v)}' for k, v in value['config'].items())})"
        return ", ".join(f"{key}={_grouped(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(item) for item in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def timestamp(entry: dict) -> str:
    """The entry's time as ``YYYY-MM-DD HH:MM:SS`` UTC (``?`` when missing or malformed)."""
    try:
        return datetime.datetime.fromtimestamp(float(entry["time"]), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return "?"


def log_rows(log: list[dict]) -> list[dict[str, str]]:
    """``[{"time", "event", "text"}]`` for display; per-epoch entries are left to the training curves."""
    return [{"time": timestamp(entry), "event": str(entry.get("event", "?")), "text": describe_event(entry)}
            for entry in log if entry.get("event") != "epoch"]


def history_from_log(log: list[dict]) -> list[dict]:
    """The per-epoch history the Trainer recorded for the latest training run in ``log`` (empty if none)."""
    starts = [i for i, entry in enumerate(log) if entry.get("event") == "training" and entry.get("phase") == "start"]
    recent = log[starts[-1]:] if starts else log
    return [entry["history"] for entry in recent if entry.get("event") == "epoch" and isinstance(entry.get("history"), dict)]


def printable(text: str) -> str:
    """``text`` with control and format characters (escape sequences, bidi overrides) shown as ``\\xNN``/``\\uNNNN``.

    Newlines and tabs are kept. For text from a file that goes to a terminal.

    Example:
        >>> printable("note\\x1b]0;title\\x07 ok")
        'note\\\\x1b]0;title\\\\x07 ok'
    """
    return "".join(char if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf") else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def format_log(log: list[dict]) -> str:
    """The log as text for a terminal, one line per entry: ``time  event  description``.

    A description of several lines (a note) continues indented under its
    first line, so it cannot pass for entries of its own; control characters
    are escaped (see :func:`printable`), so a file's notes cannot drive the terminal.
    """
    indent = "\n" + " " * 32  # the width of "YYYY-MM-DD HH:MM:SS  event      "
    return "\n".join(printable(f"{row['time']}  {row['event']:<10} {row['text']}").replace("\n", indent) for row in log_rows(log))
