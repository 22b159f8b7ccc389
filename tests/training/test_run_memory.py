"""A run directory costs no second copy of the data (issue 13 item 5): streaming data copy, per-batch gathers."""

import numpy as np
import pytest
import safetensors.numpy
import torch

import mariana as mar
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, stops
from mariana.training.data import streams
from mariana.training.storage.run_directory import write_safetensors


def test_the_streamed_data_copy_reads_back_with_safetensors(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(7, 3)).astype(np.float32), "ids": rng.integers(0, 9, 7), "mask": rng.random(7) > 0.5,
              "half": np.ones((7, 2), np.float16), "u": np.arange(7, dtype=np.uint8), "empty": np.zeros((7, 0), np.float64)}
    write_safetensors(tmp_path / "d.safetensors", arrays)
    back = safetensors.numpy.load_file(str(tmp_path / "d.safetensors"))
    assert back.keys() == arrays.keys()
    for key, value in arrays.items():
        assert back[key].dtype == value.dtype and np.array_equal(back[key], value)


def run(seed=0):
    mar.seed(seed)
    net = build_mlp((6,), 3, hidden=8)
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(100, 6)).astype(np.float32), rng.integers(0, 3, 100)
    history = Trainer(net, "out", batch_size=16, stops=[stops.EpochWall(2)], recorders=[], seed=seed).start(
        DatasetMapper(inp=x, out=y))
    return net.state_dict(), history


def test_gathering_batch_by_batch_trains_exactly_as_gathering_the_epoch(monkeypatch):
    whole_weights, whole_history = run()
    monkeypatch.setattr(streams, "GATHER_ONCE_BYTES", 0)  # every stream is "large": one gather per batch
    batch_weights, batch_history = run()
    assert all(torch.equal(whole_weights[key], batch_weights[key]) for key in whole_weights)
    assert [entry["train"] for entry in whole_history] == [entry["train"] for entry in batch_history]


@pytest.mark.parametrize("limit", [0, 2**40])
def test_in_order_rows_are_the_rows_of_the_order(monkeypatch, limit):
    monkeypatch.setattr(streams, "GATHER_ONCE_BYTES", limit)
    stream = streams.PreparedStream({"x": torch.arange(10.0)[:, None]}, {"y": torch.arange(10)}, {}, {})
    rows = stream.in_order(torch.tensor([9, 0, 8, 1, 7, 2, 6, 3, 5, 4]))
    assert rows(2, 5).targets["y"].tolist() == [8, 1, 7] and rows(8, 10).feeds["x"].flatten().tolist() == [5.0, 4.0]
