"""Mixed precision: float32 weights, gradients and optimizer state; the forward pass and the costs autocast to half.

Autocast is entered and left at every step (never around an optimizer step),
so its cache of half-precision weight copies never outlives the weights it
copied.

Example:
    >>> mode = Float16Mixed("cpu")
    >>> mode.param_dtype, mode.autocast_dtype, mode.scaler is not None
    (torch.float32, torch.float16, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mariana.training.precision.policy import Precision

if TYPE_CHECKING:
    from mariana.execution import CostResult, TrainingPlan


class BFloat16Mixed(Precision):
    """``"bf16-mixed"`` (alias ``"bf16"``): autocast to bfloat16, whose float32 range needs no gradient scaler."""

    names = ("bf16-mixed", "bf16")
    autocast_dtype = torch.bfloat16


class Float16Mixed(Precision):
    """``"16-mixed"`` (alias ``"16"``): autocast to float16, with a gradient scaler so small gradients do not underflow.

    The scaler multiplies the objective before the backward pass, divides the
    gradients again before clipping and the optimizer step, skips the steps whose
    gradients overflowed, and is kept in checkpoints.
    """

    names = ("16-mixed", "16")
    autocast_dtype = torch.float16

    def __init__(self, device: torch.device | str = "cpu") -> None:
        super().__init__(device)
        self.scaler = torch.amp.GradScaler(self.device.type)

    def backward(self, plan: TrainingPlan, result: CostResult, scale: float = 1.0) -> None:
        plan.backward(result, scale, self.scaler.scale)

    def apply(self, plan: TrainingPlan) -> None:
        plan.apply(unscale=self.scaler.unscale_, optimizer_step=self.scaler.step)  # clipping and the step see the true gradients
        self.scaler.update()

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
