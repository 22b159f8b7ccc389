"""Precision modes (mariana.training.precision): "bf16-true", Lightning's aliases, the conversion a mode makes
when training starts, the scaler's checkpoint state, and a mode defined outside the package."""

import json

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS
from mariana import registry
from mariana.datasets import digits
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, stops
from mariana.training.loop.hardware import Hardware
from mariana.training.precision import Precision, modes
from tests.docs.markdown_code import ROOT, python_blocks


@pytest.fixture(scope="module")
def split():
    return digits(seed=0)


@pytest.fixture(scope="module")
def train(split):
    return DatasetMapper(inp=split["train"]["x"], out=split["train"]["y"])


def adam_mlp():
    mar.seed(0)
    return ML.Input(64, name="inp") > ML.Hidden(64, activation=MA.ReLU(), name="hid") > ML.SoftmaxClassifier(
        10, learning_scenari=[MS.Adam(3e-3)], name="out")


def fit(net, train, epochs=3, **options):
    return Trainer(net, "out", batch_size=32, stops=[stops.EpochWall(epochs)], recorders=[], seed=0, **options).start(train)


def test_bf16_true_learns_digits_with_bfloat16_params_and_adam_moments(split, train, tmp_path):
    net = adam_mlp()
    history = fit(net, train, precision="bf16-true", run_dir=tmp_path / "run")
    test = split["test"]
    assert net.accuracy("out", inp=test["x"], out=test["y"]) > 0.9  # chance: 0.1
    assert history[-1]["train"]["out"]["loss"] < 0.3 * history[0]["train"]["out"]["loss"]
    assert {p.dtype for p in net.parameters()} == {torch.bfloat16} and net["inp"].dtype == torch.bfloat16
    moments = net.optimizer_state_dict()["params"]
    assert {moments[key][state].dtype for key in ("hid.W", "hid.b", "out.W") for state in ("exp_avg", "exp_avg_sq")} == {torch.bfloat16}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["trainer"]["precision"] == "bf16-true"
    # Run calls take float32 numpy and return float32 numpy (numpy has no bfloat16).
    probabilities = net.propagate("out", inp=test["x"][:4].astype(np.float32))
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(axis=1), 1, atol=1e-2)
    assert net.predict("out", inp=test["x"][:4]).shape == (4,)


def test_a_bf16_network_saves_and_loads_as_bfloat16(train, split, tmp_path):
    net = adam_mlp()
    fit(net, train, epochs=1, precision="bf16-true")
    net.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")
    assert all(torch.equal(a, b) and b.dtype == torch.bfloat16 for a, b in zip(net.parameters(), clone.parameters()))
    assert clone.optimizer_state_dict()["params"]["hid.W"]["exp_avg"].dtype == torch.bfloat16
    x = split["test"]["x"][:5]
    assert np.array_equal(clone.propagate("out", inp=x), net.propagate("out", inp=x))
    assert mar.Network.from_config(net.get_config())["hid"].W.dtype == torch.bfloat16  # the config round-trips too


def test_bf16_true_resumes_bit_identically(train, tmp_path):
    from tests.training.run_child import RaiseAt

    options = {"batch_size": 64, "stops": [stops.EpochWall(2)], "seed": 0, "precision": "bf16-true"}
    trainer = Trainer(adam_mlp(), "out", recorders=[RaiseAt(2, 3)], run_dir=tmp_path / "run", **options)
    with pytest.raises(RuntimeError, match="recorder failure"):
        trainer.start(train)
    resumed = Trainer.resume(tmp_path / "run", recorders=[])
    reference = Trainer(adam_mlp(), "out", recorders=[], **options)
    reference.start(train)
    without_times = [[{key: value for key, value in entry.items() if key != "time"} for entry in run.history]
                     for run in (resumed, reference)]
    assert resumed.settings.precision == "bf16-true" and without_times[0] == without_times[1]
    assert all(torch.equal(a, b) and a.dtype == torch.bfloat16 for a, b in zip(resumed.net.parameters(), reference.net.parameters()))
    for key, state in reference.net.optimizer_state_dict()["params"].items():
        resumed_state = resumed.net.optimizer_state_dict()["params"][key]
        assert all(torch.equal(value, resumed_state[name]) for name, value in state.items()), key


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_training_after_precision_64_converts_the_network_back_to_float32(train, precision):
    net = build_mlp((64,), 10, hidden=16)
    fit(net, train, epochs=1, precision="64")
    assert net["hid"].W.dtype == torch.float64
    fit(net, train, epochs=1, precision=precision)
    assert {p.dtype for p in net.parameters()} == {torch.float32} and net["inp"].dtype == torch.float32
    assert {state["momentum_buffer"].dtype for state in net.optimizer_state_dict()["params"].values()} == {torch.float32}


def test_a_loaded_float64_network_trains_in_float32_with_the_default_precision(train, tmp_path):
    net = build_mlp((64,), 10, hidden=16).to(dtype=torch.float64)
    net.save(tmp_path / "m64.mar")
    loaded = mar.load(tmp_path / "m64.mar")
    assert loaded["hid"].W.dtype == torch.float64
    fit(loaded, train, epochs=1)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


@pytest.mark.parametrize(("given", "name"), [
    (16, "16-mixed"), ("16", "16-mixed"), ("bf16", "bf16-mixed"), ("32-true", "32"), (32, "32"),
    ("64-true", "64"), (64, "64"), ("bf16-true", "bf16-true"),
])
def test_lightnings_names_are_accepted_and_recorded_by_their_own_name(given, name, tmp_path):
    data = DatasetMapper(inp=np.random.default_rng(0).random((8, 4), dtype=np.float32), out=np.arange(8) % 2)
    trainer = Trainer(build_mlp((4,), 2, hidden=4), "out", batch_size=4, stops=[stops.EpochWall(1)], recorders=[],
                      precision=given, run_dir=tmp_path / "run")
    trainer.start(data)
    assert trainer.settings.precision == name
    assert json.loads((tmp_path / "run" / "run.json").read_text())["trainer"]["precision"] == name


@pytest.mark.parametrize("bad", ["16-true", "fp32", "BF16", 8, True, None])
def test_an_unknown_precision_lists_exactly_the_accepted_names(bad):
    with pytest.raises(ValueError, match=r"precision must be one of '32', '64', 'bf16-mixed', '16-mixed', 'bf16-true' "
                                         r"\(or the aliases '32-true', '64-true', 'bf16', '16'; an int means its str\), "
                                         rf"but received {bad!r}"):
        Trainer(build_mlp((4,), 2, hidden=4), "out", stops=[stops.EpochWall(1)], precision=bad)


def test_the_scaler_state_is_checkpointed_under_the_key_older_checkpoints_use():
    net = build_mlp((4,), 2, hidden=4)
    assert Hardware(net, device="cpu", precision="32").state_dict() == {}
    hardware = Hardware(net, device="cpu", precision="16-mixed")
    older = {"scaler": torch.amp.GradScaler("cpu", init_scale=1024.0).state_dict()}  # what the Trainer wrote before modes
    hardware.load_state_dict(older)
    assert set(hardware.state_dict()) == {"scaler"} and hardware.scaler.state_dict()["scale"] == 1024.0
    hardware.load_state_dict({})  # a checkpoint without a scaler leaves it as it is
    assert hardware.state_dict() == older


def guide_example() -> str:
    """The "Extending Mariana" page's precision example, as the page shows it (a user's script: one class, nothing else edited)."""
    return next(code for _, code, _ in python_blocks(ROOT / "docs" / "guide" / "extending.md") if '"my-bf16-true"' in code)


GUIDE_OUTPUT = """\
torch.bfloat16 float32 True
precision must be one of '32', '64', 'bf16-mixed', '16-mixed', 'bf16-true', 'my-bf16-true' (or the aliases '32-true', \
'64-true', 'bf16', '16'; an int means its str), but received 'bf16-tru'.
"""


def test_the_guides_example_mode_defined_outside_the_package_plugs_in_by_name(capsys):
    namespace = {"__name__": "extending_guide_example"}
    try:
        exec(compile(guide_example(), "extending-guide", "exec"), namespace)  # noqa: S102
        assert capsys.readouterr().out == GUIDE_OUTPUT
        assert modes()["my-bf16-true"] is namespace["BFloat16Weights"]
    finally:
        registry.unregister("BFloat16Weights")
    assert "my-bf16-true" not in modes()


def test_a_mode_name_already_taken_is_refused_and_names_the_owner():
    with pytest.raises(ValueError, match=r"Mine: precision name 'bf16-true' already belongs to "
                                         r"mariana.training.precision.bf16_true.BFloat16True; pick another name"):
        class Mine(Precision):
            names = ("bf16-true",)
    assert "Mine" not in registry.classes()
    with pytest.raises(ValueError, match=r"Eight: param_dtype must be one of"):
        class Eight(Precision):
            names = ("8-true",)
            param_dtype = torch.int8
    with pytest.raises(TypeError, match=r"Named: names must be a tuple of non-empty str, but is 'mine'"):
        class Named(Precision):
            names = "mine"


def test_a_subclass_without_names_of_its_own_is_a_base_not_a_second_bf16_true():
    from mariana.training.precision.bf16_true import BFloat16True

    class Base(BFloat16True):
        pass

    assert modes()["bf16-true"] is BFloat16True and Base not in modes().values()


def test_network_to_accepts_the_half_dtypes_and_refuses_others():
    net = build_mlp((4,), 2, hidden=4)
    for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.float32):
        net.to(dtype=dtype)
        assert {p.dtype for p in net.parameters()} == {dtype} and net["inp"].dtype == dtype
        expected = "float32" if dtype == torch.bfloat16 else str(dtype).removeprefix("torch.")  # numpy has no bfloat16
        assert net.propagate("out", inp=np.ones((1, 4), np.float32)).dtype == expected
    with pytest.raises(ValueError, match=r"Network.to: dtype must be one of torch.float32, torch.float64, torch.bfloat16, "
                                         r"torch.float16, but received torch.int8"):
        net.to(dtype=torch.int8)
