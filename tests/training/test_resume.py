"""Emergency saves and exact resumption: killed runs finish bit-identical to uninterrupted ones."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.activations as MA
import mariana.decorators as MD
import mariana.layers as ML
import mariana.scenari as MS
from mariana.training import Trainer, recorders, stops
from mariana.training.storage.checkpoint import CheckpointStore
from tests.helpers import assert_identical, interrupted_in_process, latest
from tests.training import run_child

CHILD = Path(run_child.__file__)


@pytest.fixture
def child(data_file):
    def run(run_dir, *args, wait=True):
        command = [sys.executable, str(CHILD), str(data_file), str(run_dir), *map(str, args)]
        if not wait:
            return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    return run






@pytest.mark.parametrize(("signal_name", "epoch", "step", "returncode"), [
    ("SIGTERM", 2, 5, 143),      # mid-epoch
    ("SIGTERM", 1, 0, 143),      # after the last step of epoch 1: saved between epochs
    ("SIGINT", 2, 11, -signal.SIGINT),  # KeyboardInterrupt: Python ends by re-raising SIGINT
])
def test_signal_then_resume_is_bit_identical(tmp_path, reference, child, signal_name, epoch, step, returncode):
    run_dir = tmp_path / "run"
    result = child(run_dir, "signal", signal_name, epoch, step)
    assert result.returncode == returncode, result.stderr
    assert f"mariana resume {run_dir}" in result.stderr
    if signal_name == "SIGINT":
        assert "KeyboardInterrupt" in result.stderr
    pointer = latest(run_dir)
    assert (pointer["epoch"], pointer["step"]) == ((epoch - 1, step) if step else (epoch, 0))
    trainer = Trainer.resume(run_dir)
    assert_identical(trainer, reference)
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,time,train_out_loss") and [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3"]
    assert any(entry.get("phase") == "resume" for entry in trainer.net.log)


def test_sigterm_from_outside_then_resume_is_bit_identical(tmp_path, reference, child):
    run_dir = tmp_path / "run"
    process = child(run_dir, "plain", wait=False)
    log = run_dir / "log.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert process.returncode == 143, stderr
    assert_identical(Trainer.resume(run_dir), reference)




def test_exception_from_a_recorder_saves_and_resumes_bit_identical(tmp_path, reference, data_file):
    run_dir = tmp_path / "run"
    raised = interrupted_in_process(run_dir, data_file)
    assert any("mariana resume" in note for note in raised.value.__notes__)
    assert (latest(run_dir)["epoch"], latest(run_dir)["step"]) == (1, 7)
    resumed = Trainer.resume(run_dir, recorders=[recorders.CSV("log.csv")])
    assert_identical(resumed, reference)


def test_kill_during_checkpoint_write_never_leaves_a_corrupt_latest(tmp_path, reference, child):
    run_dir = tmp_path / "run"
    result = child(run_dir, "sigkill-write", 3)  # checkpoints: start, epoch 1, epoch 2 <- killed mid-write
    assert result.returncode == -signal.SIGKILL
    leftovers = list((run_dir / "checkpoints").glob(".ckpt-*.tmp"))
    assert leftovers, "the kill should have hit a checkpoint write"
    tensors, state = CheckpointStore(run_dir).load("latest")  # verifies the sha256
    assert state["epoch"] == 1
    assert [row.split(",")[0] for row in (run_dir / "log.csv").read_text().splitlines()[1:]] == ["1", "2"]
    resumed = Trainer.resume(run_dir)
    assert_identical(resumed, reference)
    # The log went back to the checkpoint (epoch 1) and on from there: epoch 2 is not written twice.
    assert [row.split(",")[0] for row in (run_dir / "log.csv").read_text().splitlines()[1:]] == ["1", "2", "3"]
    assert not list((run_dir / "checkpoints").glob(".ckpt-*.tmp"))


def test_resume_checks_data_passed_again(tmp_path, reference, data_file):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    train, valid = run_child.data(data_file)
    changed = dict(train)
    changed["inp"] = np.array(changed["inp"], copy=True)
    changed["inp"][0, 0] += 1
    with pytest.raises(ValueError, match="train data passed does not match"):
        Trainer.resume(run_dir, changed, valid=valid)
    with pytest.raises(ValueError, match="had no \\['test'\\] stream"):
        Trainer.resume(run_dir, train, valid=valid, test=valid)
    assert_identical(Trainer.resume(run_dir, train, valid=valid, recorders=[]), reference)


def test_resume_of_a_finished_run_returns_it(tmp_path, reference, data_file):
    run_dir = tmp_path / "run"
    run_child.make_trainer(run_dir).start(*run_child.data(data_file))
    trainer = Trainer.resume(run_dir)
    assert_identical(trainer, reference)
    assert trainer.stop_reason.startswith("EpochWall")


def test_start_refuses_a_used_run_dir(tmp_path, data_file):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 1, 2)
    with pytest.raises(ValueError, match="already holds a run"):
        run_child.make_trainer(run_dir).start(*run_child.data(data_file))
    assert os.path.exists(run_dir / "data" / "train.safetensors")


@mar.register
class FailingOnce(ML.Layer):
    """Identity that raises in the training forward pass number ``FailingOnce.countdown`` (None: never)."""

    countdown = None

    def output_shape(self, input_shape):
        return input_shape

    def forward(self, x):
        if self.training and FailingOnce.countdown is not None:
            FailingOnce.countdown -= 1
            if FailingOnce.countdown == 0:
                FailingOnce.countdown = None
                raise RuntimeError("failure inside a training step")
        return x


def test_exception_inside_a_step_after_dropout_drew_resumes_bit_identical(tmp_path, data_file):
    def run(run_dir=None):
        mar.seed(0)
        net = (ML.Input(64, name="inp") > ML.Hidden(16, activation=MA.ReLU(), decorators=[MD.BinomialDropout(0.3)], name="hid")
               > FailingOnce(name="flaky") > ML.SoftmaxClassifier(10, learning_scenari=[MS.GradientDescent(0.05, momentum=0.9)], name="out"))
        trainer = Trainer(net, "out", batch_size=32, stops=[stops.EpochWall(2)], recorders=[], run_dir=run_dir, seed=1)
        trainer.start(*run_child.data(data_file))
        return trainer

    expected = run().net.state_dict()
    FailingOnce.countdown = 27  # step 7 of epoch 2: dropout in "hid" has already drawn for this step
    with pytest.raises(RuntimeError, match="failure inside a training step"):
        run(tmp_path / "run")
    assert (latest(tmp_path / "run")["epoch"], latest(tmp_path / "run")["step"]) == (1, 6)
    final = Trainer.resume(tmp_path / "run").net.state_dict()
    assert all(torch.equal(final[key], value) for key, value in expected.items())


def test_checkpoints_keep_the_last_k_and_the_best(tmp_path, data_file):
    run_dir = tmp_path / "run"
    mar.seed(0)
    net = ML.Input(64, name="inp") > ML.SoftmaxClassifier(10, learning_scenari=[MS.GradientDescent(5.0)], name="out")
    trainer = Trainer(net, "out", batch_size=32, stops=[stops.EpochWall(6)], recorders=[], run_dir=run_dir, keep_checkpoints=1,
                      best=("valid", "out", "accuracy"), seed=0)
    history = trainer.start(*run_child.data(data_file))
    store = CheckpointStore(run_dir)
    names = store.names()
    best_epoch = max(range(6), key=lambda i: (history[i]["valid"]["out"]["accuracy"], -i)) + 1
    pointers = {which: json.loads((run_dir / which).read_text()) for which in ("latest", "best")}
    assert pointers["latest"]["epoch"] == 6 and pointers["best"]["epoch"] == best_epoch < 6
    assert names == sorted([pointers["best"]["checkpoint"], pointers["latest"]["checkpoint"]])  # start and epochs 1-4 pruned
    assert store.load("best")[1]["history"][-1]["epoch"] == best_epoch


def test_a_damaged_checkpoint_is_refused(tmp_path, data_file):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 1, 3)
    path = run_dir / "checkpoints" / latest(run_dir)["checkpoint"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"Checkpoint .* is damaged: expected sha256 [0-9a-f]{64}, but the file hashes to"):
        Trainer.resume(run_dir)


def test_mariana_resume_command_finishes_the_run(tmp_path, data_file, capsys):
    from mariana.cli import main

    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 4)
    assert main(["resume", str(run_dir)]) == 0
    assert f"Run finished after {run_child.EPOCHS} epoch(s)" in capsys.readouterr().out
    assert CheckpointStore(run_dir).load("latest")[1]["stop_reason"].startswith("EpochWall")


def test_resume_warns_in_another_environment_and_uses_the_recorded_thread_count(tmp_path, data_file, reference, monkeypatch):
    from mariana.training import ResumeWarning
    from mariana.training.run import resume

    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 2)  # recorded with 1 thread
    real_environment = resume.environment
    monkeypatch.setattr(resume, "environment", lambda: {**real_environment(), "torch": "0.0-elsewhere"})
    seen_threads = []

    class ThreadSpy(recorders.Recorder):
        def on_epoch_start(self, trainer, epoch, steps):
            seen_threads.append(torch.get_num_threads())

    torch.set_num_threads(2)
    try:
        with pytest.warns(ResumeWarning, match=r"not be bit-identical .*torch: recorded '[^']+', now '0.0-elsewhere'"):
            trainer = Trainer.resume(run_dir, recorders=[ThreadSpy()])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    assert seen_threads == [1, 1]
    assert_identical(trainer, reference)


def test_resume_refuses_data_passed_with_another_sampler(tmp_path, data_file):
    from mariana.training import DatasetMapper

    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    train, valid = run_child.data(data_file)
    arrays = dict(train)
    with pytest.raises(ValueError, match=r"train data passed uses sampler .*Sequential.* but the run used .*Shuffled"):
        Trainer.resume(run_dir, DatasetMapper(sampler="sequential", **arrays), valid=valid, recorders=[])


def test_resume_refuses_recorder_paths_outside_the_run_dir(tmp_path, data_file):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    run = json.loads((run_dir / "run.json").read_text())
    outside = tmp_path / "outside.csv"
    run["trainer"]["recorders"] = [{"class": "CSV", "config": {"path": str(outside)}}]
    (run_dir / "run.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match=r"run.json.*trainer.recorders"):  # the checkpoints record the run.json they belong to
        Trainer.resume(run_dir)
    run["trainer"]["recorders"] = [{"class": "CSV", "config": {"path": "../escape.csv"}}]
    (run_dir / "run.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match=r"run.json.*trainer.recorders"):
        Trainer.resume(run_dir)
    assert not outside.exists() and not (tmp_path / "escape.csv").exists()


def test_recorder_paths_outside_the_run_dir_are_refused_even_when_the_record_matches(tmp_path):
    from mariana.training.run.resume import confine_recorder_paths

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for path in (str(tmp_path / "outside.csv"), "../escape.csv"):
        with pytest.raises(ValueError, match=r"run.json names a CSV writing to .*, which resolves to .*, outside the run directory"):
            confine_recorder_paths([recorders.CSV(path)], run_dir)
    confine_recorder_paths([recorders.CSV(str(run_dir / "log.csv")), recorders.CSV("sub/log.csv")], run_dir)


def test_a_pointer_naming_a_file_outside_the_checkpoints_is_refused(tmp_path, data_file):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    pointer = latest(run_dir)
    pointer["checkpoint"] = "../run.json"
    (run_dir / "latest").write_text(json.dumps(pointer))
    with pytest.raises(ValueError, match="pointer .* is malformed"):
        Trainer.resume(run_dir)
