"""Claiming a trial: "is there room in the study? then start a trial" as one step among the workers of one machine.

Two workers that find room at the same instant would both start a trial and
the study would hold one too many. On an SQLite file (one machine) the workers
take a lock file beside the database (``study.db.lock``) from the count until
their new trial is running; a worker that meets a full study after claiming
anyway (databases shared across machines have no such lock) fails that trial
untrained (:class:`~mariana.tuning.trial_run.Surplus`).

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> claim = ClaimLock.for_storage(f"sqlite:///{folder}/study.db")
    >>> claim.path == os.path.join(folder, "study.db.lock")
    True
    >>> claim.acquire(); claim.release(); claim.release()  # releasing twice is harmless
    >>> ClaimLock.for_storage("postgresql://db.example/optuna").path is None
    True
"""

from __future__ import annotations

import os
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the Surplus check still keeps the total
    fcntl = None


class ClaimLock:
    """An exclusive lock on ``path`` (None: no lock), held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, path: str | None) -> None:
        self.path = path if fcntl is not None else None
        self._handle: Any = None

    @classmethod
    def for_storage(cls, storage: Any) -> ClaimLock:
        """The lock beside an SQLite file named by ``storage`` (a URL); no lock for any other storage."""
        if not isinstance(storage, str) or not storage.startswith("sqlite"):
            return cls(None)
        from sqlalchemy.engine import make_url  # Optuna's own dependency

        database = make_url(storage).database
        return cls(None if not database or database == ":memory:" else os.path.abspath(database) + ".lock")

    def acquire(self) -> None:
        if self.path is None or self._handle is not None:
            return
        self._handle = open(self.path, "a")  # held from here to release(), which closes it
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
        finally:
            self._handle.close()
            self._handle = None
