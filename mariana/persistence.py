"""The ``.mar`` format: a zip of JSON and safetensors members, written atomically, read safely.

Members (nothing else is accepted):

* ``architecture.json``: format name and version, ``Network.get_config()``,
  and the name, dtype and shape of every tensor in the weights;
* ``weights.safetensors``: the whole ``net.module.state_dict()`` (params and buffers);
* ``optimizer.safetensors`` and ``optimizer.json`` (optional): per-param
  optimizer tensors keyed ``<layer>.<param>/<state-key>``, the scalar
  entries, and each learning scenario's step count;
* ``log.json``: the generation log.

Loading never runs code from the file: no pickle, class names resolve only
through :mod:`mariana.registry`, every member is size-capped and read into
memory (never extracted), and tensor shapes and dtypes are checked against
the architecture before any weight is allocated.

Example:
    >>> import os, tempfile, numpy as np, mariana as mar, mariana.layers as ML
    >>> mar.seed(0)
    >>> net = ML.Input(3, name="inp") > ML.Regression(2, name="out")
    >>> path = os.path.join(tempfile.mkdtemp(), "model.mar")
    >>> net.save(path)
    >>> clone = mar.load(path)
    >>> x = np.ones((1, 3), dtype="float32")
    >>> bool((clone.propagate("out", inp=x) == net.propagate("out", inp=x)).all())
    True
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from mariana.about import __version__
from mariana.checks import is_int
from mariana.files import as_path, atomic_write
from mariana.network import Network

FORMAT = "mariana"
FORMAT_VERSION = 1

ARCHITECTURE = "architecture.json"
WEIGHTS = "weights.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
LOG = "log.json"
REQUIRED = (ARCHITECTURE, WEIGHTS, LOG)
OPTIONAL = (OPTIMIZER_TENSORS, OPTIMIZER_JSON)

#: Largest JSON member read (bytes).
MAX_JSON_BYTES = 32 * 2**20
#: Largest tensor member read by default (bytes); ``load(path, max_bytes=...)`` changes it.
MAX_TENSOR_BYTES = 8 * 2**30
#: Largest safetensors header (bytes).
MAX_HEADER_BYTES = 16 * 2**20

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


# -- saving -----------------------------------------------------------------------------
def save(network: Any, path: str | os.PathLike, *, optimizer: bool = True) -> None:
    """Write ``network`` to ``path`` atomically (temp file, fsync, rename, fsync of the directory).

    ``optimizer=False`` leaves out the optimizer state (momentum, Adam moments,
    step counts). Either the whole file appears under ``path`` or nothing
    changes there.
    """
    if not isinstance(network, Network):
        raise TypeError(f"save expects a mariana Network, but received {type(network).__name__}.")
    path = as_path(path, "save")
    weights = _host_tensors(network.module.state_dict(), "weights")
    architecture = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mariana_version": __version__,
        "torch_version": torch.__version__,
        "network": network.get_config(),
        "weights": {key: {"dtype": _DTYPE_NAMES[t.dtype], "shape": list(t.shape)} for key, t in weights.items()},
    }
    members = {ARCHITECTURE: _json_bytes(architecture), WEIGHTS: safetensors_save(weights)}
    optimizer_state = network.optimizer_state_dict()
    if optimizer:
        tensors, scalars = _split_optimizer_state(optimizer_state)
        members[OPTIMIZER_TENSORS] = safetensors_save(_host_tensors(tensors, "optimizer state"))
        members[OPTIMIZER_JSON] = _json_bytes(scalars)
    event = {"time": time.time(), "event": "save", "path": str(path), "optimizer": bool(optimizer),
             "steps": {name: state["steps"] for name, state in optimizer_state["scenari"].items()}}
    members[LOG] = _json_bytes(network.log + [event])
    atomic_write(path, lambda handle: _write_zip(handle, members))
    network.log.append(event)


def _host_tensors(tensors: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors; a tensor sharing memory with an earlier one is copied (safetensors refuses aliases)."""
    result: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in tensors.items():
        if tensor.dtype not in _DTYPE_NAMES:
            raise TypeError(f"Cannot save {what} {key!r} of dtype {tensor.dtype}; supported: {sorted(map(str, _DTYPE_NAMES))}.")
        tensor = tensor.detach().cpu().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if storage in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(storage)
        result[key] = tensor
    return result


def _write_zip(handle: Any, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(handle, "w") as archive:
        for name, data in members.items():
            compression = zipfile.ZIP_STORED if name.endswith(".safetensors") else zipfile.ZIP_DEFLATED
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=compression)


def _split_optimizer_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for param, entries in state["params"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param}/{key}"] = value
            elif value is None or isinstance(value, (bool, int, float, str)):
                scalars.setdefault(param, {})[key] = value
            else:
                raise TypeError(f"Optimizer state {param}/{key} is a {type(value).__name__}; only tensors and numbers can be saved.")
    return tensors, {"params": scalars, "scenari": state["scenari"]}


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


# -- loading ----------------------------------------------------------------------------
def load(path: str | os.PathLike, *, max_bytes: int = MAX_TENSOR_BYTES) -> Any:
    """Read a ``.mar`` file written by :func:`save` and return the rebuilt Network.

    Raises ``ValueError`` naming the problem for anything that is not a
    well-formed ``.mar`` file of a supported version; nothing is written and
    no code from the file runs. ``max_bytes`` caps each tensor member.
    """
    path = as_path(path, "load")
    if not path.is_file():
        raise FileNotFoundError(f"No .mar file at {str(path)!r}.")
    where = f"{str(path)!r}"
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ValueError(f"{where} is not a .mar file (not a readable zip archive: {error}).") from None
    with archive:
        members = _check_members(archive, where)
        architecture = _read_json(archive, members[ARCHITECTURE], where)
        _check_architecture(architecture, where)
        log = _read_json(archive, members[LOG], where)
        if not isinstance(log, list) or not all(isinstance(entry, dict) for entry in log):
            raise ValueError(f"{where}: {LOG} must be a list of objects, but holds {type(log).__name__}.")
        skeleton, expected = _skeleton(architecture, where)
        weights = _read_tensors(archive, members[WEIGHTS], expected, where, max_bytes)
        optimizer_state = None
        if OPTIMIZER_JSON in members or OPTIMIZER_TENSORS in members:
            optimizer_state = _read_optimizer(archive, members, skeleton, where, max_bytes)
    # Only now, with every byte read and checked, is the real network allocated.
    with _fresh_rng():
        network = _from_config(Network, architecture["network"], where)
    try:
        network.module.load_state_dict(weights, strict=True)
        if optimizer_state is not None:
            network.load_optimizer_state_dict(optimizer_state)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{where}: the stored state does not fit the architecture: {error}") from None
    network.log[:] = log
    network.record("load", path=str(path), format_version=architecture["format_version"])
    return network


def _check_members(archive: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name or "\\" in name:
            raise ValueError(f"{where}: member {name!r} has a path escaping the archive; a .mar file holds only plain names.")
        if name in members:
            raise ValueError(f"{where}: member {name!r} appears twice; a .mar file names each member once.")
        if name not in REQUIRED + OPTIONAL:
            raise ValueError(f"{where}: unexpected member {name!r}; a .mar file holds only {list(REQUIRED + OPTIONAL)}.")
        if info.flag_bits & 0x1:
            raise ValueError(f"{where}: member {name!r} is encrypted; .mar members never are.")
        members[name] = info
    missing = [name for name in REQUIRED if name not in members]
    if missing:
        raise ValueError(f"{where} is not a complete .mar file: missing member(s) {missing}.")
    if (OPTIMIZER_JSON in members) != (OPTIMIZER_TENSORS in members):
        raise ValueError(f"{where}: {OPTIMIZER_JSON} and {OPTIMIZER_TENSORS} come together, but only one is present.")
    return members


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, where: str) -> bytes:
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


def _read_json(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> Any:
    data = _read_member(archive, info, MAX_JSON_BYTES, where)
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as error:
        raise ValueError(f"{where}: member {info.filename!r} is not valid JSON ({error}).") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys in an object")
    return result


def _check_architecture(architecture: Any, where: str) -> None:
    if not isinstance(architecture, dict) or architecture.get("format") != FORMAT:
        raise ValueError(f"{where} is not a .mar file: {ARCHITECTURE} does not declare format {FORMAT!r}.")
    version = architecture.get("format_version")
    if not is_int(version) or version < 1:
        raise ValueError(f"{where}: format_version must be a positive int, but is {version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{where} uses .mar format version {version}, newer than this Mariana ({__version__}) reads "
            f"(up to {FORMAT_VERSION}). Upgrade mariana to load it."
        )
    if not isinstance(architecture.get("network"), dict) or not isinstance(architecture.get("weights"), dict):
        raise ValueError(f"{where}: {ARCHITECTURE} needs a 'network' object and a 'weights' object.")


def _skeleton(architecture: dict, where: str) -> tuple[Any, dict[str, tuple[torch.dtype, tuple[int, ...]]]]:
    """The network built on the meta device (nothing allocated) and the tensors it declares, checked
    against the architecture's own list. The user's RNG state is left untouched."""
    with _fresh_rng(), torch.device("meta"):
        skeleton = _from_config(Network, architecture["network"], where)
    expected = {key: (t.dtype, tuple(t.shape)) for key, t in skeleton.module.state_dict().items()}
    declared = architecture["weights"]
    if set(declared) != set(expected):
        raise ValueError(
            f"{where}: {ARCHITECTURE} declares tensors {sorted(declared)} but its layers have {sorted(expected)}."
        )
    for key, (dtype, shape) in expected.items():
        entry = declared[key]
        if not isinstance(entry, dict) or entry.get("dtype") != _DTYPE_NAMES.get(dtype) or entry.get("shape") != list(shape):
            raise ValueError(f"{where}: tensor {key!r} is declared as {entry!r}, but the architecture makes it {dtype} {list(shape)}.")
    return skeleton, expected


@contextlib.contextmanager
def _fresh_rng() -> Iterator[None]:
    # Rebuilding draws initial weights that are overwritten at once; keep the caller's RNG stream as it was.
    with torch.random.fork_rng(devices=[]):
        yield


def _from_config(network_class: Any, config: dict, where: str) -> Any:
    try:
        return network_class.from_config(config)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    except (TypeError, KeyError, AttributeError, IndexError, RecursionError, RuntimeError, NotImplementedError) as error:
        raise ValueError(f"{where}: malformed architecture ({type(error).__name__}: {error}).") from None


def _read_tensors(archive: zipfile.ZipFile, info: zipfile.ZipInfo, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]],
                  where: str, max_bytes: int) -> dict[str, torch.Tensor]:
    """Check the safetensors header against ``expected`` before reading the data, then load it."""
    size = sum(_DTYPE_SIZES[dtype] * math.prod(shape) for dtype, shape in expected.values())
    header_bytes = _read_header(archive, info, where)
    if info.file_size != 8 + len(header_bytes) + size:
        raise ValueError(f"{where}: member {info.filename!r} is {info.file_size} bytes, but its tensors need {8 + len(header_bytes) + size}.")
    _check_header(header_bytes, expected, info.filename, where)
    data = _read_member(archive, info, min(max_bytes, 8 + len(header_bytes) + size), where)
    try:
        return safetensors_load(data)
    except Exception as error:  # safetensors raises its own SafetensorError for malformed data
        raise ValueError(f"{where}: member {info.filename!r} is not valid safetensors ({error}).") from None


_DTYPE_SIZES = {dtype: torch.empty((), dtype=dtype).element_size() for dtype in _DTYPES.values()}


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    try:
        with archive.open(info) as stream:
            prefix = stream.read(8)
            if len(prefix) < 8:
                raise ValueError(f"{where}: member {info.filename!r} is too short for safetensors.")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES or length > info.file_size - 8:
                raise ValueError(f"{where}: member {info.filename!r} declares a {length}-byte header, which it cannot hold.")
            header = stream.read(length)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
        raise ValueError(f"{where}: member {info.filename!r} is corrupt or truncated ({error}).") from None
    if len(header) != length:
        raise ValueError(f"{where}: member {info.filename!r} is truncated inside its header.")
    return header


def _parse_header(header_bytes: bytes, member: str, where: str) -> dict:
    """A safetensors JSON header as a dict of tensor entries (metadata dropped); ValueError if malformed."""
    try:
        header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"{where}: member {member!r} has a malformed safetensors header ({error}).") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: member {member!r} has a malformed safetensors header.")
    header.pop("__metadata__", None)
    return header


def _check_header(header_bytes: bytes, expected: dict[str, tuple[torch.dtype, tuple[int, ...]]], member: str, where: str) -> None:
    header = _parse_header(header_bytes, member, where)
    if set(header) != set(expected):
        raise ValueError(f"{where}: member {member!r} holds tensors {sorted(header)}, but expected {sorted(expected)}.")
    for key, (dtype, shape) in expected.items():
        entry = header[key]
        if not isinstance(entry, dict) or entry.get("dtype") != _DTYPE_NAMES.get(dtype) or entry.get("shape") != list(shape):
            raise ValueError(f"{where}: member {member!r}: tensor {key!r} is {entry!r}, but expected {_DTYPE_NAMES.get(dtype)} {list(shape)}.")


def _read_optimizer(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], network: Any, where: str, max_bytes: int) -> dict:
    scalars = _read_json(archive, members[OPTIMIZER_JSON], where)
    if not isinstance(scalars, dict) or not isinstance(scalars.get("params"), dict) or not isinstance(scalars.get("scenari"), dict):
        raise ValueError(f"{where}: {OPTIMIZER_JSON} needs 'params' and 'scenari' objects.")
    entries = _parse_header(_read_header(archive, members[OPTIMIZER_TENSORS], where), OPTIMIZER_TENSORS, where)
    params = dict(network.module.named_parameters())  # "<layer>.<param>", and "<wrapper>.<layer>.<param>" inside wrappers
    expected: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for key, entry in entries.items():
        param_name, _, state_key = key.partition("/")
        if param_name not in params or not state_key:
            raise ValueError(f"{where}: optimizer tensor {key!r} names no parameter of this network (params: {sorted(params)}).")
        if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES or not isinstance(entry.get("shape"), list):
            raise ValueError(f"{where}: optimizer tensor {key!r} has a malformed header entry {entry!r}.")
        shape = tuple(entry["shape"])
        if shape not in ((), tuple(params[param_name].shape)):
            raise ValueError(f"{where}: optimizer tensor {key!r} has shape {list(shape)}, but {param_name} is {list(params[param_name].shape)}.")
        expected[key] = (_DTYPES[entry["dtype"]], shape)
    tensors = _read_tensors(archive, members[OPTIMIZER_TENSORS], expected, where, max_bytes)
    state: dict[str, dict] = {}
    for param_name, values in scalars["params"].items():
        if param_name not in params or not isinstance(values, dict):
            raise ValueError(f"{where}: {OPTIMIZER_JSON} names unknown parameter {param_name!r}.")
        for key, value in values.items():
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise ValueError(f"{where}: {OPTIMIZER_JSON}: {param_name}/{key} must be a number, but is {value!r}.")
        state[param_name] = dict(values)
    for key, tensor in tensors.items():
        param_name, _, state_key = key.partition("/")
        state.setdefault(param_name, {})[state_key] = tensor
    for name, steps in scalars["scenari"].items():
        if not isinstance(steps, dict) or not isinstance(steps.get("steps"), int) or steps["steps"] < 0:
            raise ValueError(f"{where}: {OPTIMIZER_JSON}: scenario of {name!r} needs a non-negative 'steps' count, but is {steps!r}.")
    return {"params": state, "scenari": scalars["scenari"]}
