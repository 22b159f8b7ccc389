"""The run's settings: the Trainer's arguments, checked once and frozen; run.json, ``describe`` and the resume
comparison are all made from their fields.

Each field says, in its metadata, where it goes:

* ``described``: in ``trainer.describe()`` (the generation log, file headers);
* ``recorded``: in run.json's ``"trainer"`` section, so a resume rebuilds the same Trainer;
* ``may_change``: a rerun with ``resume="auto"`` may change it, because it changes how the run is
  watched, kept or placed, not what it computes.

A new Trainer option is one field here, its default the Trainer's (and its check in :meth:`RunSettings.checked`),
plus the keyword in the Trainer's signature.

Example:
    >>> import mariana.layers as ML
    >>> from mariana.training import stops
    >>> net = ML.Input(2, name="inp") > ML.SoftmaxClassifier(2, name="out")
    >>> settings = RunSettings.checked(net, batch_size=8, stops=[stops.EpochWall(1)], recorders=[])
    >>> settings.batch_size, settings.outputs, settings.describe({})["stops"]
    (8, ('out',), [{'class': 'EpochWall', 'config': {'epochs': 1}}])
    >>> sorted(RunSettings.deciding({"batch_size": 8, "notes": "first try"}))
    ['batch_size']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mariana.checks import int_at_least, one_of, seed_or_none
from mariana.network import Network
from mariana.registry import serialize
from mariana.training.callbacks.best import checked_best
from mariana.training.callbacks.hooks import checked_list
from mariana.training.loop.accumulation import checked_accumulate
from mariana.training.loop.averaging import check_decay
from mariana.training.loop.hardware import compile_mode
from mariana.training.precision.policy import Precision
from mariana.training.recorders import ProgressBar, Recorder
from mariana.training.stops import Stop

ORDERS = ("simultaneous", "sequential", "random")


def _field(*places: str, default: Any = None) -> Any:
    return field(default=default, metadata={place: True for place in places})


@dataclass(frozen=True)
class RunSettings:
    """The Trainer's settings (see the module docstring); build them with :meth:`checked`."""

    outputs: tuple[str, ...] = _field("described", "recorded")
    batch_size: int = _field("described", "recorded", default=64)
    accumulate: int = _field("described", "recorded", default=1)
    order: str = _field("described", "recorded", default="simultaneous")
    seed: int | None = _field("described", "recorded")
    hyperparameters: dict = _field("described", "recorded")
    notes: str | None = _field("described", "recorded", "may_change")
    stops: tuple[Stop, ...] = _field("described", "recorded")
    run_dir: Path | None = _field("described")
    recorders: tuple[Recorder, ...] = _field("recorded", "may_change")
    save_if_murdered: bool = _field("recorded", "may_change", default=True)
    eval_batch_size: int = _field("recorded", default=1024)
    best: tuple[str, str, str] | None = _field("recorded")
    checkpoint_every: int = _field("recorded", "may_change", default=1)
    keep_checkpoints: int = _field("recorded", "may_change", default=3)
    ema: float | None = _field("recorded")
    device: Any = _field("recorded", "may_change", default="auto")
    precision: str = _field("recorded", default="32")
    compile: bool | str = _field("recorded", default=False)
    resume: Any = _field("recorded", "may_change", default=False)
    strategy: Any = _field("recorded", "may_change", default="auto")

    @classmethod
    def checked(cls, net: Network, **arguments: Any) -> RunSettings:
        """The Trainer's keyword arguments checked (a missing one takes its field's default, which is the Trainer's): a
        ``ValueError``/``TypeError`` naming the first wrong one."""
        defaults = {item.name: item.default for item in fields(cls)}
        unknown = sorted(set(arguments) - set(defaults))
        if unknown:
            raise TypeError(f"Trainer got unexpected keyword argument(s) {unknown}; it takes {sorted(defaults)}.")
        given = {**defaults, **arguments}
        names = tuple(net.output_names(given["outputs"]))
        order = one_of(given["order"], ORDERS, "Trainer: order")
        recorders = checked_list(given["recorders"] if given["recorders"] is not None else [ProgressBar()], Recorder, "recorders",
                                 "mariana.training.recorders")
        for recorder in recorders:
            recorder.check()  # a missing package is found before run.json, the data copy and checkpoints are written
        compile_mode(given["compile"])
        if given["resume"] == "auto" and given["run_dir"] is None:
            raise ValueError("Trainer: resume='auto' continues the run kept in run_dir, but no run_dir was given, so this job "
                             "would not be restartable; pass run_dir=... (or drop resume='auto').")
        return cls(**{
            **given, "outputs": names, "order": order, "recorders": tuple(recorders),
            "batch_size": int_at_least(given["batch_size"], 1, "Trainer: batch_size"),
            "accumulate": checked_accumulate(given["accumulate"], order, list(names)),
            "seed": seed_or_none(given["seed"], "Trainer: seed"), "hyperparameters": dict(given["hyperparameters"] or {}),
            "stops": tuple(checked_list(given["stops"], Stop, "stops", "mariana.training.stops", empty=(
                "Trainer: give at least one stop, e.g. stops=[stops.EpochWall(10)], so the run can end."))),
            "run_dir": Path(given["run_dir"]) if given["run_dir"] is not None else None,
            "save_if_murdered": bool(given["save_if_murdered"]),
            "eval_batch_size": int_at_least(given["eval_batch_size"], 1, "Trainer: eval_batch_size"),
            "best": checked_best(given["best"]),
            "checkpoint_every": int_at_least(given["checkpoint_every"], 0, "Trainer: checkpoint_every (epochs)"),
            "ema": check_decay(given["ema"]), "precision": Precision.named(given["precision"]).name,
            "resume": one_of(given["resume"], (False, "auto"), "Trainer: resume"),
        })

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments that build an equal Trainer (what ``Trainer.resume`` passes)."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def describe(self, stream_lengths: dict[str, int]) -> dict:
        """The run's settings as JSON (kept in the generation log and file headers)."""
        described = {item.name: _jsonable(getattr(self, item.name)) for item in fields(self) if item.metadata.get("described")}
        described["streams"] = dict(stream_lengths)
        described["run_dir"] = described.pop("run_dir")  # after the streams, as the log has always shown it
        return described

    def config(self, best: Sequence[str]) -> dict:
        """run.json's ``"trainer"`` section (the streams are added when the data is written); ``best``: the resolved monitor."""
        config = {item.name: _jsonable(getattr(self, item.name)) for item in fields(self) if item.metadata.get("recorded")}
        config["best"] = list(best)
        return config

    @staticmethod
    def deciding(config: dict) -> dict:
        """The part of a run.json ``"trainer"`` section that decides what the run computes (what a rerun must keep)."""
        changeable = {item.name for item in fields(RunSettings) if item.metadata.get("may_change")} | {"streams"}
        return {key: value for key, value in config.items() if key not in changeable}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (Stop, Recorder)):
        return describe_object(value)
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
        return str(value)  # a torch.device
    return value


def describe_object(obj: Any) -> dict:
    """A stop or recorder as run.json keeps it: its config, or the class name of an unregistered one."""
    try:
        return serialize(obj)
    except ValueError:
        return {"unregistered": f"{type(obj).__module__}.{type(obj).__qualname__}"}
