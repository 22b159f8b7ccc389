"""Step-level stops (StepWall and users' own): the run ends mid-epoch, the partial epoch is evaluated and recorded as
the last, an interrupted run resumes bit-identical, and stops keep working as before at epoch ends."""

import pytest
import torch

import mariana as mar
from mariana.models import build_mlp
from mariana.training import Trainer, recorders, stops
from tests.training import run_child

ROWS, BATCH = 640, 32
STEPS_PER_EPOCH = ROWS // BATCH  # 20


def trainer_with(stop_list, **options):
    mar.seed(0)
    return Trainer(build_mlp((64,), 10, hidden=32), "out", batch_size=BATCH, stops=stop_list, recorders=[], seed=7, **options)


def test_a_step_wall_on_an_epoch_boundary_ends_where_the_epoch_wall_does(data_file):
    by_steps = trainer_with([stops.StepWall(2 * STEPS_PER_EPOCH)])
    by_steps.start(*run_child.data(data_file))
    by_epochs = trainer_with([stops.EpochWall(2)])
    by_epochs.start(*run_child.data(data_file))
    assert len(by_steps.history) == 2 and by_steps.stop_reason == f"StepWall: reached {2 * STEPS_PER_EPOCH} optimizer step(s)"
    for key, value in by_epochs.net.state_dict().items():
        assert torch.equal(by_steps.net.state_dict()[key], value), key
    assert by_steps.history[-1]["valid"] == by_epochs.history[-1]["valid"]


def test_a_step_wall_mid_epoch_evaluates_and_records_the_partial_epoch_as_the_last(data_file):
    trainer = trainer_with([stops.StepWall(STEPS_PER_EPOCH + 5), stops.EpochWall(10)])
    history = trainer.start(*run_child.data(data_file))
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert set(history[-1]) >= {"train", "valid"} and 0 < history[-1]["valid"]["out"]["accuracy"] <= 1
    assert trainer.progress.optimizer_steps == STEPS_PER_EPOCH + 5
    assert history.stop_reason == f"StepWall: reached {STEPS_PER_EPOCH + 5} optimizer step(s)"


def test_with_accumulation_a_step_wall_counts_optimizer_steps_not_batches(data_file):
    trainer = trainer_with([stops.StepWall(3)], accumulate=2)
    trainer.start(*run_child.data(data_file))
    assert trainer.progress.optimizer_steps == 3 and len(trainer.history) == 1


def test_a_run_interrupted_before_its_step_wall_resumes_bit_identical(tmp_path, data_file):
    reference = trainer_with([stops.StepWall(STEPS_PER_EPOCH + 9)])
    reference.start(*run_child.data(data_file))
    interrupted = trainer_with([stops.StepWall(STEPS_PER_EPOCH + 9)], run_dir=tmp_path / "run")
    interrupted.recorders = [run_child.RaiseAt(2, 4)]
    with pytest.raises(RuntimeError, match="recorder failure"):
        interrupted.start(*run_child.data(data_file))
    resumed = Trainer.resume(tmp_path / "run", recorders=[])
    assert resumed.stop_reason == reference.stop_reason and len(resumed.history) == 2
    for key, value in reference.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[key], value), key


def test_a_user_s_step_level_stop_is_one_class():
    class LossBelow(stops.Stop):
        """Ends the run as soon as the running train loss drops below ``threshold`` (read every 5 steps: a host sync)."""

        def __init__(self, threshold):
            self.threshold = threshold

        def update(self, trainer, entry):
            return None

        def update_step(self, trainer, steps):
            if steps % 5 == 0 and trainer.running_metrics()["out"]["loss"] < self.threshold:
                return f"LossBelow: running loss under {self.threshold} after {steps} steps"
            return None

    x = torch.randn(256, 64)
    y = (x[:, 0] > 0).long()
    trainer = trainer_with([LossBelow(0.5), stops.EpochWall(50)])
    history = trainer.start({"inp": x, "out": y})
    assert history.stop_reason.startswith("LossBelow: running loss under 0.5 after") and trainer.progress.optimizer_steps % 5 == 0


def test_step_wall_checks_its_argument_and_round_trips():
    with pytest.raises(ValueError, match="StepWall: steps"):
        stops.StepWall(0)
    assert mar.registry.deserialize(mar.registry.serialize(stops.StepWall(7))).steps == 7


def test_recorders_that_write_files_say_so_and_a_plain_recorder_runs_everywhere():
    assert recorders.CSV("log.csv").writes_files and recorders.ProgressBar().writes_files
    assert not recorders.Recorder().writes_files
