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

import warnings
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import torch

from mariana.archive import DTYPE_NAMES

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


def check_optimizer_state(network: Network, state: dict, where: str) -> list[str]:
    """Check an optimizer state dict (as :meth:`Network.optimizer_state_dict` makes it, e.g. from a checkpoint)
    against the per-param layout of the optimizers that would use it.

    Raises ``ValueError`` naming ``where`` and the param/key for a value of the
    wrong kind (a string where a tensor belongs, a wrong dtype or shape) or an
    unknown param; returns descriptions of params whose keys fit none of those
    optimizers (unknown or missing keys), empty when everything fits.

    Example:
        >>> import mariana.layers as ML, mariana.scenari as MS
        >>> net = ML.Input(2, name="inp") > ML.Regression(1, learning_scenari=[MS.GradientDescent(0.1, momentum=0.9)], name="out")
        >>> check_optimizer_state(net, {"params": {"out.W": {"momentum_buffer": "abc"}}}, "ckpt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ckpt: optimizer state out.W/momentum_buffer must be a F32 tensor shaped like out.W ...
    """
    params = dict(network.module.named_parameters())
    entries = state.get("params", {}) if isinstance(state, dict) else None
    if not isinstance(entries, dict):
        raise ValueError(f"{where}: optimizer state needs a 'params' object, but holds {type(entries).__name__}.")
    found: dict[str, dict[str, tuple]] = {}
    for param_name, values in entries.items():
        if param_name not in params or not isinstance(values, dict):
            raise ValueError(f"{where}: optimizer state names unknown parameter {param_name!r} (params: {sorted(params)}).")
        found[param_name] = {key: ("tensor", value.dtype, tuple(value.shape)) if isinstance(value, torch.Tensor) else ("value", value)
                             for key, value in values.items()}
    return optimizer_misfits(network, params, found, where)


def optimizer_misfits(network: Network, params: dict[str, torch.Tensor], found: dict[str, dict[str, tuple]], where: str) -> list[str]:
    """Descriptions of the params whose state keys fit none of the optimizers that could step them (``found``: key -> kind)."""
    scenari, layouts = _scenari_by_layer(network), {}
    misfits = []
    for param_name, state in found.items():
        param = params[param_name]
        candidates = [(repr(scenario), _state_layout(scenario, param.dtype, layouts))
                      for scenario in scenari.get(param_name.rpartition(".")[0], [])]
        misfit = _check_state_layout(param_name, tuple(param.shape), state, candidates, where)
        if misfit:
            misfits.append(misfit)
    return misfits


_Layout = dict[str, tuple]  # state key -> ("tensor", dtype, "param" or a fixed shape) or ("value", python type)
_PROBE_SHAPE = (2, 3)


def _scenari_by_layer(network: Network) -> dict[str, list[Any]]:
    """For each layer (by ``state_dict`` prefix), the optimizers that could step its params, as the execution plans pick
    them: the layer's own, else its wrapper's, else one inherited from an output."""
    inherited = list({id(o.optimizer): o.optimizer for o in network.outputs.values() if o.optimizer is not None}.values())
    return {key: [own] if (own := member.optimizer or node.optimizer) is not None else inherited
            for node in network.layers.values() for key, member in node.named_layers()}


def _state_layout(scenario: Any, dtype: torch.dtype, cache: dict) -> _Layout | None:
    """What ``scenario``'s optimizer keeps per param, found by one step on a small probe param (None if it cannot step)."""
    cache_key = (type(scenario), scenario.config_key(), dtype)
    if cache_key not in cache:
        probe = torch.zeros(_PROBE_SHAPE, dtype=dtype, device="cpu", requires_grad=True)
        probe.grad = torch.ones_like(probe)
        state: defaultdict = defaultdict(dict)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scenario.make_optimizer([probe], state).step()
        except Exception:  # an optimizer that cannot step on CPU in this dtype: only the generic checks apply
            cache[cache_key] = None
        else:
            cache[cache_key] = {
                key: ("tensor", value.dtype, "param" if tuple(value.shape) == _PROBE_SHAPE else tuple(value.shape))
                if isinstance(value, torch.Tensor) else ("value", type(value))
                for key, value in state[probe].items()
            }
    return cache[cache_key]


def _check_state_layout(param_name: str, param_shape: tuple[int, ...], state: dict[str, tuple],
                        candidates: list[tuple[str, _Layout | None]], where: str) -> str:
    """ValueError if a value is of the wrong kind for its key; else "" when ``state`` has exactly the keys of one
    candidate's layout, or a description of the misfit."""
    layouts = [(name, layout) for name, layout in candidates if layout is not None]
    if len(layouts) < len(candidates):
        return ""  # an optimizer whose layout is unknown: the generic checks are all we can do
    for key, received in state.items():
        specs = [(name, layout[key]) for name, layout in layouts if key in layout]
        if specs and not any(_fits(received, spec, param_shape) for _, spec in specs):
            name, spec = specs[0]
            raise ValueError(f"{where}: optimizer state {param_name}/{key} must be {_spec_text(spec, param_name)} "
                             f"(what {name} keeps), but the file holds {_received_text(received)}. Load it with "
                             f"load(..., optimizer=False) to get the weights without optimizer state.")
    keys = set(state)
    if any(keys == set(layout) for _, layout in layouts):
        return ""
    if not layouts:
        return f"{param_name} has state {sorted(keys)} but no optimizer"
    return f"{param_name} has state {sorted(keys)}, but " + " or ".join(f"{name} keeps {sorted(layout)}" for name, layout in layouts)


def _fits(received: tuple, spec: tuple, param_shape: tuple[int, ...]) -> bool:
    if spec[0] == "tensor":
        return received[0] == "tensor" and received[1] == spec[1] and received[2] == (param_shape if spec[2] == "param" else spec[2])
    return received[0] == "value" and isinstance(received[1], spec[1]) and not (isinstance(received[1], bool) and spec[1] is not bool)


def _spec_text(spec: tuple, param_name: str) -> str:
    if spec[0] == "tensor":
        where = f"shaped like {param_name}" if spec[2] == "param" else f"of shape {list(spec[2])}"
        return f"a {DTYPE_NAMES.get(spec[1], spec[1])} tensor {where}"
    return f"a {spec[1].__name__}"


def _received_text(received: tuple) -> str:
    if received[0] == "tensor":
        return f"a {DTYPE_NAMES.get(received[1], received[1])} tensor of shape {list(received[2])}"
    return f"{type(received[1]).__name__} {received[1]!r}"
