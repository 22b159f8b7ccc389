"""One line per layer class: the shared harness (tests/test_layer_harness.py) runs
shape inference, forward, backward, param naming and config round-trips over
every case here, and the persistence tests reuse it for save/load.

A case builds a small connected network (the harness seeds torch first) and
names the layer under test; ``feeds`` gives an input batch for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import mariana.activations as MA
import mariana.costs as MC
import mariana.decorators as MD
import mariana.initializations as MI
import mariana.layers as ML
import mariana.regularizations as MR
import mariana.scenari as MS
from mariana.network import Network

BATCH = 3


@dataclass(frozen=True)
class LayerCase:
    id: str
    build: Callable[[], Network]
    layer: str
    feeds: Callable[[], dict[str, np.ndarray]]

    def __repr__(self) -> str:
        return self.id


def floats(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(BATCH, *shape)).astype(np.float32)


def ids(high: int, *shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, size=(BATCH, *shape))


def _chain(*layers: ML.Layer) -> Network:
    network = layers[0].network
    for left, right in zip(layers, layers[1:]):
        network = left > right
    return network


def _merge(kind: str) -> Network:
    a, b = ML.Input(4, name="a"), ML.Input(4, name="b")
    if kind == "concatenate":
        return ML.Concatenate([a, b], name="layer").network
    return ML.M((a + b) / 2 - a * 3, activation=MA.Tanh(), name="layer").network


def _autoencode() -> Network:
    return _chain(ML.Input(5, decorators=[MD.GaussianNoise(0.1)], name="inp"), ML.Hidden(2, name="code"),
                  ML.Autoencode("inp", activation=MA.Sigmoid(), name="layer"))


LAYER_CASES: list[LayerCase] = [
    LayerCase("Input", lambda: ML.Input((2, 3), name="layer").network, "layer", lambda: {"layer": floats(2, 3)}),
    LayerCase("Hidden", lambda: _chain(ML.Input(4, name="inp"), ML.Hidden(
        3, activation=MA.ReLU(), decorators=[MD.BinomialDropout(0.2)], regularizations=[MR.L2(1e-3)],
        initializations=[MI.GlorotNormal("W"), MI.SingleValue("b", 0.1)],
        learning_scenari=[MS.Adam(1e-3), MS.Fixed("b")], name="layer")), "layer", lambda: {"inp": floats(4)}),
    LayerCase("Hidden_flattens", lambda: _chain(ML.Input((2, 3), name="inp"), ML.Hidden(5, name="layer")),
              "layer", lambda: {"inp": floats(2, 3)}),
    LayerCase("SoftmaxClassifier", lambda: _chain(ML.Input(4, name="inp"), ML.SoftmaxClassifier(
        3, temperature=2, cost=MC.CategoricalCrossEntropy(), learning_scenari=[MS.GradientDescent(0.1, momentum=0.9)],
        name="layer")), "layer", lambda: {"inp": floats(4)}),
    LayerCase("Regression", lambda: _chain(ML.Input(4, name="inp"), ML.Regression(
        2, activation=MA.Softplus(), cost=MC.Huber(0.5), learning_scenari=[MS.RMSProp(0.01)], name="layer")),
        "layer", lambda: {"inp": floats(4)}),
    LayerCase("Autoencode", _autoencode, "layer", lambda: {"inp": floats(5)}),
    LayerCase("Concatenate", lambda: _merge("concatenate"), "layer", lambda: {"a": floats(4), "b": floats(4, seed=1)}),
    LayerCase("M", lambda: _merge("m"), "layer", lambda: {"a": floats(4), "b": floats(4, seed=1)}),
    LayerCase("Embedding", lambda: _chain(ML.Input(6, dtype="int64", name="inp"), ML.Embedding(
        10, 4, regularizations=[MR.L1(1e-4)], name="layer")), "layer", lambda: {"inp": ids(10, 6)}),
]

#: Layer classes that are bases or exist only inside other layers, not meant to be cases.
ABSTRACT_LAYERS = {"Layer", "OutputLayer", "Merge"}
