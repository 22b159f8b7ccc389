"""Data read from files batch by batch: memory-mapped numpy arrays, without mapping them into memory.

``np.load(path, mmap_mode="r")`` gives a ``np.memmap``; a ``DatasetMapper``
that holds one keeps it file-backed: the Trainer reads the rows of each batch
from the file, checks and converts only that batch, and can prepare the next
batch on a background thread while the current one trains. The run directory
records such an array by path, size and sha256 instead of copying it.

How rows are read depends on size. Arrays up to ``MAPPED_BYTES`` in all (per
mapper, smallest first) are gathered through a read-only shared mapping of
their file: numpy copies the rows straight from the OS cache, ~5x cheaper than
a system call per row, and the pages it maps, at most the file, are shared
with the OS cache and other processes reading it (ranks on one machine) and
are given back under memory pressure. Larger arrays are read with ``os.preadv``,
so however large the file, the process's memory holds only the batches.

Example:
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.arange(12, dtype=np.float32).reshape(6, 2))
    >>> rows = FileRows(np.load(path, mmap_mode="r"), key="inp")
    >>> rows.take(np.array([4, 0]))["inp"].tolist(), rows.describe()["size"]
    ([[8.0, 9.0], [0.0, 1.0]], 176)
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mariana.files import file_sha256
from mariana.training.data.sources import RowSource

#: File-backed arrays up to this many bytes in all (per mapper) are read through a mapping of their file, larger ones with preadv.
MAPPED_BYTES = 512 * 2**20

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


class FileRows(RowSource):
    """Rows of a C-contiguous memory-mapped array, read from its file on demand: the row source of layer ``key``.

    ``mapped``: gather rows through a shared mapping of the file (fast; its pages
    may all become resident) rather than with one ``preadv`` per run of rows.
    The run directory records the file by path, size and sha256 (``stored = "reference"``).
    """

    kind = "file"
    stored = "reference"

    def __init__(self, array: np.memmap, key: str = "rows", mapped: bool = False) -> None:
        self.keys = (key,)
        self.path = Path(array.filename).resolve()
        self.offset = file_offset(array)
        self.dtype, self.shape = array.dtype, tuple(array.shape)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.mapped = mapped
        self._mapping: tuple[mmap.mmap, np.ndarray] | None = None
        self._opening = threading.Lock()
        self._record: dict | None = None

    @classmethod
    def of_arrays(cls, arrays: Mapping[str, np.memmap]) -> dict[str, FileRows]:
        """``FileRows`` for each array, the smallest mapped while they fit in ``MAPPED_BYTES`` together."""
        left, rows = MAPPED_BYTES, {}
        for key, array in sorted(arrays.items(), key=lambda item: item[1].nbytes):
            rows[key] = cls(array, key=key, mapped=array.nbytes <= left)
            left -= array.nbytes if rows[key].mapped else 0
        return {key: rows[key] for key in arrays}

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        """Copies and pickles map the file again when they first read (a mapping and a lock do not travel)."""
        return {**self.__dict__, "_mapping": None, "_opening": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _opening=threading.Lock())

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes

    def layouts(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        return {self.keys[0]: (self.dtype, self.shape[1:])}

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {self.keys[0]: self.read(indices)}

    def column(self, key: str) -> np.ndarray:
        return self.read(np.arange(self.shape[0]))

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The rows at ``indices`` (any order), as a new in-memory array."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.shape[0]):
            raise IndexError(f"{str(self.path)!r}: rows {indices.min()}..{indices.max()} are outside its {self.shape[0]} rows.")
        if not self.mapped:
            return self._read(indices)
        mapping, rows = self._mapped_rows()
        if mapping.size() < self.offset + self.nbytes:  # reading a truncated file's mapping would kill the process (SIGBUS)
            raise self._cut_short()
        return np.take(rows, indices, axis=0)

    def _mapped_rows(self) -> tuple[mmap.mmap, np.ndarray]:
        """The file's read-only shared mapping and the array over it, made on first use."""
        with self._opening:
            if self._mapping is None:
                with open(self.path, "rb") as file:
                    mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
                rows = np.frombuffer(mapping, dtype=self.dtype, count=self.nbytes // self.dtype.itemsize, offset=self.offset)
                self._mapping = (mapping, rows.reshape(self.shape))
            return self._mapping

    def _read(self, indices: np.ndarray) -> np.ndarray:
        """The rows at ``indices`` with ``preadv``: memory holds only them.

        The indices are sorted and grouped into runs that one read covers: adjacent
        rows, and rows close enough that reading the few between them is cheaper than
        another system call (labels: a whole batch in one read). Each run is read
        straight into its buffer, then the rows are put in the asked order.
        """
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        if not len(indices):
            return out
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
            raise self._cut_short()

    def _cut_short(self) -> ValueError:
        return ValueError(f"{str(self.path)!r} is shorter than its array ({self.shape}): it changed while training.")

    def describe(self) -> dict:
        """What the run directory records instead of a copy: path, size, sha256 and the array's layout (computed once)."""
        if self._record is None:
            self._record = {"kind": self.kind, "stored": self.stored, "path": str(self.path), "size": self.path.stat().st_size,
                            "sha256": file_sha256(self.path), "offset": self.offset, "dtype": self.dtype.str, "shape": list(self.shape)}
        return dict(self._record)

    def fingerprint(self) -> str:
        record = self.describe()
        return f"{record['dtype']}|{record['shape']}|{record['offset']}|{record['sha256']}"

    @classmethod
    def reopen(cls, record: Mapping, run: str, stream: str) -> dict[str, np.memmap]:
        """The recorded file as ``{key: memmap}``, once its size and sha256 still match."""
        key = record["keys"][0]
        return {key: open_recorded(record, f"DatasetMapper {key!r}")}


def open_recorded(record: Mapping, what: str) -> np.memmap:
    """The memory-mapped array a :meth:`FileRows.describe` record names, once its size and sha256 still match."""
    path = Path(record["path"])
    if not path.is_file():
        raise ValueError(f"{what}: the run read {str(path)!r}, which no longer exists; put the file back to resume.")
    if path.stat().st_size != record["size"] or file_sha256(path) != record["sha256"]:
        raise ValueError(f"{what}: {str(path)!r} is not the file the run read (its size or sha256 changed); "
                         f"restore it, or start a new run.")
    return np.memmap(path, dtype=np.dtype(record["dtype"]), mode="r", offset=record["offset"], shape=tuple(record["shape"]))
