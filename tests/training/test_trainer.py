"""The Trainer and net.fit: learning, history format, multi-output orders, generation log, bad input."""

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS
from mariana.datasets import digits
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, recorders, stops


@pytest.fixture(scope="module")
def data():
    return digits(seed=0)


def test_fit_on_digits_reaches_95_percent_held_out(data):
    mar.seed(0)
    net = build_mlp((64,), 10)
    train = DatasetMapper(inp=data["train"]["x"], out=data["train"]["y"])
    history = net.fit(train, valid={"inp": data["test"]["x"], "out": data["test"]["y"]}, epochs=15, batch_size=32, recorders=[])
    assert [entry["epoch"] for entry in history] == list(range(1, 16))
    assert history[-1]["valid"]["out"]["accuracy"] >= 0.95
    assert net.accuracy("out", inp=data["test"]["x"], out=data["test"]["y"]) >= 0.95
    assert history[-1]["train"]["out"]["loss"] < history[0]["train"]["out"]["loss"]


def test_history_format_and_metrics_match_the_network(data):
    mar.seed(1)
    net = build_mlp((64,), 10, hidden=16)
    x, y, vx, vy = data["train"]["x"][:256], data["train"]["y"][:256], data["test"]["x"][:100], data["test"]["y"][:100]
    trainer = Trainer(net, "out", batch_size=64, stops=[stops.EpochWall(2)], recorders=[], seed=0)
    history = trainer.start(DatasetMapper(inp=x, out=y), valid=DatasetMapper(inp=vx, out=vy), test=DatasetMapper(inp=vx, out=vy))
    assert history is trainer.history
    entry = history[-1]
    assert set(entry) == {"epoch", "time", "train", "valid", "test"}
    assert entry["time"] >= history[0]["time"] > 0
    for stream in ("train", "valid", "test"):
        assert set(entry[stream]) == {"out"} and set(entry[stream]["out"]) == {"loss", "accuracy"}
        assert all(isinstance(v, float) for v in entry[stream]["out"].values())
    assert entry["valid"]["out"]["loss"] == pytest.approx(float(net.test("out", inp=vx, out=vy)["out"]), rel=1e-5)
    assert entry["valid"]["out"]["accuracy"] == pytest.approx(net.accuracy("out", inp=vx, out=vy))
    assert entry["test"] == entry["valid"]


def test_same_seed_same_result_and_the_network_log_records_the_run(data):
    def run():
        mar.seed(3)
        net = build_mlp((64,), 10, hidden=16)
        history = Trainer(net, "out", batch_size=50, stops=[stops.EpochWall(2)], recorders=[], seed=5, notes="first try",
                          hyperparameters={"lr": 0.05}).start({"inp": data["train"]["x"][:300], "out": data["train"]["y"][:300]})
        return net, history

    (net_a, history_a), (net_b, history_b) = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(net_a.state_dict().values(), net_b.state_dict().values()))
    assert [{k: v for k, v in e.items() if k != "time"} for e in history_a] == [{k: v for k, v in e.items() if k != "time"} for e in history_b]
    start, end = [entry for entry in net_a.log if entry["event"] == "training"]
    assert start["phase"] == "start" and start["batch_size"] == 50 and start["seed"] == 5 and start["outputs"] == ["out"]
    assert start["notes"] == "first try" and start["hyperparameters"] == {"lr": 0.05}
    assert end["phase"] == "end" and end["epochs"] == 2 and end["reason"].startswith("EpochWall")
    assert end["metrics"]["train"] == history_a[-1]["train"]


def two_output_network():
    mar.seed(0)
    i = ML.Input(4, name="inp")
    h = ML.Hidden(8, name="hid")
    sgd = [MS.GradientDescent(lr=0.1)]
    net = i > h > ML.SoftmaxClassifier(2, learning_scenari=sgd, name="cls")
    h > ML.Regression(1, learning_scenari=sgd, name="reg")  # noqa: B015 - ">" connects
    return net


@pytest.mark.parametrize("order", ["simultaneous", "sequential", "random"])
def test_multi_output_orders_train_every_output(order):
    net = two_output_network()
    x = np.random.default_rng(0).normal(size=(128, 4)).astype(np.float32)
    train = DatasetMapper(inp=x, cls=(x[:, 0] > 0).astype(np.int64), reg=x[:, 1:2] * 2)
    history = Trainer(net, ["cls", "reg"], batch_size=16, stops=[stops.EpochWall(15)], recorders=[], order=order, seed=0).start(train)
    first, last = history[0]["train"], history[-1]["train"]
    assert set(last) == {"cls", "reg"} and "accuracy" in last["cls"] and "accuracy" not in last["reg"]
    assert last["cls"]["loss"] < first["cls"]["loss"] and last["reg"]["loss"] < first["reg"]["loss"]


def test_class_balanced_sampler_visits_classes_equally():
    net = two_output_network()
    x = np.zeros((10, 4), dtype=np.float32)
    labels = np.array([0] * 8 + [1] * 2)
    seen = []

    class Spy(recorders.Recorder):
        def on_epoch_start(self, trainer, epoch, steps):
            seen.append(labels[trainer.progress.epoch_order])

    train = DatasetMapper(inp=x, cls=labels, sampler="class_balanced")
    Trainer(net, "cls", batch_size=4, stops=[stops.EpochWall(2)], recorders=[Spy()], seed=0).start(train)
    for order in seen:
        assert len(order) == 16 and (order == 0).sum() == 8 and (order == 1).sum() == 8


def test_bad_mapper_input_raises_clear_errors():
    net = build_mlp((4,), 2, hidden=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = np.zeros((6, 4), np.float32), np.zeros(6, np.int64)
    trainer = Trainer(net, "out", stops=[stops.EpochWall(1)], recorders=[])
    with pytest.raises(ValueError, match=r"key 'imp' is not a layer of this network; expected the names \['inp', 'out'\]"):
        trainer.start(DatasetMapper(inp=x, out=y), valid=DatasetMapper(imp=x, out=y))
    trainer = Trainer(net, "out", stops=[stops.EpochWall(1)], recorders=[])
    with pytest.raises(ValueError, match=r"layer 'hid' is neither an Input nor a trained output"):
        trainer.start(DatasetMapper(inp=x, out=y, hid=x))
    trainer = Trainer(net, "out", stops=[stops.EpochWall(1)], recorders=[])
    with pytest.raises(ValueError, match=r"DatasetMapper 'train': missing \['out'\]"):
        trainer.start(DatasetMapper(inp=x))
    trainer = Trainer(net, "out", stops=[stops.EpochWall(1)], recorders=[])
    with pytest.raises(ValueError, match=r"Input 'inp'.*shape"):
        trainer.start(DatasetMapper(inp=np.zeros((6, 5), np.float32), out=y))
    assert net.optimizer_state_dict()["params"] == {}
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_bad_trainer_arguments_raise():
    net = build_mlp((4,), 2, hidden=4)
    with pytest.raises(ValueError, match="at least one stop"):
        Trainer(net, "out", stops=[])
    with pytest.raises(ValueError, match="order must be one of"):
        Trainer(net, "out", stops=[stops.EpochWall(1)], order="zigzag")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, but received 0"):
        Trainer(net, "out", batch_size=0, stops=[stops.EpochWall(1)])
    with pytest.raises(ValueError, match="not an output layer"):
        Trainer(net, "hid", stops=[stops.EpochWall(1)])
    with pytest.raises(TypeError, match="stops expects"):
        Trainer(net, "out", stops=[3])
    trainer = Trainer(net, "out", stops=[stops.EarlyStopping("valid", "out")], recorders=[])
    with pytest.raises(ValueError, match=r"EarlyStopping watches stream 'valid', but the run has streams \['train'\]"):
        trainer.start({"inp": np.zeros((4, 4), np.float32), "out": np.zeros(4, np.int64)})


def test_best_must_name_a_stream_output_and_metric_of_the_run():
    net = build_mlp((4,), 2, hidden=4)
    data = {"inp": np.zeros((4, 4), np.float32), "out": np.zeros(4, np.int64)}
    with pytest.raises(ValueError, match=r"best must be \(stream, output, metric\).*\('valid', 'out'\)"):
        Trainer(net, "out", stops=[stops.EpochWall(1)], best=("valid", "out"))
    for best, problem in [(("valid", "out", "loss"), "stream 'valid' is not one of the run's \\['train'\\]"),
                          (("train", "outt", "loss"), "output 'outt' is not one of the trained \\['out'\\]"),
                          (("train", "out", "f1"), "metric 'f1' is not 'loss'")]:
        trainer = Trainer(net, "out", stops=[stops.EpochWall(1)], recorders=[], best=best)
        with pytest.raises(ValueError, match=problem):
            trainer.start(data)
