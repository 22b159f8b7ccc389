"""Running sums of losses and correct predictions, kept on the device and read only when asked.

The Trainer adds each step's mean loss (weighted by the rows it covered) and,
for classifiers, the number of correct predictions. Nothing here reads a
value back to the host until :meth:`EpochSums.means` is called (once per
epoch, and at the progress bar's pace), so steps never wait for the device.

Example:
    >>> import torch
    >>> sums = EpochSums(["out"], ["out"], torch.device("cpu"))
    >>> sums.add("out", torch.tensor(0.5), 4, logits=torch.eye(4), class_ids=torch.tensor([0, 1, 2, 0]))
    >>> sums.means()
    {'out': {'loss': 0.5, 'accuracy': 0.75}}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class EpochSums:
    """Per-output sums over the rows seen since the last reset: loss, correct predictions, row count."""

    def __init__(self, outputs: Sequence[str], classifiers: Sequence[str], device: torch.device) -> None:
        self.outputs, self.classifiers = list(outputs), list(classifiers)
        self.loss = {name: torch.zeros((), device=device) for name in self.outputs}
        self.correct = {name: torch.zeros((), dtype=torch.int64, device=device) for name in self.classifiers}
        self.counts = dict.fromkeys(self.outputs, 0)
        self.weights: dict[str, torch.Tensor] = {}  # outputs with class weights: the sum of their weights

    def add(self, name: str, loss: torch.Tensor, rows: int, logits: torch.Tensor | None = None,
            class_ids: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> None:
        """Add a batch of ``rows`` whose mean loss is ``loss``; classifiers also count ``argmax(logits) == class_ids``.

        ``weight``: how much the batch's loss counts (its class weights' sum), when not its rows.
        """
        if weight is None:
            self.loss[name].add_(loss.detach(), alpha=rows)
        else:
            self.loss[name].add_(loss.detach() * weight)
            self.weights[name] = self.weights.get(name, 0) + weight
        self.counts[name] += rows
        if name in self.correct:
            self.correct[name].add_((logits.argmax(dim=-1) == class_ids).sum())  # argmax records no autograd node: no detach

    def means(self) -> dict[str, dict[str, float]]:
        """Mean loss (and accuracy for classifiers) per output: a host sync."""
        metrics = {}
        for name in self.outputs:
            count = max(self.counts[name], 1)
            metrics[name] = {"loss": float(self.loss[name]) / (float(self.weights[name]) if name in self.weights else count)}
            if name in self.correct:
                metrics[name]["accuracy"] = float(self.correct[name]) / count
        return metrics

    def state_dict(self) -> dict:
        # "weight_sums": a checkpoint's "weights" are the network's
        return {"loss_sums": self.loss, "correct": self.correct, "counts": self.counts, "weight_sums": self.weights}

    def load_state_dict(self, state: dict) -> None:
        device = next(iter(self.loss.values())).device
        self.loss = {k: v.to(device) for k, v in state["loss_sums"].items()}
        self.correct = {k: v.to(device) for k, v in state["correct"].items()}
        self.counts = dict(state["counts"])
        self.weights = {k: v.to(device) for k, v in state.get("weight_sums", {}).items()}
