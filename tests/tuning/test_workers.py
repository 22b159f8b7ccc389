"""Processes sharing one study on SQLite: the study's total is exact, trials overlap, poor ones are pruned,
and a worker killed mid-trial has its trial retried, continuing the trial's run directory from its checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="mariana.tuning needs optuna (the 'tune' extra, in 'test')")

import mariana as mar  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "tuning" / "digits_workers.py"


def command(run_root: Path, *arguments: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--run-root", str(run_root), "--study", "digits", *arguments]


def environment() -> dict[str, str]:
    # The worktree first (as the tests run it), warnings as errors in the workers too.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "PYTHONWARNINGS": "error"}


def load(run_root: Path):
    return optuna.load_study(study_name="digits", storage=f"sqlite:///{run_root / 'study.db'}")


def test_two_processes_share_ten_trials_that_overlap_in_time_and_the_median_pruner_prunes_some(tmp_path):
    run_root = tmp_path / "runs"
    done = subprocess.run(command(run_root, "--workers", "2", "--trials", "10", "--epochs", "4"), env=environment(),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load(run_root).get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 10 and len(trials) == 10, [t.state.name for t in trials]
    spans = sorted((t.datetime_start, t.datetime_complete) for t in finished)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), "no two trials ran at the same time"
    pruned = [t for t in finished if t.state.name == "PRUNED"]
    assert pruned and all(t.user_attrs["mariana"]["stop_reason"].startswith("pruned by the median pruner at epoch ") for t in pruned)
    for trial in pruned:  # stopped at an epoch where it was below the completed trials' median
        epoch, value = max(trial.intermediate_values.items())
        others = sorted(t.intermediate_values[epoch] for t in finished
                        if t.state.name == "COMPLETE" and t.datetime_complete < trial.datetime_complete)
        assert value < others[len(others) // 2], (trial.number, epoch, value, others)
    assert sorted(p.name for p in run_root.glob("trial-*")) == [f"trial-{n:04d}" for n in range(10)]


def test_a_killed_worker_s_trial_is_retried_and_continues_its_run_directory(tmp_path):
    run_root = tmp_path / "runs"
    arguments = ("--workers", "1", "--trials", "2", "--epochs", "40", "--heartbeat", "1")
    worker = subprocess.Popen(command(run_root, *arguments, "--worker", "0"), env=environment(), stderr=subprocess.DEVNULL)
    checkpoints = run_root / "trial-0000" / "checkpoints"
    deadline = time.monotonic() + 60
    while not any(int(p.name.split("-e")[1].split("-")[0]) >= 3 for p in checkpoints.glob("ckpt-*")) if checkpoints.is_dir() else True:
        assert worker.poll() is None and time.monotonic() < deadline, "the first trial did not reach epoch 3"
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)  # no handler can run: the trial stays RUNNING, its last checkpoint on disk
    worker.wait()
    assert load(run_root).trials[0].state.name == "RUNNING"
    time.sleep(2.5)  # past the grace period (twice the heartbeat) the trial is stale
    done = subprocess.run(command(run_root, *arguments, "--worker", "0"), env=environment(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load(run_root).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    retry = next(t for t in trials if t.user_attrs["mariana"].get("continues") == 0 and t.number != 0)
    assert retry.params == trials[0].params
    net = mar.load(retry.user_attrs["mariana"]["network"])
    phases = [(entry["phase"], entry.get("epoch")) for entry in net.log if entry["event"] == "training"]
    assert phases[0] == ("start", None) and phases[1][0] == "resume" and phases[1][1] >= 3 and phases[-1][0] == "end"
    assert len([entry for entry in net.log if entry["event"] == "epoch"]) == 40  # every epoch once: none repeated, none lost
    assert sorted(p.name for p in run_root.glob("trial-*")) == ["trial-0000", f"trial-{({1, 2} - {retry.number}).pop():04d}"]


def test_a_worker_that_meets_another_creating_the_same_new_database_tries_again():
    from sqlalchemy.exc import IntegrityError

    from mariana.tuning.storage import first_creation_shared

    calls = []

    def open_database():
        calls.append(1)
        if len(calls) < 3:
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE constraint failed"))
        return "storage"

    assert first_creation_shared(open_database) == "storage" and len(calls) == 3
    calls.clear()
    with pytest.raises(IntegrityError):  # a database that never opens: its error, after the last attempt
        first_creation_shared(open_database, attempts=2)
    assert len(calls) == 2
