"""Dataset mappers: layer names mapped to aligned arrays, and the samplers that order them.

A :class:`DatasetMapper` holds one stream of data (train, valid or test):
each keyword is a layer name (an Input, or an output whose targets these
are) and each value an array whose first axis is the sample axis. Samplers
decide the order in which the training stream is visited each epoch; they
own a NumPy ``Generator`` whose state is saved with every checkpoint.

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
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mariana.checks import is_int, refuse_masked
from mariana.registry import Configurable, deserialize, serialize
from mariana.training.data.dataset_rows import DatasetColumn, DatasetRows
from mariana.training.data.file_data import FileRows, is_file_backed


class Sampler(Configurable):
    """Orders the samples of a mapper for one epoch. ``seed=None``: drawn from torch's RNG at start."""

    hyperparameters = ("seed",)

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (not is_int(seed) or seed < 0):
            raise ValueError(f"{type(self).__name__}: seed must be a non-negative int or None, but received {seed!r}.")
        self.seed = seed
        self.generator: np.random.Generator | None = None

    def start(self) -> None:
        """Create the generator (once per run; a resumed run loads its state instead)."""
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        self.generator = np.random.Generator(np.random.PCG64(seed))

    def epoch_order(self, mapper: DatasetMapper) -> np.ndarray:
        """Indices (int64) of the samples to visit this epoch, in order."""
        raise NotImplementedError(f"{type(self).__name__} must implement epoch_order(mapper).")

    def _rng(self) -> np.random.Generator:
        if self.generator is None:
            self.start()
        return self.generator

    def state_dict(self) -> dict:
        return {"generator": None if self.generator is None else self.generator.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if state.get("generator") is None:
            self.generator = None
            return
        bit_generator = np.random.PCG64()
        bit_generator.state = state["generator"]
        self.generator = np.random.Generator(bit_generator)


class Sequential(Sampler):
    """Every sample once, in stored order."""

    def epoch_order(self, mapper: DatasetMapper) -> np.ndarray:
        return np.arange(len(mapper), dtype=np.int64)


class Shuffled(Sampler):
    """Every sample once, in a fresh random order each epoch."""

    def epoch_order(self, mapper: DatasetMapper) -> np.ndarray:
        return self._rng().permutation(len(mapper)).astype(np.int64)


class ClassBalanced(Sampler):
    """Oversamples minority classes: each class is visited as often as the largest one.

    ``key`` names the array of integer class ids (default: the mapper's only
    1-d integer array). Every sample of a class is kept; smaller classes are
    topped up with random repeats, then the whole epoch is shuffled.
    """

    hyperparameters = ("key", "seed")

    def __init__(self, key: str | None = None, seed: int | None = None) -> None:
        super().__init__(seed)
        self.key = key

    def labels(self, mapper: DatasetMapper) -> np.ndarray:
        key = self.key
        if key is None:
            candidates = [k for k, v in mapper.items() if v.ndim == 1 and _is_integer(v)]
            if len(candidates) != 1:
                raise ValueError(
                    f"ClassBalanced: cannot tell which array holds the class ids; expected exactly one 1-d integer array, "
                    f"but received {candidates or 'none'} among {sorted(mapper.keys())}. Pass ClassBalanced(key=...)."
                )
            key = candidates[0]
        if key not in mapper:
            raise ValueError(f"ClassBalanced: key {key!r} is not in the mapper; expected one of {sorted(mapper.keys())}.")
        labels = mapper.numpy(key)
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"ClassBalanced: expected 1-d integer class ids in {key!r}, but received {labels.dtype} of shape {labels.shape}.")
        return labels

    def epoch_order(self, mapper: DatasetMapper) -> np.ndarray:
        rng = self._rng()
        labels = self.labels(mapper)
        classes = np.unique(labels)
        members = [np.flatnonzero(labels == c) for c in classes]
        largest = max(len(m) for m in members)
        parts = [np.concatenate([m, rng.choice(m, size=largest - len(m), replace=True)]) for m in members]
        return rng.permutation(np.concatenate(parts)).astype(np.int64)


_NUMPY_DTYPES = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64,
                 torch.float16, torch.float32, torch.float64}


def _is_integer(array: np.ndarray | torch.Tensor) -> bool:
    """Integer dtype (not bool), for numpy arrays and tensors alike."""
    if isinstance(array, torch.Tensor):
        return not (array.is_floating_point() or array.is_complex() or array.dtype == torch.bool)
    return array.dtype.kind in "iu"


SAMPLERS: dict[str, type[Sampler]] = {"sequential": Sequential, "shuffled": Shuffled, "class_balanced": ClassBalanced}


def as_sampler(sampler: Any) -> Sampler:
    """A Sampler from an instance or one of the names in ``SAMPLERS``."""
    if isinstance(sampler, Sampler):
        return sampler
    if isinstance(sampler, str) and sampler in SAMPLERS:
        return SAMPLERS[sampler]()
    raise ValueError(f"DatasetMapper: sampler must be one of {sorted(SAMPLERS)} or a Sampler instance, but received {sampler!r}.")


class DatasetMapper(Mapping):
    """Layer name -> aligned array (numpy array or tensor; first axis = samples).

    ``sampler``: "shuffled" (default), "sequential", "class_balanced" or a
    :class:`Sampler`. All arrays must have the same length. The names are
    checked against the network when a trainer starts. ``weights`` maps
    trained output names to per-sample weights (one non-negative number per
    sample): each sample's loss counts that much (Keras' ``sample_weight``;
    see ``mariana.costs.Cost.weighted``).

    Memory-mapped arrays (``np.load(path, mmap_mode="r")``) stay on disk: the
    Trainer reads each batch's rows from the file (``mariana.training.data.file_data``)
    and the run directory records their path, size and sha256 instead of a
    copy. In-memory arrays are copied into the run directory so ``resume(run_dir)``
    alone works; ``copy_data=False`` skips that copy, and resuming then needs the
    same data passed again (checked against its hash).

    A map-style ``torch.utils.data.Dataset`` goes through :meth:`from_dataset`,
    which names where each layer's value lies in an item (``inp=0, out=1`` for
    ``(x, y)`` tuples); see there.
    """

    def __init__(self, /, sampler: str | Sampler = "shuffled", weights: Mapping[str, Any] | None = None, copy_data: bool = True,
                 **arrays: Any) -> None:
        if not arrays:
            raise ValueError("DatasetMapper: expected layer_name=array keywords (e.g. inp=x, out=y), but received none.")
        converted: dict[str, np.ndarray | torch.Tensor | DatasetColumn] = {}
        for key, value in arrays.items():
            if isinstance(value, DatasetColumn):
                converted[key] = value
                continue
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
            converted[key] = value
        lengths = {key: int(value.shape[0]) for key, value in converted.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"DatasetMapper: arrays must be aligned (same length on axis 0), but received lengths {lengths}.")
        if next(iter(lengths.values())) == 0:
            raise ValueError(f"DatasetMapper: expected at least one sample, but received empty arrays {sorted(lengths)}.")
        self._arrays = converted
        #: The arrays kept out of memory, read batch by batch: FileRows of memory-mapped files, columns of torch Datasets.
        files = FileRows.of_arrays({key: value for key, value in converted.items() if is_file_backed(value)})
        self.files: dict[str, FileRows | DatasetColumn] = {
            key: files.get(key, value) for key, value in converted.items() if key in files or isinstance(value, DatasetColumn)}
        self.datasets = list({id(c.rows): c.rows for c in self.files.values() if isinstance(c, DatasetColumn)}.values())
        self.copy_data = bool(copy_data)
        self.weights = _sample_weights(weights, len(self))
        self.sampler = as_sampler(sampler)
        self._hash: str | None = None
        self._file_records: dict[str, dict] | None = None
        self._stream_names: list[str] = []  # the streams check_against saw, to name them in a Dataset's errors

    @classmethod
    def from_dataset(cls, dataset: Any, /, sampler: str | Sampler = "shuffled", weights: Mapping[str, Any] | None = None,
                     **fields: int | str) -> DatasetMapper:
        """A mapper over a map-style ``torch.utils.data.Dataset``: ``layer_name=field`` for each layer it feeds.

        ``field`` is a position when ``dataset[i]`` returns a tuple or list (``inp=0,
        out=1`` for ``(x, y)``, as torchvision's datasets do), a key when it returns a
        dict (``inp="image"``). The Trainer gathers each batch's items
        (``dataset[i]`` for each index, or ``dataset.__getitems__(indices)`` when the
        dataset has it) on a background thread while the previous batch trains, so
        only a batch or two are ever in memory. Training on a Dataset is
        bit-identical to training on arrays holding the same rows.

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
        rows = DatasetRows(dataset, fields)
        return cls(sampler=sampler, weights=weights, copy_data=False, **rows.columns)

    def __getitem__(self, key: str) -> np.ndarray | torch.Tensor | DatasetColumn:
        return self._arrays[key]

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        """The number of samples (not of keys)."""
        return int(next(iter(self._arrays.values())).shape[0])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self._arrays.items())
        return f"DatasetMapper({shapes}, sampler={type(self.sampler).__name__})"

    def numpy(self, key: str) -> np.ndarray:
        """The array ``key`` as a C-contiguous numpy array (a copy only when needed)."""
        value = self._arrays[key]
        if isinstance(value, DatasetColumn):  # the whole column, read from the dataset a slice at a time
            return np.concatenate([value.take(np.arange(low, min(low + 4096, len(value)))) for low in range(0, len(value), 4096)])
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        return np.ascontiguousarray(value)

    def content_hash(self) -> str:
        """sha256 over every key, dtype, shape and byte of data (cached)."""
        if self._hash is None:
            digest = hashlib.sha256()
            for key, array in sorted(self._memory_arrays().items()):
                digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
                digest.update(array.data)
            for key, record in sorted(self.file_records().items()):  # file-backed: the file's own sha256, read in blocks
                digest.update(f"{key}|file|{record['dtype']}|{record['shape']}|{record['offset']}|{record['sha256']}|".encode())
            for record in self.dataset_records():  # a Dataset cannot be hashed: its class, length and layout stand for it
                digest.update(f"dataset|{json.dumps(record, sort_keys=True)}|".encode())
            self._hash = digest.hexdigest()
        return self._hash

    def _memory_arrays(self) -> dict[str, np.ndarray]:
        return {**{key: self.numpy(key) for key in self._arrays if key not in self.files},
                **{f"{WEIGHTS}{key}": w for key, w in self.weights.items()}}

    def arrays(self) -> dict[str, np.ndarray]:
        """The in-memory arrays as numpy, for the run directory's copy of the data (none with ``copy_data=False``)."""
        return self._memory_arrays() if self.copy_data else {}

    def file_records(self) -> dict[str, dict]:
        """Path, size, sha256 and layout of each file-backed array (computed once)."""
        if self._file_records is None:
            self._file_records = {key: rows.describe() for key, rows in self.files.items() if isinstance(rows, FileRows)}
        return self._file_records

    def dataset_records(self) -> list[dict]:
        """Class, length and layout of each torch Dataset the mapper reads (what stands in for its hash)."""
        return [rows.describe() for rows in self.datasets]

    def rows(self, key: str, indices: np.ndarray) -> np.ndarray:
        """The rows ``indices`` of array ``key`` (read from its file when it is file-backed)."""
        return self.files[key].take(indices) if key in self.files else self.numpy(key)[indices]

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The rows ``indices`` of every array (each Dataset's items read once for all the layers they feed)."""
        gathered: dict[str, np.ndarray] = {}
        for rows in self.datasets:
            gathered.update(rows.take(indices))
        return {key: gathered[key] if key in gathered else self.rows(key, indices) for key in self._arrays}

    def check_against(self, stream: str, inputs: list[str], targets: list[str], layers: list[str]) -> None:
        """``ValueError`` naming the key when this mapper does not fit the network's inputs/targets."""
        expected = inputs + targets
        self._stream_names = list(dict.fromkeys([*self._stream_names, stream]))
        for rows in self.datasets:  # a mapper used as train and valid reads rows for both: name both
            rows.stream = " and ".join(repr(name) for name in self._stream_names)
        for key in self._arrays:
            if key not in layers:
                raise ValueError(
                    f"DatasetMapper {stream!r}: key {key!r} is not a layer of this network; expected the names {expected}, "
                    f"but received keys {sorted(self._arrays)}."
                )
            if key not in expected:
                raise ValueError(
                    f"DatasetMapper {stream!r}: layer {key!r} is neither an Input nor a trained output; expected the names "
                    f"{expected}, but received keys {sorted(self._arrays)}."
                )
        missing = [name for name in expected if name not in self._arrays]
        if missing:
            raise ValueError(
                f"DatasetMapper {stream!r}: missing {missing}; this training needs inputs {inputs} and targets {targets}, "
                f"but received keys {sorted(self._arrays)}."
            )

    def describe(self) -> dict:
        """JSON summary kept in the run directory."""
        return {
            "length": len(self),
            "arrays": {k: {"dtype": str(self.numpy(k).dtype if isinstance(v, torch.Tensor) else v.dtype), "shape": list(v.shape)}
                       for k, v in self._arrays.items()},
            "sampler": serialize(self.sampler),
            "weights": sorted(self.weights),
            "files": self.file_records(),
            "datasets": self.dataset_records(),
            "copied": self.copy_data,
            "sha256": self.content_hash(),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], description: dict) -> DatasetMapper:
        """Rebuild a mapper from the run directory's copy and its description."""
        weights = {key[len(WEIGHTS):]: value for key, value in arrays.items() if key.startswith(WEIGHTS)}
        arrays = {key: value for key, value in arrays.items() if not key.startswith(WEIGHTS)}
        for key, record in description.get("files", {}).items():
            arrays[key] = FileRows.reopen(record, f"DatasetMapper {key!r}")
        mapper = cls(sampler=deserialize(description["sampler"], Sampler), weights=weights or None, **arrays)
        if mapper.content_hash() != description["sha256"]:
            raise ValueError(
                f"The run directory's data copy does not match its recorded hash: expected {description['sha256']}, "
                f"but the files hash to {mapper.content_hash()}. The copy is damaged."
            )
        return mapper


def as_mapper(data: Any, stream: str) -> DatasetMapper | None:
    """A DatasetMapper from a mapper, a dict of arrays, or None."""
    if data is None or isinstance(data, DatasetMapper):
        return data
    if isinstance(data, Mapping):
        return DatasetMapper(sampler="shuffled" if stream == "train" else "sequential", **data)
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
