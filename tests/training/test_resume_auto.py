"""Trainer(resume="auto"): the same command, run again after a kill, carries on bit-identically (issue 11)."""

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_identical, latest
from tests.training import run_child

CHILD = Path(run_child.__file__)


def command(data_file, run_dir):
    return [sys.executable, str(CHILD), str(data_file), str(run_dir), "auto", "0.02"]


def test_a_killed_run_rerun_with_the_same_command_is_bit_identical(tmp_path, data_file, reference):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(command(data_file, run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ((run_dir / "latest").exists() and latest(run_dir)["epoch"] >= 1):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no emergency save: the rerun starts from the epoch-1 checkpoint
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL and not (run_dir / "final_weights.pt").exists()
    rerun = subprocess.run(command(data_file, run_dir), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    weights = torch.load(run_dir / "final_weights.pt")
    assert all(torch.equal(weights[key], reference[0][key]) for key in reference[0])
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3"]  # logs truncated back to the checkpoint, then continued


def test_a_finished_run_returns_its_history_and_another_configuration_is_refused(tmp_path, data_file, reference):
    run_dir = tmp_path / "run"
    first = run_child.make_trainer(run_dir, resume="auto")
    history = first.start(*run_child.data(data_file))
    again = run_child.make_trainer(run_dir, resume="auto")
    assert again.start(*run_child.data(data_file)) == history and again.stop_reason == first.stop_reason
    assert_identical(again, reference)
    other = run_child.make_trainer(run_dir, resume="auto")
    other.settings = dataclasses.replace(other.settings, batch_size=64)  # as if built with batch_size=64
    with pytest.raises(ValueError, match=r"resume='auto': run_dir .* holds a different run \(differs in trainer.batch_size\)"):
        other.start(*run_child.data(data_file))


def test_other_data_is_refused(tmp_path, data_file):
    run_dir = tmp_path / "run"
    run_child.make_trainer(run_dir, resume="auto").start(*run_child.data(data_file))
    train, valid = run_child.data(data_file)
    with pytest.raises(ValueError, match=r"the train data passed does not match the run's"):
        run_child.make_trainer(run_dir, resume="auto").start(valid, valid=valid)


def test_without_resume_auto_a_held_run_is_still_refused_and_the_message_says_how(tmp_path, data_file):
    run_dir = tmp_path / "run"
    run_child.make_trainer(run_dir).start(*run_child.data(data_file))
    with pytest.raises(ValueError, match=r"already holds a run.*pass resume='auto' to continue it"):
        run_child.make_trainer(run_dir).start(*run_child.data(data_file))
    with pytest.raises(ValueError, match=r"Trainer: resume must be one of \(False, 'auto'\), but received True"):
        run_child.make_trainer(run_dir, resume=True)
    assert json.loads((run_dir / "run.json").read_text())["trainer"]["resume"] is False
