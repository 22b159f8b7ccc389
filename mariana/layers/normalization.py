"""Normalization layers: BatchNorm (per channel, over the batch) and LayerNorm (per sample).

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input((3, 8, 8), name="img") > ML.BatchNorm(name="bn")
    >>> sorted(net.state_dict())
    ['bn.beta', 'bn.gamma', 'bn.num_batches_tracked', 'bn.running_mean', 'bn.running_var']
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mariana.checks import positive_int
from mariana.layers.base import Layer, Shape


def _positive_float(value: Any, owner: str, what: str, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or (upper is not None and value > upper):
        bound = f" and at most {upper}" if upper is not None else ""
        raise ValueError(f"{owner}: {what} must be a number > 0{bound}, but received {value!r}.")
    return float(value)


class BatchNorm(Layer):
    """Normalizes axis 1 (features, or channels of ``(channels, *spatial)``) with batch statistics.

    While training it uses the batch's mean and (biased) variance and updates
    the running averages ``running_mean``/``running_var`` (``running = (1 -
    momentum) * running + momentum * batch``, unbiased variance, as
    ``torch.nn.BatchNorm``); in inference (``test``, ``propagate``) it uses the
    running averages. They are buffers, so they live in ``state_dict()`` and
    are saved and restored with the weights. ``gamma`` (ones) and ``beta``
    (zeros) are learned and never regularized.
    """

    hyperparameters = ("momentum", "epsilon")

    def __init__(self, momentum: float = 0.1, epsilon: float = 1e-5, **kwargs: Any) -> None:
        self.momentum = _positive_float(momentum, "BatchNorm", "momentum", upper=1.0)
        self.epsilon = _positive_float(epsilon, "BatchNorm", "epsilon")
        super().__init__(**kwargs)

    def output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def build(self, input_shape: Shape) -> None:
        channels = input_shape[0]
        self.add_param("gamma", (channels,), torch.nn.init.ones_, regularizable=False)
        self.add_param("beta", (channels,), regularizable=False)
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(x, self.running_mean, self.running_var, self.gamma, self.beta,
                            training=self.training, momentum=self.momentum, eps=self.epsilon)


class LayerNorm(Layer):
    """Normalizes each sample over its last ``axes`` axes, then scales by ``gamma`` and shifts by ``beta``.

    ``LayerNorm()`` normalizes the features of ``(batch, time, features)``
    sequences step by step; ``LayerNorm(axes=3)`` a whole ``(C, H, W)`` image.
    Same statistics in training and inference.
    """

    hyperparameters = ("axes", "epsilon")

    def __init__(self, axes: int = 1, epsilon: float = 1e-5, **kwargs: Any) -> None:
        self.axes = positive_int(axes, "LayerNorm", "axes")
        self.epsilon = _positive_float(epsilon, "LayerNorm", "epsilon")
        super().__init__(**kwargs)

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < self.axes:
            raise ValueError(f"{self.describe()} normalizes the last {self.axes} axes, but its input has only {len(input_shape)}.")
        return input_shape

    def build(self, input_shape: Shape) -> None:
        normalized = input_shape[len(input_shape) - self.axes:]
        self.add_param("gamma", normalized, torch.nn.init.ones_, regularizable=False)
        self.add_param("beta", normalized, torch.nn.init.zeros_, regularizable=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.gamma.shape, self.gamma, self.beta, self.epsilon)
