"""Dataset mappers: layer names mapped to aligned rows, read through row sources.

A :class:`DatasetMapper` holds one stream of data (train, valid or test):
each keyword is a layer name (an Input, or an output whose targets these
are) and each value an array whose first axis is the sample axis, or a
column of a row source (``mariana.training.data.sources``). A sampler
(``mariana.training.data.samplers``) decides the order in which the
training stream is visited each epoch.

Example:
    >>> import numpy as np
    >>> from mariana.training import DatasetMapper
    >>> mapper = DatasetMapper(inp=np.zeros((4, 2)), out=np.array([0, 1, 0, 1]), sampler="sequential")
    >>> len(mapper), sorted(mapper.keys())
    (4, ['inp', 'out'])
    >>> mapper.sampler.epoch_order(mapper).tolist()
    [0, 1, 2, 3]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mariana.checks import refuse_masked
from mariana.registry import serialize
from mariana.training.data.array_rows import ArrayRows
from mariana.training.data.dataset_rows import DatasetRows
from mariana.training.data.file_data import FileRows, is_file_backed
from mariana.training.data.samplers import (  # noqa: F401 (re-exported: the samplers lived here)
    SAMPLERS,
    ClassBalanced,
    Sampler,
    Sequential,
    Shuffled,
    as_sampler,
)
from mariana.training.data.sources import Column, RowSource, hash_array

_NUMPY_DTYPES = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64,
                 torch.float16, torch.float32, torch.float64}


class DatasetMapper(Mapping):
    """Layer name -> aligned rows (numpy array, tensor, or a row source's column; first axis = samples).

    ``sampler``: "shuffled" (default), "sequential", "class_balanced" or a
    :class:`Sampler`. All arrays must have the same length. The names are
    checked against the network when a trainer starts. ``weights`` maps
    trained output names to per-sample weights (one non-negative number per
    sample): each sample's loss counts that much (Keras' ``sample_weight``;
    see ``mariana.costs.Cost.weighted``).

    Every value is read through a row source (``mariana.training.data.sources``).
    Memory-mapped arrays (``np.load(path, mmap_mode="r")``) stay on disk: the
    Trainer reads each batch's rows from the file (``mariana.training.data.file_data``)
    and the run directory records their path, size and sha256 instead of a
    copy. In-memory arrays are copied into the run directory so ``resume(run_dir)``
    alone works; ``copy_data=False`` skips that copy, and resuming then needs the
    same data passed again (checked against its hash).

    A map-style ``torch.utils.data.Dataset`` goes through :meth:`from_dataset`,
    which names where each layer's value lies in an item (``inp=0, out=1`` for
    ``(x, y)`` tuples); a row source of your own through :meth:`from_source`.
    """

    def __init__(self, /, sampler: str | Sampler = "shuffled", weights: Mapping[str, Any] | None = None, copy_data: bool = True,
                 **arrays: Any) -> None:
        if not arrays:
            raise ValueError("DatasetMapper: expected layer_name=array keywords (e.g. inp=x, out=y), but received none.")
        values = {key: value if isinstance(value, Column) else _checked_array(key, value) for key, value in arrays.items()}
        lengths = {key: int(value.shape[0]) for key, value in values.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"DatasetMapper: arrays must be aligned (same length on axis 0), but received lengths {lengths}.")
        if next(iter(lengths.values())) == 0:
            raise ValueError(f"DatasetMapper: expected at least one sample, but received empty arrays {sorted(lengths)}.")
        self._values = values
        #: Each key's row source and the source's own name for it.
        self._feeds: dict[str, tuple[RowSource, str]] = _feeds(values)
        self.sources: list[RowSource] = list({id(source): source for source, _ in self._feeds.values()}.values())
        self.copy_data = bool(copy_data)
        self.weights = _sample_weights(weights, len(self))
        self.sampler = as_sampler(sampler)
        self._hash: str | None = None
        self._stream_names: list[str] = []  # the streams check_against saw, to name them in a source's errors

    @classmethod
    def from_dataset(cls, dataset: Any, /, sampler: str | Sampler = "shuffled", weights: Mapping[str, Any] | None = None,
                     workers: int = 0, threads: int = 1, **fields: int | str) -> DatasetMapper:
        """A mapper over a map-style ``torch.utils.data.Dataset``: ``layer_name=field`` for each layer it feeds.

        ``field`` is a position when ``dataset[i]`` returns a tuple or list (``inp=0,
        out=1`` for ``(x, y)``, as torchvision's datasets do), a key when it returns a
        dict (``inp="image"``). The Trainer gathers each batch's items
        (``dataset[i]`` for each index, or ``dataset.__getitems__(indices)`` when the
        dataset has it) on a background thread while the previous batch trains, so
        only a batch or two are ever in memory. Training on a Dataset is
        bit-identical to training on arrays holding the same rows.

        ``workers``: that many processes (a ``torch.utils.data.DataLoader``) read the
        batches ahead, in the Trainer's order and batch boundaries (each rank's share
        under DDP), so decoding keeps up with the step; training stays bit-identical.
        ``threads``: each batch's items are read on that many threads (an IO-bound
        dataset: files, network); ``dataset[i]`` must then be thread-safe. Neither is
        part of the data's identity: a run may be resumed with other values.

        A Dataset cannot be copied or hashed: the run directory records its class,
        its length and the fields' shapes and dtypes, and ``Trainer.resume`` needs the
        same data passed again. Rows whose shape or dtype differ from item 0's raise
        a ``ValueError`` naming the stream, the layer and the row. An
        ``IterableDataset`` (no ``len``, no ``dataset[i]``) is refused with a TypeError.

        Example:
            >>> import torch
            >>> from torch.utils.data import TensorDataset
            >>> pairs = TensorDataset(torch.randn(100, 3), torch.randint(0, 2, (100,)))
            >>> mapper = DatasetMapper.from_dataset(pairs, inp=0, out=1)
            >>> len(mapper), mapper["inp"].shape, mapper["out"].dtype
            (100, (100, 3), dtype('int64'))
        """
        rows = DatasetRows(dataset, fields, workers=workers, threads=threads)
        return cls(sampler=sampler, weights=weights, copy_data=False, **rows.columns())

    @classmethod
    def from_source(cls, source: RowSource, /, sampler: str | Sampler = "shuffled", weights: Mapping[str, Any] | None = None,
                    copy_data: bool = True) -> DatasetMapper:
        """A mapper over every key of a row source (``mariana.training.data.sources.RowSource``)."""
        if not isinstance(source, RowSource):
            raise TypeError(f"DatasetMapper.from_source: expected a RowSource, but received {type(source).__name__}.")
        return cls(sampler=sampler, weights=weights, copy_data=copy_data, **source.columns())

    def __getitem__(self, key: str) -> np.ndarray | torch.Tensor | Column:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        """The number of samples (not of keys)."""
        return int(next(iter(self._values.values())).shape[0])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self._values.items())
        return f"DatasetMapper({shapes}, sampler={type(self.sampler).__name__})"

    def source(self, key: str) -> RowSource:
        """The row source that feeds ``key``."""
        return self._feeds[key][0]

    @property
    def resident(self) -> bool:
        """Whether every row lies in memory as whole arrays (the Trainer converts them once, not batch by batch)."""
        return all(source.resident for source in self.sources)

    @property
    def workers(self) -> int:
        """Worker processes that read this mapper's batches ahead (the most any of its sources asks for)."""
        return max(source.workers for source in self.sources)

    def keys_of(self, source: RowSource) -> list[str]:
        return [key for key, (fed_by, _) in self._feeds.items() if fed_by is source]

    def numpy(self, key: str) -> np.ndarray:
        """The array ``key`` as a C-contiguous numpy array (read from its source when it is not in memory)."""
        source, name = self._feeds[key]
        return source.column(name)

    def content_hash(self) -> str:
        """sha256 over every key, dtype, shape and byte of the copied data, and the fingerprints of the rest (cached)."""
        if self._hash is None:
            digest = hashlib.sha256()
            for key, array in sorted(self.hashed_arrays().items()):
                hash_array(digest, key, array)
            for source in sorted((s for s in self.sources if s.stored != "copy"), key=self.keys_of):
                digest.update(f"{source.kind_name()}|{','.join(self.keys_of(source))}|{source.fingerprint()}|".encode())
            self._hash = digest.hexdigest()
        return self._hash

    def hashed_arrays(self) -> dict[str, np.ndarray]:
        """The rows the run directory copies (sources stored by copy, and the sample weights), by key."""
        return {**{key: source.column(name) for key, (source, name) in self._feeds.items() if source.stored == "copy"},
                **{f"{WEIGHTS}{key}": w for key, w in self.weights.items()}}

    def arrays(self) -> dict[str, np.ndarray]:
        """The data the run directory copies, as numpy (none with ``copy_data=False``)."""
        return self.hashed_arrays() if self.copy_data else {}

    def rows(self, key: str, indices: np.ndarray) -> np.ndarray:
        """The rows ``indices`` of array ``key`` (read from its source)."""
        source, name = self._feeds[key]
        return source.take(indices)[name]

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The rows ``indices`` of every key (each source reads them once for all the keys it feeds)."""
        gathered: dict[str, np.ndarray] = {}
        for source in self.sources:
            rows = source.take(indices)
            for key in self.keys_of(source):
                gathered[key] = rows[self._feeds[key][1]]
        return {key: gathered[key] for key in self._values}

    def close(self) -> None:
        """Release what the sources started for reading (threads); the Trainer calls it when a session ends."""
        for source in self.sources:
            source.close()

    def check_against(self, stream: str, inputs: list[str], targets: list[str], layers: list[str]) -> None:
        """``ValueError`` naming the key when this mapper does not fit the network's inputs/targets."""
        expected = inputs + targets
        self._stream_names = list(dict.fromkeys([*self._stream_names, stream]))
        for source in self.sources:  # a mapper used as train and valid reads rows for both: name both
            source.stream = " and ".join(repr(name) for name in self._stream_names)
        for key in self._values:
            if key not in layers:
                raise ValueError(
                    f"DatasetMapper {stream!r}: key {key!r} is not a layer of this network; expected the names {expected}, "
                    f"but received keys {sorted(self._values)}."
                )
            if key not in expected:
                raise ValueError(
                    f"DatasetMapper {stream!r}: layer {key!r} is neither an Input nor a trained output; expected the names "
                    f"{expected}, but received keys {sorted(self._values)}."
                )
        missing = [name for name in expected if name not in self._values]
        if missing:
            raise ValueError(
                f"DatasetMapper {stream!r}: missing {missing}; this training needs inputs {inputs} and targets {targets}, "
                f"but received keys {sorted(self._values)}."
            )

    def describe(self) -> dict:
        """JSON summary kept in the run directory: the layout, the sampler, each source's record and the hash."""
        layouts = {key: source.layouts()[name] for key, (source, name) in self._feeds.items()}
        return {
            "length": len(self),
            "arrays": {key: {"dtype": str(dtype), "shape": [len(self), *shape]} for key, (dtype, shape) in layouts.items()},
            "sampler": serialize(self.sampler),
            "weights": sorted(self.weights),
            "sources": [{**source.describe(), "keys": self.keys_of(source)} for source in self.sources],
            "copied": self.copy_data,
            "sha256": self.content_hash(),
        }


def _checked_array(key: str, value: Any) -> np.ndarray | torch.Tensor:
    """``value`` as an array or tensor with a sample axis and a dtype numpy can hold, or a ValueError naming ``key``."""
    refuse_masked(value, f"DatasetMapper: {key!r}")
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"DatasetMapper: {key!r} must be an array or tensor, but received {type(value).__name__} ({error}).") from None
    if value.ndim == 0:
        raise ValueError(f"DatasetMapper: {key!r} must have a sample axis first, but received a scalar.")
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
        raise ValueError(f"DatasetMapper: {key!r} must be numeric, but received an array of dtype {value.dtype}.")
    if isinstance(value, torch.Tensor) and (value.is_complex() or value.dtype not in _NUMPY_DTYPES):
        # The run directory hashes and copies the data through numpy, which has no such dtype.
        raise ValueError(f"DatasetMapper: {key!r} must be a real tensor of a dtype numpy can hold (bool, integers, float16/32/64), "
                         f"but received {value.dtype}; convert it first, e.g. {key}=tensor.float().")
    return value


def _feeds(values: Mapping[str, Any]) -> dict[str, tuple[RowSource, str]]:
    """Each key's row source: a source's column feeds its key; memory-mapped files are read from disk
    (``FileRows``, one per file); the in-memory arrays share one ``ArrayRows``."""
    files = FileRows.of_arrays({key: value for key, value in values.items() if is_file_backed(value)})
    memory = {key: value for key, value in values.items() if not isinstance(value, Column) and key not in files}
    in_memory = ArrayRows(memory) if memory else None
    feeds = {}
    for key, value in values.items():
        if isinstance(value, Column):
            feeds[key] = (value.source, value.key)
        else:
            feeds[key] = (files[key], key) if key in files else (in_memory, key)
    return feeds


def as_mapper(data: Any, stream: str) -> DatasetMapper | None:
    """A DatasetMapper from a mapper, a dict of arrays, or None."""
    if data is None or isinstance(data, DatasetMapper):
        return data
    if isinstance(data, Mapping):
        return DatasetMapper(sampler="shuffled" if stream == "train" else "sequential", **data)
    if isinstance(data, torch.utils.data.IterableDataset):
        raise TypeError(f"{stream}: an IterableDataset ({type(data).__name__}) cannot be trained on: the Trainer samples rows by "
                        f"index (shuffling, resuming mid-epoch), which needs len() and dataset[i]. Pass a map-style Dataset "
                        f"through DatasetMapper.from_dataset(dataset, inp=0, out=1), or a dict of layer_name -> array "
                        f"(np.load(path, mmap_mode='r') keeps .npy files on disk).")
    if isinstance(data, torch.utils.data.Dataset):
        raise TypeError(f"{stream}: a torch Dataset needs the layer each of its fields feeds: pass "
                        f"DatasetMapper.from_dataset(dataset, inp=0, out=1) (positions in a tuple item, or keys of a dict item).")
    raise TypeError(f"{stream}: expected a DatasetMapper or a dict of layer_name -> array, but received {type(data).__name__}.")


WEIGHTS = "weights/"  # prefix of the sample weights' keys in the run directory's data copy


def _sample_weights(weights: Mapping[str, Any] | None, length: int) -> dict[str, np.ndarray]:
    """``weights`` checked: output name -> float32 array of ``length`` finite, non-negative numbers."""
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise TypeError(f"DatasetMapper: weights expects a dict of output name -> per-sample weights, but received {type(weights).__name__}.")
    checked = {}
    for name, value in weights.items():
        array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        if array.dtype.kind not in "biuf" or array.shape != (length,):
            raise ValueError(f"DatasetMapper: weights[{name!r}] must be {length} numbers (one per sample), but received "
                             f"an array of dtype {array.dtype} and shape {array.shape}.")
        array = array.astype(np.float32)
        if not np.isfinite(array).all() or (array < 0).any():
            raise ValueError(f"DatasetMapper: weights[{name!r}] must be finite and >= 0, but received values from "
                             f"{array.min()} to {array.max()}.")
        checked[str(name)] = np.ascontiguousarray(array)
    return checked
