"""Row sources (issue 21): one protocol for arrays, files, Datasets and sources of your own; old run records still read."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from mariana.training import DatasetMapper, Trainer
from mariana.training.data.sources import Column, RowSource
from mariana.training.data.stream_records import read_stream, recorded_hash
from tests.helpers import train
from tests.training.run_child import RaiseAt


class Squares(RowSource):
    """Rows computed on the fly: x and (x**2 > 1000) as class ids; stored by copy (the default)."""

    keys = ("inp", "out")

    def __init__(self, length=200):
        self.length = length

    def __len__(self):
        return self.length

    def take(self, indices):
        x = np.stack([np.sin(indices * k) for k in range(1, 7)], axis=1).astype(np.float32)
        return {"inp": x, "out": (indices * indices % 3).astype(np.int64)}


class Remote(Squares):
    stored = "reference"


def test_a_source_stored_by_copy_trains_like_its_arrays_and_resumes_from_the_copy(tmp_path):
    rows = Squares().take(np.arange(200))
    reference, _ = train(DatasetMapper(inp=rows["inp"], out=rows["out"]), epochs=3)
    mapper = DatasetMapper.from_source(Squares())
    assert not mapper.resident and mapper.content_hash() == DatasetMapper(inp=rows["inp"], out=rows["out"]).content_hash()
    with pytest.raises(RuntimeError, match="recorder failure"):
        train(mapper, run_dir=tmp_path / "run", extra=[RaiseAt(2, 3)], epochs=3)
    resumed = Trainer.resume(tmp_path / "run", recorders=[])  # from the run directory's copy alone
    assert resumed.epoch == 3 and all(torch.equal(a, b) for a, b in zip(reference.net.parameters(), resumed.net.parameters()))


def test_a_source_stored_by_reference_needs_the_data_again_to_resume(tmp_path):
    with pytest.raises(RuntimeError, match="recorder failure"):
        train(DatasetMapper.from_source(Remote()), run_dir=tmp_path / "run", extra=[RaiseAt(2, 3)], epochs=3)
    record = json.loads((tmp_path / "run" / "run.json").read_text())["trainer"]["streams"]["train"]["sources"]
    assert record == [{"kind": "tests.training.test_row_sources.Remote", "stored": "reference", "length": 200, "keys": ["inp", "out"]}]
    with pytest.raises(ValueError, match=r"read its train data from tests.training.test_row_sources.Remote, which a run directory "
                                         r"cannot reopen: pass the same data again"):
        Trainer.resume(tmp_path / "run", recorders=[])
    with pytest.raises(ValueError, match="the train data passed does not match the run's"):
        Trainer.resume(tmp_path / "run", DatasetMapper.from_source(Remote(100)), recorders=[])
    data = DatasetMapper.from_source(Remote())
    assert Trainer.resume(tmp_path / "run", data, valid=data, recorders=[]).epoch == 3


def test_a_source_must_offer_its_rows_and_columns_name_real_keys():
    class Empty(RowSource):
        keys = ("inp",)

    with pytest.raises(NotImplementedError, match="Empty must implement __len__"):
        len(Empty())
    with pytest.raises(NotImplementedError, match=r"Empty must implement take\(indices\)"):
        Empty().take(np.arange(2))
    with pytest.raises(ValueError, match=r"Squares has no key 'image'; its keys are \['inp', 'out'\]"):
        Column(Squares(), "image")
    with pytest.raises(TypeError, match="DatasetMapper.from_source: expected a RowSource, but received dict"):
        DatasetMapper.from_source({"inp": np.zeros(3)})


def small_arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(50, 3)).astype(np.float32), rng.integers(0, 3, 50)


def test_in_memory_data_hashes_as_before_row_sources():
    x, y = small_arrays()  # the hash Mariana recorded for these arrays before row sources (run directories keep resuming)
    mapper = DatasetMapper(inp=x, out=y, weights={"out": np.arange(50) % 2})
    assert mapper.content_hash() == "a146da92598e08ab28b1f22ecedfad236f0108eb709696a3920e6d677509ea67"


#: A Dataset stream's record as Mariana wrote it before row sources ("files" and "datasets" instead of "sources").
FIRST_FORMAT = json.loads(
    '{"length": 50, "arrays": {"inp": {"dtype": "float32", "shape": [50, 3]}, "out": {"dtype": "int64", "shape": [50]}}, '
    '"sampler": {"class": "Shuffled", "config": {"seed": null}}, "weights": [], "files": {}, "datasets": [{"class": '
    '"torch.utils.data.dataset.TensorDataset", "length": 50, "fields": {"inp": 0, "out": 1}, "layouts": {"inp": {"dtype": '
    '"<f4", "shape": [3]}, "out": {"dtype": "<i8", "shape": []}}}], "copied": false, '
    '"sha256": "b489d05c8501cef3801f39c5779a42d3515844a73dd3fb67d8647894899b7e6b"}')


def test_records_of_the_first_format_are_still_read():
    x, y = small_arrays()
    dataset = DatasetMapper.from_dataset(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), inp=0, out=1)
    assert recorded_hash(dataset, FIRST_FORMAT) == FIRST_FORMAT["sha256"] != dataset.content_hash()
    with pytest.raises(ValueError, match=r"The run read its valid data from a torch Dataset \(torch.utils.data.dataset.TensorDataset, "
                                         r"50 rows\), which a run directory cannot copy"):
        read_stream(dict, FIRST_FORMAT, "The run", "valid")
    arrays = DatasetMapper(inp=x, out=y, weights={"out": np.arange(50) % 2})
    copied = {**FIRST_FORMAT, "weights": ["out"], "datasets": [], "copied": True, "sha256": arrays.content_hash()}
    again = read_stream(arrays.arrays, copied, "The run", "train")
    assert again.content_hash() == arrays.content_hash() and np.array_equal(again.weights["out"], arrays.weights["out"])
