"""The search the tuning tests run: digits' acceptance split and a one-hidden-layer network with a drawn size, activation and lr."""

from __future__ import annotations

import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS
from mariana.datasets import digits

ACTIVATIONS = [MA.ReLU(), MA.Tanh()]


def digits_streams():
    """The acceptance split of the demo: the last tenth of digits' training set validates."""
    data = digits()
    x, y = data["train"]["x"], data["train"]["y"]
    cut = len(x) - len(x) // 10
    return {"inp": x[:cut], "out": y[:cut]}, {"inp": x[cut:], "out": y[cut:]}


def build(hp):
    return (ML.Input(64, name="inp")
            > ML.Hidden(hp.int("size", 16, 256, log=True), activation=hp.choice("act", ACTIVATIONS), name="hid")
            > ML.SoftmaxClassifier(10, learning_scenari=[MS.Adam(lr=hp.float("lr", 1e-4, 1e-1, log=True))], name="out"))
