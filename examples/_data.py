"""A small idx (MNIST format) reader for the examples.

Temporary: ``mariana.datasets.mnist(path)`` / ``fashion_mnist(path)`` replace it once merged.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MNIST = HERE.parent.parent / "shared" / "data" / "mnist"
FASHION = HERE.parent.parent / "shared" / "data" / "fashion-mnist"


def read_idx(path: Path, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as stream:
        data = stream.read()
    found, count = struct.unpack(">II", data[:8])
    if found != magic:
        raise ValueError(f"{path}: expected idx magic {magic}, found {found}.")
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    return np.frombuffer(data, dtype=np.uint8, offset=8).reshape(count)


def load(directory: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{"train": {"x", "y"}, "test": {"x", "y"}}``; x float32 (n, 1, 28, 28) in [0, 1], y int64."""
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(directory / f"{prefix}-images-idx3-ubyte.gz", 2051)
        y = read_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", 2049)
        out[split] = {"x": (x.astype(np.float32) / 255.0)[:, None], "y": y.astype(np.int64)}
    return out
