"""Embedding: integer ids to learned vectors.

Example:
    >>> import numpy as np, mariana.layers as ML
    >>> net = ML.Input(3, dtype="int64", name="ids") > ML.Embedding(10, 4, name="emb")
    >>> net.propagate("emb", ids=np.array([[1, 2, 3]])).shape
    (1, 3, 4)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mariana.checks import check_ids_in_range, positive_int
from mariana.layers.base import Layer, Shape


class Embedding(Layer):
    """Maps ids ``(batch, *S)`` to ``(batch, *S, dimensions)``; param ``E`` is ``(dictionary_size, dimensions)``.

    Ids outside ``[0, dictionary_size)`` raise ``ValueError`` before any kernel runs.
    """

    input_kind = "int"
    hyperparameters = ("dictionary_size", "dimensions")

    def __init__(self, dictionary_size: int, dimensions: int, **kwargs: Any) -> None:
        dictionary_size = positive_int(dictionary_size, "Embedding", "dictionary_size")
        dimensions = positive_int(dimensions, "Embedding", "dimensions")
        super().__init__(**kwargs)
        self.dictionary_size, self.dimensions = dictionary_size, dimensions

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape, self.dimensions)

    def build(self, input_shape: Shape) -> None:
        self.add_param("E", (self.dictionary_size, self.dimensions))

    def check_feed(self, index: int, values: torch.Tensor) -> None:
        check_ids_in_range(values, self.dictionary_size, self, "entries")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not self.feed_is_checked(0):  # ids from an Input were checked before the call ran
            check_ids_in_range(ids, self.dictionary_size, self, "entries")
        return F.embedding(ids, self.E)
