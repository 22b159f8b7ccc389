"""Optuna is an optional dependency: one clear error naming the extra when it is missing.

Example:
    >>> optuna = import_optuna()
    >>> optuna.__name__
    'optuna'
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL = 'pip install "mariana[tune]"'


def import_optuna() -> ModuleType:
    """The ``optuna`` module; ``ImportError`` naming ``pip install "mariana[tune]"`` when it is not installed."""
    try:
        return importlib.import_module("optuna")
    except ImportError as error:
        raise ImportError(f"mariana.tuning runs its searches on Optuna, which is not installed ({error}). "
                          f"Install it with: {INSTALL}") from None
