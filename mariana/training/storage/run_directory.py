"""The run directory: run.json, the data copy, checkpoints, and the background thread that writes them.

Layout::

    run_dir/run.json        network architecture, trainer settings, data hashes, machine
    run_dir/data/           one copy of each in-memory stream (safetensors)
    run_dir/checkpoints/    ckpt-NNNNNN-eE-sS.safetensors (see mariana.training.storage.checkpoint)
    run_dir/latest, best    pointers to checkpoints

Writes happen on one background thread, in submission order, so the training
loop never waits for the disk; :meth:`RunDirectory.drain` waits for them and
raises the first error. Every file is written atomically. On Linux the thread
runs at a lower CPU priority (nice +10), so on a busy machine its hashing and
copying yield to the training steps rather than compete with them.

Example:
    >>> import tempfile, torch
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.write_run({"format": 1, "trainer": {}}, streams={})
    >>> run.save_checkpoint({"w": torch.ones(2), "epoch": 1}, epoch=1, step=0)
    >>> run.drain(); run.close()
    >>> run.load_checkpoint()["w"].tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import safetensors.numpy
import torch

from mariana.training.data.mappers import DatasetMapper
from mariana.training.data.stream_records import read_stream
from mariana.training.storage.checkpoint import CheckpointStore, clean_run_directory
from mariana.training.storage.run_files import read_json, write_json
from mariana.training.storage.run_record import run_record
from mariana.training.storage.safetensors_files import write_safetensors
from mariana.training.storage.tensor_tree import join_tensors, split_tensors

RUN_FORMAT = 1


class RunDirectory:
    """One run's folder and its checkpoint store, with a single background writer."""

    def __init__(self, path: str | Path, keep_checkpoints: int = 3) -> None:
        self.path = Path(path)
        self.store = CheckpointStore(self.path, keep_checkpoints)
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._jobs: list[concurrent.futures.Future] = []
        self._record: dict | None = None

    @property
    def run_file(self) -> Path:
        return self.path / "run.json"

    def holds_run(self) -> bool:
        """Whether the folder holds a run to resume: run.json and a checkpoint (a run killed before its first
        checkpoint left nothing to resume, so a new start may reuse the folder)."""
        return self.run_file.exists() and self.store.has_checkpoint()

    # -- the background writer ------------------------------------------------------------
    def start_writer(self) -> None:
        if self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mariana-checkpoint",
                                                                 initializer=lower_thread_priority)

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` on the writer thread (after raising any earlier write's error)."""
        self.raise_failed_writes()
        self.start_writer()
        self._jobs.append(self._writer.submit(function, *args))

    def raise_failed_writes(self) -> None:
        pending = []
        for job in self._jobs:
            if job.done():
                job.result()
            else:
                pending.append(job)
        self._jobs = pending

    def drain(self) -> None:
        """Wait for every submitted write; raises the first one's error."""
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.result()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    # -- run files --------------------------------------------------------------------------
    def write_run(self, run: dict, streams: Mapping[str, DatasetMapper]) -> None:
        """Create the folder now; write the data copy and run.json in the background."""
        self.path.mkdir(parents=True, exist_ok=True)
        clean_run_directory(self.path)
        self.submit(self._write_run_files, run, dict(streams))

    def _write_run_files(self, run: dict, streams: Mapping[str, DatasetMapper]) -> None:
        data = self.path / "data"
        data.mkdir(exist_ok=True)
        for name, mapper in streams.items():
            write_safetensors(data / f"{name}.safetensors", mapper.arrays())
        run["trainer"]["streams"] = {name: mapper.describe() for name, mapper in streams.items()}
        write_json(self.run_file, run)

    def read_run(self) -> dict:
        if not self.holds_run():
            raise FileNotFoundError(f"{str(self.path)!r} is not a Mariana run directory (no run.json).")
        return read_json(self.run_file)

    def load_data(self, stream: str, info: dict) -> DatasetMapper:
        """The run's own copy of ``stream``'s data (and the sources it recorded), as a mapper with the recorded sampler."""
        return read_stream(lambda: safetensors.numpy.load_file(str(self.path / "data" / f"{stream}.safetensors")), info,
                           f"The run in {str(self.path)!r}", stream)

    # -- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self, state: dict, epoch: int, step: int, best: bool = False) -> None:
        """Snapshot ``state`` now (its tensors copied to the host) and write it in the background."""
        tensors: dict[str, torch.Tensor] = {}
        document = split_tensors(state, tensors, "state")
        self.submit(self._save, tensors, document, epoch, step, best)

    def save_now(self, state: dict, epoch: int, step: int) -> None:
        """Write a checkpoint and wait for it (an emergency save), even when an earlier write failed."""
        try:
            self.drain()
        except Exception as error:  # a failed periodic write must not prevent the emergency one
            print(f"mariana: an earlier checkpoint write failed ({error!r}); writing the emergency checkpoint anyway.", file=sys.stderr)
        self.save_checkpoint(state, epoch, step)
        self.drain()

    def _save(self, tensors: dict[str, torch.Tensor], document: dict, epoch: int, step: int, best: bool) -> None:
        # On the writer thread, after run.json (written first): each checkpoint records the run document it belongs to.
        document["run"] = self.record()
        self.store.save(tensors, document, epoch, step, best)

    def record(self) -> dict:
        """run.json's record (digest and document) that each checkpoint carries, so an edited run.json is refused."""
        if self._record is None:
            self._record = run_record(read_json(self.run_file))
        return self._record

    def load_checkpoint(self, which: str = "latest") -> dict:
        tensors, document = self.store.load(which)
        return join_tensors(document, tensors)


def lower_thread_priority(increment: int = 10) -> None:
    """Make the calling thread nicer by ``increment`` (Linux, where a thread's id names it alone; elsewhere nothing)."""
    if sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        thread = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, thread, min(os.getpriority(os.PRIO_PROCESS, thread) + increment, 19))
        except OSError:  # a sandbox may forbid it: the writes are the same, only less polite
            pass
