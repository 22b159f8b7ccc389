"""Network: the graph of layers, its merging, ordering and run calls.

Users never construct a Network: every layer is born in a network of its
own, and ``a > b`` merges ``b``'s network into ``a``'s and returns it. The
absorbed Network object keeps working: it shares the state of the one that
absorbed it, so every handle a user kept stays valid.

Example:
    >>> import numpy as np, mariana as mar, mariana.layers as ML, mariana.scenari as MS
    >>> mar.seed(0)
    >>> i = ML.Input(2, name="inp")
    >>> o = ML.SoftmaxClassifier(2, learning_scenari=[MS.GradientDescent(lr=0.1)], name="out")
    >>> net = i > ML.Hidden(4, name="hid") > o
    >>> list(net.layers)
    ['inp', 'hid', 'out']
    >>> losses = net.train("out", inp=np.zeros((3, 2)), out=np.array([0, 1, 0]))
    >>> net.propagate("out", inp=np.zeros((1, 2))).shape
    (1, 2)
"""

from __future__ import annotations

import contextlib
import itertools
import time
import types
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

# execution as a module, not its names: importing mariana.execution first imports the layers, which import
# this module before execution has defined its plans.
from mariana import devices, execution, graph, optimizer_state
from mariana.graph_module import GraphModule
from mariana.layers.base import Layer, install_network_factory
from mariana.registry import serialize


class Network:
    """A graph of layers. Obtain one with ``>``; see the module docstring."""

    def __init__(self) -> None:
        self._layers: dict[str, Layer] = {}
        self._aliases: list[Network] = [self]
        self._order_cache: dict[str, Layer] | None = None
        self._plans: dict[Any, Any] = {}
        #: torch optimizer state per param, shared by the optimizers of every plan (so it outlives plan rebuilds).
        self.optimizer_state: defaultdict = defaultdict(dict)
        self.log: list[dict] = []
        self.module = GraphModule(self)

    @classmethod
    def for_new_layer(cls, layer: Layer) -> Network:
        """The one-layer network every layer is born in (``Layer.__init__`` calls it)."""
        network = cls()
        network._layers[layer.name] = layer
        network.module.add_layer(layer)
        network.record("construct", layer=layer.name, type=type(layer).__name__)
        return network

    # -- mapping-like access --------------------------------------------------------
    def __getitem__(self, name: str) -> Layer:
        try:
            return self._layers[name]
        except (KeyError, TypeError):
            raise KeyError(f"No layer named {name!r} in this network; known layers: {list(self.layers)}.") from None

    def __contains__(self, item: Any) -> bool:
        return item in self._layers or any(item is layer for layer in self._layers.values())

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __bool__(self) -> bool:
        # Chained `i > h > o` is `(i > h) and (h > o)`: the network must be truthy.
        return True

    def __gt__(self, other: Any):
        raise TypeError(
            "'>' connects layers, not networks: a Network has no single layer to connect from. "
            "Write `h > o` with the layer itself (net['h'] > o)."
        )

    def __lt__(self, other: Any):
        return self.__gt__(other)

    def __repr__(self) -> str:
        return f"Network({', '.join(self.layers)})"

    @property
    def layers(self) -> Mapping[str, Layer]:
        """Name -> layer, in topological order (read-only)."""
        if self._order_cache is None:
            self._order_cache = graph.topological_order(self._layers)
        return types.MappingProxyType(self._order_cache)

    @property
    def inputs(self) -> Mapping[str, Layer]:
        """Name -> Input layer, in topological order."""
        return types.MappingProxyType({n: layer for n, layer in self.layers.items() if layer.is_input})

    @property
    def outputs(self) -> Mapping[str, Layer]:
        """Name -> output layer (layers with a cost), in topological order."""
        return types.MappingProxyType({n: layer for n, layer in self.layers.items() if layer.is_output})

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.module.parameters()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights, keyed ``<layer>.<param>`` (and buffers)."""
        return self.module.state_dict()

    @property
    def device(self) -> torch.device:
        for tensor in itertools.chain(self.module.parameters(), self.module.buffers()):
            return tensor.device
        return torch.device("cpu")

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Network:
        """Move params, buffers and optimizer state to ``device``, and/or make the network compute in ``dtype``
        (``torch.float32``, ``torch.float64``, ``torch.bfloat16`` or ``torch.float16``: float params, buffers,
        Inputs and optimizer state); returns the network. Run calls still take float32 data.
        """
        if dtype is not None and dtype not in graph.FLOAT_DTYPES:
            raise ValueError(f"Network.to: dtype must be one of {', '.join(map(str, graph.FLOAT_DTYPES))}, but received {dtype!r}.")
        device = devices.resolve_device(device) if isinstance(device, (str, torch.device)) else device  # clear errors
        self.module.to(device=device, dtype=dtype)
        for layer in self.inputs.values() if dtype is not None else ():
            layer.cast_floats_to(dtype)
        for state in self.optimizer_state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0:
                    state[key] = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
        self._plans.clear()
        return self

    def note(self, text: str) -> None:
        """Add a free-text note to the generation log."""
        if not isinstance(text, str):
            raise TypeError(f"note expects a str, but received {type(text).__name__}.")
        self.record("note", text=text)

    def record(self, event: str, **details: Any) -> None:
        """Append an event to the generation log (trainings, saves, exports call it; details must be JSON-ready)."""
        self.log.append({"time": time.time(), "event": event, **details})

    # -- configuration and state ------------------------------------------------------
    def get_config(self) -> dict:
        """The architecture as JSON: every layer's class and config, and the ``>`` edges.

        Edges made by merge layers at construction are implied by their configs.
        """
        layers = [serialize(layer) for layer in self.layers.values()]
        edges = [
            [source.name, layer.name]
            for layer in self.layers.values()
            if not layer.connects_at_construction
            for source in layer.incoming
        ]
        return {"layers": layers, "edges": edges}

    @classmethod
    def from_config(cls, config: dict) -> Network:
        """Rebuild a network (fresh params) from :meth:`get_config`'s output."""
        return graph.network_from_config(config)

    def optimizer_state_dict(self) -> dict:
        """Optimizer state keyed ``<layer>.<param>`` (never by position), plus each scenario's step count."""
        return optimizer_state.state_dict(self)

    def load_optimizer_state_dict(self, state: dict, replace: bool = False) -> None:
        """Restore :meth:`optimizer_state_dict`'s output (checked first: nothing changes on error).

        With ``replace=True`` the state becomes exactly ``state``: params it does
        not name lose theirs (e.g. momentum accumulated since it was taken).
        """
        optimizer_state.load_state_dict(self, state, replace)

    # -- features built in other modules ------------------------------------------------
    def save(self, path: Any, **kwargs: Any) -> None:
        """Save to a ``.mar`` file (architecture, weights, optimizer state, generation log)."""
        from mariana.persistence import save

        save(self, path, **kwargs)

    def summary(self) -> str:
        """A text table: layer, type, output shape, params, abstractions."""
        from mariana.report import summary

        return summary(self)

    def to_html(self, path: Any, **kwargs: Any) -> None:
        """Write a self-contained offline HTML page describing this network."""
        from mariana.report import to_html

        to_html(self, path, **kwargs)

    def _repr_html_(self) -> str:
        """Jupyter shows the layer graph and the layer table (:mod:`mariana.report.notebook`)."""
        from mariana.report.notebook import network_html

        return network_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None: printer.text(self.summary())  # IPython without HTML

    def to_onnx(self, path: Any, outputs: Sequence[str] | None = None, **kwargs: Any) -> None:
        """Export ``outputs`` (default: all) to ONNX with a dynamic batch axis."""
        from mariana.export import to_onnx

        to_onnx(self, path, outputs=outputs, **kwargs)

    def fit(self, x: Any, y: Any = None, **kwargs: Any) -> Any:
        """Keras's ``fit(x, y, valid=..., epochs=..., batch_size=...)``: a Trainer's run; returns the history (see ``mariana.training.fit``)."""
        from mariana.training import fit

        return fit(self, x, y, **kwargs)

    # -- graph changes --------------------------------------------------------------
    def release(self, layer: Layer, wrapper: str) -> None:
        """Hand a lone, unconnected ``layer`` over to the layer that wraps it; it stops being a graph node."""
        if self._layers.get(layer.name) is not layer or len(self._layers) != 1:
            raise ValueError(
                f"{wrapper} wraps {layer.describe()}, which must be a fresh layer of its own, but it is already "
                f"connected to {[name for name in self._layers if name != layer.name]}. Wrap a new, unconnected layer."
            )
        del self._layers[layer.name]
        self.module._modules.pop(layer.name, None)
        self.graph_changed()
        layer.network = None

    def _absorb(self, other: Network) -> None:
        """Take every layer and all state of ``other``; ``other`` becomes an alias of self."""
        for name, layer in other._layers.items():
            self._layers[name] = layer
            layer.network = self
            self.module.add_layer(layer)
        other.module._modules.clear()
        self.optimizer_state.update(other.optimizer_state)
        self.log = sorted(self.log + other.log, key=lambda entry: entry["time"])
        aliases = other._aliases
        self._aliases.extend(aliases)
        for alias in aliases:
            alias.__dict__ = self.__dict__

    def graph_changed(self) -> None:
        """The graph, or a layer's learning scenari, changed: forget the cached topological order and plans."""
        self._order_cache = None
        self._plans.clear()

    # -- plans (cached per request; rebuilt when the graph changes) -------------------
    def forward_plan(self, layers: str | Sequence[str]) -> execution.ForwardPlan:
        """The cached plan evaluating ``layers`` (what ``propagate`` and ONNX export run)."""
        targets = (layers,) if isinstance(layers, str) else tuple(layers)
        key = ("forward", targets)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = execution.ForwardPlan(self, targets)
        return plan

    def all_outputs_plan(self) -> execution.ForwardPlan:
        """The plan computing every output (net.module's forward); found by one lookup per call."""
        plan = self._plans.get("all outputs")
        if plan is None:
            plan = self._plans["all outputs"] = self.forward_plan(tuple(self.outputs))
        return plan

    def cost_plan(self, outputs: str | Sequence[str]) -> execution.CostPlan:
        """The cached plan computing the costs of ``outputs`` (what ``test`` and the Trainer's evaluations run)."""
        return self._cached_cost_plan(outputs, training=False)

    def training_plan(self, outputs: str | Sequence[str]) -> execution.TrainingPlan:
        """The cached plan taking one update step on ``outputs`` (what ``train`` and the Trainer's steps run)."""
        return self._cached_cost_plan(outputs, training=True)

    def _cached_cost_plan(self, outputs: Any, training: bool) -> Any:
        """One key per plan: (kind, output names). A request already in that form is found without checking it again."""
        kind = "train" if training else "test"
        requested = (outputs,) if isinstance(outputs, str) else tuple(outputs) if isinstance(outputs, (list, tuple)) else None
        plan = self._plans.get((kind, requested)) if requested is not None and all(isinstance(n, str) for n in requested) else None
        if plan is None:
            names = self.output_names(outputs)
            plan = self._plans.get((kind, names))
            if plan is None:
                plan = self._plans[(kind, names)] = execution.TrainingPlan(self, names) if training else execution.CostPlan(self, names)
        return plan

    def output_names(self, outputs: str | Sequence[str] | None) -> tuple[str, ...]:
        """``outputs`` (a name or a list; None: every output) as a tuple of output names, checked."""
        if outputs is None:
            outputs = list(self.outputs)
        names = (outputs,) if isinstance(outputs, str) else outputs
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
            raise TypeError(f"Expected an output name or a list of output names first, but received {outputs!r}.")
        if len(set(names)) != len(names):
            raise ValueError(f"Each output may be named once, but received {list(names)}.")
        for name in names:
            layer = self[name]
            if not layer.is_output:
                raise ValueError(
                    f"{layer.describe()} is not an output layer (it has no cost); outputs of this network: "
                    f"{list(self.outputs)}. Use propagate() to read any layer."
                )
        return tuple(names)

    # -- run calls ------------------------------------------------------------------
    def train(self, outputs: str | Sequence[str], /, **batch: Any) -> dict[str, torch.Tensor]:
        """One update step on ``outputs`` (a name or a list: a mixin on the summed costs).

        Returns ``{output: loss}``, detached 0-d tensors from this step's
        forward pass, before the update, without regularization terms.

        Example: ``net.train("out", inp=x, out=y)``.
        """
        plan = self.training_plan(outputs)
        feeds, targets = plan.prepare(batch)
        with _mode(self.module, training=True):
            result = plan.evaluate(feeds, targets)
            plan.step(result)
        return {name: loss.detach() for name, loss in result.losses.items()}

    def test(self, outputs: str | Sequence[str], /, batch_size: int | None = None, **batch: Any) -> dict[str, torch.Tensor]:
        """The costs of ``outputs`` without updating anything (no dropout); chunked by ``batch_size``."""
        plan = self.cost_plan(outputs)
        feeds, targets = plan.prepare(batch)
        totals: dict[str, Any] = {}
        counts: dict[str, Any] = {}
        with _mode(self.module, training=False), torch.no_grad():
            for chunk in execution.chunks(feeds, targets, batch_size):
                result = plan.evaluate(chunk.feeds, chunk.targets)
                for name, loss in result.losses.items():
                    count = result.counts.get(name, chunk.stop - chunk.start)  # class weights: a weighted mean over chunks
                    totals[name] = totals.get(name, 0) + loss * count
                    counts[name] = counts.get(name, 0) + count
        return {name: (total / counts[name]).detach() for name, total in totals.items()}

    def forward(self, layers: str | Sequence[str], /, training: bool = False, **batch: Any) -> dict[str, torch.Tensor]:
        """The outputs of ``layers`` as tensors that keep their graph (for custom losses and tests).

        ``training=True`` runs as a training step does (dropout and other
        decorators on, BatchNorm in training mode) without updating anything.
        """
        plan = self.forward_plan(layers)
        feeds, _ = plan.prepare(batch)
        with _mode(self.module, training=training):
            values = plan.run(feeds, training).values
        return {name: values[name] for name in plan.target_names}

    def propagate(self, layer: str, /, batch_size: int | None = None, **batch: Any) -> np.ndarray:
        """The output of any layer as a numpy array (inference mode: no decorators)."""
        plan = self.forward_plan(_single_name(layer, "propagate"))
        feeds, _ = plan.prepare(batch)
        return self._infer(plan, feeds, batch_size).numpy()

    def predict(self, output: str, /, batch_size: int | None = None, **batch: Any) -> np.ndarray:
        """Class ids (argmax over the last axis) predicted by a classifier output."""
        plan = self.forward_plan(self._classifier(output, "predict").name)
        feeds, _ = plan.prepare(batch)
        return self._infer(plan, feeds, batch_size).argmax(dim=-1).numpy()

    def accuracy(self, output: str, /, batch_size: int | None = None, **batch: Any) -> float:
        """Fraction of samples whose predicted class equals the target class id."""
        layer = self._classifier(output, "accuracy")
        plan = self.forward_plan(layer.name)
        feeds, targets = plan.prepare(batch, target_outputs=(layer,))
        predicted = self._infer(plan, feeds, batch_size)
        expected = targets[layer.name].cpu()
        if expected.is_floating_point():  # probability rows (CategoricalCrossEntropy targets)
            expected = expected.argmax(dim=-1)
        return int((predicted.argmax(dim=-1) == expected).sum()) / len(expected)

    def _infer(self, plan: execution.ForwardPlan, feeds: dict[str, torch.Tensor], batch_size: int | None) -> torch.Tensor:
        """The plan's one target in inference mode, on the host, computed ``batch_size`` rows at a time."""
        (name,) = plan.target_names
        # Under a user's autocast the output may be bfloat16, which numpy cannot hold: a bfloat16 network returns float32.
        dtype = self[name].dtype if self[name].dtype != torch.bfloat16 else torch.float32
        parts = []
        with _mode(self.module, training=False), torch.no_grad():
            for chunk in execution.chunks(feeds, {}, batch_size):
                parts.append(plan.run(chunk.feeds, training=False).values[name].detach().to("cpu", dtype))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _classifier(self, name: str, call: str) -> Layer:
        layer = self[_single_name(name, call)]
        if not getattr(layer, "is_classifier", False):
            raise TypeError(
                f"{call} needs a classifier output, but {layer.describe()} is not one. "
                f"Use net.propagate({layer.name!r}, ...) for its raw output."
            )
        return layer

    # -- connecting ---------------------------------------------------------------------
    def connect(self, source: Layer, target: Any) -> Network:
        """``source > target`` (source in this network): check everything, then build, merge and wire; atomic."""
        if source.network is not self:
            raise ValueError(f"{source.describe()} is not a layer of this network; write `{source.name} > layer`.")
        if isinstance(target, Network):
            raise TypeError(f"'>' connects two layers, but the right-hand side is a Network. Write `{source.name} > layer`.")
        graph.check_connection(source, target)
        built = graph.build_downstream(source, target)
        for layer in built if source.dtype != torch.float32 and source.dtype.is_floating_point else ():
            layer.to(source.dtype)  # a float64 (or half) Input makes what it feeds float64 (or half) too
        if target.network is not self:
            self._absorb(target.network)
        target.incoming.append(source)
        source.outgoing.append(target)
        self.graph_changed()
        self.record("connect", source=source.name, target=target.name, shapes={layer.name: list(layer.shape) for layer in built})
        return self

    def connect_all(self, sources: Sequence[Layer], target: Layer) -> Network:
        """Connect several sources into the merge layer ``target`` (of this network) at its construction; atomic."""
        networks = graph.check_merge(sources, target)
        graph.build_merge(sources, target)
        network = networks[0]
        for other in networks[1:] + [self]:
            if other is not network:
                network._absorb(other)
        for source in sources:
            target.incoming.append(source)
            source.outgoing.append(target)
        network.graph_changed()
        network.record("connect", sources=[s.name for s in sources], target=target.name)
        return network


@contextlib.contextmanager
def _mode(module: nn.Module, training: bool):
    previous = module.training
    if previous != training:
        module.train(training)
    try:
        yield
    finally:
        if previous != training:
            module.train(previous)


def _single_name(name: Any, call: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{call} expects one layer name (str) first, but received {name!r}.")
    return name


install_network_factory(Network.for_new_layer)
