"""A nested state (dicts, lists, JSON values, tensors) split into JSON and named tensors, and joined back: how a
checkpoint stores the Trainer's state in one safetensors file.

Example:
    >>> import torch
    >>> tensors = {}
    >>> document = split_tensors({"step": 3, "w": torch.ones(2)}, tensors, "state")
    >>> document, sorted(tensors)
    ({'step': 3, 'w': {'__tensor__': 'state/w'}}, ['state/w'])
    >>> join_tensors(document, tensors)["w"].tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_JSON_SCALARS = (bool, int, float, str, type(None))


def split_tensors(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """``value`` with every tensor replaced by ``{"__tensor__": key}``; the tensors go into ``tensors``."""
    if type(value) in _JSON_SCALARS:
        return value
    if isinstance(value, (list, tuple)) and all(type(item) in _JSON_SCALARS for item in value):
        return list(value)  # the random states' long lists of ints: one check each, not a call each
    if isinstance(value, torch.Tensor):
        key = prefix
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"Checkpoint state keys must be str, but {prefix!r} has key {key!r}.")
        return {key: split_tensors(item, tensors, f"{prefix}/{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [split_tensors(item, tensors, f"{prefix}/{i}") for i, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"Checkpoint state at {prefix!r}: cannot store {type(value).__name__} (only JSON values and tensors).")


def join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`split_tensors`."""
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        return {key: join_tensors(item, tensors) for key, item in value.items()}
    if isinstance(value, list):
        return [join_tensors(item, tensors) for item in value]
    return value
