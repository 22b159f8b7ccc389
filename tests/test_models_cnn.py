"""build_cnn, the network behind ``mariana demo --model cnn``, learns the 8x8 digits."""

import numpy as np

import mariana as mar
from mariana.datasets import digits
from mariana.models import BUILDERS, build_cnn


def test_cnn_builder_is_registered_and_learns_digits(one_thread):
    assert BUILDERS["cnn"] is build_cnn
    mar.seed(0)
    data = digits()
    x, y = data["train"]["x"].reshape(-1, 1, 8, 8), data["train"]["y"]
    net = build_cnn((1, 8, 8), 10)
    assert net["inp"].shape == (1, 8, 8) and list(net.outputs) == ["out"]
    rng = np.random.default_rng(0)
    for _ in range(4):
        order = rng.permutation(len(x))
        for start in range(0, len(x), 32):
            rows = order[start:start + 32]
            net.train("out", inp=x[rows], out=y[rows])
    accuracy = net.accuracy("out", inp=data["test"]["x"].reshape(-1, 1, 8, 8), out=data["test"]["y"])
    assert accuracy >= 0.95
