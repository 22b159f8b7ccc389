"""Recorder paths named by run.json are resolved before resume trusts them (issue 12 item 8, issue 13 item 1)."""

import json

import pytest

from mariana.training import Trainer, recorders
from tests.helpers import assert_identical
from tests.training import run_child


def interrupted(run_dir, data_file, recorder):
    trainer = run_child.make_trainer(run_dir, extra=[recorder, run_child.RaiseAt(2, 3)])
    trainer.recorders = [recorder, trainer.recorders[-1]]  # no default log.csv: the recorder under test writes the log
    with pytest.raises(RuntimeError, match="recorder failure"):
        trainer.start(*run_child.data(data_file))


def test_an_absolute_recorder_path_inside_the_run_dir_resumes(tmp_path, data_file, reference):
    run_dir = tmp_path / "run"
    interrupted(run_dir, data_file, recorders.CSV(str(run_dir / "log.csv")))
    assert json.loads((run_dir / "run.json").read_text())["trainer"]["recorders"][0]["config"]["path"] == str(run_dir / "log.csv")
    trainer = Trainer.resume(run_dir)
    assert_identical(trainer, reference)
    assert (run_dir / "log.csv").read_text().count("\n") == 1 + len(trainer.history)


def test_a_recorder_path_through_a_symlink_leaving_the_run_dir_is_refused(tmp_path, data_file):
    run_dir = tmp_path / "run"
    (run_dir / "sub").mkdir(parents=True)
    interrupted(run_dir, data_file, recorders.CSV("sub/log.csv"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "sub" / "log.csv").rename(elsewhere / "log.csv")
    (run_dir / "sub").rmdir()
    (run_dir / "sub").symlink_to(elsewhere)  # a planted symlink: the log would be written through it
    before = (elsewhere / "log.csv").read_text()
    with pytest.raises(ValueError, match=r"writing to 'sub/log.csv', which resolves to .*elsewhere.*, outside the run directory"):
        Trainer.resume(run_dir)
    assert (elsewhere / "log.csv").read_text() == before


def test_a_log_file_replaced_by_a_symlink_is_not_written_through(tmp_path, data_file):
    run_dir = tmp_path / "run"
    interrupted(run_dir, data_file, recorders.CSV("log.csv"))
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    (run_dir / "log.csv").unlink()
    (run_dir / "log.csv").symlink_to(target)
    with pytest.raises(ValueError, match=r"writing to 'log.csv', which resolves to .*victim.txt.*, outside the run directory"):
        Trainer.resume(run_dir)
    assert target.read_text() == "precious\n"
