"""``mariana bench``: the table's rows and columns, optional contenders, wrong arguments."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mariana import bench, cli

ROOT = Path(__file__).resolve().parent.parent
TINY = {"steps": 2, "repeats": 1, "batch_size": 4, "device": "cpu"}


@pytest.fixture
def no_optional(monkeypatch):
    """As on a machine without the bench extra, whatever this one has installed."""
    monkeypatch.setattr(bench, "keras_contender", lambda: None)
    monkeypatch.setattr(bench, "lightning_contender", lambda: None)


def table_lines(text: str) -> dict[str, str]:
    return {" ".join(line.split()[:2]): line for line in text.splitlines() if line.split()[:1] in (["MLP"], ["CNN"])}


def test_the_table_has_a_row_per_model_and_precision_and_a_column_per_contender(no_optional):
    out = io.StringIO()
    rows = bench.run(**TINY, file=out)
    text = out.getvalue()
    header = text.splitlines()[1]
    for column in ("Mariana img/s", "PyTorch loop img/s", "ratio", "start ms", "final weights"):
        assert column in header, header
    assert sorted(table_lines(text)) == ["CNN bf16", "CNN fp32", "MLP bf16", "MLP fp32"]
    assert [(row["model"], row["precision"]) for row in rows] == [("MLP", "fp32"), ("MLP", "bf16"), ("CNN", "fp32"), ("CNN", "bf16")]
    for row in rows:
        assert sorted(row["images_per_s"]) == ["mariana", "torch"] and row["ratio"] > 0 and row["start_up"] > 0
        if row["precision"] == "fp32":  # the same float32 arithmetic from the same weights: the same result
            assert row["weights_agree"] and "agree (allclose" in table_lines(text)[f"{row['model']} fp32"]
        else:  # bf16 rounds; the difference is reported, and small after two steps
            assert row["max_difference"] < 0.05 and "max |diff|" in table_lines(text)[f"{row['model']} bf16"]
    assert "not installed: Keras 3, Lightning" in text


def test_an_installed_contender_gets_a_column(no_optional, monkeypatch):
    calls = []

    def fake_lightning():
        def run(model, net, x, y, batch, precision, device):
            calls.append((model, precision, len(x), batch))
            return 0.5
        return run

    monkeypatch.setattr(bench, "lightning_contender", fake_lightning)
    out = io.StringIO()
    rows = bench.run(**{**TINY, "steps": 6}, models=["mlp"], precisions=["bf16"], file=out)
    assert "Lightning img/s" in out.getvalue() and "not installed: Keras 3;" in out.getvalue()
    assert rows[0]["images_per_s"]["lightning"] == pytest.approx(24 / 0.5)
    assert calls == [("mlp", "bf16", 20, 4), ("mlp", "bf16", 24, 4)]  # a warm-up on at most 5 steps, then the timed run


def test_the_command_line_prints_the_table(no_optional, capsys):
    assert cli.main(["bench", "--steps", "1", "--repeats", "1"]) == 0
    assert sorted(table_lines(capsys.readouterr().out)) == ["CNN bf16", "CNN fp32", "MLP bf16", "MLP fp32"]


def test_the_command_line_passes_every_option(no_optional, capsys):
    assert cli.main(["bench", "--steps", "1", "--repeats", "1", "--batch-size", "3", "--models", "mlp", "--precisions", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "batch 3, steps per run MLP 1" in out and sorted(table_lines(out)) == ["MLP bf16"]


def test_every_option_reaches_the_run(no_optional, capsys):
    bench.main(["--steps", "1", "--repeats", "1", "--batch-size", "3", "--device", "cpu", "--models", "cnn", "--precisions", "fp32"])
    out = capsys.readouterr().out
    assert "batch 3, steps per run CNN 1, 1 interleaved repeats, device cpu" in out
    assert sorted(table_lines(out)) == ["CNN fp32"]


def test_threads_sets_torchs_thread_count(no_optional, capsys):
    before = bench.torch.get_num_threads()
    try:
        bench.main(["--steps", "1", "--repeats", "1", "--models", "mlp", "--precisions", "fp32", "--threads", "1"])
        assert ", 1 thread(s)," in capsys.readouterr().out
    finally:
        bench.torch.set_num_threads(before)


@pytest.mark.parametrize(("argv", "message"), [
    (["--batch-size", "0"], "argument --batch-size: expected an int >= 1, but received '0'"),
    (["--steps", "x"], "argument --steps: expected an int >= 1, but received 'x'"),
    (["--models", "rnn"], "argument --models: invalid choice: 'rnn'"),
    (["--precisions", "fp16"], "argument --precisions: invalid choice: 'fp16'"),
    (["--models"], "argument --models: expected at least one argument"),
    (["--compile", "fast"], "argument --compile: invalid choice: 'fast'"),
])
def test_a_wrong_argument_is_one_line_and_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.parametrize(("device", "message"), [
    ("gpu", "--device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', but received 'gpu'."),
    ("cuda:7", "--device='cuda:7'"),
])
def test_a_device_that_is_not_here_is_one_line_and_exit_2(capsys, device, message):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--steps", "1", "--repeats", "1", "--device", device])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and message in captured.err, captured.err


def test_the_ratio_is_the_median_of_the_paired_repeats(no_optional, monkeypatch):
    clock = iter([1.0, 2.0, 0.5] * 10)  # seconds of successive timed runs, whoever runs
    monkeypatch.setattr(bench, "run_torch", lambda *args: next(clock))
    real = bench.run_mariana
    monkeypatch.setattr(bench, "run_mariana", lambda *args: (next(clock), real(*args)[1]))
    row = bench.run(**{**TINY, "repeats": 4}, models=["mlp"], precisions=["fp32"], file=None)[0]
    # warm-ups take 1.0 (Mariana) and 2.0 (loop); then repeats: M 0.5, T 1.0 | T 2.0, M 0.5 | M 1.0, T 2.0 | T 0.5, M 1.0
    assert row["times"] == {"mariana": [0.5, 0.5, 1.0, 1.0], "torch": [1.0, 2.0, 2.0, 0.5]}
    assert row["ratios"] == [0.5, 0.25, 0.5, 2.0] and row["ratio"] == 0.5  # one outlier pair moves nothing
    assert row["images_per_s"] == {"mariana": 8 / 0.5, "torch": 8 / 0.5}  # each contender's best run


def test_compile_compiles_marianas_step_only(no_optional, monkeypatch, capsys):
    from mariana.training.loop import hardware

    modes = []
    monkeypatch.setattr(bench.torch, "compile", lambda function, mode=None: modes.append(mode) or function)
    assert bench.COMPILE_MODES == hardware.COMPILE_MODES
    assert cli.main(["bench", "--steps", "1", "--repeats", "1", "--models", "mlp", "--precisions", "fp32",
                     "--compile", "reduce-overhead"]) == 0
    out = capsys.readouterr().out
    assert "Mariana compiled (mode 'reduce-overhead'), the PyTorch loop eager" in out and sorted(table_lines(out)) == ["MLP fp32"]
    assert modes == ["reduce-overhead"] * 2  # the warm-up's Trainer and the timed one's


def test_auto_picks_cuda_when_present(monkeypatch):
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bench.torch.cuda, "current_device", lambda: 0)
    assert bench.resolve_device("auto") == "cuda:0"
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: False)
    assert bench.resolve_device("auto") in ("cpu", "mps")


def test_the_benchmark_script_runs_from_a_source_checkout():
    result = subprocess.run([sys.executable, "benchmarks/step_overhead.py", "--steps", "1", "--repeats", "1", "--models", "mlp",
                             "--precisions", "fp32", "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "MLP   fp32" in result.stdout


def test_the_gpu_check_runs_quick_on_a_cpu(tmp_path):
    """The check prepared for a lent GPU machine must not crash there for want of a run here."""
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--quick", "--device", "cpu", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [(row["check"], row["model"], row["batch"], row["precision"]) for row in report["rows"]] == [
        *(("eager", model, batch, precision) for model in ("MLP", "CNN") for batch in (4, 8) for precision in ("fp32", "bf16")),
        ("reduce-overhead", "MLP", 4, "fp32")]
    assert all(row["ratio"] > 0 for row in report["rows"]) and report["notes"][0] == "random MNIST-shaped data (--quick)"
    assert "reduce-overhead MLP        4  fp32" in result.stdout and "speed-up" in result.stdout


def test_the_gpu_check_falls_back_on_random_data_without_mnist(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    monkeypatch.setenv("MARIANA_DATA", str(tmp_path))  # no MNIST there, as on a GPU machine without ../shared
    data, note = gpu_check.mnist_train(quick=False)
    assert data is None and note.startswith("random MNIST-shaped data: MNIST not found")
