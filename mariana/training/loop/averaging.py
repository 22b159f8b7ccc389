"""An exponential moving average of the weights: smoother weights for evaluation and for the saved model.

After every optimizer step the average moves towards the weights:
``average = decay * average + (1 - decay) * weights`` (torch's
``get_ema_multi_avg_fn``). The Trainer evaluates the valid and test streams
with the averaged weights and, when the run ends, writes them into the
network, so what is saved, reported and exported is the average (Keras'
``use_ema``). Buffers (BatchNorm statistics) are not averaged.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad(): _ = layer.weight.fill_(0.0)
    >>> average = WeightAverage(layer, decay=0.75)
    >>> with torch.no_grad(): _ = layer.weight.fill_(1.0)
    >>> average.update(); average.copy_to_model()
    >>> layer.weight.item()
    0.25
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn


def check_decay(decay: float | None) -> float | None:
    """The Trainer's ``ema=`` checked: None, or a real number in (0, 1) (numpy floats too), as a float."""
    if decay is None:
        return None
    if not isinstance(decay, numbers.Real) or isinstance(decay, (bool, np.bool_)) or not 0.0 < decay < 1.0:
        raise ValueError(f"Trainer: ema must be a float in (0, 1), e.g. 0.999, but received {decay!r}.")
    return float(decay)


class WeightAverage:
    """The moving average of every float parameter of ``module``."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = check_decay(decay)
        self.names = [name for name, p in module.named_parameters() if p.is_floating_point()]
        named = dict(module.named_parameters())
        self.weights = [named[name].detach() for name in self.names]  # views: they follow the optimizer's updates
        self.shadow = [weight.clone() for weight in self.weights]
        self._update = get_ema_multi_avg_fn(decay)

    def update(self) -> None:
        """Move the average one step towards the current weights (call after each optimizer step)."""
        if self.shadow:
            self._update(self.shadow, self.weights, None)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside the block the model holds the averaged weights; its own come back after."""
        saved = [weight.clone() for weight in self.weights]
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for weight, own in zip(self.weights, saved):
                    weight.copy_(own)

    def copy_to_model(self) -> None:
        with torch.no_grad():
            for weight, average in zip(self.weights, self.shadow):
                weight.copy_(average)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow))

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, average in zip(self.names, self.shadow):
            average.copy_(state[name])
