"""Mariana's layers. Import as ``import mariana.layers as ML``.

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(4, name="inp") > ML.Hidden(8) > ML.SoftmaxClassifier(3, name="out")
    >>> list(net.outputs)
    ['out']
"""

from mariana.layers.base import Layer
from mariana.layers.core import Hidden, Input
from mariana.layers.embedding import Embedding
from mariana.layers.merges import C, Concatenate, Expression, M
from mariana.layers.outputs import Autoencode, OutputLayer, Regression, SoftmaxClassifier

__all__ = [
    "Layer", "Input", "Hidden", "SoftmaxClassifier", "Regression", "Autoencode", "OutputLayer",
    "Concatenate", "C", "M", "Expression", "Embedding",
]
