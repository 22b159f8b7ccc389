"""``study.to_html(path)``: the study as JSON for :mod:`mariana.report.study`, with Optuna's parameter importances.

Importances are Optuna's fANOVA (seeded, so a report is reproducible) over
the completed trials; with fewer than two completed trials, or
hyperparameters that never varied, the page says why there are none.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from mariana.report.study import write_study_html
from mariana.tuning.records import trial_record
from mariana.tuning.requirement import import_optuna

if TYPE_CHECKING:
    from mariana.tuning.study import Study


def write_study_report(study: Study, path: str | os.PathLike) -> None:
    """Write ``study``'s page to ``path``: its trials, importances and the best network's report."""
    data = study_data(study)
    network = study.best_network() if data["best"] is not None else None
    write_study_html(path, data, network)


def study_data(study: Study) -> dict:
    """The study as the page's JSON (see :mod:`mariana.report.study`)."""
    optuna = import_optuna()
    trials = study.optuna.get_trials(deepcopy=False)
    settings = study.settings
    objective = "/".join(settings.get("objective", ["objective"]))
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if completed else None
    importances, note = importances_of(optuna, study.optuna, completed)
    return {
        "name": study.name, "direction": study.optuna.direction.name.lower(), "objective": objective,
        "trials": [trial_row(t) for t in trials],
        "best": None if best is None else {"number": best.number, "value": best.value},
        "importances": importances, "importance_note": note,
    }


def trial_row(trial: Any) -> dict:
    """One trial as the table and the charts show it."""
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete and trial.datetime_start else None
    steps = sorted(trial.intermediate_values)
    record = trial_record(trial)
    return {
        "number": trial.number, "state": trial.state.name, "value": finite(trial.value),
        "params": record.get("params", trial.params), "epochs": record.get("epochs"), "seconds": seconds,
        "stop_reason": record.get("stop_reason"), "continues": record.get("continues"),
        "steps": steps, "values": [finite(trial.intermediate_values[step]) for step in steps],
    }


def importances_of(optuna: Any, study: Any, completed: list) -> tuple[dict[str, float], str]:
    """Optuna's fANOVA importances over the completed trials, and the sentence the page shows under them."""
    if len(completed) < 2:
        return {}, f"Importances need two completed trials or more; the study has {len(completed)}."
    try:
        found = optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError) as error:  # e.g. no hyperparameter varied over the completed trials
        return {}, f"Optuna could not compute importances: {error}"
    return ({name: float(value) for name, value in found.items()},
            f"fANOVA importances (Optuna) over {len(completed)} completed trials: each hyperparameter's share of the objective's variance.")


def finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
