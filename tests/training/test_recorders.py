"""Recorders write what they promise: CSV/JSONL rows, TensorBoard scalars, the HTML report call, a progress bar."""

import csv
import io
import json

import numpy as np
import pytest
from rich.console import Console

import mariana as mar
from mariana.models import build_mlp
from mariana.network import Network
from mariana.training import DatasetMapper, Trainer, recorders, stops


def run(recorder_list, epochs=3, run_dir=None):
    mar.seed(0)
    net = build_mlp((4,), 2, hidden=8)
    x = np.random.default_rng(0).normal(size=(48, 4)).astype(np.float32)
    data = DatasetMapper(inp=x, out=(x[:, 0] > 0).astype(np.int64))
    trainer = Trainer(net, "out", batch_size=16, stops=[stops.EpochWall(epochs)], recorders=recorder_list, run_dir=run_dir, seed=0)
    trainer.start(data, valid=data)
    return trainer


def test_csv_header_and_one_row_per_epoch(tmp_path):
    trainer = run([recorders.CSV(tmp_path / "log.csv")])
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert list(rows[0]) == ["epoch", "time", "train_out_loss", "train_out_accuracy", "valid_out_loss", "valid_out_accuracy"]
    assert len(rows) == 3
    for row, entry in zip(rows, trainer.history):
        assert int(row["epoch"]) == entry["epoch"]
        assert float(row["valid_out_accuracy"]) == entry["valid"]["out"]["accuracy"]
        assert float(row["train_out_loss"]) == entry["train"]["out"]["loss"]


def test_jsonl_header_then_history_entries_relative_to_run_dir(tmp_path):
    trainer = run([recorders.JSONL("log.jsonl")], run_dir=tmp_path / "run")
    lines = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert lines[0]["header"]["outputs"] == ["out"] and lines[0]["header"]["batch_size"] == 16
    assert lines[1:] == trainer.history


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = run([recorders.TensorBoard(tmp_path / "tb")])
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train/out/loss", "train/out/accuracy", "valid/out/loss", "valid/out/accuracy"}
    scalars = events.Scalars("valid/out/accuracy")
    assert [s.step for s in scalars] == [1, 2, 3]
    assert [s.value for s in scalars] == pytest.approx([e["valid"]["out"]["accuracy"] for e in trainer.history])


def test_html_report_calls_to_html_at_the_end(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(Network, "to_html", lambda self, path, **kwargs: calls.append((path, kwargs)))
    trainer = run([recorders.HTMLReport()], run_dir=tmp_path / "run")
    assert calls == [(str(tmp_path / "run" / "report.html"), {"history": trainer.history})]
    calls.clear()
    trainer = run([recorders.HTMLReport(tmp_path / "mine.html")])
    assert calls == [(str(tmp_path / "mine.html"), {"history": trainer.history})]
    with pytest.raises(ValueError, match="give it a path, or give the Trainer a run_dir"):
        run([recorders.HTMLReport()])


def test_progress_bar_shows_loss_accuracy_and_eta_on_a_terminal():
    output = io.StringIO()
    run([recorders.ProgressBar(console=Console(file=output, force_terminal=True, width=160))], epochs=2)
    text = output.getvalue()
    assert "epoch 2" in text and "3/3" in text and "eta" in text
    assert "train: loss" in text and "accuracy" in text and "valid: loss" in text


def test_recorders_round_trip_their_config():
    for recorder in (recorders.CSV("a.csv"), recorders.JSONL("a.jsonl"), recorders.TensorBoard("tb"), recorders.HTMLReport(),
                     recorders.ProgressBar(refresh_per_second=4), recorders.ProgressBar(verbose=2)):
        assert mar.registry.deserialize(mar.registry.serialize(recorder)).get_config() == recorder.get_config()


def test_html_report_of_a_real_run_carries_its_curves(tmp_path):
    import re

    trainer = run([recorders.HTMLReport()], run_dir=tmp_path / "run")
    page = (tmp_path / "run" / "report.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="mariana-data">(.*?)</script>', page, re.S).group(1))
    assert [layer["name"] for layer in data["layers"]] == ["inp", "hid", "out"]
    charts = {(chart["output"], chart["metric"]): chart for chart in data["history"]["charts"]}
    assert set(charts) == {("out", "loss"), ("out", "accuracy")}
    streams = {series["stream"]: series["values"] for series in charts[("out", "accuracy")]["series"]}
    assert streams["valid"] == pytest.approx([entry["valid"]["out"]["accuracy"] for entry in trainer.history])
    assert data["history"]["epochs"] == [1, 2, 3]
    assert any(row for row in data["log"] if "training" in json.dumps(row))


def test_a_saved_network_keeps_the_curves_of_its_run(tmp_path):
    import re

    import mariana

    trainer = run([])
    trainer.net.save(tmp_path / "m.mar")
    mariana.load(tmp_path / "m.mar").to_html(tmp_path / "m.html")  # no history passed: it comes from the log
    page = (tmp_path / "m.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="mariana-data">(.*?)</script>', page, re.S).group(1))
    assert data["history"]["epochs"] == [1, 2, 3]
    charts = {(chart["output"], chart["metric"]): chart for chart in data["history"]["charts"]}
    losses = {series["stream"]: series["values"] for series in charts[("out", "loss")]["series"]}
    assert losses["train"] == pytest.approx([entry["train"]["out"]["loss"] for entry in trainer.history])
    assert not any(row["event"] == "epoch" for row in data["log"])  # the curves show the epochs, not the log table
