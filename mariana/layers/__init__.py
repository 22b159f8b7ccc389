"""Mariana's layers. Import as ``import mariana.layers as ML``.

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(4, name="inp") > ML.Hidden(8) > ML.SoftmaxClassifier(3, name="out")
    >>> list(net.outputs)
    ['out']
"""

# Layers are born in a Network and wired by it: loading it here installs it (see layers.base).
from mariana import network as _network  # noqa: E402, F401
from mariana.layers.attention import MultiHeadAttention
from mariana.layers.base import Layer
from mariana.layers.convolution import Conv1D, Conv2D, Conv3D
from mariana.layers.core import Hidden, Input
from mariana.layers.embedding import Embedding
from mariana.layers.merges import C, Concatenate, Expression, M
from mariana.layers.normalization import BatchNorm, LayerNorm
from mariana.layers.outputs import Autoencode, OutputLayer, Regression, SoftmaxClassifier
from mariana.layers.pooling import AvgPool1D, AvgPool2D, AvgPool3D, GlobalAvgPool, GlobalMaxPool, MaxPool1D, MaxPool2D, MaxPool3D
from mariana.layers.recurrent import GRU, LSTM, RNN
from mariana.layers.shape import Flatten, Reshape
from mariana.layers.wrappers import Bidirectional, TimeDistributed

__all__ = [
    "Layer", "Input", "Hidden", "SoftmaxClassifier", "Regression", "Autoencode", "OutputLayer",
    "Concatenate", "C", "M", "Expression", "Embedding",
    "Conv1D", "Conv2D", "Conv3D", "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
    "GlobalAvgPool", "GlobalMaxPool", "Flatten", "Reshape", "BatchNorm", "LayerNorm",
    "RNN", "LSTM", "GRU", "Bidirectional", "TimeDistributed", "MultiHeadAttention",
]
