"""Regenerate the examples gallery: short runs of every example, their curves and report screenshots.

Run from the repository root (about a minute and a half on one torch thread):

    $ make gallery                                               # every example, in .venv
    $ .venv/bin/python docs/gallery/build_gallery.py            # the same
    $ .venv/bin/python docs/gallery/build_gallery.py --only lstm_adding
    $ .venv/bin/python docs/gallery/build_gallery.py --page-only  # rewrite index.md from results.json

For each script in ``examples/`` it builds the example's own network (imported
from the script), trains it with the Trainer for a few epochs on a subset so
the gallery stays cheap to rebuild, and writes next to this file:

* ``<name>-curves.png``: the learning curves, drawn with matplotlib from the
  run's history (``trainer.start`` returns it);
* ``<name>-report.png``: the network's HTML report (``net.to_html``) as
  headless Chromium shows it, taken with playwright;
* ``results.json``: what was measured (result, seconds, data sizes, machine),
  from which ``index.md`` is written.

The images and ``results.json`` are committed, so ``make docs`` stays offline
and fast; MNIST and Fashion-MNIST come from ``$MARIANA_DATA`` or
``../shared/data`` (see ``examples/_data.py``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

import mariana as mar  # noqa: E402
import mariana.layers as ML  # noqa: E402
import mariana.scenari as MS  # noqa: E402
from mariana.training import DatasetMapper, Trainer, stops  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


#: How the full-length runs of the scripts were measured.
NOT_RERUN = " (measured when the example was written; the gallery does not re-run it)"


def _mnist_like(name: str, train: int, test: int, flat: bool) -> dict[str, DatasetMapper]:
    data = importlib.import_module("_data").load(name)
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(data["train"]["x"]))[:train]
    shape = (-1, 784) if flat else (-1, 1, 28, 28)
    return {"train": DatasetMapper(inp=data["train"]["x"][rows].reshape(shape), out=data["train"]["y"][rows]),
            "test": DatasetMapper(inp=data["test"]["x"][:test].reshape(shape), out=data["test"]["y"][:test], sampler="sequential")}


def mlp_mnist() -> dict:
    example = importlib.import_module("mlp_mnist")
    streams = _mnist_like("mnist", train=60000, test=10000, flat=True)
    return {"net": example.build(), "streams": streams, "epochs": 4, "batch_size": 64,
            "data": "all 60,000 MNIST training images, tested on the 10,000 test images",
            "full_run": "16 epochs on all 60,000 images: 98.44 % test accuracy in 58 s" + NOT_RERUN}


def _cnn(name: str, full_run: str) -> dict:
    example = importlib.import_module("cnn_mnist")
    streams = _mnist_like(name, train=12000, test=10000, flat=False)
    steps_per_epoch = 12000 // 64
    return {"net": example.lenet(halve_every=steps_per_epoch), "streams": streams, "epochs": 4, "batch_size": 64,
            "data": f"12,000 {'MNIST' if name == 'mnist' else 'Fashion-MNIST'} training images (of 60,000), "
                    "tested on the 10,000 test images",
            "full_run": full_run}


def cnn_mnist() -> dict:
    return _cnn("mnist", "4 epochs on all 60,000 images: 99.20 % test accuracy in 99 s" + NOT_RERUN)


def cnn_fashion() -> dict:
    return _cnn("fashion-mnist", "8 epochs on all 60,000 images: 91.21 % test accuracy in 217 s" + NOT_RERUN)


def lstm_adding() -> dict:
    example = importlib.import_module("lstm_adding")
    rng = np.random.default_rng(0)
    steps = 50
    x, y = example.adding_batch(rng, 12800, steps)
    valid_x, valid_y = example.adding_batch(rng, 1000, steps)
    net = (ML.Input((steps, 2), name="seq") > ML.LSTM(64, name="lstm")
           > ML.Regression(1, learning_scenari=[MS.Adam(2e-3)], name="out"))
    return {"net": net, "streams": {"train": DatasetMapper(seq=x, out=y), "valid": DatasetMapper(seq=valid_x, out=valid_y)},
            "epochs": 8, "batch_size": 64,
            "data": "12,800 fixed training sequences of 50 steps (200 updates per epoch), 1,000 held-out sequences",
            "full_run": "3000 updates on fresh batches: held-out MSE 0.00046 in 56 s" + NOT_RERUN}


EXAMPLE_RUNS = {
    "mlp_mnist": ("A 784-500-10 MLP on MNIST: ReLU, dropout 0.2, L2, SGD with momentum and a step decay.", mlp_mnist),
    "cnn_mnist": ("The classic CNN (conv 20@5x5, pool, conv 50@5x5, pool, dense 500, softmax) on MNIST with Adam.", cnn_mnist),
    "cnn_fashion": ("The same CNN on Fashion-MNIST.", cnn_fashion),
    "lstm_adding": ("The adding problem: an LSTM(64) must remember two marked values across 50 steps and add them.", lstm_adding),
}


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Loss (and accuracy for classifiers) per epoch and stream, from a Trainer history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    output = next(iter(history[0]["train"]))
    metrics = [m for m in ("loss", "accuracy") if m in history[0]["train"][output]]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.0), dpi=100, squeeze=False)
    epochs = [entry["epoch"] for entry in history]
    for axis, metric in zip(axes[0], metrics):
        for stream in ("train", "valid", "test"):
            if stream in history[0]:
                axis.plot(epochs, [entry[stream][output][metric] for entry in history], marker="o", label=stream)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        regression = "accuracy" not in metrics
        axis.set_ylabel("loss (MSE, log scale)" if regression else metric)
        axis.set_yscale("log" if regression else "linear")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
    _shrink(path)


def screenshot(html: Path, path: Path) -> None:
    """The report as headless Chromium draws it (the browser the report's own test uses), output layer selected."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("build_gallery: no chromium on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(html.as_uri())
            page.wait_for_selector("body[data-ready=true]", timeout=15000)
            page.click('.node[data-layer="out"]')  # the details panel: the output's abstractions and params
            page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": 1200, "height": 1500})
        finally:
            browser.close()
    _shrink(path)


def _shrink(path: Path) -> None:
    # A 256-colour palette keeps the committed PNGs small; charts and the report have few colours.
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def run_example(name: str) -> dict:
    description, setup = EXAMPLE_RUNS[name]
    torch.set_num_threads(1)
    mar.seed(0)
    spec = setup()
    net = spec["net"]
    trainer = Trainer(net, outputs="out", batch_size=spec["batch_size"], stops=[stops.EpochWall(spec["epochs"])],
                      recorders=[], seed=0)
    streams = spec["streams"]
    start = time.perf_counter()
    history = trainer.start(streams["train"], valid=streams.get("valid"), test=streams.get("test"))
    seconds = time.perf_counter() - start
    stream = "test" if "test" in streams else "valid"
    final = history[-1][stream]["out"]
    result = (f"{100 * final['accuracy']:.2f} % {stream} accuracy" if "accuracy" in final
              else f"{stream} MSE {final['loss']:.5f}")
    plot_curves(history, HERE / f"{name}-curves.png", f"{name}: {spec['epochs']} epochs")
    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / f"{name}.html"
        net.to_html(html, history=history, title=name)
        screenshot(html, HERE / f"{name}-report.png")
    print(f"{name}: {result} after {spec['epochs']} epochs, {seconds:.1f} s", flush=True)
    return {"description": description, "script": f"examples/{name}.py", "result": result,
            "seconds": round(seconds, 1), "epochs": spec["epochs"], "batch_size": spec["batch_size"],
            "data": spec["data"], "full_run": spec["full_run"], "history": history}


PAGE_HEAD = """# Examples gallery

<!-- Generated by docs/gallery/build_gallery.py from results.json: edit the script, not this page. -->

Every script in `examples/` trains one of the networks below. The gallery
re-runs each network **briefly** with the Trainer (few epochs, a subset of
the data, one torch thread) so that `docs/gallery/build_gallery.py` can
rebuild every number and picture here in a minute or two:

```console
$ make gallery
```

The curves are drawn from the history that `trainer.start` returned; the
second picture is the network's HTML report (`net.to_html(path, history=history)`),
photographed in headless Chromium. The full-length runs of the scripts
themselves (`python examples/<name>.py`) take minutes and reach the numbers
quoted under each example.

"""


def write_page(results: dict) -> None:
    meta = results["machine"]
    lines = [PAGE_HEAD,
             f"Measured on {meta['date']}: {meta['machine']}, Python {meta['python']}, torch {meta['torch']}, "
             f"{meta['threads']} torch thread, while other jobs shared the machine (load average "
             f"{meta['load_average']:.1f} when the rebuild started); the whole script took "
             f"{meta['gallery_seconds']:.0f} s, pictures included. The times grow with the load; the results do not "
             f"change (every run is seeded).\n",
             "| example | gallery run | result | training time |", "|---|---|---|---|"]
    for name, run in results["examples"].items():
        lines.append(f"| [`{name}`](#{name}) | {run['epochs']} epochs, batch {run['batch_size']} "
                     f"| {run['result']} | {run['seconds']:.1f} s |")
    lines.append("")
    for name, run in results["examples"].items():
        lines += [f"## {name}", "", run["description"], "",
                  f"* Script: `{run['script']}`",
                  f"* Gallery run: {run['data']}; {run['epochs']} epochs of batch {run['batch_size']}.",
                  f"* Result: **{run['result']}** after {run['seconds']:.1f} s of training.",
                  f"* The script's full run: {run['full_run']}.", "",
                  f"![Learning curves of {name}]({name}-curves.png)", "",
                  f"![HTML report of {name}]({name}-report.png)", ""]
    (HERE / "index.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(EXAMPLE_RUNS), help="rebuild these examples only")
    parser.add_argument("--page-only", action="store_true", help="rewrite index.md from results.json, run nothing")
    args = parser.parse_args()
    results_path = HERE / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {"examples": {}}
    if not args.page_only:
        start, load = time.perf_counter(), os.getloadavg()[0]
        for name in args.only or EXAMPLE_RUNS:
            results["examples"][name] = run_example(name)
        results["examples"] = {name: results["examples"][name] for name in EXAMPLE_RUNS if name in results["examples"]}
        results["machine"] = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
                              "torch": torch.__version__, "threads": 1,
                              "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
                              "gallery_seconds": results.get("machine", {}).get("gallery_seconds", 0.0),
                              "load_average": results.get("machine", {}).get("load_average", 0.0)}
        if not args.only:  # the time of a full rebuild
            results["machine"]["gallery_seconds"] = round(time.perf_counter() - start, 1)
            results["machine"]["load_average"] = round(load, 2)
        results_path.write_text(json.dumps(results, indent=1) + "\n")
    write_page(results)


if __name__ == "__main__":
    main()
