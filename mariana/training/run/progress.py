"""The Trainer's state at a step boundary: what a checkpoint holds, and how a run continues from it.

A mixin of :class:`mariana.training.Trainer`: ``state_dict()`` gathers the
position in the run (epoch, step, this epoch's order), the running sums, the
history, the random states (Python, NumPy, torch, the samplers), the stops'
and recorders' states, the weights, the optimizer state, the moving average,
the gradient scaler and, mid-accumulation, the pending gradients;
``load_state_dict()`` puts them back, random states last. Together they make
a resumed run bit-identical to one never interrupted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import torch

from mariana.training.callbacks.hooks import load_states, states
from mariana.training.history import History
from mariana.training.storage import checkpoint as CK
from mariana.training.storage.run_directory import describe_object
from mariana.training.strategies.ddp import on_host

if TYPE_CHECKING:
    from mariana.training.trainer import Trainer


class ResumableState:
    """``state_dict``/``load_state_dict`` for the Trainer (see the module docstring)."""

    def state_dict(self: Trainer, reason: str = "") -> dict:
        """Everything a resumed run needs, at the current step boundary (tensors are not copied)."""
        pending = self._pending_end
        rng = CK.capture_rng()
        if self._in_step:
            # The step that failed may have drawn random numbers; the boundary is before it.
            rng["torch"], cuda = self._rng_before_step
            if cuda is not None:
                rng["cuda"] = list(cuda)
        return {
            "reason": reason, "epoch": self.epoch, "step": self.position_step,
            "phase": "epoch_end" if pending is not None else "steps",
            "order": None if self.epoch_order is None else torch.from_numpy(self.epoch_order.copy()),
            **self.sums.state_dict(),
            "elapsed": self._elapsed(),
            "history": self.history[:pending["history"]] if pending is not None else self.history,
            "stop_reason": self.stop_reason, "best_value": self._best_value.value, "rng": rng,
            "sampler": self._streams["train"].sampler.state_dict(),
            "order_rng": self._order_rng.bit_generator.state,
            "stops": pending["stops"] if pending is not None else states(self.stops),
            "recorders": pending["recorders"] if pending is not None else states(self.recorders),
            "weights": self.net.state_dict(), "optimizer": self.net.optimizer_state_dict(),
            "ema": None if self.average is None else self.average.state_dict(), "hardware": self.hardware.state_dict(),
            "gradients": {name: p.grad for name, p in self.net.module.named_parameters() if p.grad is not None},
            "log": json.loads(json.dumps(self.net.log[:pending["log"]] if pending is not None else self.net.log, default=str)),
            "environment": CK.environment(),
        }

    def load_state_dict(self: Trainer, state: dict) -> None:
        """Continue from :meth:`state_dict`'s output (after the streams are set up); restores the RNGs last.

        Under DDP each rank takes its own random states, running sums and pending gradients from ``state["ranks"]``.
        """
        check_state(state)
        state = self.distributed.own(state)
        check_state(state)  # what this rank took from its part, too
        self.history = History(state["history"], stop_reason=state["stop_reason"])
        self.position_step = state["step"]
        self.epoch_order = None if state["order"] is None else state["order"].numpy().copy()
        self._pending_end = ({"stops": state["stops"], "recorders": state["recorders"], "history": len(self.history),
                              "log": len(self.net.log)}
                             if state["phase"] == "epoch_end" else None)
        self.sums.load_state_dict(state)
        self.hardware.load_state_dict(state.get("hardware", {}))
        if self.average is not None and state.get("ema") is not None:
            self.average.load_state_dict(state["ema"])
        parameters = dict(self.net.module.named_parameters())
        for name, gradient in state.get("gradients", {}).items():  # mid-group of an accumulation
            parameters[name].grad = gradient.to(parameters[name].device)
        self._elapsed_before = state["elapsed"]
        self.stop_reason = state["stop_reason"]
        self._best_value.value = state["best_value"]
        self._streams["train"].sampler.load_state_dict(state["sampler"])
        bit_generator = np.random.PCG64()
        bit_generator.state = state["order_rng"]
        self._order_rng = np.random.Generator(bit_generator)
        load_states(self.stops, state["stops"])
        load_states(self.recorders, state["recorders"])
        CK.restore_rng(state["rng"])  # last: nothing may draw random numbers after this

    def _config(self: Trainer) -> dict:
        """The settings run.json keeps: the Trainer's keyword arguments, so a resume rebuilds the same Trainer."""
        config = {key: value for key, value in self.describe().items() if key not in ("streams", "run_dir")}
        config.update(save_if_murdered=self.save_if_murdered, eval_batch_size=self.eval_batch_size, best=list(self.best),
                      checkpoint_every=self.checkpoint_every, keep_checkpoints=self.run_directory.store.keep, ema=self.ema,
                      device=str(self.device), precision=self.precision, compile=self.compile, resume=self.resume_mode,
                      recorders=[describe_object(r) for r in self.recorders])
        return config

    # -- checkpoints ----------------------------------------------------------------------
    def shared_state(self: Trainer, reason: str) -> dict:
        """:meth:`state_dict`, with every rank's own part under DDP (a collective call: all ranks make it together)."""
        state = self.state_dict(reason)
        if self.distributed.active:
            own = {"rng": state["rng"], "sums": self.sums.state_dict(), "gradients": state["gradients"]}
            state["ranks"] = self.distributed.gather(on_host(own))
            state["world_size"] = self.distributed.world_size
        return state

    def _checkpoint(self: Trainer, reason: str, best: bool = False) -> None:
        state = self.shared_state(reason)
        if self.distributed.is_writer:
            self.run_directory.save_checkpoint(state, self.epoch, self.position_step, best)

    def _can_save(self: Trainer) -> bool:
        return self.save_if_murdered and self.run_directory is not None

    def _interrupted(self: Trainer, at_once: bool = True) -> bool:
        """Whether a signal asks to stop here. Under DDP all ranks must stop at the same boundary: between steps
        (``at_once=False``) they learn of a signal on any rank one step later, all at the same step."""
        pending = self.interrupts.pending is not None
        if not (self.distributed.active and self.interrupts.enabled):
            return pending
        if not self.distributed.any(pending, at_once):
            return False
        if not pending:
            self.interrupts.pending = "SIGTERM"  # another rank's signal: stop and save with it
        return True

    def _emergency(self: Trainer, cause: str) -> str:
        """Write a checkpoint at this step boundary now; returns the message telling how to resume."""
        self._emergency_written = True
        where = f"epoch {self.epoch + 1}, after step {self.position_step}" if self._pending_end is None else f"end of epoch {self.epoch + 1}"
        state = self.shared_state(f"emergency: {cause}")
        if self.distributed.is_writer:
            self.run_directory.save_now(state, self.epoch, self.position_step)
        self.distributed.barrier()  # the checkpoint is complete before any process exits
        return (f"mariana: training stopped by {cause} at {where}; checkpoint saved in {self.run_dir}. "
                f"Resume with `mariana resume {self.run_dir}` or Trainer.resume({str(self.run_dir)!r}).")


#: What a checkpoint's trainer state must hold, by type (checked before anything is restored).
STATE_TYPES = {"epoch": int, "step": int, "phase": str, "history": list, "elapsed": (int, float), "stop_reason": (str, type(None)),
               "best_value": (int, float, type(None)), "rng": dict, "sampler": dict, "order_rng": dict, "stops": list,
               "recorders": list, "loss_sums": dict, "correct": dict, "counts": dict, "weights": dict, "optimizer": dict}


def check_state(state: dict) -> None:
    """``ValueError`` naming the first entry of a checkpoint's state that does not have the type Mariana writes."""
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint state must be an object, but is {type(state).__name__}.")
    for key, kind in STATE_TYPES.items():
        value = state.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"checkpoint state {key!r} must be {getattr(kind, '__name__', kind)}, but is {value!r:.60}.")
    if state["phase"] not in ("steps", "epoch_end") or state["epoch"] < 0 or state["step"] < 0:
        raise ValueError(f"checkpoint state has phase {state['phase']!r}, epoch {state['epoch']} and step {state['step']}; "
                         f"expected 'steps' or 'epoch_end' and counts >= 0.")
    order = state.get("order")
    if order is not None and not (isinstance(order, torch.Tensor) and order.dim() == 1 and not order.is_floating_point()):
        raise ValueError("checkpoint state 'order' must be a 1-d integer tensor or null.")
