"""``hp``: what a search's ``build(hp)`` draws its hyperparameters from, one Optuna trial behind it.

``hp.int`` and ``hp.float`` draw numbers (``log=True``: uniformly on a log
scale), ``hp.choice`` one of any values (abstraction instances included): the
study stores the option's position, ``build`` receives the option itself.
Each name is drawn once per build; :meth:`HyperParameters.shown` gives what
build received, as JSON (options by their ``repr``), for run.json and reports.

Example:
    >>> import optuna
    >>> import mariana.activations as MA
    >>> hp = HyperParameters(optuna.trial.FixedTrial({"size": 32, "act": 1, "lr": 0.01}))
    >>> hp.int("size", 16, 256, log=True), hp.choice("act", [MA.ReLU(), MA.Tanh()]), hp.float("lr", 1e-4, 1e-1, log=True)
    (32, Tanh(), 0.01)
    >>> hp.shown()
    {'size': 32, 'act': 'Tanh()', 'lr': 0.01}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from mariana.checks import is_int


class HyperParameters:
    """The ``hp`` given to ``build(hp)``: ``int``, ``float`` and ``choice`` draw from ``trial`` (an Optuna trial)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        #: name -> the value build received, in drawing order
        self.drawn: dict[str, Any] = {}

    def int(self, name: str, low: int, high: int, log: bool = False) -> int:
        """An int in ``[low, high]`` (both included); ``log=True`` draws uniformly on a log scale (needs ``low >= 1``)."""
        self._check_name(name, "int")
        if not (is_int(low) and is_int(high)) or low > high or (log and low < 1):
            raise ValueError(f"hp.int({name!r}): expected ints low <= high{' with low >= 1 (log=True)' if log else ''}, "
                             f"but received low={low!r}, high={high!r}.")
        return self._keep(name, int(self.trial.suggest_int(name, int(low), int(high), log=bool(log))))

    def float(self, name: str, low: float, high: float, log: bool = False) -> float:
        """A float in ``[low, high]``; ``log=True`` draws uniformly on a log scale (needs ``low > 0``)."""
        self._check_name(name, "float")
        numbers_given = all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
        if not numbers_given or low > high or (log and low <= 0):
            raise ValueError(f"hp.float({name!r}): expected finite numbers low <= high{' with low > 0 (log=True)' if log else ''}, "
                             f"but received low={low!r}, high={high!r}.")
        return self._keep(name, float(self.trial.suggest_float(name, float(low), float(high), log=bool(log))))

    def choice(self, name: str, options: Sequence[Any]) -> Any:
        """One of ``options`` (a list or tuple of any values); the study stores its position."""
        self._check_name(name, "choice")
        if not isinstance(options, (list, tuple)) or not options:
            raise ValueError(f"hp.choice({name!r}): expected a non-empty list or tuple of options, but received {options!r}.")
        position = self.trial.suggest_categorical(name, list(range(len(options))))
        if not is_int(position) or not 0 <= position < len(options):
            raise ValueError(f"hp.choice({name!r}): the study holds position {position!r} for it, but only {len(options)} "
                             f"option(s) were given; the options changed since the study began. Keep them, or start a new study.")
        return self._keep(name, options[position])

    def shown(self) -> dict[str, Any]:
        """What build received, as JSON: numbers, strings, booleans and None as they are, other options by ``repr``."""
        return {name: value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
                for name, value in self.drawn.items()}

    def _check_name(self, name: Any, kind: str) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"hp.{kind}: the name must be a non-empty str, but received {name!r}.")
        if name in self.drawn:
            raise ValueError(f"hp.{kind}({name!r}): this name was already drawn in this build; each hyperparameter needs its "
                             f"own name (reuse the value in a variable to share it between layers).")

    def _keep(self, name: str, value: Any) -> Any:
        self.drawn[name] = value
        return value
