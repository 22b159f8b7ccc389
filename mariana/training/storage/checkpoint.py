"""Checkpoints: atomic files in a run directory, safetensors for tensors and JSON for the rest.

No pickle anywhere: a checkpoint is one ``.safetensors`` file whose header
metadata carries the JSON state (positions, RNG states, history, stop and
recorder state) and whose tensors carry the weights, optimizer state and
any other tensor the state refers to. Files get new names; the ``latest``
and ``best`` pointers are small JSON files replaced atomically, holding the
checkpoint's sha256 so a damaged file is never taken for a good one. Each
checkpoint also gets a ``<name>.sha256`` sidecar (``sha256sum`` format) so
that, when ``latest`` is lost or damaged, the newest checkpoint that still
matches its own digest can be found and used, with a warning.

A run directory may come from anyone: :func:`clean_run_directory` removes
the temps killed writes left (never a user's file). The small files' writes
and capped reads are in ``run_files``; the state's split into JSON and
tensors in ``tensor_tree``.

Example:
    >>> import tempfile, torch
    >>> from mariana.training.storage.checkpoint import CheckpointStore
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
import re
import warnings
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors

from mariana.files import file_sha256, remove_stale_temps
from mariana.training.storage.run_files import read_json, write_together
from mariana.training.storage.run_record import short_json
from mariana.training.storage.safetensors_files import tensor_parts

FORMAT_VERSION = 1
_NAME = re.compile(r"ckpt-(\d{6})-e(\d+)-s(\d+)\.safetensors\Z")
_SIDECAR = re.compile(r"(ckpt-\d{6}-e\d+-s\d+\.safetensors)\.sha256\Z")
_SIDECAR_LINE = re.compile(r"([0-9a-f]{64})  (ckpt-\d{6}-e\d+-s\d+\.safetensors)\n?\Z")


class CheckpointWarning(UserWarning):
    """A run directory was usable only in part: e.g. its ``latest`` pointer was lost and an older checkpoint is used."""


class _PointerError(Exception):
    """A pointer that cannot be followed (missing, not JSON, malformed, naming no file); ``cause`` is the error to show."""

    def __init__(self, cause: OSError | ValueError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _RefusedCheckpoint(Exception):
    """The checkpoint ``name`` that a readable pointer names could not be loaded; ``cause`` is the error to show."""

    def __init__(self, cause: OSError | ValueError, name: str) -> None:
        super().__init__(str(cause))
        self.cause, self.name = cause, name


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

    def has_checkpoint(self) -> bool:
        """Whether the run directory holds anything to resume from: a ``latest`` pointer or a complete checkpoint file.

        False for a run killed before its first checkpoint, whose directory a new
        start may reuse (after :func:`clean_run_directory`).
        """
        return self._pointer("latest").exists() or bool(self.names())

    def _next_name(self, epoch: int, step: int) -> str:
        names = self.names()
        counter = int(_NAME.match(names[-1]).group(1)) + 1 if names else 1
        return f"ckpt-{counter:06d}-e{epoch}-s{step}.safetensors"

    def save(self, tensors: dict[str, torch.Tensor], state: dict, epoch: int, step: int,
             best: bool = False, prune: bool = True) -> str:
        """Write a new checkpoint and its ``.sha256`` sidecar, then point ``latest`` (and ``best`` if asked) at it; returns its name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = self._next_name(epoch, step)
        document = {"format": FORMAT_VERSION, "state": state}
        data = tensor_parts(tensors, {"mariana": json.dumps(document)})
        digest = hashlib.sha256()
        for part in data:
            digest.update(part)
        digest = digest.hexdigest()
        # The sidecar may be durable before its checkpoint (one without the other is never used); the pointers only after both.
        write_together({self.folder / name: data, self.folder / f"{name}.sha256": f"{digest}  {name}\n".encode()})
        pointer = json.dumps({"checkpoint": name, "sha256": digest, "epoch": epoch, "step": step}, indent=1, sort_keys=True).encode()
        write_together({self._pointer(which): pointer for which in (("latest", "best") if best else ("latest",))})
        if prune:
            self.prune()
        return name

    def prune(self) -> None:
        """Remove all but the last ``keep`` checkpoints and the ones ``latest``/``best`` point at, with their sidecars
        and the temps of killed checkpoint writes."""
        names = self.names()
        protected = set(names[-self.keep:])
        for which in ("latest", "best"):
            try:
                pointer = read_json(self._pointer(which), advice="")
            except (OSError, ValueError):
                continue  # missing or damaged: it protects nothing (``load`` falls back on intact checkpoints)
            if isinstance(pointer, dict) and isinstance(pointer.get("checkpoint"), str):
                protected.add(pointer["checkpoint"])
        for name in names:
            if name not in protected:
                (self.folder / name).unlink(missing_ok=True)
                (self.folder / f"{name}.sha256").unlink(missing_ok=True)
        for sidecar in self.folder.iterdir():
            match = _SIDECAR.match(sidecar.name)
            if match and not (self.folder / match.group(1)).exists():
                sidecar.unlink(missing_ok=True)
        remove_stale_temps(self.folder, keep=lambda target: not (_NAME.match(target) or _SIDECAR.match(target)))

    def recorded_sha256(self, name: str) -> str | None:
        """The sha256 that checkpoint ``name``'s ``.sha256`` sidecar records, or None (no sidecar, or a malformed one)."""
        try:
            with open(self.folder / f"{name}.sha256", "rb") as file:
                recorded = _SIDECAR_LINE.match(file.read(200).decode("ascii"))
        except (OSError, UnicodeDecodeError):
            return None
        return recorded.group(1) if recorded is not None and recorded.group(2) == name else None

    def verified_sha256(self, name: str) -> str | None:
        """The sha256 of checkpoint ``name`` if its ``.sha256`` sidecar records exactly that digest, else None."""
        recorded = self.recorded_sha256(name)
        try:
            return recorded if recorded is not None and file_sha256(self.folder / name) == recorded else None
        except OSError:
            return None

    def load(self, which: str = "latest") -> tuple[dict[str, torch.Tensor], dict]:
        """The (tensors, state) of the checkpoint a pointer names, its sha256 checked first.

        When ``latest`` is missing or unreadable (not JSON: a kill or a disk
        error), the newest checkpoint whose ``.sha256`` sidecar matches it is
        loaded instead, with a :class:`CheckpointWarning` that says which and
        why. A pointer that reads but cannot be honoured (malformed, naming no
        checkpoint, or one that fails its sha256) is refused with a
        ``ValueError`` that says how to fall back (delete ``latest``): its
        content was changed, so guessing is not safe. ``best`` never falls back
        (the newest checkpoint is not the best one).
        """
        pointer_path = self._pointer(which)
        try:
            return self._load_pointer(pointer_path)
        except _PointerError as error:
            failed = error.cause
        except (_RefusedCheckpoint, ValueError) as error:
            cause, refused = (error.cause, error.name) if isinstance(error, _RefusedCheckpoint) else (error, None)
            fallback = self.newest_intact(exclude=refused)
            if fallback is None or which != "latest":
                raise cause from None
            raise type(cause)(f"{cause} Restore it from a copy, or delete {str(pointer_path)!r} to resume from the newest "
                              f"intact checkpoint, {fallback}.") from None
        if which != "latest":
            raise failed
        for name in reversed(self.names()):
            recorded = self.recorded_sha256(name)
            if recorded is None:
                continue
            try:
                result = self._read(self.folder / name, recorded)
            except (OSError, ValueError):
                continue
            else:
                epoch, step = _NAME.match(name).group(2, 3)
                warnings.warn(f"{failed} Falling back on the newest intact checkpoint, {str(self.folder / name)!r} (epoch {epoch}, "
                              f"step {step}; its sha256 matches {name}.sha256); progress after it, if any, is lost.",
                              CheckpointWarning, stacklevel=2)
                return result
        if isinstance(failed, FileNotFoundError) and not self.names():
            raise FileNotFoundError(f"{failed} No checkpoint in {str(self.folder)!r} either: the run was stopped before "
                                    f"its first checkpoint. Start it again with a new run_dir, or delete this one first.") from None
        raise type(failed)(f"{failed} No checkpoint in {str(self.folder)!r} matches its .sha256 sidecar, so none can be "
                           f"trusted. Start the run again in a new run_dir, or restore the run directory from a copy.") from None

    def newest_intact(self, exclude: str | None = None) -> str | None:
        """The newest checkpoint (other than ``exclude``) that matches its ``.sha256`` sidecar, or None."""
        for name in reversed(self.names()):
            if name != exclude and self.verified_sha256(name) is not None:
                return name
        return None

    def _load_pointer(self, pointer_path: Path) -> tuple[dict[str, torch.Tensor], dict]:
        if not pointer_path.exists():
            raise _PointerError(FileNotFoundError(f"No checkpoint pointer {str(pointer_path)!r}: this run directory holds no checkpoint yet."))
        try:
            pointer = read_json(pointer_path, advice="")
        except (OSError, ValueError) as error:
            raise _PointerError(error) from None
        name = pointer.get("checkpoint") if isinstance(pointer, dict) else None
        if not isinstance(name, str) or not _NAME.match(name) or not isinstance(pointer.get("sha256"), str):
            raise ValueError(f"Checkpoint pointer {str(pointer_path)!r} is malformed: expected a checkpoint name like "
                             f"'ckpt-000001-e1-s0.safetensors' and its sha256, but read {short_json(pointer)}.")
        if not (self.folder / name).is_file():
            raise ValueError(f"Checkpoint pointer {str(pointer_path)!r} names {name}, which is not in {str(self.folder)!r}.")
        try:
            return self._read(self.folder / name, pointer["sha256"])
        except (OSError, ValueError) as error:
            raise _RefusedCheckpoint(error, name) from None

    def _read(self, path: Path, sha256: str) -> tuple[dict[str, torch.Tensor], dict]:
        """A checkpoint file's (tensors, state), once its bytes hash to ``sha256``; ValueError naming the file if not."""
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint {str(path)!r} is missing.")
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise ValueError(f"Checkpoint {str(path)!r} is damaged: expected sha256 {sha256}, but the file hashes to {digest}.")
        try:
            header_size = int.from_bytes(data[:8], "little")
            metadata = json.loads(data[8:8 + header_size])["__metadata__"]
            document = json.loads(metadata["mariana"])
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            raise ValueError(f"Checkpoint {str(path)!r} has no readable Mariana state in its header ({type(error).__name__}: {error}).") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION or not isinstance(document.get("state"), dict):
            found = document.get("format") if isinstance(document, dict) else None
            raise ValueError(f"Checkpoint {str(path)!r} has format {found!r}; this Mariana reads format {FORMAT_VERSION}.")
        try:
            tensors = load_tensors(data)
        except Exception as error:  # safetensors raises its own SafetensorError for malformed data
            raise ValueError(f"Checkpoint {str(path)!r} is not valid safetensors ({error}).") from None
        return tensors, document["state"]


# -- the run directory ----------------------------------------------------------------------
def clean_run_directory(run_dir: str | os.PathLike) -> list[Path]:
    """Remove the temps that killed atomic writes left in ``run_dir``; returns their paths.

    Call it when a run starts or resumes. Only temps of Mariana's exact
    naming (``.<target>.<8 random characters>.tmp``) whose writer is dead
    (no lock held) are removed, and only for targets a run directory holds:
    ``latest``, ``best``, ``run.json`` or any file already there;
    ``data/*.safetensors``; ``checkpoints/ckpt-*`` and their sidecars.
    Folders that are symlinks are not entered.

    Example:
        >>> import os, tempfile
        >>> run_dir = tempfile.mkdtemp()
        >>> for name in (".latest.k2j4x9z1.tmp", ".run.json.0a1b2c3d.tmp", "my.latest.k2j4x9z1.tmp"):
        ...     open(os.path.join(run_dir, name), "wb").close()
        >>> sorted(path.name for path in clean_run_directory(run_dir))
        ['.latest.k2j4x9z1.tmp', '.run.json.0a1b2c3d.tmp']
        >>> os.listdir(run_dir)
        ['my.latest.k2j4x9z1.tmp']
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    removed = remove_stale_temps(run_dir, keep=lambda target: not (target in ("latest", "best", "run.json") or (run_dir / target).is_file()))
    data = run_dir / "data"
    if data.is_dir() and not data.is_symlink():
        removed += remove_stale_temps(data, keep=lambda target: not (target.endswith(".safetensors") or (data / target).is_file()))
    folder = run_dir / "checkpoints"
    if folder.is_dir() and not folder.is_symlink():
        removed += remove_stale_temps(folder, keep=lambda target: not (_NAME.match(target) or _SIDECAR.match(target)))
    return removed
