"""Devices, precision and compiled steps (issue 10), checked on the CPU; the CUDA paths' logic is unit-tested here too."""

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS
from mariana import devices
from mariana.datasets import digits
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, stops
from mariana.training.loop import hardware


@pytest.fixture(scope="module")
def data():
    split = digits(seed=0)
    train = DatasetMapper(inp=split["train"]["x"], out=split["train"]["y"])
    return train, split["test"]


def train_digits(data, epochs=4, **options):
    train, test = data
    mar.seed(0)
    net = build_mlp((64,), 10, hidden=64)
    history = Trainer(net, "out", batch_size=32, stops=[stops.EpochWall(epochs)], recorders=[], seed=0, **options).start(train)
    return net, history, net.accuracy("out", inp=test["x"], out=test["y"])


def test_cpu_and_auto_train_here(data):
    _, _, accuracy = train_digits(data, device="cpu")
    assert accuracy > 0.9
    if not torch.cuda.is_available() and not devices.mps_available():
        assert devices.resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(("spec", "message"), [
    ("cuda", r"device='cuda' needs CUDA, which this machine does not have"),
    ("cuda:1", r"device='cuda:1' needs CUDA"),
    ("mps", r"device='mps' needs Apple's Metal backend"),
    ("gpu", r"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', but received 'gpu'"),
])
def test_a_device_this_machine_lacks_fails_before_anything_is_written(tmp_path, spec, message):
    net = build_mlp((4,), 2, hidden=4)
    with pytest.raises(ValueError, match=message):
        Trainer(net, "out", stops=[stops.EpochWall(1)], device=spec, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_cuda_indices_are_checked_against_the_device_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert devices.resolve_device("auto") == devices.resolve_device("cuda") == torch.device("cuda", 0)  # as tensors report it
    with pytest.raises(ValueError, match=r"device='cuda:2': this machine has 2 CUDA device\(s\)"):
        devices.resolve_device("cuda:2")


@pytest.mark.parametrize(("device", "nbytes", "free", "kept"), [
    ("cpu", 10**12, None, True), ("cuda", 500, 1000, True), ("cuda", 501, 1000, False), ("mps", 1, None, False),
])
def test_a_stream_stays_on_the_device_when_it_takes_at_most_half_its_free_memory(device, nbytes, free, kept):
    # mps cannot report its free memory: streams stay on the host and move batch by batch
    assert devices.keep_on_device(nbytes, torch.device(device), free=free) is kept


def test_a_stream_kept_on_the_host_trains_exactly_as_one_on_the_device(data, monkeypatch):
    net_device, _, _ = train_digits(data, epochs=1)
    monkeypatch.setattr(hardware, "keep_on_device", lambda nbytes, device: False)  # as on a GPU too small for the data
    net_host, _, _ = train_digits(data, epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(net_device.parameters(), net_host.parameters()))


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_learns_as_well_as_float32_and_keeps_float32_weights(data, precision):
    _, _, reference = train_digits(data)
    net, history, accuracy = train_digits(data, precision=precision)
    assert abs(accuracy - reference) < 0.03, (accuracy, reference)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert net.propagate("out", inp=data[1]["x"][:3]).dtype == np.float32


def test_precision_64_makes_the_network_float64(data, tmp_path):
    net, _, accuracy = train_digits(data, precision="64")
    assert accuracy > 0.9 and all(p.dtype == torch.float64 for p in net.parameters())
    assert net.propagate("out", inp=data[1]["x"][:3]).dtype == np.float64
    net.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")
    assert torch.equal(clone["out"].W, net["out"].W) and clone["out"].W.dtype == torch.float64


def test_training_inside_a_users_autocast_still_learns(data):
    """The trap: autocast's weight cache kept the first bf16 copy of each weight for the whole run (train loss flat)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, history, accuracy = train_digits(data)
        probabilities = build_mlp((64,), 10, hidden=8).propagate("out", inp=data[1]["x"][:2])
    assert history[-1]["train"]["out"]["loss"] < 0.5 * history[0]["train"]["out"]["loss"] and accuracy > 0.85
    assert probabilities.dtype == np.float32  # numpy cannot hold bfloat16: run calls return the network's dtype


def test_float64_and_half_inputs_make_what_they_feed_compute_in_their_dtype_and_other_floats_are_refused():
    mar.seed(0)
    net = ML.Input(3, dtype="float64", name="x") > ML.Hidden(4, name="h") > ML.Regression(1, learning_scenari=[MS.Adam(0.01)], name="y")
    assert net["h"].W.dtype == torch.float64
    loss = net.train("y", x=np.ones((2, 3)), y=np.zeros((2, 1)))["y"]
    assert loss.dtype == torch.float64
    for dtype in (torch.float16, torch.bfloat16):  # a whole network in half precision, as precision="bf16-true" makes one
        half = ML.Input(3, dtype=str(dtype).removeprefix("torch."), name="half") > ML.Hidden(2, name="h2")
        assert half["h2"].W.dtype == dtype
    with pytest.raises(ValueError, match=r"Input 'f8' produces torch.float8_e4m3fn, which Hidden 'h3' cannot compute in: layers compute "
                                         r"in torch.float32, torch.float64, torch.bfloat16, torch.float16. .*precision="):
        ML.Input(3, dtype="float8_e4m3fn", name="f8") > ML.Hidden(2, name="h3")


@pytest.mark.parametrize("mode", [True, "reduce-overhead"])
def test_compile_gives_the_eager_results(data, mode):
    import mariana.activations as MA

    train, test = data
    results = []
    for compile in (False, mode):  # no dropout: compiled code draws its random numbers differently
        mar.seed(0)
        net = ML.Input(64, name="inp") > ML.Hidden(32, activation=MA.ReLU(), name="hid") > ML.SoftmaxClassifier(
            10, learning_scenari=[MS.GradientDescent(0.05, momentum=0.9)], name="out")
        history = Trainer(net, "out", batch_size=32, stops=[stops.EpochWall(1)], recorders=[], seed=0, compile=compile).start(
            train, valid=DatasetMapper(inp=test["x"], out=test["y"]))
        results.append((net, history))
    (eager, eager_history), (compiled, compiled_history) = results
    for a, b in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert compiled_history[0]["valid"]["out"]["loss"] == pytest.approx(eager_history[0]["valid"]["out"]["loss"], rel=1e-4)


def test_a_compile_mode_is_passed_to_torch_and_an_unknown_one_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    modes = []

    def recording_compile(function, mode=None):
        modes.append(mode)
        return function

    monkeypatch.setattr(torch, "compile", recording_compile)
    marks = []  # CUDA graphs: each step of "reduce-overhead" tells torch a new iteration starts
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(len(modes)))
    mar.seed(0)
    net = build_mlp((4,), 2, hidden=4)
    data = DatasetMapper(inp=np.random.default_rng(0).random((8, 4), dtype=np.float32), out=np.arange(8) % 2)
    for compile in (True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"):
        trainer = Trainer(net, "out", batch_size=4, stops=[stops.EpochWall(1)], recorders=[], compile=compile)
        trainer.start(data)
        assert trainer.hardware.compile == ("default" if compile is True else compile)
    assert modes == ["default", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
    assert marks == [3, 3]  # two steps, in the third run only
    with pytest.raises(ValueError, match=r"compile must be True, False or one of 'default', 'reduce-overhead', 'max-autotune', "
                                         r"'max-autotune-no-cudagraphs', but received 'fastest'"):
        Trainer(net, "out", stops=[stops.EpochWall(1)], compile="fastest", run_dir=tmp_path / "run")
    with pytest.raises(TypeError, match=r"compile must be True, False or one of .* but received 1"):
        Trainer(net, "out", stops=[stops.EpochWall(1)], compile=1, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_compile_mode_is_recorded_and_rebuilt_on_resume(tmp_path, data, monkeypatch):
    import json

    from tests.training.run_child import RaiseAt

    monkeypatch.setattr(torch, "compile", lambda function, mode=None: function)  # the mode's bookkeeping, not the compiler
    train, _ = data
    mar.seed(0)
    trainer = Trainer(build_mlp((64,), 10, hidden=16), "out", batch_size=64, stops=[stops.EpochWall(2)], recorders=[RaiseAt(2, 3)],
                      run_dir=tmp_path / "run", compile="reduce-overhead", seed=0)
    with pytest.raises(RuntimeError, match="recorder failure"):
        trainer.start(train)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["trainer"]["compile"] == "reduce-overhead"
    resumed = Trainer.resume(tmp_path / "run", recorders=[])
    assert (resumed.settings.compile, resumed.hardware.compile, resumed.epoch) == ("reduce-overhead", "reduce-overhead", 2)


def test_a_step_the_backend_cannot_compile_runs_eagerly_with_a_warning(data, monkeypatch):
    def failing_compile(function, **options):
        def compiled(*args):
            raise RuntimeError("the backend cannot compile this layer")
        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    eager, _, _ = train_digits(data, epochs=1)
    with pytest.warns(hardware.CompileWarning, match=r"could not compile the step .*running it eagerly"):
        fallback, _, _ = train_digits(data, epochs=1, compile=True)
    assert all(torch.equal(a, b) for a, b in zip(eager.parameters(), fallback.parameters()))


def test_the_options_round_trip_through_resume(tmp_path, data):
    from tests.training.run_child import RaiseAt

    train, _ = data
    mar.seed(0)
    trainer = Trainer(build_mlp((64,), 10, hidden=16), "out", batch_size=64, stops=[stops.EpochWall(2)], recorders=[RaiseAt(2, 3)],
                      run_dir=tmp_path / "run", precision="16-mixed", device="cpu", seed=0)
    with pytest.raises(RuntimeError, match="recorder failure"):
        trainer.start(train)
    resumed = Trainer.resume(tmp_path / "run", recorders=[])
    assert (resumed.settings.precision, resumed.settings.device, resumed.hardware.scaler is not None) == ("16-mixed", "cpu", True)
    mar.seed(0)
    reference = Trainer(build_mlp((64,), 10, hidden=16), "out", batch_size=64, stops=[stops.EpochWall(2)], recorders=[],
                        precision="16-mixed", device="cpu", seed=0)
    reference.start(train)
    # the scaler's growth tracker counts every step since its last change: equal only if the resume restored it
    assert resumed.hardware.scaler.state_dict() == reference.hardware.scaler.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(resumed.net.parameters(), reference.net.parameters()))


def test_class_ids_that_are_the_targets_stay_one_tensor_moved_reordered_and_sliced():
    from mariana.training.data.streams import PreparedStream

    net = ML.Input(2, name="inp") > ML.SoftmaxClassifier(3, learning_scenari=[MS.Adam(0.01)], name="out")
    stream = PreparedStream.prepare(net.cost_plan("out"), {"inp": np.zeros((4, 2)), "out": [0, 1, 2, 1]}, ["out"])
    assert stream.class_ids["out"] is stream.targets["out"]
    assert stream.nbytes() == 4 * 2 * 4 + 4 * 8  # the ids counted once
    for moved in (stream.to(torch.device("cpu")), stream.reordered(torch.tensor([3, 2, 1, 0])), stream.rows(1, 3)):
        assert moved.class_ids["out"] is moved.targets["out"]
    assert stream.reordered(torch.tensor([3, 2, 1, 0])).rows(0, 2).class_ids["out"].tolist() == [1, 2]
    assert len(stream.rows(1, 3)) == 2 and stream.rows(1, 3).device == torch.device("cpu")
