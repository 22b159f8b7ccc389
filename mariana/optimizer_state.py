"""Optimizer state by name: momentum, Adam moments and step counts keyed ``<layer>.<param>``, never by position.

A Network keeps torch's per-param optimizer state in ``network.optimizer_state``
(shared by every plan's optimizers); these functions name it for saving and
restore it, checked first so that nothing changes on error.

Example:
    >>> import numpy as np, mariana.layers as ML, mariana.scenari as MS
    >>> net = ML.Input(2, name="x") > ML.Regression(1, learning_scenari=[MS.Adam(0.1)], name="out")
    >>> _ = net.train("out", x=np.ones((2, 2)), out=np.ones((2, 1)))
    >>> sorted(state_dict(net)["params"]), state_dict(net)["scenari"]["out"]
    (['out.W', 'out.b'], {'steps': 1})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mariana.layers.base import Layer
    from mariana.network import Network


def named_members(network: Network) -> dict[str, Layer]:
    """Every layer with params, wrapped ones included, by ``state_dict`` prefix (``hid``, ``bi.lstm``)."""
    return {key: member for layer in network.layers.values() for key, member in layer.named_layers()}


def state_dict(network: Network) -> dict:
    """``{"params": {"<layer>.<param>": torch state}, "scenari": {"<layer>": scenario state}}``."""
    members = named_members(network)
    names = {id(param): f"{key}.{pname}" for key, layer in members.items() for pname, param in layer.params.items()}
    params = {names[id(param)]: dict(state) for param, state in network.optimizer_state.items() if state and id(param) in names}
    scenari = {key: layer.optimizer.state_dict() for key, layer in members.items() if layer.optimizer is not None}
    return {"params": params, "scenari": scenari}


def load_state_dict(network: Network, state: dict, replace: bool = False) -> None:
    """Restore :func:`state_dict`'s output into ``network`` (``replace``: params it does not name lose theirs)."""
    members = named_members(network)
    by_name = {f"{key}.{pname}": param for key, layer in members.items() for pname, param in layer.params.items()}
    unknown = [key for key in state.get("params", {}) if key not in by_name]
    unknown += [key for key in state.get("scenari", {}) if key not in members or members[key].optimizer is None]
    if unknown:
        raise ValueError(f"Optimizer state names unknown params or scenari {unknown}; this network has {sorted(by_name)}.")
    if replace:
        for param in by_name.values():
            network.optimizer_state.pop(param, None)
    for key, values in state.get("params", {}).items():
        param = by_name[key]
        network.optimizer_state[param] = {
            k: (v.to(param.device) if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in values.items()
        }
    for key, values in state.get("scenari", {}).items():
        members[key].optimizer.load_state_dict(values)
