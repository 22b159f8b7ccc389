"""``"bf16-true"``: weights, gradients and optimizer state in bfloat16, as Lightning's mode of that name.

Half the memory of float32 for the weights and the optimizer state, and no
autocast: every layer computes in bfloat16. bfloat16 keeps float32's range
but only 8 bits of mantissa, so small updates to large weights round away;
prefer "bf16-mixed" unless memory is what limits the model. Run calls on the
trained network still take float32 data and return float32 numpy (numpy has
no bfloat16).

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(2, name="x") > ML.Regression(1, name="out")
    >>> BFloat16True().convert(net)
    >>> net["out"].W.dtype, net.propagate("out", x=[[1.0, 2.0]]).dtype
    (torch.bfloat16, dtype('float32'))
"""

from __future__ import annotations

import torch

from mariana.training.precision.policy import Precision


class BFloat16True(Precision):
    """``"bf16-true"``: the network, its gradients and its optimizer state in bfloat16 (no autocast)."""

    names = ("bf16-true",)
    param_dtype = torch.bfloat16
