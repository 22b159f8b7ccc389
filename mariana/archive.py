"""Reading members of a stranger's zip file at bounded cost: sizes checked before inflating, caps, strict JSON, safetensors.

Nothing here trusts what a file declares: a member's sizes are compared with
the file's own size and with a plausible compression ratio before anything is
inflated; reads stop at a cap whatever a header claims; JSON refuses duplicate
keys; a safetensors header is checked against the tensors expected before the
data is read. ``mariana.persistence`` reads ``.mar`` files through it.

Example:
    >>> import io, zipfile
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as archive: archive.writestr("a.json", '{"x": 1}')
    >>> archive = zipfile.ZipFile(buffer)
    >>> read_json(archive, archive.getinfo("a.json"), "demo.zip", 100)
    {'x': 1}
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from typing import Any

import torch
from safetensors.torch import load as safetensors_load

#: Largest JSON member read (bytes).
MAX_JSON_BYTES = 32 * 2**20

#: Largest safetensors header (bytes).
MAX_HEADER_BYTES = 16 * 2**20

#: this many times its compressed size, beyond :data:`SMALL_MEMBER_BYTES`, is refused as a zip bomb.
MAX_COMPRESSION_RATIO = 100

#: Tensors barely compress (Mariana stores them uncompressed): a tensor member that inflates more than
SMALL_MEMBER_BYTES = 2**20

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def check_sizes(info: zipfile.ZipInfo, where: str, archive_size: int) -> None:
    """Refuse, before inflating anything, a member whose compressed bytes the file cannot hold, or a tensor
    member that would inflate implausibly (a zip bomb): real tensors barely compress."""
    name = info.filename
    if info.header_offset + info.compress_size > archive_size:
        raise ValueError(f"{where}: member {name!r} claims {info.compress_size} compressed bytes at offset {info.header_offset}, "
                         f"but the file holds only {archive_size} bytes; it is corrupt or forged.")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise ValueError(f"{where}: member {name!r} is stored uncompressed, yet claims {info.compress_size} bytes in the file "
                         f"and {info.file_size} once read; it is corrupt or forged.")
    if (name.endswith(".safetensors") and info.file_size > SMALL_MEMBER_BYTES
            and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)):
        raise ValueError(
            f"{where}: member {name!r} would inflate {info.compress_size} bytes into {info.file_size} "
            f"({info.file_size / max(info.compress_size, 1):.0f}:1); tensors never compress beyond {MAX_COMPRESSION_RATIO}:1, "
            f"so this is a zip bomb or not a tensor file. Nothing was inflated. A genuine file re-zipped with its tensors "
            f"stored uncompressed (as Mariana writes them) loads."
        )


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, where: str) -> bytes:
    """The member's bytes, refusing more than ``cap`` whatever its header claims (zip bombs)."""
    if info.file_size > cap:
        raise ValueError(f"{where}: member {info.filename!r} is {info.file_size} bytes, over the {cap}-byte limit.")
    try:
        with archive.open(info) as stream:
            data = stream.read(cap + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise ValueError(f"{where}: member {info.filename!r} is corrupt or truncated ({error}).") from None
    if len(data) > cap:
        raise ValueError(f"{where}: member {info.filename!r} expands past the {cap}-byte limit.")
    return data


def read_json(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, max_bytes: int) -> Any:
    data = read_member(archive, info, min(MAX_JSON_BYTES, max_bytes), where)
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as error:
        raise ValueError(f"{where}: member {info.filename!r} is not valid JSON ({error}).") from None


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object's pairs as a dict; ``ValueError`` naming a key that appears twice (json.loads keeps the last)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        raise ValueError(f"duplicate keys in an object: {next(key for key, _ in pairs if key in seen or seen.add(key))!r}")
    return result


def read_tensors(archive: zipfile.ZipFile, info: zipfile.ZipInfo, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]],
                  where: str, max_bytes: int) -> dict[str, torch.Tensor]:
    """Check the safetensors header against ``expected`` before reading the data, then load it."""
    size = sum(DTYPE_SIZES[dtype] * math.prod(shape) for dtype, shape in expected.values())
    if size > max_bytes:  # before inflating even the header
        raise ValueError(f"{where}: member {info.filename!r} holds tensors of {size} bytes, over the {max_bytes}-byte limit "
                         f"(load(..., max_bytes=) sets it).")
    header_bytes = read_header(archive, info, where, max_bytes)
    if info.file_size != 8 + len(header_bytes) + size:
        raise ValueError(f"{where}: member {info.filename!r} is {info.file_size} bytes, but its tensors need {8 + len(header_bytes) + size}.")
    check_header(header_bytes, expected, info.filename, where)
    data = read_member(archive, info, min(max_bytes, 8 + len(header_bytes) + size), where)
    try:
        return safetensors_load(data)
    except Exception as error:  # safetensors raises its own SafetensorError for malformed data
        raise ValueError(f"{where}: member {info.filename!r} is not valid safetensors ({error}).") from None


DTYPE_SIZES = {dtype: torch.empty((), dtype=dtype).element_size() for dtype in DTYPES.values()}


def read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, max_bytes: int) -> bytes:
    try:
        with archive.open(info) as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                raise ValueError(f"{where}: member {info.filename!r} is too short for safetensors.")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_HEADER_BYTES, max_bytes) or length > info.file_size - 8:
                raise ValueError(f"{where}: member {info.filename!r} declares a {length}-byte header, which it cannot hold.")
            header = stream.read(length)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
        raise ValueError(f"{where}: member {info.filename!r} is corrupt or truncated ({error}).") from None
    if len(header) != length:
        raise ValueError(f"{where}: member {info.filename!r} is truncated inside its header.")
    return header


def parse_header(header_bytes: bytes, member: str, where: str) -> dict:
    """A safetensors JSON header as a dict of tensor entries (metadata dropped); ValueError if malformed."""
    try:
        header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"{where}: member {member!r} has a malformed safetensors header ({error}).") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: member {member!r} has a malformed safetensors header.")
    header.pop("__metadata__", None)
    return header


def check_header(header_bytes: bytes, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]], member: str, where: str) -> None:
    header = parse_header(header_bytes, member, where)
    if set(header) != set(expected):
        raise ValueError(f"{where}: member {member!r} holds tensors {sorted(header)}, but expected {sorted(expected)}.")
    for key, (dtype, shape) in expected.items():
        entry = header[key]
        if not isinstance(entry, dict) or entry.get("dtype") != DTYPE_NAMES.get(dtype) or entry.get("shape") != list(shape):
            raise ValueError(f"{where}: member {member!r}: tensor {key!r} is {entry!r}, but expected {DTYPE_NAMES.get(dtype)} {list(shape)}.")


