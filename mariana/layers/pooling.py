"""Pooling, channels first: windowed max/average pooling and global pooling.

Pooling layers take the window size first; the stride defaults to the window.

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input((3, 28, 28), name="img") > ML.MaxPool2D(2, name="pool") > ML.GlobalAvgPool(name="gap")
    >>> net["pool"].shape, net["gap"].shape
    ((3, 14, 14), (3,))
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mariana.layers.base import Layer, Shape
from mariana.layers.convolution import int_tuple, sliding_length, spatial_input


class _Pool(Layer):
    """Shared body of the windowed pooling layers; ``rank`` is the number of spatial axes."""

    rank = 2
    abstraction_keywords = ("activation", "decorators")
    hyperparameters = ("window", "stride", "padding")

    def __init__(self, window: int | tuple[int, ...], stride: int | tuple[int, ...] | None = None,
                 padding: int | tuple[int, ...] = 0, **kwargs: Any) -> None:
        owner = type(self).__name__
        self.window = int_tuple(window, self.rank, owner, "window")
        self.stride = self.window if stride is None else int_tuple(stride, self.rank, owner, "stride")
        self.padding = int_tuple(padding, self.rank, owner, "padding", minimum=0)
        if any(2 * p > w for p, w in zip(self.padding, self.window)):
            raise ValueError(f"{owner}: padding {self.padding} must be at most half the window {self.window}.")
        super().__init__(**kwargs)

    def output_shape(self, input_shape: Shape) -> Shape:
        spatial_input(self, input_shape, self.rank)
        channels, *sizes = input_shape
        out = [sliding_length(*args) for args in zip(sizes, self.window, self.stride, self.padding)]
        if min(out) < 1:
            raise ValueError(
                f"{self.describe()}: window {self.window} (padding {self.padding}) is larger than its input's "
                f"spatial size {tuple(sizes)}, so pooling would leave an empty axis. Use a smaller window."
            )
        return (channels, *out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(x, self.window, self.stride, self.padding)


class MaxPool1D(_Pool):
    """Max over windows of ``(channels, length)``: ``MaxPool1D(window, stride=window, padding=0)``."""

    rank = 1
    _pool = staticmethod(F.max_pool1d)


class MaxPool2D(_Pool):
    """Max over windows of ``(channels, height, width)``: ``MaxPool2D(2)`` halves both axes."""

    rank = 2
    _pool = staticmethod(F.max_pool2d)


class MaxPool3D(_Pool):
    """Max over windows of ``(channels, depth, height, width)``."""

    rank = 3
    _pool = staticmethod(F.max_pool3d)


class AvgPool1D(_Pool):
    """Mean over windows of ``(channels, length)``; zero padding counts in the mean, as in torch."""

    rank = 1
    _pool = staticmethod(F.avg_pool1d)


class AvgPool2D(_Pool):
    """Mean over windows of ``(channels, height, width)``."""

    rank = 2
    _pool = staticmethod(F.avg_pool2d)


class AvgPool3D(_Pool):
    """Mean over windows of ``(channels, depth, height, width)``."""

    rank = 3
    _pool = staticmethod(F.avg_pool3d)


class _GlobalPool(Layer):
    abstraction_keywords = ("activation", "decorators")

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 2:
            raise ValueError(
                f"{self.describe()} pools over the spatial axes of (channels, *spatial) inputs, "
                f"but received {len(input_shape)}-d shape {input_shape}, which has no spatial axis."
            )
        return input_shape[:1]


class GlobalAvgPool(_GlobalPool):
    """Mean over all spatial axes: ``(channels, *spatial)`` to ``(channels,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(dim=2)


class GlobalMaxPool(_GlobalPool):
    """Max over all spatial axes: ``(channels, *spatial)`` to ``(channels,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).amax(dim=2)
