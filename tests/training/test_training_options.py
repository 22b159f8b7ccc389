"""Training options users expect (issue 14): clipping, accumulation, ReduceLROnPlateau; each checked against torch."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS
from mariana.registry import deserialize, serialize
from mariana.training import DatasetMapper, Trainer, recorders, stops
from tests.training.run_child import RaiseAt


def regression(scenario):
    mar.seed(0)
    return ML.Input(4, name="inp") > ML.Hidden(6, activation=MA.Tanh(), name="hid") > ML.Regression(
        2, learning_scenari=[scenario], name="out")


def torch_copy(net):
    return [p.detach().clone().requires_grad_() for p in (net["hid"].W, net["hid"].b, net["out"].W, net["out"].b)]


def torch_loss(params, x, y):
    w1, b1, w2, b2 = params
    return F.mse_loss(F.linear(torch.tanh(F.linear(x, w1, b1)), w2, b2), y)


def data(rows=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 4)).astype(np.float32) * 5, rng.normal(size=(rows, 2)).astype(np.float32) * 5


@pytest.mark.parametrize(("scenario", "clip"), [
    (MS.GradientDescent(0.1, clip_norm=0.5), lambda p: torch.nn.utils.clip_grad_norm_(p, 0.5)),
    (MS.GradientDescent(0.1, clip_value=0.05), lambda p: torch.nn.utils.clip_grad_value_(p, 0.05)),
    (MS.Adam(0.01, clip_norm=0.3, clip_value=0.1),
     lambda p: (torch.nn.utils.clip_grad_value_(p, 0.1), torch.nn.utils.clip_grad_norm_(p, 0.3))),
    (MS.AdamW(0.01, clip_norm=1.0), lambda p: torch.nn.utils.clip_grad_norm_(p, 1.0)),
    (MS.RMSProp(0.01, clip_value=0.2), lambda p: torch.nn.utils.clip_grad_value_(p, 0.2)),
], ids=["sgd-norm", "sgd-value", "adam-both", "adamw-norm", "rmsprop-value"])
def test_clipping_matches_torch_clip_utilities(scenario, clip):
    net = regression(scenario)
    params = torch_copy(net)
    reference = type(scenario)(scenario.lr).torch_class(params, **scenario.torch_options())
    x, y = (torch.from_numpy(a) for a in data())
    for _ in range(3):
        net.train("out", inp=x, out=y)
        reference.zero_grad()
        torch_loss(params, x, y).backward()
        clip(params)
        reference.step()
    mine = [net["hid"].W, net["hid"].b, net["out"].W, net["out"].b]
    for a, b in zip(mine, params):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-6)


def test_clip_norm_bounds_the_update_and_reports_the_norm_before_clipping():
    scenario = MS.GradientDescent(1.0, clip_norm=0.01)
    net = regression(scenario)
    before = [p.detach().clone() for p in net.parameters()]
    net.train("out", **dict(zip(("inp", "out"), data())))
    update = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(net.parameters(), before)))
    assert float(update) == pytest.approx(0.01, rel=1e-5)  # lr 1: the update is the clipped gradient
    assert float(scenario.grad_norm) > 0.01


@pytest.mark.parametrize("bad", [0, -1.0, "1", True])
def test_clip_arguments_are_checked(bad):
    with pytest.raises(ValueError, match=r"GradientDescent: clip_norm must be a number > 0 or None"):
        MS.GradientDescent(0.1, clip_norm=bad)


def test_clipping_and_plateau_round_trip_through_config_mar_and_resume(tmp_path):
    scenario = MS.Adam(0.01, clip_norm=0.5, clip_value=0.2, schedule=MS.ReduceLROnPlateau("train", patience=0, factor=0.5))
    config = json.loads(json.dumps(serialize(scenario)))
    assert serialize(deserialize(config)) == serialize(scenario)
    net = regression(scenario)
    x, y = data()
    net.fit({"inp": x, "out": y}, epochs=3, batch_size=16, recorders=[])
    net.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")
    loaded = clone["out"].optimizer
    assert (loaded.clip_norm, loaded.clip_value) == (0.5, 0.2)
    assert loaded.schedule.state_dict() == scenario.schedule.state_dict() and loaded.steps == scenario.steps


@pytest.mark.parametrize("rows", [144, 120])  # 144: groups of 4, 4 and 1 full batches; 120: the last group holds a short batch
def test_accumulation_follows_the_large_batch_path(rows):
    x, y = data(rows=rows)
    finals = []
    for batch_size, accumulate in ((64, 1), (16, 4)):
        net = regression(MS.GradientDescent(0.05, momentum=0.9, schedule=MS.StepDecay(2, 0.5)))
        Trainer(net, "out", batch_size=batch_size, accumulate=accumulate, stops=[stops.EpochWall(2)], recorders=[]).start(
            DatasetMapper(inp=x, out=y, sampler="sequential"))
        finals.append((net.state_dict(), net["out"].optimizer.steps))
    (big, big_steps), (small, small_steps) = finals
    assert big_steps == small_steps == 2 * -(-rows // 64)  # schedules count optimizer steps
    for key in big:
        torch.testing.assert_close(small[key], big[key], rtol=0, atol=1e-6)


def test_accumulation_with_several_outputs_needs_simultaneous_order():
    mar.seed(0)
    hid = ML.Input(2, name="inp") > ML.Hidden(3, name="hid")
    hid["hid"] > ML.Regression(1, learning_scenari=[MS.GradientDescent(0.1)], name="a")
    net = hid["hid"] > ML.Regression(1, learning_scenari=[MS.GradientDescent(0.1)], name="b")
    with pytest.raises(ValueError, match=r"accumulate=2 needs order='simultaneous'"):
        Trainer(net, ["a", "b"], accumulate=2, order="sequential", stops=[stops.EpochWall(1)])


def test_resume_in_the_middle_of_an_accumulation_group_is_bit_identical(tmp_path):
    x, y = data(rows=96)

    def trainer(run_dir, extra=()):
        net = regression(MS.Adam(0.01))
        return Trainer(net, "out", batch_size=8, accumulate=4, stops=[stops.EpochWall(2)], recorders=list(extra),
                       run_dir=run_dir, seed=3)

    reference = trainer(tmp_path / "reference")
    reference.start(DatasetMapper(inp=x, out=y))
    with pytest.raises(RuntimeError, match="recorder failure"):
        trainer(tmp_path / "run", [RaiseAt(2, 6)]).start(DatasetMapper(inp=x, out=y))  # step 6 of 12: mid-group
    resumed = Trainer.resume(tmp_path / "run", recorders=[])
    for key, value in reference.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[key], value), key
    assert resumed.history[-1]["train"] == reference.history[-1]["train"]


def test_reduce_lr_on_plateau_follows_torch():
    losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85]
    plateau = MS.ReduceLROnPlateau("valid", patience=2, factor=0.5, threshold=1e-4, min_factor=0.1)
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=1.0)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2, threshold=1e-4, min_lr=0.1)
    for loss in losses:
        plateau.observe({"valid": {"out": {"loss": loss}}})
        reference.step(loss)
        assert plateau.factor(0) == pytest.approx(optimizer.param_groups[0]["lr"])


def test_the_trainer_drives_reduce_lr_on_plateau_from_a_stream():
    scenario = MS.GradientDescent(0.1, schedule=MS.ReduceLROnPlateau("valid", patience=0, factor=0.5))
    net = regression(scenario)
    x, y = data()
    history = net.fit({"inp": x, "out": y}, valid={"inp": x, "out": y * 0 + 1e6}, epochs=3, batch_size=16, recorders=[])
    assert len(history) == 3 and scenario.current_lr() < 0.1


def test_a_user_callback_logs_the_learning_rate_and_the_gradient_norm(tmp_path):
    @mar.register
    class LayerLearningRateLog(recorders.Recorder):
        """Appends each epoch's lr and the last step's gradient norm of one layer's scenario."""

        hyperparameters = ("layer",)

        def __init__(self, layer):
            self.layer, self.rows = layer, []

        def on_epoch_end(self, trainer, entry):
            scenario = trainer.net[self.layer].optimizer
            self.rows.append((entry["epoch"], scenario.current_lr(), float(scenario.grad_norm)))

        def state_dict(self):
            return {"rows": self.rows}

        def load_state_dict(self, state):
            self.rows = [tuple(row) for row in state["rows"]]

    net = regression(MS.GradientDescent(0.1, clip_norm=math.inf, schedule=MS.StepDecay(3, 0.5)))
    x, y = data()
    log = LayerLearningRateLog("out")
    with pytest.raises(RuntimeError, match="recorder failure"):
        Trainer(net, "out", batch_size=16, stops=[stops.EpochWall(3)], recorders=[log, RaiseAt(2, 2)],
                run_dir=tmp_path / "run").start(DatasetMapper(inp=x, out=y))
    assert [row[0] for row in log.rows] == [1]
    resumed = Trainer.resume(tmp_path / "run")  # rebuilds both recorders from run.json; the failure lies behind
    assert isinstance(resumed.recorders[0], LayerLearningRateLog)
    rows = resumed.recorders[0].rows
    assert [row[0] for row in rows] == [1, 2, 3] and rows[0] == log.rows[0]
    assert rows[1][1] == pytest.approx(0.1 * 0.5 ** 2) and all(row[2] > 0 for row in rows)  # 3 steps an epoch


def test_ema_weights_are_the_moving_average_used_for_evaluation_and_kept_at_the_end():
    x, y = data(rows=64)
    steps_seen = []

    class WeightsAfterEachStep(recorders.Recorder):
        def on_step(self, trainer, step, steps):
            steps_seen.append([p.detach().clone() for p in trainer.net.parameters()])

    raw = regression(MS.GradientDescent(0.05, momentum=0.9))
    average = [p.detach().clone() for p in raw.parameters()]
    Trainer(raw, "out", batch_size=16, stops=[stops.EpochWall(2)], recorders=[WeightsAfterEachStep()], seed=1).start(
        DatasetMapper(inp=x, out=y))
    for weights in steps_seen:
        average = [0.9 * a + 0.1 * w for a, w in zip(average, weights)]
    net = regression(MS.GradientDescent(0.05, momentum=0.9))
    history = Trainer(net, "out", batch_size=16, stops=[stops.EpochWall(2)], recorders=[], seed=1, ema=0.9).start(
        DatasetMapper(inp=x, out=y), valid=DatasetMapper(inp=x, out=y))
    for mine, expected in zip(net.parameters(), average):
        torch.testing.assert_close(mine.detach(), expected, rtol=0, atol=1e-6)
    assert history[-1]["valid"]["out"]["loss"] == pytest.approx(float(net.test("out", inp=x, out=y)["out"]), abs=1e-6)


def test_ema_resumes_bit_identical(tmp_path):
    x, y = data(rows=64)

    def trainer(run_dir, extra=()):
        return Trainer(regression(MS.Adam(0.01)), "out", batch_size=16, ema=0.8, stops=[stops.EpochWall(2)],
                       recorders=list(extra), run_dir=run_dir, seed=2)

    reference = trainer(tmp_path / "reference")
    reference.start(DatasetMapper(inp=x, out=y))
    with pytest.raises(RuntimeError, match="recorder failure"):
        trainer(tmp_path / "run", [RaiseAt(2, 1)]).start(DatasetMapper(inp=x, out=y))
    resumed = Trainer.resume(tmp_path / "run", recorders=[])
    assert resumed.settings.ema == 0.8
    for key, value in reference.net.state_dict().items():
        assert torch.equal(resumed.net.state_dict()[key], value), key


@pytest.mark.parametrize("bad", [0.0, 1.0, 1, "0.9"])
def test_ema_decay_is_checked(bad):
    with pytest.raises(ValueError, match=r"Trainer: ema must be a float in \(0, 1\)"):
        Trainer(regression(MS.Adam(0.01)), "out", ema=bad, stops=[stops.EpochWall(1)])
