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
from safetensors import SafetensorError

from mariana.files import local_path_of
from mariana.network import Network
from mariana.optimizer_state import check_optimizer_state
from mariana.registry import deserialize, serialize
from mariana.training.data.mappers import DatasetMapper, as_mapper
from mariana.training.data.stream_records import recorded_hash
from mariana.training.recorders import Recorder
from mariana.training.run.reproducibility import environment
from mariana.training.run.settings import RunSettings
from mariana.training.stops import Stop
from mariana.training.storage.checkpoint import CheckpointWarning, clean_run_directory
from mariana.training.storage.run_directory import RunDirectory
from mariana.training.storage.run_record import check_run_record, run_differences


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
                      recorders: Sequence[Recorder] | None = None, clean: bool = True) -> ResumePoint:
    """Everything needed to continue the run in ``run_dir``; ``given`` maps stream names to data passed again.

    A run directory may come from anyone: whatever does not have the shape Mariana
    writes (a missing key, a value of the wrong type, a damaged tensor file) is a
    ``ValueError`` naming the directory, never a stray KeyError. ``clean=False`` leaves a killed write's
    temporary files alone (a process that is not the run's writer).
    """
    try:
        return _read_resume_point(run_dir, given, stops, recorders, clean)
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError, SafetensorError) as error:
        raise ValueError(f"{str(run_dir)!r} is not a run directory Mariana can resume: its files are damaged or were edited "
                         f"({type(error).__name__}: {error}). Restore them from a copy, or start a new run.") from None


def _read_resume_point(run_dir: str | Path, given: dict[str, Any], stops: Sequence[Stop] | None,
                       recorders: Sequence[Recorder] | None, clean: bool) -> ResumePoint:
    directory = RunDirectory(run_dir)
    run = directory.read_run()
    if clean:
        clean_run_directory(directory.path)
    state = directory.load_checkpoint("latest")
    check_run(state, run, directory)
    settings = dict(run["trainer"])
    directory.store.keep = settings["keep_checkpoints"]
    threads = check_environment(state["environment"])
    net = Network.from_config(run["network"])
    restore_network(net, state, directory)
    recorded_stops, recorded_recorders = settings.pop("stops"), settings.pop("recorders")
    settings["stops"] = list(stops) if stops is not None else rebuild(recorded_stops, Stop, "stops")
    if recorders is None:
        settings["recorders"] = rebuild(recorded_recorders, Recorder, "recorders")
        confine_recorder_paths(settings["recorders"], directory.path)
    else:
        settings["recorders"] = list(recorders)
    streams = _streams(directory, settings.pop("streams"), given)
    return ResumePoint(net=net, settings=settings, streams=streams, state=state, threads=threads)


def recorded_device(run_dir: str | Path) -> Any:
    """The ``device`` a run was recorded with ("auto" when run.json cannot say): decides a resumed run's backend."""
    try:
        device = RunDirectory(run_dir).read_run()["trainer"]["device"]
    except (OSError, ValueError, KeyError, TypeError):
        return "auto"
    return device if isinstance(device, str) else "auto"


def restore_network(net: Network, state: dict, directory: RunDirectory) -> None:
    """Put a checkpoint's weights, optimizer state (checked against its optimizers first) and generation log into ``net``."""
    try:
        net.module.load_state_dict(state["weights"])
    except (RuntimeError, KeyError, TypeError) as error:
        raise ValueError(f"{str(directory.path)!r}: the checkpoint's weights do not fit the network ({error}).") from None
    misfits = check_optimizer_state(net, state["optimizer"], f"{directory.path / 'latest'}")
    if misfits:
        raise ValueError(f"{str(directory.path)!r}: the checkpoint's optimizer state does not fit the network: {'; '.join(misfits)}.")
    net.load_optimizer_state_dict(state["optimizer"], replace=True)
    net.log[:] = state["log"]


def read_continuation(directory: RunDirectory, current: dict, streams: dict[str, DatasetMapper],
                      clean: bool = True) -> tuple[dict, int]:
    """For ``resume="auto"``: the latest checkpoint of the run in ``directory``, if it is this run.

    ``current`` is ``{"network": ..., "trainer": ...}`` as the new Trainer would record
    them; a run directory holding another configuration or other data is a ValueError
    naming what differs. Returns the checkpoint's state and the thread count it used.
    """
    try:
        run = directory.read_run()
        if clean:  # only the run's writer tidies the folder
            clean_run_directory(directory.path)
        state = directory.load_checkpoint("latest")
        check_run(state, run, directory)
        recorded = {"network": run["network"], "trainer": run["trainer"]}
        recorded_streams = run["trainer"]["streams"]
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError, SafetensorError) as error:
        raise ValueError(f"{str(directory.path)!r} holds a run Mariana cannot continue: its files are damaged or were edited "
                         f"({type(error).__name__}: {error}).") from None
    differences = run_differences(_what_decides(recorded), _what_decides(current))
    if differences:
        shown = ", ".join(differences[:8]) + (", ..." if len(differences) > 8 else "")
        raise ValueError(f"resume='auto': run_dir {str(directory.path)!r} holds a different run (differs in {shown}); "
                         f"it cannot be continued with these settings. Choose another run_dir, or restore the settings.")
    if set(recorded_streams) != set(streams):
        raise ValueError(f"resume='auto': the run in {str(directory.path)!r} had streams {sorted(recorded_streams)}, "
                         f"but received {sorted(streams)}.")
    for name, mapper in streams.items():
        check_stream(name, mapper, recorded_streams[name])
    return state, check_environment(state["environment"])


def check_run(state: dict, run: dict, directory: RunDirectory) -> None:
    """Refuse a run.json that is not the one the checkpoint was written under, naming each changed field."""
    if "run" not in state:
        warnings.warn(f"{str(directory.run_file)!r}: the checkpoint records no run document (written by an older Mariana), "
                      f"so edits to run.json cannot be detected.", CheckpointWarning, stacklevel=4)
        return
    check_run_record(state["run"], run, str(directory.run_file))


def _streams(directory: RunDirectory, recorded: dict[str, dict], given: dict[str, Any]) -> dict[str, DatasetMapper]:
    extra = [name for name, value in given.items() if value is not None and name not in recorded]
    if extra:
        raise ValueError(f"Trainer.resume: the run had no {extra} stream(s); it had {list(recorded)}.")
    streams = {}
    for name, info in recorded.items():
        mapper = as_mapper(given.get(name), name)
        if mapper is None:
            mapper = directory.load_data(name, info)
        else:
            check_stream(name, mapper, info)
        streams[name] = mapper
    return streams


def _what_decides(run: dict) -> dict:
    """What a rerun must keep: the network, and the settings that decide what the run computes (``RunSettings.deciding``)."""
    return {"network": run["network"], "trainer": RunSettings.deciding(run["trainer"])}


def check_stream(name: str, mapper: DatasetMapper, info: dict) -> None:
    """``ValueError`` unless ``mapper`` holds the data (sha256) and the sampler the run recorded for stream ``name``."""
    received = recorded_hash(mapper, info)
    if received != info["sha256"]:
        raise ValueError(
            f"Trainer.resume: the {name} data passed does not match the run's: expected sha256 {info['sha256']}, "
            f"but received data hashing to {received}. Pass the same data, or none to use the run's copy."
        )
    if serialize(mapper.sampler) != info["sampler"]:
        raise ValueError(
            f"Trainer.resume: the {name} data passed uses sampler {serialize(mapper.sampler)}, but the run used "
            f"{info['sampler']}; the rest of the run could not be the same. Pass a mapper with the run's sampler, "
            f"or no data to use the run's copy."
        )


def confine_recorder_paths(recorders: Sequence[Recorder], run_dir: Path) -> None:
    """Recorders rebuilt from run.json may only write inside the run directory: a run directory may come from anyone.

    Paths are resolved (symlinks followed, relative ones from the run directory) before they are compared.
    A recorder's ``destinations`` name attributes holding a URI (``MLflow.tracking_uri``): a local one
    (``file:``, ``sqlite:``, a bare path) is confined like a path; a server's is an external destination, let through.
    """
    root = run_dir.resolve()
    for recorder in recorders:
        uris = tuple(getattr(recorder, "destinations", ()))
        for attribute in ("path", "log_dir", *uris):
            value = getattr(recorder, attribute, None)
            value = local_path_of(value) if attribute in uris else value
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
    current = environment()
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
