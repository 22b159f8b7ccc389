"""Graph algorithms behind ``>``: checks, topological order, shape inference and building.

Nothing here changes a Network: these functions read layers and their
links, decide whether a connection is valid, and build the params of the
layers whose shapes it fixes. :meth:`mariana.network.Network.connect` calls
them, then merges and wires.

Example:
    >>> import mariana.layers as ML
    >>> from mariana.graph import topological_order
    >>> net = ML.Input(2, name="a") > ML.Hidden(3, name="h")
    >>> list(topological_order({"h": net["h"], "a": net["a"]}))
    ['a', 'h']
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from mariana.layers.base import Layer, Shape
from mariana.registry import deserialize

if TYPE_CHECKING:
    from mariana.network import Network

#: The float dtypes a network computes in: its float Inputs' (float32 by default) and its params'.
FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def topological_order(layers: Mapping[str, Layer]) -> dict[str, Layer]:
    """Kahn's algorithm; ties keep insertion order so the order is stable."""
    position = {name: i for i, name in enumerate(layers)}
    dependencies = {name: [d for d in dependency_names(layer) if d in layers] for name, layer in layers.items()}
    pending = {name: len(deps) for name, deps in dependencies.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for name, deps in dependencies.items():
        for dependency in deps:
            dependents[dependency].append(name)
    ready = sorted((n for n, count in pending.items() if count == 0), key=position.get)
    order: dict[str, Layer] = {}
    while ready:
        name = ready.pop(0)
        order[name] = layers[name]
        for dependent in dependents[name]:
            pending[dependent] -= 1
            if pending[dependent] == 0:
                ready.append(dependent)
                ready.sort(key=position.get)
    return order


def dependency_names(layer: Layer) -> list[str]:
    """The layers ``layer`` reads: its incoming edges, then its references (Autoencode's target)."""
    return [p.name for p in layer.incoming] + list(layer.references())


def upstream(targets: Sequence[Layer], network: Network) -> dict[str, Layer]:
    """``targets`` and every layer they depend on (edges and references), by name."""
    needed: dict[str, Layer] = {}
    stack = list(targets)
    while stack:
        layer = stack.pop()
        if layer.name in needed:
            continue
        needed[layer.name] = layer
        stack.extend(layer.incoming)
        stack.extend(network[name] for name in layer.references())
    return needed


def check_connection(source: Layer, target: Any) -> None:
    """Everything ``source > target`` must satisfy, checked before anything changes."""
    if not isinstance(target, Layer):
        raise TypeError(f"'>' connects two layers, but received {source.describe()} > {target!r}.")
    check_not_wrapped(source, target)
    if target.connects_at_construction:
        raise TypeError(
            f"{target.describe()} connects the layers it references when it is constructed; "
            f"pass {source.name!r} to it instead of using '>'."
        )
    _check_edge(source, target)


def check_merge(sources: Sequence[Layer], target: Layer) -> list[Network]:
    """Checks for a merge layer connecting ``sources`` at construction; returns their distinct networks."""
    check_not_wrapped(*sources)
    seen: set[int] = set()
    for source in sources:
        if id(source) in seen:
            raise ValueError(f"{target.describe()} received {source.describe()} twice.")
        seen.add(id(source))
    networks: list[Network] = []
    for source in sources:
        if not any(source.network is n for n in networks):
            networks.append(source.network)
    check_names_disjoint(networks + [target.network], target)
    float_dtypes = {source.dtype for source in sources if source.dtype.is_floating_point}
    if len(float_dtypes) > 1:
        raise ValueError(f"{target.describe()} merges layers of different float dtypes "
                         f"{ {source.name: str(source.dtype) for source in sources} }; convert one network with net.to(dtype=...).")
    for source in sources:
        check_float_dtype(source, target)
    return networks


def check_not_wrapped(*layers: Layer) -> None:
    for layer in layers:
        if layer.network is None:
            raise TypeError(
                f"{layer.describe()} is wrapped inside another layer (e.g. Bidirectional, TimeDistributed), "
                f"so it is no longer a node of any graph; connect the wrapper instead."
            )


def check_names_disjoint(networks: Sequence[Network], target: Layer) -> None:
    owners: dict[str, Network] = {}
    for network in networks:
        for name in network.layers:
            other = owners.get(name)
            if other is not None and other is not network:
                raise ValueError(
                    f"Duplicate layer name {name!r}: connecting to {target.describe()} would merge two networks "
                    f"that both have a layer called {name!r}. Give one of them another name=."
                )
            owners[name] = network


def check_float_dtype(source: Layer, target: Layer) -> None:
    """Float data is one of :data:`FLOAT_DTYPES`, and a layer already built in one is not fed another."""
    dtype = source.dtype
    if not dtype.is_floating_point:
        return
    if dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{source.describe()} produces {dtype}, which {target.describe()} cannot compute in: layers compute in "
            f"{', '.join(map(str, FLOAT_DTYPES))}. Keep the Input float32 and choose the Trainer's precision= instead."
        )
    built = target.dtype if target.shape is not None and target.params else None
    if built is not None and built.is_floating_point and built != dtype:
        raise ValueError(f"{source.describe()} produces {dtype}, but {target.describe()} computes in {built}; "
                         f"convert one network with net.to(dtype=...) first.")


def _check_edge(source: Layer, target: Layer) -> None:
    check_float_dtype(source, target)
    if source is target:
        raise ValueError(f"Cannot connect {source.describe()} to itself: that would be a cycle.")
    if target.is_input:
        raise ValueError(f"{target.describe()} is an Input and takes no incoming connection (from {source.describe()}).")
    if source in target.incoming:
        raise ValueError(f"{source.describe()} is already connected to {target.describe()}.")
    if target.max_inputs is not None and len(target.incoming) >= target.max_inputs:
        raise ValueError(
            f"{target.describe()} takes {target.max_inputs} input(s) and already receives "
            f"{[p.name for p in target.incoming]}; cannot also connect {source.describe()}. "
            f"Join branches with ML.Concatenate or ML.M."
        )
    if source.network is target.network and reaches(target, source):
        raise ValueError(
            f"Connecting {source.describe()} > {target.describe()} would create a cycle: "
            f"{target.name!r} already feeds {source.name!r}."
        )
    if source.network is not target.network:
        check_names_disjoint([source.network, target.network], target)
    target.check_incoming(source)


def reaches(start: Layer, goal: Layer) -> bool:
    """Whether ``goal`` lies downstream of ``start`` (or is it)."""
    stack, seen = [start], set()
    while stack:
        layer = stack.pop()
        if layer is goal:
            return True
        if id(layer) not in seen:
            seen.add(id(layer))
            stack.extend(layer.outgoing)
    return False


def feeds(layer: Layer, output: Layer, network: Network) -> bool:
    """Whether ``layer`` is ``output`` or one of the layers it depends on."""
    return layer.name in upstream([output], network) and network[layer.name] is layer


def build_merge(sources: Sequence[Layer], target: Layer) -> None:
    """Infer a merge layer's shape and build it, when every source's shape is known."""
    shapes = tuple(source.shape for source in sources)
    if all(shape is not None for shape in shapes):
        target.create_params(shapes, target.infer_shape(shapes, sources))


def build_downstream(source: Layer, target: Layer) -> list[Layer]:
    """Infer shapes for ``target`` and what follows it, then build their params.

    Everything is computed first; params are created only when every shape
    fits, and removed again if an initialization fails, so a failed ``>``
    changes nothing.
    """
    lookup = {**source.network.layers, **target.network.layers}
    new_shapes: dict[int, tuple[tuple[Shape, ...], Shape]] = {}
    order: list[Layer] = []
    for layer in _descendants_in_order(target):
        if layer.shape is not None:
            continue
        incoming = layer.incoming + ([source] if layer is target else [])
        if len(incoming) < layer.expected_inputs:
            continue
        shapes = tuple(new_shapes[id(p)][1] if id(p) in new_shapes else p.shape for p in incoming)
        if any(shape is None for shape in shapes):
            continue
        layer.resolve_references(lookup)
        new_shapes[id(layer)] = (shapes, layer.infer_shape(shapes, incoming))
        order.append(layer)
    built: list[Layer] = []
    try:
        for layer in order:
            layer.create_params(*new_shapes[id(layer)])
            built.append(layer)
    except BaseException as error:
        for layer in built:
            layer.forget_params()
        if isinstance(error, ValueError):  # name both ends of the '>' that failed
            raise ValueError(f"Cannot connect {source.describe()} > {target.describe()}: {error}") from None
        raise
    return built


def _descendants_in_order(start: Layer) -> list[Layer]:
    seen: dict[int, Layer] = {}
    stack = [start]
    while stack:
        layer = stack.pop()
        if id(layer) not in seen:
            seen[id(layer)] = layer
            stack.extend(layer.outgoing)
    members = {layer.name: layer for layer in seen.values()}
    return list(topological_order(members).values())


def network_from_config(config: dict) -> Network:
    """Build the layers a network config names and connect them in order (``Network.from_config``)."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list) or not isinstance(config.get("edges"), list):
        raise ValueError("A network config is a dict with a 'layers' list and an 'edges' list.")
    built: dict[str, Layer] = {}

    def resolve(name: str) -> Layer:
        if name not in built:
            raise ValueError(f"Network config: layer {name!r} is referenced before it is defined.")
        return built[name]

    pending_edges = [tuple(edge) for edge in config["edges"]]
    for entry in config["layers"]:
        layer = deserialize(entry, Layer, resolve=resolve)
        if layer.name in built:
            raise ValueError(f"Network config: duplicate layer name {layer.name!r}.")
        built[layer.name] = layer
        for source, target in [edge for edge in pending_edges if edge[1] == layer.name]:
            resolve(source).network.connect(resolve(source), layer)
            pending_edges.remove((source, target))
    if pending_edges:
        raise ValueError(f"Network config: edges {pending_edges} name unknown layers.")
    if not built:
        raise ValueError("Network config: no layers.")
    return next(iter(built.values())).network
