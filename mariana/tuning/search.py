"""``search``: a hyperparameter search on Optuna, each trial a Mariana training run.

Example:
    >>> import numpy as np, mariana.layers as ML, mariana.scenari as MS, mariana.tuning as MT, tempfile
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"); y = (x[:, 0] > 0).astype("int64")
    >>> def build(hp):
    ...     return (ML.Input(4, name="inp") > ML.Hidden(hp.int("size", 2, 8), name="hid")
    ...             > ML.SoftmaxClassifier(2, learning_scenari=[MS.Adam(lr=hp.float("lr", 1e-3, 1e-1, log=True))], name="out"))
    >>> study = MT.search(build, {"inp": x, "out": y}, {"inp": x, "out": y}, trials=2, epochs=2, batch_size=16,
    ...                   objective=("valid", "out", "accuracy"), run_root=tempfile.mkdtemp(), verbose=False)
    >>> len(study.finished_trials), sorted(study.best_params)
    (2, ['lr', 'size'])
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mariana.checks import int_at_least, seed_or_none
from mariana.training import DatasetMapper, Trainer
from mariana.training.stops import Stop
from mariana.tuning.claims import ClaimLock
from mariana.tuning.pruning import METRICS, STREAMS, pruner_name
from mariana.tuning.records import SETTINGS
from mariana.tuning.requirement import import_optuna
from mariana.tuning.space import HyperParameters
from mariana.tuning.storage import fail_stale_trials, has_heartbeat, open_storage
from mariana.tuning.study import Study
from mariana.tuning.trial_run import Surplus, TrialRun

#: Trainer arguments the search sets itself for every trial.
SET_BY_SEARCH = ("net", "self", "stops", "run_dir", "resume", "seed", "hyperparameters", "notes", "batch_size")


def search(build: Callable[[HyperParameters], Any], train: Any, valid: Any = None, *, trials: int, epochs: int, batch_size: int = 64,
           objective: Sequence[str], storage: Any = None, study_name: str | None = None, run_root: str | Path | None = None,
           pruner: Any = "median", sampler: Any = None, test: Any = None, stops: Sequence[Stop] = (), seed: int = 0,
           heartbeat: int | None = 60, verbose: bool = True, **trainer_options: Any) -> Study:
    """Search hyperparameters until the study holds ``trials`` finished (completed or pruned) trials.

    ``build(hp)`` returns a Network drawn with ``hp.int``/``hp.float``/``hp.choice``.
    ``objective=(stream, output, metric)``: accuracy is maximized, loss minimized.
    Every trial trains ``epochs`` epochs (plus ``stops``) with a Trainer in
    ``run_root/trial-NNNN`` (default ``runs/<study name>``); other keywords
    (``precision``, ``accumulate``, ``recorders``, ...) go to each Trainer.
    ``pruner``: "median", None (keep every trial) or an Optuna pruner;
    ``sampler``: an Optuna sampler (default: Optuna's TPE). Processes running
    the same search on one ``storage`` share its trials; see
    :mod:`mariana.tuning.storage` for killed workers. Trial ``n`` is seeded
    ``seed + n``. ``verbose``: Optuna's one line per trial (it sets Optuna's logging verbosity).
    """
    optuna = import_optuna()
    if not callable(build):
        raise TypeError(f"search: build must be a function build(hp) -> Network, but received {type(build).__name__}.")
    trials, epochs = int_at_least(trials, 1, "search: trials"), int_at_least(epochs, 1, "search: epochs")
    int_at_least(batch_size, 1, "search: batch_size")
    seed = seed_or_none(seed, "search: seed") or 0
    objective = checked_objective(objective)
    streams = {name: as_mapper(data, name) for name, data in (("train", train), ("valid", valid), ("test", test)) if data is not None}
    if objective[0] not in streams:
        raise ValueError(f"search: the objective reads the {objective[0]} stream, but no {objective[0]} data was given.")
    checked_trainer_options(trainer_options)
    trainer_options.setdefault("recorders", [])
    pruner = checked_pruner(optuna, pruner)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    storage_url, storage = storage, open_storage(optuna, storage, heartbeat)
    direction = "maximize" if objective[2] == "accuracy" else "minimize"
    study = optuna.create_study(storage=storage, study_name=study_name, direction=direction, pruner=pruner, sampler=sampler, load_if_exists=True)
    if study.direction.name.lower() != direction:  # a study made before, outside the search, keeps its own direction
        raise ValueError(f"search: study {study.study_name!r} {study.direction.name.lower()}s its objective, but this search's objective "
                         f"{'/'.join(objective)} is to {direction}; use another study_name.")
    run_root = Path(run_root) if run_root is not None else Path("runs") / study.study_name
    check_run_root(run_root, study.study_name)
    record_settings(study, {"objective": list(objective), "direction": direction, "epochs": epochs, "batch_size": batch_size,
                            "trials": trials, "run_root": str(run_root)})
    claim = ClaimLock.for_storage(storage_url)
    run = TrialRun(optuna, study, build, streams, objective, trials, epochs, batch_size, run_root, pruner_name(pruner), seed,
                   stops, trainer_options, claim)
    work(optuna, study, storage, run, trials)
    return Study(study, build)


def work(optuna: Any, study: Any, storage: Any, run: TrialRun, trials: int, poll: float = 1.0) -> None:
    """Run trials until ``trials`` are finished; while the rest are running elsewhere, wait for them (a dead worker's are retried)."""
    states = optuna.trial.TrialState
    while True:
        fail_stale_trials(optuna, study, storage)
        run.claim.acquire()  # released by the trial once it is running (see mariana.tuning.claims)
        try:
            counts = {state: 0 for state in (states.COMPLETE, states.PRUNED, states.RUNNING)}
            for trial in study.get_trials(deepcopy=False, states=tuple(counts)):
                counts[trial.state] += 1
            finished = counts[states.COMPLETE] + counts[states.PRUNED]
            if finished >= trials or (finished + counts[states.RUNNING] >= trials and not has_heartbeat(storage)):
                return
            if finished + counts[states.RUNNING] < trials:
                study.optimize(run, n_trials=1, catch=(Surplus,))
                continue
        finally:
            run.claim.release()
        time.sleep(poll)  # the last trials run in other workers: the study is complete when they end


def check_run_root(run_root: Path, study_name: str) -> None:
    """``ValueError`` when ``run_root`` holds the trials of another study (each trial's run.json names its study)."""
    for run_file in sorted(run_root.glob("trial-*/run.json")):
        try:
            other = json.loads(run_file.read_text())["trainer"]["hyperparameters"]["study"]
        except (OSError, ValueError, KeyError, TypeError):
            other = None
        if other != study_name:
            raise ValueError(f"search: run_root {str(run_root)!r} holds the trials of another study ({run_file.parent.name} belongs to "
                             f"{other!r}, not {study_name!r}). Give each study its own run_root (an in-memory study is a new one "
                             f"every time: name a storage to continue one), or remove the old trials.")


def checked_objective(objective: Any) -> tuple[str, str, str]:
    """``(stream, output, metric)`` checked: a stream of train/valid/test, an output name, loss or accuracy."""
    if not isinstance(objective, (tuple, list)) or len(objective) != 3 or not all(isinstance(part, str) for part in objective):
        raise ValueError(f"search: objective must be (stream, output, metric), e.g. ('valid', 'out', 'accuracy'), but received {objective!r}.")
    stream, output, metric = objective
    if stream not in STREAMS or metric not in METRICS:
        raise ValueError(f"search: objective {tuple(objective)!r} must name a stream of {STREAMS} and a metric of {METRICS}.")
    return stream, output, metric


def as_mapper(data: Any, stream: str) -> DatasetMapper:
    """A stream's data as one DatasetMapper for every trial (so it is hashed once)."""
    if isinstance(data, DatasetMapper):
        return data
    if isinstance(data, Mapping):
        return DatasetMapper(**data)
    raise TypeError(f"search: {stream} must be a DatasetMapper or a dict of layer name -> array, but received {type(data).__name__}.")


def checked_trainer_options(options: dict[str, Any]) -> None:
    """``TypeError`` for a keyword that is no Trainer argument, or one the search sets itself."""
    accepted = set(inspect.signature(Trainer.__init__).parameters) - set(SET_BY_SEARCH)
    for name in options:
        if name in SET_BY_SEARCH:
            raise TypeError(f"search: {name}= is set by the search for each trial; it cannot be passed.")
        if name not in accepted:
            raise TypeError(f"search got an unexpected keyword {name!r}; other keywords go to each trial's Trainer, "
                            f"which accepts {sorted(accepted)}.")


def checked_pruner(optuna: Any, pruner: Any) -> Any:
    """The Optuna pruner for ``pruner``: "median", None (none) or an Optuna pruner."""
    if pruner == "median":
        return optuna.pruners.MedianPruner()
    if pruner is None:
        return optuna.pruners.NopPruner()
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    raise ValueError(f"search: pruner must be 'median', None or an Optuna pruner (optuna.pruners.*), but received {pruner!r}.")


def record_settings(study: Any, settings: dict) -> None:
    """Record the search's settings in the study, or check them against those another worker recorded."""
    recorded = study.user_attrs.get(SETTINGS)
    if recorded is None:
        study.set_user_attr(SETTINGS, settings)
        return
    differ = [f"{key} (the study has {recorded.get(key)!r}, this search {settings[key]!r})"
              for key in ("objective", "direction", "epochs", "batch_size") if recorded.get(key) != settings[key]]
    if differ:
        raise ValueError(f"search: study {study.study_name!r} was started with other settings: {'; '.join(differ)}. "
                         f"Use the same settings to join it, or another study_name.")
    if recorded.get("trials") != settings["trials"]:
        study.set_user_attr(SETTINGS, {**recorded, "trials": settings["trials"]})  # trials is the study's total: a later run may raise it
