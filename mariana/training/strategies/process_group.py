"""The process group of a run launched by torchrun: its environment, joining it, messages between ranks, leaving it.

torchrun tells each process ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the
rendezvous address. :func:`join` initialises the default group (gloo on CPU,
nccl on CUDA) through a store prefixed by torchrun's restart count, so a
group that torchrun restarted never reads the addresses its dead predecessor
left in the agent's store. Control messages (metrics, agreement, checkpoint
states) go through a gloo group, so a GPU run never waits on the device for
them. At exit every rank waits a little for the others, then closes the group.

Example (no torchrun: one process):
    >>> torchrun_world()
    (0, 1, 0)
"""

from __future__ import annotations

import atexit
import os
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

#: How long a rank waits for the others to join or answer (seconds); ``MARIANA_DISTRIBUTED_TIMEOUT`` changes it.
DEFAULT_TIMEOUT = 600
#: How long a process leaving the run waits for the others, so all close the group together (seconds).
EXIT_WAIT = 30

_CONTROL: dict[int, Any] = {}
_EXIT = {"failed": False}


def environment_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        raise ValueError(f"The environment variable {name} must be an integer (torchrun sets it), but is {value!r}.") from None


def torchrun_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` of this process: the running group's, else torchrun's environment's."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        world = environment_int("WORLD_SIZE", 1)
        rank = environment_int("RANK", 0) if world > 1 else 0
    local_rank = environment_int("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)) if world > 1 else 0
    return rank, world, local_rank


def backend_for(device: Any) -> str:
    wants_cuda = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "nccl" if wants_cuda and dist.is_nccl_available() else "gloo"


def timeout() -> timedelta:
    return timedelta(seconds=environment_int("MARIANA_DISTRIBUTED_TIMEOUT", DEFAULT_TIMEOUT))


def join(device: Any) -> Any:
    """Join the run's process group unless the user already did; returns the gloo group for control messages
    (None: the default group is gloo already)."""
    if not dist.is_initialized():
        missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
        if missing:
            raise ValueError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} asks for a distributed run, but {', '.join(missing)} "
                             f"{'is' if len(missing) == 1 else 'are'} not set. Launch the script with torchrun, e.g. "
                             f"`torchrun --nproc_per_node=2 script.py`, or set them as torchrun does.")
        store, rank, world = next(dist.rendezvous("env://", timeout=timeout()))
        attempt = environment_int("TORCHELASTIC_RESTART_COUNT", 0)
        store = dist.PrefixStore(f"mariana/attempt-{attempt}", store)
        dist.init_process_group(backend_for(device), store=store, rank=rank, world_size=world, timeout=timeout())
        atexit.register(_leave)
    return None if dist.get_backend() == "gloo" else _control_group()


def _control_group() -> Any:
    """One gloo group for control messages per process group (created once: every rank must create it together)."""
    key = id(dist.group.WORLD)
    if key not in _CONTROL:
        _CONTROL[key] = dist.new_group(backend="gloo")
    return _CONTROL[key]


def mark_failed() -> None:
    """This process leaves the run on an error the others did not share: it will not wait for them at exit."""
    _EXIT["failed"] = True


def _leave() -> None:
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
