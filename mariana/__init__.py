"""Mariana: the cutest deep learning framework.

A network is a graph of layers wired with ``>``; each layer carries its own
abstractions (activation, regularizations, decorators, initializations,
learning scenari, cost). PyTorch is the engine.

Example:
    >>> import mariana as mar
    >>> import mariana.layers as ML
    >>> mar.seed(0)
    >>> net = ML.Input(784, name="inp") > ML.Hidden(500, name="hid") > ML.SoftmaxClassifier(10, name="out")
    >>> list(net.layers)
    ['inp', 'hid', 'out']
"""

from __future__ import annotations

import random
from typing import Any

from mariana import registry
from mariana.registry import register

__version__ = "0.1.0"
version = __version__

__all__ = ["load", "register", "registry", "seed", "version", "__version__"]


def seed(n: int) -> None:
    """Seed Python, NumPy and PyTorch (and Mariana's samplers, which draw from them)."""
    import numpy as np
    import torch

    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"seed expects a non-negative int, but received {n!r}.")
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)


def load(path: Any) -> Any:
    """Load a network saved with ``net.save(path)`` (a ``.mar`` file)."""
    from mariana.persistence import load as _load

    return _load(path)
