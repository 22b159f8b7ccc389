"""Plain facts about layers, shared by the text summary and the HTML report.

Example:
    >>> import mariana.layers as ML, mariana.activations as MA, mariana.scenari as MS
    >>> net = ML.Input(4, name="inp") > ML.Hidden(
    ...     3, activation=MA.LeakyReLU(0.2), learning_scenari=[MS.GradientDescent(lr=0.1, momentum=0.9)], name="hid")
    >>> info = describe_layer(net["hid"])
    >>> info["params"], info["shape"], info["abstractions"]["activation"]
    (15, [3], ['LeakyReLU(negative_slope=0.2)'])
    >>> info["abstractions"]["learning_scenari"]
    ['GradientDescent(lr=0.1, momentum=0.9)']
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from mariana import activations as MA
from mariana.registry import Configurable

if TYPE_CHECKING:
    from mariana.network import Network

#: Abstraction attributes of a layer, in the order they are shown.
ABSTRACTIONS = ("activation", "decorators", "regularizations", "initializations", "learning_scenari", "cost")
#: Config keys that are abstractions or graph links, not hyperparameters.
_NOT_HYPERPARAMETERS = set(ABSTRACTIONS) | {"name", "layers", "expression"}


#: Settings shown even at their default value: a scenario's learning rate is never implicit in a report.
ALWAYS_SHOWN = ("lr",)


def short_repr(item: Any) -> str:
    """``Class(arg=value, ...)`` showing the arguments that differ from the constructor's defaults, and ``lr`` always.

    Example:
        >>> import mariana.scenari as MS
        >>> short_repr(MS.Adam()), short_repr(MS.GradientDescent(lr=0.1, momentum=0.9))
        ('Adam(lr=0.001)', 'GradientDescent(lr=0.1, momentum=0.9)')
    """
    if isinstance(item, Configurable):
        return _render(type(item).__name__, item.get_config(), type(item))
    return repr(item)


def _render(name: str, config: dict, klass: type | None) -> str:
    defaults = {}
    if klass is not None:
        with_defaults = inspect.signature(klass.__init__).parameters.values()
        defaults = {p.name: p.default for p in with_defaults if p.default is not inspect.Parameter.empty}
    parts = []
    for key, value in config.items():
        if key in defaults and defaults[key] == value and key not in ALWAYS_SHOWN:
            continue
        if isinstance(value, dict) and set(value) == {"class", "config"}:  # a nested abstraction (a schedule)
            value = _render(value["class"], value["config"], _registered(value["class"]))
        elif key == "param_names" and isinstance(value, list):  # Fixed("W", "b")
            parts.extend(repr(v) for v in value)
            continue
        else:
            value = repr(value)
        parts.append(f"{key}={value}")
    return f"{name}({', '.join(parts)})"


def _registered(name: Any) -> type | None:
    from mariana import registry

    try:
        return registry.lookup(name)
    except ValueError:
        return None


def abstractions(layer: Any) -> dict[str, list[str]]:
    """Role -> short descriptions of the abstractions a layer carries (a Pass activation is left out)."""
    found: dict[str, list[str]] = {}
    for role in ABSTRACTIONS:
        value = getattr(layer, role, None)
        items = value if isinstance(value, list) else ([] if value is None else [value])
        items = [item for item in items if not isinstance(item, MA.Pass)]
        if items:
            found[role] = [short_repr(item) for item in items]
    return found


def param_count(layer: Any) -> int:
    return sum(p.numel() for p in layer.parameters())  # with those of the layers a wrapper holds


def trainable_count(layer: Any) -> int:
    return sum(p.numel() for _, member in layer.named_layers() for name, p in member._parameters.items()
               if not (member.is_frozen(name) or layer.is_frozen(name)))


def role(layer: Any) -> str:
    """'input', 'output', 'merge' or 'hidden'."""
    if layer.is_input:
        return "input"
    if layer.is_output:
        return "output"
    if layer.connects_at_construction:
        return "merge"
    return "hidden"


def describe_layer(layer: Any) -> dict:
    """A JSON-ready description: name, type, role, shapes, params, hyperparameters, abstractions."""
    config = layer.get_config()
    hyperparameters = {key: value for key, value in config.items() if key not in _NOT_HYPERPARAMETERS}
    if "expression" in config:
        hyperparameters["expression"] = repr(getattr(layer, "expression", config["expression"]))
    return {
        "name": layer.name,
        "type": type(layer).__name__,
        "role": role(layer),
        "shape": None if layer.shape is None else list(layer.shape),
        "inputs": [source.name for source in layer.incoming],
        "references": list(layer.references()),
        "params": param_count(layer),
        "trainable": trainable_count(layer),
        "param_shapes": {name: list(p.shape) for name, p in layer.named_parameters()},
        "buffers": {name: list(b.shape) for name, b in layer.named_buffers()},
        "hyperparameters": hyperparameters,
        "abstractions": abstractions(layer),
    }


def shape_text(shape: list[int] | None) -> str:
    """``(batch, 28, 28)`` style; ``?`` while unknown."""
    return "?" if shape is None else f"(batch, {', '.join(map(str, shape))})"


def totals(network: Network) -> dict[str, int]:
    layers = list(network.layers.values())
    return {
        "layers": len(layers),
        "params": sum(param_count(layer) for layer in layers),
        "trainable": sum(trainable_count(layer) for layer in layers),
        "bytes": sum(t.numel() * t.element_size() for t in network.module.state_dict().values()),
    }


def human_count(count: int) -> str:
    """``1234567`` -> ``'1.2M'``."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= limit:
            return f"{count / limit:.1f}{suffix}"
    return str(count)




def human_bytes(size: int) -> str:
    """``3400`` -> ``'3.3 KiB'``."""
    for power, unit in ((3, "GiB"), (2, "MiB"), (1, "KiB")):
        if size >= 1024**power:
            return f"{size / 1024**power:.1f} {unit}"
    return f"{size} B"
