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

from mariana.checks import positive_int
from mariana.layers.base import Layer, Shape
from mariana.layers.recurrent import check_lengths


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
    Variable lengths: connect an integer ``ML.Input(1, dtype="int64")`` of the
    attended sequence's lengths last; steps at or beyond a length are never
    attended to, and in self-attention they come out as zeros (padding then
    changes nothing, as in the recurrent layers).
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
        self.max_inputs = self.expected_inputs + 1  # and optional lengths

    @property
    def expected_inputs(self) -> int:
        return 2 if self.cross else 1

    def check_incoming(self, source: Layer) -> None:
        sequences = "queries, then keys/values," if self.cross else "a sequence"
        if len(self.incoming) < self.expected_inputs and not source.dtype.is_floating_point:
            raise ValueError(
                f"{self.describe()} takes {sequences} (float) first, then optionally integer lengths; "
                f"but {source.describe()} produces {source.dtype}. Integer ids go through an ML.Embedding."
            )
        if len(self.incoming) == self.expected_inputs and (source.dtype.is_floating_point or source.shape != (1,)):
            raise ValueError(
                f"{self.describe()} already receives {[p.name for p in self.incoming]}; a last input must be integer "
                f"lengths of shape (1,), but {source.describe()} produces {source.dtype} of shape {source.shape}. "
                f"Declare it as ML.Input(1, dtype='int64')."
            )

    def check_feed(self, index: int, values: torch.Tensor) -> None:
        if index == self.expected_inputs:  # the optional lengths of the keys/values sequence
            check_lengths(self, values, self.input_shapes[1 if self.cross else 0][0])

    def output_shape(self, query_shape: Shape, *others: Shape) -> Shape:
        context_shape = others[0] if self.cross else None
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

    def build(self, query_shape: Shape, *others: Shape) -> None:
        features = query_shape[1]
        context = (others[0] if self.cross else query_shape)[1]
        units = self.units or features
        for name, inputs in (("q", features), ("k", context), ("v", context)):
            self.add_param(f"W_{name}", (units, inputs))
            self.add_param(f"b_{name}", (units,), regularizable=False)
        self.add_param("W_o", (features, units))
        self.add_param("b_o", (features,), regularizable=False)

    def _heads(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.linear(x, W, b).unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, queries: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        context = others[0] if self.cross else queries
        lengths = others[-1] if len(others) > int(self.cross) else None
        mask, valid = None, None
        if lengths is not None:
            steps = context.shape[1]
            lengths = lengths.reshape(-1) if self.feed_is_checked(self.expected_inputs) else check_lengths(self, lengths, steps)
            valid = torch.arange(steps, device=context.device) < lengths[:, None]
            mask = valid[:, None, None, :]
            if self.causal:  # sdpa takes a mask or is_causal, not both
                mask = mask & torch.ones(queries.shape[1], steps, dtype=torch.bool, device=context.device).tril()
        attended = F.scaled_dot_product_attention(
            self._heads(queries, self.W_q, self.b_q), self._heads(context, self.W_k, self.b_k),
            self._heads(context, self.W_v, self.b_v), attn_mask=mask, is_causal=self.causal and mask is None,
        )
        out = F.linear(attended.transpose(1, 2).flatten(2), self.W_o, self.b_o)
        return out * valid[..., None].to(out.dtype) if valid is not None and not self.cross else out
