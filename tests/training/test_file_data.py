"""Data larger than memory (issue 11): memory-mapped arrays read batch by batch, recorded by path, size and sha256."""

import json

import numpy as np
import pytest
import safetensors.numpy
import torch

import mariana as mar
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, stops
from tests.training.run_child import RaiseAt


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 6)).astype(np.float32), rng.integers(0, 3, 200)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path / "x.npy", tmp_path / "y.npy", x, y


def train(mapper, run_dir=None, extra=(), epochs=2, **options):
    mar.seed(0)
    net = build_mlp((6,), 3, hidden=16)  # dropout: bit-identity needs the same random draws in the same order
    trainer = Trainer(net, "out", batch_size=32, stops=[stops.EpochWall(epochs)], recorders=list(extra), seed=1,
                      run_dir=run_dir, **options)
    return trainer, trainer.start(mapper, valid=mapper)


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
    record = json.loads((tmp_path / "run" / "run.json").read_text())["trainer"]["streams"]["train"]["files"]["inp"]
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
