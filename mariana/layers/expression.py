"""Layer arithmetic: ``+ - * /`` between layers and numbers build an expression tree for ``ML.M``.

The tree knows layers only as operands (anything deriving from :class:`Operand`,
which every Layer does), so this module sits below ``mariana.layers.base``.

Example:
    >>> import mariana.layers as ML
    >>> i1, i2 = ML.Input(1, name="i1"), ML.Input(1, name="i2")
    >>> (i1 + i2) / 3
    ((i1 + i2) / 3.0)
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from mariana.layers.base import Layer

_OPERATORS: dict[str, Callable] = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


class Operand:
    """Arithmetic on layers: ``+ - * /`` with layers and numbers build an :class:`Expression` for ``ML.M``."""

    def __add__(self, other): return Expression.binary("+", self, other)
    def __radd__(self, other): return Expression.binary("+", other, self)
    def __sub__(self, other): return Expression.binary("-", self, other)
    def __rsub__(self, other): return Expression.binary("-", other, self)
    def __mul__(self, other): return Expression.binary("*", self, other)
    def __rmul__(self, other): return Expression.binary("*", other, self)
    def __truediv__(self, other): return Expression.binary("/", self, other)
    def __rtruediv__(self, other): return Expression.binary("/", other, self)
    def __neg__(self): return Expression.binary("*", self, -1)


class Expression(Operand):
    """An arithmetic tree over layers and numbers, built by ``+ - * /`` on layers."""

    def __init__(self, op: str | None = None, args: tuple = (), layer: Layer | None = None,
                 value: float | None = None) -> None:
        self.op, self.args, self.layer, self.value = op, args, layer, value

    @classmethod
    def wrap(cls, item: Any) -> Expression:
        if isinstance(item, Expression):
            return item
        if isinstance(item, Operand):  # a layer
            return cls(layer=item)
        if isinstance(item, numbers.Real) and not isinstance(item, (bool, np.bool_)):
            return cls(value=float(item))
        raise TypeError(f"Layer arithmetic works with layers and numbers, but received {item!r}.")

    @classmethod
    def binary(cls, op: str, left: Any, right: Any) -> Expression:
        return cls(op=op, args=(cls.wrap(left), cls.wrap(right)))

    def layers(self) -> list[Layer]:
        """The layers referenced, in order of first appearance."""
        found: list[Layer] = []
        stack = [self]
        order: list[Expression] = []
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(reversed(node.args))
        for node in order:
            if node.layer is not None and not any(node.layer is f for f in found):
                found.append(node.layer)
        return found

    def evaluate(self, values: dict[str, torch.Tensor]) -> torch.Tensor | float:
        if self.layer is not None:
            return values[self.layer.name]
        if self.value is not None:
            return self.value
        return _OPERATORS[self.op](self.args[0].evaluate(values), self.args[1].evaluate(values))

    def to_config(self) -> dict:
        if self.layer is not None:
            return {"layer": self.layer.name}
        if self.value is not None:
            return {"value": self.value}
        return {"op": self.op, "args": [arg.to_config() for arg in self.args]}

    @classmethod
    def from_config(cls, config: Any, resolve: Callable[[str], Layer]) -> Expression:
        if not isinstance(config, dict):
            raise ValueError(f"Malformed expression node {config!r}.")
        if set(config) == {"layer"}:
            return cls(layer=resolve(config["layer"]))
        if set(config) == {"value"} and isinstance(config["value"], (int, float)):
            return cls(value=float(config["value"]))
        if set(config) == {"op", "args"} and config["op"] in _OPERATORS and len(config["args"]) == 2:
            return cls(op=config["op"], args=tuple(cls.from_config(a, resolve) for a in config["args"]))
        raise ValueError(f"Malformed expression node {config!r}: expected {{'layer'}}, {{'value'}} or {{'op', 'args'}}.")

    def __repr__(self) -> str:
        if self.layer is not None:
            return self.layer.name
        if self.value is not None:
            return repr(self.value)
        return f"({self.args[0]!r} {self.op} {self.args[1]!r})"
