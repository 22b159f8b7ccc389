"""ONNX export: a positional wrapper around the graph, with a dynamic batch axis.

Needs the ``export`` extra (``pip install mariana[export]``: onnx, onnxscript;
onnxruntime to run the result). Uses torch's ``torch.export``-based exporter.

Example:
    >>> import os, tempfile, numpy as np, mariana as mar, mariana.layers as ML
    >>> import onnxruntime
    >>> mar.seed(0)
    >>> net = ML.Input(3, name="inp") > ML.Regression(2, name="out")
    >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> net.to_onnx(path, outputs=["out"])
    >>> session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    >>> x = np.ones((4, 3), dtype="float32")
    >>> bool(np.allclose(session.run(None, {"inp": x})[0], net.propagate("out", inp=x), atol=1e-5))
    True
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mariana.files import as_path, atomic_write

if TYPE_CHECKING:
    from mariana.network import Network

#: Example batch size used while tracing; the exported batch axis is dynamic.
TRACE_BATCH = 2


class PositionalGraph(nn.Module):
    """``forward(*inputs) -> tuple(outputs)``: inputs in ``net.inputs`` order (those the outputs need).

    Holds ``net.module`` as a child, so its params and buffers are the network's.
    """

    def __init__(self, network: Network, outputs: Sequence[str]) -> None:
        super().__init__()
        self.layers = network.module  # not 'graph': torch.fx modules use that name
        self.plan = network.forward_plan(tuple(outputs))
        self.input_names = list(self.plan.input_names)
        self.output_names = list(outputs)
        #: ONNX value names must be unique: an output that is also an input gets a suffix.
        self.onnx_output_names = [f"{name}_output" if name in self.input_names else name for name in outputs]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = self.plan.run(dict(zip(self.input_names, inputs)), training=False).values
        return tuple(values[name] for name in self.output_names)


def to_onnx(network: Network, path: str | os.PathLike, outputs: Sequence[str] | None = None) -> None:
    """Export ``outputs`` (layer names; default: every output layer) of ``network`` to ``path``, atomically.

    The ONNX graph's inputs are named after the Input layers, its outputs
    after the requested layers (``<name>_output`` for an Input exported as an
    output); axis 0 of each is a dynamic ``batch`` axis.
    """

    path = as_path(path, "to_onnx")
    names = _output_names(network, outputs)
    try:
        import onnx  # noqa: F401  (checked here for a clear message)
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(f"to_onnx needs the optional 'export' dependencies ({error.name} is missing): "
                          f"pip install 'mariana[export]'.") from None
    wrapper = PositionalGraph(network, names)
    examples = tuple(_example(network[name], network.device) for name in wrapper.input_names)
    batch = torch.export.Dim("batch")
    was_training = network.module.training
    wrapper.eval()  # also puts network.module in eval mode; restored below
    try:
        with _quiet_exporter(), _attribute_safe_names(wrapper):
            program = torch.onnx.export(
                wrapper, examples, input_names=wrapper.input_names, output_names=wrapper.onnx_output_names,
                dynamic_shapes=(tuple({0: batch} for _ in examples),), dynamo=True, verbose=False,
            )
    finally:
        network.module.train(was_training)
    model = program.model_proto
    atomic_write(path, lambda handle: handle.write(model.SerializeToString()) and None)
    network.record("export", format="onnx", path=str(path), outputs=names)


def _output_names(network: Network, outputs: Sequence[str] | None) -> list[str]:
    if outputs is None:
        names = list(network.outputs)
    elif isinstance(outputs, str):
        names = [outputs]
    elif isinstance(outputs, (list, tuple)) and all(isinstance(n, str) for n in outputs):
        names = list(outputs)
    else:
        raise TypeError(f"to_onnx expects outputs as a list of layer names, but received {outputs!r}.")
    if not names:
        raise ValueError(f"to_onnx needs at least one output; this network's layers are {list(network.layers)}.")
    if len(set(names)) != len(names):
        raise ValueError(f"to_onnx: each output may be named once, but received {names}.")
    for name in names:
        network[name]  # KeyError listing the known layers
    return names


def _example(layer: Any, device: torch.device) -> torch.Tensor:
    # Zeros are valid for every Input kind (ids included).
    return torch.zeros((TRACE_BATCH, *layer.shape), dtype=layer.dtype, device=device)


@contextlib.contextmanager
def _attribute_safe_names(root: nn.Module) -> Iterator[None]:
    """Temporarily rename submodules whose name is also an attribute of their parent (``train``, ``to``, ``float``...).

    Layer names may shadow ``nn.Module`` methods: they are registered in ``_modules``
    without becoming attributes. The exporter finds submodules again with ``getattr``
    on their qualified name, which would return the method, so during the export each
    such child is registered as ``<name>_layer`` (made unique); the layers' own
    ``sublayers()`` read ``_modules`` values, which keep their order.
    """
    renamed: list[tuple[nn.Module, dict[str, nn.Module]]] = []
    try:
        for module in list(root.modules()):
            children = module._modules
            if not any(_shadows(module, name) for name in children):
                continue
            taken = set(children)
            safe: dict[str, nn.Module | None] = {}
            for name, child in children.items():
                new = name
                while _shadows(module, new) or (new != name and new in taken):
                    new += "_layer" if new == name else "_"
                taken.add(new)
                safe[new] = child
            renamed.append((module, dict(children)))
            module._modules = safe
        yield
    finally:
        for module, original in reversed(renamed):
            module._modules = original


def _shadows(module: nn.Module, name: str) -> bool:
    """Whether ``getattr(module, name)`` finds something other than the child registered as ``name``."""
    return hasattr(type(module), name) or name in vars(module)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's own chatter (optional torchvision ops, torch-internal deprecations)."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
            # Every input shares the one batch Dim on purpose; the exporter notes that it keeps one name.
            warnings.filterwarnings("ignore", message=r"# The axis name: batch will not be used", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)
