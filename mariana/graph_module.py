"""GraphModule: a whole Mariana graph as one ``torch.nn.Module``.

Example:
    >>> import torch, mariana.layers as ML
    >>> net = ML.Input(3, name="inp") > ML.Regression(2, name="out")
    >>> sorted(net.module.state_dict()), net.module(inp=torch.ones(1, 3))["out"].shape
    (['out.W', 'out.b'], torch.Size([1, 2]))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from mariana.layers.base import Layer
    from mariana.network import Network


class GraphModule(nn.Module):
    """The whole graph as one ``nn.Module``: ``forward(**inputs) -> {output_name: tensor}``.

    Layers are its direct children, keyed by their names, so ``state_dict()``
    holds each param once as ``<layer>.<param>``. Use it with any PyTorch tool
    (``.to``, DDP, ONNX export); Mariana's run calls use it too.
    """

    def __init__(self, network: Network) -> None:
        super().__init__()
        object.__setattr__(self, "_network", network)

    def add_layer(self, layer: Layer) -> None:
        # Bypass add_module's attribute check: a layer may be called 'train' or 'eval';
        # methods still resolve first because nn.Module only falls back to _modules.
        self._modules[layer.name] = layer

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        plan = self._network.all_outputs_plan()
        missing = [name for name in plan.input_names if name not in inputs]
        if missing:
            raise ValueError(f"Network forward: missing input(s) {missing}; expected {list(plan.input_names)}.")
        values = plan.run(inputs, self.training).values
        return {name: values[name] for name in plan.target_names}
