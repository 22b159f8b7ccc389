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
the architecture before any weight is allocated. Its cost is bounded: a
tensor member that would inflate more than :data:`MAX_COMPRESSION_RATIO`
times (a zip bomb; Mariana stores tensors uncompressed) is refused before a
byte is inflated, and ``max_bytes`` caps every member. Optimizer state is
checked against the layout of the optimizers that would use it, and
weights holding NaN or infinite values load with a warning naming them.

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
import os
import time
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

import torch
from safetensors.torch import save as safetensors_save

from mariana.about import __version__
from mariana.archive import DTYPE_NAMES, DTYPES, MAX_JSON_BYTES, check_sizes, parse_header, read_header, read_json, read_tensors
from mariana.checks import is_int
from mariana.files import as_path, atomic_write
from mariana.network import Network
from mariana.optimizer_state import optimizer_misfits

FORMAT = "mariana"
FORMAT_VERSION = 1

ARCHITECTURE = "architecture.json"
WEIGHTS = "weights.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"
LOG = "log.json"
REQUIRED = (ARCHITECTURE, WEIGHTS, LOG)
OPTIONAL = (OPTIMIZER_TENSORS, OPTIMIZER_JSON)

#: Largest tensor member read by default (bytes); ``load(path, max_bytes=...)`` changes it.
MAX_TENSOR_BYTES = 8 * 2**30


class NonFiniteWeightsWarning(UserWarning):
    """A loaded ``.mar`` file holds NaN or infinite values in its weights or optimizer state."""


class OptimizerStateWarning(UserWarning):
    """A ``.mar`` file's optimizer state does not fit this network's optimizers, so it was left out."""



# -- saving -----------------------------------------------------------------------------
def save(network: Network, path: str | os.PathLike, *, optimizer: bool = True) -> None:
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
        "weights": {key: {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape)} for key, t in weights.items()},
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
        if tensor.dtype not in DTYPE_NAMES:
            raise TypeError(f"Cannot save {what} {key!r} of dtype {tensor.dtype}; supported: {sorted(map(str, DTYPE_NAMES))}.")
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
def load(path: str | os.PathLike, *, max_bytes: int = MAX_TENSOR_BYTES, optimizer: bool = True) -> Any:
    """Read a ``.mar`` file written by :func:`save` and return the rebuilt Network.

    Raises ``ValueError`` naming the problem for anything that is not a
    well-formed ``.mar`` file of a supported version; nothing is written and
    no code from the file runs. ``max_bytes`` caps every member (default: 8 GiB
    for tensors, 32 MiB for JSON; a smaller value lowers both). With
    ``optimizer=False`` the optimizer state is not read (e.g. when it is
    damaged); optimizer state that does not fit the network's optimizers
    (unknown or missing keys) is left out with an :class:`OptimizerStateWarning`.
    NaN or infinite weights load with a :class:`NonFiniteWeightsWarning`.
    """
    path = as_path(path, "load")
    if not is_int(max_bytes) or max_bytes < 1:
        raise ValueError(f"load: max_bytes must be an int >= 1 (bytes), but received {max_bytes!r}.")
    if not path.is_file():
        raise FileNotFoundError(f"No .mar file at {str(path)!r}.")
    where = f"{str(path)!r}"
    try:
        archive = zipfile.ZipFile(path)
        archive_size = path.stat().st_size
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ValueError(f"{where} is not a .mar file (not a readable zip archive: {error}).") from None
    with archive:
        members = _check_members(archive, where, archive_size)
        architecture = read_json(archive, members[ARCHITECTURE], where, max_bytes)
        _check_architecture(architecture, where)
        log = read_json(archive, members[LOG], where, max_bytes)
        if not isinstance(log, list) or not all(isinstance(entry, dict) for entry in log):
            raise ValueError(f"{where}: {LOG} must be a list of objects, but holds {type(log).__name__}.")
        skeleton, expected = _skeleton(architecture, where)
        weights = read_tensors(archive, members[WEIGHTS], expected, where, max_bytes)
        optimizer_state, notices = None, []
        if optimizer and OPTIMIZER_JSON in members:
            optimizer_state, notices = _read_optimizer(archive, members, skeleton, where, max_bytes)
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
    for message in notices:
        warnings.warn(message, OptimizerStateWarning, stacklevel=2)
    _warn_non_finite(weights, optimizer_state, where)
    return network


def _warn_non_finite(weights: dict[str, torch.Tensor], optimizer_state: dict | None, where: str) -> None:
    """A :class:`NonFiniteWeightsWarning` naming the layers whose tensors hold NaN or inf (checked in chunks: little memory)."""
    found = {key: counts for key, tensor in weights.items() if (counts := _non_finite(tensor))}
    for param, entries in (optimizer_state or {}).get("params", {}).items():
        found.update({f"{param}/{key}": counts for key, value in entries.items()
                      if isinstance(value, torch.Tensor) and (counts := _non_finite(value))})
    if not found:
        return
    layers = sorted({key.split("/")[0].rpartition(".")[0] for key in found})
    details = ", ".join(f"{key}: {nan} NaN, {inf} inf" for key, (nan, inf) in sorted(found.items())[:10])
    warnings.warn(f"{where}: layer(s) {layers} hold NaN or infinite values ({details}{', ...' if len(found) > 10 else ''}); "
                  f"they load as saved, but outputs that use them will be NaN or inf.", NonFiniteWeightsWarning, stacklevel=3)


def _non_finite(tensor: torch.Tensor) -> tuple[int, int] | None:
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return None
    nan = inf = 0
    for chunk in tensor.reshape(-1).split(2**22):
        if not bool(torch.isfinite(chunk).all()):
            nan += int(torch.isnan(chunk).sum())
            inf += int(torch.isinf(chunk).sum())
    return (nan, inf) if nan or inf else None


def read_architecture(path: str | os.PathLike) -> Any:
    """The architecture document of a ``.mar`` file (for tools that describe a file they cannot load), with load's caps.

    Raises ``ValueError`` for anything that is not a readable ``.mar`` file; builds nothing and runs nothing.
    """
    where = repr(str(path))
    try:
        path = as_path(path, "read_architecture")
        with zipfile.ZipFile(path) as archive:
            members = _check_members(archive, where, path.stat().st_size)
            return read_json(archive, members[ARCHITECTURE], where, MAX_JSON_BYTES)
    except (OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{where} is not a readable .mar file ({error}).") from None


def _check_members(archive: zipfile.ZipFile, where: str, archive_size: int) -> dict[str, zipfile.ZipInfo]:
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
        check_sizes(info, where, archive_size)
        members[name] = info
    missing = [name for name in REQUIRED if name not in members]
    if missing:
        raise ValueError(f"{where} is not a complete .mar file: missing member(s) {missing}.")
    if (OPTIMIZER_JSON in members) != (OPTIMIZER_TENSORS in members):
        raise ValueError(f"{where}: {OPTIMIZER_JSON} and {OPTIMIZER_TENSORS} come together, but only one is present.")
    return members


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
        if not isinstance(entry, dict) or entry.get("dtype") != DTYPE_NAMES.get(dtype) or entry.get("shape") != list(shape):
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


def _read_optimizer(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], network: Network, where: str,
                    max_bytes: int) -> tuple[dict | None, list[str]]:
    """The optimizer state, checked against the state layout of the optimizers that would use it (on ``network``,
    the skeleton), and the notices to warn with. A value of the wrong kind (a string where a tensor belongs) is a
    ``ValueError``; keys that fit none of those optimizers mean the state is left out (None) with a notice."""
    scalars = read_json(archive, members[OPTIMIZER_JSON], where, max_bytes)
    if not isinstance(scalars, dict) or not isinstance(scalars.get("params"), dict) or not isinstance(scalars.get("scenari"), dict):
        raise ValueError(f"{where}: {OPTIMIZER_JSON} needs 'params' and 'scenari' objects.")
    for name, steps in scalars["scenari"].items():
        if not isinstance(steps, dict) or not is_int(steps.get("steps")) or not 0 <= steps["steps"] < 2**63:
            raise ValueError(f"{where}: {OPTIMIZER_JSON}: scenario of {name!r} needs a 'steps' count in [0, 2**63), but is {steps!r}.")
    entries = parse_header(read_header(archive, members[OPTIMIZER_TENSORS], where, max_bytes), OPTIMIZER_TENSORS, where)
    params = dict(network.module.named_parameters())  # "<layer>.<param>", and "<wrapper>.<layer>.<param>" inside wrappers
    found: dict[str, dict[str, tuple]] = {}  # param -> state key -> ("tensor", dtype, shape) or ("value", value)
    expected: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    for key, entry in entries.items():
        param_name, _, state_key = key.partition("/")
        if param_name not in params or not state_key:
            raise ValueError(f"{where}: optimizer tensor {key!r} names no parameter of this network (params: {sorted(params)}).")
        if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES or not isinstance(entry.get("shape"), list) \
                or not all(is_int(n) and n >= 0 for n in entry["shape"]):
            raise ValueError(f"{where}: optimizer tensor {key!r} has a malformed header entry {entry!r}.")
        shape = tuple(entry["shape"])
        if shape not in ((), tuple(params[param_name].shape)):
            raise ValueError(f"{where}: optimizer tensor {key!r} has shape {list(shape)}, but {param_name} is {list(params[param_name].shape)}.")
        expected[key] = (DTYPES[entry["dtype"]], shape)
        found.setdefault(param_name, {})[state_key] = ("tensor", DTYPES[entry["dtype"]], shape)
    for param_name, values in scalars["params"].items():
        if param_name not in params or not isinstance(values, dict):
            raise ValueError(f"{where}: {OPTIMIZER_JSON} names unknown parameter {param_name!r}.")
        for key, value in values.items():
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise ValueError(f"{where}: {OPTIMIZER_JSON}: {param_name}/{key} must be a number, but is {value!r}.")
            if key in found.get(param_name, {}):
                raise ValueError(f"{where}: optimizer state {param_name}/{key} is both in {OPTIMIZER_TENSORS} and in {OPTIMIZER_JSON}.")
            found.setdefault(param_name, {})[key] = ("value", value)
    misfits = optimizer_misfits(network, params, found, where)
    if misfits:
        shown = "; ".join(misfits[:5]) + ("; ..." if len(misfits) > 5 else "")
        return None, [f"{where}: its optimizer state does not fit this network's optimizers ({shown}), so the network was "
                      f"loaded without optimizer state: training starts with fresh momentum and moments."]
    tensors = read_tensors(archive, members[OPTIMIZER_TENSORS], expected, where, max_bytes)
    state: dict[str, dict] = {}
    for param_name, values in scalars["params"].items():
        state[param_name] = dict(values)
    for key, tensor in tensors.items():
        param_name, _, state_key = key.partition("/")
        state.setdefault(param_name, {})[state_key] = tensor
    return {"params": state, "scenari": scalars["scenari"]}, []


