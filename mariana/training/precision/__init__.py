"""Precision modes: one :class:`Precision` subclass each, found by name (``Trainer(..., precision=name)``).

``precision=`` accepts exactly these names (an int means its str: ``16`` is ``"16"``):

* ``"32"`` (default; alias ``"32-true"``): float32 everywhere.
* ``"64"`` (alias ``"64-true"``): params, buffers, float Inputs and optimizer state in float64.
* ``"bf16-mixed"`` (alias ``"bf16"``): float32 weights; the forward pass and the costs autocast to bfloat16.
* ``"16-mixed"`` (alias ``"16"``): the same with float16, plus a gradient scaler.
* ``"bf16-true"``: weights, gradients and optimizer state in bfloat16, no autocast.

Each mode converts the network to its weight dtype when training starts. A
new mode is one subclass of :class:`Precision` (see
:mod:`mariana.training.precision.policy`); importing its module registers it.
"""

# Importing a mode's module registers it; error messages list the modes in this order.
from mariana.training.precision import full, mixed  # isort: split

from mariana.training.precision import bf16_true
from mariana.training.precision.policy import Precision, modes

__all__ = ["Precision", "bf16_true", "full", "mixed", "modes"]
