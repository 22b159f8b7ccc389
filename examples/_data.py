"""Where the examples and benchmarks find MNIST and Fashion-MNIST, as images.

``mariana.datasets`` reads the idx files: from ``$MARIANA_DATA`` when it is
set, else from ``../shared/data/<name>`` beside this repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mariana.datasets import fashion_mnist, mnist

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
MNIST, FASHION = "mnist", "fashion-mnist"
_READERS = {MNIST: mnist, FASHION: fashion_mnist}


def load(name: str) -> dict[str, dict[str, np.ndarray]]:
    """``{"train": {"x", "y"}, "test": {"x", "y"}}``; x float32 ``(n, 1, 28, 28)`` in [0, 1], y int64."""
    folder = None if os.environ.get("MARIANA_DATA") else SHARED_DATA / name
    data = _READERS[name](folder)
    for split in data.values():
        split["x"] = split["x"].reshape(-1, 1, 28, 28)
    return data
