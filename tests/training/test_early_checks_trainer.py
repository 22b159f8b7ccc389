"""What the Trainer refuses before writing anything (issue 27, items 3 and 10)."""

import numpy as np
import pytest
from torch.utils.data import IterableDataset

import mariana as mar
import mariana.costs as MC
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, stops


def test_class_weights_of_the_wrong_length_are_refused_before_the_run_directory_is_written(tmp_path):
    mar.seed(0)
    net = build_mlp((6,), 3, hidden=8)
    with pytest.raises(ValueError, match=r"'out' has 3 classes, so NegativeLogLikelihood expected 3 class_weights.*received 2"):
        net["out"].cost = MC.NegativeLogLikelihood(class_weights=[1.0, 2.0])
    run_dir = tmp_path / "run"
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype(np.float32), rng.integers(0, 3, 32)
    history = Trainer(net, "out", batch_size=16, stops=[stops.EpochWall(1)], recorders=[], seed=0, run_dir=run_dir).start(
        DatasetMapper(inp=x, out=y))
    assert len(history) == 1  # the refused cost left the layer's working one in place


def test_an_iterable_dataset_passed_to_start_is_told_what_works_instead():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter([])

    mar.seed(0)
    trainer = Trainer(build_mlp((6,), 3, hidden=8), "out", stops=[stops.EpochWall(1)], recorders=[])
    with pytest.raises(TypeError) as error:
        trainer.start(Stream())
    message = str(error.value)
    assert "train: an IterableDataset (Stream) cannot be trained on" in message
    assert "a map-style Dataset through DatasetMapper.from_dataset(dataset, inp=0, out=1)" in message
    assert "np.load(path, mmap_mode='r')" in message
