"""Mariana: the cutest deep learning framework.

A network is a graph of layers wired with ``>``; each layer carries its own
abstractions (activation, regularizations, decorators, initializations,
learning scenari, cost). PyTorch is the engine.

Example:
    >>> import mariana as mar
    >>> import mariana.layers as ML
    >>> mar.seed(0)
    >>> net = ML.Input(784, name="inp") > ML.Hidden(500, name="hid") > ML.SoftmaxClassifier(10, name="out")
    >>> isinstance(net, mar.Network), list(net.layers)
    (True, ['inp', 'hid', 'out'])
"""

from __future__ import annotations

import importlib
from typing import Any

from mariana import registry
from mariana.about import __version__
from mariana.registry import register

version = __version__

# Loaded on first use, so that `import mariana` (and the command line's --help) does not import torch.
_LAZY = {"Network": "mariana.network", "load": "mariana.persistence", "seed": "mariana.seeding"}

__all__ = ["Network", "load", "register", "registry", "seed", "version", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mariana' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
