"""The run's progress: where it stands at a step boundary, what a checkpoint records of it, and putting it back.

:class:`Progress` holds the history, the position in the epoch (its order and
the next step), the optimizer steps taken, the running sums, the time spent,
the best monitored value and, between the last step of an epoch and the
end of that epoch's handling, what the checkpoint must describe instead (the
state *before* the epoch end). Its ``state_dict``/``load_state_dict`` carry
exactly those entries; the Trainer adds its parts' states (network,
optimizers, samplers, callbacks, random states) around them.

Example:
    >>> import torch
    >>> progress = Progress(["out"], [], torch.device("cpu"))
    >>> progress.epoch, progress.step, progress.stop_reason
    (0, 0, None)
    >>> restored = Progress(["out"], [], torch.device("cpu"))
    >>> restored.load_state_dict(progress.state_dict()); restored.epoch
    0
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from mariana.training.callbacks.best import BestValue
from mariana.training.history import History
from mariana.training.loop.metrics import EpochSums


class Progress:
    """Where a run stands (see the module docstring)."""

    def __init__(self, outputs: Sequence[str], classifiers: Sequence[str], device: torch.device) -> None:
        self.outputs, self.classifiers = list(outputs), list(classifiers)
        self.history = History()
        self.step = 0  #: the next step of this epoch
        self.optimizer_steps = 0  #: optimizer steps taken since the run started
        self.epoch_order: np.ndarray | None = None  #: this epoch's sample order (None between epochs)
        self.sums = EpochSums(outputs, classifiers, device)
        self.order_rng = np.random.Generator(np.random.PCG64(0))  #: draws the output of each step in order "random"
        self.best_value = BestValue(("train", self.outputs[0], "loss"))  # the monitored metric is known at start
        self.step_stops: list[list] = []  #: [stop index, reason] of the step-level stops that ended this epoch early
        self.pending_end: dict | None = None  #: between an epoch's last step and the end of its handling
        self._elapsed_before = 0.0
        self._session_start: float | None = None

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return len(self.history)

    @property
    def stop_reason(self) -> str | None:
        return self.history.stop_reason

    @stop_reason.setter
    def stop_reason(self, reason: str | None) -> None:
        self.history.stop_reason = reason

    def begin_session(self) -> None:
        self._session_start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of training so far, sessions before a resume included."""
        if self._session_start is None:
            return self._elapsed_before
        return self._elapsed_before + time.perf_counter() - self._session_start

    def begin_epoch(self, order: np.ndarray, device: torch.device) -> None:
        self.epoch_order, self.step = order, 0
        self.sums = EpochSums(self.outputs, self.classifiers, device)

    def end_epoch(self) -> None:
        self.pending_end, self.epoch_order, self.step, self.step_stops = None, None, 0, []

    def state_dict(self) -> dict:
        """The progress at this step boundary (before a pending epoch end): the checkpoint's entries for it."""
        pending = self.pending_end
        return {
            "epoch": self.epoch, "step": self.step, "optimizer_steps": self.optimizer_steps,
            "phase": "epoch_end" if pending is not None else "steps",
            "order": None if self.epoch_order is None else torch.from_numpy(self.epoch_order.copy()),
            **self.sums.state_dict(),
            "elapsed": self.elapsed(),
            "history": self.history[:pending["history"]] if pending is not None else self.history,
            "stop_reason": self.stop_reason, "best_value": self.best_value.value,
            "order_rng": self.order_rng.bit_generator.state, "step_stops": [list(item) for item in self.step_stops],
        }

    def load_state_dict(self, state: dict, log_length: int = 0) -> None:
        """Back to :meth:`state_dict`'s output; at a pending epoch end, the state's callbacks' states and the generation
        log's ``log_length`` describe the state before it."""
        self.history = History(state["history"], stop_reason=state["stop_reason"])
        self.step = state["step"]
        self.optimizer_steps = int(state.get("optimizer_steps", 0))  # absent from checkpoints written before StepWall
        self.epoch_order = None if state["order"] is None else state["order"].numpy().copy()
        self.step_stops = [list(item) for item in state.get("step_stops", [])]
        self.pending_end = ({"stops": state["stops"], "recorders": state["recorders"], "history": len(self.history), "log": log_length}
                            if state["phase"] == "epoch_end" else None)
        self.sums.load_state_dict(state)
        self._elapsed_before = state["elapsed"]
        self.best_value.value = state["best_value"]
        bit_generator = np.random.PCG64()
        bit_generator.state = state["order_rng"]
        self.order_rng = np.random.Generator(bit_generator)


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
    steps = state.get("optimizer_steps", 0)
    step_stops = state.get("step_stops", [])
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"checkpoint state 'optimizer_steps' must be an int >= 0, but is {steps!r:.60}.")
    if not (isinstance(step_stops, list) and all(isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
                                                 and isinstance(item[1], str) for item in step_stops)):
        raise ValueError("checkpoint state 'step_stops' must be a list of [stop index, reason] pairs.")
