"""Hostile .mar files, data and file systems (issue 13): each test builds the hostile input itself."""

import errno
import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import safetensors.torch
import torch

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS
from mariana import files, optimizer_state, persistence
from tests.helpers import ROOT, SLOW_SAVE


def _trained(scenario, tmp_path, name="m.mar"):
    """A Hidden > SoftmaxClassifier net trained one step with ``scenario`` on the output, saved; returns its path."""
    mar.seed(0)
    net = ML.Input(4, name="inp") > ML.Hidden(3, name="hid") > ML.SoftmaxClassifier(2, learning_scenari=[scenario], name="out")
    net.train("out", inp=np.ones((2, 4), dtype="float32"), out=np.array([0, 1]))
    path = tmp_path / name
    net.save(path)
    return path


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(path, members, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _edit_optimizer(path, tensors=lambda t: t, scalars=lambda s: s):
    """Rewrite ``path`` with its optimizer tensors and JSON passed through the given edits."""
    members = _members(path)
    loaded = safetensors.torch.load(members["optimizer.safetensors"])
    members["optimizer.safetensors"] = safetensors.torch.save(tensors(loaded))
    members["optimizer.json"] = json.dumps(scalars(json.loads(members["optimizer.json"]))).encode()
    return _rewrite(path, members)


# -- 3. malformed optimizer state -------------------------------------------------------
@pytest.mark.parametrize("value", ["abc", 3, True, None], ids=["str", "int", "bool", "null"])
def test_a_non_tensor_where_the_optimizer_keeps_a_tensor_is_refused(value, tmp_path):
    path = _trained(MS.GradientDescent(0.1, momentum=0.9), tmp_path)

    def drop(tensors):
        del tensors["hid.W/momentum_buffer"]
        return tensors

    _edit_optimizer(path, drop, lambda s: {**s, "params": {"hid.W": {"momentum_buffer": value}}})
    with pytest.raises(ValueError, match=r"m.mar'?: optimizer state hid.W/momentum_buffer must be a F32 tensor shaped like hid.W "
                                         r"\(what GradientDescent\(lr=0.1, momentum=0.9.*\) keeps\), but the file holds .*optimizer=False"):
        mar.load(path)


@pytest.mark.parametrize(("key", "tensor", "expected"), [
    ("step", torch.zeros(3, 4), r"hid.W/step must be a F32 tensor of shape \[\] \(what Adam\(.*\) keeps\), but the file holds a F32 "
                                r"tensor of shape \[3, 4\]"),
    ("exp_avg", torch.zeros(3, 4, dtype=torch.float16), r"hid.W/exp_avg must be a F32 tensor shaped like hid.W .* F16 tensor"),
    ("exp_avg_sq", torch.zeros(3, 4, dtype=torch.int32), r"hid.W/exp_avg_sq must be a F32 tensor .* I32 tensor"),
])
def test_an_adam_moment_of_the_wrong_shape_or_dtype_is_refused(key, tensor, expected, tmp_path):
    path = _trained(MS.Adam(), tmp_path)
    _edit_optimizer(path, lambda tensors: {**tensors, f"hid.W/{key}": tensor})
    with pytest.raises(ValueError, match=expected):
        mar.load(path)


def test_an_unknown_or_missing_optimizer_key_loads_without_optimizer_state_and_says_so(tmp_path):
    path = _trained(MS.GradientDescent(0.1, momentum=0.9), tmp_path)
    _edit_optimizer(path, lambda t: {(k.replace("momentum_buffer", "momentum_bufer") if k.startswith("hid.W") else k): v
                                     for k, v in t.items()})
    with pytest.warns(persistence.OptimizerStateWarning, match=r"hid.W has state \['momentum_bufer'\], but GradientDescent.* keeps "
                                                               r"\['momentum_buffer'\]\), so the network was loaded without optimizer state"):
        clone = mar.load(path)
    assert clone.optimizer_state_dict()["params"] == {}
    adam = _trained(MS.Adam(), tmp_path, "adam.mar")
    _edit_optimizer(adam, lambda t: {k: v for k, v in t.items() if k != "out.W/exp_avg_sq"})
    with pytest.warns(persistence.OptimizerStateWarning, match=r"out.W has state \['exp_avg', 'step'\], but Adam"):
        assert mar.load(adam).optimizer_state_dict()["params"] == {}


def test_state_of_a_scenario_changed_after_training_loads_without_it_and_says_so(tmp_path):
    mar.seed(0)
    net = ML.Input(4, name="inp") > ML.SoftmaxClassifier(2, learning_scenari=[MS.Adam()], name="out")
    net.train("out", inp=np.ones((2, 4), dtype="float32"), out=np.array([0, 1]))
    net["out"].learning_scenari = [MS.GradientDescent(0.1, momentum=0.9)]
    net.save(tmp_path / "m.mar")
    with pytest.warns(persistence.OptimizerStateWarning, match="fresh momentum"):
        clone = mar.load(tmp_path / "m.mar")
    assert torch.equal(clone["out"].W, net["out"].W)


def test_inherited_and_wrapped_scenari_validate_their_real_state(tmp_path):
    mar.seed(0)
    net = (ML.Input((5, 3), name="inp") > ML.Bidirectional(ML.LSTM(4), name="bi")
           > ML.SoftmaxClassifier(2, learning_scenari=[MS.RMSProp(momentum=0.5)], name="out"))
    net.train("out", inp=np.ones((2, 5, 3), dtype="float32"), out=np.array([0, 1]))
    net.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")  # warnings are errors: the inherited RMSProp layout fits
    assert clone.optimizer_state_dict()["params"].keys() == net.optimizer_state_dict()["params"].keys()


def test_optimizer_false_skips_a_damaged_optimizer_state(tmp_path):
    path = _trained(MS.GradientDescent(0.1, momentum=0.9), tmp_path)
    _edit_optimizer(path, scalars=lambda s: {**s, "params": {"hid.b": {"momentum_buffer": "abc"}}})
    with pytest.raises(ValueError, match="hid.b/momentum_buffer"):
        persistence.load(path)
    assert persistence.load(path, optimizer=False).optimizer_state_dict()["params"] == {}


def test_optimizer_state_in_both_members_or_a_malformed_step_count_is_refused(tmp_path):
    path = _trained(MS.GradientDescent(0.1, momentum=0.9), tmp_path)
    _edit_optimizer(path, scalars=lambda s: {**s, "params": {"hid.W": {"momentum_buffer": 1.0}}})
    with pytest.raises(ValueError, match="both in optimizer.safetensors and in optimizer.json"):
        mar.load(path)
    for steps in (True, 2**70, -1):
        path = _trained(MS.GradientDescent(0.1, momentum=0.9), tmp_path)
        _edit_optimizer(path, scalars=lambda s, steps=steps: {**s, "scenari": {"out": {"steps": steps}}})
        with pytest.raises(ValueError, match="'steps' count"):
            mar.load(path)


def test_check_optimizer_state_validates_a_checkpoints_state_the_same_way():
    mar.seed(0)
    net = ML.Input(4, name="inp") > ML.Hidden(3, name="hid") > ML.SoftmaxClassifier(2, learning_scenari=[MS.Adam()], name="out")
    net.train("out", inp=np.ones((2, 4), dtype="float32"), out=np.array([0, 1]))
    state = net.optimizer_state_dict()
    assert optimizer_state.check_optimizer_state(net, state, "ckpt") == []
    state["params"]["hid.W"]["exp_avg"] = "abc"
    with pytest.raises(ValueError, match=r"ckpt: optimizer state hid.W/exp_avg must be a F32 tensor shaped like hid.W"):
        optimizer_state.check_optimizer_state(net, state, "ckpt")
    del state["params"]["hid.W"]["exp_avg"]
    assert optimizer_state.check_optimizer_state(net, state, "ckpt") == [
        "hid.W has state ['exp_avg_sq', 'step'], but " + repr(net["out"].optimizer) + " keeps ['exp_avg', 'exp_avg_sq', 'step']"]
    with pytest.raises(ValueError, match="unknown parameter 'evil.W'"):
        optimizer_state.check_optimizer_state(net, {"params": {"evil.W": {}}}, "ckpt")


# -- 4. zip bombs ------------------------------------------------------------------------
def _bomb(path, n=1024, lie_about_compressed_size=False):
    """A .mar whose architecture is consistent but whose weights member deflates ``4 * n * (n + 1)`` zero bytes."""
    with torch.device("meta"):
        net = ML.Input(n, name="inp") > ML.Regression(n, name="out")
    state = net.module.state_dict()
    architecture = {"format": "mariana", "format_version": 1, "network": net.get_config(),
                    "weights": {key: {"dtype": "F32", "shape": list(t.shape)} for key, t in state.items()}}
    header, offset = {}, 0
    for key, tensor in state.items():
        header[key] = {"dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + 4 * tensor.numel()]}
        offset += 4 * tensor.numel()
    raw = json.dumps(header).encode()
    weights = struct.pack("<Q", len(raw)) + raw + bytes(offset)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("architecture.json", json.dumps(architecture))
        archive.writestr("weights.safetensors", weights, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        archive.writestr("log.json", "[]")
    if lie_about_compressed_size:  # claim 1:1 in the central directory, so that the ratio looks innocent
        data = bytearray(path.read_bytes())
        entry = data.rindex(b"PK\x01\x02", 0, data.rindex(b"weights.safetensors"))
        struct.pack_into("<I", data, entry + 20, len(weights))
        path.write_bytes(bytes(data))
    return path, len(weights)


@pytest.fixture
def no_inflating(monkeypatch):
    """Fail the test if any member other than the small JSON ones is opened (i.e. inflated)."""
    original = zipfile.ZipFile.open

    def guarded(self, name, mode="r", *args, **kwargs):
        filename = name.filename if isinstance(name, zipfile.ZipInfo) else name
        assert mode != "r" or filename.endswith(".json"), f"{filename} was inflated"
        return original(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", guarded)


def test_a_zip_bomb_is_refused_before_anything_is_inflated(tmp_path, no_inflating):
    path, size = _bomb(tmp_path / "bomb.mar")
    assert path.stat().st_size * 100 < size  # deflate makes 4 MiB of zeros ~1000 times smaller
    with pytest.raises(ValueError, match=r"bomb.mar'?: member 'weights.safetensors' would inflate \d+ bytes into \d+ "
                                         r"\(\d+:1\); tensors never compress beyond 100:1.*Nothing was inflated"):
        mar.load(path)


def test_a_member_claiming_more_compressed_bytes_than_the_file_holds_is_refused(tmp_path, no_inflating):
    path, _ = _bomb(tmp_path / "liar.mar", lie_about_compressed_size=True)
    with pytest.raises(ValueError, match=r"member 'weights.safetensors' claims \d+ compressed bytes .* but the file holds only"):
        mar.load(path)


def test_max_bytes_lowers_the_cap_of_every_member_before_inflating(tmp_path, monkeypatch):
    mar.seed(0)
    net = ML.Input(128, name="inp") > ML.Regression(128, name="out")  # 66,048 bytes of weights
    for _ in range(20):
        net.note("a note that makes the generation log longer " * 8)
    net.save(tmp_path / "m.mar")
    assert 5_000 < len(_members(tmp_path / "m.mar")["log.json"]) < 30_000
    with pytest.raises(ValueError, match=r"'weights.safetensors' holds tensors of 66048 bytes, over the 30000-byte limit"):
        persistence.load(tmp_path / "m.mar", max_bytes=30_000)
    with pytest.raises(ValueError, match=r"member 'log.json' is \d+ bytes, over the 5000-byte limit"):
        persistence.load(tmp_path / "m.mar", max_bytes=5_000)
    assert persistence.load(tmp_path / "m.mar", max_bytes=100_000)
    for wrong in (0, -1, 1.5, "big", True):
        with pytest.raises(ValueError, match="max_bytes must be an int >= 1"):
            persistence.load(tmp_path / "m.mar", max_bytes=wrong)


# -- 6. temps left by kills --------------------------------------------------------------
def _start_slow_save(target, marker):
    child = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(target), str(marker)], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.poll() is None, "the saving process ended before it was killed"
        assert time.monotonic() < deadline, "the saving process never started writing"
        time.sleep(0.05)
    return child


def _temps(folder, name="m.mar"):
    return sorted(p.name for p in folder.iterdir() if files.temp_pattern(name).match(p.name))


def test_the_next_save_removes_a_killed_saves_temp_but_not_a_live_ones(tmp_path):
    target, net = tmp_path / "m.mar", ML.Input(2, name="inp") > ML.Regression(1, name="out")
    child = _start_slow_save(target, tmp_path / "half_written")
    try:
        live = _temps(tmp_path)
        assert len(live) == 1
        net.save(target)  # the other process is still writing: its temp stays
        assert _temps(tmp_path) == live
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert _temps(tmp_path) == live  # what a kill leaves
    net.save(target)
    assert _temps(tmp_path) == []
    assert mar.load(target)


def test_stale_temp_removal_never_touches_a_users_file(tmp_path):
    user = tmp_path / "precious.txt"
    user.write_text("mine")
    keep = [".m.mar.notes.tmp", "m.mar.abcd1234.tmp", ".m.mar.abcd1234.tmp.bak", ".m.mar.ABCD1234.tmp", ".m.mar.abcd12345.tmp",
            ".other.mar.abcd1234.tmp"]
    for name in keep:
        (tmp_path / name).write_text("user data")
    (tmp_path / ".m.mar.dir12345.tmp").mkdir()
    (tmp_path / ".m.mar.link1234.tmp").symlink_to(user)
    os.mkfifo(tmp_path / ".m.mar.fifo1234.tmp")
    locked = tmp_path / ".m.mar.live1234.tmp"
    locked.write_text("a live writer's temp")
    stale = tmp_path / ".m.mar.dead1234.tmp"
    stale.write_text("a killed writer's temp")
    with open(locked, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        (ML.Input(2, name="inp") > ML.Regression(1, name="out")).save(tmp_path / "m.mar")
    assert not stale.exists()
    assert locked.exists() and user.read_text() == "mine"
    assert all((tmp_path / name).read_text() == "user data" for name in keep)
    assert (tmp_path / ".m.mar.dir12345.tmp").is_dir() and (tmp_path / ".m.mar.link1234.tmp").is_symlink()
    assert (tmp_path / ".m.mar.fifo1234.tmp").exists()


def test_without_flock_saves_still_work_and_no_temp_is_judged_dead(tmp_path, monkeypatch):
    stale = tmp_path / ".m.mar.dead1234.tmp"
    stale.write_text("x")

    def unsupported(descriptor, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", unsupported)  # e.g. an NFS mount without lock support
    (ML.Input(2, name="inp") > ML.Regression(1, name="out")).save(tmp_path / "m.mar")
    assert mar.load(tmp_path / "m.mar") and stale.exists()


# -- 10. messages ------------------------------------------------------------------------
def test_saving_to_an_empty_path_or_a_directory_says_so(tmp_path):
    net = ML.Input(2, name="inp") > ML.Regression(1, name="out")
    with pytest.raises(ValueError, match="save expects a file path, but received an empty string"):
        net.save("")
    with pytest.raises(ValueError, match="load expects a file path"):
        mar.load("")
    with pytest.raises(ValueError, match=r"it is a directory; give a file name inside it"):
        net.save(tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_parent_that_is_a_file_is_not_called_missing(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    net = ML.Input(2, name="inp") > ML.Regression(1, name="out")
    for target in (tmp_path / "notes.txt" / "m.mar", tmp_path / "notes.txt" / "sub" / "m.mar"):
        with pytest.raises(ValueError, match=r"notes.txt' is a file, not a directory") as refused:
            net.save(target)
        assert "does not exist" not in str(refused.value)


def test_a_full_disk_names_the_file_and_changes_nothing(tmp_path, monkeypatch):
    net = ML.Input(2, name="inp") > ML.Regression(1, name="out")
    target = tmp_path / "m.mar"
    net.save(target)
    before = target.read_bytes()

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"No space left on device; nothing was written.*: '.*m.mar'") as failed:
        net.save(target)
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(target)
    monkeypatch.undo()
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["m.mar"]

    def write(handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="m.mar") as failed:
        files.atomic_write(target, write)
    assert failed.value.errno == errno.ENOSPC and os.listdir(tmp_path) == ["m.mar"]


# -- 11. bad data ------------------------------------------------------------------------
def test_non_finite_weights_load_with_a_warning_naming_the_layers(tmp_path):
    mar.seed(0)
    net = ML.Input(4, name="inp") > ML.Hidden(3, name="hid") > ML.Hidden(3, name="ok") > ML.Regression(2, name="out")
    with torch.no_grad():
        net["hid"].W[0, 0] = float("nan")
        net["out"].b[1] = float("inf")
    net.save(tmp_path / "m.mar")
    with pytest.warns(persistence.NonFiniteWeightsWarning,
                      match=r"layer\(s\) \['hid', 'out'\] hold NaN or infinite values \(hid.W: 1 NaN, 0 inf, out.b: 0 NaN, 1 inf\)"):
        clone = mar.load(tmp_path / "m.mar")
    assert torch.equal(clone["hid"].W.isnan(), net["hid"].W.isnan()) and torch.isinf(clone["out"].b[1])


@pytest.mark.parametrize("call", ["train", "test", "propagate"])
def test_masked_arrays_are_refused_where_data_enters(call):
    mar.seed(0)
    net = ML.Input(2, name="inp") > ML.Regression(1, learning_scenari=[MS.GradientDescent(0.1)], name="out")
    x = np.ma.masked_array(np.ones((3, 2), dtype="float32"), mask=[[0, 0], [0, 1], [0, 0]])
    y = np.zeros((3, 1), dtype="float32")
    before = net["out"].W.detach().clone()
    kwargs = {"inp": x} if call == "propagate" else {"inp": x, "out": y}
    with pytest.raises(ValueError, match=r"Input 'inp': input data is a numpy masked array \(1 of 6 values masked\)"):
        getattr(net, call)("out", **kwargs)
    if call != "propagate":
        with pytest.raises(ValueError, match="Regression 'out': targets is a numpy masked array"):
            getattr(net, call)("out", inp=x.filled(0), out=np.ma.masked_invalid(np.array([[0.0], [np.nan], [1.0]], dtype="float32")))
    assert torch.equal(net["out"].W, before)


