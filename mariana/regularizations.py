"""Regularizations: penalties on a layer's weights, added to the cost when training.

They apply to the layer's regularizable parameters (weights, not biases).
Reported losses never include them.

Example:
    >>> import torch, mariana.regularizations as MR
    >>> float(MR.L2(0.5).penalty([torch.ones(2, 2)]))
    2.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mariana.registry import Configurable


class Regularization(Configurable):
    """Base class: ``penalty(params)`` returns a 0-d tensor."""

    hyperparameters = ("factor",)

    def __init__(self, factor: float) -> None:
        if not isinstance(factor, (int, float)) or factor < 0:
            raise ValueError(f"{type(self).__name__}: factor must be a number >= 0, but received {factor!r}.")
        self.factor = float(factor)

    def penalty(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement penalty(params).")


class L1(Regularization):
    """``factor * sum(|W|)``."""

    def penalty(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.factor * sum(p.abs().sum() for p in params)


class L2(Regularization):
    """``factor * sum(W ** 2)``."""

    def penalty(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.factor * sum(p.pow(2).sum() for p in params)
