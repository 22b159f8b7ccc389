"""Execution plans behind the run calls.

A plan is built once per (kind of call, requested layers) and cached by the
Network until the graph changes. It holds everything that can be decided
ahead of time (which layers run in which order, which params learn with which
optimizer, which penalties apply), so a training step does no per-parameter
Python work beyond what torch itself does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from mariana.activations import Pass
from mariana.checks import is_int

if TYPE_CHECKING:
    from mariana.layers.base import Layer
    from mariana.network import Network


def batch_length(feeds: dict[str, torch.Tensor]) -> int:
    for tensor in feeds.values():
        return tensor.shape[0]
    return 0


def chunks(feeds: dict, targets: dict, batch_size: int | None) -> Iterator[tuple[int, int, dict, dict]]:
    """Slices of the batch along axis 0, ``batch_size`` rows at a time (all at once if None)."""
    if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, but received {batch_size!r}.")
    total = batch_length(feeds) or batch_length(targets)
    if batch_size is None or batch_size >= total:
        yield 0, total, feeds, targets
        return
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        yield (start, stop, {k: v[start:stop] for k, v in feeds.items()},
               {k: v[start:stop] for k, v in targets.items()})


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if tensor.device == device:
        return tensor
    # Asynchronous only towards an accelerator: a device-to-host copy must be complete before it is read.
    return tensor.to(device, non_blocking=device.type != "cpu")


class ForwardPlan:
    """Which layers to evaluate, in which order, to obtain ``targets``."""

    def __init__(self, network: Network, targets: tuple[str, ...], keep_pre: tuple[str, ...] = (),
                 logits_only: frozenset[str] = frozenset()) -> None:
        self.network = network
        self.target_names = targets
        layers = network.layers
        needed: dict[str, Layer] = {}
        stack = [network[name] for name in targets]
        while stack:
            layer = stack.pop()
            if layer.name in needed:
                continue
            needed[layer.name] = layer
            stack.extend(layer.incoming)
            stack.extend(network[name] for name in layer.references())
        for layer in needed.values():
            if layer.shape is None:
                raise ValueError(
                    f"{layer.describe()} has no input yet, so its shape is unknown; connect it "
                    f"(e.g. `inp > {layer.name}`) before running it."
                )
        clean = {ref for layer in needed.values() for ref in layer.references()}
        logits_only = logits_only - clean  # a layer read by reference (Autoencode's target) needs its activation
        self.layers = [layer for name, layer in layers.items() if name in needed]
        self.input_names = tuple(layer.name for layer in self.layers if layer.is_input)
        self.steps = [
            (
                layer,
                tuple(p.name for p in layer.incoming) if not layer.is_input else (layer.name,),
                layer.name in keep_pre,
                layer.name in clean,
                tuple(layer.decorators),
                None if isinstance(layer.activation, Pass) or layer.name in logits_only else layer.activation,
            )
            for layer in self.layers
        ]
        # Data checks (ids, lengths) run once per call on the incoming data, before anything runs or moves.
        from mariana.layers.base import Layer

        self.feed_checks = [
            (source.name, layer, index)
            for layer in self.layers
            if type(layer).check_feed is not Layer.check_feed
            for index, source in enumerate(layer.incoming) if source.is_input
        ]
        self.device_tensor = next(iter(network.module.parameters()), None)
        other_outputs = set(network.outputs)
        self.ignored_keys = set(network.inputs) | other_outputs

    @property
    def device(self) -> torch.device:
        return self.device_tensor.device if self.device_tensor is not None else torch.device("cpu")

    def run(self, feeds: dict[str, torch.Tensor], training: bool):
        """Evaluate the plan: (outputs by name, pre-activations kept, clean outputs kept)."""
        values = dict(feeds)
        pre: dict[str, torch.Tensor] = {}
        clean: dict[str, torch.Tensor] = {}
        for layer, sources, keep_pre, keep_clean, decorators, activation in self.steps:
            x = layer(*[values[s] for s in sources])
            if keep_pre:
                pre[layer.name] = x
            if activation is not None:
                x = activation(x)
            if keep_clean:
                clean[layer.name] = x
            if training:
                for decorator in decorators:
                    x = decorator(x)
            values[layer.name] = x
        return values, pre, clean

    def prepare(self, batch: dict[str, Any], target_outputs: tuple = ()) -> tuple[dict, dict]:
        """Check and convert a batch: (Input feeds, output targets), on the plan's device."""
        device = self.device
        target_keys = {layer.name: layer for layer in target_outputs if layer.takes_targets}
        for key in batch:
            if key not in self.input_names and key not in target_keys and key not in self.ignored_keys:
                raise ValueError(
                    f"Unexpected key {key!r}: it is not an Input or output of this network. "
                    f"This call takes inputs {list(self.input_names)}"
                    + (f" and targets {list(target_keys)}." if target_keys else ".")
                )
        feeds: dict[str, torch.Tensor] = {}
        size = None
        size_owner = None
        for name in self.input_names:
            if name not in batch:
                raise ValueError(f"Missing input {name!r}: this call needs Input(s) {list(self.input_names)}, but received {sorted(batch)}.")
            layer = self.network._layers[name]
            tensor = layer.accept(batch[name])
            if size is None:
                size, size_owner = tensor.shape[0], layer
            elif tensor.shape[0] != size:
                raise ValueError(
                    f"Batch size mismatch: {size_owner.describe()} received {size} rows but {layer.describe()} received {tensor.shape[0]}."
                )
            feeds[name] = tensor
        for name, layer, index in self.feed_checks:
            layer.check_feed(index, feeds[name])
        feeds = {name: _to(tensor, device) for name, tensor in feeds.items()}
        targets: dict[str, torch.Tensor] = {}
        for name, layer in target_keys.items():
            if name not in batch:
                raise ValueError(f"Missing targets for {layer.describe()}: pass them as {name}=... (received keys {sorted(batch)}).")
            tensor = layer.accept_targets(batch[name])
            if size is not None and tensor.shape[0] != size:
                raise ValueError(
                    f"Batch size mismatch: {size_owner.describe()} received {size} rows but the targets of {layer.describe()} have {tensor.shape[0]}."
                )
            targets[name] = _to(tensor, device)
        return feeds, targets


class CostPlan:
    """Forward plan plus costs, penalties and (when training) the optimizers."""

    def __init__(self, network: Network, outputs: tuple[str, ...], training: bool) -> None:
        self.outputs = [network[name] for name in outputs]
        self.target_layers = tuple(self.outputs)
        # Outputs whose cost reads the pre-activation (softmax + NLL, ...) skip the unused activation.
        logits_only = frozenset(
            layer.name for layer in self.outputs
            if layer.uses_logits(training) and not any(other.name in outputs or other.is_output for other in layer.outgoing)
        )
        self.forward = ForwardPlan(network, outputs, keep_pre=outputs, logits_only=logits_only)
        self.optimizers: list[tuple[Any, torch.optim.Optimizer]] = []
        self.penalties: list[tuple[Any, list[torch.nn.Parameter]]] = []
        self.backward_inputs: list[torch.nn.Parameter] | None = None
        if training:
            self._plan_updates(network)

    def prepare(self, batch: dict) -> tuple[dict, dict]:
        return self.forward.prepare(batch, target_outputs=self.target_layers)

    def _plan_updates(self, network: Network) -> None:
        groups: dict[tuple, tuple[Any, list]] = {}
        trained: list[torch.nn.Parameter] = []
        all_params: list[torch.nn.Parameter] = []
        # A wrapped layer learns with its own scenari, else its wrapper's, else the inherited ones.
        members = [(node, layer) for node in self.forward.layers for _, layer in node.named_layers()]
        for node, layer in members:
            if not layer._parameters:
                continue
            learning = [(n, p) for n, p in layer._parameters.items() if not (layer.is_frozen(n) or node.is_frozen(n))]
            all_params.extend(layer._parameters.values())
            if not learning:
                continue
            scenario = layer.optimizer or node.optimizer or self._inherited_scenario(network, node)
            key = scenario.config_key() + (id(scenario),)
            groups.setdefault(key, (scenario, []))[1].extend(p for _, p in learning)
            trained.extend(p for _, p in learning)
            learned = {id(p) for _, p in learning}
            for regularization in layer.regularizations:
                params = [p for p in layer.regularizable_params() if id(p) in learned]
                if params:
                    self.penalties.append((regularization, params))
        self.optimizers = [
            (scenario, scenario.make_optimizer(params, network._optimizer_state)) for scenario, params in groups.values()
        ]
        self.trained = trained
        # Restrict backward to the learning params only when others would receive gradients.
        self.backward_inputs = None if len(trained) == len(all_params) else trained

    def _inherited_scenario(self, network: Network, layer: Layer):
        candidates = [output for output in self.outputs if output is layer or _feeds(layer, output, network)]
        given = [(output, output.optimizer) for output in candidates]
        missing = [output.name for output, scenario in given if scenario is None]
        if missing:
            raise ValueError(
                f"{layer.describe()} has no optimizer in its learning_scenari and output(s) {missing} "
                f"have none to give it. Add e.g. learning_scenari=[MS.GradientDescent(lr=0.01)] to "
                f"{missing[0]!r} or to {layer.name!r}, or MS.Fixed() to {layer.name!r} to freeze it."
            )
        first = given[0][1]
        for _, scenario in given[1:]:
            if scenario is not first and scenario.config_key() != first.config_key():
                raise ValueError(
                    f"{layer.describe()} is shared by outputs {[o.name for o, _ in given]} whose optimizers differ "
                    f"({first!r} vs {scenario!r}), so it cannot inherit one. Give {layer.name!r} its own learning_scenari."
                )
        return first

    def losses(self, feeds: dict, targets: dict, training: bool):
        values, pre, clean = self.forward.run(feeds, training)
        losses = {}
        for layer in self.outputs:
            losses[layer.name] = layer.cost_value(pre[layer.name], values[layer.name], targets.get(layer.name), clean, training)
        total = None
        if training:
            for loss in losses.values():
                total = loss if total is None else total + loss
            for regularization, params in self.penalties:
                total = total + regularization.penalty(params)
        return losses, total

    def step(self, total: torch.Tensor) -> None:
        if not self.optimizers:
            return
        total.backward(inputs=self.backward_inputs)
        for scenario, optimizer in self.optimizers:
            if scenario.schedule is not None:
                lr = scenario.current_lr()
                for group in optimizer.param_groups:
                    group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scenario.steps += 1


def _feeds(layer: Layer, output: Layer, network: Network) -> bool:
    stack, seen = [output], set()
    while stack:
        current = stack.pop()
        if current is layer:
            return True
        if id(current) in seen:
            continue
        seen.add(id(current))
        stack.extend(current.incoming)
        stack.extend(network[name] for name in current.references())
    return False
