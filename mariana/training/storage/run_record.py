"""Tying run.json to the checkpoints: a canonical digest of the document, and the fields an edit changed.

Every checkpoint records the digest of the run.json it was written under; a
resume refuses a run.json whose digest differs, naming each changed field
(``trainer.batch_size: was 16, now 32``), because a run directory may come
from anyone and an edited document would silently produce another model.

Example:
    >>> run_differences({"trainer": {"batch_size": 16}}, {"trainer": {"batch_size": 32}})
    ['trainer.batch_size']
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any


def canonical_json(document: Any) -> bytes:
    """``document`` as canonical JSON bytes: sorted keys, no spaces, UTF-8 (equal documents give equal bytes)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def run_digest(document: Any) -> str:
    """The sha256 of ``document``'s canonical JSON: record it in each checkpoint to tie ``run.json`` to it.

    Key order and whitespace do not change it; any value does.

    Example:
        >>> run_digest({"trainer": {"batch_size": 16}, "format": 1}) == run_digest({"format": 1, "trainer": {"batch_size": 16}})
        True
        >>> run_digest({"trainer": {"batch_size": 16}}) == run_digest({"trainer": {"batch_size": 32}})
        False
    """
    return hashlib.sha256(canonical_json(document)).hexdigest()


def run_differences(recorded: Any, current: Any) -> list[str]:
    """The dotted paths where ``current`` differs from ``recorded`` (changed, added or removed), in document order.

    Lists are compared item by item (``network.layers[1]``); a key that is not
    an identifier is written in brackets (``data["x.npy"]``); ``1``, ``1.0`` and
    ``True`` differ, as they do in :func:`run_digest`. Empty exactly when the digests match.

    Example:
        >>> recorded = {"trainer": {"batch_size": 16, "lr": 0.05}, "network": {"layers": [{"a": "ReLU"}, {"a": "ReLU"}]}}
        >>> current = {"trainer": {"batch_size": 32, "lr": 0.05}, "network": {"layers": [{"a": "ReLU"}, {"a": "Tanh"}]}}
        >>> run_differences(recorded, current)
        ['trainer.batch_size', 'network.layers[1].a']
    """
    differences: list[str] = []
    _differences(recorded, current, "", differences)
    return differences


def _differences(recorded: Any, current: Any, path: str, found: list[str]) -> None:
    if isinstance(recorded, dict) and isinstance(current, dict):
        for key in list(recorded) + [key for key in current if key not in recorded]:
            child = f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key)}]"
            if key not in recorded or key not in current:
                found.append(child.lstrip("."))
            else:
                _differences(recorded[key], current[key], child, found)
    elif isinstance(recorded, list) and isinstance(current, list):
        for index in range(max(len(recorded), len(current))):
            child = f"{path}[{index}]"
            if index >= len(recorded) or index >= len(current):
                found.append(child.lstrip("."))
            else:
                _differences(recorded[index], current[index], child, found)
    elif canonical_json(recorded) != canonical_json(current):
        found.append(path.lstrip(".") or "(the whole document)")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_run_document(recorded: Any, current: Any, where: str) -> None:
    """``ValueError`` naming the fields of ``current`` (e.g. run.json now) that differ from ``recorded`` (what a checkpoint recorded).

    Example:
        >>> check_run_document({"trainer": {"batch_size": 16}}, {"trainer": {"batch_size": 32}}, "runs/x/run.json")
        Traceback (most recent call last):
        ...
        ValueError: 'runs/x/run.json' was changed after the run started: trainer.batch_size (was 16, now 32). ...
    """
    differences = run_differences(recorded, current)
    if not differences:
        return
    shown = ", ".join(f"{path} ({_describe_change(recorded, current, path)})" for path in differences[:10])
    more = f" and {len(differences) - 10} more" if len(differences) > 10 else ""
    raise ValueError(f"{where!r} was changed after the run started: {shown}{more}. Its checkpoints were made with the "
                     f"recorded values; restore them, or start a new run with the new settings.")


def run_record(document: Any) -> dict:
    """What a checkpoint records of its run document: ``{"sha256": run_digest(document), "document": document}``.

    Put it in each checkpoint's state; at resume, :func:`check_run_record` compares
    it with ``run.json`` as it is then.
    """
    return {"sha256": run_digest(document), "document": document}


def check_run_record(record: Any, current: Any, where: str) -> None:
    """``ValueError`` unless ``current`` (``run.json`` now, read from ``where``) is the document ``record`` holds.

    The message names each changed field with its recorded and current value
    (:func:`check_run_document`). A record that is not one :func:`run_record`
    made, or whose digest does not match its own document, is refused too.

    Example:
        >>> record = run_record({"trainer": {"batch_size": 16}})
        >>> check_run_record(record, {"trainer": {"batch_size": 16}}, "run.json")
        >>> check_run_record(record, {"trainer": {"batch_size": 32}}, "run.json")
        Traceback (most recent call last):
        ...
        ValueError: 'run.json' was changed after the run started: trainer.batch_size (was 16, now 32). ...
    """
    if not isinstance(record, dict) or set(record) != {"sha256", "document"} or run_digest(record["document"]) != record["sha256"]:
        raise ValueError(f"The checkpoint's record of {where!r} is malformed or does not match its own sha256; the checkpoint "
                         f"was edited. Restore the run directory from a copy, or start the run again in a new run_dir.")
    if run_digest(current) != record["sha256"]:
        check_run_document(record["document"], current, where)


def _describe_change(recorded: Any, current: Any, path: str) -> str:
    before, after = _lookup(recorded, path), _lookup(current, path)
    if before is _ABSENT:
        return f"added, now {short_json(after)}"
    if after is _ABSENT:
        return f"removed, was {short_json(before)}"
    return f"was {short_json(before)}, now {short_json(after)}"


_ABSENT = object()
_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]")


def _lookup(document: Any, path: str) -> Any:
    if path == "(the whole document)":
        return document
    value, position = document, 0
    while position < len(path):
        step = _STEP.match(path, position)
        position = step.end()
        name, index, quoted = step.groups()
        key: Any = name if name is not None else int(index) if index is not None else json.loads(quoted)
        if isinstance(key, int) and isinstance(value, list) and key < len(value):
            value = value[key]
        elif isinstance(key, str) and isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return _ABSENT
    return value


def short_json(value: Any) -> str:
    """``value`` as JSON, cut to 60 characters for a message."""
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
