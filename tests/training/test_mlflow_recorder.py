"""recorders.MLflow against real tracking stores: an SQLite one read back with MlflowClient, a run SIGKILLed and
rerun with resume="auto", and a real `mlflow server` process as a team runs it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mariana as mar
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, recorders, stops
from mariana.training.run.resume import confine_recorder_paths
from tests.training import mlflow_child

pytest.importorskip("mlflow", reason="recorders.MLflow needs the mlflow extra (pip install mariana[mlflow])")
from mlflow.tracking import MlflowClient  # noqa: E402

CHILD = Path(mlflow_child.__file__)
ROOT = CHILD.parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite tracking store for the module (creating its tables takes seconds); each test uses its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def data():
    x = np.random.default_rng(0).normal(size=(96, 4)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    return DatasetMapper(inp=x, out=y), DatasetMapper(inp=x[:32], out=y[:32])


def trainer_for(recorder, run_dir=None, epochs=3, extra=(), **settings):
    mar.seed(0)
    return Trainer(build_mlp((4,), 2, hidden=8), outputs="out", batch_size=16, stops=[stops.EpochWall(epochs)],
                   recorders=[recorder, *extra], run_dir=run_dir, seed=1, **settings)


def steps_of(client, run_id, key):
    return [(point.step, point.value) for point in sorted(client.get_metric_history(run_id, key), key=lambda p: (p.step, p.timestamp))]


@mar.register
class FailAt(recorders.Recorder):
    """Raises after a step (the Trainer saves a checkpoint there and re-raises; a resume starts after that step)."""

    hyperparameters = ("epoch", "step")

    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step = epoch, step

    def on_step(self, trainer, step, steps):
        if trainer.epoch + 1 == self.epoch and step == self.step:
            raise RuntimeError(f"failure in epoch {self.epoch}")


def test_params_metrics_and_artifacts_in_a_sqlite_store(store, tmp_path, one_thread):
    recorder = recorders.MLflow("params", tracking_uri=store, run_name="first")
    trainer = trainer_for(recorder, notes="a first try")
    history = trainer.start(*data())
    client = MlflowClient(store)
    run = client.get_run(recorder.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    params = run.data.params
    assert params["hid.size"] == "8" and params["out.learning_scenari.lr"] == "0.05" and params["out.learning_scenari.momentum"] == "0.9"
    assert params["out.learning_scenari"] == "GradientDescent(lr=0.05, momentum=0.9)" and params["hid.regularizations.factor"] == "0.0001"
    assert params["hid.decorators"] == "BinomialDropout(ratio=0.1)" and params["out.cost"] == "NegativeLogLikelihood()"
    assert params["trainer.batch_size"] == "16" and params["trainer.stops"] == "[EpochWall(epochs=3)]"
    assert params["trainer.streams.valid"] == "32" and params["trainer.seed"] == "1"
    assert run.data.tags["mlflow.note.content"] == "a first try" and run.data.tags["mariana.stop_reason"] == history.stop_reason
    for key in ("valid.out.accuracy", "valid.out.loss", "train.out.loss", "train.out.accuracy"):
        stream, output, metric = key.split(".")
        assert steps_of(client, recorder.run_id, key) == [(entry["epoch"], pytest.approx(entry[stream][output][metric]))
                                                          for entry in history], key
    assert sorted(artifact.path for artifact in client.list_artifacts(recorder.run_id)) == ["model.mar", "report.html"]
    store_folder = Path(store.removeprefix("sqlite:///")).parent
    assert sorted(path.name for path in (store_folder / "mlartifacts").rglob("*.*")) == ["model.mar", "report.html"]  # not ./mlruns
    model = mar.load(client.download_artifacts(recorder.run_id, "model.mar", str(tmp_path)))
    x = np.random.default_rng(1).normal(size=(20, 4)).astype("float32")
    np.testing.assert_array_equal(model.predict("out", inp=x), trainer.net.predict("out", inp=x))


def test_a_resume_continues_the_same_mlflow_run_and_a_foreign_store_is_confined(store, tmp_path, one_thread):
    run_dir = tmp_path / "run"
    recorder = recorders.MLflow("resumed", tracking_uri=store)
    with pytest.raises(RuntimeError, match="failure in epoch 2"):
        trainer_for(recorder, run_dir, epochs=4, extra=[FailAt(2, 3)]).start(*data())
    client = MlflowClient(store)
    assert client.get_run(recorder.run_id).info.status == "KILLED"
    assert [step for step, _ in steps_of(client, recorder.run_id, "valid.out.loss")] == [1]
    # run.json names a store outside the run directory: resume refuses to write there unless told to.
    with pytest.raises(ValueError, match=r"MLflow writing to .*mlflow\.db.*outside the run directory"):
        Trainer.resume(run_dir)
    trainer = Trainer.resume(run_dir, recorders=[recorders.MLflow("resumed", tracking_uri=store)])
    run_id = trainer.recorders[0].run_id
    assert run_id == recorder.run_id and client.get_run(run_id).info.status == "FINISHED"
    assert steps_of(client, run_id, "valid.out.loss") == [(entry["epoch"], pytest.approx(entry["valid"]["out"]["loss"]))
                                                          for entry in trainer.history]
    assert [run.info.run_id for run in client.search_runs([client.get_experiment_by_name("resumed").experiment_id])] == [run_id]


def test_tracking_uris_resume_may_trust(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trusted = [recorders.MLflow("x", tracking_uri=uri) for uri in
               ("sqlite:///mlflow.db", f"sqlite:///{run_dir}/sub/m.db", "mlruns", "http://127.0.0.1:5000", "https://mlflow.example.org")]
    confine_recorder_paths(trusted + [recorders.MLflow("x")], run_dir)  # inside the run dir, a server, or MLflow's own default
    for uri in (f"sqlite:///{tmp_path}/m.db", "sqlite:///../m.db", f"file://{tmp_path}/mlruns", "/tmp/mlruns"):
        with pytest.raises(ValueError, match="outside the run directory"):
            confine_recorder_paths([recorders.MLflow("x", tracking_uri=uri)], run_dir)


def test_missing_mlflow_is_one_clear_error_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ImportError, match=r"recorders\.MLflow needs the mlflow package: pip install mariana\[mlflow\]"):
        trainer_for(recorders.MLflow("x"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_bad_arguments_and_other_ranks():
    assert recorders.MLflow().get_config() == {"experiment": "mariana", "tracking_uri": None, "run_name": None}  # DESIGN 5c
    with pytest.raises(ValueError, match="experiment must be a non-empty str"):
        recorders.MLflow("")
    with pytest.raises(TypeError, match="tracking_uri must be a str or None, but received int 3"):
        recorders.MLflow("x", tracking_uri=3)
    recorder = recorders.MLflow("x", tracking_uri="http://127.0.0.1:9")  # nothing listens there: a rank > 0 never connects

    class Rank1:
        distributed = type("D", (), {"is_writer": False})()

    recorder.on_start(Rank1(), resumed=False)
    recorder.on_epoch_end(Rank1(), {"epoch": 1})
    recorder.on_end(Rank1(), "done")
    assert recorder.run_id is None and recorder.state_dict() == {"run_id": None}
    with pytest.raises(ValueError, match="run id must be a str"):
        recorder.load_state_dict({"run_id": 5})


def run_child(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(CHILD), *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_sigkilled_runs_rerun_with_resume_auto_leave_one_mlflow_run_with_each_epoch_once(store, tmp_path):
    run_dir = tmp_path / "run"
    # Killed in epoch 1, before any checkpoint knew the MLflow run; then after epoch 2 was reported but not checkpointed.
    for args in (("kill", 1, 2), ("kill", 2, 0)):
        killed = run_child(store, run_dir, *args)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done = run_child(store, run_dir, "finish")
    assert done.returncode == 0, done.stderr[-2000:]
    history = json.loads(done.stdout.strip().splitlines()[-1])
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("killed").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    assert len(history) == mlflow_child.EPOCHS
    for key in ("valid.out.accuracy", "train.out.loss"):
        stream, output, metric = key.split(".")
        assert steps_of(client, run_id, key) == [(entry["epoch"], pytest.approx(entry[stream][output][metric])) for entry in history]
    assert "model.mar" in [artifact.path for artifact in client.list_artifacts(run_id)]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(store, tmp_path):
    """A real `mlflow server` on 127.0.0.1 (on the module's SQLite store, its tables made once, and its own artifact folder),
    stopped at the end."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", store, "--artifacts-destination", str(tmp_path / "artifacts")]
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
                time.sleep(0.25)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_a_real_tracking_server_and_a_resume_from_run_json(server, tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    run_dir = tmp_path / "run"
    recorder = recorders.MLflow("served", tracking_uri=server, run_name="team run")
    with pytest.raises(RuntimeError, match="failure in epoch 2"):
        trainer_for(recorder, run_dir, epochs=3, extra=[FailAt(2, 2)]).start(*data())
    # A server is an external destination: the recorder rebuilt from run.json may report to it.
    trainer = Trainer.resume(run_dir, stops=[stops.EpochWall(3)])
    assert trainer.recorders[0].run_id == recorder.run_id
    client = MlflowClient(server)
    run = client.get_run(recorder.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "team run" and run.data.params["hid.size"] == "8"
    assert steps_of(client, recorder.run_id, "valid.out.accuracy") == [
        (entry["epoch"], pytest.approx(entry["valid"]["out"]["accuracy"])) for entry in trainer.history]
    assert sorted(artifact.path for artifact in client.list_artifacts(recorder.run_id)) == ["model.mar", "report.html"]
