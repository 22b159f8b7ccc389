"""Core layers: Input and the dense Hidden layer.

Example:
    >>> import mariana.layers as ML, mariana.activations as MA
    >>> net = ML.Input(784, name="inp") > ML.Hidden(500, activation=MA.ReLU(), name="hid")
    >>> tuple(net["hid"].W.shape)
    (500, 784)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from mariana.checks import as_tensor, positive_int
from mariana.layers.base import Layer, Shape, as_shape


def dtype_from_name(name: Any, owner: str) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype) or dtype.is_complex or dtype == torch.bool:
        raise ValueError(f"{owner}: dtype must name a real torch dtype such as 'float32' or 'int64', but received {name!r}.")
    return dtype


class Input(Layer):
    """Where data enters: ``Input(shape, dtype="float32")``, batch axis excluded.

    Float data is cast to a float Input's dtype (integer data too); integer
    Inputs accept any integer dtype and reject floats. Inputs take
    decorators (e.g. noise or dropout on the input) but no other abstraction.
    """

    abstraction_keywords = ("decorators",)
    max_inputs = 0

    def __init__(self, shape: int | tuple[int, ...], dtype: str = "float32", **kwargs: Any) -> None:
        owner = f"Input {kwargs.get('name')!r}" if kwargs.get("name") else "Input"
        declared_shape = as_shape(shape, owner)
        declared_dtype = dtype_from_name(dtype, owner)
        super().__init__(**kwargs)
        self.shape = declared_shape
        self.input_shapes = ()
        self._dtype = declared_dtype

    @property
    def is_input(self) -> bool:
        return True

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def cast_floats_to(self, dtype: torch.dtype) -> None:
        """Make a float Input produce ``dtype`` (``net.to(dtype=...)`` converts the whole network)."""
        if self._dtype.is_floating_point:
            self._dtype = dtype

    def output_shape(self) -> Shape:
        return self.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def accept(self, value: Any) -> torch.Tensor:
        """``value`` checked and converted to this Input's dtype; ``ValueError`` if it doesn't fit."""
        tensor = as_tensor(value, self, "input data")
        if self._dtype.is_floating_point:
            if tensor.dtype == torch.bool or tensor.is_complex():
                raise ValueError(f"{self.describe()} expects {self._dtype} data, but received {tensor.dtype}.")
        elif tensor.is_floating_point() or tensor.dtype == torch.bool or tensor.is_complex():
            raise ValueError(
                f"{self.describe()} expects integer data ({self._dtype}), but received {tensor.dtype}. "
                f"Convert ids with .astype('int64'), or declare a float Input."
            )
        if tensor.dim() == 0 or tuple(tensor.shape[1:]) != self.shape:
            raise ValueError(
                f"{self.describe()} expected data of shape (batch, {', '.join(map(str, self.shape))}), "
                f"but received shape {tuple(tensor.shape)}."
            )
        return tensor if tensor.dtype == self._dtype else tensor.to(self._dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config["shape"] = list(self.shape)
        config["dtype"] = str(self._dtype).removeprefix("torch.")
        return config


class Hidden(Layer):
    """A dense layer: ``activation(x.flatten(1) @ W.T + b)``; ``W`` is ``(size, inputs)``."""

    hyperparameters = ("size",)

    def __init__(self, size: int, **kwargs: Any) -> None:
        size = positive_int(size, type(self).__name__, "size")
        super().__init__(**kwargs)
        self.size = size

    def output_shape(self, input_shape: Shape) -> Shape:
        return (self.size,)

    def build(self, input_shape: Shape) -> None:
        self.add_param("W", (self.size, math.prod(input_shape)))
        self.add_param("b", (self.size,), regularizable=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.flatten(1) if x.dim() > 2 else x, self.W, self.b)
