"""``net.fit(...)``: the common case of training, in one call, shaped as Keras's ``model.fit``.

Example:
    >>> import numpy as np, mariana as mar
    >>> from mariana.models import build_mlp
    >>> mar.seed(0)
    >>> net = build_mlp((3,), 2, hidden=4)
    >>> x, y = np.eye(3, dtype="float32")[[0, 1, 2, 0]], np.array([0, 1, 1, 0])
    >>> [entry["epoch"] for entry in fit(net, {"inp": x, "out": y}, epochs=2, batch_size=2, recorders=[])]
    [1, 2]
    >>> history = fit(net, x, y, valid=(x, y), epochs=1, batch_size=2, verbose=0)
    >>> sorted(history[-1])
    ['epoch', 'time', 'train', 'valid']
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Sequence
from typing import Any

from mariana.network import Network
from mariana.training.callbacks.hooks import checked_list
from mariana.training.history import History
from mariana.training.recorders import ProgressBar, Recorder
from mariana.training.stops import EpochWall, NaNGuard, Stop
from mariana.training.trainer import Trainer

#: fit's own keywords (the Trainer's keywords are taken too).
FIT_KEYWORDS = ("valid", "validation_data", "validation_split", "epochs", "batch_size", "test", "outputs", "stops",
                "callbacks", "class_weight", "verbose")


def fit(network: Network, x: Any, y: Any = None, *, valid: Any = None, validation_data: Any = None,
        validation_split: float | None = None, epochs: int = 1, batch_size: int = 64, test: Any = None,
        outputs: str | Sequence[str] | None = None, stops: Sequence[Stop] = (), callbacks: Sequence[Any] | None = None,
        class_weight: dict[int, float] | None = None, verbose: int = 1, **kwargs: Any) -> History:
    """``net.fit(x, y, valid=(xv, yv), epochs=..., batch_size=...)``: a Trainer with EpochWall(epochs) and a NaNGuard.

    ``x`` is a DatasetMapper or a dict of layer name -> array, or, for a
    network with one Input and one trained output, an array of inputs with
    ``y`` its targets (as in Keras); ``valid``/``test`` take the same forms, or
    ``(x, y)`` pairs. ``validation_data`` is another name for ``valid``;
    ``validation_split=f`` keeps the last fraction ``f`` of the ``x``/``y``
    arrays for validation, as Keras does (before any shuffling).
    ``callbacks``: recorders and stops, in one list. ``class_weight={class:
    weight}`` weighs the trained classifier's cost for this call (classes not
    named weigh 1). Other keywords go to :class:`~mariana.training.Trainer`.
    Returns the history (its ``stop_reason`` says why the run ended).
    ``verbose``: 0 silent, 1 a live bar (one line per epoch when stdout is not
    a terminal), 2 one line per epoch; ``recorders=[...]`` replaces the progress bar.
    """
    _refuse_unknown(kwargs)
    valid = _one_valid(valid, validation_data)
    if _is_array(x):
        train = (x, y)
    else:
        train, valid = x, _legacy_valid(y, valid)
    if validation_split is not None:
        train, valid = _split(train, valid, validation_split)
    train, valid, test = (_pair_to_dict(network, outputs, data, name) for name, data in (("train", train), ("valid", valid), ("test", test)))
    extra_recorders, extra_stops = _split_callbacks(callbacks)
    recorders = kwargs.pop("recorders", None)
    recorders = [ProgressBar(verbose=verbose)] if recorders is None else checked_list(recorders, Recorder, "recorders", "mariana.training.recorders")
    all_stops = [EpochWall(epochs), NaNGuard(), *checked_list(stops, Stop, "stops", "mariana.training.stops"), *extra_stops]
    trainer = Trainer(network, outputs=outputs, batch_size=batch_size, stops=all_stops, recorders=[*recorders, *extra_recorders], **kwargs)
    if class_weight is None:
        return trainer.start(train, valid=valid, test=test)
    layer = network[_weighted_output(trainer.outputs)]
    original = layer.cost
    layer.cost = _weighted_cost(layer, class_weight)
    try:
        return trainer.start(train, valid=valid, test=test)
    finally:
        layer.cost = original  # as in Keras, the class weights hold for this call only


def _refuse_unknown(kwargs: dict) -> None:
    """One TypeError naming ``fit`` and the nearest keyword, for a keyword neither fit nor the Trainer takes."""
    trainer_keywords = [name for name in inspect.signature(Trainer.__init__).parameters if name not in ("self", "net")]
    known = [*FIT_KEYWORDS, *trainer_keywords]
    unknown = [key for key in kwargs if key not in known]
    if unknown:
        key = unknown[0]
        near = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f"; it takes {sorted(set(known))}."
        raise TypeError(f"fit() got an unexpected keyword argument {key!r}{hint}")


def _one_valid(valid: Any, validation_data: Any) -> Any:
    if valid is not None and validation_data is not None:
        raise TypeError("fit: pass the validation data once, as valid=... or as validation_data=... (its Keras name), not both.")
    return valid if valid is not None else validation_data


def _legacy_valid(y: Any, valid: Any) -> Any:
    """``net.fit(train, valid)``: a second positional argument after a dict or mapper is the valid stream."""
    if y is None:
        return valid
    if _is_array(y):
        raise TypeError("fit: targets y go with an array x (net.fit(x, y)); with a dict or DatasetMapper, put the targets in it "
                        "under the output's name.")
    if valid is not None:
        raise TypeError("fit: the valid stream was given twice (second positional argument and valid=...); pass it once.")
    return y


def _split(train: Any, valid: Any, fraction: Any) -> tuple[Any, Any]:
    """Keras's ``validation_split``: the last ``fraction`` of the train arrays becomes the valid stream."""
    if not isinstance(fraction, numbers.Real) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise ValueError(f"fit: validation_split must be a float in (0, 1), e.g. 0.2, but received {fraction!r}.")
    if valid is not None:
        raise ValueError("fit: pass either valid=... (or validation_data=...) or validation_split=..., not both.")
    if not (isinstance(train, tuple) and all(_is_array(part) for part in train)):
        raise TypeError(f"fit: validation_split splits arrays (net.fit(x, y, validation_split=0.2)), but x is a {type(train).__name__}; "
                        f"split the data yourself and pass valid=...")
    x, y = train
    if len(x) != len(y):
        raise ValueError(f"fit: x has {len(x)} samples but y has {len(y)}; they must match.")
    split_at = int(math.floor(len(x) * (1.0 - float(fraction))))
    if split_at < 1 or split_at >= len(x):
        raise ValueError(f"fit: validation_split={fraction!r} of {len(x)} samples leaves an empty train or valid stream.")
    return (x[:split_at], y[:split_at]), (x[split_at:], y[split_at:])


def _split_callbacks(callbacks: Any) -> tuple[list[Recorder], list[Stop]]:
    """Keras's ``callbacks=[...]``: the recorders and the stops it holds."""
    if callbacks is None:
        return [], []
    if isinstance(callbacks, (Recorder, Stop)) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"fit: callbacks expects a list of recorders and stops, e.g. callbacks=[CSV('log.csv'), EarlyStopping(...)], "
                        f"but received {callbacks!r}; pass a list.")
    wrong = [item for item in callbacks if not isinstance(item, (Recorder, Stop))]
    if wrong:
        raise TypeError(f"fit: callbacks takes mariana.training.recorders and mariana.training.stops objects, but received {wrong[0]!r}.")
    return [item for item in callbacks if isinstance(item, Recorder)], [item for item in callbacks if isinstance(item, Stop)]


def _weighted_output(outputs: list[str]) -> str:
    if len(outputs) != 1:
        raise ValueError(f"fit: class_weight weighs one output's classes, but the run trains {outputs}; pass outputs='name', or set "
                         f"class_weights on each output's cost.")
    return outputs[0]


def _weighted_cost(layer: Any, class_weight: Any) -> Any:
    """A copy of ``layer``'s cost with ``class_weight``'s weights (1 for classes it does not name)."""
    cost = layer.cost
    if not getattr(layer, "is_classifier", False) or "class_weights" not in getattr(cost, "hyperparameters", ()):
        raise ValueError(f"fit: class_weight weighs the classes of a classifier, but {layer.describe()} with {type(cost).__name__} is not one.")
    if not isinstance(class_weight, dict):
        raise TypeError(f"fit: class_weight expects a dict of class id -> weight, e.g. {{0: 1.0, 1: 5.0}}, but received {class_weight!r}.")
    if cost.class_weights is not None:
        raise ValueError(f"fit: {layer.describe()}'s cost already has class_weights {list(cost.class_weights)}; pass class_weight "
                         f"to fit or set them on the cost, not both.")
    weights = [1.0] * layer.size
    for key, weight in class_weight.items():
        if not isinstance(key, numbers.Integral) or isinstance(key, bool) or not 0 <= key < layer.size:
            raise ValueError(f"fit: class_weight names class {key!r}, but {layer.describe()} has {layer.size} classes, "
                             f"ids 0 to {layer.size - 1}.")
        weights[int(key)] = weight
    return type(cost).from_config({**cost.get_config(), "class_weights": weights})


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _pair_to_dict(network: Network, outputs: str | Sequence[str] | None, data: Any, stream: str) -> Any:
    """An ``(x, y)`` pair as ``{input: x, output: y}`` for a network with one Input and one trained output."""
    is_pair = isinstance(data, tuple) and len(data) == 2 and all(_is_array(part) for part in data)
    if isinstance(data, tuple) and len(data) == 2 and _is_array(data[0]) and data[1] is None:
        data = data[0]  # net.fit(x) without targets
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
