"""Costs: the objective of an output layer, averaged over the batch.

A cost is called as ``cost(outputs, targets)`` on the layer's activated
output. Costs that have a numerically stable form on pre-activations
(cross-entropy after a softmax, binary cross-entropy after a sigmoid) declare
it with ``logits_activation`` and ``on_logits``; output layers use it
automatically.

Example:
    >>> import torch, mariana.costs as MC
    >>> float(MC.MeanSquaredError()(torch.ones(2, 3), torch.zeros(2, 3)))
    1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mariana import activations as MA
from mariana.registry import Configurable

_EPS = 1e-12


class Cost(Configurable):
    """Base class: ``__call__(outputs, targets)`` returns a 0-d tensor."""

    #: Activation class whose pre-activations ``on_logits`` accepts, or None.
    logits_activation: type | None = None
    #: "ids": integer class ids (batch,); "values": same shape as the output.
    target_kind = "values"

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(outputs, targets).")

    def on_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no logits form.")


class NegativeLogLikelihood(Cost):
    """Mean negative log-probability of the target class ids."""

    logits_activation = MA.Softmax
    target_kind = "ids"

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(torch.log(outputs.clamp_min(_EPS)), targets)

    def on_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)


class CategoricalCrossEntropy(Cost):
    """Cross-entropy against class ids ``(batch,)`` or target distributions ``(batch, n)``."""

    logits_activation = MA.Softmax
    target_kind = "ids_or_values"

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log(outputs.clamp_min(_EPS))
        if targets.is_floating_point():
            return -(targets * log_probs).sum(dim=-1).mean()
        return F.nll_loss(log_probs, targets)

    def on_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)


class BinaryCrossEntropy(Cost):
    """Binary cross-entropy of probabilities against 0/1 (or soft) targets."""

    logits_activation = MA.Sigmoid

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy(outputs.clamp(_EPS, 1 - _EPS), targets)

    def on_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets)


class MeanSquaredError(Cost):
    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs, targets)


class MeanAbsoluteError(Cost):
    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(outputs, targets)


class Huber(Cost):
    """Quadratic below ``delta``, linear above it."""

    hyperparameters = ("delta",)

    def __init__(self, delta: float = 1.0) -> None:
        if not delta > 0:
            raise ValueError(f"Huber: delta must be > 0, but received {delta!r}.")
        self.delta = float(delta)

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.huber_loss(outputs, targets, delta=self.delta)
