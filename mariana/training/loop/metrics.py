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

#: A checkpoint's entries for the running sums ("weight_sums": its "weights" are the network's).
STATE_KEYS = ("loss_sums", "correct", "counts", "weight_sums")


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

    def totals(self) -> list[float]:
        """Every sum as one list of floats (what data-parallel processes add up; :meth:`from_totals` reads it)."""
        names = self.outputs
        return ([float(self.loss[n]) for n in names] + [float(self.correct[n]) for n in self.classifiers]
                + [float(self.counts[n]) for n in names] + [float(self.weights.get(n, 0.0)) for n in names]
                + [float(n in self.weights) for n in names])

    @classmethod
    def from_totals(cls, outputs: Sequence[str], classifiers: Sequence[str], device: torch.device,
                    totals: Sequence[float]) -> EpochSums:
        """The sums a :meth:`totals` list (or the sum of several) holds."""
        sums = cls(outputs, classifiers, device)
        parts = iter(totals)
        sums.loss = {n: torch.tensor(next(parts), device=device) for n in sums.outputs}
        sums.correct = {n: torch.tensor(int(next(parts)), device=device) for n in sums.classifiers}
        sums.counts = {n: int(next(parts)) for n in sums.outputs}
        weights = {n: next(parts) for n in sums.outputs}
        sums.weights = {n: torch.tensor(weights[n], device=device) for n in sums.outputs if next(parts) > 0}
        return sums

    def state_dict(self) -> dict:
        return dict(zip(STATE_KEYS, (self.loss, self.correct, self.counts, self.weights), strict=True))

    def load_state_dict(self, state: dict) -> None:
        device = next(iter(self.loss.values())).device
        self.loss = {k: v.to(device) for k, v in state["loss_sums"].items()}
        self.correct = {k: v.to(device) for k, v in state["correct"].items()}
        self.counts = dict(state["counts"])
        self.weights = {k: v.to(device) for k, v in state.get("weight_sums", {}).items()}
