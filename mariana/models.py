"""Small ready-made networks used by the demo, examples and benchmarks.

Each builder takes the input shape (batch axis excluded) and the number of
classes and returns a Network whose Input is ``"inp"`` and whose classifier
is ``"out"``.

Example:
    >>> from mariana.models import BUILDERS
    >>> net = BUILDERS["mlp"]((64,), 10)
    >>> list(net.layers)
    ['inp', 'hid', 'out']
"""

from __future__ import annotations

from collections.abc import Callable

import mariana.activations as MA
import mariana.costs as MC
import mariana.decorators as MD
import mariana.layers as ML
import mariana.regularizations as MR
import mariana.scenari as MS
from mariana.network import Network


def build_mlp(input_shape: tuple[int, ...], classes: int, hidden: int = 128, lr: float = 0.05) -> Network:
    """Input > Hidden(ReLU, dropout 0.1, L2 1e-4) > SoftmaxClassifier, SGD with momentum 0.9."""
    i = ML.Input(input_shape, name="inp")
    h = ML.Hidden(hidden, activation=MA.ReLU(), decorators=[MD.BinomialDropout(0.1)],
                  regularizations=[MR.L2(1e-4)], name="hid")
    o = ML.SoftmaxClassifier(classes, learning_scenari=[MS.GradientDescent(lr=lr, momentum=0.9)],
                             cost=MC.NegativeLogLikelihood(), name="out")
    return i > h > o


def build_cnn(input_shape: tuple[int, ...], classes: int, filters: int = 16, hidden: int = 64, lr: float = 0.05) -> Network:
    """A small CNN for ``(channels, height, width)`` images such as the 8x8 digits ``(1, 8, 8)``.

    Conv2D(filters, 3, same, ReLU) > MaxPool2D(2) > Conv2D(2*filters, 3, same, ReLU) > MaxPool2D(2)
    > Hidden(ReLU, dropout 0.1) > SoftmaxClassifier; SGD with momentum 0.9, L2 1e-4 on the dense layer.

    Example:
        >>> net = build_cnn((1, 8, 8), 10)
        >>> [layer.shape for layer in net.layers.values()]
        [(1, 8, 8), (16, 8, 8), (16, 4, 4), (32, 4, 4), (32, 2, 2), (64,), (10,)]
    """
    i = ML.Input(input_shape, name="inp")
    c1 = ML.Conv2D(filters, 3, padding="same", activation=MA.ReLU(), name="conv1")
    c2 = ML.Conv2D(2 * filters, 3, padding="same", activation=MA.ReLU(), name="conv2")
    h = ML.Hidden(hidden, activation=MA.ReLU(), decorators=[MD.BinomialDropout(0.1)], regularizations=[MR.L2(1e-4)], name="hid")
    o = ML.SoftmaxClassifier(classes, learning_scenari=[MS.GradientDescent(lr=lr, momentum=0.9)],
                             cost=MC.NegativeLogLikelihood(), name="out")
    return i > c1 > ML.MaxPool2D(2, name="pool1") > c2 > ML.MaxPool2D(2, name="pool2") > h > o


#: Builders by the name ``mariana demo --model`` takes.
BUILDERS: dict[str, Callable[..., Network]] = {"mlp": build_mlp, "cnn": build_cnn}
