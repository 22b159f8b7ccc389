"""Map-style torch Datasets in DatasetMapper (issue 11): gathered per batch, prefetched, checked row by row."""

import json

import numpy as np
import pytest
import safetensors.numpy
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from mariana.training import DatasetMapper, Trainer
from mariana.training.data.mappers import as_mapper
from tests.helpers import train
from tests.training.run_child import RaiseAt


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 6)).astype(np.float32), rng.integers(0, 3, 200)


class Pairs(Dataset):
    """``(x[i], y[i])`` as a tensor and a Python int, counting how items are read; ``bad`` rows come back wrong."""

    def __init__(self, x, y, bad=None):
        self.x, self.y, self.bad = x, y, bad or {}
        self.single = self.batched = 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        self.single += 1
        if index in self.bad:
            return self.bad[index]
        return torch.from_numpy(self.x[index]), int(self.y[index])


class BatchedPairs(Pairs):
    def __getitems__(self, indices):
        self.batched += 1
        return [(torch.from_numpy(self.x[i]), int(self.y[i])) for i in indices]


class Records(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return {"image": self.x[index], "label": self.y[index]}


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.net.parameters(), b.net.parameters()))


def without_time(history):
    return [{k: v for k, v in entry.items() if k != "time"} for entry in history]


@pytest.mark.parametrize("make", [
    lambda x, y: DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1),
    lambda x, y: DatasetMapper.from_dataset(BatchedPairs(x, y), inp=0, out=1),
    lambda x, y: DatasetMapper.from_dataset(Records(x, y), inp="image", out="label"),
    lambda x, y: DatasetMapper.from_dataset(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), inp=0, out=1),
])
def test_a_dataset_trains_bit_identically_to_the_same_rows_as_arrays(arrays, make):
    x, y = arrays
    reference, reference_history = train(DatasetMapper(inp=x, out=y))
    trained, history = train(make(x, y))
    assert same_weights(reference, trained)
    assert without_time(reference_history) == without_time(history)


def test_getitems_reads_a_batch_in_one_call(arrays):
    dataset = BatchedPairs(*arrays)
    train(DatasetMapper.from_dataset(dataset, inp=0, out=1), epochs=1)
    assert dataset.single == 0 and dataset.batched >= 7  # 7 training batches of 32, then the evaluation's


def test_the_run_directory_records_the_dataset_and_resume_needs_it_again(arrays, tmp_path):
    x, y = arrays

    def mapper():
        return DatasetMapper.from_dataset(Pairs(x, y), inp=0, out=1)

    reference, _ = train(mapper(), epochs=3)
    with pytest.raises(RuntimeError, match="recorder failure"):
        train(mapper(), run_dir=tmp_path / "run", extra=[RaiseAt(2, 3)], epochs=3)
    assert safetensors.numpy.load_file(str(tmp_path / "run" / "data" / "train.safetensors")) == {}
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["trainer"]["streams"]["train"]
    (source,) = recorded["sources"]
    assert recorded["copied"] is False and source["kind"] == "dataset" and source["stored"] == "reference"
    assert source["length"] == 200 and source["keys"] == ["inp", "out"] and source["class"].endswith("test_dataset_mapper.Pairs")
    with pytest.raises(ValueError, match=r"read its train data from a torch Dataset \(tests.training.test_dataset_mapper.Pairs, "
                                         r"200 rows\), which a run directory cannot copy: pass the same data again"):
        Trainer.resume(tmp_path / "run", recorders=[])
    with pytest.raises(ValueError, match="the train data passed does not match the run's"):
        Trainer.resume(tmp_path / "run", DatasetMapper.from_dataset(Pairs(x[:100], y[:100]), inp=0, out=1), recorders=[])
    data = mapper()
    resumed = Trainer.resume(tmp_path / "run", data, valid=data, recorders=[])
    assert resumed.epoch == 3 and same_weights(reference, resumed)


def test_a_wrong_row_names_the_stream_the_layer_and_the_row(arrays):
    x, y = arrays
    bad_shape = DatasetMapper.from_dataset(Pairs(x, y, bad={37: (torch.zeros(5), 1)}), inp=0, out=1)
    with pytest.raises(ValueError, match=r"DatasetMapper 'train' and 'valid': row 37 of Pairs gives 'inp' \(field 0\) of shape "
                                         r"\(5,\) and dtype float32, but row 0 gave shape \(6,\) and dtype float32"):
        train(bad_shape, epochs=1)
    bad_type = DatasetMapper.from_dataset(Pairs(x, y, bad={150: (torch.from_numpy(x[150]), 1.5)}), inp=0, out=1)
    with pytest.raises(ValueError, match=r"row 150 of Pairs gives 'out' \(field 1\) of shape \(\) and dtype float64, "
                                         r"but row 0 gave shape \(\) and dtype int64"):
        train(bad_type, epochs=1)
    short = DatasetMapper.from_dataset(Pairs(x, y, bad={3: (torch.from_numpy(x[3]),)}), inp=0, out=1)
    with pytest.raises(ValueError, match=r"row 3 of Pairs has no field 1 for 'out': the item is a tuple of 1"):
        train(short, epochs=1)


def test_only_map_style_datasets_with_a_length_are_taken(arrays):
    class Stream(IterableDataset):
        def __iter__(self):
            return iter([])

    class Endless(Dataset):
        def __getitem__(self, index):
            return index

    with pytest.raises(TypeError, match="only map-style datasets .* are supported, but received Stream"):
        DatasetMapper.from_dataset(Stream(), inp=0)
    with pytest.raises(TypeError, match="Endless has no len"):
        DatasetMapper.from_dataset(Endless(), inp=0)
    with pytest.raises(ValueError, match=r"'inp' \(field 'image' of item 0\) must be numeric"):
        DatasetMapper.from_dataset([{"image": "a string"}], inp="image")
    with pytest.raises(TypeError, match=r"train: a torch Dataset needs the layer each of its fields feeds: pass "
                                        r"DatasetMapper.from_dataset\(dataset, inp=0, out=1\)"):
        as_mapper(Pairs(*arrays), "train")


def test_class_balanced_sampling_reads_the_label_column(arrays):
    x, y = arrays
    mapper = DatasetMapper.from_dataset(Pairs(x, y), sampler="class_balanced", inp=0, out=1)
    assert np.array_equal(mapper.numpy("out"), y)
    counts = np.bincount(y[mapper.sampler.epoch_order(mapper)])
    assert len(set(counts.tolist())) == 1
