"""Merge layers: join several layers into one.

``Concatenate`` (alias ``C``) stacks its inputs along an axis; ``M`` computes
an arithmetic expression of layers and numbers. Both connect the layers they
reference when constructed, in order (``x > merge`` raises ``TypeError``).

Example:
    >>> import mariana.layers as ML
    >>> i1, i2 = ML.Input(1, name="i1"), ML.Input(1, name="i2")
    >>> m = ML.M((i1 + i2) / 3 * 10 - 1, name="merge")
    >>> m.network.propagate("merge", i1=[[1.0]], i2=[[8.0]]).tolist()
    [[29.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from mariana.layers.base import Layer, Shape, decode_abstractions
from mariana.layers.expression import Expression


def _resolver(resolve: Callable[[str], Layer] | None, owner: str) -> Callable[[str], Layer]:
    if resolve is None:
        raise ValueError(
            f"{owner}.from_config needs resolve=, a function from layer name to layer, "
            f"because it connects the layers it references."
        )
    return resolve


class Merge(Layer):
    """Base of layers that connect their inputs at construction."""

    max_inputs = None
    connects_at_construction = True
    abstraction_keywords = ("activation", "decorators")

    def _connect_sources(self, sources: Sequence[Layer]) -> None:
        if not sources:
            raise ValueError(f"{self.describe()} needs at least one layer to merge.")
        for source in sources:
            if not isinstance(source, Layer):
                raise TypeError(f"{self.describe()} merges layers, but received {source!r}.")
            self.check_incoming(source)
        self.network.connect_all(list(sources), self)

    @property
    def expected_inputs(self) -> int:
        return len(self.incoming)


class M(Merge):
    """An arithmetic merge: ``M((i1 + i2) / 3 * 10 - 1)``; inputs need equal shapes."""

    def __init__(self, expression: Expression | Layer, **kwargs: Any) -> None:
        expression = Expression.wrap(expression)
        if not expression.layers():
            raise ValueError("M: the expression references no layer.")
        super().__init__(**kwargs)
        self.expression = expression
        self._connect_sources(expression.layers())

    def output_shape(self, *input_shapes: Shape) -> Shape:
        first = input_shapes[0]
        for shape in input_shapes:
            if shape != first:
                names = {p.name: s for p, s in zip(self.expression.layers(), input_shapes)}
                raise ValueError(f"M needs layers of equal shapes (numbers broadcast), but received {names}.")
        return first

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        values = {layer.name: x for layer, x in zip(self.incoming, inputs)}
        result = self.expression.evaluate(values)
        return result

    def get_config(self) -> dict:
        config = super().get_config()
        config["expression"] = self.expression.to_config()
        return config

    @classmethod
    def from_config(cls, config: dict, resolve: Callable[[str], Layer] | None = None, **kwargs: Any) -> M:
        config = decode_abstractions(config)
        config["expression"] = Expression.from_config(config["expression"], _resolver(resolve, cls.__name__))
        return cls(**config)


class Concatenate(Merge):
    """Concatenate layers along ``axis`` (Keras convention: axis counts the batch axis; default last)."""

    hyperparameters = ("axis",)

    def __init__(self, layers: Sequence[Layer], axis: int = -1, **kwargs: Any) -> None:
        if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
            raise TypeError(f"Concatenate expects a list of layers, but received {layers!r}.")
        if not isinstance(axis, int) or axis == 0:
            raise ValueError(f"Concatenate: axis must be a non-batch axis (an int other than 0), but received {axis!r}.")
        super().__init__(**kwargs)
        self.axis = axis
        self._connect_sources(layers)

    def output_shape(self, *input_shapes: Shape) -> Shape:
        rank = len(input_shapes[0])
        axis = self.axis - 1 if self.axis > 0 else rank + self.axis
        if not 0 <= axis < rank:
            raise ValueError(f"axis {self.axis} is out of range for inputs of shape {input_shapes[0]} (batch excluded).")
        for shape in input_shapes:
            if len(shape) != rank or any(a != b for i, (a, b) in enumerate(zip(shape, input_shapes[0])) if i != axis):
                raise ValueError(f"inputs must match on every axis but {self.axis}, but received {list(input_shapes)}.")
        merged = list(input_shapes[0])
        merged[axis] = sum(shape[axis] for shape in input_shapes)
        return tuple(merged)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=self.axis)

    def get_config(self) -> dict:
        config = super().get_config()
        config["layers"] = [layer.name for layer in self.incoming]
        return config

    @classmethod
    def from_config(cls, config: dict, resolve: Callable[[str], Layer] | None = None, **kwargs: Any) -> Concatenate:
        config = decode_abstractions(config)
        resolve = _resolver(resolve, cls.__name__)
        config["layers"] = [resolve(name) for name in config["layers"]]
        return cls(**config)


C = Concatenate
