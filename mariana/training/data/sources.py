"""Row sources: where a mapper's rows come from, behind one protocol.

A :class:`RowSource` feeds one or more layers (its ``keys``) with aligned rows.
Everything that reads training data speaks only this protocol: the mapper,
the streams, the run directory and resume. Mariana's own sources are
in-memory arrays (:class:`mariana.training.data.array_rows.ArrayRows`),
memory-mapped files (:class:`mariana.training.data.file_data.FileRows`) and
map-style torch Datasets (:class:`mariana.training.data.dataset_rows.DatasetRows`).

What a source offers:

* ``keys`` and ``len(source)``; ``take(indices)``: those rows, one numpy array per key;
* ``layouts()``: each key's per-row dtype and shape (by default read from row 0);
* ``describe()``: JSON for run.json; ``fingerprint()``: a string that changes when the
  rows do (the content hash, or what stands in for it);
* ``stored``: ``"copy"`` (the run directory copies its rows; resume reads the copy) or
  ``"reference"`` (the run directory records ``describe()``; resume calls the class's
  :meth:`RowSource.reopen` on that record, which may ask for the data to be passed again);
* ``resident``: whether its rows are whole arrays in this process's memory (the Trainer
  then converts them once instead of batch by batch);
* ``workers``: a reading option, not part of the data's identity (see ``mariana.training.data.workers``).

A source of your own subclasses :class:`RowSource` and defines ``keys``, ``__len__`` and
``take``; ``DatasetMapper.from_source(source)`` trains on it.

Example:
    >>> import numpy as np
    >>> class Squares(RowSource):
    ...     keys = ("inp", "out")
    ...     def __len__(self):
    ...         return 5
    ...     def take(self, indices):
    ...         x = indices.astype(np.float32)[:, None]
    ...         return {"inp": x, "out": x ** 2}
    >>> squares = Squares()
    >>> squares.take(np.array([3, 1]))["out"].tolist(), squares.columns()["inp"].shape
    ([[9.0], [1.0]], (5, 1))
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

#: Rows read per call when a whole column is needed (class ids for ClassBalanced, the run directory's copy).
COLUMN_CHUNK = 4096


class RowSource:
    """Aligned rows for the layers named in ``keys``; subclasses define ``keys``, ``__len__`` and ``take``."""

    keys: tuple[str, ...] = ()
    kind: ClassVar[str] = ""  #: run.json's name for this class of source ("" : its qualified class name)
    stored: ClassVar[str] = "copy"  #: "copy" or "reference" (see the module's docstring)
    resident: ClassVar[bool] = False
    workers: int = 0  #: worker processes reading its batches (0: the training process reads them)
    stream: str | None = None  #: the stream name(s) for error messages, set when a Trainer checks the mapper

    #: Sources that are recorded by reference, by ``kind``: resume finds the class that reopens a record here.
    KINDS: ClassVar[dict[str, type[RowSource]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__ and cls.kind:
            RowSource.KINDS[cls.kind] = cls

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (the number of rows).")

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The rows at ``indices`` (int64, any order, repeats allowed): one array per key, rows first."""
        raise NotImplementedError(f"{type(self).__name__} must implement take(indices) -> dict of arrays.")

    def kind_name(self) -> str:
        kind = type(self)
        return self.kind or f"{kind.__module__}.{kind.__qualname__}"

    def layouts(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """Each key's per-row (dtype, shape), read from row 0 once."""
        if "_layouts" not in self.__dict__:
            first = self.take(np.zeros(1, dtype=np.int64))
            missing = [key for key in self.keys if key not in first]
            if missing:
                raise ValueError(f"{type(self).__name__}.take returned keys {sorted(first)}, but its keys are {list(self.keys)}.")
            self._layouts = {key: (np.asarray(first[key]).dtype, tuple(np.shape(first[key])[1:])) for key in self.keys}
        return self._layouts

    def column(self, key: str) -> np.ndarray:
        """Every row of ``key`` (read ``COLUMN_CHUNK`` rows at a time)."""
        total = len(self)
        return np.concatenate([np.asarray(self.take(np.arange(low, min(low + COLUMN_CHUNK, total)))[key])
                               for low in range(0, total, COLUMN_CHUNK)])

    def columns(self) -> dict[str, Column]:
        """One :class:`Column` per key: what ``DatasetMapper(key=column)`` takes."""
        return {key: Column(self, key) for key in self.keys}

    def describe(self) -> dict:
        """What run.json records about the source (JSON): its kind, how it is stored, its length."""
        return {"kind": self.kind_name(), "stored": self.stored, "length": len(self)}

    def fingerprint(self) -> str:
        """sha256 over every row (a source recorded by reference should offer something cheaper, e.g. its file's hash)."""
        digest = hashlib.sha256()
        for key in sorted(self.keys):
            hash_array(digest, key, np.ascontiguousarray(self.column(key)))
        return digest.hexdigest()

    def close(self) -> None:
        """Release what reading started (threads, files); the Trainer calls it when a session ends. Nothing by default."""

    @classmethod
    def reopen(cls, record: Mapping[str, Any], run: str, stream: str) -> dict[str, Any]:
        """The data a ``describe()`` record names, as ``DatasetMapper`` keywords; ``run`` names the run in messages.

        By default a source recorded by reference cannot be reopened from its record alone.
        """
        raise ValueError(f"{run} read its {stream} data from {record.get('kind', cls.__qualname__)}, which a run directory "
                         f"cannot reopen: pass the same data again to resume, e.g. Trainer.resume(run_dir, {stream}=...).")


def hash_array(digest: Any, key: str, array: np.ndarray) -> None:
    """Add ``key``, ``array``'s dtype, shape and bytes to ``digest`` (the run directory's content hash)."""
    digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
    digest.update(array.data)


def reopen_record(record: Mapping[str, Any], run: str, stream: str) -> dict[str, Any]:
    """``DatasetMapper`` keywords for a source recorded by reference, by the class registered for its kind."""
    kind = record.get("kind")
    source = RowSource.KINDS.get(kind, RowSource)
    return source.reopen(record, run, stream)


class Column:
    """One key of a :class:`RowSource`, with the ``shape``/``dtype``/``ndim`` of the array it stands for."""

    def __init__(self, source: RowSource, key: str) -> None:
        if key not in source.keys:
            raise ValueError(f"{type(source).__name__} has no key {key!r}; its keys are {list(source.keys)}.")
        self.source, self.key = source, key
        self.dtype, row_shape = source.layouts()[key]
        self.shape = (len(source), *row_shape)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Column({type(self.source).__name__}, {self.key!r}, shape={self.shape}, dtype={self.dtype})"

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The rows at ``indices`` of this key (the source reads every key of those rows)."""
        return self.source.take(np.asarray(indices, dtype=np.int64))[self.key]
