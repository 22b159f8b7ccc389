"""Saving and loading .mar files: round trips, resumed training, atomicity, and hostile files."""

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS
from mariana import persistence
from tests.abstraction_cases import ABSTRACTION_CASES
from tests.helpers import SLOW_SAVE
from tests.layer_cases import LAYER_CASES, layer_case

ROOT = Path(__file__).resolve().parent.parent


def build(case):
    mar.seed(0)
    return case.build()


# -- round trips ----------------------------------------------------------------------
@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_every_layer_case_round_trips(case, tmp_path):
    network = build(case)
    path = tmp_path / "m.mar"
    network.save(path)
    clone = mar.load(path)
    assert clone.get_config() == network.get_config()
    original_state, clone_state = network.state_dict(), clone.state_dict()
    assert original_state.keys() == clone_state.keys()
    for key, tensor in original_state.items():
        assert torch.equal(tensor, clone_state[key]) and tensor.dtype == clone_state[key].dtype, key
    feeds = case.feeds()
    np.testing.assert_array_equal(clone.propagate(case.layer, **feeds), network.propagate(case.layer, **feeds))


def _carrier(abstraction):
    """A Regression(3) that carries ``abstraction`` in the role its base class gives it."""
    import mariana.activations as MA
    import mariana.costs as MC
    import mariana.decorators as MD
    import mariana.initializations as MI
    import mariana.regularizations as MR

    roles = [(MA.Activation, "activation"), (MC.Cost, "cost"), (MD.Decorator, "decorators"), (MR.Regularization, "regularizations"),
             (MI.Initialization, "initializations"), (MS.LearningScenario, "learning_scenari")]
    if isinstance(abstraction, MS.Schedule):
        kwargs = {"learning_scenari": [MS.GradientDescent(0.1, schedule=abstraction)]}
    else:
        role = next(name for base, name in roles if isinstance(abstraction, base))
        kwargs = {role: abstraction if role in ("activation", "cost") else [abstraction]}
    return ML.Input(3, name="inp") > ML.Regression(3, name="out", **kwargs)


@pytest.mark.parametrize("abstraction", ABSTRACTION_CASES, ids=repr)
def test_every_abstraction_round_trips_through_a_file(abstraction, tmp_path):
    mar.seed(0)
    network = _carrier(abstraction)
    network.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")
    assert clone["out"].get_config() == network["out"].get_config()
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    np.testing.assert_array_equal(clone.propagate("out", inp=x), network.propagate("out", inp=x))


def _two_output_net(scenario):
    """``hid`` and ``cls`` learn with ``scenario()``, ``reg`` with a scheduled Adam."""
    mar.seed(3)
    i = ML.Input(5, name="inp")
    h = ML.Hidden(7, learning_scenari=[scenario()], name="hid")
    o1 = ML.SoftmaxClassifier(3, learning_scenari=[scenario()], name="cls")
    o2 = ML.Regression(2, learning_scenari=[MS.Adam(lr=0.01, schedule=MS.StepDecay(2, 0.5))], name="reg")
    i > h > o1  # noqa: B015 (wiring)
    return h > o2


def _batches(count):
    rng = np.random.default_rng(7)
    return [{"inp": rng.normal(size=(8, 5)).astype("float32"), "cls": rng.integers(0, 3, size=8),
             "reg": rng.normal(size=(8, 2)).astype("float32")} for _ in range(count)]


@pytest.mark.parametrize("scenario", [lambda: MS.GradientDescent(lr=0.1, momentum=0.9, nesterov=True), lambda: MS.Adam(lr=0.01)],
                         ids=["sgd_momentum", "adam"])
def test_reloaded_network_keeps_training_identically(scenario, tmp_path):
    original = _two_output_net(scenario)
    batches = _batches(6)
    for batch in batches[:3]:
        original.train(["cls", "reg"], **batch)
    original.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")
    assert clone.optimizer_state_dict()["scenari"] == original.optimizer_state_dict()["scenari"]
    for batch in batches[3:]:
        expected = original.train(["cls", "reg"], **batch)
        received = clone.train(["cls", "reg"], **batch)
        assert {k: float(v) for k, v in expected.items()} == {k: float(v) for k, v in received.items()}
    for key, tensor in original.state_dict().items():
        assert torch.equal(tensor, clone.state_dict()[key]), key


def test_without_optimizer_state_training_diverges(tmp_path):
    original = _two_output_net(lambda: MS.GradientDescent(lr=0.1, momentum=0.9))
    batches = _batches(4)
    for batch in batches[:2]:
        original.train(["cls", "reg"], **batch)
    original.save(tmp_path / "m.mar", optimizer=False)
    with zipfile.ZipFile(tmp_path / "m.mar") as archive:
        assert "optimizer.safetensors" not in archive.namelist()
    clone = mar.load(tmp_path / "m.mar")
    assert clone.optimizer_state_dict()["params"] == {}
    original.train(["cls", "reg"], **batches[2])
    clone.train(["cls", "reg"], **batches[2])
    assert not torch.equal(original["hid"].W, clone["hid"].W)  # momentum was dropped


def test_custom_registered_layer_with_a_buffer_round_trips(tmp_path):
    @mar.register
    class ShiftScale(ML.Layer):
        hyperparameters = ("offset",)

        def __init__(self, offset=0.5, **kwargs):
            super().__init__(**kwargs)
            self.offset = offset

        def output_shape(self, input_shape):
            return input_shape

        def build(self, input_shape):
            self.add_param("s", input_shape, torch.nn.init.normal_)
            self.register_buffer("count", torch.arange(float(input_shape[0])))

        def forward(self, x):
            return x * self.s + self.offset + self.count

    mar.seed(1)
    network = ML.Input(3, name="x") > ShiftScale(offset=2.0, name="shift")
    network["shift"].count += 10
    network.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")
    assert isinstance(clone["shift"], ShiftScale) and clone["shift"].offset == 2.0
    assert torch.equal(clone["shift"].count, network["shift"].count)
    x = np.ones((2, 3), dtype="float32")
    np.testing.assert_array_equal(clone.propagate("shift", x=x), network.propagate("shift", x=x))


def test_generation_log_survives_and_records_save_and_load(tmp_path):
    network = build(layer_case("Hidden"))
    network.note("first try")
    network.save(tmp_path / "m.mar")
    assert network.log[-1]["event"] == "save"
    clone = mar.load(tmp_path / "m.mar")
    events = [entry["event"] for entry in clone.log]
    assert events[-3:] == ["note", "save", "load"]
    assert clone.log[-3]["text"] == "first try"
    assert all(isinstance(entry["time"], float) for entry in clone.log)
    assert [e["event"] for e in network.log] == events[:-1]


def test_loading_leaves_the_global_rng_alone(tmp_path):
    build(layer_case("Hidden")).save(tmp_path / "m.mar")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    mar.load(tmp_path / "m.mar")
    assert torch.equal(torch.rand(3), expected)


def test_load_never_unpickles(tmp_path, monkeypatch):
    build(layer_case("SoftmaxClassifier")).save(tmp_path / "m.mar")

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    mar.load(tmp_path / "m.mar")


def test_bad_arguments(tmp_path):
    network = build(layer_case("Input"))
    with pytest.raises(TypeError, match="file path"):
        network.save(42)
    with pytest.raises(TypeError, match="Network"):
        persistence.save("not a network", tmp_path / "m.mar")
    with pytest.raises(ValueError, match="does not exist"):
        network.save(tmp_path / "missing" / "m.mar")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(FileNotFoundError):
        mar.load(tmp_path / "nothing.mar")


# -- hostile and broken files ----------------------------------------------------------
class _Payload:
    """Unpickling this creates the sentinel file."""

    def __init__(self, sentinel):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture
def members(tmp_path):
    network = _two_output_net(lambda: MS.GradientDescent(lr=0.1, momentum=0.9))
    network.train(["cls", "reg"], **_batches(1)[0])
    network.save(tmp_path / "good.mar")
    with zipfile.ZipFile(tmp_path / "good.mar") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path, items):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in items:
            archive.writestr(name, data)
    return path


def _architecture(members, change):
    architecture = json.loads(members["architecture.json"])
    change(architecture)
    return {**members, "architecture.json": json.dumps(architecture).encode()}


def _safetensors(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _set_class(architecture, name):
    architecture["network"]["layers"][1]["class"] = name


HOSTILE = {
    "unknown_class": (lambda m, s: _architecture(m, lambda a: _set_class(a, "os.system")), "Unknown class name 'os.system'"),
    "builtin_name_as_class": (lambda m, s: _architecture(m, lambda a: _set_class(a, "system")), "Unknown class name"),
    "pickle_in_weights": (lambda m, s: {**m, "weights.safetensors": pickle.dumps(_Payload(s))}, "header|safetensors|bytes"),
    "pickle_as_architecture": (lambda m, s: {**m, "architecture.json": pickle.dumps(_Payload(s))}, "not valid JSON"),
    "pickle_member_added": (lambda m, s: {**m, "data.pkl": pickle.dumps(_Payload(s))}, "unexpected member 'data.pkl'"),
    "path_escape": (lambda m, s: {**m, "../../escape.json": b"{}"}, "escaping the archive"),
    "absolute_path": (lambda m, s: {**m, "/tmp/abs.json": b"{}"}, "escaping the archive"),
    "newer_version": (lambda m, s: _architecture(m, lambda a: a.update(format_version=99)), "newer"),
    "not_a_mar_zip": (lambda m, s: {"readme.txt": b"hello"}, "unexpected member"),
    "missing_weights": (lambda m, s: {k: v for k, v in m.items() if k != "weights.safetensors"}, "missing member"),
    "malformed_json": (lambda m, s: {**m, "log.json": b"[{"}, "not valid JSON"),
    "deep_json": (lambda m, s: {**m, "log.json": b"[" * 100000 + b"]" * 100000}, "not valid JSON"),
    "duplicate_json_keys": (lambda m, s: {**m, "log.json": b'[{"a": 1, "a": 2}]'}, "duplicate keys"),
    "wrong_format": (lambda m, s: _architecture(m, lambda a: a.update(format="keras")), "does not declare format"),
    "malformed_layer_config": (lambda m, s: _architecture(m, lambda a: a["network"]["layers"][1]["config"].update(size="big")),
                               "size"),
    "declared_shape_mismatch": (lambda m, s: _architecture(m, lambda a: a["weights"]["hid.W"].update(shape=[7, 6])), "hid.W"),
    "huge_architecture": (lambda m, s: _architecture(m, lambda a: a["network"]["layers"][1]["config"].update(size=10**12)),
                          "hid.W"),
    "safetensors_header_lies": (lambda m, s: {**m, "weights.safetensors": _safetensors(
        {"hid.W": {"dtype": "F32", "shape": [7, 5], "data_offsets": [0, 140]}})}, "weights.safetensors"),
    "huge_safetensors_header": (lambda m, s: {**m, "weights.safetensors": struct.pack("<Q", 2**62) + b"{}"}, "header"),
    "optimizer_names_unknown_param": (lambda m, s: {**m, "optimizer.safetensors": _safetensors(
        {"evil.W/momentum_buffer": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}, b"\0" * 4)}, "evil.W"),
    "optimizer_steps_malformed": (lambda m, s: {**m, "optimizer.json": b'{"params": {}, "scenari": {"cls": {"steps": "x"}}}'},
                                  "steps"),
    "zip_bomb_log": (lambda m, s: {**m, "log.json": b"[" + b" " * (persistence.MAX_JSON_BYTES + 10) + b"]"}, "limit"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_or_broken_file_is_refused_and_runs_nothing(case, members, tmp_path):
    sentinel = tmp_path / "pwned"
    change, message = HOSTILE[case]
    path = _write_zip(tmp_path / "bad.mar", change(members, sentinel).items())
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=message):
        mar.load(path)
    assert not sentinel.exists()
    assert sorted(os.listdir(tmp_path)) == before


def test_duplicate_member_names_are_refused(members, tmp_path):
    items = list(members.items()) + [("weights.safetensors", members["weights.safetensors"])]
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = _write_zip(tmp_path / "dup.mar", items)
    with pytest.raises(ValueError, match="appears twice"):
        mar.load(path)


def test_non_zip_truncated_and_corrupt_files_are_refused(members, tmp_path):
    sentinel = tmp_path / "pwned"
    (tmp_path / "pickle.mar").write_bytes(pickle.dumps(_Payload(sentinel)))
    with pytest.raises(ValueError, match="not a .mar file"):
        mar.load(tmp_path / "pickle.mar")
    good = _write_zip(tmp_path / "good.mar", members.items()).read_bytes()
    (tmp_path / "truncated.mar").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="not a .mar file"):
        mar.load(tmp_path / "truncated.mar")
    with zipfile.ZipFile(tmp_path / "stored.mar", "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    corrupt = bytearray((tmp_path / "stored.mar").read_bytes())
    offset = corrupt.index(members["weights.safetensors"][-64:])
    corrupt[offset:offset + 8] = b"\xff" * 8
    (tmp_path / "corrupt.mar").write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="corrupt"):
        mar.load(tmp_path / "corrupt.mar")
    assert not sentinel.exists()


# -- atomic save -------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new_file", "replacing"])
def test_killed_save_never_leaves_a_corrupt_file(existing, tmp_path):
    target, marker = tmp_path / "m.mar", tmp_path / "half_written"
    if existing:
        build(layer_case("Hidden")).save(target)
        old = target.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(target), str(marker)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the saving process ended before it was killed"
            assert time.monotonic() < deadline, "the saving process never started writing"
            time.sleep(0.05)
        temp_files = [p for p in tmp_path.iterdir() if p.name.startswith(".m.mar.")]
        assert temp_files and temp_files[0].stat().st_size > 0  # the save really was under way
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    if existing:
        assert target.read_bytes() == old
        mar.load(target)
    else:
        assert not target.exists()


def test_tied_params_are_saved_once_each_and_stay_equal(tmp_path):
    @mar.register
    class TiedPair(ML.Layer):
        def output_shape(self, input_shape):
            return input_shape

        def build(self, input_shape):
            self.add_param("a", input_shape, torch.nn.init.normal_)
            self.register_buffer("a_copy", self.a.detach())  # shares memory with the param

        def forward(self, x):
            return x * self.a + self.a_copy

    mar.seed(0)
    network = ML.Input(3, name="x") > TiedPair(name="tied")
    network.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")
    assert torch.equal(clone["tied"].a_copy, network["tied"].a_copy) and torch.equal(clone["tied"].a, network["tied"].a)


def test_saved_files_get_the_usual_permissions_not_the_temp_files(tmp_path):
    net = ML.Input(2, name="inp") > ML.Regression(1, name="out")
    net.save(tmp_path / "m.mar")
    mode = (tmp_path / "m.mar").stat().st_mode & 0o777
    umask = os.umask(0o022)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # 0o644 under the usual umask, not mkstemp's 0o600
