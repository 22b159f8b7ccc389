"""Execution plans behind the run calls and the Trainer.

A plan is built once per (kind of call, requested layers) and cached by the
Network until the graph changes. It holds everything that can be decided
ahead of time (which layers run in which order, which params learn with which
optimizer, which penalties apply), so a training step does no per-parameter
Python work beyond what torch itself does.

* :class:`ForwardPlan` evaluates layers (``propagate``, ``predict``, export).
* :class:`CostPlan` adds the outputs' costs (``test``, evaluation).
* :class:`TrainingPlan` adds penalties and optimizers, and steps them (``train``).

Example:
    >>> import torch, mariana.layers as ML, mariana.scenari as MS
    >>> net = ML.Input(2, name="x") > ML.Regression(1, learning_scenari=[MS.GradientDescent(lr=0.1)], name="out")
    >>> plan = net.training_plan("out")
    >>> feeds, targets = plan.prepare({"x": torch.ones(4, 2), "out": torch.zeros(4, 1)})
    >>> result = plan.evaluate(feeds, targets)
    >>> sorted(result.losses), plan.step(result)
    (['out'], None)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from mariana.activations import Pass
from mariana.checks import is_int
from mariana.graph import feeds as layer_feeds
from mariana.graph import upstream
from mariana.layers.base import Layer
from mariana.regularizations import Regularization
from mariana.scenari import LearningScenario

if TYPE_CHECKING:
    from mariana.network import Network

Tensors = dict[str, torch.Tensor]


class Chunk(NamedTuple):
    """Rows ``start:stop`` of a batch, feeds and targets sliced alike."""

    start: int
    stop: int
    feeds: Tensors
    targets: Tensors


def batch_length(feeds: Mapping[str, torch.Tensor]) -> int:
    for tensor in feeds.values():
        return tensor.shape[0]
    return 0


def chunks(feeds: Tensors, targets: Tensors, batch_size: int | None) -> Iterator[Chunk]:
    """Slices of the batch along axis 0, ``batch_size`` rows at a time (all at once if None)."""
    if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, but received {batch_size!r}.")
    total = batch_length(feeds) or batch_length(targets)
    if batch_size is None or batch_size >= total:
        yield Chunk(0, total, feeds, targets)
        return
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        yield Chunk(start, stop, {k: v[start:stop] for k, v in feeds.items()}, {k: v[start:stop] for k, v in targets.items()})


def check_finite(tensor: torch.Tensor, owner: Layer, role: str) -> None:
    """``ValueError`` naming ``owner`` and how many values are NaN or infinite (host data only: no device sync)."""
    if not tensor.is_floating_point() or tensor.device.type != "cpu" or not tensor.numel():
        return
    # min and max read the data without allocating (NaN propagates into them): ~10x cheaper than isfinite().all() per
    # training call. numpy's are single-threaded: torch's would wake its thread pool, which stalls on a busy machine
    # (and on the Trainer's prefetch thread). Chunks keep a whole stream's check small too.
    chunks = tensor.detach().reshape(-1).split(2**22)
    if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
        chunks = [chunk.float() for chunk in chunks]
    if not all(math.isfinite(c.min()) and math.isfinite(c.max()) for c in (chunk.numpy() for chunk in chunks)):
        count = sum(int(chunk.numel() - torch.isfinite(chunk).sum()) for chunk in chunks)
        raise ValueError(f"{owner.describe()} received {count} NaN or infinite value(s) in its {role}; clean or mask them before training.")


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if tensor.device == device:
        return tensor
    # Asynchronous only towards an accelerator: a device-to-host copy must be complete before it is read.
    return tensor.to(device, non_blocking=device.type != "cpu")


@dataclass(frozen=True)
class PlanStep:
    """One layer of a forward plan and what to keep of it."""

    layer: Layer
    sources: tuple[str, ...]  #: names of the values it takes (its own name for an Input: the fed data)
    keep_pre: bool  #: keep its pre-activation (outputs whose cost reads logits)
    keep_clean: bool  #: keep its output before decorators (a layer read by reference, e.g. Autoencode's target)
    activate: bool  #: apply its activation (not for Pass, nor when only the logits are needed)


class ForwardResult(NamedTuple):
    """What a forward plan computed (a named tuple: ``values, pre, clean = plan.run(...)``)."""

    values: Tensors  #: each layer's output as the next layers receive it
    pre: Tensors  #: pre-activations of the layers that keep them
    clean: Tensors  #: outputs before decorators of the layers read by reference


@dataclass
class CostResult:
    """What a cost plan computed for one batch."""

    losses: Tensors  #: each output's cost (without regularization)
    logits: Tensors  #: each output's pre-activation (a classifier's class scores)
    counts: Tensors  #: how much the batch counts in a mean over batches, for outputs with class weights (others: rows)


class ForwardPlan:
    """Which layers to evaluate, in which order, to obtain ``targets``."""

    def __init__(self, network: Network, targets: tuple[str, ...], keep_pre: tuple[str, ...] = (),
                 logits_only: frozenset[str] = frozenset()) -> None:
        self.network = network
        self.target_names = targets
        needed = upstream([network[name] for name in targets], network)
        for layer in needed.values():
            if layer.shape is None:
                raise ValueError(
                    f"{layer.describe()} has no input yet, so its shape is unknown; connect it "
                    f"(e.g. `inp > {layer.name}`) before running it."
                )
        clean = {ref for layer in needed.values() for ref in layer.references()}
        logits_only = logits_only - clean  # a layer read by reference (Autoencode's target) needs its activation
        self.layers = [layer for name, layer in network.layers.items() if name in needed]
        self.input_names = tuple(layer.name for layer in self.layers if layer.is_input)
        self.steps = [
            PlanStep(
                layer=layer,
                sources=tuple(p.name for p in layer.incoming) if not layer.is_input else (layer.name,),
                keep_pre=layer.name in keep_pre,
                keep_clean=layer.name in clean,
                activate=not isinstance(layer.activation, Pass) and layer.name not in logits_only,
            )
            for layer in self.layers
            # An Input with nothing to apply passes its feed through: its value is already there.
            if not (layer.is_input and not layer.decorators and isinstance(layer.activation, Pass)
                    and layer.name not in keep_pre and layer.name not in clean)
        ]
        # Data checks (ids, lengths) run once per call on the incoming data, before anything runs or moves.
        self.feed_checks = [
            (source.name, layer, index)
            for layer in self.layers
            if type(layer).check_feed is not Layer.check_feed
            for index, source in enumerate(layer.incoming) if source.is_input
        ]
        self.device_tensor = next(iter(network.module.parameters()), None)
        self.ignored_keys = set(network.inputs) | set(network.outputs)
        # What run() reads of each step, unpacked once (it runs every training step); the name of a
        # step's only source, else None (several sources: run() gathers them).
        self._run_steps = [(step.layer.evaluate, step.layer.name, step.sources[0] if len(step.sources) == 1 else None,
                            step.sources, step.keep_pre, step.keep_clean, step.activate)
                           for step in self.steps]

    @property
    def device(self) -> torch.device:
        return self.device_tensor.device if self.device_tensor is not None else torch.device("cpu")

    def run(self, feeds: Mapping[str, torch.Tensor], training: bool) -> ForwardResult:
        """Evaluate every step; decorators apply only when ``training``."""
        values, pre, clean = dict(feeds), {}, {}
        for evaluate, name, source, sources, keep_pre, keep_clean, activate in self._run_steps:
            if source is not None:
                output = evaluate(values[source], training=training, activate=activate)
            else:
                output = evaluate(*[values[s] for s in sources], training=training, activate=activate)
            if keep_pre:
                pre[name] = output.pre
            if keep_clean:
                clean[name] = output.clean
            values[name] = output.out
        return ForwardResult(values, pre, clean)

    def prepare(self, batch: Mapping[str, Any], target_outputs: tuple[Layer, ...] = (),
                to_device: bool = True) -> tuple[Tensors, Tensors]:
        """Check and convert a batch: (Input feeds, output targets), on the plan's device (``to_device``) or the host."""
        target_keys = {layer.name: layer for layer in target_outputs if layer.takes_targets}
        self._check_keys(batch, target_keys, target_outputs)
        feeds: Tensors = {}
        size, size_owner = None, None
        for name in self.input_names:
            if name not in batch:
                raise ValueError(f"Missing input {name!r}: this call needs Input(s) {list(self.input_names)}, but received {sorted(batch)}.")
            layer = self.network[name]
            tensor = layer.accept(batch[name])
            if size is None:
                size, size_owner = tensor.shape[0], layer
            elif tensor.shape[0] != size:
                raise ValueError(
                    f"Batch size mismatch: {size_owner.describe()} received {size} rows but {layer.describe()} received {tensor.shape[0]}."
                )
            check_finite(tensor, layer, "input data")
            feeds[name] = tensor
        if size == 0:
            raise ValueError(f"{size_owner.describe()} received an empty batch (0 rows); a call needs at least one row.")
        for name, layer, index in self.feed_checks:
            layer.check_feed(index, feeds[name])
        device = self.device if to_device else torch.device("cpu")
        feeds = {name: _to(tensor, device) for name, tensor in feeds.items()}
        targets: Tensors = {}
        for name, layer in target_keys.items():
            if name not in batch:
                raise ValueError(f"Missing targets for {layer.describe()}: pass them as {name}=... (received keys {sorted(batch)}).")
            tensor = layer.accept_targets(batch[name])
            check_finite(tensor, layer, "targets")
            if size is not None and tensor.shape[0] != size:
                raise ValueError(
                    f"Batch size mismatch: {size_owner.describe()} received {size} rows but the targets of {layer.describe()} have {tensor.shape[0]}."
                )
            targets[name] = _to(tensor, device)
        return feeds, targets

    def _check_keys(self, batch: Mapping[str, Any], target_keys: Mapping[str, Layer], requested: tuple[Layer, ...]) -> None:
        for layer in requested:
            if not layer.takes_targets and layer.name in batch:
                source = " and ".join(repr(name) for name in layer.references()) or "its input"
                raise ValueError(
                    f"{layer.describe()} takes no targets; it reconstructs the output of {source} in the same forward pass. "
                    f"Remove {layer.name}=... from the call."
                )
        for key in batch:
            if key not in self.input_names and key not in target_keys and key not in self.ignored_keys:
                raise ValueError(
                    f"Unexpected key {key!r}: it is not an Input or output of this network. "
                    f"This call takes inputs {list(self.input_names)}"
                    + (f" and targets {list(target_keys)}." if target_keys else ".")
                )


class CostPlan:
    """A forward plan plus the costs of ``outputs`` (what ``test`` and evaluations run)."""

    def __init__(self, network: Network, outputs: tuple[str, ...], training: bool = False) -> None:
        self.training = training
        self.outputs = [network[name] for name in outputs]
        # Outputs whose cost reads the pre-activation (softmax + NLL, ...) skip the unused activation.
        logits_only = frozenset(
            layer.name for layer in self.outputs
            if layer.uses_logits(training) and not any(other.name in outputs or other.is_output for other in layer.outgoing)
        )
        self.forward = ForwardPlan(network, outputs, keep_pre=outputs, logits_only=logits_only)
        self._named_outputs = [(layer.name, layer) for layer in self.outputs]

    def prepare(self, batch: Mapping[str, Any], to_device: bool = True) -> tuple[Tensors, Tensors]:
        return self.forward.prepare(batch, target_outputs=tuple(self.outputs), to_device=to_device)

    def evaluate(self, feeds: Tensors, targets: Tensors, sample_weights: Tensors | None = None) -> CostResult:
        """One forward pass and the outputs' costs (with decorators when this is a training plan).

        ``sample_weights`` maps output names to per-sample weights ``(batch,)``.
        """
        training = self.training
        values, logits, clean = self.forward.run(feeds, training)
        losses, counts = {}, {}
        for name, layer in self._named_outputs:
            target, weights = targets.get(name), sample_weights.get(name) if sample_weights else None
            losses[name] = layer.cost_value(logits[name], values[name], target, clean, training, weights)
            class_weights = layer.cost.target_weights(target) if target is not None else None
            if class_weights is not None:
                counts[name] = class_weights.sum()
        return CostResult(losses, logits, counts)


class TrainingPlan(CostPlan):
    """A cost plan that also knows which params learn, with which optimizer and penalties, and steps them."""

    def __init__(self, network: Network, outputs: tuple[str, ...]) -> None:
        super().__init__(network, outputs, training=True)
        self.optimizers: list[tuple[LearningScenario, torch.optim.Optimizer]] = []
        self.penalties: list[tuple[Regularization, list[torch.nn.Parameter]]] = []
        self.trained: list[torch.nn.Parameter] = []
        self.backward_inputs: list[torch.nn.Parameter] | None = None
        self._plan_updates(network)

    def _plan_updates(self, network: Network) -> None:
        groups: dict[tuple, tuple[LearningScenario, list]] = {}
        all_params: list[torch.nn.Parameter] = []
        # A wrapped layer learns with its own scenari, else its wrapper's, else the inherited ones.
        members = [(node, layer) for node in self.forward.layers for _, layer in node.named_layers()]
        for node, layer in members:
            all_params.extend(layer._parameters.values())
            learning = [p for n, p in layer._parameters.items() if not (layer.is_frozen(n) or node.is_frozen(n))]
            if not learning:
                continue
            scenario = layer.optimizer or node.optimizer or self._inherited_scenario(network, node)
            groups.setdefault(scenario.config_key() + (id(scenario),), (scenario, []))[1].extend(learning)
            self.trained.extend(learning)
            learned = {id(p) for p in learning}
            for regularization in layer.regularizations:
                params = [p for p in layer.regularizable_params() if id(p) in learned]
                if params:
                    self.penalties.append((regularization, params))
        self.optimizers = [
            (scenario, scenario.make_optimizer(params, network.optimizer_state)) for scenario, params in groups.values()
        ]
        # Restrict backward to the learning params only when others would receive gradients.
        self.backward_inputs = None if len(self.trained) == len(all_params) else self.trained

    def _inherited_scenario(self, network: Network, layer: Layer) -> LearningScenario:
        given = [(output, output.optimizer) for output in self.outputs if layer_feeds(layer, output, network)]
        missing = [output.name for output, scenario in given if scenario is None]
        if missing:
            places = " or ".join(repr(name) for name in dict.fromkeys([missing[0], layer.name]))
            raise ValueError(
                f"{layer.describe()} has no optimizer in its learning_scenari and output(s) {missing} "
                f"have none to give it. Add e.g. learning_scenari=[MS.GradientDescent(lr=0.01)] to "
                f"{places}, or MS.Fixed() to {layer.name!r} to freeze it."
            )
        first = given[0][1]
        for _, scenario in given[1:]:
            if scenario is not first and scenario.config_key() != first.config_key():
                raise ValueError(
                    f"{layer.describe()} is shared by outputs {[o.name for o, _ in given]} whose optimizers differ "
                    f"({first!r} vs {scenario!r}), so it cannot inherit one. Give {layer.name!r} its own learning_scenari."
                )
        return first

    def objective(self, result: CostResult) -> torch.Tensor:
        """What the step minimises: the sum of the outputs' costs plus the regularization penalties."""
        losses = iter(result.losses.values())
        total = next(losses)
        for loss in losses:
            total = total + loss
        for regularization, params in self.penalties:
            total = total + regularization.penalty(params)
        return total

    def step(self, result: CostResult) -> None:
        """Back-propagate :meth:`objective` and take one step of every optimizer."""
        self.backward(result)
        self.apply()

    def backward(self, result: CostResult, scale: float = 1.0,
                 scaled: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """Add ``scale`` times the gradient of :meth:`objective` to the params' gradients (accumulation uses 1/k).

        ``scaled`` transforms the objective first (a gradient scaler's ``scale``, so small float16 gradients do not underflow).
        """
        if not self.optimizers:
            return
        objective = self.objective(result)
        if scale != 1.0:
            objective = objective * scale
        (objective if scaled is None else scaled(objective)).backward(inputs=self.backward_inputs)

    def apply(self, unscale: Callable[[torch.optim.Optimizer], Any] | None = None,
              optimizer_step: Callable[[torch.optim.Optimizer], Any] | None = None) -> None:
        """One step of every optimizer on the gradients accumulated so far (clipped first), then clear them.

        A gradient scaler passes its ``unscale_`` (run on each optimizer before clipping, so clipping and the
        step see the true gradients) and its ``step`` as ``optimizer_step`` (run instead of ``optimizer.step()``).
        """
        for scenario, optimizer in self.optimizers:
            if unscale is not None:
                unscale(optimizer)
            if scenario.clip_norm is not None or scenario.clip_value is not None:
                scenario.clip(optimizer.param_groups[0]["params"])
            if scenario.schedule is not None:
                lr = scenario.current_lr()
                for group in optimizer.param_groups:
                    group["lr"] = lr
            if optimizer_step is None:
                optimizer.step()
            else:
                optimizer_step(optimizer)
            optimizer.zero_grad(set_to_none=True)
            scenario.steps += 1
        # Run inside a user's torch.autocast, its cache would keep serving the weights' old low-precision
        # copies. Outside one the cache is empty: clearing it is free, and cheaper than asking.
        torch.clear_autocast_cache()

    def scenari(self) -> list[LearningScenario]:
        """The optimizer scenari this plan steps (each once)."""
        return [scenario for scenario, _ in self.optimizers]
