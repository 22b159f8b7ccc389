"""The command line as a user meets it: wrong arguments, custom classes, hostile files, an installed package."""

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS
from mariana import cli, registry

ROOT = Path(__file__).resolve().parent.parent


def run_cli(argv, capsys):
    """``(status, stdout, stderr)`` of ``mariana <argv>`` run in this process."""
    try:
        status = cli.main(argv)
    except SystemExit as exit:  # argparse exits itself
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MARIANA_DATA", raising=False)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "log.csv").write_text("epoch\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a_file").write_text("not a model")
    return tmp_path


@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required"),
    (["nope"], "invalid choice: 'nope'"),
    (["demo", "--epochs", "0"], "argument --epochs: expected an int >= 1, but received '0'"),
    (["demo", "--epochs", "-1"], "argument --epochs: expected an int >= 1, but received '-1'"),
    (["demo", "--epochs", "ten"], "argument --epochs: expected an int >= 1, but received 'ten'"),
    (["demo", "--batch-size", "0"], "argument --batch-size: expected an int >= 1"),
    (["demo", "--seed", "-1"], "argument --seed: expected an int >= 0"),
    (["demo", "--threads", "0"], "argument --threads: expected an int >= 1"),
    (["demo", "--model", "nope"], "argument --model: invalid choice"),
    (["demo", "--dataset", "nope"], "argument --dataset: invalid choice"),
    (["demo", "--run-dir", "used"], "--run-dir 'used' already exists and is not empty; give a new folder"),
    (["demo", "--run-dir", "a_file"], "--run-dir 'a_file' is a file"),
    (["demo", "--dataset", "mnist"], "mnist: no path given and $MARIANA_DATA is not set"),
    (["demo", "--dataset", "mnist", "--data-dir", "missing"], "--data-dir 'missing' is not a folder"),
    (["demo", "--dataset", "fashion-mnist", "--data-dir", "empty"], "fashion-mnist: looked in"),
    (["demo", "--unknown"], "unrecognized arguments: --unknown"),
    (["show"], "the following arguments are required: model"),
    (["show", "missing.mar"], "No .mar file at 'missing.mar'"),
    (["show", "a_file"], "'a_file' is not a .mar file"),
    (["show", "empty"], "No .mar file at 'empty'"),
    (["show", "--import", "no_such_module_here", "a_file"], "--import no_such_module_here: No module named 'no_such_module_here'"),
    (["show", "--import", "..up", "a_file"], "--import ..up: "),
    (["resume", "--import", "", "a_file"], "--import : Empty module name"),
    (["html", "missing.mar"], "No .mar file at 'missing.mar'"),
    (["html", "a_file", "-o", "missing/report.html"], "the folder 'missing' does not exist"),
    (["html", "a_file", "-o", "empty"], "'empty': it is a folder"),
    (["resume"], "the following arguments are required: run_dir"),
    (["resume", "missing"], "'missing' is not a Mariana run directory (no run.json)"),
    (["resume", "a_file"], "'a_file' is not a Mariana run directory"),
    (["bench", "--steps", "-5"], "argument --steps: expected an int >= 1, but received '-5'"),
    (["bench", "--steps", "0"], "argument --steps: expected an int >= 1"),
    (["bench", "--repeats", "0"], "argument --repeats: expected an int >= 1"),
])
def test_a_wrong_argument_is_one_line_on_stderr_and_exit_2(workdir, capsys, argv, message):
    before = sorted(p.name for p in workdir.rglob("*"))
    status, out, err = run_cli(argv, capsys)
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("mariana") and message in err, err
    assert sorted(p.name for p in workdir.rglob("*")) == before  # nothing written


def test_demo_with_a_missing_idx_folder_in_mariana_data(workdir, capsys, monkeypatch):
    monkeypatch.setenv("MARIANA_DATA", "")  # set but empty: as if unset
    status, _, err = run_cli(["demo", "--dataset", "mnist"], capsys)
    assert status == 2 and "$MARIANA_DATA is not set" in err and len(err.splitlines()) == 1


CUSTOM = textwrap.dedent('''
    import torch
    import mariana as mar
    import mariana.layers as ML

    @mar.register
    class ScaleForCliTest(ML.Layer):
        def output_shape(self, input_shape):
            return input_shape
        def build(self, input_shape):
            self.add_param("s", input_shape, torch.nn.init.ones_, regularizable=False)
        def forward(self, x):
            return x * self.s
''')


@pytest.fixture
def custom_module(workdir, monkeypatch):
    """A module in the working folder that registers a custom layer; forgotten again by the registry after the test."""
    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))
    (workdir / "cli_test_layers.py").write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(workdir))
    import cli_test_layers

    yield cli_test_layers
    sys.modules.pop("cli_test_layers", None)


def _forget(module, monkeypatch):
    """As in a fresh process: the class is unknown until the module is imported again."""
    del registry._CLASSES["ScaleForCliTest"]
    sys.modules.pop(module.__name__)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", str(Path.cwd()))])


def test_show_html_and_resume_import_the_module_of_custom_classes(workdir, custom_module, capsys, monkeypatch):
    from mariana.training import DatasetMapper, Trainer, stops

    mar.seed(0)
    net = ML.Input(3, name="inp") > custom_module.ScaleForCliTest(name="scale") > ML.Regression(
        1, learning_scenari=[MS.GradientDescent(lr=0.1)], name="out")
    x = np.ones((8, 3), dtype="float32")
    Trainer(net, "out", batch_size=4, stops=[stops.EpochWall(1)], recorders=[], run_dir="run").start(
        DatasetMapper(inp=x, out=np.zeros((8, 1), dtype="float32")))
    net.save("custom.mar")
    _forget(custom_module, monkeypatch)
    for argv in (["show", "custom.mar"], ["html", "custom.mar"], ["resume", "run"]):
        status, out, err = run_cli(argv, capsys)
        target = argv[1]
        assert status == 2 and out == "", err
        assert err.strip() == (f"mariana {argv[0]}: {target} uses class(es) ScaleForCliTest, which are not registered here. "
                               f"Import the module that defines them (with @mariana.register) with --import MODULE (repeatable), "
                               f"e.g. mariana {argv[0]} --import mylayers {target}")
    status, out, err = run_cli(["show", "--import", "cli_test_layers", "--import", "json", "custom.mar"], capsys)
    assert status == 0 and "ScaleForCliTest" in out and err == ""
    status, out, err = run_cli(["html", "custom.mar", "--import", "cli_test_layers"], capsys)
    assert status == 0 and (workdir / "custom.html").is_file()
    status, out, err = run_cli(["resume", "run", "--import", "cli_test_layers"], capsys)
    assert status == 0 and "Run finished after 1 epoch(s)" in out


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[H\u202etxt.exe\r\x9b31m"


def test_show_escapes_control_characters_from_the_file(workdir, capsys):
    net = ML.Input(3, name="inp") > ML.Regression(1, name="out")
    net.note(f"before {HOSTILE} after\nsecond line")
    net.save("m.mar")
    status, out, err = run_cli(["show", "--log", "m.mar"], capsys)
    assert status == 0 and err == ""
    assert not any(char in out for char in "\x1b\x07\r\u202e\x9b")
    assert "before \\x1b]0;owned\\x07\\x1b[2J\\x1b[H\\u202etxt.exe\\x0d\\x9b31m after\n" + " " * 32 + "second line" in out
    # A class name from the file, quoted in the error message, is escaped too.
    with zipfile.ZipFile("m.mar") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    architecture = json.loads(members["architecture.json"])
    architecture["network"]["layers"][1]["class"] = "Evil" + HOSTILE
    members["architecture.json"] = json.dumps(architecture).encode()
    with zipfile.ZipFile("evil.mar", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    status, out, err = run_cli(["show", "evil.mar"], capsys)
    assert status == 2 and len(err.splitlines()) == 1
    assert not any(char in err for char in "\x1b\x07\r\u202e\x9b") and "Evil\\x1b]0;owned" in err


def test_printable_keeps_text_and_escapes_controls():
    assert cli.printable("layer 'hid' é 日本 ✿\tok\nnext") == "layer 'hid' é 日本 ✿\tok\nnext"
    assert cli.printable("\x00\x1b\x7f\x85\u200b\u2066\U000e0001") == "\\x00\\x1b\\x7f\\x85\\u200b\\u2066\\U000e0001"


def test_bench_runs_from_an_installed_package(tmp_path):
    """Only the package is installed (no benchmarks/ folder beside it): `mariana bench` still runs."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "mariana", site / "mariana", ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
    code = "import sys; from mariana.cli import main; sys.exit(main(['bench', '--steps', '2', '--repeats', '1']))"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout and "MLP   fp32" in result.stdout and "agree (allclose" in result.stdout
    assert result.stderr == ""


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, a folder no one can create files in")
def test_a_folder_that_cannot_be_written_is_one_line_too(workdir, capsys):
    (ML.Input(3, name="inp") > ML.Regression(1, name="out")).save("m.mar")
    for argv in (["html", "m.mar", "-o", "/proc/report.html"], ["demo", "--run-dir", "/proc/mariana-run", "--epochs", "1"]):
        status, _, err = run_cli(argv, capsys)
        assert status == 2 and len(err.splitlines()) == 1 and err.startswith(f"mariana {argv[0]}: cannot write or read /proc/"), err


def test_the_unregistered_class_list_stays_short():
    document = {"layers": [{"class": f"Custom{i:02d}", "config": {}} for i in range(12)] + [{"class": "Hidden", "config": {}}]}
    message = str(cli._explain_unregistered("show", "m.mar", document, ValueError("unknown")))
    assert message.startswith("m.mar uses class(es) Custom00, Custom01, Custom02, Custom03, Custom04, Custom05, Custom06, Custom07, "
                              "Custom08, Custom09 and 2 more, which are not registered here.")
    assert str(cli._explain_unregistered("show", "m.mar", {"class": "Hidden", "config": {}}, ValueError("other"))) == "other"


def test_max_bytes_lowers_the_cap_of_show_and_html(tmp_path):
    import mariana.layers as ML

    net = ML.Input(30, name="inp") > ML.Regression(20, name="out")
    net.save(tmp_path / "m.mar")
    for verb in ("show", "html"):
        result = subprocess.run([sys.executable, "-m", "mariana.cli", verb, str(tmp_path / "m.mar"), "--max-bytes", "100"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "over the 100-byte limit" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_html_of_a_file_with_a_malformed_history_is_one_line(tmp_path):
    import mariana.layers as ML

    net = ML.Input(2, name="inp") > ML.Regression(1, name="out")
    net.record("epoch", history={"epoch": "x", "train": [1, 2]})
    net.save(tmp_path / "bad.mar")
    result = subprocess.run([sys.executable, "-m", "mariana.cli", "html", str(tmp_path / "bad.mar")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "bad.mar: cannot make its report: to_html: history entry 0 has epoch 'x'" in result.stderr
