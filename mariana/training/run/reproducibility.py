"""What a bit-identical resume depends on: every random state (Python, NumPy, torch, CUDA) and the machine, library
versions and thread count a run used.

Example:
    >>> import torch
    >>> state = capture_rng(); first = torch.rand(1)
    >>> restore_rng(state); bool(torch.rand(1) == first)
    True
"""

from __future__ import annotations

import platform
import random

import numpy as np
import torch


def capture_rng() -> dict:
    """Python, NumPy and torch (CPU and CUDA) random states."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def environment() -> dict:
    """What bit-identical resumption depends on: machine, library versions, thread count."""
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "node": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
    }
