"""The prepared GPU check (issue 10): Mariana's Trainer against a hand-tuned PyTorch loop on CUDA, and a captured step.

One short run, under 8 minutes on one H200 (``python benchmarks/gpu_check.py`` from the repository root):

* the MNIST MLP (784-500-10) and classic CNN at batch 64 and 512, fp32 and bf16-mixed: images per second of
  Mariana's Trainer and of the hand-tuned loop (data on the device before the clock starts, autocast around
  the forward pass and loss only, metrics summed on the device and read once, torch's default foreach
  optimizers), and the ratio Mariana / loop (median of interleaved paired repeats; goal <= 1.03);
* the small MLP at batch 64, fp32, with ``Trainer(compile="reduce-overhead")`` (CUDA graphs) against the eager
  hand-written loop: the speed-up, loop time / Mariana time (goal >= 1.5). Compilation happens in the warm-up,
  outside the timed runs.

It prints one table and writes ``gpu_check.json`` into ``$OUT`` (or ``--out``) when set. ``--quick`` runs
tiny sizes, on a CPU too, in seconds: the test suite checks that it does not crash. MNIST is read from
``$MARIANA_DATA`` or ``../shared/data/mnist``; without it the check trains on random MNIST-shaped data
(the timings do not depend on the values) and says so.

    $ python benchmarks/gpu_check.py [--quick] [--device cuda] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from mariana import bench
from mariana.training.loop.hardware import CompileWarning

#: Batch sizes and steps per timed run: about a second per run at most on a GPU, enough to dwarf launch jitter.
STEPS = {64: 500, 512: 200}
REPEATS = 5


def mnist_train(quick: bool) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """MNIST's training images and labels, or None (random data) with the reason; ``quick`` skips reading them."""
    if quick:
        return None, "random MNIST-shaped data (--quick)"
    from mariana.datasets import mnist

    path = None if os.environ.get("MARIANA_DATA") else Path("../shared/data/mnist")
    try:
        split = mnist(path)
    except (FileNotFoundError, ValueError, OSError) as error:
        return None, f"random MNIST-shaped data: MNIST not found ({error})"
    return (split["train"]["x"], split["train"]["y"]), "MNIST training images"


def run_check(device: str, quick: bool) -> dict:
    """Every row of the check, with the settings it ran with."""
    data, source = mnist_train(quick)
    steps, repeats = ({4: 2, 8: 2}, 1) if quick else (STEPS, REPEATS)
    rows, notes = [], [source]
    for model in bench.MODELS:
        for batch in steps:
            for precision in bench.PRECISIONS:
                row = bench.bench_case(model, precision, steps[batch], repeats, batch, device, False, {}, data=data)
                rows.append({"check": "eager", "batch": batch, **row})
    small = min(steps)
    with warnings.catch_warnings(record=True) as caught:  # a CompileWarning (eager fallback) belongs in the report
        warnings.simplefilter("always")
        row = bench.bench_case("mlp", "fp32", steps[small], repeats, small, device, False, {}, compile="reduce-overhead", data=data)
    rows.append({"check": "reduce-overhead", "batch": small, **row})
    notes += [f"CompileWarning: {w.message}" for w in caught if issubclass(w.category, CompileWarning)]
    return {"device": device, "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else device,
            "torch": torch.__version__, "quick": quick, "repeats": repeats, "notes": notes, "rows": rows}


def print_table(result: dict, file=sys.stdout) -> None:
    print(f"gpu_check: {result['device_name']} ({result['device']}), torch {result['torch']}, "
          f"{result['repeats']} interleaved repeats; data: {result['notes'][0]}", file=file)
    print(f"{'step':<16}{'model':<6}{'batch':>6}  {'precision':<10}{'Mariana img/s':>15}{'loop img/s':>15}{'ratio':>8}"
          f"{'speed-up':>10}", file=file)
    for row in result["rows"]:
        speed_up = f"{1 / row['ratio']:>10.2f}" if row["check"] != "eager" else f"{'':>10}"
        print(f"{row['check']:<16}{row['model']:<6}{row['batch']:>6}  {row['precision']:<10}"
              f"{row['images_per_s']['mariana']:>15,.0f}{row['images_per_s']['torch']:>15,.0f}{row['ratio']:>8.3f}{speed_up}",
              file=file)
    print("ratio: median over the repeats of Mariana's epoch time / the hand-tuned eager loop's (goals: eager <= 1.03; "
          "reduce-overhead speed-up = 1 / ratio >= 1.5)", file=file)
    for note in result["notes"][1:]:
        print(f"note: {note}", file=file)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (runs on a CPU in seconds)")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cuda', 'cuda:N', 'cpu' (default: auto)")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for gpu_check.json (default: $OUT, when set)")
    args = parser.parse_args(argv)
    device = bench.resolve_device(args.device)
    if not device.startswith("cuda") and not args.quick:
        print(f"gpu_check: no CUDA device here ({device}); this check is for a GPU machine (--quick runs it on a CPU).", file=sys.stderr)
    start = time.perf_counter()
    result = run_check(device, args.quick)
    result["seconds"] = time.perf_counter() - start
    print_table(result)
    print(f"total {result['seconds']:.0f} s", flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
