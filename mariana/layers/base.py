"""The Layer base class: params, shapes, abstractions, config and wiring.

A layer is a ``torch.nn.Module`` that also knows its place in a Mariana
graph. Subclasses stay short: declare hyperparameters, compute the output
shape, create params in ``build`` with :meth:`Layer.add_param`, and compute
the (pre-activation) output in ``forward``. The base applies the activation,
the training-only decorators, initializations, and all the checks.

Example: a custom layer that scales its input by a learned vector.

    >>> import torch, mariana as mar, mariana.layers as ML
    >>> @mar.register
    ... class LearnedScale(ML.Layer):
    ...     def output_shape(self, input_shape):
    ...         return input_shape
    ...     def build(self, input_shape):
    ...         self.add_param("s", input_shape, torch.nn.init.ones_, regularizable=False)
    ...     def forward(self, x):
    ...         return x * self.s
    >>> net = ML.Input(3, name="x") > LearnedScale(name="scale")
    >>> net.propagate("scale", x=[[1.0, 2.0, 3.0]]).tolist()
    [[1.0, 2.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import nn

from mariana import activations as MA
from mariana import costs as MC
from mariana import decorators as MD
from mariana import initializations as MI
from mariana import regularizations as MR
from mariana import scenari as MS
from mariana.checks import is_int
from mariana.layers.expression import Operand
from mariana.layers.names import automatic_name, check_name
from mariana.registry import Configurable, deserialize, serialize

if TYPE_CHECKING:
    from mariana.network import Network

Shape = tuple[int, ...]


#: Makes the one-layer Network every layer is born in. The graph sits above the layers, so it
#: installs itself here when imported (``mariana.layers`` imports ``mariana.network``).
_network_factory: Callable[[Layer], Network] | None = None


def install_network_factory(factory: Callable[[Layer], Network]) -> None:
    """Set what makes a new layer's own Network (called once, by ``mariana.network``)."""
    global _network_factory
    _network_factory = factory


class LayerOutput(NamedTuple):
    """What one layer computes in a forward pass (see :meth:`Layer.evaluate`)."""

    pre: torch.Tensor  #: ``forward``'s result, before the activation
    clean: torch.Tensor  #: after the activation, before training-only decorators
    out: torch.Tensor  #: what the next layers receive


def _as_list(value: Any, keyword_name: str, owner: str, expected: type) -> list:
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, expected):
            raise TypeError(
                f"{owner}: {keyword_name} expects {expected.__module__}.{expected.__name__} objects, "
                f"but received {item!r}."
            )
    return items


def as_shape(shape: Any, owner: str) -> Shape:
    """A shape as a tuple of positive ints (an int is a 1-d shape)."""
    values = (shape,) if is_int(shape) else shape
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if not values or not all(is_int(v) and v > 0 for v in values):
        raise ValueError(f"{owner}: expected a shape of positive ints (batch axis excluded), but received {shape!r}.")
    return tuple(int(v) for v in values)


class Layer(Operand, Configurable, nn.Module):
    """Base of every Mariana layer.

    Subclasses set ``hyperparameters`` (constructor arguments kept as
    attributes of the same name) and implement ``output_shape(*input_shapes)``,
    optionally ``build(*input_shapes)`` (create params with ``add_param``) and
    ``forward(*inputs)`` returning the pre-activation output.
    """

    #: How many incoming layers ``>`` may connect (None: no limit).
    max_inputs: int | None = 1
    #: Kind of input data accepted: "float", "int" or "any".
    input_kind = "float"
    #: Merges connect the layers they reference when constructed, never with ``>``.
    connects_at_construction = False
    #: Abstraction keywords this layer accepts (others raise TypeError).
    abstraction_keywords: tuple[str, ...] = (
        "activation", "decorators", "regularizations", "initializations", "learning_scenari",
    )

    def __init__(
        self,
        *,
        name: str | None = None,
        activation: MA.Activation | None = None,
        decorators: Sequence[MD.Decorator] | None = None,
        regularizations: Sequence[MR.Regularization] | None = None,
        initializations: Sequence[MI.Initialization] | None = None,
        learning_scenari: Sequence[MS.LearningScenario] | None = None,
    ) -> None:
        nn.Module.__init__(self)
        kind = type(self).__name__
        if name is None:
            name = automatic_name(kind)
        self.name = check_name(name, kind)
        owner = f"{kind} {self.name!r}"
        given = {
            "activation": activation, "decorators": decorators, "regularizations": regularizations,
            "initializations": initializations, "learning_scenari": learning_scenari,
        }
        for keyword_name, value in given.items():
            if value is not None and keyword_name not in self.abstraction_keywords:
                raise TypeError(f"{owner} does not take {keyword_name}=; it accepts {', '.join(self.abstraction_keywords)}.")
        if activation is not None and not isinstance(activation, MA.Activation):
            raise TypeError(f"{owner}: activation expects a mariana.activations object, but received {activation!r}.")
        self.activation = activation if activation is not None else MA.Pass()
        self.decorators = _as_list(decorators, "decorators", owner, MD.Decorator)
        self.regularizations = _as_list(regularizations, "regularizations", owner, MR.Regularization)
        self.initializations = _as_list(initializations, "initializations", owner, MI.Initialization)
        self.shape: Shape | None = None
        self._learning_scenari: list[MS.LearningScenario] = []
        self.optimizer, self.fixed = None, ()
        self.learning_scenari = learning_scenari
        self.input_shapes: tuple[Shape, ...] | None = None
        self.incoming: list[Layer] = []
        self.outgoing: list[Layer] = []
        self.param_tags: dict[str, dict[str, bool]] = {}
        if _network_factory is None:
            raise RuntimeError("Layers are made through `import mariana.layers`, which loads the graph they live in.")
        self.network: Network | None = _network_factory(self)

    # -- what subclasses implement -------------------------------------------------
    def output_shape(self, *input_shapes: Shape) -> Shape:
        """The output shape (batch axis excluded) for these input shapes; raise ValueError if they don't fit."""
        raise NotImplementedError(f"{type(self).__name__} must implement output_shape(*input_shapes).")

    def build(self, *input_shapes: Shape) -> None:
        """Create params with ``add_param``; called once, when the input shapes become known."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(*inputs).")

    def check_feed(self, index: int, values: torch.Tensor) -> None:
        """Check the data of incoming ``index`` (ids, lengths) and raise ValueError if it cannot be used.

        Run calls call it before anything runs, on the host-side data, for each
        incoming Input; ``forward`` need only call it for data that reaches it
        through other layers (see :meth:`feed_is_checked`). Default: no check.
        """

    def feed_is_checked(self, index: int) -> bool:
        """Whether the data of incoming ``index`` was checked with ``check_feed`` before the call ran.

        True when it comes straight from an Input (run calls check those), or when
        this layer is wrapped (its wrapper checked the data it passes on).
        """
        return self.network is None or self.incoming[index].is_input

    def evaluate(self, *inputs: torch.Tensor, training: bool, activate: bool = True) -> LayerOutput:
        """``forward``, then the activation (unless ``activate`` is False), then, when training, the decorators.

        Execution plans and wrappers run every layer through this one method.
        """
        pre = self(*inputs)
        clean = self.activation(pre) if activate else pre
        out = clean
        if training:
            for decorator in self.decorators:
                out = decorator(out)
        return LayerOutput(pre, clean, out)

    @property
    def learning_scenari(self) -> list[MS.LearningScenario]:
        """This layer's own scenari; assigning a new list takes effect at the next run call."""
        return list(self._learning_scenari)

    @learning_scenari.setter
    def learning_scenari(self, scenari: Sequence[MS.LearningScenario] | MS.LearningScenario | None) -> None:
        owner = f"{type(self).__name__} {self.name!r}"
        items = _as_list(scenari, "learning_scenari", owner, MS.LearningScenario)
        optimizer, fixed = MS.split_scenari(owner, items)
        if self.shape is not None:
            for entry in fixed:
                unknown = [n for n in entry.param_names if n not in self._parameters]
                if unknown:
                    raise ValueError(f"{owner}: Fixed names unknown param(s) {unknown}; this layer's params are {sorted(self._parameters)}.")
        self._learning_scenari, self.optimizer, self.fixed = items, optimizer, fixed
        network = self.__dict__.get("network")
        if network is not None:
            network.graph_changed()

    # -- params --------------------------------------------------------------------
    def add_param(
        self,
        name: str,
        shape: Sequence[int] | int,
        init: Callable[[torch.Tensor], Any] | None = None,
        *,
        regularizable: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> nn.Parameter:
        """Create the parameter ``name`` (kept as ``self.<name>``), filled by ``init``.

        ``init`` is any in-place filler: a mariana initialization or a
        ``torch.nn.init`` function. Without one, weights (2+ axes) get
        GlorotUniform and others zeros. ``regularizable=False`` keeps L1/L2
        off it (biases, norms).
        """
        check_name(name, f"{type(self).__name__} {self.name!r}: parameter")
        if name in self._parameters:
            raise ValueError(f"{type(self).__name__} {self.name!r} already has a parameter named {name!r}.")
        shape = as_shape(shape, f"{type(self).__name__} {self.name!r}: parameter {name!r}")
        param = nn.Parameter(torch.empty(shape, dtype=dtype))
        if init is None:
            init = MI.GlorotUniform(name) if len(shape) >= 2 else nn.init.zeros_
        with torch.no_grad():
            init(param)
        self.register_parameter(name, param)
        self.param_tags[name] = {"regularizable": bool(regularizable)}
        return param

    @property
    def params(self) -> dict[str, nn.Parameter]:
        """This layer's own params, by Mariana name."""
        return dict(self._parameters)

    def regularizable_params(self) -> list[nn.Parameter]:
        return [p for n, p in self._parameters.items() if self.param_tags.get(n, {}).get("regularizable", True)]

    def is_frozen(self, param_name: str) -> bool:
        return any(fixed.freezes(param_name) for fixed in self.fixed)

    # -- graph roles ---------------------------------------------------------------
    @property
    def is_input(self) -> bool:
        return False

    @property
    def is_output(self) -> bool:
        return False

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of this layer's output: its float params', else its float input's, else float32."""
        for param in self._parameters.values():
            if param.is_floating_point():
                return param.dtype
        for source in self.incoming:
            if source.dtype.is_floating_point:
                return source.dtype
        return torch.float32

    @property
    def expected_inputs(self) -> int:
        """How many incoming layers must be known before the shape is inferred."""
        return 1

    def references(self) -> tuple[str, ...]:
        """Names of layers this one reads besides its incoming edges (Autoencode's target)."""
        return ()

    def sublayers(self) -> tuple[Layer, ...]:
        """Layers this one wraps and runs itself (Bidirectional, TimeDistributed); they are not graph nodes."""
        return ()

    def named_layers(self, prefix: str = "") -> list[tuple[str, Layer]]:
        """This layer, then the layers it wraps, each with its ``state_dict`` prefix (``bi``, ``bi.lstm``)."""
        name = prefix + self.name
        return [(name, self)] + [pair for sub in self.sublayers() for pair in sub.named_layers(name + ".")]

    def describe(self) -> str:
        return f"{type(self).__name__} {self.name!r}"

    # -- connection-time machinery (used by mariana.network) ------------------------
    def resolve_references(self, lookup: dict[str, Layer]) -> None:
        """Find layers named by references() among those being connected (default: none)."""

    def check_incoming(self, source: Layer) -> None:
        if self.input_kind == "any":
            return
        is_float = source.dtype.is_floating_point
        if self.input_kind == "float" and not is_float:
            raise ValueError(
                f"{self.describe()} expects float inputs, but {source.describe()} produces {source.dtype}. "
                f"Integer ids go into an Embedding; for numeric data declare the Input as dtype='float32'."
            )
        if self.input_kind == "int" and is_float:
            raise ValueError(
                f"{self.describe()} expects integer ids, but {source.describe()} produces {source.dtype}. "
                f"Declare the Input with an integer dtype, e.g. ML.Input(10, dtype='int64')."
            )

    def infer_shape(self, input_shapes: tuple[Shape, ...], sources: Sequence[Layer] = ()) -> Shape:
        try:
            shape = self.output_shape(*input_shapes)
        except ValueError as error:
            origin = f" from {', '.join(source.describe() for source in sources)}" if sources else ""
            raise ValueError(f"{self.describe()} cannot take input shape(s) {list(input_shapes)}{origin}: {error}") from None
        return as_shape(shape, f"{self.describe()}: output_shape()")

    def create_params(self, input_shapes: tuple[Shape, ...], shape: Shape) -> None:
        """Create and initialize params; on failure leave the layer as it was."""
        try:
            self.build(*input_shapes)
            known = set(self._parameters)
            for init in self.initializations:
                if init.param not in known:
                    raise ValueError(
                        f"{self.describe()}: initialization {type(init).__name__} targets unknown param "
                        f"{init.param!r}; this layer's params are {sorted(known) or 'none'}."
                    )
                try:
                    init(self._parameters[init.param])
                except ValueError as error:
                    raise ValueError(f"{self.describe()}: {error}") from None
            for decorator in self.decorators:
                try:
                    decorator.check(shape)
                except ValueError as error:
                    raise ValueError(f"{self.describe()}: {error}") from None
            for fixed in self.fixed:
                unknown = [n for n in fixed.param_names if n not in known]
                if unknown:
                    raise ValueError(
                        f"{self.describe()}: Fixed names unknown param(s) {unknown}; "
                        f"this layer's params are {sorted(known) or 'none'}."
                    )
        except BaseException:
            self.forget_params()
            raise
        self.input_shapes, self.shape = input_shapes, shape

    def forget_params(self) -> None:
        """Forget params and shapes, of this layer and of the layers it wraps (a failed ``>`` leaves nothing)."""
        for _, layer in self.named_layers():
            layer._parameters.clear()
            layer.param_tags.clear()
            layer.input_shapes = layer.shape = None

    # -- graph operators ------------------------------------------------------------
    def __gt__(self, other: Any) -> Network:
        return self._network_or_error().connect(self, other)

    def __lt__(self, other: Any) -> Network:
        # The mirror of '>': Python calls `o.__lt__(h)` for `h > o` when o's class derives from h's.
        if isinstance(other, Layer):
            return other._network_or_error().connect(other, self)
        return NotImplemented

    def _network_or_error(self) -> Network:
        if self.network is None:
            raise TypeError(
                f"{self.describe()} is wrapped inside another layer (e.g. Bidirectional, TimeDistributed), "
                f"so it is no longer a node of any graph; connect the wrapper instead."
            )
        return self.network

    # -- config ---------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name}
        config.update(super().get_config())
        if "activation" in self.abstraction_keywords:
            config["activation"] = serialize(self.activation)
        for key in ("decorators", "regularizations", "initializations", "learning_scenari"):
            if key in self.abstraction_keywords:
                config[key] = [serialize(item) for item in getattr(self, key)]
        return config

    @classmethod
    def from_config(cls, config: dict, **kwargs: Any) -> Layer:
        return cls(**decode_abstractions(config))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, shape={self.shape})"

    __hash__ = nn.Module.__hash__


_ABSTRACTION_BASES = {
    "activation": MA.Activation,
    "decorators": MD.Decorator,
    "regularizations": MR.Regularization,
    "initializations": MI.Initialization,
    "learning_scenari": MS.LearningScenario,
}


def decode_abstractions(config: dict) -> dict:
    """A layer config with its serialized abstractions turned back into objects."""
    decoded = dict(config)
    for key, base in _ABSTRACTION_BASES.items():
        if key not in decoded:
            continue
        value = decoded[key]
        decoded[key] = deserialize(value, base) if key == "activation" else [deserialize(v, base) for v in value]
    if decoded.get("cost") is not None:
        decoded["cost"] = deserialize(decoded["cost"], MC.Cost)
    return decoded
