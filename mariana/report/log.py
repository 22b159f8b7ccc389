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
        return f"saved to {details.get('path')} {kept} optimizer state" + (f"; steps so far {steps}" if steps else "")
    if event == "load":
        return f"loaded from {details.get('path')}"
    return ", ".join(f"{key}={_short(value)}" for key, value in details.items())


def _short(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def format_log(log: list[dict]) -> str:
    """The log as text, one line per entry: ``time  event  description``.

    A description of several lines (a note) continues indented under its
    first line, so it cannot pass for entries of its own.
    """
    indent = "\n" + " " * 32  # the width of "YYYY-MM-DD HH:MM:SS  event      "
    return "\n".join(f"{row['time']}  {row['event']:<10} {row['text'].replace(chr(10), indent)}" for row in log_rows(log))
