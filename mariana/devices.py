"""Devices: where a network and its data live, named as users name them ("auto", "cpu", "cuda", "cuda:1", "mps").

``resolve_device`` turns a name into a ``torch.device`` and refuses one this
machine does not have, before anything is moved or written.
``keep_on_device`` decides whether a whole data stream is copied to the
device once (fast: each step only slices it) or stays in (pinned) host
memory and moves batch by batch: a stream is kept on an accelerator when it
takes at most half of the device's free memory.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")
    Traceback (most recent call last):
    ...
    ValueError: device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', but received 'tpu'.
"""

from __future__ import annotations

import re
from typing import Any

import torch

DEVICE_NAMES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
_CUDA = re.compile(r"cuda(?::(\d+))?\Z")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(spec: Any) -> torch.device:
    """The ``torch.device`` a name means here; "auto" picks CUDA, then MPS, then the CPU.

    ``ValueError`` for an unknown name or a device this machine lacks ("cuda" without CUDA).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise TypeError(f"device must be a str such as 'auto' or 'cuda:0', or a torch.device, but received {type(spec).__name__}.")
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())  # indexed: tensors report cuda:0, never bare cuda
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not mps_available():
            raise ValueError("device='mps' needs Apple's Metal backend, which this machine does not have; use device='auto' or 'cpu'.")
        return torch.device("mps")
    match = _CUDA.match(spec)
    if match is None:
        raise ValueError(f"device must be {DEVICE_NAMES}, but received {spec!r}.")
    if not torch.cuda.is_available():
        available = "'cpu', 'mps'" if mps_available() else "'cpu'"
        raise ValueError(f"device={spec!r} needs CUDA, which this machine does not have (torch {torch.__version__}, "
                         f"torch.cuda.is_available() is False); available here: {available}, or 'auto' to pick the best of them.")
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ValueError(f"device={spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0.")
    return torch.device("cuda", index)


def free_memory(device: torch.device) -> int | None:
    """Free bytes on an accelerator (None for the CPU, or when the backend cannot tell)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return None


def keep_on_device(nbytes: int, device: torch.device, free: int | None = None) -> bool:
    """Whether a stream of ``nbytes`` is copied to ``device`` once: always on the CPU; on an accelerator
    when it takes at most half of its free memory (``free``: measured when not given)."""
    if device.type == "cpu":
        return True
    free = free_memory(device) if free is None else free
    return free is not None and nbytes <= free // 2
