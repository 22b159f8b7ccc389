"""Streams as the Trainer holds them: checked and converted once, then only reordered and sliced.

Example:
    >>> import numpy as np, mariana.layers as ML
    >>> net = ML.Input(2, name="inp") > ML.SoftmaxClassifier(2, name="out")
    >>> stream = PreparedStream.prepare(net.cost_plan("out"), {"inp": np.zeros((3, 2)), "out": [0, 1, 1]}, ["out"])
    >>> len(stream), stream.rows(1, 3).class_ids["out"].tolist()
    (3, [1, 1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mariana.execution import CostPlan
from mariana.training.metrics import EpochSums

Tensors = dict[str, torch.Tensor]


@dataclass
class PreparedStream:
    """A stream's Input feeds, output targets and (for classifiers) class ids, aligned row by row."""

    feeds: Tensors
    targets: Tensors
    class_ids: Tensors
    weights: Tensors  #: per-sample weights of the outputs that have them

    @classmethod
    def prepare(cls, plan: CostPlan, data: Mapping[str, Any], classifiers: Sequence[str]) -> PreparedStream:
        """Check and convert ``data`` once (shapes, dtypes, ids, finite values), on the plan's device."""
        feeds, targets = plan.prepare(dict(data))
        class_ids = {}
        for output in classifiers:
            ids = targets[output]
            class_ids[output] = ids.argmax(dim=-1) if ids.is_floating_point() else ids
        device = plan.forward.device
        weights = {name: torch.from_numpy(w).to(device) for name, w in getattr(data, "weights", {}).items()}
        return cls(feeds, targets, class_ids, weights)

    def __len__(self) -> int:
        for tensor in (*self.feeds.values(), *self.targets.values()):
            return tensor.shape[0]
        return 0

    def reordered(self, order: torch.Tensor) -> PreparedStream:
        """The rows in ``order`` (one gather per tensor, once per epoch)."""
        return PreparedStream(*({key: value.index_select(0, order) for key, value in part.items()}
                                for part in (self.feeds, self.targets, self.class_ids, self.weights)))

    def rows(self, low: int, high: int) -> PreparedStream:
        """Rows ``low:high`` (views, no copy)."""
        return PreparedStream(*({key: value[low:high] for key, value in part.items()}
                                for part in (self.feeds, self.targets, self.class_ids, self.weights)))


def evaluate(plan: CostPlan, stream: PreparedStream, outputs: Sequence[str], classifiers: Sequence[str],
             batch_size: int) -> dict[str, dict[str, float]]:
    """Mean loss (and accuracy) per output over the whole stream, ``batch_size`` rows at a time, without dropout."""
    total = len(stream)
    sums = EpochSums(outputs, classifiers, next(iter(stream.feeds.values())).device)
    with torch.no_grad():
        for low in range(0, total, batch_size):
            part = stream.rows(low, min(low + batch_size, total))
            result = plan.evaluate(part.feeds, part.targets, part.weights)
            for name in outputs:
                sums.add(name, result.losses[name], len(part), result.logits[name], part.class_ids.get(name), result.counts.get(name))
    return sums.means()
