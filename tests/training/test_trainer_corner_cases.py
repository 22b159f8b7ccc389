"""Corner cases of the Trainer's parts: EMA with early stopping, resume="auto" with other recorders, a failure at an
epoch end, a forged trainer state, ReduceLROnPlateau without its stream, class-weight sums across a mid-epoch resume."""

import json

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.scenari as MS
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, recorders, stops
from tests.helpers import interrupted_in_process
from tests.training import run_child


def test_ema_with_early_stopping_keeps_the_weights_that_were_evaluated():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 6)).astype(np.float32), rng.integers(0, 3, 96)
    valid = DatasetMapper(inp=x[:32], out=y[:32])
    mar.seed(0)
    net = build_mlp((6,), 3, hidden=16)
    history = Trainer(net, "out", batch_size=16, ema=0.5, recorders=[], seed=0,
                      stops=[stops.EarlyStopping("valid", "out", patience=1, restore_best=True), stops.EpochWall(12)]).start(
        DatasetMapper(inp=x, out=y), valid=valid)
    best = min(entry["valid"]["out"]["loss"] for entry in history)
    assert float(net.test("out", inp=x[:32], out=y[:32])["out"]) == pytest.approx(best, abs=1e-6)


def test_resume_auto_continues_a_run_started_without_it_and_with_other_recorders(tmp_path, data_file, reference):
    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)  # started with resume=False and a CSV recorder
    trainer = run_child.make_trainer(run_dir, extra=[recorders.ProgressBar(verbose=0)], resume="auto")
    trainer.start(*run_child.data(data_file))
    assert all(torch.equal(trainer.net.state_dict()[k], v) for k, v in reference[0].items())


def test_a_failure_at_an_epoch_end_does_not_repeat_the_epoch_in_the_generation_log(tmp_path, data_file):
    class FailsOnceAtEpochEnd(recorders.Recorder):
        def on_epoch_end(self, trainer, entry):
            if entry["epoch"] == 2 and not (tmp_path / "failed").exists():
                (tmp_path / "failed").touch()
                raise RuntimeError("once")

    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="once"):
        run_child.make_trainer(run_dir, extra=[FailsOnceAtEpochEnd()]).start(*run_child.data(data_file))
    resumed = Trainer.resume(run_dir, recorders=[])
    epochs = [entry["history"]["epoch"] for entry in resumed.net.log if entry["event"] == "epoch"]
    assert epochs == [1, 2, 3]


def test_a_forged_trainer_state_is_one_clear_error(tmp_path, data_file):
    from tests.helpers import forge_checkpoint_without

    run_dir = tmp_path / "run"
    interrupted_in_process(run_dir, data_file, 2, 3)
    pointer = json.loads((run_dir / "latest").read_text())
    path = run_dir / "checkpoints" / pointer["checkpoint"]
    data = path.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    document = json.loads(header["__metadata__"]["mariana"])
    document["state"]["step"] = "three"
    from safetensors.torch import load, save

    forged = save(load(data), metadata={"mariana": json.dumps(document)})
    path.write_bytes(forged)
    forge_checkpoint_without(run_dir, "no tensor is named like this")  # recomputes the sha256 and the sidecar
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    with pytest.raises(ValueError, match=r"checkpoint cannot be resumed .*checkpoint state 'step' must be int, but is 'three'"):
        Trainer.resume(run_dir, recorders=[])
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before  # no emergency checkpoint of a bad state


def test_reduce_lr_on_plateau_without_its_stream_is_refused_before_training():
    mar.seed(0)
    net = build_mlp((4,), 2, hidden=4)
    net["out"].learning_scenari = [MS.GradientDescent(0.1, schedule=MS.ReduceLROnPlateau("valid"))]
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau follows the 'valid' stream, but the run has \['train'\]"):
        net.fit(np.zeros((8, 4), np.float32), np.zeros(8, np.int64), epochs=1, recorders=[])


def test_a_mid_epoch_resume_keeps_the_class_weight_sums_of_the_epoch_so_far(tmp_path):
    # The running sums' class-weight totals were saved under "weights", which the network's weights overwrote.
    import mariana.costs as MC

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 6)).astype(np.float32), rng.integers(0, 3, 96)

    def trainer(extra=(), run_dir=None):
        mar.seed(0)
        net = build_mlp((6,), 3, hidden=16)
        net["out"].cost = MC.NegativeLogLikelihood(class_weights=[1.0, 2.0, 5.0])
        return Trainer(net, "out", batch_size=16, stops=[stops.EpochWall(2)], recorders=list(extra), seed=0, run_dir=run_dir)

    reference = trainer().start(DatasetMapper(inp=x, out=y))
    with pytest.raises(RuntimeError, match="recorder failure"):
        trainer([run_child.RaiseAt(2, 3)], tmp_path / "run").start(DatasetMapper(inp=x, out=y))
    resumed = Trainer.resume(tmp_path / "run", recorders=[])
    assert resumed.history[1]["train"] == reference[1]["train"]
