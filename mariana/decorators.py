"""Decorators: modify a layer's output after its activation, only while training.

At inference (``test``, ``propagate``, ``predict``, ``accuracy``) a decorated
layer behaves exactly like an undecorated one. Dropout is inverted: kept
units are scaled by ``1 / (1 - ratio)`` while training, so nothing needs
rescaling at inference.

Example:
    >>> import torch, mariana.decorators as MD
    >>> MD.Clip(0, 1)(torch.tensor([-2.0, 0.5, 3.0]))
    tensor([0.0000, 0.5000, 1.0000])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mariana.registry import Configurable


class Decorator(Configurable):
    """Base class: ``__call__(x)`` returns the decorated training-time output."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(x).")

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError if this decorator cannot apply to an output of ``shape`` (batch excluded)."""


class BinomialDropout(Decorator):
    """Drops each unit with probability ``ratio`` (inverted dropout)."""

    hyperparameters = ("ratio",)

    def __init__(self, ratio: float) -> None:
        if not 0 <= ratio < 1:
            raise ValueError(f"BinomialDropout: ratio is the drop probability in [0, 1), but received {ratio!r}.")
        self.ratio = float(ratio)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.ratio, training=True) if self.ratio else x


class GaussianNoise(Decorator):
    """Adds zero-mean Gaussian noise of standard deviation ``std``."""

    hyperparameters = ("std",)

    def __init__(self, std: float) -> None:
        if not std >= 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, but received {std!r}.")
        self.std = float(std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.std * torch.randn_like(x)


class Mask(Decorator):
    """Multiplies the output by a fixed mask (broadcast over the batch axis)."""

    hyperparameters = ("mask",)

    def __init__(self, mask: Sequence | torch.Tensor) -> None:
        self._mask = torch.as_tensor(mask, dtype=torch.float32).detach().clone()
        if self._mask.dim() == 0:
            raise ValueError("Mask: expected an array with the layer's output shape (batch axis excluded), but received a scalar.")

    @property
    def mask(self) -> torch.Tensor:
        return self._mask

    def check(self, shape: tuple[int, ...]) -> None:
        if tuple(self._mask.shape) != tuple(shape):
            raise ValueError(f"Mask of shape {tuple(self._mask.shape)} cannot apply to an output of shape {tuple(shape)}.")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._mask.device != x.device or self._mask.dtype != x.dtype:
            self._mask = self._mask.to(device=x.device, dtype=x.dtype)
        if x.shape[1:] != self._mask.shape:
            raise ValueError(
                f"Mask: expected the layer's output shape {tuple(self._mask.shape)} (batch axis excluded), "
                f"but the layer produced {tuple(x.shape[1:])}."
            )
        return x * self._mask


class Clip(Decorator):
    """Clamps the output to ``[low, high]`` (either bound may be None)."""

    hyperparameters = ("low", "high")

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        if low is None and high is None:
            raise ValueError("Clip: give at least one of low and high.")
        if low is not None and high is not None and not low <= high:
            raise ValueError(f"Clip: expected low <= high, but received low={low}, high={high}.")
        self.low, self.high = low, high

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.low, self.high)
