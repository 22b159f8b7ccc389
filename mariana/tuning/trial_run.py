"""One trial of a search: build the network from the trial's hyperparameters, train it in its run directory, save it.

Each trial trains with a :class:`~mariana.training.Trainer` in
``run_root/trial-NNNN`` with ``resume="auto"``: a retry of a killed worker's
trial (same hyperparameters, same seed) continues that directory from its last
checkpoint. The trial's number is recorded in run.json and the generation log
(the Trainer's ``hyperparameters``: ``study``, ``trial`` and the values build
received) and the trained network is saved as ``network.mar`` in the run
directory. Its objective value is measured on the saved network, after
training, so ``study.best_network()`` reproduces ``study.best_value``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mariana.network import Network
from mariana.seeding import seed as seed_everything
from mariana.training import DatasetMapper, Trainer, stops
from mariana.tuning.claims import ClaimLock
from mariana.tuning.pruning import PruneTrial, ended_by_pruning
from mariana.tuning.records import RECORD
from mariana.tuning.space import HyperParameters
from mariana.tuning.storage import retried_from

NETWORK_FILE = "network.mar"


class Surplus(Exception):
    """A worker claimed a trial after the study was already full (two workers at the same instant): the trial is not trained."""


@dataclass
class TrialRun:
    """Everything a trial needs; called by Optuna with the trial (``study.optimize``)."""

    optuna: Any
    study: Any
    build: Callable[[HyperParameters], Any]
    streams: dict[str, DatasetMapper]
    objective: tuple[str, str, str]
    trials: int
    epochs: int
    batch_size: int
    run_root: Path
    pruner: str
    seed: int
    stops: Sequence[stops.Stop] = ()
    options: dict[str, Any] = field(default_factory=dict)
    claim: ClaimLock = field(default_factory=lambda: ClaimLock(None))

    def __call__(self, trial: Any) -> float:
        others = self.study.get_trials(deepcopy=False)  # read once: both checks below look at them
        try:
            self.check_room(trial, others)
        finally:
            self.claim.release()  # this trial is running now: the other workers count it
        first = retried_from(self.optuna, others, trial.number)
        hp = HyperParameters(trial)
        seed_everything(self.seed + first)  # the same weights for a retry; another draw for each trial
        net = self.build(hp)
        if not isinstance(net, Network):
            raise TypeError(f"search: build(hp) must return a mariana Network, but returned {type(net).__name__}.")
        run_dir = self.run_root / f"trial-{first:04d}"
        record = {"params": hp.shown(), "run_dir": str(run_dir), "network": str(run_dir / NETWORK_FILE), "continues": first}
        trial.set_user_attr(RECORD, record)  # one attribute, one write (a commit each on a database storage)
        pruning = PruneTrial(*self.objective, pruner=self.pruner, trial=trial)
        trainer = Trainer(net, batch_size=self.batch_size, stops=[stops.EpochWall(self.epochs), *copy.deepcopy(list(self.stops)), pruning],
                          run_dir=run_dir, resume="auto", seed=self.seed + first,
                          hyperparameters={"study": self.study.study_name, "trial": first, **hp.shown()},
                          notes=f"Optuna study {self.study.study_name!r}, trial {trial.number}", **copy.deepcopy(self.options))
        history = trainer.start(**self.streams)
        pruning.report(history)  # a continued run that had already ended reported nothing yet
        pruned = ended_by_pruning(trainer.stop_reason)  # said by the stop, or by the run's record when it had ended already
        trial.set_user_attr(RECORD, {**record, "epochs": len(history), "stop_reason": trainer.stop_reason})
        value = None if pruned else self.measure(net)
        stream, output, metric = self.objective
        net.note(f"Optuna study {self.study.study_name!r}, trial {trial.number}" + (f" (continuing trial {first})" if first != trial.number else "")
                 + (f": {trainer.stop_reason}" if pruned else f": {stream}/{output}/{metric} = {value:.6g}"))
        net.save(run_dir / NETWORK_FILE)
        if pruned:
            raise self.optuna.TrialPruned(trainer.stop_reason)
        return value

    def check_room(self, trial: Any, others: list) -> None:
        """``Surplus`` when ``trials`` trials numbered before this one are finished or running: the study is full."""
        states = self.optuna.trial.TrialState
        ahead = [t for t in others if t.number < trial.number and t.state in (states.COMPLETE, states.PRUNED, states.RUNNING)]
        if len(ahead) >= self.trials:
            trial.set_user_attr(RECORD, {"surplus": True})
            raise Surplus(f"trial {trial.number} was not trained: the study already holds {self.trials} trial(s) finished or running.")

    def measure(self, net: Network) -> float:
        """The objective on the trained network (what its saved copy gives), from the objective stream's data."""
        stream, output, metric = self.objective
        mapper = self.streams[stream]
        batch = {key: mapper.numpy(key) for key in mapper}
        if metric == "accuracy":
            return float(net.accuracy(output, batch_size=1024, **batch))
        return float(net.test(output, batch_size=1024, **batch)[output])
