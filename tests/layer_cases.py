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


def _after(shape: tuple[int, ...], layer: ML.Layer, *more: ML.Layer) -> Network:
    return _chain(ML.Input(shape, name="inp"), *more, layer)


def _lengths(wrapper: ML.Layer) -> Network:
    _chain(ML.Input((5, 3), name="inp"), wrapper)
    return ML.Input(1, dtype="int64", name="lengths") > wrapper


def _cross() -> Network:
    layer = ML.MultiHeadAttention(2, units=4, cross=True, name="layer")
    _chain(ML.Input((4, 6), name="q"), layer)
    return _chain(ML.Input((5, 3), name="kv"), layer)


def _seq_feeds() -> dict[str, np.ndarray]:
    return {"inp": floats(5, 3), "lengths": np.array([[5], [2], [3]])}


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
    LayerCase("Conv1D", lambda: _after((2, 9), ML.Conv1D(4, 3, stride=2, padding=1, activation=MA.ReLU(), regularizations=[MR.L2(1e-3)],
              initializations=[MI.HeNormal("W")], decorators=[MD.BinomialDropout(0.1)], name="layer")), "layer", lambda: {"inp": floats(2, 9)}),
    LayerCase("Conv2D", lambda: _after((4, 7, 6), ML.Conv2D(6, (3, 2), padding="same", dilation=(1, 2), groups=2,
              activation=MA.Tanh(), name="layer")), "layer", lambda: {"inp": floats(4, 7, 6)}),
    LayerCase("Conv3D", lambda: _after((2, 4, 5, 5), ML.Conv3D(3, 2, stride=(1, 2, 2), learning_scenari=[MS.Adam(1e-3)], name="layer")),
              "layer", lambda: {"inp": floats(2, 4, 5, 5)}),
    LayerCase("MaxPool1D", lambda: _after((2, 9), ML.MaxPool1D(3, stride=2, padding=1, name="layer")), "layer", lambda: {"inp": floats(2, 9)}),
    LayerCase("MaxPool2D", lambda: _after((2, 6, 5), ML.MaxPool2D(2, name="layer")), "layer", lambda: {"inp": floats(2, 6, 5)}),
    LayerCase("MaxPool3D", lambda: _after((2, 4, 4, 4), ML.MaxPool3D((2, 1, 2), name="layer")), "layer", lambda: {"inp": floats(2, 4, 4, 4)}),
    LayerCase("AvgPool1D", lambda: _after((2, 9), ML.AvgPool1D(2, activation=MA.ReLU(), name="layer")), "layer", lambda: {"inp": floats(2, 9)}),
    LayerCase("AvgPool2D", lambda: _after((2, 6, 6), ML.AvgPool2D(3, stride=1, padding=1, name="layer")), "layer", lambda: {"inp": floats(2, 6, 6)}),
    LayerCase("AvgPool3D", lambda: _after((1, 4, 4, 4), ML.AvgPool3D(2, name="layer")), "layer", lambda: {"inp": floats(1, 4, 4, 4)}),
    LayerCase("GlobalAvgPool", lambda: _after((3, 4, 5), ML.GlobalAvgPool(name="layer")), "layer", lambda: {"inp": floats(3, 4, 5)}),
    LayerCase("GlobalMaxPool", lambda: _after((3, 7), ML.GlobalMaxPool(decorators=[MD.GaussianNoise(0.1)], name="layer")),
              "layer", lambda: {"inp": floats(3, 7)}),
    LayerCase("Flatten", lambda: _after((2, 3, 4), ML.Flatten(name="layer")), "layer", lambda: {"inp": floats(2, 3, 4)}),
    LayerCase("Reshape", lambda: _after((12,), ML.Reshape((3, -1), name="layer")), "layer", lambda: {"inp": floats(12)}),
    LayerCase("BatchNorm", lambda: _after((3, 4, 4), ML.BatchNorm(momentum=0.2, activation=MA.ReLU(), name="layer")),
              "layer", lambda: {"inp": floats(3, 4, 4)}),
    LayerCase("LayerNorm", lambda: _after((5, 4), ML.LayerNorm(initializations=[MI.Normal("gamma", 1.0, 0.1)], name="layer")),
              "layer", lambda: {"inp": floats(5, 4)}),
    LayerCase("RNN", lambda: _after((5, 3), ML.RNN(4, return_sequences=True, name="layer")), "layer", lambda: {"inp": floats(5, 3)}),
    LayerCase("LSTM", lambda: _after((5, 3), ML.LSTM(4, regularizations=[MR.L2(1e-3)], name="layer"), ML.LSTM(3, return_sequences=True)),
              "layer", lambda: {"inp": floats(5, 3)}),
    LayerCase("GRU_lengths", lambda: _lengths(ML.GRU(4, name="layer")), "layer", _seq_feeds),
    LayerCase("Bidirectional", lambda: _lengths(ML.Bidirectional(ML.LSTM(3, return_sequences=True, activation=MA.Tanh()),
              learning_scenari=[MS.Adam(1e-3)], name="layer")), "layer", _seq_feeds),
    LayerCase("TimeDistributed", lambda: _after((5, 2, 4), ML.TimeDistributed(ML.Conv1D(3, 2, regularizations=[MR.L1(1e-4)]),
              activation=MA.ReLU(), name="layer")), "layer", lambda: {"inp": floats(5, 2, 4)}),
    LayerCase("MultiHeadAttention", lambda: _after((5, 8), ML.MultiHeadAttention(2, causal=True, name="layer")),
              "layer", lambda: {"inp": floats(5, 8)}),
    LayerCase("MultiHeadAttention_cross", _cross, "layer", lambda: {"q": floats(4, 6), "kv": floats(5, 3, seed=1)}),
    LayerCase("MultiHeadAttention_lengths", lambda: _lengths(ML.MultiHeadAttention(1, units=6, causal=True, name="layer")),
              "layer", _seq_feeds),
]

#: Layer classes that are bases or exist only inside other layers, not meant to be cases.
ABSTRACT_LAYERS = {"Layer", "OutputLayer", "Merge", "SequenceLayer", "Recurrent"}


def layer_case(case_id: str) -> LayerCase:
    """The case called ``case_id`` (tests name the case they reuse, so reordering the list changes nothing)."""
    for case in LAYER_CASES:
        if case.id == case_id:
            return case
    raise KeyError(f"No layer case {case_id!r}; known: {[case.id for case in LAYER_CASES]}.")
