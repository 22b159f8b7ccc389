"""Training: the Trainer, dataset mappers, stop criteria, recorders and checkpoints.

Example:
    >>> import numpy as np, mariana as mar
    >>> from mariana.models import build_mlp
    >>> from mariana.training import DatasetMapper, Trainer, recorders, stops
    >>> mar.seed(0)
    >>> net = build_mlp((3,), 2, hidden=4)
    >>> x, y = np.eye(3, dtype="float32")[[0, 1, 2, 0]], np.array([0, 1, 1, 0])
    >>> history = net.fit(DatasetMapper(inp=x, out=y), epochs=2, batch_size=2, recorders=[])
    >>> [entry["epoch"] for entry in history]
    [1, 2]
"""

from mariana.training import recorders, stops
from mariana.training.data.mappers import DatasetMapper
from mariana.training.data.samplers import ClassBalanced, Sampler, Sequential, Shuffled
from mariana.training.fit import fit
from mariana.training.history import History
from mariana.training.run.resume import ResumeWarning
from mariana.training.storage.checkpoint import CheckpointWarning
from mariana.training.trainer import Trainer

__all__ = [
    "Trainer", "DatasetMapper", "stops", "recorders", "fit",
    "Sampler", "Sequential", "Shuffled", "ClassBalanced", "ResumeWarning", "CheckpointWarning", "History",
]
