"""net.summary(), the generation log, and the HTML page's content (the browser test checks it runs)."""

import json
import math
import re

import pytest

import mariana as mar
from mariana import cli
from mariana.report import format_log, log_rows
from mariana.report.html import normalize_history, render_html
from tests.report_network import HISTORY, build_report_network


@pytest.fixture
def network():
    return build_report_network()


def test_summary_lists_every_layer_with_type_shape_params_and_abstractions(network):
    text = network.summary()
    assert "\x1b[" not in text  # plain text, no terminal codes
    lines = text.splitlines()
    for name, layer in network.layers.items():
        row = next(line for line in lines if line.split() and line.split()[0] == name)
        assert type(layer).__name__ in row
        assert f"(batch, {', '.join(map(str, layer.shape))})" in row
        assert f"{sum(p.numel() for p in layer.params.values()):,}" in row
    assert "decorators: BinomialDropout(ratio=0.1)" in text
    assert "learning_scenari: GradientDescent(lr=0.05, momentum=0.9), Fixed('b')" in " ".join(text.split())
    total = sum(p.numel() for p in network.parameters())
    frozen = network["out"].b.numel()
    assert f"Total params: {total:,}" in lines[-1]
    assert f"trainable: {total - frozen:,}" in lines[-1] and f"frozen: {frozen:,}" in lines[-1]
    assert f"layers: {len(network)}" in lines[-1]


def test_cli_show_and_html(network, tmp_path, capsys):
    network.save(tmp_path / "m.mar")
    assert cli.main(["show", str(tmp_path / "m.mar")]) == 0
    assert capsys.readouterr().out.strip() == mar.load(tmp_path / "m.mar").summary().strip()
    assert cli.main(["show", "--log", str(tmp_path / "m.mar")]) == 0
    assert "Generation log" in capsys.readouterr().out.split("Total params")[1]
    assert cli.main(["html", str(tmp_path / "m.mar")]) == 0
    page = (tmp_path / "m.html").read_text()
    assert '"name":"recon"' in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.html", "m.mar"]


def test_cli_explains_a_file_it_refuses(tmp_path, capsys):
    (tmp_path / "bad.mar").write_bytes(b"not a zip")
    assert cli.main(["show", str(tmp_path / "bad.mar")]) == 2
    assert "mariana show:" in capsys.readouterr().err
    assert cli.main(["html", str(tmp_path / "missing.mar")]) == 2
    assert "No .mar file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mar"]


def test_log_records_construction_connections_trainings_notes_with_times(network):
    network.record("training", outputs=["out"], epochs=2, batch_size=8, results={"valid": {"out": {"loss": 0.5}}})
    events = [entry["event"] for entry in network.log]
    assert events.count("construct") == len(network) and "connect" in events and events[-2:] == ["note", "training"]
    rows = log_rows(network.log)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["time"]) for row in rows)
    assert "hid > out" in format_log(network.log)
    assert "epochs=2" in rows[-1]["text"] and "batch_size=8" in rows[-1]["text"]
    assert rows[-2]["text"] == "built for the report <script>alert(1)</script>"


def _embedded(page):
    match = re.search(r'<script type="application/json" id="mariana-data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_page_is_self_contained_and_embeds_everything(network):
    page = render_html(network, history=HISTORY, title="demo")
    data = _embedded(page)
    assert [layer["name"] for layer in data["layers"]] == list(network.layers)
    assert ["inp", "recon", "reference"] in data["edges"] and ["hid", "joined", "data"] in data["edges"]
    assert data["totals"]["params"] == sum(p.numel() for p in network.parameters())
    hid = next(layer for layer in data["layers"] if layer["name"] == "hid")
    assert hid["abstractions"]["regularizations"] == ["L2(factor=0.0001)"] and hid["param_shapes"] == {"W": [16, 12], "b": [16]}
    assert len(data["log"]) == len(network.log)
    # The note's "</script>" must not close the data element early: five script elements, five closings.
    assert page.count("<script") == page.count("</script>") == 5
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)
    assert "sourceMappingURL" not in page and "default-src 'none'" in page


def test_history_becomes_one_chart_per_output_and_metric():
    history = HISTORY[:2] + [{"epoch": 3, "train": {"out": {"loss": math.nan, "accuracy": 0.9}}}]
    charts = normalize_history(history)
    assert charts["epochs"] == [1, 2, 3]
    names = [(c["output"], c["metric"]) for c in charts["charts"]]
    assert names == [("out", "loss"), ("out", "accuracy"), ("score", "loss")]
    out_loss = charts["charts"][0]["series"]
    assert [s["stream"] for s in out_loss] == ["train", "valid"]
    assert out_loss[0]["values"] == [1.5, 0.75, None] and out_loss[1]["values"][2] is None
    assert normalize_history(None) is None


def test_bad_history_raises(network, tmp_path):
    with pytest.raises(TypeError, match="list of dicts"):
        network.to_html(tmp_path / "m.html", history={"epoch": 1})
    with pytest.raises(ValueError, match="metric names"):
        network.to_html(tmp_path / "m.html", history=[{"epoch": 1, "train": {"out": 0.5}}])
    assert list(tmp_path.iterdir()) == []


def test_scenari_show_their_learning_rate_and_log_entries_are_never_cut(network):
    assert "learning_scenari: Adam(lr=0.001)" in " ".join(network.summary().split())
    stops = [{"class": "EarlyStopping", "config": {"stream": "valid", "output": "out", "metric": "loss", "patience": 3}}] * 4
    network.record("training", phase="start", outputs=["out"], batch_size=8, stops=stops, run_dir="runs/" + "x" * 150)
    network.record("training", phase="end", epochs=3, reason="EpochWall: reached 3 epoch(s)",
                    metrics={"epoch": 3, "train": {"out": {"loss": 0.123456789, "accuracy": 0.5}}})
    start, end = log_rows(network.log)[-2:]
    assert "…" not in start["text"] and start["text"].endswith("run_dir runs/" + "x" * 150)
    assert start["text"].count("EarlyStopping(stream=valid, output=out, metric=loss, patience=3)") == 4
    assert end["text"] == "training ended after 3 epoch(s) (EpochWall: reached 3 epoch(s)): train out loss 0.1235 accuracy 0.5"


def test_format_log_escapes_control_characters_and_indents_note_lines(network):
    network.note("title\x1b]0;owned\x07\x1b[2J\nfake 2026-01-01 00:00:00  save  saved to x")
    lines = format_log(network.log).splitlines()
    assert lines[-2].endswith("note       title\\x1b]0;owned\\x07\\x1b[2J")
    assert lines[-1] == " " * 32 + "fake 2026-01-01 00:00:00  save  saved to x"
