"""Wrappers: layers that run another layer inside themselves.

``Bidirectional(rnn)`` runs a recurrent layer forwards and a copy of it
backwards over the sequence and concatenates both directions' features.
``TimeDistributed(layer)`` applies ``layer`` to every step of
``(batch, time, *features)`` with the same params.

The wrapped layer stops being a graph node: the wrapper takes it over as a
submodule (it leaves the network it was born in and ``>`` refuses it
afterwards), runs its activation and (while training) its decorators, and
trains its params with the wrapped layer's own learning scenari, else the
wrapper's, else the output's. Its config nests inside the wrapper's config,
and its params appear in ``state_dict()`` as ``<wrapper>.<layer>.<param>``
(the backward copy of a Bidirectional is named ``<layer>_backward``).
Regularizations, initializations and ``Fixed`` go on the wrapped layer.

Example:
    >>> import mariana.layers as ML
    >>> bi = ML.Bidirectional(ML.LSTM(8, name="lstm"), name="bi")
    >>> net = ML.Input((5, 3), name="seq") > bi
    >>> bi.shape, sorted(net.state_dict())[:2]
    ((16,), ['bi.lstm.U', 'bi.lstm.W'])
"""

from __future__ import annotations

from typing import Any

import torch

from mariana.layers.base import Layer, Shape, decode_abstractions
from mariana.layers.recurrent import Recurrent, SequenceLayer
from mariana.registry import deserialize


class _Wrapper(Layer):
    abstraction_keywords = ("activation", "decorators", "learning_scenari")
    hyperparameters = ("layer",)

    def _check_wrappable(self, layer: Any, expected: type, what: str) -> None:
        kind = type(self).__name__
        if not isinstance(layer, expected) or layer.is_input or layer.is_output or layer.connects_at_construction:
            raise TypeError(f"{kind} wraps {what}, but received {layer!r}.")
        if layer.network is None or len(layer.network) != 1 or layer.shape is not None:
            raise ValueError(f"{kind} wraps a fresh, unconnected layer, but {layer.describe()} is already connected or wrapped.")

    def _adopt(self, *layers: Layer) -> None:
        object.__setattr__(self, "layer", layers[0])
        object.__setattr__(self, self.hyperparameters[0], layers[0])
        for layer in layers:
            layer.network.release(layer, self.describe())
            self._modules[layer.name] = layer

    def sublayers(self) -> tuple[Layer, ...]:
        return tuple(self._modules.values())

    def check_feed(self, index: int, values: torch.Tensor) -> None:
        for layer in self.sublayers():  # ids or lengths are checked by the layers that use them
            layer.check_feed(index, values)

    def _apply(self, layer: Layer, *inputs: torch.Tensor) -> torch.Tensor:
        return layer.evaluate(*inputs, training=self.training).out

    def _build_inner(self, input_shape: Shape) -> None:
        for layer in self.sublayers():  # a failed '>' unbuilds them again (Layer.forget_params)
            layer.create_params((input_shape,), layer.infer_shape((input_shape,)))

    @property
    def dtype(self) -> torch.dtype:
        return self.layer.dtype

    @classmethod
    def from_config(cls, config: dict, **kwargs: Any) -> Layer:
        decoded = decode_abstractions(config)
        key = cls.hyperparameters[0]
        decoded[key] = deserialize(decoded[key], Layer)
        return cls(**decoded)


class Bidirectional(_Wrapper, SequenceLayer):
    """Runs ``rnn`` (RNN, LSTM or GRU) forwards and a copy backwards; concatenates their features.

    Output: ``(2*units,)``, or ``(time, 2*units)`` with ``return_sequences``.
    The backward copy has ``rnn``'s config under the name ``<rnn>_backward``
    and its own params. Takes optional lengths like the recurrent layers:
    the backward direction then starts at each sequence's last real step.
    """

    hyperparameters = ("rnn",)

    def __init__(self, rnn: Recurrent, **kwargs: Any) -> None:
        self._check_wrappable(rnn, Recurrent, "an RNN, LSTM or GRU")
        super().__init__(**kwargs)
        backward = type(rnn).from_config({**rnn.get_config(), "name": f"{rnn.name}_backward"})
        self._adopt(rnn, backward)

    def output_shape(self, input_shape: Shape, lengths_shape: Shape | None = None) -> Shape:
        *steps, units = self.layer.infer_shape((self.sequence_shape(input_shape),))
        return (*steps, 2 * units)

    def build(self, input_shape: Shape, lengths_shape: Shape | None = None) -> None:
        self._build_inner(input_shape)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        forward_layer, backward_layer = self.sublayers()
        if lengths is None:
            backward = self._apply(backward_layer, x.flip(1))
            if forward_layer.return_sequences:
                backward = backward.flip(1)
            return torch.cat([self._apply(forward_layer, x), backward], dim=-1)
        lengths = self.lengths_of(lengths, x.shape[1])[:, None]
        steps = torch.arange(x.shape[1], device=x.device)
        # Reverse each sequence within its length; padded steps stay where they are.
        order = torch.where(steps < lengths, lengths - 1 - steps, steps)
        reverse = x.gather(1, order[..., None].expand_as(x))
        backward = self._apply(backward_layer, reverse, lengths)
        if forward_layer.return_sequences:
            backward = backward.gather(1, order[..., None].expand_as(backward))
        return torch.cat([self._apply(forward_layer, x, lengths), backward], dim=-1)


class TimeDistributed(_Wrapper):
    """Applies ``layer`` to every step of ``(time, *features)`` with shared params: ``(time, *layer's output)``.

    Example: ``ML.TimeDistributed(ML.Hidden(16))`` on ``(10, 8)`` gives ``(10, 16)``.
    """

    def __init__(self, layer: Layer, **kwargs: Any) -> None:
        self._check_wrappable(layer, Layer, "a layer")
        if layer.max_inputs is not None and layer.max_inputs < 1 or layer.expected_inputs != 1:
            raise TypeError(f"TimeDistributed wraps a layer taking one input, but {layer.describe()} takes {layer.expected_inputs}.")
        super().__init__(**kwargs)
        self._adopt(layer)

    def check_incoming(self, source: Layer) -> None:
        self.layer.check_incoming(source)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 2:
            raise ValueError(
                f"{self.describe()} expects (time, *features) inputs, but received {len(input_shape)}-d shape "
                f"{input_shape}, which has no time axis."
            )
        return (input_shape[0], *self.layer.infer_shape((input_shape[1:],)))

    def build(self, input_shape: Shape) -> None:
        self._build_inner(input_shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._apply(self.layer, x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])
