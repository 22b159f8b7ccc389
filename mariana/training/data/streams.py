"""Streams as the Trainer holds them: checked and converted once, then only reordered and sliced.

Example:
    >>> import numpy as np, mariana.layers as ML
    >>> net = ML.Input(2, name="inp") > ML.SoftmaxClassifier(2, name="out")
    >>> stream = PreparedStream.prepare(net.cost_plan("out"), {"inp": np.zeros((3, 2)), "out": [0, 1, 1]}, ["out"])
    >>> len(stream), stream.rows(1, 3).class_ids["out"].tolist()
    (3, [1, 1])
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mariana.execution import CostPlan
from mariana.training.data.prefetch import Prefetch
from mariana.training.data.workers import WorkerReads
from mariana.training.loop.metrics import EpochSums

Tensors = dict[str, torch.Tensor]

#: Streams up to this size are reordered once per epoch (fastest); larger ones batch by batch (no second copy).
GATHER_ONCE_BYTES = 64 * 2**20


@dataclass
class PreparedStream:
    """A stream's Input feeds, output targets and (for classifiers) class ids, aligned row by row."""

    feeds: Tensors
    targets: Tensors
    class_ids: Tensors
    weights: Tensors  #: per-sample weights of the outputs that have them

    @classmethod
    def prepare(cls, plan: CostPlan, data: Mapping[str, Any], classifiers: Sequence[str], to_device: bool = True,
                weights: Tensors | None = None) -> PreparedStream:
        """Check and convert ``data`` once (shapes, dtypes, ids, finite values), on the plan's device (or the host)."""
        feeds, targets = plan.prepare(dict(data), to_device=to_device)
        class_ids = {}
        for output in classifiers:
            ids = targets[output]
            class_ids[output] = ids.argmax(dim=-1) if ids.is_floating_point() else ids
        device = plan.forward.device if to_device else torch.device("cpu")
        if weights is None:
            weights = {name: torch.from_numpy(w).to(device) for name, w in getattr(data, "weights", {}).items()}
        return cls(feeds, targets, class_ids, weights)

    def __len__(self) -> int:
        for part in (self.feeds, self.targets):
            for tensor in part.values():
                return tensor.shape[0]
        return 0

    @property
    def device(self) -> torch.device:
        for part in (self.feeds, self.targets):
            for tensor in part.values():
                return tensor.device
        raise ValueError("An empty stream (no feeds, no targets) has no device.")

    def mapped(self, function: Callable[[torch.Tensor], torch.Tensor]) -> PreparedStream:
        """``function`` of every tensor, once per tensor: class ids that are their targets stay one tensor."""
        done: dict[int, torch.Tensor] = {}

        def once(tensor: torch.Tensor) -> torch.Tensor:
            if id(tensor) not in done:
                done[id(tensor)] = function(tensor)
            return done[id(tensor)]

        return PreparedStream(*({key: once(value) for key, value in part.items()}
                                for part in (self.feeds, self.targets, self.class_ids, self.weights)))

    def to(self, device: torch.device) -> PreparedStream:
        """The stream on ``device`` (asynchronous from pinned host memory)."""
        return self.mapped(lambda tensor: tensor.to(device, non_blocking=device.type != "cpu"))

    def pinned(self) -> PreparedStream:
        """The stream in page-locked host memory, so batches copy to a GPU asynchronously."""
        return self.mapped(torch.Tensor.pin_memory)

    def nbytes(self) -> int:
        tensors = {id(t): t for part in (self.feeds, self.targets, self.class_ids, self.weights) for t in part.values()}
        return sum(t.numel() * t.element_size() for t in tensors.values())

    def in_order(self, order: torch.Tensor) -> Callable[[int, int], PreparedStream]:
        """``rows(low, high)`` of the stream visited in ``order``.

        A stream up to ``GATHER_ONCE_BYTES`` is gathered once for the epoch (then
        each batch is a view); a larger one is gathered batch by batch, so an
        epoch never holds a second copy of big data.
        """
        if bool((order == torch.arange(len(order), device=order.device)).all()):  # a sequential sampler: no gather
            return self.rows
        if self.nbytes() <= GATHER_ONCE_BYTES:
            return self.reordered(order).rows
        return lambda low, high: self.reordered(order[low:high])

    def close(self) -> None:
        """Nothing to release: the stream is tensors in memory (a FileStream closes its readers)."""

    def reordered(self, order: torch.Tensor) -> PreparedStream:
        """The rows in ``order`` (one gather per tensor, once per epoch)."""
        return self.mapped(lambda tensor: tensor.index_select(0, order))

    def rows(self, low: int, high: int) -> PreparedStream:
        """Rows ``low:high`` (views, no copy). Called every step: kept to plain dict building.

        A classifier's class ids are usually its targets themselves (integer ids): their slice is shared.
        """
        feeds, targets, class_ids, weights = {}, {}, {}, {}
        for key, value in self.feeds.items():
            feeds[key] = value[low:high]
        for key, value in self.targets.items():
            targets[key] = value[low:high]
        for key, value in self.class_ids.items():
            class_ids[key] = targets[key] if value is self.targets.get(key) else value[low:high]
        for key, value in self.weights.items():
            weights[key] = value[low:high]
        return PreparedStream(feeds, targets, class_ids, weights)


def evaluate(plan: CostPlan, stream: PreparedStream, outputs: Sequence[str], classifiers: Sequence[str],
             batch_size: int, run: Callable[[CostPlan, PreparedStream], Any] | None = None,
             span: tuple[int, int] | None = None,
             summed: Callable[[EpochSums], EpochSums] | None = None) -> dict[str, dict[str, float]]:
    """Mean loss (and accuracy) per output over the whole stream, ``batch_size`` rows at a time, without dropout.

    ``run(plan, batch)`` evaluates one batch (default: ``plan.evaluate`` on it, where the stream lies).
    Data-parallel: each process evaluates its rows ``span`` (low, high) and ``summed`` adds up the processes' sums.
    """
    first, total = span if span is not None else (0, len(stream))
    sums = EpochSums(outputs, classifiers, plan.forward.device)
    with torch.no_grad():
        for low in range(first, total, batch_size):
            part = stream.rows(low, min(low + batch_size, total))
            result = run(plan, part) if run is not None else plan.evaluate(part.feeds, part.targets, part.weights)
            for name in outputs:
                ids = part.class_ids.get(name)
                sums.add(name, result.losses[name], len(part), result.logits[name],
                         None if ids is None else ids.to(result.logits[name].device, non_blocking=True), result.counts.get(name))
    return (summed(sums) if summed is not None else sums).means()


#: A stream read batch by batch reads the next batch ahead only when reading one takes more than this share of a step.
READ_AHEAD_SHARE = 0.5


class FileStream:
    """A stream read batch by batch from row sources that are not in memory (files, torch Datasets, your own):
    each batch is read, checked and converted when needed.

    It offers what the Trainer uses of a :class:`PreparedStream` (``len``, ``device``,
    ``rows``, ``in_order``), on the host. The next batch is read on a background
    thread while the current one trains when reading is slow enough for that to pay
    (:class:`mariana.training.data.prefetch.Prefetch` guesses which rows come next, also
    when each call is one rank's shard of a batch), or by worker processes when the
    mapper asks for them (:class:`mariana.training.data.workers.WorkerReads`).
    """

    def __init__(self, plan: CostPlan, mapper: Any, classifiers: Sequence[str]) -> None:
        self.plan, self.mapper, self.classifiers = plan, mapper, list(classifiers)
        self.device = torch.device("cpu")
        self._prefetch: concurrent.futures.ThreadPoolExecutor | None = None
        self._sequential: Prefetch | None = None  # rows(): evaluations, in stored order
        self._epoch: Prefetch | None = None  # in_order(): the current epoch's order
        self._workers = WorkerReads(mapper.batch, mapper.workers) if mapper.workers else None
        self._stored_order: np.ndarray | None = None
        self._followed: np.ndarray | None = None  # the order the workers read

    def __len__(self) -> int:
        return len(self.mapper)

    def batch(self, indices: np.ndarray) -> PreparedStream:
        """The rows ``indices``, read and prepared like a whole in-memory stream would be."""
        return self._prepared(self.mapper.batch(indices), indices)

    def _prepared(self, data: dict[str, np.ndarray], indices: np.ndarray) -> PreparedStream:
        weights = {name: torch.from_numpy(w[indices]) for name, w in self.mapper.weights.items()}
        return PreparedStream.prepare(self.plan, data, self.classifiers, to_device=False, weights=weights)

    def rows(self, low: int, high: int) -> PreparedStream:
        """Rows ``low:high`` in stored order (evaluations read them one batch after another: prefetched too)."""
        if self._workers is not None:
            if self._stored_order is None:
                self._stored_order = np.arange(len(self))
            return self._from_workers(self._stored_order, low, high)
        if self._sequential is None:
            self._sequential = Prefetch(lambda first, last: self.batch(np.arange(first, last)), len(self), self._executor,
                                        min_share=READ_AHEAD_SHARE)
        return self._sequential(low, high)

    def in_order(self, order: torch.Tensor) -> Callable[[int, int], PreparedStream]:
        indices = order.cpu().numpy()
        if self._workers is not None:
            self._followed = None  # a new epoch: the workers follow its order from its first call
            return lambda low, high: self._from_workers(indices, low, high)
        if self._epoch is not None:  # an earlier epoch's reader: its read ahead is of no use any more
            self._epoch.drop()
        self._epoch = Prefetch(lambda low, high: self.batch(indices[low:high]), len(indices), self._executor,
                               min_share=READ_AHEAD_SHARE)
        return self._epoch

    def _from_workers(self, indices: np.ndarray, low: int, high: int) -> PreparedStream:
        if self._followed is not indices:
            self._workers.follow(indices)
            self._followed = indices
        return self._prepared(self._workers.rows(low, high), indices[low:high])

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._prefetch is None:
            self._prefetch = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mariana-prefetch")
        return self._prefetch

    def close(self) -> None:
        """Stop the prefetch thread and the worker processes (the Trainer calls it when a session ends; a later
        epoch starts them again)."""
        for reader in (self._sequential, self._epoch):
            if reader is not None:
                reader.drop()
        self._sequential = self._epoch = None
        if self._prefetch is not None:
            self._prefetch.shutdown(wait=True, cancel_futures=True)
            self._prefetch = None
        if self._workers is not None:
            self._workers.close()
            self._followed = None
        self.mapper.close()
