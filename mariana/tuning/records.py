"""What the search writes into Optuna's storage: the study's settings and each trial's record (user attributes).

Example:
    >>> import optuna
    >>> trial = optuna.trial.create_trial(value=0.9, user_attrs={RECORD: {"network": "runs/s/trial-0000/network.mar"}})
    >>> trial_record(trial)["network"]
    'runs/s/trial-0000/network.mar'
"""

from __future__ import annotations

from typing import Any

#: The study's user attribute that holds the search's settings (checked when another worker joins).
SETTINGS = "mariana.search"
#: The trial's user attribute that holds its run: params (as build received them), run_dir, network (the .mar path),
#: continues (the trial whose run directory it uses), and once trained epochs and stop_reason.
RECORD = "mariana"


def trial_record(trial: Any) -> dict:
    """What the search recorded of ``trial`` (its :data:`RECORD` user attribute; empty for a trial it did not run)."""
    record = trial.user_attrs.get(RECORD)
    return record if isinstance(record, dict) else {}
