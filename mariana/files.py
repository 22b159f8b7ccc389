"""Files: paths given by users, and atomic writes (temp file, fsync, rename, fsync of the directory).

Every file Mariana writes (``.mar`` models, checkpoints, run files, HTML
reports, ONNX exports) goes through :func:`atomic_write`, so a crash or a
kill leaves either the old file or the new one, never a partial one.

Example:
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> target = os.path.join(tempfile.mkdtemp(), "hello.txt")
    >>> atomic_write(target, lambda f: f.write(b"hi") and None)
    >>> Path(target).read_bytes()
    b'hi'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

# Read once: os.umask can only be read by setting it, which would race with writer threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def as_path(path: Any, call: str) -> Path:
    """``path`` as a ``Path``; ``TypeError`` naming ``call`` when it is not a str or os.PathLike."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{call} expects a file path (str or os.PathLike), but received {type(path).__name__}.")
    return Path(path)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then atomically rename it to ``path``.

    The temp file is fsynced before the rename and the directory after it; on
    any error the temp file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise ValueError(f"Cannot write {str(target)!r}: its directory {str(directory)!r} does not exist.")
    descriptor, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            if hasattr(os, "fchmod"):  # mkstemp makes it 0600; a saved file gets the usual umask-based mode
                os.fchmod(handle.fileno(), 0o666 & ~_UMASK)
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
