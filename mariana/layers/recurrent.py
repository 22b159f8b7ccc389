"""Recurrent layers on ``(batch, time, features)``: RNN, LSTM and GRU.

``return_sequences=False`` (default) gives the last step's output ``(units,)``;
``True`` gives every step ``(time, units)``, which another recurrent layer can
take (stacking).

Variable-length batches: connect an integer Input of shape ``(1,)`` holding
each sequence's length as a second incoming layer, after the sequence
(``lengths > lstm``). Steps at or beyond a sequence's length (padding,
anywhere in value) then never change its result: the last output is taken
at step ``length - 1`` and, with ``return_sequences=True``, padded steps
come out as zeros. Lengths must lie in ``[1, time]``. In a stack, connect
the lengths to every recurrent layer.

Params follow torch's layout with gates stacked on the first axis (LSTM:
input, forget, cell, output; GRU: reset, update, new): ``W``
``(gates*units, features)`` input weights, ``U`` ``(gates*units, units)``
recurrent weights (orthogonal init), ``b`` and ``b_U`` the input and
recurrent biases (torch's ``bias_ih``/``bias_hh``; zeros, except the LSTM's
forget-gate bias, 1). The whole sequence runs in torch's fused kernels.

Example:
    >>> import numpy as np, mariana.layers as ML
    >>> seq, lengths = ML.Input((5, 3), name="seq"), ML.Input(1, dtype="int64", name="lengths")
    >>> lstm = ML.LSTM(4, return_sequences=True, name="lstm")
    >>> net = seq > lstm
    >>> net = lengths > lstm
    >>> out = net.propagate("lstm", seq=np.ones((2, 5, 3)), lengths=[[5], [2]])
    >>> out.shape, bool((out[1, 2:] == 0).all())
    ((2, 5, 4), True)
"""

from __future__ import annotations

from typing import Any

import torch

from mariana.checks import check_in_range, positive_int
from mariana.layers.base import Layer, Shape


def check_lengths(owner: Layer, lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``lengths`` ``(batch, 1)`` as ``(batch,)`` after checking they lie in ``[1, steps]``."""
    lengths = lengths.reshape(-1)
    check_in_range(lengths, 1, steps, owner, f"takes sequences of {steps} steps", "lengths")
    return lengths


def last_steps(outputs: torch.Tensor, lengths: torch.Tensor | None, return_sequences: bool) -> torch.Tensor:
    """The step ``length - 1`` of each sequence, or every step with padded steps zeroed."""
    if lengths is None:
        return outputs if return_sequences else outputs[:, -1]
    if return_sequences:
        valid = torch.arange(outputs.shape[1], device=outputs.device) < lengths[:, None]
        return outputs * valid[..., None].to(outputs.dtype)
    return outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]


class SequenceLayer(Layer):
    """Base of layers taking a ``(time, features)`` sequence and, optionally, integer lengths ``(1,)``."""

    max_inputs = 2
    input_kind = "any"

    def check_incoming(self, source: Layer) -> None:
        if not self.incoming and not source.dtype.is_floating_point:
            raise ValueError(
                f"{self.describe()} takes a float (time, features) sequence first, then optionally integer "
                f"lengths; but its first input {source.describe()} produces {source.dtype}. Connect the sequence "
                f"first (integer ids go through an ML.Embedding)."
            )
        if self.incoming and (source.dtype.is_floating_point or source.shape != (1,)):
            raise ValueError(
                f"{self.describe()} already receives its sequence from {self.incoming[0].describe()}; a second "
                f"input must be integer lengths of shape (1,), but {source.describe()} produces {source.dtype} "
                f"of shape {source.shape}. Declare it as ML.Input(1, dtype='int64')."
            )

    def check_feed(self, index: int, values: torch.Tensor) -> None:
        if index == 1:  # the optional lengths, counted in steps of the sequence (input 0)
            check_lengths(self, values, self.input_shapes[0][0])

    def lengths_of(self, lengths: torch.Tensor, steps: int) -> torch.Tensor:
        """``(batch,)`` lengths; checked here only when they did not come straight from an Input."""
        return lengths.reshape(-1) if self.feed_is_checked(1) else check_lengths(self, lengths, steps)

    def sequence_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(
                f"{self.describe()} expects sequences of shape (time, features) (batch axis excluded), but received "
                f"{len(input_shape)}-d shape {input_shape}. A flat vector has no time axis: reshape it with "
                f"ML.Reshape((time, features)) or use ML.Hidden."
            )
        return input_shape


class Recurrent(SequenceLayer):
    gates = 1
    hyperparameters = ("units", "return_sequences")

    def __init__(self, units: int, return_sequences: bool = False, **kwargs: Any) -> None:
        owner = type(self).__name__
        self.units = positive_int(units, owner, "units")
        if not isinstance(return_sequences, bool):
            raise TypeError(f"{owner}: return_sequences must be True or False, but received {return_sequences!r}.")
        self.return_sequences = return_sequences
        super().__init__(**kwargs)

    def output_shape(self, input_shape: Shape, lengths_shape: Shape | None = None) -> Shape:
        steps, _ = self.sequence_shape(input_shape)
        return (steps, self.units) if self.return_sequences else (self.units,)

    def build(self, input_shape: Shape, lengths_shape: Shape | None = None) -> None:
        size = self.gates * self.units
        self.add_param("W", (size, input_shape[-1]))
        self.add_param("U", (size, self.units), torch.nn.init.orthogonal_)
        self.add_param("b", (size,), regularizable=False)
        self.add_param("b_U", (size,), regularizable=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is not None:
            lengths = self.lengths_of(lengths, x.shape[1])
        h0 = x.new_zeros(1, x.shape[0], self.units)
        outputs = self._run(x, h0, [self.W, self.U, self.b, self.b_U])
        return last_steps(outputs, lengths, self.return_sequences)


class RNN(Recurrent):
    """Elman RNN: ``h_t = tanh(W x_t + b + U h_{t-1} + b_U)``; ``RNN(units, return_sequences=False)``."""

    def _run(self, x: torch.Tensor, h0: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        return torch.rnn_tanh(x, h0, params, True, 1, 0.0, self.training, False, True)[0]


class LSTM(Recurrent):
    """Long short-term memory, as ``torch.nn.LSTM``; ``LSTM(units, return_sequences=False)``."""

    gates = 4

    def build(self, input_shape: Shape, lengths_shape: Shape | None = None) -> None:
        super().build(input_shape)
        with torch.no_grad():
            self.b[self.units:2 * self.units] = 1.0  # forget gate open at start: gradients flow through time

    def _run(self, x: torch.Tensor, h0: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        return torch.lstm(x, (h0, h0), params, True, 1, 0.0, self.training, False, True)[0]


class GRU(Recurrent):
    """Gated recurrent unit, as ``torch.nn.GRU``; ``GRU(units, return_sequences=False)``."""

    gates = 3

    def _run(self, x: torch.Tensor, h0: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
        return torch.gru(x, h0, params, True, 1, 0.0, self.training, False, True)[0]
