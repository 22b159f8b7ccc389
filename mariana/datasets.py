"""Data sets: scikit-learn's embedded digits (no download needed).

Example:
    >>> from mariana.datasets import digits
    >>> data = digits()
    >>> data["train"]["x"].shape[1]
    64
"""

from __future__ import annotations

import numpy as np


def digits(test_fraction: float = 0.2, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """The 8x8 digits (1797 images) as float32 in [0, 1], split into train/test.

    Returns ``{"train": {"x", "y"}, "test": {"x", "y"}}``; ``x`` is ``(n, 64)``.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round(len(x) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    return {"train": {"x": x[train], "y": y[train]}, "test": {"x": x[test], "y": y[test]}}
