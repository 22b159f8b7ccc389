"""Precision: the float type of the weights and of the forward pass, with Lightning's names.

* ``"32"`` (default): float32 everywhere.
* ``"64"``: the network's params, buffers and float Inputs become float64.
* ``"bf16-mixed"``: autocast to bfloat16 around the forward pass and the costs only;
  weights, gradients and optimizer state stay float32.
* ``"16-mixed"``: the same with float16, plus a gradient scaler so small
  gradients do not underflow.

Autocast is entered and left at every step (never around an optimizer step),
so its weight cache never outlives the weights it copied.

Example:
    >>> policy = Precision.named("bf16-mixed")
    >>> policy.autocast_dtype, policy.param_dtype
    (torch.bfloat16, torch.float32)
    >>> Precision.named("8")
    Traceback (most recent call last):
    ...
    ValueError: precision must be one of '32', '64', 'bf16-mixed', '16-mixed', but received '8'.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

PRECISIONS = ("32", "64", "bf16-mixed", "16-mixed")


@dataclass(frozen=True)
class Precision:
    """A named precision policy (see the module docstring)."""

    name: str
    param_dtype: torch.dtype
    autocast_dtype: torch.dtype | None

    @classmethod
    def named(cls, name: Any) -> Precision:
        if isinstance(name, int) and not isinstance(name, bool):
            name = str(name)  # precision=32, as Lightning accepts
        if name not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, but received {name!r}.")
        param = torch.float64 if name == "64" else torch.float32
        autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(name)
        return cls(name, param, autocast)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The context for one forward pass (a no-op for "32" and "64")."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """A gradient scaler for "16-mixed" (float16 gradients underflow without one); None otherwise."""
        return torch.amp.GradScaler(device.type) if self.name == "16-mixed" else None
