"""How the run directory writes: files written together, pointers only after their checkpoint, a polite writer thread."""

import json
import os
import sys
import threading

import pytest
import torch

from mariana.training.storage import checkpoint as CK
from mariana.training.storage import run_files
from mariana.training.storage.run_directory import RunDirectory, lower_thread_priority
from mariana.training.storage.tensor_tree import join_tensors, split_tensors


def test_a_checkpoint_and_its_sidecar_then_its_pointers_are_written_together(tmp_path, monkeypatch):
    rounds = []
    real = CK.write_together
    monkeypatch.setattr(CK, "write_together", lambda files: (rounds.append(sorted(path.name for path in files)), real(files)))
    store = CK.CheckpointStore(tmp_path, keep=2)
    name = store.save({"w": torch.ones(3)}, {"epoch": 1}, epoch=1, step=0, best=True)
    assert rounds == [sorted([name, f"{name}.sha256"]), ["best", "latest"]]
    pointer = json.loads((tmp_path / "latest").read_text())
    assert pointer == json.loads((tmp_path / "best").read_text()) and pointer["checkpoint"] == name
    assert store.verified_sha256(name) == pointer["sha256"]
    tensors, state = store.load("best")
    assert tensors["w"].tolist() == [1.0, 1.0, 1.0] and state == {"epoch": 1}


def test_a_failed_checkpoint_write_leaves_the_pointers_alone(tmp_path, monkeypatch):
    store = CK.CheckpointStore(tmp_path)
    first = store.save({"w": torch.ones(2)}, {"epoch": 1}, epoch=1, step=0)
    real = run_files.write_bytes

    def failing(path, data):
        if path.name.endswith(".sha256"):
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(run_files, "write_bytes", failing)
    with pytest.raises(OSError, match="No space left"):
        store.save({"w": torch.zeros(2)}, {"epoch": 2}, epoch=2, step=0)
    assert json.loads((tmp_path / "latest").read_text())["checkpoint"] == first
    assert store.load("latest")[1] == {"epoch": 1}


def test_the_rng_states_long_int_lists_split_as_they_are():
    state = {"rng": {"python": [3, list(range(625)), None], "torch": torch.arange(3)}, "pair": (1, 2.5), "flag": True}
    tensors: dict = {}
    document = split_tensors(state, tensors, "state")
    assert document == {"rng": {"python": [3, list(range(625)), None], "torch": {"__tensor__": "state/rng/torch"}},
                        "pair": [1, 2.5], "flag": True}
    assert join_tensors(document, tensors)["rng"]["torch"].tolist() == [0, 1, 2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_writer_thread_runs_nicer_than_the_training_thread(tmp_path):
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    run = RunDirectory(tmp_path / "run")
    niceness = []
    run.submit(lambda: niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    run.drain()
    run.close()
    assert niceness == [min(before + 10, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # the caller's own priority is untouched
    lower_thread_priority(0)  # a no-op increment is allowed


def test_checkpoint_files_are_plain_safetensors_for_every_dtype_a_state_holds(tmp_path):
    from safetensors.torch import load

    from mariana.training.storage.safetensors_files import tensor_parts

    tensors = {"w": torch.randn(3, 4), "b16": torch.randn(5).to(torch.bfloat16), "rng": torch.get_rng_state(),
               "count": torch.tensor(7), "flag": torch.tensor([True, False]), "none": torch.zeros(0), "d": torch.ones(2, dtype=torch.float64),
               "odd": torch.arange(3, dtype=torch.int16)}
    parts = tensor_parts(tensors, {"mariana": "{}"})
    assert len(parts) == 1 + len(tensors)  # a header, then views of the tensors' own bytes
    loaded = load(b"".join(bytes(part) for part in parts))
    assert sorted(loaded) == sorted(tensors) and all(torch.equal(loaded[name], tensors[name]) for name in tensors)
    store = CK.CheckpointStore(tmp_path)
    store.save(tensors, {"epoch": 1}, epoch=1, step=0)
    assert all(torch.equal(store.load()[0][name], tensors[name]) for name in tensors)
    complex_parts = tensor_parts({"z": torch.zeros(2, dtype=torch.complex64)}, {})  # not in the table: safetensors' own way
    assert len(complex_parts) == 1 and load(complex_parts[0])["z"].dtype == torch.complex64
