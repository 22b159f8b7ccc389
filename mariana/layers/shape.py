"""Layers that only rearrange values: Flatten and Reshape (batch axis untouched).

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(784, name="flat") > ML.Reshape((1, 28, 28), name="img") > ML.Flatten(name="again")
    >>> net["img"].shape, net["again"].shape
    ((1, 28, 28), (784,))
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mariana.checks import is_int
from mariana.layers.base import Layer, Shape


class Flatten(Layer):
    """``(batch, *S)`` to ``(batch, prod(S))``."""

    abstraction_keywords = ("decorators",)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class Reshape(Layer):
    """``(batch, *S)`` to ``(batch, *shape)``; one axis of ``shape`` may be -1 (inferred)."""

    abstraction_keywords = ("decorators",)
    hyperparameters = ("shape_to",)

    def __init__(self, shape: int | tuple[int, ...], **kwargs: Any) -> None:
        values = (shape,) if is_int(shape) else tuple(shape) if isinstance(shape, (list, tuple)) else None
        if (not values or not all(is_int(v) and (v > 0 or v == -1) for v in values)
                or values.count(-1) > 1):
            raise ValueError(f"Reshape: shape must be positive ints with at most one -1 (batch axis excluded), but received {shape!r}.")
        super().__init__(**kwargs)
        self.shape_to = values

    def output_shape(self, input_shape: Shape) -> Shape:
        size, known = math.prod(input_shape), math.prod(v for v in self.shape_to if v != -1)
        if (size % known if -1 in self.shape_to else size != known):
            raise ValueError(
                f"{self.describe()} cannot arrange the {size} values of shape {input_shape} as {self.shape_to}."
            )
        return tuple(size // known if v == -1 else v for v in self.shape_to)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config["shape"] = list(config.pop("shape_to"))
        return config
