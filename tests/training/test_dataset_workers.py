"""Map-style Datasets read by worker processes: the Trainer's order and shares, bit-identical results, clean shutdowns."""

import multiprocessing
import os
import signal

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, recorders
from mariana.training.data.streams import FileStream
from tests.helpers import train
from tests.training.run_child import RaiseAt


class Pairs(Dataset):
    """``(x[i], y[i])``, counting the items this process reads; ``bad`` rows come back with a wrong shape."""

    def __init__(self, x, y, bad=()):
        self.x, self.y, self.bad = x, y, set(bad)
        self.reads = 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        self.reads += 1
        if index in self.bad:
            return torch.zeros(2), 0
        return torch.from_numpy(self.x[index]), int(self.y[index])


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 6)).astype(np.float32), rng.integers(0, 3, 200)


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))


def without_time(history):
    return [{k: v for k, v in entry.items() if k != "time"} for entry in history]


@pytest.mark.parametrize("threads", [1, 3])
def test_workers_train_bit_identically_and_read_the_batches_themselves(arrays, threads):
    x, y = arrays
    reference, reference_history = train(DatasetMapper(inp=x, out=y))
    dataset = Pairs(x, y)
    trained, history = train(DatasetMapper.from_dataset(dataset, inp=0, out=1, workers=2, threads=threads))
    assert same_weights(reference, trained) and without_time(reference_history) == without_time(history)
    # Read here: item 0 (the layout), each epoch's first batch of 32 (the plan starts from it) and each evaluation
    # (one batch of 200 <= eval_batch_size: nothing to read ahead); the workers read the other 12 training batches.
    assert dataset.reads == 1 + 2 * 32 + 2 * 200
    assert multiprocessing.active_children() == []  # the workers stopped with the session


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_workers_give_each_rank_its_share_of_every_batch(arrays, shards):
    x, y = arrays
    mapper = DatasetMapper.from_dataset(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), inp=0, out=1, workers=2)
    stream = FileStream(build_mlp((6,), 3, hidden=4).cost_plan("out"), mapper, ["out"])
    order = np.random.default_rng(0).permutation(200)
    try:
        for rank in range(shards):
            rows = stream.in_order(torch.from_numpy(order))
            per_rank = 24 // shards
            for batch in range(0, 200, 24):  # this rank's part of each global batch of 24, the last one short
                low, high = min(batch + rank * per_rank, 200), min(batch + (rank + 1) * per_rank, 200)
                if low < high:
                    assert torch.equal(rows(low, high).feeds["inp"], torch.from_numpy(x[order[low:high]]))
            for low in range(0, 200, 64):  # an evaluation between epochs: stored order
                assert torch.equal(stream.rows(low, min(low + 64, 200)).feeds["inp"], torch.from_numpy(x[low:low + 64]))
    finally:
        stream.close()
    assert multiprocessing.active_children() == []


def test_resume_is_exact_with_another_worker_count(arrays, tmp_path):
    x, y = arrays

    def mapper(workers):
        return DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1, workers=workers)

    reference, _ = train(mapper(0), epochs=3)
    with pytest.raises(RuntimeError, match="recorder failure"):
        train(mapper(2), run_dir=tmp_path / "run", extra=[RaiseAt(2, 3)], epochs=3)
    assert multiprocessing.active_children() == []
    for workers in (1, 0):  # the worker count is how the data is read, not which data
        data = mapper(workers)
        resumed = Trainer.resume(tmp_path / "run", data, valid=data, recorders=[])
        assert resumed.epoch == 3 and same_weights(reference, resumed)


class TermAt(recorders.Recorder):
    def on_step(self, trainer, step, steps):
        if trainer.epoch == 1 and step == 2:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_saves_stops_the_workers_and_resumes_exactly(arrays, tmp_path):
    x, y = arrays
    reference, _ = train(DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1), epochs=3)
    data = DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1, workers=2)
    with pytest.raises(SystemExit) as stopped:
        train(data, run_dir=tmp_path / "run", extra=[TermAt()], epochs=3)
    assert stopped.value.code == 143 and multiprocessing.active_children() == []
    data = DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1, workers=2)
    resumed = Trainer.resume(tmp_path / "run", data, valid=data, recorders=[])
    assert resumed.epoch == 3 and same_weights(reference, resumed)


def test_a_wrong_row_read_by_a_worker_names_it_and_stops_the_workers(arrays):
    x, y = arrays
    with pytest.raises(ValueError, match=r"row 150 of Pairs gives 'inp' \(field 0\) of shape \(2,\)"):
        train(DatasetMapper.from_dataset(Pairs(x, y, bad=[150]), inp=0, out=1, workers=2), epochs=1)
    assert multiprocessing.active_children() == []


def test_reading_options_are_checked(arrays):
    x, y = arrays
    with pytest.raises(ValueError, match=r"DatasetMapper.from_dataset: workers must be an int >= 0, but received -1"):
        DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1, workers=-1)
    with pytest.raises(ValueError, match=r"threads must be an int >= 1, but received 0"):
        DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1, threads=0)
    first = DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1, workers=2, threads=4)
    assert first.describe() == DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1).describe()  # not the data's identity
