"""Data read from files batch by batch: memory-mapped numpy arrays, without mapping them into memory.

``np.load(path, mmap_mode="r")`` gives a ``np.memmap``; a ``DatasetMapper``
that holds one keeps it file-backed: the Trainer reads the rows of each batch
with ``os.pread`` (so the pages stay in the OS cache, not in the process's
memory), checks and converts only that batch, and prepares the next batch on
a background thread while the current one trains. The run directory records
such an array by path, size and sha256 instead of copying it.

Example:
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.arange(12, dtype=np.float32).reshape(6, 2))
    >>> rows = FileRows(np.load(path, mmap_mode="r"))
    >>> rows.take(np.array([4, 0])).tolist(), rows.describe()["size"]
    ([[8.0, 9.0], [0.0, 1.0]], 176)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mariana.files import file_sha256

#: Rows closer than this many bytes are read in one call, with the rows between them (cheaper than a call per row).
GAP_BYTES = 16 * 2**10


def is_file_backed(array: object) -> bool:
    """A ``np.memmap`` over a named file (what ``np.load(..., mmap_mode="r")`` returns)."""
    return isinstance(array, np.memmap) and getattr(array, "filename", None) is not None and array.flags.c_contiguous


def file_offset(array: np.memmap) -> int:
    """Where ``array``'s first byte lies in its file. A slice of a memmap (``m[6:]``) keeps its parent's
    ``offset`` attribute, so the distance from the mapped array it was cut from is added."""
    root = array
    while isinstance(root.base, np.memmap):
        root = root.base
    return int(root.offset) + array.__array_interface__["data"][0] - root.__array_interface__["data"][0]


class FileRows:
    """Rows of a C-contiguous memory-mapped array, read from its file on demand."""

    def __init__(self, array: np.memmap) -> None:
        self.path = Path(array.filename).resolve()
        self.offset = file_offset(array)
        self.dtype, self.shape = array.dtype, tuple(array.shape)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The rows at ``indices`` (any order), as a new in-memory array.

        The indices are sorted and grouped into runs that one read covers: adjacent
        rows, and rows close enough that reading the few between them is cheaper than
        another system call (labels: a whole batch in one read). Each run is read
        straight into its buffer, then the rows are put in the asked order.
        """
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        if not len(indices):
            return out
        if indices.min() < 0 or indices.max() >= self.shape[0]:
            raise IndexError(f"{str(self.path)!r}: rows {indices.min()}..{indices.max()} are outside its {self.shape[0]} rows.")
        ordered = np.argsort(indices, kind="stable")
        wanted = indices[ordered]
        # A new read starts where the gap to the previous row costs more bytes than GAP_BYTES.
        starts = np.flatnonzero(np.diff(wanted) * self.row_bytes > GAP_BYTES) + 1
        rows = out.reshape(len(indices), -1).view(np.uint8)
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            for first, last in zip([0, *starts.tolist()], [*starts.tolist(), len(wanted)]):
                low = int(wanted[first])
                if last - first == 1:  # a lone row (random order): read straight into its place
                    self._read_into(descriptor, low, rows[ordered[first]])
                    continue
                span = np.empty((int(wanted[last - 1]) + 1 - low, self.row_bytes), dtype=np.uint8)
                self._read_into(descriptor, low, span)
                rows[ordered[first:last]] = span[wanted[first:last] - low]
        finally:
            os.close(descriptor)
        return out

    def _read_into(self, descriptor: int, first: int, buffer: np.ndarray) -> None:
        """Fill ``buffer`` (bytes of whole rows) from row ``first`` on, with one system call."""
        if buffer.nbytes and os.preadv(descriptor, [buffer], self.offset + first * self.row_bytes) != buffer.nbytes:
            raise ValueError(f"{str(self.path)!r} is shorter than its array ({self.shape}): it changed while training.")

    def describe(self) -> dict:
        """What the run directory records instead of a copy: path, size, sha256 and the array's layout."""
        return {"path": str(self.path), "size": self.path.stat().st_size, "sha256": file_sha256(self.path),
                "offset": self.offset, "dtype": self.dtype.str, "shape": list(self.shape)}

    @staticmethod
    def reopen(record: dict, what: str) -> np.memmap:
        """The memory-mapped array a :meth:`describe` record names, once its size and sha256 still match."""
        path = Path(record["path"])
        if not path.is_file():
            raise ValueError(f"{what}: the run read {str(path)!r}, which no longer exists; put the file back to resume.")
        if path.stat().st_size != record["size"] or file_sha256(path) != record["sha256"]:
            raise ValueError(f"{what}: {str(path)!r} is not the file the run read (its size or sha256 changed); "
                             f"restore it, or start a new run.")
        return np.memmap(path, dtype=np.dtype(record["dtype"]), mode="r", offset=record["offset"], shape=tuple(record["shape"]))
