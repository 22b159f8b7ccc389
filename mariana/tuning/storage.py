"""Where a study lives: Optuna's storages, with heartbeats so a killed worker's trial is retried.

A URL (``"sqlite:///runs/study.db"`` on one machine, ``"postgresql://..."`` or
``"mysql://..."`` across machines) becomes Optuna's ``RDBStorage`` with a
heartbeat: each running trial records one every ``heartbeat`` seconds, and a
trial silent for twice that is failed by the next worker that looks, which
queues a retry with the same hyperparameters (Optuna's
``RetryHeartbeatStaleTrialCallback``); the retry continues the killed trial's
run directory from its last checkpoint. ``None`` keeps the study in memory
(one process); an Optuna storage object is used as it is.

Example:
    >>> import optuna
    >>> open_storage(optuna, None, heartbeat=60) is None
    True
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def experimental_allowed(optuna: Any) -> Iterator[None]:
    """Optuna marks its heartbeat API experimental (a warning on each use); the search relies on it knowingly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def open_storage(optuna: Any, storage: Any, heartbeat: int | None) -> Any:
    """Optuna's storage for ``storage`` (None, a database URL or an Optuna storage), with ``heartbeat`` seconds for URLs."""
    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str):
        raise TypeError(f"search: storage must be None, a database URL (e.g. 'sqlite:///runs/study.db') or an Optuna storage, "
                        f"but received {type(storage).__name__}.")
    if heartbeat is not None and (not isinstance(heartbeat, int) or isinstance(heartbeat, bool) or heartbeat < 1):
        raise ValueError(f"search: heartbeat must be an int >= 1 (seconds) or None, but received {heartbeat!r}.")
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}  # several processes on one file wait for its lock
    with experimental_allowed(optuna):
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback() if heartbeat is not None else None
        return first_creation_shared(lambda: optuna.storages.RDBStorage(storage, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                                                       heartbeat_stale_trial_callback=retry))


def first_creation_shared(open_database: Callable[[], Any], attempts: int = 5) -> Any:
    """``open_database()``, tried again when another worker was creating the same new database's tables at that instant.

    Optuna creates the tables of a new database and stamps its schema version in a
    transaction of its own; the second of two workers starting together on a new
    SQLite file fails that stamp (an IntegrityError), and finds the tables made a moment later.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError  # Optuna's own dependency

    for attempt in range(attempts - 1):
        try:
            return open_database()
        except (IntegrityError, OperationalError):
            time.sleep(0.2 * (attempt + 1))
    return open_database()


def has_heartbeat(storage: Any) -> bool:
    """Whether a dead worker's trials are found out on ``storage`` (so a worker may wait for running trials to end)."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return interval is not None and interval() is not None


def fail_stale_trials(optuna: Any, study: Any, storage: Any) -> None:
    """Fail the trials of ``study`` (on ``storage``) whose worker stopped sending heartbeats (each queues its retry)."""
    if has_heartbeat(storage):
        with experimental_allowed(optuna):
            optuna.storages.fail_stale_trials(study)


def retried_from(optuna: Any, trials: list, number: int) -> int:
    """The number of the first trial in trial ``number``'s chain of retries (``number`` when it is no retry); ``trials``: the study's."""
    (frozen,) = [trial for trial in trials if trial.number == number]
    with experimental_allowed(optuna):
        history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(frozen)
    return int(history[0]) if history else number
