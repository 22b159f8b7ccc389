"""Each stop criterion stops when it should, and does what it promises to the network."""

import math

import numpy as np
import pytest
import torch

import mariana as mar
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, stops


def toy(n=64, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return DatasetMapper(inp=x, out=(x[:, 0] > 0).astype(np.int64))


def net_and_trainer(stop_list, lr=0.05, **kwargs):
    mar.seed(0)
    net = build_mlp((4,), 2, hidden=8, lr=lr)
    return net, Trainer(net, "out", batch_size=16, stops=stop_list, recorders=[], seed=0, **kwargs)


def test_epoch_wall():
    _, trainer = net_and_trainer([stops.EpochWall(4)])
    assert len(trainer.start(toy())) == 4
    assert trainer.stop_reason == "EpochWall: reached 4 epoch(s)"


def test_score_wall_stops_once_reached():
    _, trainer = net_and_trainer([stops.ScoreWall("valid", "out", "accuracy", 0.9), stops.EpochWall(200)])
    history = trainer.start(toy(), valid=toy(seed=1))
    accuracies = [entry["valid"]["out"]["accuracy"] for entry in history]
    assert accuracies[-1] >= 0.9 and all(a < 0.9 for a in accuracies[:-1]) and len(history) < 200
    assert trainer.stop_reason.startswith("ScoreWall: valid/out/accuracy")


def test_time_wall_counts_from_the_start_of_the_run():
    _, trainer = net_and_trainer([stops.TimeWall(1e-9), stops.EpochWall(50)])
    assert len(trainer.start(toy())) == 1 and trainer.stop_reason.startswith("TimeWall")


class Scripted(stops.Stop):
    """Makes the valid loss follow a script (the trainer computes it; the script overrides it)."""

    def __init__(self, values):
        self.values = values

    def update(self, trainer, entry):
        entry["valid"]["out"]["loss"] = self.values[entry["epoch"] - 1]
        return None


def test_early_stopping_waits_patience_epochs_and_restores_the_best_weights():
    script = [1.0, 0.5, 0.4999, 0.6, 0.45, 0.7, 0.7, 0.7]
    weights = {}

    class Keep(stops.Stop):
        def update(self, trainer, entry):
            weights[entry["epoch"]] = {k: v.clone() for k, v in trainer.net.state_dict().items()}

    net, trainer = net_and_trainer([Scripted(script), Keep(), stops.EarlyStopping("valid", "out", patience=3, min_delta=0.01),
                                    stops.EpochWall(20)])
    history = trainer.start(toy(), valid=toy(seed=1))
    # Epoch 3 does not beat 0.5 by more than min_delta; epoch 5 (0.45) does; 6, 7, 8 do not: stop after 8.
    assert len(history) == 8
    assert trainer.stop_reason.endswith("best 0.45 at epoch 5; restored its weights")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights[5].items())
    assert not torch.equal(net.state_dict()["hid.W"], weights[8]["hid.W"])


def test_early_stopping_on_accuracy_wants_it_higher():
    stop = stops.EarlyStopping("valid", "out", metric="accuracy", patience=1, restore_best=False)
    entries = [{"epoch": e, "valid": {"out": {"accuracy": a}}} for e, a in enumerate([0.5, 0.6, 0.55], start=1)]
    assert [stop.update(None, entry) for entry in entries[:2]] == [None, None]
    assert stop.update(None, entries[2]).startswith("EarlyStopping: valid/out/accuracy did not improve")


def test_nan_guard_on_a_diverging_loss_goes_back_to_the_start():
    net, trainer = net_and_trainer([stops.NaNGuard(), stops.EpochWall(30)], lr=1e6)
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32) * 1e3
    history = trainer.start(DatasetMapper(inp=x, out=(x[:, 0] > 0).astype(np.int64)))
    assert len(history) == 1 and not math.isfinite(history[0]["train"]["out"]["loss"])
    assert trainer.stop_reason.startswith("NaNGuard: non-finite train/out/loss")
    assert trainer.stop_reason.endswith("at epoch 1; restored the initial weights and optimizer state (those of the start of the run, epoch 0)")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in initial.items())
    # The optimizer goes back too: no non-finite momentum is left to poison the next step.
    assert net.optimizer_state_dict()["params"] == {}
    net.train("out", inp=np.ones((4, 4), np.float32), out=np.array([0, 1, 0, 1]))
    assert all(torch.isfinite(v).all() for v in net.state_dict().values())


def test_nan_guard_on_non_finite_weights_keeps_the_last_finite_epoch():
    weights = {}

    class PoisonAtEpoch3(stops.Stop):
        def update(self, trainer, entry):
            weights[entry["epoch"]] = {k: v.clone() for k, v in trainer.net.state_dict().items()}
            if entry["epoch"] == 3:
                trainer.net["hid"].W.data[0, 0] = float("inf")

    net, trainer = net_and_trainer([PoisonAtEpoch3(), stops.NaNGuard(), stops.EpochWall(30)])
    history = trainer.start(toy())
    assert len(history) == 3 and trainer.stop_reason == (
        "NaNGuard: non-finite hid.W at epoch 3; restored the weights and optimizer state of epoch 2, the last finite one")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights[2].items())
    assert not torch.equal(weights[2]["hid.W"], weights[3]["hid.W"])


def test_nan_guard_says_which_epoch_it_restored_after_a_resume():
    """The restored epoch is part of the stop's checkpointed state."""
    guard = stops.NaNGuard()
    state = {"epoch": 1, "train": {"out": {"loss": 0.5}}}
    net, trainer = net_and_trainer([guard, stops.EpochWall(5)])
    guard.begin(trainer)
    assert guard.update(trainer, state) is None and guard.snapshot_epoch == 1
    clone = stops.NaNGuard()
    clone.load_state_dict(guard.state_dict())
    assert clone.update(trainer, {"epoch": 2, "train": {"out": {"loss": math.nan}}}).endswith(
        "at epoch 2; restored the weights and optimizer state of epoch 1, the last finite one")
    old_checkpoint = stops.NaNGuard()
    old_checkpoint.load_state_dict({"snapshot": guard.snapshot})  # written before the epoch was kept
    assert "restored the initial weights" in old_checkpoint.update(trainer, {"epoch": 2, "train": {"out": {"loss": math.inf}}})


def test_early_stopping_whose_metric_never_was_finite_still_explains_itself():
    stop = stops.EarlyStopping("valid", "out", patience=1)
    assert stop.update(None, {"epoch": 1, "valid": {"out": {"loss": math.nan}}}) == (
        "EarlyStopping: valid/out/loss did not improve by more than 0 for 1 epoch(s); no finite value yet")


@pytest.mark.parametrize(("stop", "message"), [
    (lambda: stops.EpochWall(0), "epochs must be an int >= 1, but received 0"),
    (lambda: stops.EarlyStopping("valid", "out", metric="f1"), r"metric must be one of \('loss', 'accuracy'\), but received 'f1'"),
    (lambda: stops.EarlyStopping("dev", "out"), "stream must be 'train', 'valid' or 'test', but received 'dev'"),
    (lambda: stops.TimeWall(-1), "seconds must be a number > 0"),
])
def test_bad_stop_arguments(stop, message):
    with pytest.raises(ValueError, match=message):
        stop()


def test_stops_round_trip_their_config():
    for stop in (stops.EpochWall(3), stops.TimeWall(5), stops.ScoreWall("train", "out", "accuracy", 0.9),
                 stops.EarlyStopping("valid", "out", patience=2, min_delta=0.1), stops.NaNGuard()):
        assert mar.registry.deserialize(mar.registry.serialize(stop)).get_config() == stop.get_config()
