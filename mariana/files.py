"""Files: paths given by users, and atomic writes (temp file, fsync, rename, fsync of the directory).

Every file Mariana writes (``.mar`` models, checkpoints, run files, HTML
reports, ONNX exports) goes through :func:`atomic_write`, so a crash or a
kill leaves either the old file or the new one, never a partial one. A kill
can leave the temp file, ``.<name>.<8 random characters>.tmp``, beside the
target: the writer holds an exclusive ``flock`` on it while it writes, so the
next write of the same target (or :func:`remove_stale_temps`) can tell a dead
writer's temp from a live one and removes only the former.

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
import errno
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so no temp is ever judged dead and all are left alone
    fcntl = None

# Read once: os.umask can only be read by setting it, which would race with writer threads.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


#: ``flock`` errors of file systems that do not support it.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}
#: What :func:`tempfile.mkstemp` puts between our prefix and suffix.
_TEMP_RANDOM = r"[a-z0-9_]{8}"


def as_path(path: Any, call: str) -> Path:
    """``path`` as a ``Path``; ``TypeError`` naming ``call`` when it is not a str or os.PathLike, ``ValueError`` when empty."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{call} expects a file path (str or os.PathLike), but received {type(path).__name__}.")
    text = os.fspath(path)
    if isinstance(text, bytes):
        raise TypeError(f"{call} expects a file path as str or os.PathLike of str, but received bytes {text!r}.")
    if not text:
        raise ValueError(f"{call} expects a file path, but received an empty string; give a file name such as 'model.mar'.")
    return Path(text)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """Call ``write(binary_file)`` on a temp file beside ``path``, then atomically rename it to ``path``.

    The temp file is fsynced before the rename and the directory after it; on
    any error the temp file is removed and ``path`` is left as it was. An
    ``OSError`` (a full disk, a refused permission) names ``path``. Temps that
    killed writes of the same target left behind are removed afterwards.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    _check_writable_target(target, directory)
    try:
        descriptor, temp_name = _locked_temp(directory, target.name)
    except OSError as error:
        raise _naming(error, target) from error
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            if hasattr(os, "fchmod"):  # mkstemp makes it 0600; a saved file gets the usual umask-based mode
                os.fchmod(handle.fileno(), 0o666 & ~_UMASK)
            os.fsync(handle.fileno())
            os.replace(temp_name, target)  # still locked: a cleaner never sees our temp as dead
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        if isinstance(error, OSError):
            raise _naming(error, target) from error
        raise
    try:
        fsync_directory(directory)
    except OSError as error:
        raise _naming(error, target, "the new file is in place, but a crash now could still lose it") from error
    with contextlib.suppress(OSError):
        remove_stale_temps(directory, target.name)


def _check_writable_target(target: Path, directory: Path) -> None:
    """``ValueError`` saying what is wrong when ``target`` cannot be a file: a folder, a missing folder, a file as a folder."""
    if target.is_dir():
        raise ValueError(f"Cannot write {str(target)!r}: it is a directory; give a file name inside it, e.g. {str(target / 'model.mar')!r}.")
    if directory.is_dir():
        return
    ancestor = directory
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise ValueError(f"Cannot write {str(target)!r}: {str(ancestor)!r} is a file, not a directory.")
    raise ValueError(f"Cannot write {str(target)!r}: its directory {str(directory)!r} does not exist; create it first.")


def _naming(error: OSError, target: Path, outcome: str = "nothing was written, the file keeps its previous content") -> OSError:
    """``error`` (same class and errno) with ``target`` as its file name, and what became of it."""
    if error.errno is None:
        return error
    return type(error)(error.errno, f"{error.strerror or os.strerror(error.errno)}; {outcome}", str(target))


def _locked_temp(directory: Path, name: str) -> tuple[int, str]:
    """A new temp file for ``name`` in ``directory``, flock'ed, and still at its path once locked.

    A cleaner that locked and unlinked it between its creation and our lock
    would leave us writing an orphan inode: check, and start over if so. On a
    file system without ``flock`` the temp stays unlocked, and cleaners, which
    cannot lock it either, leave it alone.
    """
    while True:
        descriptor, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        if fcntl is None:
            return descriptor, temp_name
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            except OSError as error:
                if isinstance(error, FileNotFoundError) or error.errno not in _NO_LOCKS:
                    raise
                return descriptor, temp_name
            if os.stat(temp_name).st_ino == os.fstat(descriptor).st_ino:
                return descriptor, temp_name
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(descriptor)
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        os.close(descriptor)


def temp_pattern(name: str | None = None) -> re.Pattern:
    """The names :func:`atomic_write` gives temps: of target ``name``, or of any target (group 1 is the name)."""
    target = re.escape(name) if name is not None else r"(.+)"
    return re.compile(rf"\.{target}\.{_TEMP_RANDOM}\.tmp\Z")


def remove_stale_temps(directory: str | os.PathLike, name: str | None = None,
                       keep: Callable[[str], bool] | None = None) -> list[Path]:
    """Remove the temps that killed :func:`atomic_write` calls left in ``directory``; returns their paths.

    Only files named exactly as :func:`atomic_write` names temps (of target
    ``name`` if given; else of any target for which ``keep`` is not true) and
    that no live writer holds locked are removed: a live write keeps its
    temp, and a user's file of another name is never touched. On systems
    without ``flock`` nothing is removed.

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> open(os.path.join(folder, ".model.mar.abcd1234.tmp"), "wb").close()  # a killed save's temp
        >>> open(os.path.join(folder, ".model.mar.notes.tmp"), "wb").close()     # not our naming
        >>> [p.name for p in remove_stale_temps(folder, "model.mar")]
        ['.model.mar.abcd1234.tmp']
        >>> sorted(os.listdir(folder))
        ['.model.mar.notes.tmp']
    """
    if fcntl is None:
        return []
    pattern = temp_pattern(name)
    removed = []
    with os.scandir(directory) as entries:
        candidates = [entry.path for entry in entries if pattern.match(entry.name)]
    for path in candidates:
        match = pattern.match(os.path.basename(path))
        if name is None and keep is not None and keep(match.group(1)):
            continue
        if _remove_if_unlocked(path):
            removed.append(Path(path))
    return removed


def _remove_if_unlocked(path: str) -> bool:
    """Unlink ``path`` if it is a regular file that we can flock at once (its writer is dead) and it is still the file we locked."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # never open a device, FIFO or symlink that has our naming
            return False
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live writer holds it
        try:
            if os.lstat(path).st_ino != info.st_ino:
                return False
        except FileNotFoundError:
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in 1 MiB blocks (any size, little memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_path_of(uri: str | None) -> str | None:
    """The local path a destination URI writes to (``file:``, ``sqlite:``, or a bare path), or None for a server.

    Example:
        >>> local_path_of("sqlite:///runs/mlflow.db"), local_path_of("sqlite:////tmp/a.db"), local_path_of("mlruns")
        ('runs/mlflow.db', '/tmp/a.db', 'mlruns')
        >>> local_path_of("file:///tmp/mlruns"), local_path_of("http://127.0.0.1:5000"), local_path_of(None)
        ('/tmp/mlruns', None, None)
    """
    if uri is None:
        return None
    scheme, _, rest = str(uri).partition(":")
    if not rest or len(scheme) == 1 or "/" in scheme or "\\" in scheme:  # a bare path (or a Windows drive letter)
        return str(uri)
    if scheme == "sqlite":
        return rest[3:] if rest.startswith("///") else None  # sqlite:///relative or sqlite:////absolute; sqlite:// is in memory
    if scheme == "file":
        return rest[2:] if rest.startswith("//") else rest
    return None
