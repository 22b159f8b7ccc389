"""``Study``: what ``mariana.tuning.search`` returns, a thin face over the Optuna study it ran.

``best_value`` and ``best_trial`` are Optuna's; ``best_params`` are the
values ``build`` received in the best trial (options themselves, not their
positions: Optuna's own ``study.optuna.best_params`` has the positions);
``best_network()`` loads the best trial's saved ``.mar`` (no code runs).
``study.optuna`` is the Optuna study itself, for everything else
(``trials_dataframe()``, visualizations, ...).

Example:
    >>> import optuna
    >>> study = Study(optuna.create_study(), build=lambda hp: None)
    >>> study.finished_trials
    []
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mariana.persistence import load
from mariana.tuning.records import SETTINGS, trial_record
from mariana.tuning.requirement import import_optuna
from mariana.tuning.space import HyperParameters

if TYPE_CHECKING:
    from mariana.network import Network

class Study:
    """The result of a search: the Optuna study, and how its trials were built (``build``)."""

    def __init__(self, study: Any, build: Callable[[HyperParameters], Any]) -> None:
        self.optuna = study
        self.build = build

    @property
    def name(self) -> str:
        return self.optuna.study_name

    @property
    def settings(self) -> dict:
        """The search's settings as the study records them: objective, direction, trials, epochs, run_root."""
        return dict(self.optuna.user_attrs.get(SETTINGS, {}))

    @property
    def finished_trials(self) -> list:
        """The trials that ran to their end: completed or pruned (Optuna ``FrozenTrial``s), by number."""
        states = import_optuna().trial.TrialState
        return self.optuna.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))

    @property
    def best_trial(self) -> Any:
        """The completed trial with the best objective (Optuna's ``FrozenTrial``); ValueError while none completed."""
        return self.optuna.best_trial

    @property
    def best_value(self) -> float:
        """The best objective value of a completed trial."""
        return self.optuna.best_value

    @property
    def best_params(self) -> dict[str, Any]:
        """The values ``build`` received in the best trial: numbers, and the chosen options themselves."""
        hp = HyperParameters(import_optuna().trial.FixedTrial(self.best_trial.params, self.best_trial.number))
        self.build(hp)  # replayed with the trial's values: hp records what each draw returned
        return hp.drawn

    def network_path(self, trial: Any = None) -> str:
        """Where ``trial``'s (default: the best trial's) network was saved."""
        trial = self.best_trial if trial is None else trial
        path = trial_record(trial).get("network")
        if not isinstance(path, str):
            raise ValueError(f"Trial {trial.number} of study {self.name!r} records no saved network; it was not run by mariana.tuning.search.")
        return path

    def best_network(self) -> Network:
        """The best trial's trained network, loaded from its ``.mar`` file (no code from the file runs)."""
        path = self.network_path()
        if not os.path.isfile(path):
            raise FileNotFoundError(f"The best trial ({self.best_trial.number}) of study {self.name!r} saved its network to {path!r}, "
                                    f"which does not exist here; run best_network() where run_root is reachable.")
        return load(path)

    def to_html(self, path: str | os.PathLike) -> None:
        """Write the study's report: trials, objective over trials, importances, the best network's report (one offline file)."""
        from mariana.tuning.report import write_study_report

        write_study_report(self, path)

    def __repr__(self) -> str:
        finished = len(self.finished_trials)
        best = f", best value {self.best_value:.6g} (trial {self.best_trial.number})" if any(
            t.state.name == "COMPLETE" for t in self.finished_trials) else ""
        return f"Study({self.name!r}: {finished} finished trial(s){best})"
