"""``net.fit(...)``: the common case of training, in one call.

Example:
    >>> import numpy as np, mariana as mar
    >>> from mariana.models import build_mlp
    >>> mar.seed(0)
    >>> net = build_mlp((3,), 2, hidden=4)
    >>> x, y = np.eye(3, dtype="float32")[[0, 1, 2, 0]], np.array([0, 1, 1, 0])
    >>> [entry["epoch"] for entry in fit(net, {"inp": x, "out": y}, epochs=2, batch_size=2, recorders=[])]
    [1, 2]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mariana.network import Network
from mariana.training.history import History
from mariana.training.recorders import ProgressBar
from mariana.training.stops import EpochWall, NaNGuard, Stop
from mariana.training.trainer import Trainer


def fit(network: Network, train: Any, valid: Any = None, epochs: int = 1, batch_size: int = 64, *,
        test: Any = None, outputs: str | Sequence[str] | None = None, stops: Sequence[Stop] = (), verbose: int = 1,
        **kwargs: Any) -> History:
    """``net.fit(train, valid=..., epochs=..., batch_size=...)``: a Trainer with EpochWall(epochs) and a NaNGuard.

    ``train``/``valid``/``test`` are DatasetMappers or dicts of arrays; other
    keywords go to :class:`~mariana.training.Trainer`. Returns the history
    (its ``stop_reason`` says why the run ended). ``verbose``: 0 silent, 1 a
    live bar (one line per epoch when stdout is not a terminal), 2 one line
    per epoch; ``recorders=[...]`` replaces the progress bar.
    As in Keras, a network with one Input and one trained output also takes
    bare arrays: ``net.fit(x, y)``, or ``(x, y)`` pairs for each stream.
    """
    if _is_array(train) and _is_array(valid):  # net.fit(x, y)
        train, valid = (train, valid), None
    train, valid, test = (_pair_to_dict(network, outputs, data, name) for name, data in (("train", train), ("valid", valid), ("test", test)))
    kwargs.setdefault("recorders", [ProgressBar(verbose=verbose)])
    all_stops = [EpochWall(epochs), NaNGuard(), *stops]
    trainer = Trainer(network, outputs=outputs, batch_size=batch_size, stops=all_stops, **kwargs)
    return trainer.start(train, valid=valid, test=test)


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _pair_to_dict(network: Network, outputs: str | Sequence[str] | None, data: Any, stream: str) -> Any:
    """An ``(x, y)`` pair as ``{input: x, output: y}`` for a network with one Input and one trained output."""
    is_pair = isinstance(data, tuple) and len(data) == 2 and all(_is_array(part) for part in data)
    if not (is_pair or _is_array(data)):
        return data
    names = network.output_names(outputs)
    inputs = list(network.cost_plan(names).forward.input_names)
    example = "{" + ", ".join([f"{name!r}: x" for name in inputs] + [f"{name!r}: y" for name in names]) + "}"
    if not is_pair or len(inputs) != 1 or len(names) != 1:
        raise TypeError(
            f"fit: {stream} got {'an (x, y) pair' if is_pair else 'a bare array'}; pass a dict of layer name -> array such as "
            f"{example} (bare arrays work as net.fit(x, y) for one Input and one trained output)."
        )
    return {inputs[0]: data[0], names[0]: data[1]}
