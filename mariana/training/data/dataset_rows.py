"""Rows of a map-style ``torch.utils.data.Dataset``, gathered batch by batch and checked row by row.

``DatasetMapper.from_dataset(dataset, inp=0, out=1)`` names, for each layer,
where its value lies in an item: a position when ``dataset[i]`` is a tuple or
list (``(image, label)``, what torchvision returns), a key when it is a dict.
An item that is a single array or tensor is field ``0``. Item 0 is read once
to learn each field's shape and dtype; every row read afterwards must match
them, so a wrong row is a ``ValueError`` naming the stream, the layer and the
row index instead of a stack trace from deep inside the training step.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> rows = DatasetRows(TensorDataset(torch.arange(6.0).reshape(3, 2), torch.tensor([0, 1, 0])), {"inp": 0, "out": 1})
    >>> batch = rows.take(np.array([2, 0]))
    >>> batch["inp"].tolist(), batch["out"].tolist(), rows.columns["out"].shape
    ([[4.0, 5.0], [0.0, 1.0]], [0, 0], (3,))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

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


class DatasetRows:
    """A map-style dataset read ``len(indices)`` items at a time; ``fields`` maps layer names to positions or keys."""

    def __init__(self, dataset: Any, fields: Mapping[str, Field]) -> None:
        self.length = check_map_style(dataset)
        if not fields:
            raise ValueError("DatasetMapper.from_dataset: expected layer_name=field keywords (e.g. inp=0, out=1 for (x, y) items), "
                             "but received none.")
        self.dataset, self.fields = dataset, dict(fields)
        self.stream: str | None = None  #: the stream name(s) for error messages, set when a Trainer checks the mapper
        first = self._fields_of(self._items(np.array([0]))[0], 0)
        for key, value in first.items():
            if value.dtype.kind not in "biuf":
                raise ValueError(f"DatasetMapper.from_dataset: {key!r} (field {self.fields[key]!r} of item 0) must be numeric, "
                                 f"but received {type(value).__name__} of dtype {value.dtype}.")
        self.layouts = {key: (value.dtype, value.shape) for key, value in first.items()}
        self.columns = {key: DatasetColumn(self, key) for key in self.fields}

    def where(self) -> str:
        return "DatasetMapper.from_dataset" if self.stream is None else f"DatasetMapper {self.stream}"

    def describe(self) -> dict:
        """What the run directory records instead of a copy: the class, the length and the fields' layout."""
        kind = type(self.dataset)
        return {"class": f"{kind.__module__}.{kind.__qualname__}", "length": self.length, "fields": self.fields,
                "layouts": {key: {"dtype": dtype.str, "shape": list(shape)} for key, (dtype, shape) in self.layouts.items()}}

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The items at ``indices`` (``dataset.__getitems__`` when it has one), one stacked array per layer name."""
        items = self._items(indices)
        columns: dict[str, list[np.ndarray]] = {key: [] for key in self.fields}
        for index, item in zip(indices.tolist(), items):
            for key, value in self._fields_of(item, index).items():
                dtype, shape = self.layouts[key]
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
        items = getitems(positions) if getitems is not None else [self.dataset[i] for i in positions]
        if len(items) != len(positions):
            raise ValueError(f"{self.where()}: {type(self.dataset).__name__}.__getitems__ returned {len(items)} "
                             f"items for {len(positions)} indices.")
        return items

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


class DatasetColumn:
    """One layer's column of a :class:`DatasetRows`, with the ``shape``/``dtype``/``ndim`` of the array it stands for."""

    def __init__(self, rows: DatasetRows, key: str) -> None:
        self.rows, self.key = rows, key
        self.dtype, row_shape = rows.layouts[key]
        self.shape = (rows.length, *row_shape)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The rows at ``indices`` of this column (reads whole items: :meth:`DatasetRows.take` serves every column at once)."""
        return self.rows.take(indices)[self.key]
