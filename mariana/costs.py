"""Costs: the objective of an output layer, averaged over the batch.

A cost is called as ``cost(outputs, targets)`` on the layer's activated
output. Costs that have a numerically stable form on pre-activations
(cross-entropy after a softmax, binary cross-entropy after a sigmoid) declare
it with ``logits_activation`` and ``on_logits``; output layers use it
automatically.

Every cost computes its value in one method, ``loss(inputs, targets,
logits=False, reduction="mean")``, with torch's ``reduction`` semantics:
``"mean"`` is the cost, ``"none"`` each element's (or, for classifiers, each
sample's) loss. :meth:`Cost.weighted` builds per-sample weighting on top of it.

The classifier costs take torch's ``class_weights`` (``weight=``) and
``label_smoothing`` options.

Example:
    >>> import torch, mariana.costs as MC
    >>> float(MC.MeanSquaredError()(torch.ones(2, 3), torch.zeros(2, 3)))
    1.0
    >>> cost = MC.NegativeLogLikelihood(class_weights=[1.0, 3.0], label_smoothing=0.1)
    >>> cost.get_config()
    {'class_weights': [1.0, 3.0], 'label_smoothing': 0.1}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from mariana import activations as MA
from mariana.registry import Configurable

_EPS = 1e-12


class Cost(Configurable):
    """Base class: ``__call__(outputs, targets)`` returns a 0-d tensor.

    A subclass implements :meth:`loss` (or, for a cost without per-sample
    weighting, only ``__call__``); :meth:`per_sample` and :meth:`weighted`
    then come for free.
    """

    #: Activation class whose pre-activations ``on_logits`` accepts, or None.
    logits_activation: type | None = None
    #: "ids": integer class ids (batch,); "values": same shape as the output.
    target_kind = "values"

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs, targets)

    def on_logits(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.logits_activation is None:
            raise NotImplementedError(f"{type(self).__name__} has no logits form.")
        return self.loss(logits, targets, logits=True)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, logits: bool = False,
             reduction: str = "mean") -> torch.Tensor:
        """The cost of ``inputs`` (outputs, or pre-activations when ``logits``), reduced as torch's ``reduction``.

        ``reduction="mean"`` gives the cost itself; ``"none"`` gives what torch's
        functional form gives with ``reduction="none"``: one loss per sample
        for classifiers, one per element for element-wise costs.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement loss(inputs, targets, logits=False, reduction='mean') "
            f"(or __call__(outputs, targets) if it takes no sample weights)."
        )

    def per_sample(self, inputs: torch.Tensor, targets: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """Each sample's loss, shape ``(batch,)``: the mean over its elements, class weights applied as torch does."""
        losses = self.loss(inputs, targets, logits=logits, reduction="none")
        return losses if losses.dim() == 1 else losses.reshape(losses.shape[0], -1).mean(dim=1)

    def check_classes(self, owner: str, classes: int) -> None:
        """Refuse options that do not fit an output of ``classes`` classes (or values); ``owner`` names the layer."""

    def target_weights(self, targets: torch.Tensor) -> torch.Tensor | None:
        """``c_i``: how much each sample counts in the mean (its class weight), or None when each counts 1."""
        return None

    def weighted(self, inputs: torch.Tensor, targets: torch.Tensor, sample_weights: torch.Tensor,
                 logits: bool = False) -> torch.Tensor:
        """The cost with per-sample weights ``s`` of shape ``(batch,)``: ``sum_i s_i c_i l_i / sum_i c_i``.

        ``l_i`` is sample i's loss (:meth:`per_sample` gives ``c_i l_i``) and
        ``c_i`` its class weight (:meth:`target_weights`; 1 without class
        weights). Without class weights this is Keras' "sum over batch size";
        with ``s == 1`` it is the unweighted cost (torch's weighted mean).
        ``inputs`` are pre-activations when ``logits`` (see ``on_logits``).

        Example:
            >>> import torch, mariana.costs as MC
            >>> cost = MC.MeanSquaredError()
            >>> float(cost.weighted(torch.ones(2, 3), torch.zeros(2, 3), torch.tensor([1.0, 0.0])))
            0.5
        """
        losses = self.per_sample(inputs, targets, logits=logits)
        if sample_weights.shape != losses.shape:
            raise ValueError(
                f"{type(self).__name__}: expected sample_weights of shape ({losses.shape[0]},), one per sample, "
                f"but received shape {tuple(sample_weights.shape)}."
            )
        total = (sample_weights.to(losses.device, losses.dtype) * losses).sum()
        counts = self.target_weights(targets)
        return total / (losses.shape[0] if counts is None else counts.sum())


def _class_weights(owner: str, value: Any) -> tuple[float, ...] | None:
    """``value`` as a tuple of floats >= 0 (not all 0), or None; else a TypeError/ValueError naming ``owner``."""
    if value is None:
        return None
    expected = "a sequence of non-negative floats, one per class"
    if isinstance(value, (str, bytes)) or not (isinstance(value, Sequence) or hasattr(value, "tolist")):
        raise TypeError(f"{owner}: class_weights must be {expected}, but received {value!r}.")
    values = value.tolist() if hasattr(value, "tolist") else list(value)
    if not isinstance(values, list) or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{owner}: class_weights must be {expected}, but received {value!r}.")
    weights = tuple(float(v) for v in values)
    if not weights or not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise ValueError(f"{owner}: class_weights must be {expected}, finite and not all 0, but received {value!r}.")
    return weights


def _label_smoothing(owner: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{owner}: label_smoothing must be a float in [0, 1), but received {value!r}.")
    if not 0 <= value < 1:
        raise ValueError(f"{owner}: label_smoothing must be a float in [0, 1), but received {value!r}.")
    return float(value)


class _ClassifierCost(Cost):
    """Cross-entropy of class ids, with torch's ``class_weights`` and ``label_smoothing``.

    With class weights, the mean is ``sum_i w[y_i] l_i / sum_i w[y_i]``, as
    ``F.cross_entropy(..., weight=w)``.
    """

    logits_activation = MA.Softmax
    target_kind = "ids"
    hyperparameters = ("class_weights", "label_smoothing")

    def __init__(self, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0) -> None:
        name = type(self).__name__
        self.class_weights = _class_weights(name, class_weights)
        self.label_smoothing = _label_smoothing(name, label_smoothing)
        # Made from the floats on the inputs' device and dtype the first time they differ (see _weight_for).
        self._weight: torch.Tensor | None = None if self.class_weights is None else torch.tensor(self.class_weights)
        self.zero_weighted = self.class_weights is not None and min(self.class_weights) == 0

    def check_classes(self, owner: str, classes: int) -> None:
        """Refuse class_weights that are not one per class of the output layer ``owner``.

        Example:
            >>> import mariana.costs as MC
            >>> MC.NegativeLogLikelihood(class_weights=[1.0, 2.0]).check_classes("'out'", 3)
            Traceback (most recent call last):
            ...
            ValueError: 'out' has 3 classes, so NegativeLogLikelihood expected 3 class_weights (one per class), but received 2: [1.0, 2.0].
        """
        if self.class_weights is not None and len(self.class_weights) != classes:
            raise ValueError(
                f"{owner} has {classes} classes, so {type(self).__name__} expected {classes} class_weights (one per class), "
                f"but received {len(self.class_weights)}: {list(self.class_weights)}."
            )

    def _weight_for(self, inputs: torch.Tensor) -> torch.Tensor | None:
        weight = self._weight
        if weight is None:
            return None
        classes = inputs.shape[1] if inputs.dim() > 1 else inputs.shape[0]
        if weight.shape[0] != classes:
            raise ValueError(
                f"{type(self).__name__}: class_weights has {weight.shape[0]} entries, one per class, "
                f"but the outputs have {classes} classes. Pass {classes} class weights."
            )
        if weight.device != inputs.device or weight.dtype != inputs.dtype:
            weight = self._weight = torch.tensor(self.class_weights, dtype=inputs.dtype, device=inputs.device)
        return weight

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, logits: bool = False,
             reduction: str = "mean") -> torch.Tensor:
        weight = self._weight_for(inputs)
        if reduction == "mean" and weight is not None and self.zero_weighted and not targets.is_floating_point():
            # torch's weighted mean divides by the targets' weights: 0/0, NaN gradients, for a batch of
            # weight-0 classes only. Such a batch costs 0 here; any other is torch's mean.
            total, count = self.loss(inputs, targets, logits, reduction="sum"), weight[targets].sum()
            return torch.where(count > 0, total / count.clamp_min(torch.finfo(total.dtype).tiny), total * 0)
        if logits:
            return F.cross_entropy(inputs, targets, weight=weight, label_smoothing=self.label_smoothing,
                                   reduction=reduction)
        log_probs = torch.log(inputs.clamp_min(_EPS))
        if self.label_smoothing or targets.is_floating_point():
            # log_softmax(log p) == log p when p sums to 1: cross_entropy on log-probabilities is the cost on p.
            return F.cross_entropy(log_probs, targets, weight=weight, label_smoothing=self.label_smoothing,
                                   reduction=reduction)
        return F.nll_loss(log_probs, targets, weight=weight, reduction=reduction)

    def target_weights(self, targets: torch.Tensor) -> torch.Tensor | None:
        # Probability targets are averaged over the batch, as F.cross_entropy does.
        if self._weight is None or targets.is_floating_point():
            return None
        return self._weight.to(targets.device)[targets]


class NegativeLogLikelihood(_ClassifierCost):
    """Mean negative log-probability of the target class ids ``(batch,)``.

    ``class_weights`` (one non-negative float per class) and
    ``label_smoothing`` (in [0, 1)) follow ``F.cross_entropy``'s ``weight``
    and ``label_smoothing``.

    Example:
        >>> import torch, torch.nn.functional as F, mariana.costs as MC
        >>> logits, ids = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
        >>> cost = MC.NegativeLogLikelihood(class_weights=[2.0, 1.0], label_smoothing=0.2)
        >>> bool(cost.on_logits(logits, ids) == F.cross_entropy(logits, ids, weight=torch.tensor([2.0, 1.0]),
        ...                                                      label_smoothing=0.2))
        True
    """


class CategoricalCrossEntropy(_ClassifierCost):
    """Cross-entropy against class ids ``(batch,)`` or target distributions ``(batch, n)``.

    Takes ``class_weights`` and ``label_smoothing`` as NegativeLogLikelihood
    does; with target distributions they follow ``F.cross_entropy`` too (the
    mean is then over the batch, whatever the class weights).
    """

    target_kind = "ids_or_values"

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, logits: bool = False,
             reduction: str = "mean") -> torch.Tensor:
        if logits or not targets.is_floating_point() or self.class_weights is not None or self.label_smoothing:
            return super().loss(inputs, targets, logits=logits, reduction=reduction)
        losses = -(targets * torch.log(inputs.clamp_min(_EPS))).sum(dim=-1)
        return losses.mean() if reduction == "mean" else losses


class BinaryCrossEntropy(Cost):
    """Binary cross-entropy of probabilities against 0/1 (or soft) targets."""

    logits_activation = MA.Sigmoid

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, logits: bool = False,
             reduction: str = "mean") -> torch.Tensor:
        if logits:
            return F.binary_cross_entropy_with_logits(inputs, targets, reduction=reduction)
        return F.binary_cross_entropy(inputs.clamp(_EPS, 1 - _EPS), targets, reduction=reduction)


class MeanSquaredError(Cost):
    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, logits: bool = False,
             reduction: str = "mean") -> torch.Tensor:
        return F.mse_loss(inputs, targets, reduction=reduction)


class MeanAbsoluteError(Cost):
    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, logits: bool = False,
             reduction: str = "mean") -> torch.Tensor:
        return F.l1_loss(inputs, targets, reduction=reduction)


class Huber(Cost):
    """Quadratic below ``delta``, linear above it."""

    hyperparameters = ("delta",)

    def __init__(self, delta: float = 1.0) -> None:
        if not delta > 0:
            raise ValueError(f"Huber: delta must be > 0, but received {delta!r}.")
        self.delta = float(delta)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, logits: bool = False,
             reduction: str = "mean") -> torch.Tensor:
        return F.huber_loss(inputs, targets, reduction=reduction, delta=self.delta)
