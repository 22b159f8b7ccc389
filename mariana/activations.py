"""Activations: the non-linearity a layer applies to its output.

Example:
    >>> import torch, mariana.activations as MA
    >>> MA.ReLU()(torch.tensor([-1.0, 2.0]))
    tensor([0., 2.])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mariana.registry import Configurable


class Activation(Configurable):
    """Base class: subclasses implement ``__call__(x) -> tensor``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(x).")

    def to_logits(self, pre_activation: torch.Tensor) -> torch.Tensor:
        """Inputs of the numerically stable cost path (see ``Cost.logits_activation``)."""
        return pre_activation


class Pass(Activation):
    """The identity: no non-linearity."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ReLU(Activation):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class LeakyReLU(Activation):
    hyperparameters = ("negative_slope",)

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = float(negative_slope)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope)


class ELU(Activation):
    hyperparameters = ("alpha",)

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha)


class GELU(Activation):
    """Gaussian error linear unit; ``approximate="tanh"`` for the fast variant."""

    hyperparameters = ("approximate",)

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', but received {approximate!r}.")
        self.approximate = approximate

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate=self.approximate)


class SiLU(Activation):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


class Sigmoid(Activation):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


class Tanh(Activation):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class Softmax(Activation):
    """Softmax over the last axis of ``x / temperature``."""

    hyperparameters = ("temperature",)

    def __init__(self, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ValueError(f"Softmax: temperature must be > 0, but received {temperature!r}.")
        self.temperature = float(temperature)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.to_logits(x), dim=-1)

    def to_logits(self, pre_activation: torch.Tensor) -> torch.Tensor:
        return pre_activation if self.temperature == 1.0 else pre_activation / self.temperature


class Softplus(Activation):
    hyperparameters = ("beta", "threshold")

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        self.beta = float(beta)
        self.threshold = float(threshold)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x, self.beta, self.threshold)
