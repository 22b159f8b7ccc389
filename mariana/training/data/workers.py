"""Batches read ahead by worker processes: a ``torch.utils.data.DataLoader`` that follows the Trainer's order.

``DatasetMapper.from_dataset(dataset, inp=0, out=1, workers=4)`` reads each
batch in one of four processes while the training process steps. The
DataLoader's batch sampler is a :class:`Plan`: it yields the batches the
Trainer will ask for next, in the epoch's order, with the Trainer's batch
boundaries and, under data parallelism, this rank's share of each batch. The
plan is guessed from the calls, as :mod:`mariana.training.data.prefetch` does:
after ``rows(low, high)`` come ``(low + step, high + step)``, ``step`` being the
distance between the last two calls (the batch's own size before a second
call). A call the plan did not foresee (the first of an epoch, a rank's
second batch, a last short batch) is read in the training process and the
plan restarts from it; the workers stay up (``persistent_workers``) until the
stream closes. The rows are the same whichever process reads them, so
training with workers is bit-identical to training without.

The DataLoader draws its workers' seeds from a generator of its own, never
from torch's global one (which decides dropout). Asking for more workers than
the machine has cores is the user's choice (an IO-bound dataset waits more
than it computes), so torch's warning about it is not repeated.

Example:
    >>> import numpy as np
    >>> reads = WorkerReads(lambda indices: {"x": indices * 10}, workers=1)
    >>> rows = reads.follow(np.arange(6))
    >>> [rows(low, low + 2)["x"].tolist() for low in (0, 2, 4)]
    [[0, 10], [20, 30], [40, 50]]
    >>> reads.close()
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

Batch = dict[str, np.ndarray]


class Plan:
    """The batch sampler: ``indices[low:high]`` for ``(low, high)``, ``(low + step, high + step)``, ... up to ``total``."""

    def __init__(self) -> None:
        self.indices = np.zeros(0, dtype=np.int64)
        self.first: tuple[int, int] = (0, 0)
        self.step = 0
        self.sent: collections.deque[tuple[int, int]] = collections.deque()  #: the rows handed to the workers, oldest first

    def __iter__(self) -> Iterator[np.ndarray]:
        low, high = self.first
        total = len(self.indices)
        while self.step > 0 and low < high <= total:
            self.sent.append((low, high))
            yield self.indices[low:high]
            low, high = low + self.step, min(high + self.step, total)


class _Reader(torch.utils.data.Dataset):
    """What a worker runs: ``read(indices)``, as tensors (they travel through shared memory, not a pipe)."""

    def __init__(self, read: Callable[[np.ndarray], Batch]) -> None:
        self.read = read

    def __getitems__(self, indices: np.ndarray) -> dict[str, torch.Tensor | np.ndarray]:
        return {key: _shareable(value) for key, value in self.read(np.asarray(indices)).items()}

    def __getitem__(self, index: int) -> Any:
        raise TypeError("Mariana's worker reader reads whole batches (__getitems__).")


def _shareable(array: np.ndarray) -> torch.Tensor | np.ndarray:
    """A tensor over ``array``'s bytes (sent through shared memory), or the array itself where torch has no such dtype."""
    try:
        return torch.from_numpy(np.require(array, requirements=["C", "W"]))
    except TypeError:  # e.g. a big-endian dtype: pickled instead
        return array


def _as_batch(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


class WorkerReads:
    """``rows(low, high)`` of the current order, read by ``workers`` processes; :meth:`close` stops them."""

    def __init__(self, read: Callable[[np.ndarray], Batch], workers: int) -> None:
        self.read, self.workers = read, workers
        self.plan = Plan()
        self._loader: torch.utils.data.DataLoader | None = None
        self._iterator: Any = None  # the DataLoader's iterator over the persistent workers
        self._following = False  # whether the workers are reading the current plan
        self._last_low: int | None = None

    def follow(self, indices: np.ndarray) -> Callable[[int, int], Batch]:
        """Read rows of ``indices`` (an epoch's order, or the stored order) from now on."""
        self.plan.indices = np.asarray(indices, dtype=np.int64)
        self._stop_plan()
        return self.rows

    def rows(self, low: int, high: int) -> Batch:
        """The rows ``low:high`` of the order followed: from the workers when the plan foresaw them, else read here."""
        sent = self.plan.sent
        if self._following and sent and sent[0] == (low, high):
            sent.popleft()
            batch = {key: value.numpy() if isinstance(value, torch.Tensor) else value for key, value in next(self._iterator).items()}
        else:
            batch = self.read(self.plan.indices[low:high])
            step = high - low if self._last_low is None or low <= self._last_low else low - self._last_low
            self._restart((low + step, min(high + step, len(self.plan.indices))), step)
        self._last_low = low
        return batch

    def _restart(self, first: tuple[int, int], step: int) -> None:
        """Hand the workers a new plan from ``first`` on (batches of the old one still in flight are dropped)."""
        self.plan.first, self.plan.step = first, step
        self.plan.sent.clear()
        self._following = first[0] < first[1]
        if not self._following:  # nothing left to read ahead
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*suggested max number of worker", category=UserWarning)
            if self._loader is None:
                self._loader = torch.utils.data.DataLoader(
                    _Reader(self.read), batch_sampler=self.plan, num_workers=self.workers, collate_fn=_as_batch,
                    persistent_workers=True, generator=torch.Generator().manual_seed(0))
            self._iterator = iter(self._loader)  # persistent workers: the same iterator, reset to the new plan

    def _stop_plan(self) -> None:
        self.plan.step, self._last_low, self._following = 0, None, False
        self.plan.sent.clear()

    def close(self) -> None:
        """Stop the worker processes and wait for them (a later read starts new ones)."""
        self._stop_plan()
        iterator, self._iterator, self._loader = self._iterator, None, None
        if iterator is not None:
            iterator._shutdown_workers()  # what the iterator does when collected; done now, not at some later collection
