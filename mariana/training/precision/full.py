"""The modes without autocast: "32" (the default) and "64".

Training starts by converting the network to the mode's dtype, whichever it
had before (a float64 network trained with "32" learns in float32 again).

Example:
    >>> import mariana.layers as ML
    >>> net = ML.Input(2, name="x") > ML.Regression(1, name="out")
    >>> Float64().convert(net)
    >>> net["out"].W.dtype, net["x"].dtype
    (torch.float64, torch.float64)
    >>> Float32().convert(net)
    >>> net["out"].W.dtype
    torch.float32
"""

from __future__ import annotations

import torch

from mariana.training.precision.policy import Precision


class Float32(Precision):
    """``"32"`` (Lightning's ``"32-true"``): float32 everywhere; the default."""

    names = ("32", "32-true")
    param_dtype = torch.float32


class Float64(Precision):
    """``"64"`` (Lightning's ``"64-true"``): params, buffers, float Inputs and optimizer state in float64."""

    names = ("64", "64-true")
    param_dtype = torch.float64
