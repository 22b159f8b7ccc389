"""Multi-head attention on ``(batch, time, features)``, built on ``F.scaled_dot_product_attention``.

Example: self-attention over 6 steps of 16 features, with 4 heads.
    >>> import mariana.layers as ML
    >>> net = ML.Input((6, 16), name="seq") > ML.MultiHeadAttention(4, causal=True, name="att")
    >>> net["att"].shape, tuple(net["att"].W_q.shape)
    ((6, 16), (16, 16))
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mariana.layers.base import Layer, Shape
from mariana.layers.core import positive_int


class MultiHeadAttention(Layer):
    """``MultiHeadAttention(heads, units=None, causal=False, cross=False)``.

    Self-attention (``cross=False``) takes one ``(time, features)`` input.
    Cross-attention (``cross=True``) takes two: the queries first, then the
    sequence attended to (keys and values), each connected with ``>``; their
    lengths and feature sizes may differ. Queries, keys and values are
    projected to ``units`` features (default: the query features), split into
    ``heads`` heads; the result is projected back to the query features, so
    the output shape is the query's (ready for a residual ``M``).
    ``causal=True`` lets step ``t`` attend only to steps ``<= t``.
    Params: ``W_q``, ``W_k``, ``W_v`` ``(units, features)``, ``W_o``
    ``(features, units)`` and biases ``b_q``, ``b_k``, ``b_v``, ``b_o``
    (the layout of ``torch.nn.MultiheadAttention``'s projections).
    """

    hyperparameters = ("heads", "units", "causal", "cross")

    def __init__(self, heads: int, units: int | None = None, causal: bool = False, cross: bool = False, **kwargs: Any) -> None:
        self.heads = positive_int(heads, "MultiHeadAttention", "heads")
        self.units = None if units is None else positive_int(units, "MultiHeadAttention", "units")
        for what, value in (("causal", causal), ("cross", cross)):
            if not isinstance(value, bool):
                raise TypeError(f"MultiHeadAttention: {what} must be True or False, but received {value!r}.")
        if self.units is not None and self.units % self.heads:
            raise ValueError(f"MultiHeadAttention: units ({self.units}) must be divisible by heads ({self.heads}).")
        self.causal, self.cross = causal, cross
        super().__init__(**kwargs)
        self.max_inputs = 2 if cross else 1

    @property
    def expected_inputs(self) -> int:
        return 2 if self.cross else 1

    def output_shape(self, query_shape: Shape, context_shape: Shape | None = None) -> Shape:
        for role, shape in (("queries", query_shape), ("keys/values", context_shape)):
            if shape is not None and len(shape) != 2:
                raise ValueError(
                    f"{self.describe()} expects {role} of shape (time, features) (batch axis excluded), but received "
                    f"{len(shape)}-d shape {shape}."
                )
        units = self.units or query_shape[1]
        if units % self.heads:
            raise ValueError(
                f"{self.describe()} splits {units} features into {self.heads} heads, which does not divide evenly; "
                f"pass units= a multiple of {self.heads}."
            )
        return query_shape

    def build(self, query_shape: Shape, context_shape: Shape | None = None) -> None:
        features = query_shape[1]
        context = (context_shape or query_shape)[1]
        units = self.units or features
        for name, inputs in (("q", features), ("k", context), ("v", context)):
            self.add_param(f"W_{name}", (units, inputs))
            self.add_param(f"b_{name}", (units,), regularizable=False)
        self.add_param("W_o", (features, units))
        self.add_param("b_o", (features,), regularizable=False)

    def _heads(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.linear(x, W, b).unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, queries: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = queries if context is None else context
        attended = F.scaled_dot_product_attention(
            self._heads(queries, self.W_q, self.b_q), self._heads(context, self.W_k, self.b_k),
            self._heads(context, self.W_v, self.b_v), is_causal=self.causal,
        )
        return F.linear(attended.transpose(1, 2).flatten(2), self.W_o, self.b_o)
