"""What a user sees while a run trains: a live bar in terminals and notebooks, one line per epoch in logs,
readable metrics at 80 columns, and the reason the run stopped."""

import io
import re
import sys
import types

import numpy as np
import pytest
from rich.console import Console

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, recorders, stops
from mariana.training.recorders import ProgressBar, metric_groups

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def toy(n=48):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def run_one_output(bar, epochs=3, stop_list=()):
    mar.seed(0)
    net = build_mlp((4,), 2, hidden=8)
    x, y = toy()
    trainer = Trainer(net, "out", batch_size=16, stops=[stops.EpochWall(epochs), *stop_list], recorders=[bar], seed=0)
    trainer.start(DatasetMapper(inp=x, out=y), valid=DatasetMapper(inp=x, out=y))
    return trainer


def run_two_outputs(bar, epochs=2):
    mar.seed(0)
    hid = ML.Hidden(8, name="hid")
    net = ML.Input(4, name="inp") > hid > ML.SoftmaxClassifier(2, learning_scenari=[MS.GradientDescent(lr=0.05)], name="out")
    hid > ML.Regression(1, learning_scenari=[MS.GradientDescent(lr=0.05)], name="score")  # noqa: B015
    x, y = toy()
    data = DatasetMapper(inp=x, out=y, score=x[:, :1])
    trainer = Trainer(net, ["out", "score"], batch_size=16, stops=[stops.EpochWall(epochs)], recorders=[bar], seed=0)
    trainer.start(data, valid=data)
    return trainer


def test_not_a_terminal_prints_one_plain_line_per_epoch_then_why_it_stopped():
    output = io.StringIO()
    trainer = run_one_output(ProgressBar(console=Console(file=output)))
    lines = output.getvalue().splitlines()
    assert len(lines) == 4 and "\x1b" not in output.getvalue()
    for line, entry in zip(lines, trainer.history):
        train, valid = entry["train"]["out"], entry["valid"]["out"]
        assert re.fullmatch(rf"epoch {entry['epoch']}/3 - (\d+ ms|\d+\.\d s) - train: loss {train['loss']:.4f} accuracy {train['accuracy']:.4f}"
                            rf" - valid: loss {valid['loss']:.4f} accuracy {valid['accuracy']:.4f}", line), line
    assert lines[-1] == "Stopped after epoch 3: EpochWall: reached 3 epoch(s)"


def test_fit_prints_epochs_to_a_redirected_stdout(capsys):
    mar.seed(0)
    net = build_mlp((4,), 2, hidden=8)
    x, y = toy()
    net.fit({"inp": x, "out": y}, epochs=2, batch_size=16)
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in out] == ["epoch 1/2", "epoch 2/2", "Stopped after epoch 2: EpochWall: reached 2 epoch(s)"]


def test_verbose_0_is_silent_and_2_prints_plain_lines_even_on_a_terminal():
    output = io.StringIO()
    run_one_output(ProgressBar(console=Console(file=output, force_terminal=True), verbose=0))
    assert output.getvalue() == ""
    run_one_output(ProgressBar(console=Console(file=output, force_terminal=True, width=80), verbose=2), epochs=2)
    lines = output.getvalue().splitlines()
    assert [line.split(" - ")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"] and "\x1b" not in output.getvalue()
    for verbose in (3, -1, True, "1", None):
        with pytest.raises(ValueError, match=r"ProgressBar: verbose must be 0 \(silent\), 1 .* or 2 .*, but received"):
            ProgressBar(verbose=verbose)
    with pytest.raises(ValueError, match="refresh_per_second must be a number > 0, but received 0"):
        ProgressBar(refresh_per_second=0)


def _screen(text):
    """The lines a terminal keeps from rich's live output (cursor moves and colours removed)."""
    return [line for chunk in ANSI.sub("", text).split("\n") for line in chunk.split("\r") if line.strip()]


@pytest.mark.parametrize("run", [run_one_output, run_two_outputs], ids=["one output", "two outputs"])
def test_metrics_stay_readable_at_80_columns(run):
    output = io.StringIO()
    trainer = run(ProgressBar(console=Console(file=output, force_terminal=True, width=80)))
    screen = _screen(output.getvalue())
    assert "…" not in output.getvalue()  # nothing cut short
    assert all(len(line) <= 80 for line in screen), [line for line in screen if len(line) > 80]
    text = "\n".join(screen)
    for entry in trainer.history:
        assert re.search(rf"^epoch {entry['epoch']}/\d+ .*━+ 3/3", text, re.M)
        for group in metric_groups(entry, trainer.outputs):  # "train out: loss 0.6931 accuracy 0.5000", whole
            assert group in text
    assert screen[-1] == f"Stopped after epoch {len(trainer.history)}: EpochWall: reached {len(trainer.history)} epoch(s)"


def test_a_notebook_gets_a_live_bar_in_a_display_updated_in_place(monkeypatch):
    shown = []

    class Handle:
        def __init__(self):
            self.contents = []

        def update(self, content, raw):
            self.contents.append(content["text/plain"])

    def display(content, raw=False, display_id=False):
        assert raw
        handle = Handle()
        handle.contents.append(content["text/plain"])
        shown.append(handle)
        return handle if display_id else None

    ipython = types.ModuleType("IPython")
    ipython.display = types.ModuleType("IPython.display")
    ipython.display.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython.display)
    trainer = run_one_output(ProgressBar(console=Console(file=io.StringIO(), force_jupyter=True, width=80), refresh_per_second=1e9))
    assert len(shown) == 4  # one display per epoch, then the stop reason
    for handle, entry in zip(shown, trainer.history):
        assert len(handle.contents) >= 4  # drawn at the start, after each of the 3 steps, at the end
        assert "0/3" in handle.contents[0] and "3/3" in handle.contents[-1]
        assert f"epoch {entry['epoch']}/3" in handle.contents[-1]
        assert metric_groups(entry, ["out"])[1] in handle.contents[-1]  # the valid metrics
    assert shown[-1].contents == ["Stopped after epoch 3: EpochWall: reached 3 epoch(s)"]


def test_the_stop_reason_is_printed_and_kept_on_the_trainer():
    output = io.StringIO()

    class PoisonAtEpoch2(stops.Stop):
        def update(self, trainer, entry):
            if entry["epoch"] == 2:
                trainer.net["hid"].W.data[0, 0] = float("nan")

    trainer = run_one_output(ProgressBar(console=Console(file=output)), epochs=10, stop_list=[PoisonAtEpoch2(), stops.NaNGuard()])
    # The poison lands before the NaNGuard looks at epoch 2 (stops run in order): epoch 1 is the last finite one.
    assert trainer.stop_reason == "NaNGuard: non-finite hid.W at epoch 2; restored the weights and optimizer state of epoch 1, the last finite one"
    assert output.getvalue().splitlines()[-1] == f"Stopped after epoch 2: {trainer.stop_reason}"


def test_recorders_config_keeps_verbose():
    bar = mar.registry.deserialize(mar.registry.serialize(recorders.ProgressBar(verbose=2)))
    assert bar.verbose == 2 and bar.get_config() == {"refresh_per_second": 8.0, "verbose": 2}


def test_fit_takes_verbose(capsys):
    mar.seed(0)
    net = build_mlp((4,), 2, hidden=8)
    x, y = toy()
    net.fit({"inp": x, "out": y}, epochs=2, batch_size=16, verbose=0)
    assert capsys.readouterr().out == ""
    net.fit({"inp": x, "out": y}, epochs=2, batch_size=16, verbose=2)
    assert [line.split(" - ")[0] for line in capsys.readouterr().out.splitlines()][:2] == ["epoch 1/2", "epoch 2/2"]


def test_the_history_fit_returns_carries_the_stop_reason():
    mar.seed(0)
    net = build_mlp((4,), 2, hidden=8)
    x, y = toy()
    history = net.fit({"inp": x, "out": y}, epochs=2, batch_size=16, recorders=[])
    assert history.stop_reason == "EpochWall: reached 2 epoch(s)"


@pytest.mark.parametrize("console", [dict(force_terminal=True, width=80), dict(force_terminal=False)], ids=["terminal", "log"])
def test_a_run_resumed_at_the_end_of_an_epoch_still_shows_that_epoch(console):
    """Resuming from a checkpoint taken between an epoch's steps and its end calls on_epoch_end without on_epoch_start."""
    output = io.StringIO()
    bar = ProgressBar(console=Console(file=output, **console))
    trainer = types.SimpleNamespace(stops=[stops.EpochWall(3)], outputs=["out"], history=[])
    entry = {"epoch": 2, "time": 1.0, "train": {"out": {"loss": 0.25}}}
    bar.on_start(trainer, resumed=True)
    bar.on_epoch_end(trainer, entry)
    bar.close()
    screen = _screen(output.getvalue())
    assert screen[0].startswith("epoch 2/3") and "train: loss 0.2500" in "\n".join(screen)
