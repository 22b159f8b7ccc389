"""Output layers: dense layers that carry a cost and can be trained.

Example:
    >>> import numpy as np, mariana as mar, mariana.layers as ML, mariana.scenari as MS
    >>> mar.seed(1)
    >>> out = ML.Regression(1, learning_scenari=[MS.GradientDescent(lr=0.1)], name="out")
    >>> net = ML.Input(3, name="inp") > out
    >>> losses = net.train("out", inp=np.ones((4, 3)), out=np.zeros((4, 1)))
    >>> sorted(losses)
    ['out']
"""

from __future__ import annotations

import math
from typing import Any

import torch

from mariana import activations as MA
from mariana import costs as MC
from mariana.checks import as_tensor, check_ids_in_range
from mariana.layers.base import Layer, Shape
from mariana.layers.core import Hidden
from mariana.registry import serialize


class OutputLayer(Hidden):
    """A dense layer with a cost. Subclasses define the targets they accept."""

    abstraction_keywords = Hidden.abstraction_keywords + ("cost",)
    default_cost: type[MC.Cost] = MC.MeanSquaredError
    #: Whether calls take a keyword with this layer's targets.
    takes_targets = True
    is_classifier = False

    def __init__(self, size: int, *, cost: MC.Cost | None = None, **kwargs: Any) -> None:
        if cost is not None and not isinstance(cost, MC.Cost):
            raise TypeError(f"{type(self).__name__}: cost expects a mariana.costs object, but received {cost!r}.")
        super().__init__(size, **kwargs)
        self.cost = cost if cost is not None else self.default_cost()

    @property
    def cost(self) -> MC.Cost:
        return self._cost

    @cost.setter
    def cost(self, cost: MC.Cost) -> None:
        """A cost whose options do not fit this layer's outputs (class_weights' length) is refused here, before any run."""
        if not isinstance(cost, MC.Cost):
            raise TypeError(f"{self.describe()}: cost expects a mariana.costs object, but received {cost!r}.")
        if self.shape is not None:  # connected: else build() checks it at ``>``
            cost.check_classes(self.describe(), self.size)
        self._cost = cost

    def build(self, input_shape: Shape) -> None:
        self.cost.check_classes(self.describe(), self.size)
        super().build(input_shape)

    @property
    def is_output(self) -> bool:
        return True

    def uses_logits(self, training: bool) -> bool:
        """Whether the cost is computed on pre-activations (numerically stable form)."""
        stable = self.cost.logits_activation is not None and isinstance(self.activation, self.cost.logits_activation)
        return stable and not (training and self.decorators)

    def cost_value(self, pre: torch.Tensor, out: torch.Tensor, targets: torch.Tensor | None,
                   clean: dict[str, torch.Tensor], training: bool, sample_weights: torch.Tensor | None = None) -> torch.Tensor:
        """This layer's cost for one forward pass (stable logits form when it applies), per-sample weighted if asked."""
        logits = self.uses_logits(training)
        inputs = self.activation.to_logits(pre) if logits else out
        if sample_weights is not None:
            return self.cost.weighted(inputs, targets, sample_weights, logits=logits)
        return self.cost.on_logits(inputs, targets) if logits else self.cost(inputs, targets)

    def accept_targets(self, value: Any) -> torch.Tensor:
        tensor = as_tensor(value, self, "targets")
        if tensor.dtype == torch.bool or tensor.is_complex():
            raise ValueError(f"{self.describe()} expects numeric targets, but received {tensor.dtype}.")
        if tensor.dim() == 1 and self.shape == (1,):
            tensor = tensor.unsqueeze(1)
        if tensor.dim() == 0 or tuple(tensor.shape[1:]) != self.shape:
            raise ValueError(
                f"{self.describe()} expected targets of shape (batch, {', '.join(map(str, self.shape))}), "
                f"but received shape {tuple(tensor.shape)}."
            )
        return tensor if tensor.dtype == torch.float32 else tensor.float()

    def get_config(self) -> dict:
        config = super().get_config()
        config["cost"] = serialize(self.cost)
        return config


class SoftmaxClassifier(OutputLayer):
    """Classifier over ``n`` classes; ``propagate`` gives probabilities.

    Trains on ``logits / temperature`` with ``F.cross_entropy``. Targets are
    integer class ids of shape ``(batch,)`` (or, with CategoricalCrossEntropy,
    probability rows of shape ``(batch, n)``).
    """

    abstraction_keywords = tuple(k for k in OutputLayer.abstraction_keywords if k != "activation")
    default_cost = MC.NegativeLogLikelihood
    is_classifier = True

    def __init__(self, n: int, temperature: float = 1, **kwargs: Any) -> None:
        super().__init__(n, **kwargs)
        self.activation = MA.Softmax(temperature)

    @property
    def n(self) -> int:
        return self.size

    @property
    def temperature(self) -> float:
        return self.activation.temperature

    def accept_targets(self, value: Any) -> torch.Tensor:
        tensor = as_tensor(value, self, "targets")
        kind = self.cost.target_kind
        if tensor.is_complex():
            raise ValueError(f"{self.describe()} expects integer class ids or real probabilities, but received {tensor.dtype}.")
        if not tensor.is_floating_point() and tensor.dtype != torch.bool and kind != "values":
            if tensor.dim() != 1:
                raise ValueError(
                    f"{self.describe()} expected integer class ids of shape (batch,), but received shape {tuple(tensor.shape)}."
                )
            ids = tensor if tensor.dtype == torch.int64 else tensor.long()  # torch's range ops lack uint16/32/64
            if tensor.device.type == "cpu":  # checked before the move: no device sync
                if tensor.dtype == torch.uint64 and ids.numel() and bool((ids < 0).any()):  # 2**63 and more wrap around
                    raise ValueError(f"{self.describe()} has {self.size} classes, so ids must be in [0, {self.size - 1}], "
                                     f"but received uint64 ids of 2**63 or more.")
                check_ids_in_range(ids, self.size, self, "classes")
            return ids
        if kind == "ids":
            raise ValueError(
                f"{self.describe()} expected integer class ids of shape (batch,) for {type(self.cost).__name__}, "
                f"but received {tensor.dtype} of shape {tuple(tensor.shape)}."
            )
        return super().accept_targets(tensor)

    def get_config(self) -> dict:
        config = super().get_config()
        config["n"] = config.pop("size")
        config["temperature"] = self.temperature
        return config


class Regression(OutputLayer):
    """``n`` real-valued outputs, ``activation`` (default Pass), cost MeanSquaredError by default."""

    def __init__(self, n: int, activation: MA.Activation | None = None, **kwargs: Any) -> None:
        super().__init__(n, activation=activation if activation is not None else MA.Pass(), **kwargs)

    @property
    def n(self) -> int:
        return self.size

    def get_config(self) -> dict:
        config = super().get_config()
        config["n"] = config.pop("size")
        return config


class Autoencode(OutputLayer):
    """A regression whose targets are the output of layer ``target`` in the same pass.

    The targets are taken before ``target``'s training-only decorators (clean
    targets for a denoising autoencoder) and detached, flattened to
    ``(batch, -1)``. Calls pass no key for them.
    """

    takes_targets = False
    hyperparameters = ("target",)

    def __init__(self, target: str | Layer, **kwargs: Any) -> None:
        target_name = target.name if isinstance(target, Layer) else target
        if not isinstance(target_name, str):
            raise TypeError(f"Autoencode: target must be a layer or a layer name, but received {target!r}.")
        super().__init__(1, **kwargs)  # the real size is the target's, known at connection
        self.size = None
        self.target = target_name
        self._set_target_layer(None)

    def references(self) -> tuple[str, ...]:
        return (self.target,)

    def resolve_references(self, lookup: dict[str, Layer]) -> None:
        layer = lookup.get(self.target)
        if layer is None:
            raise ValueError(
                f"{self.describe()} autoencodes layer {self.target!r}, which is not in the network being connected "
                f"(layers: {sorted(lookup)}). Connect {self.target!r} first."
            )
        if layer is self:
            raise ValueError(f"{self.describe()} cannot autoencode itself.")
        if layer.shape is None:
            raise ValueError(f"{self.describe()}: the shape of its target {layer.describe()} is not known yet; connect it first.")
        self._set_target_layer(layer)

    def _set_target_layer(self, layer: Layer | None) -> None:
        # A plain attribute, not a submodule: the target is a graph node with its own params, which
        # nn.Module.__setattr__ would register a second time (state_dict, summary and .mar counted twice).
        object.__setattr__(self, "_target_layer", layer)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(self._target_layer.shape),)

    def build(self, input_shape: Shape) -> None:
        (self.size,) = self.output_shape(input_shape)
        super().build(input_shape)

    def cost_value(self, pre, out, targets, clean, training, sample_weights=None):
        reference = clean[self.target].detach()
        return super().cost_value(pre, out, reference.flatten(1) if reference.dim() > 2 else reference, clean, training,
                                  sample_weights)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("size", None)
        return config
