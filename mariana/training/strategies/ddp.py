"""Data parallelism (DDP) on PyTorch's own engine: every process holds the whole network and trains on its share.

The same script runs unchanged under ``torchrun --nproc_per_node=N``; with
``strategy="auto"`` (the default) a run whose environment says
``WORLD_SIZE`` > 1 (or whose process group the user already started) is
data-parallel. When training starts, the strategy:

* joins the process group (``mariana.training.strategies.process_group``),
  each rank on ``cuda:LOCAL_RANK`` when it trains on CUDA;
* wraps ``net.module`` in ``DistributedDataParallel``, which averages the
  gradients during the backward pass;
* keeps ``batch_size`` global: every rank visits the same epoch order and
  trains on its contiguous share of each batch (one that does not divide by
  the world size is refused), scaled so the averaged gradient is the one of
  the whole batch; valid and test streams are split in contiguous shares;
* sums the metrics of all ranks, agrees on interrupts at each step boundary
  (a signal on any rank stops all of them one step later, at the same
  boundary), on stops and on each epoch's entry. Stops and recorders run on
  every rank; only rank 0 writes (run directory, checkpoints, file recorders,
  progress bar).

Example (the shares of a batch of 10 rows between 3 processes; nothing joins a group):
    >>> [DataParallel(rank, 3).share(0, 10) for rank in range(3)]
    [(0, 4), (4, 7), (7, 10)]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from mariana.execution import CostResult, TrainingPlan
from mariana.training.loop.metrics import EpochSums
from mariana.training.strategies import process_group
from mariana.training.strategies.base import Strategy
from mariana.training.strategies.process_group import on_host, rank_seed

if TYPE_CHECKING:
    from mariana.training.loop.interrupts import Interrupts


class PlanRunner(torch.nn.Module):
    """The network as DDP sees it: calling it runs a step's forward pass (``function(*args)``) over its parameters."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.network = module

    def forward(self, function: Callable[..., Any], *args: Any) -> Any:
        return function(*args)


class DataParallel(Strategy):
    """DDP over the processes torchrun started (see the module docstring)."""

    name = "ddp"
    saves_on_error = False  # an error is not a step boundary all ranks agree on: the last checkpoint is where a rerun starts

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0) -> None:
        super().__init__(rank, world_size, local_rank)
        self.control: Any = None  #: the gloo group for control messages (None: the default group)
        self.runner: torch.nn.parallel.DistributedDataParallel | None = None
        self._in_flight: tuple[Any, torch.Tensor] | None = None  # a reduction started by any(at_once=False)

    def setup(self, device: Any) -> None:
        self.control = process_group.join(device)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def device(self, requested: Any) -> Any:
        """Each rank's own GPU: "auto" and "cuda" become ``cuda:LOCAL_RANK`` (an explicit index is kept)."""
        if requested in ("auto", "cuda") and torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return f"cuda:{self.local_rank}"
        return requested

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ValueError(f"Trainer: batch_size is the global batch, split between the {self.world_size} processes, so it "
                             f"must be divisible by {self.world_size}, but received {batch_size}. Use e.g. batch_size="
                             f"{max(self.world_size, batch_size - batch_size % self.world_size)}.")

    def agree_seed(self, seed: int | None) -> int:
        """Every rank visits the same orders: rank 0's seed (drawn when the user gave none)."""
        return self.broadcast(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))

    def seed_process(self, seed: int | None) -> None:
        torch.manual_seed(rank_seed(seed, self.rank))  # dropout draws differ across ranks

    def prepare(self, module: torch.nn.Module, device: torch.device, plans: list[TrainingPlan]) -> None:
        """Wrap ``module`` in DDP for the training ``plans``. Parameters no plan trains (frozen ones) are left out of
        the gradient average; when plans train different parameters (several outputs), DDP looks for unused ones."""
        runner = PlanRunner(module)
        learning = {id(p) for plan in plans for p in plan.trained}
        ignored = [name for name, p in runner.named_parameters() if id(p) not in learning]
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(runner, ignored)
        partial = any(len(plan.trained) != len(learning) for plan in plans)
        self.runner = torch.nn.parallel.DistributedDataParallel(
            runner, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=partial)
        with torch.no_grad():  # DDP's start-up broadcast of rank 0's weights skips the ignored (frozen) ones
            for name, parameter in runner.named_parameters():
                if name in ignored:
                    dist.broadcast(parameter.data, src=0)

    # -- each step ------------------------------------------------------------------------
    def share(self, low: int, high: int) -> tuple[int, int]:
        """This rank's contiguous part of rows ``low:high`` (sizes differ by one at most; may be empty)."""
        size, extra = divmod(high - low, self.world_size)
        start = low + self.rank * size + min(self.rank, extra)
        return start, start + size + (self.rank < extra)

    def forward_backward(self, hardware: Any, plan: TrainingPlan, batch: Any, sync: bool, share: float, batch_rows: int,
                         counted: bool) -> CostResult:
        """One DDP forward and backward pass of this rank's ``batch`` (a ``counted=False`` batch joins at weight 0);
        ``sync=False`` (accumulating) keeps the gradients local."""
        with self.runner.no_sync() if not sync else contextlib.nullcontext():
            result = self.runner(hardware.evaluate, plan, batch)
            result = self.weighed_by_counts(result, len(batch), batch_rows, counted)
            hardware.backward(plan, result, share)
        return result

    def weighed_by_counts(self, result: CostResult, rows: int, batch_rows: int, counted: bool) -> CostResult:
        """With class weights a loss is a weighted mean over this rank's rows: reweigh it by this rank's share of the
        whole batch's weight (not of its rows), so the averaged gradient is the one-process batch's (one all-reduce)."""
        if not result.counts:
            return result
        names = list(result.counts)
        counts = torch.stack([result.counts[name].float() for name in names]) * float(counted)
        totals = counts.clone()
        dist.all_reduce(totals)  # on the device, in the gradients' group: no host synchronisation
        factor = counts / totals.clamp_min(torch.finfo(totals.dtype).tiny) * (batch_rows / max(rows, 1))
        losses = dict(result.losses)
        for index, name in enumerate(names):
            losses[name] = losses[name] * factor[index].to(losses[name].dtype)
        return CostResult(losses=losses, logits=result.logits, counts=result.counts)

    def interrupt_check(self, interrupts: Interrupts) -> Callable[[], bool] | None:
        """Every step asks the others without waiting: a signal on any rank stops all of them one step later, together."""
        if not interrupts.enabled:
            return super().interrupt_check(interrupts)

        def interrupted() -> bool:
            if not self.any(interrupts.pending is not None, at_once=False):
                return False
            interrupts.pending = interrupts.pending or "SIGTERM"  # another rank's signal: stop and save with it
            return True

        return interrupted

    # -- agreement ------------------------------------------------------------------------
    def any(self, flag: bool, at_once: bool = True) -> bool:
        """Whether ``flag`` is true on any rank; all ranks get the same answer.

        ``at_once=False`` (each step) does not wait: it starts this call's reduction and answers the previous
        call's, so the step's time hides the message and every rank still learns it at the same call.
        """
        earlier = self._earlier_answer()
        value = torch.tensor([int(flag)])
        work = dist.all_reduce(value, op=dist.ReduceOp.MAX, group=self.control, async_op=not at_once)
        if at_once:
            return earlier or bool(value.item())
        self._in_flight = (work, value)
        return earlier

    def _earlier_answer(self) -> bool:
        if self._in_flight is None:
            return False
        (work, value), self._in_flight = self._in_flight, None
        work.wait()
        return bool(value.item())

    def broadcast(self, value: Any) -> Any:
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value, group=self.control)
        return values

    def barrier(self) -> None:
        dist.barrier(group=self.control)

    def in_turn(self, function: Callable[[bool], Any]) -> Any:
        """Reading a run directory: rank 0 alone may tidy it (remove a killed write's temps) before the others read."""
        result, error = _attempt(function, True) if self.is_writer else (None, None)
        failure = self.broadcast(None if error is None else f"{type(error).__name__}: {error}")
        if failure is None and not self.is_writer:
            result, error = _attempt(function, False)
        failures = self.gather(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        failure = failure or next((f"rank {rank}: {text}" for rank, text in enumerate(failures) if text), None)
        if failure is not None:
            raise ValueError(f"Another process of this distributed run failed ({failure}).")
        return result

    def summed(self, sums: EpochSums) -> EpochSums:
        """``sums`` added over all ranks (a new object: a checkpoint keeps each rank's own)."""
        packed = torch.tensor(sums.totals(), dtype=torch.float64)
        dist.all_reduce(packed, group=self.control)
        return EpochSums.from_totals(sums.outputs, sums.classifiers, next(iter(sums.loss.values())).device, packed.tolist())

    def share_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm's running statistics) on every rank, as DDP does before each forward pass."""
        if self.runner is not None:
            with torch.no_grad():
                for buffer in self.runner.module.buffers():
                    dist.broadcast(buffer, src=0)

    def failed(self) -> None:
        process_group.mark_failed()

    def shared_state(self, state: dict, own: dict) -> dict:
        return {**state, "ranks": self.gather(on_host(own)), "world_size": self.world_size}


def _attempt(function: Callable[[bool], Any], first: bool) -> tuple[Any, BaseException | None]:
    try:
        return function(first), None
    except Exception as error:  # handed to every rank by in_turn
        return None, error
