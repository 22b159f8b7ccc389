"""Initializations: each sets one parameter of a layer, named first.

They run when the layer's parameters are created (at the ``>`` that fixes
its input shape), after the layer's defaults, drawing from torch's global RNG
so ``mariana.seed(n)`` makes them reproducible. Layouts follow torch: a dense
``W`` is ``(out, in)``, so fans are computed as ``torch.nn.init`` does.

Example:
    >>> import mariana.layers as ML, mariana.initializations as MI
    >>> h = ML.Hidden(3, initializations=[MI.SingleValue("b", 0.5)])
    >>> net = ML.Input(2) > h
    >>> h.b.tolist()
    [0.5, 0.5, 0.5]
"""

from __future__ import annotations

import torch
from torch.nn import init as torch_init

from mariana.registry import Configurable


class Initialization(Configurable):
    """Base class: ``fill(tensor)`` sets the values in place."""

    def __init__(self, param: str) -> None:
        if not isinstance(param, str) or not param:
            raise TypeError(
                f"{type(self).__name__}: the first argument is the name of the parameter to "
                f"initialize (e.g. 'W'), but received {param!r}."
            )
        self.param = param

    def __call__(self, tensor: torch.Tensor) -> None:
        with torch.no_grad():
            self.fill(tensor)

    def fill(self, tensor: torch.Tensor) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement fill(tensor).")


def _needs_2d(init: Initialization, tensor: torch.Tensor) -> None:
    if tensor.dim() < 2:
        raise ValueError(
            f"{type(init).__name__}({init.param!r}) needs a parameter with at least 2 axes "
            f"to compute fans, but {init.param!r} has shape {tuple(tensor.shape)}. "
            f"Use Normal, Uniform or SingleValue for it."
        )


class GlorotUniform(Initialization):
    hyperparameters = ("param", "gain")

    def __init__(self, param: str, gain: float = 1.0) -> None:
        super().__init__(param)
        self.gain = float(gain)

    def fill(self, tensor: torch.Tensor) -> None:
        _needs_2d(self, tensor)
        torch_init.xavier_uniform_(tensor, gain=self.gain)


class GlorotNormal(GlorotUniform):
    def fill(self, tensor: torch.Tensor) -> None:
        _needs_2d(self, tensor)
        torch_init.xavier_normal_(tensor, gain=self.gain)


class HeUniform(Initialization):
    """Kaiming/He init for ReLU-like activations (fan-in mode)."""

    hyperparameters = ("param", "negative_slope")

    def __init__(self, param: str, negative_slope: float = 0.0) -> None:
        super().__init__(param)
        self.negative_slope = float(negative_slope)

    def fill(self, tensor: torch.Tensor) -> None:
        _needs_2d(self, tensor)
        torch_init.kaiming_uniform_(tensor, a=self.negative_slope, nonlinearity="leaky_relu")


class HeNormal(HeUniform):
    def fill(self, tensor: torch.Tensor) -> None:
        _needs_2d(self, tensor)
        torch_init.kaiming_normal_(tensor, a=self.negative_slope, nonlinearity="leaky_relu")


class Normal(Initialization):
    hyperparameters = ("param", "std", "mean")

    def __init__(self, param: str, std: float = 0.01, mean: float = 0.0) -> None:
        super().__init__(param)
        self.std, self.mean = float(std), float(mean)

    def fill(self, tensor: torch.Tensor) -> None:
        torch_init.normal_(tensor, self.mean, self.std)


class Uniform(Initialization):
    hyperparameters = ("param", "low", "high")

    def __init__(self, param: str, low: float = -0.05, high: float = 0.05) -> None:
        super().__init__(param)
        if not low < high:
            raise ValueError(f"Uniform({param!r}): expected low < high, but received low={low}, high={high}.")
        self.low, self.high = float(low), float(high)

    def fill(self, tensor: torch.Tensor) -> None:
        torch_init.uniform_(tensor, self.low, self.high)


class SingleValue(Initialization):
    """Every entry set to ``value``."""

    hyperparameters = ("param", "value")

    def __init__(self, param: str, value: float) -> None:
        super().__init__(param)
        self.value = float(value)

    def fill(self, tensor: torch.Tensor) -> None:
        torch_init.constant_(tensor, self.value)


class Identity(Initialization):
    """``gain`` times the identity (2-d) or a Dirac kernel (convolutions)."""

    hyperparameters = ("param", "gain")

    def __init__(self, param: str, gain: float = 1.0) -> None:
        super().__init__(param)
        self.gain = float(gain)

    def fill(self, tensor: torch.Tensor) -> None:
        if tensor.dim() == 2:
            torch_init.eye_(tensor).mul_(self.gain)
        elif 3 <= tensor.dim() <= 5:
            torch_init.dirac_(tensor).mul_(self.gain)
        else:
            raise ValueError(
                f"Identity({self.param!r}) needs a 2-d weight or a 3-5-d convolution kernel, "
                f"but received shape {tuple(tensor.shape)}."
            )
