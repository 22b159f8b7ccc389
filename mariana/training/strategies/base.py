"""The strategy seam: how the processes of a run share its work. The Trainer's loop calls a Strategy and never
asks how many processes there are.

A strategy answers for this process (``rank``, ``world_size``, ``is_writer``),
joins the other processes when training starts (:meth:`Strategy.setup`),
prepares the network (DDP wraps it; a sharding strategy would shard it),
runs each step's forward and backward pass, splits batches and evaluations
into this process's share, adds metrics over processes, and agrees with the
others on what every process must decide alike (the seed, an interrupt, a
stop, each epoch's entry). :class:`SingleProcess` is the strategy of a plain
one-process run: every answer is the trivial one.

A new strategy is one subclass of :class:`Strategy` (see
``mariana.training.strategies.ddp`` for data parallelism) and one entry in
``mariana.training.strategies.STRATEGIES``.

Example:
    >>> single = SingleProcess()
    >>> single.world_size, single.is_writer, single.share(0, 10), single.any(True), single.gather("x")
    (1, True, (0, 10), True, ['x'])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mariana.execution import CostResult, TrainingPlan
from mariana.training.loop.metrics import STATE_KEYS, EpochSums
from mariana.training.run.resume import ResumeWarning
from mariana.training.strategies.process_group import rank_seed

if TYPE_CHECKING:
    from mariana.training.loop.interrupts import Interrupts


class Strategy:
    """This process's part in a run (the interface; see the module docstring)."""

    #: The name ``Trainer(strategy=...)`` takes.
    name = ""
    #: Whether an error in one process is a step boundary every process shares (so an emergency checkpoint is consistent).
    saves_on_error = True

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes files and shows progress."""
        return self.rank == 0

    # -- set-up ---------------------------------------------------------------------------
    def setup(self, device: Any) -> None:
        """Join the run's other processes (when training starts, never when the Trainer is built)."""

    def device(self, requested: Any) -> Any:
        """The device this process trains on, from the one the user asked for."""
        return requested

    def check_batch_size(self, batch_size: int) -> None:
        """``ValueError`` when the global ``batch_size`` cannot be shared between the processes."""

    def agree_seed(self, seed: int | None) -> int | None:
        """The seed every process starts the run with (None: do not seed)."""
        return seed

    def seed_process(self, seed: int | None) -> None:
        """After the shared random states are drawn: this process's own torch state (its dropout masks)."""

    def prepare(self, module: torch.nn.Module, device: torch.device, plans: list[TrainingPlan]) -> None:
        """Make ready ``module`` (the network, on ``device``) for training ``plans``."""

    # -- each step ------------------------------------------------------------------------
    def forward_backward(self, hardware: Any, plan: TrainingPlan, batch: Any, sync: bool, share: float, batch_rows: int,
                         counted: bool) -> CostResult:
        """One forward and backward pass of this process's ``batch`` (``share``: its gradient's weight; ``sync=False``
        while accumulating); returns the forward pass's result."""
        result = hardware.evaluate(plan, batch)
        hardware.backward(plan, result, share)
        return result

    def share(self, low: int, high: int) -> tuple[int, int]:
        """This process's contiguous part of rows ``low:high`` (may be empty)."""
        return low, high

    def interrupt_check(self, interrupts: Interrupts) -> Callable[[], bool] | None:
        """A check made between steps: whether a signal on any process asks every process to stop now; None when only
        this process's own signals count (the loop then reads ``interrupts.pending`` itself: no call per step)."""
        return None

    # -- agreement ------------------------------------------------------------------------
    def any(self, flag: bool, at_once: bool = True) -> bool:
        """Whether ``flag`` is true on any process; all get the same answer."""
        return flag

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value``, on every process."""
        return value

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order, on every process."""
        return [value]

    def barrier(self) -> None:
        """Wait until every process is here."""

    def in_turn(self, function: Callable[[bool], Any]) -> Any:
        """``function(first)`` on rank 0 (``first=True``), then on the others; an error on any is raised on all."""
        return function(True)

    def summed(self, sums: EpochSums) -> EpochSums:
        """``sums`` added over the processes."""
        return sums

    def share_buffers(self) -> None:
        """Before an evaluation: every process holds the same buffers (BatchNorm's running statistics)."""

    def failed(self) -> None:
        """This process leaves the run on an error the others did not share."""

    # -- checkpoints ----------------------------------------------------------------------
    def shared_state(self, state: dict, own: dict) -> dict:
        """A checkpoint's ``state`` with every process's ``own`` part (random states, running sums, pending gradients)."""
        return state

    def own(self, state: dict) -> dict:
        """A checkpoint's state with this process's own random states, running sums and pending gradients.

        Another number of processes than the checkpoint's warns (batches split differently: not bit-identical);
        then rank 0 keeps the recorded running sums, the others start theirs from zero with their own seeds.
        """
        ranks = state.get("ranks")
        if ranks is None:
            ranks = [{"rng": state["rng"], "sums": {key: state[key] for key in STATE_KEYS if key in state},
                      "gradients": state.get("gradients", {})}]
        elif not (isinstance(ranks, list) and ranks and all(_is_rank_part(part) for part in ranks)):
            raise ValueError("checkpoint state 'ranks' must be a non-empty list of each process's states "
                             "(objects with 'rng', 'sums' and 'gradients').")
        if len(ranks) != self.world_size:
            warnings.warn(f"This checkpoint was written by {len(ranks)} process(es) and is resumed by {self.world_size}: "
                          f"the batches are split differently, so the run will not be bit-identical to an uninterrupted "
                          f"one.", ResumeWarning, stacklevel=3)
        if self.rank < len(ranks):
            part = ranks[self.rank]
        else:
            recorded = ranks[0]["sums"]  # the same outputs, nothing counted yet
            empty = EpochSums(list(recorded.get("loss_sums", {})), list(recorded.get("correct", {})), torch.device("cpu"))
            part = {"rng": _reseeded(ranks[0]["rng"], self.rank), "sums": empty.state_dict(), "gradients": {}}
        return {**state, "rng": part["rng"], "gradients": part["gradients"],
                **{key: part["sums"][key] for key in STATE_KEYS if key in part["sums"]}}


class SingleProcess(Strategy):
    """One process does everything: the plain run (and what "auto" means outside torchrun)."""

    name = "single"


def _is_rank_part(part: Any) -> bool:
    return (isinstance(part, dict) and isinstance(part.get("rng"), dict) and isinstance(part.get("sums"), dict)
            and isinstance(part.get("gradients"), dict)
            and all(isinstance(value, torch.Tensor) for value in part["gradients"].values()))


def _reseeded(rng: dict, rank: int) -> dict:
    """``rng`` with torch's state replaced by one derived from it and ``rank`` (its own dropout masks)."""
    state = rng.get("torch")
    base = int(np.frombuffer(bytes(state[:8].tolist()), dtype=np.uint64)[0] >> 1) if isinstance(state, torch.Tensor) else 0
    return {**rng, "torch": torch.Generator().manual_seed(rank_seed(base, rank)).get_state()}
