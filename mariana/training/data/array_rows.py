"""Rows held in memory: numpy arrays or tensors, the row source behind ``DatasetMapper(inp=x, out=y)``.

The Trainer converts these once per run (they are ``resident``), never batch
by batch, and the run directory copies them, so ``resume(run_dir)`` alone works.

Example:
    >>> import numpy as np
    >>> rows = ArrayRows({"inp": np.arange(6.0).reshape(3, 2), "out": np.array([0, 1, 0])})
    >>> rows.take(np.array([2, 0]))["inp"].tolist(), len(rows), rows.stored
    ([[4.0, 5.0], [0.0, 1.0]], 3, 'copy')
"""

from __future__ import annotations

import numpy as np
import torch

from mariana.training.data.sources import RowSource


class ArrayRows(RowSource):
    """In-memory arrays (numpy or tensors), aligned on their first axis."""

    kind = "arrays"
    stored = "copy"
    resident = True

    def __init__(self, arrays: dict[str, np.ndarray | torch.Tensor]) -> None:
        self.arrays = dict(arrays)
        self.keys = tuple(self.arrays)

    def __len__(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    def column(self, key: str) -> np.ndarray:
        """The array ``key`` as a C-contiguous numpy array (a copy only when needed)."""
        value = self.arrays[key]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        return np.ascontiguousarray(value)

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {key: self.column(key)[indices] for key in self.keys}

    def layouts(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        return {key: (self.column(key).dtype, tuple(value.shape[1:])) for key, value in self.arrays.items()}
