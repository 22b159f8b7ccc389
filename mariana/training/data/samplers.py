"""Samplers: the order in which a mapper's samples are visited each epoch.

A sampler owns a NumPy ``Generator`` whose state is saved with every
checkpoint, so a resumed run visits the same orders.

Example:
    >>> import numpy as np
    >>> from mariana.training import DatasetMapper
    >>> mapper = DatasetMapper(inp=np.zeros((4, 2)), out=np.array([0, 1, 0, 1]), sampler=Shuffled(seed=0))
    >>> sorted(mapper.sampler.epoch_order(mapper).tolist())
    [0, 1, 2, 3]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mariana.checks import is_int
from mariana.registry import Configurable

if TYPE_CHECKING:
    from mariana.training.data.mappers import DatasetMapper


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
