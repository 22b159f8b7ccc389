"""What ``recorders.MLflow(experiment="mariana", tracking_uri=None, run_name=None)`` does: report a run to an MLflow
tracking store (a local SQLite file or a tracking server).

Params (once per MLflow run): every layer's hyperparameters as
``<layer>.<name>``, its abstractions as ``<layer>.<role>`` (their short
description) and ``<layer>.<role>.<setting>`` (``out.learning_scenari.lr``;
``<layer>.<role>.<i>.<setting>`` when two abstractions of a role share a
setting), and the Trainer's settings as ``trainer.<name>``. Metrics: one point
per epoch, ``<stream>.<output>.<metric>`` at step = epoch. At the end the
trained network (``model.mar``) and the HTML report (``report.html``) become
artifacts (an experiment this recorder creates on a local store keeps them in
``mlartifacts/`` beside the store) and the run is FINISHED (KILLED when the run stops on an error or a
signal; a resume sets it RUNNING again).

The MLflow run id is the recorder's state, saved with every checkpoint, so
``Trainer.resume`` and ``resume="auto"`` continue the same MLflow run; a run
killed before its first checkpoint is found again by its ``mariana.run`` tag
(a hash of the run directory). An epoch redone after a kill is not logged
twice: what the run already holds is read back first, and the history's
epochs it lacks are logged. Only the writing process (rank 0) reports.

Example:
    >>> MLflowTracking.destinations
    ('tracking_uri',)
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mariana import activations as MA
from mariana.about import __version__
from mariana.files import local_path_of
from mariana.report.describe import ABSTRACTIONS, describe_layer, short_repr
from mariana.training.callbacks.progress_display import STREAMS

if TYPE_CHECKING:
    from mariana.training.trainer import Trainer

#: MLflow's limits: characters in a param value, params per ``log_batch`` call.
PARAM_VALUE_LIMIT, PARAMS_PER_BATCH, METRICS_PER_BATCH = 6000, 100, 1000
RUN_TAG = "mariana.run"


def _text(value: Any) -> str:
    """A param value as MLflow keeps it (a string), an abstraction shown as ``Class(setting=value, ...)``."""
    if isinstance(value, dict) and set(value) == {"class", "config"}:
        value = f"{value['class']}({', '.join(f'{k}={_text(v)}' for k, v in value['config'].items())})"
    elif isinstance(value, (list, tuple)):
        value = "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)[:PARAM_VALUE_LIMIT]


def layer_params(net: Any) -> dict[str, str]:
    """``{"<layer>.<name>": value}`` for every layer's hyperparameters and abstractions (see the module docstring)."""
    params: dict[str, str] = {}
    for name, layer in net.layers.items():
        for key, value in describe_layer(layer)["hyperparameters"].items():
            params[f"{name}.{key}"] = _text(value)
        for role in ABSTRACTIONS:
            value = getattr(layer, role, None)
            items = [item for item in (value if isinstance(value, list) else [value]) if item is not None and not isinstance(item, MA.Pass)]
            if not items:
                continue
            params[f"{name}.{role}"] = _text(", ".join(short_repr(item) for item in items))
            configs = [item.get_config() if hasattr(item, "get_config") else {} for item in items]
            shared = len({key for config in configs for key in config}) < sum(len(config) for config in configs)
            for index, config in enumerate(configs):
                for key, setting in config.items():
                    params[f"{name}.{role}.{index}.{key}" if shared else f"{name}.{role}.{key}"] = _text(setting)
    return params


def trainer_params(trainer: Trainer) -> dict[str, str]:
    """``trainer.<name>`` for the Trainer's settings (``trainer.describe()``; nested dicts dotted)."""
    params: dict[str, str] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and set(value) != {"class", "config"} and value:
            for key, inner in value.items():
                add(f"{prefix}.{key}", inner)
        else:
            params[prefix] = _text(value)

    add("trainer", trainer.describe())
    return params


def epoch_metrics(entry: dict) -> dict[str, float]:
    """``{"<stream>.<output>.<metric>": value}`` for one history entry."""
    return {f"{stream}.{output}.{metric}": float(value) for stream in STREAMS
            for output, metrics in entry.get(stream, {}).items() for metric, value in metrics.items()}


class MLflowTracking:
    """The behaviour of ``recorders.MLflow`` (a mixin: the recorder class itself is defined in ``recorders``)."""

    hyperparameters = ("experiment", "tracking_uri", "run_name")
    #: Attributes holding a URI (where records are sent) rather than a path: ``Trainer.resume`` confines only
    #: their local forms (``file:``, ``sqlite:``, a bare path) to the run directory; a server is an external destination.
    destinations = ("tracking_uri",)

    def __init__(self, experiment: str = "mariana", tracking_uri: str | None = None, run_name: str | None = None) -> None:
        if not isinstance(experiment, str) or not experiment.strip():
            raise ValueError(f"recorders.MLflow: experiment must be a non-empty str (the MLflow experiment's name), "
                             f"but received {experiment!r}.")
        for label, value in (("tracking_uri", tracking_uri), ("run_name", run_name)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"recorders.MLflow: {label} must be a str or None, but received {type(value).__name__} {value!r}.")
        self.experiment, self.tracking_uri, self.run_name = experiment, tracking_uri, run_name
        self.run_id: str | None = None  #: the MLflow run this recorder reports to (its state: a resume continues it)
        self._client: Any = None
        self._logged: dict[str, set[int]] = {}
        self._finished = False

    def check(self) -> None:
        try:
            import mlflow  # noqa: F401
        except ImportError as error:
            raise ImportError(f"recorders.MLflow needs the mlflow package: pip install mariana[mlflow] ({error}).") from None

    def tracking_address(self, trainer: Trainer) -> str | None:
        """``tracking_uri`` with a relative local path resolved against the trainer's run_dir (None: MLflow's default)."""
        path = local_path_of(self.tracking_uri)
        if path is None or Path(path).is_absolute() or trainer.run_dir is None:
            return self.tracking_uri
        absolute = (trainer.run_dir / path).resolve()
        return f"sqlite:///{absolute}" if self.tracking_uri.startswith("sqlite:") else str(absolute)

    def on_start(self, trainer: Trainer, resumed: bool) -> None:
        if not trainer.distributed.is_writer:
            return
        from mlflow.tracking import MlflowClient

        self._client, self._finished = MlflowClient(tracking_uri=self.tracking_address(trainer)), False
        if self.run_id is None and resumed:
            self.run_id = self._find_run(trainer)
        if self.run_id is None:
            self.run_id = self._create_run(trainer)
        else:
            self._client.update_run(self.run_id, status="RUNNING")
        self._logged = self._logged_steps()
        known = self._client.get_run(self.run_id).data.params
        params = {**layer_params(trainer.net), **trainer_params(trainer)}
        self._log_params({key: value for key, value in params.items() if key not in known})
        self._log_epochs(trainer.history)  # the epochs a kill kept from the store (none usually)

    def on_epoch_end(self, trainer: Trainer, entry: dict) -> None:
        if self._client is not None:
            self._log_epochs([entry])

    def on_end(self, trainer: Trainer, reason: str) -> None:
        if self._client is None:
            return
        with tempfile.TemporaryDirectory(prefix="mariana-mlflow-") as folder:
            model, report = Path(folder) / "model.mar", Path(folder) / "report.html"
            trainer.net.save(model)
            self._client.log_artifact(self.run_id, str(model))
            trainer.net.to_html(report, history=trainer.history)
            self._client.log_artifact(self.run_id, str(report))
        self._client.set_tag(self.run_id, "mariana.stop_reason", reason)
        self._client.set_terminated(self.run_id, status="FINISHED")
        self._finished = True

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self.run_id is not None and not self._finished:
            try:  # the run stopped on an error or a signal; that error must not be hidden by a store that is down
                client.set_terminated(self.run_id, status="KILLED")
            except Exception:  # noqa: BLE001, S110
                pass

    def state_dict(self) -> dict:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict) -> None:
        run_id = state.get("run_id")
        if run_id is not None and not isinstance(run_id, str):
            raise ValueError(f"recorders.MLflow: the checkpoint's MLflow run id must be a str, but is {run_id!r:.60}.")
        self.run_id = run_id

    # -- the store -----------------------------------------------------------------------
    def _experiment_id(self) -> str:
        """The experiment's id; a new one on a local store keeps its artifacts beside the store (MLflow's default is ./mlruns)."""
        found = self._client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        store = local_path_of(self._client.tracking_uri)
        location = (Path(store).resolve().parent / "mlartifacts").as_uri() if store else None
        return self._client.create_experiment(self.experiment, artifact_location=location)

    def _create_run(self, trainer: Trainer) -> str:
        tags = {"mariana.version": __version__}
        if trainer.run_dir is not None:
            tags.update({RUN_TAG: _run_key(trainer.run_dir), "mariana.run_dir": str(trainer.run_dir.resolve())})
        if trainer.settings.notes:
            tags["mlflow.note.content"] = trainer.settings.notes
        return self._client.create_run(self._experiment_id(), run_name=self.run_name, tags=tags).info.run_id

    def _find_run(self, trainer: Trainer) -> str | None:
        """The MLflow run made for this run directory by a session killed before its first checkpoint."""
        if trainer.run_dir is None:
            return None
        runs = self._client.search_runs([self._experiment_id()], filter_string=f"tags.`{RUN_TAG}` = '{_run_key(trainer.run_dir)}'",
                                        order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None

    def _logged_steps(self) -> dict[str, set[int]]:
        keys = self._client.get_run(self.run_id).data.metrics
        return {key: {point.step for point in self._client.get_metric_history(self.run_id, key)} for key in keys}

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=items[start:start + PARAMS_PER_BATCH])

    def _log_epochs(self, entries: list[dict]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = []
        for entry in entries:
            for key, value in epoch_metrics(entry).items():
                if entry["epoch"] not in self._logged.setdefault(key, set()):
                    metrics.append(Metric(key, value, now, entry["epoch"]))
                    self._logged[key].add(entry["epoch"])
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            self._client.log_batch(self.run_id, metrics=metrics[start:start + METRICS_PER_BATCH])


def _run_key(run_dir: Path) -> str:
    return hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:32]
