"""The run directory's small files: atomic writes (bytes, JSON, chunks, several files at once) and capped JSON reads.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "run.json")
    >>> write_json(path, {"format": 1})
    >>> read_json(path)
    {'format': 1}
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from pathlib import Path
from typing import Any

from mariana.archive import no_duplicate_keys
from mariana.files import atomic_write

#: Largest JSON file of a run directory read (bytes): run.json and the pointers are far smaller.
MAX_JSON_BYTES = 64 * 2**20


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`mariana.files.atomic_write`: temp file, fsync, rename, fsync)."""
    atomic_write(path, lambda file: file.write(data))


def write_json(path: str | os.PathLike, value: Any) -> None:
    write_bytes(path, json.dumps(value, indent=1, sort_keys=True).encode())


def write_parts(path: str | os.PathLike, parts: bytes | list) -> None:
    """:func:`write_bytes` of ``parts``: bytes, or a list of bytes-like chunks written one after the other (no joined copy)."""
    if isinstance(parts, bytes):
        write_bytes(path, parts)
    else:
        atomic_write(path, lambda file: [file.write(part) for part in parts])


def write_together(files: dict[Path, bytes | list]) -> None:
    """Write each of ``files`` atomically (:func:`write_parts`), all at once: their fsyncs overlap.

    Each fsync waits for the disk (4 to 8 ms each on a virtual disk); files written
    together commit together, so a checkpoint and its sidecar, then its pointers,
    cost two waits instead of four. Raises the first write's error, after all finished.
    """
    items = list(files.items())
    if len(items) == 1:
        write_parts(*items[0])
        return
    with concurrent.futures.ThreadPoolExecutor(len(items) - 1, thread_name_prefix="mariana-fsync") as pool:
        others = [pool.submit(write_parts, path, data) for path, data in items[1:]]
        write_parts(*items[0])
        for job in others:
            job.result()


_RESTORE = "Restore it from a copy, or start the run again in a new run_dir."


def read_json(path: str | os.PathLike, advice: str = _RESTORE) -> Any:
    """The JSON value in ``path``; ``ValueError`` naming the file, then ``advice``, when it is not JSON (or over :data:`MAX_JSON_BYTES`).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "run.json")
        >>> write_bytes(path, b'{"trainer": ')
        >>> read_json(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: '.../run.json' is not valid JSON (Expecting value: line 1 column 13 (char 12)); ...
    """
    path = Path(path)
    with open(path, "rb") as file:
        data = file.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{str(path)!r} is over {MAX_JSON_BYTES} bytes, far more than a run file holds: Mariana did not write it. "
                         f"{advice}".rstrip())
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}); it was damaged or edited. {advice}".rstrip()) from None
