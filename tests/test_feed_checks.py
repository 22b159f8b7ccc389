"""Data checks (ids, lengths) run before anything does: a refused call changes nothing,
not even the running statistics a BatchNorm updates in its forward pass."""

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS


def test_bad_lengths_leave_batchnorm_running_stats_untouched():
    mar.seed(0)
    seq, lengths = ML.Input((5, 3), name="seq"), ML.Input(1, dtype="int64", name="lengths")
    norm, lstm = ML.BatchNorm(name="norm"), ML.LSTM(4, name="lstm")
    seq > norm > lstm
    lengths > lstm
    net = lstm > ML.Regression(1, learning_scenari=[MS.GradientDescent(0.1)], name="out")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"LSTM 'lstm' takes sequences of 5 steps, so lengths must be in \[1, 5\].*from 2 to 9"):
        net.train("out", seq=x, lengths=np.array([[9], [2]]), out=np.zeros((2, 1)))
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    net.train("out", seq=x, lengths=np.array([[5], [2]]), out=np.zeros((2, 1)))
    assert not torch.equal(net.state_dict()["norm.running_mean"], before["norm.running_mean"])


def test_ids_are_checked_through_a_wrapper_too():
    net = ML.Input((2, 3), dtype="int64", name="ids") > ML.TimeDistributed(ML.Embedding(4, 2, name="emb"), name="td")
    with pytest.raises(ValueError, match=r"Embedding 'emb' has 4 entries, so ids must be in \[0, 3\], but received ids from 0 to 4"):
        net.propagate("td", ids=np.array([[[0, 1, 2], [3, 4, 0]]]))
    assert net.propagate("td", ids=np.array([[[0, 1, 2], [3, 3, 0]]])).shape == (1, 2, 3, 2)


def test_ids_reaching_an_embedding_through_another_layer_are_checked_in_forward():
    class ShiftIds(ML.Layer):
        """A custom layer that passes integer ids on, shifted by one."""

        input_kind = "int"

        @property
        def dtype(self):
            return torch.int64

        def output_shape(self, input_shape):
            return input_shape

        def forward(self, ids):
            return ids + 1

    net = ML.Input(3, dtype="int64", name="ids") > ShiftIds(name="shift") > ML.Embedding(4, 2, name="emb")
    with pytest.raises(ValueError, match=r"Embedding 'emb' has 4 entries.*from 1 to 4"):
        net.propagate("emb", ids=np.array([[0, 3, 1]]))
    assert net.propagate("emb", ids=np.array([[0, 2, 1]])).shape == (1, 3, 2)
