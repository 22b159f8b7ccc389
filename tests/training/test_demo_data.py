"""The MNIST demo copies no data into its run directory (issue 11): it trains on memory-mapped decoded files and resumes."""

import json

import numpy as np
import pytest
import safetensors.numpy
import torch

import mariana as mar
from mariana import cli, datasets
from mariana.training import Trainer, recorders
from tests.helpers import write_idx


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """Four idx files of MNIST's format (150 train, 40 test images of 28x28), and a cache folder of the test's own."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for part, count in (("train", 150), ("t10k", 40)):
        write_idx(folder / f"{part}-images-idx3-ubyte.gz", 2051, (count, 28, 28), rng.integers(0, 256, count * 784, np.uint8).tobytes())
        write_idx(folder / f"{part}-labels-idx1-ubyte.gz", 2049, (count,), rng.integers(0, 10, count, np.uint8).tobytes())
    monkeypatch.setenv("MARIANA_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return folder


def demo(folder, run_dir, capsys):
    status = cli.main(["demo", "--dataset", "mnist", "--data-dir", str(folder), "--epochs", "2", "--batch-size", "32",
                       "--threads", "1", "--run-dir", str(run_dir)])
    capsys.readouterr()
    return status


def test_mmap_loads_the_same_arrays_from_one_decoded_copy(tiny_mnist, tmp_path):
    decoded, mapped = datasets.mnist(tiny_mnist), datasets.mnist(tiny_mnist, mmap=True)
    for part in ("train", "test"):
        for key in ("x", "y"):
            assert isinstance(mapped[part][key], np.memmap)
            assert mapped[part][key].dtype == decoded[part][key].dtype and np.array_equal(mapped[part][key], decoded[part][key])
    assert len(list((tmp_path / "cache").glob("mnist-*/*.npy"))) == 4
    datasets.mnist(tiny_mnist, mmap=True)  # the second load reuses the copy
    assert len(list((tmp_path / "cache").glob("mnist-*"))) == 1


def test_the_mnist_demo_leaves_no_data_copy_and_resumes_without_data(tiny_mnist, tmp_path, capsys, monkeypatch):
    assert demo(tiny_mnist, tmp_path / "whole", capsys) == 0
    for stream in ("train", "valid"):
        assert safetensors.numpy.load_file(str(tmp_path / "whole" / "data" / f"{stream}.safetensors")) == {}
    sources = json.loads((tmp_path / "whole" / "run.json").read_text())["trainer"]["streams"]["train"]["sources"]
    recorded = {source["keys"][0]: source for source in sources if source["kind"] == "file"}
    assert {key: record["path"].split("/")[-1] for key, record in recorded.items()} == {"inp": "train-x.npy", "out": "train-y.npy"}
    assert all(record["path"].startswith(str(tmp_path / "cache")) for record in recorded.values())

    def fail_once(self, trainer, step, steps):  # the run dies in its second epoch
        if trainer.epoch == 1 and step == 2:
            raise RuntimeError("killed")

    monkeypatch.setattr(recorders.CSV, "on_step", fail_once, raising=False)
    with pytest.raises(RuntimeError, match="killed"):
        demo(tiny_mnist, tmp_path / "cut", capsys)
    monkeypatch.undo()
    monkeypatch.setenv("MARIANA_CACHE", str(tmp_path / "cache"))
    resumed = Trainer.resume(tmp_path / "cut")  # no data passed: the run reopens the cache's files
    whole = mar.load(str(tmp_path / "whole" / "model.mar"))
    assert resumed.epoch == 2
    assert all(torch.equal(a, b) for a, b in zip(whole.module.state_dict().values(), resumed.net.module.state_dict().values()))
    assert cli.main(["resume", str(tmp_path / "cut")]) == 0
