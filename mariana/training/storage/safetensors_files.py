"""safetensors files written in chunks: a header, then views of each array's bytes, never one joined copy.

``safetensors.numpy.save`` and ``safetensors.torch.save`` build the whole file
as one bytes object while holding the GIL. The run directory writes its data
copy and its checkpoints on a background thread; streaming views instead
(hashing and writing them release the GIL) keeps that thread from holding up
the training steps, and needs no second copy of the data in memory. The files
are plain safetensors: ``safetensors.torch.load`` and ``load_file`` read them.

Example:
    >>> import torch
    >>> from safetensors.torch import load
    >>> parts = tensor_parts({"w": torch.ones(2), "n": torch.tensor([3])}, {"note": "hi"})
    >>> sorted((name, t.tolist()) for name, t in load(b"".join(bytes(part) for part in parts)).items())
    [('n', [3]), ('w', [1.0, 1.0])]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from safetensors.torch import save as save_tensors

from mariana.files import atomic_write

NUMPY_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "int16": "I16",
                "int8": "I8", "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64", "bool": "BOOL"}
TORCH_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
                torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def header(entries: dict[str, tuple[str, list[int], int]], metadata: dict[str, str] | None = None) -> bytes:
    """The file's first chunk for ``entries`` (name: safetensors dtype, shape, bytes), stored in that order."""
    layout: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape, size) in entries.items():
        layout[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(layout, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # safetensors aligns the data to 8 bytes
    return len(encoded).to_bytes(8, "little") + encoded


def tensor_parts(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> list:
    """The chunks of a safetensors file of CPU ``tensors``: the header, then a view of each tensor's bytes.

    Another dtype (or a big-endian machine) takes safetensors' own way: one bytes chunk.
    """
    if sys.byteorder != "little" or any(tensor.dtype not in TORCH_DTYPES for tensor in tensors.values()):
        return [save_tensors(tensors, metadata=metadata)]
    tensors = {name: tensor.contiguous() for name, tensor in tensors.items()}
    entries = {name: (TORCH_DTYPES[t.dtype], list(t.shape), t.numel() * t.element_size()) for name, t in tensors.items()}
    return [header(entries, metadata), *(t.reshape(-1).view(torch.uint8).numpy().data for t in tensors.values())]


def write_safetensors(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a safetensors file, atomically, streaming each array's bytes (no in-memory copy of the file)."""
    arrays = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    entries = {name: (NUMPY_DTYPES[array.dtype.name], list(array.shape), array.nbytes) for name, array in arrays.items()}

    def write(file: BinaryIO) -> None:
        file.write(header(entries))
        for array in arrays.values():
            file.write(array.reshape(-1).view(np.uint8).data)  # a view: no copy

    atomic_write(path, write)
