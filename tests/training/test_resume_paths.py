"""Recorder paths named by run.json are resolved before resume trusts them (issue 12, item 8)."""

import json

import pytest

from mariana.training import Trainer
from tests.training.test_resume import assert_identical, interrupted_in_process


def edit_recorders(run_dir, entries):
    run = json.loads((run_dir / "run.json").read_text())
    run["trainer"]["recorders"] = entries
    (run_dir / "run.json").write_text(json.dumps(run))


def test_an_absolute_recorder_path_inside_the_run_dir_resumes(tmp_path, data_file, reference):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    edit_recorders(run_dir, [{"class": "CSV", "config": {"path": str(run_dir / "log.csv")}}])
    trainer = Trainer.resume(run_dir)
    assert_identical(trainer, reference)
    assert (run_dir / "log.csv").read_text().count("\n") == 1 + len(trainer.history)


def test_a_recorder_path_through_a_symlink_leaving_the_run_dir_is_refused(tmp_path, data_file):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "sub").symlink_to(elsewhere)
    edit_recorders(run_dir, [{"class": "CSV", "config": {"path": "sub/planted.csv"}}])
    with pytest.raises(ValueError, match=r"writing to 'sub/planted.csv', which resolves to .*elsewhere.*, outside the run directory"):
        Trainer.resume(run_dir)
    assert list(elsewhere.iterdir()) == []
