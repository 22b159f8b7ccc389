"""Checkpoints: atomic files in a run directory, safetensors for tensors and JSON for the rest.

No pickle anywhere: a checkpoint is one ``.safetensors`` file whose header
metadata carries the JSON state (positions, RNG states, history, stop and
recorder state) and whose tensors carry the weights, optimizer state and
any other tensor the state refers to. Files get new names; the ``latest``
and ``best`` pointers are small JSON files replaced atomically, holding the
checkpoint's sha256 so a damaged file is never taken for a good one.

Example:
    >>> import tempfile, torch
    >>> from mariana.training.checkpoint import CheckpointStore
    >>> store = CheckpointStore(tempfile.mkdtemp())
    >>> name = store.save({"w": torch.ones(2)}, {"epoch": 1}, epoch=1, step=0)
    >>> tensors, state = store.load("latest")
    >>> state["epoch"], tensors["w"].tolist()
    (1, [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from mariana.files import atomic_write

FORMAT_VERSION = 1
_NAME = re.compile(r"ckpt-(\d{6})-e(\d+)-s(\d+)\.safetensors\Z")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`mariana.files.atomic_write`: temp file, fsync, rename, fsync)."""
    atomic_write(path, lambda file: file.write(data))


def write_json(path: str | os.PathLike, value: Any) -> None:
    write_bytes(path, json.dumps(value, indent=1, sort_keys=True).encode())


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


# -- nested state <-> (JSON, tensors) ---------------------------------------------------
def split_tensors(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """``value`` with every tensor replaced by ``{"__tensor__": key}``; the tensors go into ``tensors``."""
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


# -- random states ------------------------------------------------------------------------
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


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CheckpointStore:
    """The ``checkpoints/`` folder of a run directory plus its ``latest`` and ``best`` pointers."""

    def __init__(self, run_dir: str | os.PathLike, keep: int = 3) -> None:
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep_checkpoints must be an int >= 1, but received {keep!r}.")
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / "checkpoints"
        self.keep = keep

    def _pointer(self, which: str) -> Path:
        return self.run_dir / which

    def names(self) -> list[str]:
        """Complete checkpoint files, oldest first (temp files of interrupted writes are ignored)."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if _NAME.match(p.name))

    def _next_name(self, epoch: int, step: int) -> str:
        names = self.names()
        counter = int(_NAME.match(names[-1]).group(1)) + 1 if names else 1
        return f"ckpt-{counter:06d}-e{epoch}-s{step}.safetensors"

    def save(self, tensors: dict[str, torch.Tensor], state: dict, epoch: int, step: int,
             best: bool = False, prune: bool = True) -> str:
        """Write a new checkpoint, then point ``latest`` (and ``best`` if asked) at it; returns its name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = self._next_name(epoch, step)
        document = {"format": FORMAT_VERSION, "state": state}
        data = save_tensors(tensors, metadata={"mariana": json.dumps(document)})
        write_bytes(self.folder / name, data)
        pointer = {"checkpoint": name, "sha256": hashlib.sha256(data).hexdigest(), "epoch": epoch, "step": step}
        write_json(self._pointer("latest"), pointer)
        if best:
            write_json(self._pointer("best"), pointer)
        if prune:
            self.prune()
        return name

    def prune(self) -> None:
        """Remove all but the last ``keep`` checkpoints and the ones ``latest``/``best`` point at."""
        names = self.names()
        protected = set(names[-self.keep:])
        for which in ("latest", "best"):
            if self._pointer(which).exists():
                protected.add(read_json(self._pointer(which))["checkpoint"])
        for name in names:
            if name not in protected:
                (self.folder / name).unlink(missing_ok=True)
        for temp in self.folder.glob(".ckpt-*.tmp"):
            temp.unlink(missing_ok=True)

    def load(self, which: str = "latest") -> tuple[dict[str, torch.Tensor], dict]:
        """The (tensors, state) of the checkpoint a pointer names, its sha256 checked first."""
        pointer_path = self._pointer(which)
        if not pointer_path.exists():
            raise FileNotFoundError(f"No checkpoint pointer {str(pointer_path)!r}: this run directory holds no checkpoint yet.")
        pointer = read_json(pointer_path)
        name = pointer.get("checkpoint") if isinstance(pointer, dict) else None
        if not isinstance(name, str) or not _NAME.match(name) or not isinstance(pointer.get("sha256"), str):
            raise ValueError(f"Checkpoint pointer {str(pointer_path)!r} is malformed: expected a checkpoint name like "
                             f"'ckpt-000001-e1-s0.safetensors' and its sha256, but read {pointer!r}.")
        path = self.folder / name
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != pointer["sha256"]:
            raise ValueError(f"Checkpoint {str(path)!r} is damaged: expected sha256 {pointer['sha256']}, but the file hashes to {digest}.")
        header_size = int.from_bytes(data[:8], "little")
        document = json.loads(json.loads(data[8:8 + header_size])["__metadata__"]["mariana"])
        if document.get("format") != FORMAT_VERSION:
            raise ValueError(f"Checkpoint {str(path)!r} has format {document.get('format')!r}; this Mariana reads format {FORMAT_VERSION}.")
        return load_tensors(data), document["state"]
