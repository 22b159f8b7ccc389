"""Data larger than memory (issue 11): memory-mapped arrays read batch by batch, recorded by path, size and sha256."""

import copy
import json
import os
import pickle

import numpy as np
import pytest
import safetensors.numpy
import torch

from mariana.training import DatasetMapper, Trainer
from mariana.training.data import file_data
from tests.helpers import train
from tests.training.run_child import RaiseAt


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 6)).astype(np.float32), rng.integers(0, 3, 200)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path / "x.npy", tmp_path / "y.npy", x, y




def test_memory_mapped_data_trains_exactly_as_in_memory_data(files):
    x_path, y_path, x, y = files
    in_memory, memory_history = train(DatasetMapper(inp=x, out=y))
    mapped, mapped_history = train(DatasetMapper(inp=np.load(x_path, mmap_mode="r"), out=np.load(y_path, mmap_mode="r")))
    assert all(torch.equal(a, b) for a, b in zip(in_memory.net.parameters(), mapped.net.parameters()))
    assert [{k: v for k, v in entry.items() if k != "time"} for entry in memory_history] == [
        {k: v for k, v in entry.items() if k != "time"} for entry in mapped_history]


def test_the_run_directory_records_files_instead_of_copying_them(files, tmp_path):
    x_path, y_path, _, _ = files
    mapper = DatasetMapper(inp=np.load(x_path, mmap_mode="r"), out=np.load(y_path, mmap_mode="r"))
    train(mapper, run_dir=tmp_path / "run")
    assert safetensors.numpy.load_file(str(tmp_path / "run" / "data" / "train.safetensors")) == {}
    sources = json.loads((tmp_path / "run" / "run.json").read_text())["trainer"]["streams"]["train"]["sources"]
    record = next(source for source in sources if source["keys"] == ["inp"])
    assert record["kind"] == "file" and record["stored"] == "reference"
    assert record["path"] == str(x_path.resolve()) and record["size"] == x_path.stat().st_size and len(record["sha256"]) == 64


def test_resume_reopens_the_files_and_refuses_changed_ones(files, tmp_path):
    x_path, y_path, _, _ = files

    def mapper():
        return DatasetMapper(inp=np.load(x_path, mmap_mode="r"), out=np.load(y_path, mmap_mode="r"))

    reference, _ = train(mapper(), epochs=3)
    with pytest.raises(RuntimeError, match="recorder failure"):
        train(mapper(), run_dir=tmp_path / "run", extra=[RaiseAt(2, 3)], epochs=3)
    resumed = Trainer.resume(tmp_path / "run", recorders=[])
    assert all(torch.equal(a, b) for a, b in zip(reference.net.parameters(), resumed.net.parameters()))
    with pytest.raises(RuntimeError, match="recorder failure"):
        train(mapper(), run_dir=tmp_path / "again", extra=[RaiseAt(2, 3)], epochs=3)
    x = np.load(x_path)
    x[0, 0] += 1
    np.save(x_path, x)
    with pytest.raises(ValueError, match=r"x.npy' is not the file the run read \(its size or sha256 changed\)"):
        Trainer.resume(tmp_path / "again", recorders=[])


def test_without_a_copy_resume_needs_the_data_again(files, tmp_path):
    _, _, x, y = files
    with pytest.raises(RuntimeError, match="recorder failure"):
        train(DatasetMapper(inp=x, out=y, copy_data=False), run_dir=tmp_path / "run", extra=[RaiseAt(2, 3)], epochs=3)
    assert safetensors.numpy.load_file(str(tmp_path / "run" / "data" / "train.safetensors")) == {}
    with pytest.raises(ValueError, match=r"did not copy its train data \(copy_data=False\): pass the same data again"):
        Trainer.resume(tmp_path / "run", recorders=[])
    data = DatasetMapper(inp=x, out=y, copy_data=False)
    resumed = Trainer.resume(tmp_path / "run", data, valid=data, recorders=[])
    assert resumed.epoch == 3


def test_a_slice_of_a_memory_mapped_array_reads_its_own_rows(files, tmp_path):
    x_path, y_path, x, y = files
    mapped = np.load(x_path, mmap_mode="r")
    mapper = DatasetMapper(inp=mapped[50:150], out=y[50:150])
    assert np.array_equal(mapper.rows("inp", np.array([0, 99, 3])), x[[50, 149, 53]])
    sliced, _ = train(DatasetMapper(inp=mapped[50:150], out=y[50:150]), run_dir=tmp_path / "run")
    in_memory, _ = train(DatasetMapper(inp=x[50:150], out=y[50:150]))
    assert all(torch.equal(a, b) for a, b in zip(in_memory.net.parameters(), sliced.net.parameters()))


@pytest.fixture(params=["mapped", "preadv"])
def reading(request, monkeypatch):
    """Both ways of reading file-backed rows: through a mapping (arrays up to MAPPED_BYTES) and with preadv (larger ones)."""
    if request.param == "preadv":
        monkeypatch.setattr(file_data, "MAPPED_BYTES", 0)
    return request.param


def test_rows_are_read_alike_through_a_mapping_and_with_preadv(files, reading):
    x_path, y_path, x, y = files
    mapper = DatasetMapper(inp=np.load(x_path, mmap_mode="r")[20:180], out=np.load(y_path, mmap_mode="r")[20:180])
    assert {key: mapper.source(key).mapped for key in mapper} == {"inp": reading == "mapped", "out": reading == "mapped"}
    indices = np.array([159, 0, 7, 7, 8, 100, 3])  # any order, repeats, neighbours, both ends
    assert np.array_equal(mapper.rows("inp", indices), x[20:180][indices])
    assert np.array_equal(mapper.rows("out", indices), y[20:180][indices])
    assert mapper.rows("inp", np.array([], dtype=np.int64)).shape == (0, 6)
    with pytest.raises(IndexError, match=r"rows 0\.\.160 are outside its 160 rows"):
        mapper.rows("inp", np.array([0, 160]))


def test_a_file_cut_short_while_training_is_a_clear_error_not_a_crash(files, reading):
    x_path, _, x, _ = files
    rows = DatasetMapper(inp=np.load(x_path, mmap_mode="r"), out=np.zeros(200)).source("inp")
    assert np.array_equal(rows.take(np.array([199]))["inp"], x[[199]])
    os.truncate(x_path, x_path.stat().st_size - 24)  # the last row's bytes are gone: a mapping read of them is SIGBUS
    with pytest.raises(ValueError, match=r"x.npy' is shorter than its array \(\(200, 6\)\): it changed while training"):
        rows.read(np.array([199]))


def test_the_smallest_arrays_are_mapped_while_they_fit_the_budget(tmp_path, monkeypatch):
    sizes = {"a": 40, "b": 10, "c": 30}  # rows of 8 bytes each
    for key, length in sizes.items():
        np.save(tmp_path / f"{key}.npy", np.zeros(length))
    monkeypatch.setattr(file_data, "MAPPED_BYTES", 8 * 45)  # b and c fit together, a does not
    mapped = file_data.FileRows.of_arrays({key: np.load(tmp_path / f"{key}.npy", mmap_mode="r") for key in sizes})
    assert list(mapped) == ["a", "b", "c"] and {key: rows.mapped for key, rows in mapped.items()} == {"a": False, "b": True, "c": True}


def test_a_mapper_copied_after_reading_maps_its_file_again(files):
    x_path, _, x, _ = files
    rows = file_data.FileRows(np.load(x_path, mmap_mode="r"), mapped=True)
    rows.read(np.array([1]))
    for again in (copy.deepcopy(rows), pickle.loads(pickle.dumps(rows))):
        assert np.array_equal(again.read(np.array([5, 2])), x[[5, 2]])
