"""Rows of a map-style ``torch.utils.data.Dataset``, gathered batch by batch and checked row by row.

``DatasetMapper.from_dataset(dataset, inp=0, out=1)`` names, for each layer,
where its value lies in an item: a position when ``dataset[i]`` is a tuple or
list (``(image, label)``, what torchvision returns), a key when it is a dict.
An item that is a single array or tensor is field ``0``. Item 0 is read once
to learn each field's shape and dtype; every row read afterwards must match
them, so a wrong row is a ``ValueError`` naming the stream, the layer and the
row index instead of a stack trace from deep inside the training step.

Reading options (not part of the data's identity: a resumed run may change
them): ``threads`` items of a batch are read concurrently (``dataset[i]`` on a
small thread pool: what an IO-bound dataset needs; the items keep their
order), and ``workers`` processes read whole batches ahead
(``mariana.training.data.workers``).

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> rows = DatasetRows(TensorDataset(torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 0])), {"inp": 0, "out": 1})
    >>> batch = rows.take(np.array([2, 0]))
    >>> batch["inp"].tolist(), batch["out"].tolist(), rows.columns()["out"].shape
    ([[4.0, 5.0], [0.0, 1.0]], [0, 0], (3,))
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mariana.checks import is_int
from mariana.training.data.sources import RowSource

Field = int | str


def check_map_style(dataset: Any) -> int:
    """``len(dataset)`` of a map-style dataset; a ``TypeError`` for anything else (an IterableDataset, a generator)."""
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"DatasetMapper.from_dataset: only map-style datasets (dataset[i] and len(dataset)) are supported, but "
                        f"received {type(dataset).__name__}. Wrap an iterable one's data in a map-style Dataset, or save it "
                        f"as .npy files and pass np.load(path, mmap_mode='r').")
    try:
        length = len(dataset)
    except TypeError:
        raise TypeError(f"DatasetMapper.from_dataset: {type(dataset).__name__} has no len(); only map-style datasets with a "
                        f"known length are supported (define __len__).") from None
    if length <= 0:
        raise ValueError(f"DatasetMapper.from_dataset: expected at least one sample, but {type(dataset).__name__} has length {length}.")
    return int(length)


def as_numpy(value: Any) -> np.ndarray:
    """One field of one item as a numpy array (tensors leave the autograd graph and the device)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class DatasetRows(RowSource):
    """A map-style dataset read ``len(indices)`` items at a time; ``fields`` maps layer names to positions or keys."""

    kind = "dataset"
    stored = "reference"

    def __init__(self, dataset: Any, fields: Mapping[str, Field], workers: int = 0, threads: int = 1) -> None:
        self.length = check_map_style(dataset)
        if not fields:
            raise ValueError("DatasetMapper.from_dataset: expected layer_name=field keywords (e.g. inp=0, out=1 for (x, y) items), "
                             "but received none.")
        for name, value, least in (("workers", workers, 0), ("threads", threads, 1)):
            if not is_int(value) or value < least:
                raise ValueError(f"DatasetMapper.from_dataset: {name} must be an int >= {least}, but received {value!r}.")
        self.dataset, self.fields, self.keys = dataset, dict(fields), tuple(fields)
        self.workers, self.threads = int(workers), int(threads)
        self._pool: tuple[int, concurrent.futures.ThreadPoolExecutor] | None = None  # (the process that made it, the pool)
        first = self._fields_of(self._items(np.array([0]))[0], 0)
        for key, value in first.items():
            if value.dtype.kind not in "biuf":
                raise ValueError(f"DatasetMapper.from_dataset: {key!r} (field {self.fields[key]!r} of item 0) must be numeric, "
                                 f"but received {type(value).__name__} of dtype {value.dtype}.")
        self._layouts = {key: (value.dtype, value.shape) for key, value in first.items()}

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pool": None}  # threads do not travel to another process

    def where(self) -> str:
        return "DatasetMapper.from_dataset" if self.stream is None else f"DatasetMapper {self.stream}"

    def layouts(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        return self._layouts

    def describe(self) -> dict:
        """What the run directory records instead of a copy: the class, the length and the fields' layout."""
        return {"kind": self.kind, "stored": self.stored, **self._identity()}

    def _identity(self) -> dict:
        kind = type(self.dataset)
        return {"class": f"{kind.__module__}.{kind.__qualname__}", "length": self.length, "fields": self.fields,
                "layouts": {key: {"dtype": dtype.str, "shape": list(shape)} for key, (dtype, shape) in self._layouts.items()}}

    def fingerprint(self) -> str:
        """A Dataset cannot be hashed: its class, length and layout stand for it."""
        return json.dumps(self._identity(), sort_keys=True)

    @classmethod
    def reopen(cls, record: Mapping[str, Any], run: str, stream: str) -> dict[str, Any]:
        raise ValueError(f"{run} read its {stream} data from a torch Dataset ({record['class']}, {record['length']} rows), "
                         f"which a run directory cannot copy: pass the same data again to resume, e.g. Trainer.resume(run_dir, "
                         f"{stream}=DatasetMapper.from_dataset(dataset, ...)).")

    def close(self) -> None:
        """Stop the item-reading threads (a later read starts them again)."""
        pool, self._pool = self._pool, None
        if pool is not None and pool[0] == os.getpid():
            pool[1].shutdown(wait=True)

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The items at ``indices`` (``dataset.__getitems__`` when it has one), one stacked array per layer name."""
        items = self._items(indices)
        columns: dict[str, list[np.ndarray]] = {key: [] for key in self.fields}
        for index, item in zip(indices.tolist(), items):
            for key, value in self._fields_of(item, index).items():
                dtype, shape = self._layouts[key]
                if value.dtype != dtype or value.shape != shape:
                    raise ValueError(
                        f"{self.where()}: row {index} of {type(self.dataset).__name__} gives {key!r} (field "
                        f"{self.fields[key]!r}) of shape {value.shape} and dtype {value.dtype}, but row 0 gave shape {shape} "
                        f"and dtype {dtype}; every row must have the same shape and dtype."
                    )
                columns[key].append(value)
        return {key: np.stack(values) for key, values in columns.items()}

    def _items(self, indices: np.ndarray) -> Sequence[Any]:
        positions = [int(i) for i in indices]
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            items = getitems(positions)
        elif self.threads > 1 and len(positions) > 1:  # one hand-off per thread, not per item: the hand-off costs more
            size = -(-len(positions) // self.threads)
            getitem = self.dataset.__getitem__
            parts = self._threads().map(lambda part: [getitem(i) for i in part], [positions[i:i + size] for i in range(0, len(positions), size)])
            items = [item for part in parts for item in part]
        else:
            items = [self.dataset[i] for i in positions]
        if len(items) != len(positions):
            raise ValueError(f"{self.where()}: {type(self.dataset).__name__}.__getitems__ returned {len(items)} "
                             f"items for {len(positions)} indices.")
        return items

    def _threads(self) -> concurrent.futures.ThreadPoolExecutor:
        """This process's item-reading pool (a worker process forked from another makes its own)."""
        if self._pool is None or self._pool[0] != os.getpid():
            self._pool = (os.getpid(), concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="mariana-items"))
        return self._pool[1]

    def _fields_of(self, item: Any, index: int) -> dict[str, np.ndarray]:
        if not isinstance(item, (tuple, list, Mapping)):
            item = (item,)
        found = {}
        for key, field in self.fields.items():
            try:
                found[key] = as_numpy(item[field])
            except (IndexError, KeyError, TypeError):
                shown = f"a dict with keys {sorted(item)}" if isinstance(item, Mapping) else f"a {type(item).__name__} of {len(item)}"
                raise ValueError(f"{self.where()}: row {index} of {type(self.dataset).__name__} has no field "
                                 f"{field!r} for {key!r}: the item is {shown}. Name positions for tuple items (inp=0, out=1) "
                                 f"and keys for dict items (inp='image').") from None
        return found
