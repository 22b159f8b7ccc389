"""Where and how precisely the Trainer computes: the device, a compiled forward pass, and the precision mode
(:mod:`mariana.training.precision`), which owns the dtype, autocast, the backward pass's hooks and their state.

The network and its optimizer state move to the device once, when a run
starts; each stream is copied there whole when it fits (see
``mariana.devices.keep_on_device``) or moves batch by batch from pinned host
memory, asynchronously. The precision's autocast (if any) wraps the forward
pass and the costs only.

``compile=True`` (or a ``torch.compile`` mode: ``"default"``,
``"reduce-overhead"``, ``"max-autotune"``, ``"max-autotune-no-cudagraphs"``)
runs the forward pass and costs through ``torch.compile`` with that mode; if
the backend cannot compile them (an operation it does not support, no C++
compiler), the Trainer warns once and runs that plan eagerly.
``"reduce-overhead"`` captures the compiled step in CUDA graphs on a GPU,
for small models whose eager steps are bound by kernel launches; each step
then marks a new CUDA-graph iteration. Elsewhere torch runs it as
``"default"``. Not yet measured on a GPU (none was available to this
project's benchmarks): ``benchmarks/gpu_check.py`` is the prepared check.

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(2, name="x") > ML.Regression(1, name="out")
    >>> hardware = Hardware(net, device="cpu", precision="bf16-mixed")
    >>> hardware.device, hardware.precision.name, hardware.precision.autocast_dtype
    (device(type='cpu'), 'bf16-mixed', torch.bfloat16)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from mariana.devices import keep_on_device, resolve_device
from mariana.execution import CostPlan, CostResult, TrainingPlan
from mariana.network import Network
from mariana.training.data.streams import FileStream, PreparedStream
from mariana.training.precision import Precision

#: ``compile=`` strings: ``torch.compile``'s modes (``True`` means "default").
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(compile: Any) -> str | None:
    """The ``torch.compile`` mode ``compile=`` asks for, or None for eager steps.

    Example:
        >>> compile_mode(True), compile_mode(False), compile_mode("reduce-overhead")
        ('default', None, 'reduce-overhead')
        >>> compile_mode("fast")
        Traceback (most recent call last):
        ...
        ValueError: Trainer: compile must be True, False or one of 'default', 'reduce-overhead', 'max-autotune', \
'max-autotune-no-cudagraphs', but received 'fast'.
    """
    if isinstance(compile, bool):
        return "default" if compile else None
    valid = f"True, False or one of {', '.join(map(repr, COMPILE_MODES))}"
    if not isinstance(compile, str):
        raise TypeError(f"Trainer: compile must be {valid}, but received {compile!r}.")
    if compile not in COMPILE_MODES:
        raise ValueError(f"Trainer: compile must be {valid}, but received {compile!r}.")
    return compile


class CompileWarning(UserWarning):
    """torch.compile could not compile a plan: it runs eagerly (same results, no compiled speed)."""


class Hardware:
    """The Trainer's device, compilation and precision mode; the mode's own state (a gradient scaler) is checkpointed here."""

    def __init__(self, net: Network, device: Any = "auto", precision: Any = "32", compile: bool | str = False) -> None:
        current = net.device
        # "auto" keeps a network the user already moved to an accelerator where it is.
        self.device = current if device == "auto" and current.type != "cpu" else resolve_device(device)
        self.precision = Precision.named(precision, self.device)  #: the precision mode (an unknown name fails here)
        self.compile = compile_mode(compile)  #: the torch.compile mode, None for eager steps
        # Built once: the step enters this same context every time (None: the mode has no autocast).
        self._autocast = self.precision.autocast()
        self._mark_step = self.compile == "reduce-overhead"  # CUDA graphs: each step is a new iteration
        self._evaluators: dict[CostPlan, Callable[..., CostResult]] = {}
        # The step calls the mode's own backward and apply, bound once: no call in between (they run every step).
        self.backward = self.precision.backward
        self.apply = self.precision.apply

    @property
    def scaler(self) -> torch.amp.GradScaler | None:
        """The precision mode's gradient scaler ("16-mixed"), else None."""
        return self.precision.scaler

    def place(self, net: Network) -> None:
        """Move the network (params, buffers, optimizer state) once, converted to the precision's weight dtype."""
        self.precision.convert(net)

    def prepare(self, plan: CostPlan, data: Any, classifiers: list[str]) -> PreparedStream | FileStream:
        """A stream on the device when it fits there, else in (pinned) host memory, moved batch by batch;
        one whose rows are not all in memory (``data.resident``: files, Datasets) is read from its sources batch by batch."""
        if not data.resident:
            return FileStream(plan, data, classifiers)
        stream = PreparedStream.prepare(plan, data, classifiers, to_device=False)
        if keep_on_device(stream.nbytes(), self.device):
            return stream.to(self.device)
        return stream.pinned() if self.device.type == "cuda" else stream

    def batch(self, batch: PreparedStream) -> PreparedStream:
        """``batch`` on the device (a no-op for streams kept there)."""
        return batch if batch.device == self.device else batch.to(self.device)

    def on_device(self, stream: PreparedStream | FileStream,
                  rows: Callable[[int, int], PreparedStream]) -> Callable[[int, int], PreparedStream]:
        """``rows(low, high)`` of ``stream``, moved to the device when the stream is not kept there (decided once)."""
        return rows if stream.device == self.device else lambda low, high: rows(low, high).to(self.device)

    def evaluate(self, plan: CostPlan, batch: PreparedStream) -> CostResult:
        """The plan's forward pass and costs under the precision's autocast (compiled when asked).

        Called every step: what can be decided once (the evaluator, the autocast context) is.
        """
        evaluate = self._evaluators.get(plan) or self._evaluator(plan)
        if self._mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        if self._autocast is None:
            return evaluate(batch.feeds, batch.targets, batch.weights)
        with self._autocast:
            return evaluate(batch.feeds, batch.targets, batch.weights)

    def _evaluator(self, plan: CostPlan) -> Callable[..., CostResult]:
        evaluator = self._evaluators[plan] = plan.evaluate if self.compile is None else _with_eager_fallback(plan, self.compile)
        return evaluator

    def backward(self, plan: TrainingPlan, result: CostResult, scale: float = 1.0) -> None:  # replaced in __init__
        """Add ``scale`` times the step's gradient (the precision mode's :meth:`~Precision.backward`)."""
        self.precision.backward(plan, result, scale)

    def apply(self, plan: TrainingPlan) -> None:  # replaced in __init__
        """Step the plan's optimizers (the precision mode's :meth:`~Precision.apply`)."""
        self.precision.apply(plan)

    def state_dict(self) -> dict:
        """The precision mode's checkpoint state (``{"scaler": ...}`` for "16-mixed", else empty)."""
        return self.precision.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.precision.load_state_dict(state)


def _with_eager_fallback(plan: CostPlan, mode: str) -> Callable[..., CostResult]:
    """``torch.compile(plan.evaluate, mode=mode)``, falling back to the eager plan (with a warning) if compiling fails."""
    compiled = torch.compile(plan.evaluate, mode=mode)
    state = {"function": compiled}

    def evaluate(*args: Any) -> CostResult:
        if state["function"] is compiled:
            try:
                return compiled(*args)
            except Exception as error:  # the backend's own errors vary (BackendCompilerFailed, Unsupported, ...)
                warnings.warn(f"torch.compile could not compile the step for outputs {[o.name for o in plan.outputs]} "
                              f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                              f"running it eagerly.", CompileWarning, stacklevel=3)
                state["function"] = plan.evaluate
        return state["function"](*args)

    return evaluate
