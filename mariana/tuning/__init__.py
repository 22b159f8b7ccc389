"""Hyperparameter search on Optuna: ``search(build, train, valid, trials=, epochs=, objective=...)``.

``build(hp)`` returns a Network whose hyperparameters come from ``hp.int``,
``hp.float`` and ``hp.choice``; every trial trains with a Trainer in its own
run directory, reports its objective each epoch to a pruner, and saves its
network, so ``study.best_network()`` loads the best one. Several processes
(or machines) running the same search on one ``storage`` share the trials.
Optuna is an optional dependency: ``pip install "mariana[tune]"``.

Example:
    >>> import mariana.tuning as MT
    >>> sorted(name for name in MT.__all__)
    ['HyperParameters', 'PruneTrial', 'Study', 'search']
"""

from mariana.tuning.pruning import PruneTrial
from mariana.tuning.search import search
from mariana.tuning.space import HyperParameters
from mariana.tuning.study import Study

__all__ = ["search", "Study", "HyperParameters", "PruneTrial"]
