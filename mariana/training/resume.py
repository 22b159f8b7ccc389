"""Resume: read a run directory back into everything a Trainer needs to finish the run.

:func:`read_resume_point` rebuilds the network from run.json, loads the
latest checkpoint into it, rebuilds the stops and recorders, and finds the
data (the run's own copy, or data passed again, checked against the recorded
hashes). ``Trainer.resume`` turns the result into a Trainer and runs it. A
run directory may come from anyone: recorders rebuilt from run.json may only
write inside it.

Example:
    >>> import tempfile
    >>> read_resume_point(tempfile.mkdtemp(), {})
    Traceback (most recent call last):
    ...
    FileNotFoundError: ... is not a Mariana run directory (no run.json).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mariana.network import Network
from mariana.registry import deserialize, serialize
from mariana.training import checkpoint as CK
from mariana.training.mappers import DatasetMapper, as_mapper
from mariana.training.recorders import Recorder
from mariana.training.run_directory import RunDirectory
from mariana.training.stops import Stop


class ResumeWarning(UserWarning):
    """The run is resumed on another machine or torch version: it will not be bit-identical."""


@dataclass
class ResumePoint:
    """A run read back from its directory, ready to continue."""

    net: Network  #: rebuilt, with the checkpoint's weights, optimizer state and generation log
    settings: dict  #: the Trainer's keyword arguments (stops and recorders included)
    streams: dict[str, DatasetMapper]
    state: dict  #: the checkpoint's trainer state (Trainer.load_state_dict)
    threads: int  #: the torch thread count the run used


def read_resume_point(run_dir: str | Path, given: dict[str, Any], stops: Sequence[Stop] | None = None,
                      recorders: Sequence[Recorder] | None = None) -> ResumePoint:
    """Everything needed to continue the run in ``run_dir``; ``given`` maps stream names to data passed again."""
    directory = RunDirectory(run_dir)
    run = directory.read_run()
    settings = dict(run["trainer"])
    directory.store.keep = settings["keep_checkpoints"]
    state = directory.load_checkpoint("latest")
    threads = check_environment(state["environment"])
    net = Network.from_config(run["network"])
    net.module.load_state_dict(state["weights"])
    net.load_optimizer_state_dict(state["optimizer"])
    net.log[:] = state["log"]
    recorded_stops, recorded_recorders = settings.pop("stops"), settings.pop("recorders")
    settings["stops"] = list(stops) if stops is not None else rebuild(recorded_stops, Stop, "stops")
    if recorders is None:
        settings["recorders"] = rebuild(recorded_recorders, Recorder, "recorders")
        confine_recorder_paths(settings["recorders"], directory.path)
    else:
        settings["recorders"] = list(recorders)
    streams = _streams(directory, settings.pop("streams"), given)
    return ResumePoint(net=net, settings=settings, streams=streams, state=state, threads=threads)


def _streams(directory: RunDirectory, recorded: dict[str, dict], given: dict[str, Any]) -> dict[str, DatasetMapper]:
    extra = [name for name, value in given.items() if value is not None and name not in recorded]
    if extra:
        raise ValueError(f"Trainer.resume: the run had no {extra} stream(s); it had {list(recorded)}.")
    streams = {}
    for name, info in recorded.items():
        mapper = as_mapper(given.get(name), name)
        if mapper is None:
            mapper = directory.load_data(name, info)
        elif mapper.content_hash() != info["sha256"]:
            raise ValueError(
                f"Trainer.resume: the {name} data passed does not match the run's: expected sha256 {info['sha256']}, "
                f"but received data hashing to {mapper.content_hash()}. Pass the same data, or none to use the run's copy."
            )
        elif serialize(mapper.sampler) != info["sampler"]:
            raise ValueError(
                f"Trainer.resume: the {name} data passed uses sampler {serialize(mapper.sampler)}, but the run used "
                f"{info['sampler']}; the rest of the run could not be the same. Pass a mapper with the run's sampler, "
                f"or no data to use the run's copy."
            )
        streams[name] = mapper
    return streams


def confine_recorder_paths(recorders: Sequence[Recorder], run_dir: Path) -> None:
    """Recorders rebuilt from run.json may only write inside the run directory: a run directory may come from anyone.

    Paths are resolved (symlinks followed, relative ones from the run directory) before they are compared.
    """
    root = run_dir.resolve()
    for recorder in recorders:
        for attribute in ("path", "log_dir"):
            value = getattr(recorder, attribute, None)
            if value is None:
                continue
            resolved = (run_dir / value).resolve()  # an absolute value replaces run_dir
            if resolved != root and root not in resolved.parents:
                raise ValueError(
                    f"Trainer.resume: run.json names a {type(recorder).__name__} writing to {value!r}, which resolves to "
                    f"{str(resolved)!r}, outside the run directory {str(root)!r}; resume refuses it. "
                    f"Pass recorders=[...] to Trainer.resume to choose where to write."
                )


def rebuild(entries: list[dict], base: type, label: str) -> list:
    """Stops or recorders from their run.json entries (registered classes only)."""
    unregistered = [entry["unregistered"] for entry in entries if "unregistered" in entry]
    if unregistered:
        raise ValueError(
            f"Trainer.resume: the run used {label} {unregistered} whose classes are not registered, so they cannot be rebuilt. "
            f"Decorate them with @mariana.register (and import them first), or pass {label}=[...] to Trainer.resume."
        )
    return [deserialize(entry, base) for entry in entries]


def check_environment(recorded: dict) -> int:
    """Warn when resuming elsewhere; returns the thread count to use (the recorded one)."""
    current = CK.environment()
    different = [f"{key}: recorded {recorded[key]!r}, now {current[key]!r}" for key in ("machine", "processor", "node", "torch", "numpy")
                 if recorded.get(key) != current[key]]
    if different:
        warnings.warn("Resuming in a different environment, so the result will not be bit-identical to an uninterrupted run ("
                      + "; ".join(different) + ").", ResumeWarning, stacklevel=4)
    return int(recorded["threads"])


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Use ``threads`` torch threads inside the block (the recorded count, for a bit-identical resume)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
