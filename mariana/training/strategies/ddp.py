"""Data-parallel training on PyTorch's own engine: torchrun's environment, the process group, DDP, the ranks' shares.

The same script runs unchanged under ``torchrun --nproc_per_node=N``. When
the environment says ``WORLD_SIZE`` > 1 (or the user already initialised a
process group), the Trainer:

* initialises the process group unless the user did (gloo on CPU, nccl on
  CUDA, each rank on ``cuda:LOCAL_RANK``), through a store prefixed by
  torchrun's restart count, so a group that torchrun restarted never reads
  the addresses its dead predecessor left in the agent's store;
* wraps ``net.module`` in ``DistributedDataParallel``, which averages the
  gradients during the backward pass;
* keeps ``batch_size`` global: every rank visits the same epoch order and
  trains on its contiguous share of each batch (one that does not divide by
  the world size is refused), scaled so the averaged gradient is the one of
  the whole batch; valid and test streams are split in contiguous shares;
* sums the metrics of all ranks, agrees on interrupts at each step boundary
  (a signal on any rank stops all of them one step later, at the same
  boundary) and on each epoch's entry, and lets only rank 0 write (run directory,
  checkpoints, recorders, progress bar).

Control messages (metrics, agreement, checkpoint states) go through a gloo
group, so a GPU run never waits on the device for them.

Example (one process: nothing is distributed):
    >>> distributed = Distributed.from_environment()
    >>> distributed.world_size, distributed.is_writer, distributed.share(0, 10)
    (1, True, (0, 10))
"""

from __future__ import annotations

import atexit
import contextlib
import os
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mariana.execution import CostResult, TrainingPlan
from mariana.training.loop.metrics import STATE_KEYS, EpochSums
from mariana.training.run.resume import ResumeWarning

#: How long a rank waits for the others to join or answer (seconds); ``MARIANA_DISTRIBUTED_TIMEOUT`` changes it.
DEFAULT_TIMEOUT = 600
#: How long a process leaving the run waits for the others, so all close the group together (seconds).
EXIT_WAIT = 30


class PlanRunner(torch.nn.Module):
    """The network as DDP sees it: calling it runs a step's forward pass (``function(*args)``) over its parameters."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.network = module

    def forward(self, function: Callable[..., Any], *args: Any) -> Any:
        return function(*args)


class Distributed:
    """This process's place in a data-parallel run (rank 0 of 1 when there is none)."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, control: Any = None) -> None:
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.control = control  #: the gloo group for control messages (None: the default group)
        self.runner: torch.nn.parallel.DistributedDataParallel | None = None
        self._in_flight: tuple[Any, torch.Tensor] | None = None  # a reduction started by any(at_once=False)

    @classmethod
    def from_environment(cls, device: Any = "auto") -> Distributed:
        """The running process group, or a new one when torchrun's environment asks for several processes."""
        if not dist.is_available():
            return cls()
        if not dist.is_initialized():
            world = _environment_int("WORLD_SIZE", 1)
            if world <= 1:
                return cls()
            _initialise(_backend(device))
        world, rank = dist.get_world_size(), dist.get_rank()
        if world == 1:
            return cls()
        local_rank = _environment_int("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1))
        control = None if dist.get_backend() == "gloo" else _control_group()
        return cls(rank, world, local_rank, control)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes files and shows progress."""
        return self.rank == 0

    def device(self, requested: Any) -> Any:
        """Each rank's own GPU: "auto" and "cuda" become ``cuda:LOCAL_RANK`` (an explicit index is kept)."""
        if self.active and requested in ("auto", "cuda") and torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return f"cuda:{self.local_rank}"
        return requested

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ValueError(f"Trainer: batch_size is the global batch, split between the {self.world_size} processes, so it "
                             f"must be divisible by {self.world_size}, but received {batch_size}. Use e.g. batch_size="
                             f"{max(self.world_size, batch_size - batch_size % self.world_size)}.")

    # -- shares ---------------------------------------------------------------------------
    def share(self, low: int, high: int) -> tuple[int, int]:
        """This rank's contiguous part of rows ``low:high`` (sizes differ by one at most; may be empty)."""
        if self.world_size == 1:
            return low, high
        size, extra = divmod(high - low, self.world_size)
        start = low + self.rank * size + min(self.rank, extra)
        return start, start + size + (self.rank < extra)

    # -- the DDP wrapper ----------------------------------------------------------------
    def wrap(self, module: torch.nn.Module, device: torch.device, plans: list[TrainingPlan]) -> None:
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

    def share_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm's running statistics) on every rank, as DDP does before each forward pass:
        before an evaluation, so every rank evaluates the same model."""
        if self.runner is not None:
            with torch.no_grad():
                for buffer in self.runner.module.buffers():
                    dist.broadcast(buffer, src=0)

    def weighed_by_counts(self, result: CostResult, rows: int, batch_rows: int, counted: bool) -> CostResult:
        """With class weights a loss is a weighted mean over this rank's rows: reweigh it by this rank's share of the
        whole batch's weight (not of its rows), so the averaged gradient is the one-process batch's (one all-reduce)."""
        if self.runner is None or not result.counts:
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

    def forward_backward(self, hardware: Any, plan: TrainingPlan, batch: Any, sync: bool, share: float, batch_rows: int,
                         counted: bool) -> CostResult:
        """One DDP forward and backward pass of this rank's ``batch`` (a ``counted=False`` batch joins at weight 0);
        ``sync=False`` (accumulating) keeps the gradients local. Returns the forward pass's result."""
        with self.synchronising(sync):
            result = self.run(hardware.evaluate, plan, batch)
            result = self.weighed_by_counts(result, len(batch), batch_rows, counted)
            hardware.backward(plan, result, share)
        return result

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` as a forward pass DDP knows of (so the backward averages gradients)."""
        return function(*args) if self.runner is None else self.runner(function, *args)

    def synchronising(self, sync: bool) -> contextlib.AbstractContextManager:
        """Around a forward and backward pass: ``sync=False`` (accumulating) keeps the gradients local."""
        return self.runner.no_sync() if self.runner is not None and not sync else contextlib.nullcontext()

    # -- messages -----------------------------------------------------------------------
    def any(self, flag: bool, at_once: bool = True) -> bool:
        """Whether ``flag`` is true on any rank; all ranks get the same answer.

        ``at_once=False`` (each step) does not wait: it starts this call's reduction and answers the previous
        call's, so the step's time hides the message and every rank still learns it at the same call.
        """
        if not self.active:
            return flag
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
        """Rank 0's ``value``, on every rank."""
        if not self.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.active:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value, group=self.control)
        return values

    def failed(self) -> None:
        """This process is leaving the run on an error the others did not share: it will not wait for them at exit."""
        _EXIT["failed"] = True

    def barrier(self) -> None:
        if self.active:
            dist.barrier(group=self.control)

    def in_turn(self, function: Callable[[bool], Any]) -> Any:
        """``function(first)`` on rank 0 (``first=True``), then on the others; an error on any rank is raised on all.

        Reading a run directory: rank 0 alone may tidy it (remove a killed write's temps) before the others read.
        """
        if not self.active:
            return function(True)
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

    def own(self, state: dict) -> dict:
        """A checkpoint's state with this rank's own random states, running sums and pending gradients.

        Another number of processes than the checkpoint's warns (batches split differently: not bit-identical);
        then rank 0 keeps the recorded running sums, the other ranks start theirs from zero with their own seeds.
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

    def summed(self, sums: EpochSums) -> EpochSums:
        """``sums`` added over all ranks (a new object: a checkpoint keeps each rank's own)."""
        if not self.active:
            return sums
        packed = torch.tensor(sums.totals(), dtype=torch.float64)
        dist.all_reduce(packed, group=self.control)
        return EpochSums.from_totals(sums.outputs, sums.classifiers, next(iter(sums.loss.values())).device, packed.tolist())


def _is_rank_part(part: Any) -> bool:
    return (isinstance(part, dict) and isinstance(part.get("rng"), dict) and isinstance(part.get("sums"), dict)
            and isinstance(part.get("gradients"), dict)
            and all(isinstance(value, torch.Tensor) for value in part["gradients"].values()))


def _reseeded(rng: dict, rank: int) -> dict:
    """``rng`` with torch's state replaced by one derived from it and ``rank`` (its own dropout masks)."""
    state = rng.get("torch")
    base = int(np.frombuffer(bytes(state[:8].tolist()), dtype=np.uint64)[0] >> 1) if isinstance(state, torch.Tensor) else 0
    return {**rng, "torch": torch.Generator().manual_seed(rank_seed(base, rank)).get_state()}


def _attempt(function: Callable[[bool], Any], first: bool) -> tuple[Any, BaseException | None]:
    try:
        return function(first), None
    except Exception as error:  # handed to every rank by in_turn
        return None, error


def _environment_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        raise ValueError(f"The environment variable {name} must be an integer (torchrun sets it), but is {value!r}.") from None


def _backend(device: Any) -> str:
    wants_cuda = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "nccl" if wants_cuda and dist.is_nccl_available() else "gloo"


def _timeout() -> timedelta:
    return timedelta(seconds=_environment_int("MARIANA_DISTRIBUTED_TIMEOUT", DEFAULT_TIMEOUT))


def _initialise(backend: str) -> None:
    """``init_process_group`` through torchrun's store, prefixed by the restart attempt (see the module docstring)."""
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} asks for a distributed run, but {', '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not set. Launch the script with torchrun, e.g. "
                         f"`torchrun --nproc_per_node=2 script.py`, or set them as torchrun does.")
    store, rank, world = next(dist.rendezvous("env://", timeout=_timeout()))
    attempt = _environment_int("TORCHELASTIC_RESTART_COUNT", 0)
    store = dist.PrefixStore(f"mariana/attempt-{attempt}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=_timeout())
    atexit.register(_destroy)


def _destroy() -> None:
    """At exit, while the interpreter is whole: wait for the other ranks, then close the group. (Left to the process's
    end, gloo's threads release tensors after Python is gone and abort the exit: 1 run in 6 here.)"""
    if not dist.is_initialized():
        return
    if _EXIT["failed"]:  # the others are waiting in a step that will never come: let them fail now
        dist.destroy_process_group()
        return
    try:  # a gloo barrier that gives up: a rank that failed alone must not wait for the others' whole timeout
        dist.monitored_barrier(group=_CONTROL.get(id(dist.group.WORLD)), timeout=timedelta(seconds=EXIT_WAIT))
    except RuntimeError:  # another rank is gone or still busy (a failure): close what is left
        pass
    dist.destroy_process_group()


_CONTROL: dict[int, Any] = {}
_EXIT = {"failed": False}


def _control_group() -> Any:
    """One gloo group for control messages per process group (created once: every rank must create it together)."""
    key = id(dist.group.WORLD)
    if key not in _CONTROL:
        _CONTROL[key] = dist.new_group(backend="gloo")
    return _CONTROL[key]


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of ``rank`` in a run seeded with ``seed`` (rank 0 keeps ``seed``): dropout differs across ranks."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


def on_host(value: Any) -> Any:
    """``value`` with its tensors copied to the CPU (what ranks exchange as pickled objects)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_host(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [on_host(item) for item in value]
    return value
