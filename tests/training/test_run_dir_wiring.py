"""The run directory's defences, wired into start and resume (issue 13 items 2, 6 and 7)."""

import json
import re

import pytest

from mariana.training import Trainer
from tests.helpers import forge_checkpoint_without, interrupted_in_process
from tests.training import run_child


def edit_run(run_dir, change):
    run = json.loads((run_dir / "run.json").read_text())
    change(run)
    (run_dir / "run.json").write_text(json.dumps(run))


def first_layer_of(run, kind):
    return next(layer for layer in run["network"]["layers"] if layer["class"] == kind)


@pytest.mark.parametrize(("change", "field"), [
    (lambda run: run["trainer"].update(batch_size=64), "trainer.batch_size"),
    (lambda run: run["trainer"]["stops"][0]["config"].update(epochs=1), "trainer.stops[0].config.epochs"),
    (lambda run: first_layer_of(run, "Hidden")["config"]["activation"].update({"class": "Tanh"}), "activation"),
    (lambda run: first_layer_of(run, "Hidden")["config"].update(decorators=[]), "decorators"),
    (lambda run: first_layer_of(run, "SoftmaxClassifier")["config"]["learning_scenari"][0]["config"].update(lr=5.0), "lr"),
])
def test_an_edited_run_json_is_refused_naming_the_field(tmp_path, data_file, change, field):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    edit_run(run_dir, change)
    with pytest.raises(ValueError, match=rf"run.json.* was changed after the run started: .*{re.escape(field)}"):
        Trainer.resume(run_dir)


def test_a_run_killed_before_its_first_checkpoint_can_be_started_again(tmp_path, data_file):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")  # what a kill between run.json and the first checkpoint leaves
    (run_dir / ".latest.a1b2c3d4.tmp").write_text("half a pointer")
    trainer = run_child.make_trainer(run_dir)
    assert len(trainer.start(*run_child.data(data_file))) == run_child.EPOCHS
    assert not (run_dir / ".latest.a1b2c3d4.tmp").exists()


def test_resume_removes_stale_temps_of_its_own_files(tmp_path, data_file):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    stale = [run_dir / ".run.json.x7y8z9w0.tmp", run_dir / "checkpoints" / ".ckpt-000009-e2-s3.safetensors.q1w2e3r4.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    mine = run_dir / "notes.txt.tmp"
    mine.write_text("a user's file")
    Trainer.resume(run_dir)
    assert not any(path.exists() for path in stale) and mine.exists()




@pytest.mark.parametrize("damage", ["truncated data copy", "forged checkpoint"])
def test_a_damaged_run_directory_is_one_clear_error(tmp_path, data_file, damage):
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    if damage == "truncated data copy":
        copy = run_dir / "data" / "train.safetensors"
        copy.write_bytes(copy.read_bytes()[:1000])
    else:
        forge_checkpoint_without(run_dir, "weights")
    with pytest.raises(ValueError, match=r"is not a run directory Mariana can resume: its files are damaged or were edited"):
        Trainer.resume(run_dir)
    result = subprocess.run([sys.executable, "-m", "mariana.cli", "resume", str(run_dir), "--import", "tests.training.run_child"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
