"""DatasetMapper: alignment checks, samplers, content hashes."""

import numpy as np
import pytest
import torch

from mariana.training import ClassBalanced, DatasetMapper, Sequential, Shuffled


def test_unequal_lengths_name_every_key():
    with pytest.raises(ValueError, match=r"same length on axis 0\), but received lengths \{'inp': 5, 'out': 4\}"):
        DatasetMapper(inp=np.zeros((5, 2)), out=np.zeros(4))


@pytest.mark.parametrize(("arrays", "message"), [
    ({}, "expected layer_name=array keywords"),
    ({"inp": np.float32(3)}, "'inp' must have a sample axis first, but received a scalar"),
    ({"inp": np.array(["a", "b"])}, "'inp' must be numeric, but received an array of dtype <U1"),
    ({"inp": np.zeros((0, 3))}, "at least one sample"),
])
def test_bad_arrays_raise(arrays, message):
    with pytest.raises(ValueError, match=message):
        DatasetMapper(**arrays)


def test_unknown_sampler_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"sampler must be one of \['class_balanced', 'sequential', 'shuffled'\]"):
        DatasetMapper(inp=np.zeros(3), sampler="random")


def test_samplers_orders_and_generator_state_round_trip():
    mapper = DatasetMapper(inp=np.arange(10), sampler=Shuffled(seed=4))
    assert Sequential().epoch_order(mapper).tolist() == list(range(10))
    sampler = mapper.sampler
    sampler.start()
    saved = sampler.state_dict()
    first = sampler.epoch_order(mapper)
    assert sorted(first.tolist()) == list(range(10)) and first.tolist() != list(range(10))
    again = Shuffled(seed=999)
    again.load_state_dict(saved)
    assert again.epoch_order(mapper).tolist() == first.tolist()


def test_class_balanced_needs_integer_labels():
    mapper = DatasetMapper(inp=np.zeros((4, 2)), out=np.array([0, 0, 0, 1]))
    order = ClassBalanced(seed=0).epoch_order(mapper)
    assert len(order) == 6 and (mapper["out"][order] == 1).sum() == 3
    with pytest.raises(ValueError, match=r"exactly one 1-d integer array, but received none"):
        ClassBalanced(seed=0).epoch_order(DatasetMapper(inp=np.zeros((4, 2))))


def test_content_hash_sees_every_byte_and_accepts_tensors():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    a = DatasetMapper(inp=x, out=np.arange(6))
    b = DatasetMapper(inp=torch.from_numpy(x.copy()), out=torch.arange(6))
    assert a.content_hash() == b.content_hash()
    changed = x.copy()
    changed[5, 1] += 1
    assert DatasetMapper(inp=changed, out=np.arange(6)).content_hash() != a.content_hash()
    assert len(a) == 6 and sorted(a) == ["inp", "out"]


def test_class_balanced_sampler_reads_tensor_labels():
    x, y = torch.zeros(10, 2), torch.tensor([0] * 8 + [1] * 2)
    for labels in (y, y.to(torch.int32), y.to(torch.uint8)):
        mapper = DatasetMapper(inp=x, out=labels, sampler=ClassBalanced(seed=0))
        order = mapper.sampler.epoch_order(mapper)
        assert np.bincount(y.numpy()[order]).tolist() == [8, 8]
    mapper = DatasetMapper(inp=x, out=y.float(), sampler=ClassBalanced(seed=0))
    with pytest.raises(ValueError, match="expected exactly one 1-d integer array"):
        mapper.sampler.epoch_order(mapper)


def test_tensors_numpy_cannot_hold_are_refused_when_the_mapper_is_built():
    for dtype in (torch.bfloat16, torch.complex64):
        with pytest.raises(ValueError, match=rf"'inp' must be a real tensor.*received {dtype}; convert it first"):
            DatasetMapper(inp=torch.zeros(4, 2, dtype=dtype), out=np.zeros(4, dtype=np.int64))
