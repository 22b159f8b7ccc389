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
from mariana.training.stops import EpochWall, NaNGuard, Stop
from mariana.training.trainer import Trainer


def fit(network: Network, train: Any, valid: Any = None, epochs: int = 1, batch_size: int = 64, *,
        test: Any = None, outputs: str | Sequence[str] | None = None, stops: Sequence[Stop] = (), **kwargs: Any) -> list[dict]:
    """``net.fit(train, valid=..., epochs=..., batch_size=...)``: a Trainer with EpochWall(epochs) and a NaNGuard.

    ``train``/``valid``/``test`` are DatasetMappers or dicts of arrays; other
    keywords go to :class:`~mariana.training.Trainer`. Returns the history.
    """
    all_stops = [EpochWall(epochs), NaNGuard(), *stops]
    trainer = Trainer(network, outputs=outputs, batch_size=batch_size, stops=all_stops, **kwargs)
    return trainer.start(train, valid=valid, test=test)
