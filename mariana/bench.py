"""``mariana bench``: Mariana's Trainer against a hand-written PyTorch loop, per model and precision.

One table: rows are the MLP (784-500-10, ReLU, SGD lr 0.01 momentum 0.9)
and the classic CNN (conv 20@5x5, pool 2, conv 50@5x5, pool 2, dense 500
ReLU, softmax 10; Adam 1e-3) at float32 and bf16-mixed precision; columns
are images per second for Mariana (a ``Trainer`` with ``precision=``), a
hand-written PyTorch loop at the same precision (``torch.autocast`` around
the forward pass and loss only, float32 weights, metrics summed on the device
and read once) and, when installed, Keras 3 (torch backend) and PyTorch
Lightning; then the ratio of Mariana's time to the hand-written loop's.

Each run is one epoch of ``steps`` batches of random MNIST-shaped data, in
order (no download: the timing does not depend on the values); images per
second count the training loop, from the first step to the epoch's metrics
read on the host, and the Trainer's one-time start-up before its first step
(the data's NaN check, preparing and moving the streams) has its own column.
All contenders run in this process from identical initial weights, each
warmed up first, then ``repeats`` times, interleaved (Mariana then the loop,
then the loop then Mariana, ...) so drifts in machine load hit both alike.
Images per second are each contender's best run; the ratio is the median,
over the repeats, of Mariana's time over the loop's time in the same repeat:
one noisy run moves neither. The last column says whether Mariana's final
weights agree with the hand-written loop's (float32: ``allclose``; bf16: the
largest absolute difference, since two bf16 runs round differently).

``compile=`` (``--compile MODE``) compiles Mariana's step with that
``torch.compile`` mode (``"reduce-overhead"``: CUDA graphs on a GPU) while the
loop stays eager, so the ratio is then the compiled step's speed-up (< 1 is
faster); compilation happens in the warm-up, outside the timed runs. It lives
in the package so that an installed ``mariana`` can run it;
``benchmarks/step_overhead.py`` runs the same code from a source checkout.

Example:
    >>> from mariana.bench import run
    >>> rows = run(steps=2, repeats=1, models=["mlp"], precisions=["fp32"], file=None)
    >>> [(row["model"], row["precision"], row["weights_agree"]) for row in rows]
    [('MLP', 'fp32', True)]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mariana.arguments import CommandError, OneLineParser, at_least

#: ``--compile`` choices: torch.compile's modes (as ``mariana.training.loop.hardware.COMPILE_MODES``, without importing it here).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: ``--models`` choices: name in the table, Mariana builder, PyTorch builder, input shape (batch axis excluded).
MODELS = ("mlp", "cnn")
#: ``--precisions`` choices and the Trainer's (Lightning's) names for them.
PRECISIONS = {"fp32": "32", "bf16": "bf16-mixed"}
LABELS = {"mlp": "MLP", "cnn": "CNN"}
SHAPES = {"mlp": (784,), "cnn": (1, 28, 28)}
LR = {"mlp": 0.01, "cnn": 1e-3}
MOMENTUM = 0.9
#: Default steps per timed run: about 0.2 s (MLP) and 0.4 s (CNN) each on two CPU cores. Short runs, many
#: repeats: the two runs of a pair then see the same machine load. With 100-step CNN runs (1.2 s) and 9
#: repeats, the paired ratios on this shared machine spread from 0.8 to 1.25 and their median moved by
#: +-4 % from one invocation to the next; with 30 steps and 21 repeats it moves by about +-1.5 %.
STEPS = {"mlp": 300, "cnn": 30}
#: Default timed runs of each contender: the whole table in about a minute.
REPEATS = 21


def add_arguments(parser: argparse.ArgumentParser, count: Any = int) -> None:
    """The benchmark's options; ``count`` is the argparse type of its positive ints."""
    parser.add_argument("--steps", type=count, default=None,
                        help=f"training steps (batches) per timed run (default: {STEPS['mlp']} for the MLP, {STEPS['cnn']} for the CNN)")
    parser.add_argument("--repeats", type=count, default=REPEATS,
                        help=f"timed runs of each contender, interleaved; best img/s, median ratio (default: {REPEATS})")
    parser.add_argument("--batch-size", type=count, default=64, help="images per step (default: 64)")
    parser.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' (default: auto, CUDA when present)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="rows to run (default: mlp cnn)")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), default=list(PRECISIONS),
                        help="fp32 and/or bf16 (bf16-mixed: autocast forward, float32 weights) (default: both)")
    parser.add_argument("--numpy", action="store_true", help="give the Trainer numpy arrays instead of tensors")
    parser.add_argument("--threads", type=count, default=None,
                        help="torch intra-op threads for every contender (default: torch's, usually one per core)")
    parser.add_argument("--compile", default=None, choices=COMPILE_MODES, metavar="MODE",
                        help=f"compile Mariana's step with this torch.compile mode ({', '.join(COMPILE_MODES)}); "
                             "the PyTorch loop stays eager (default: eager)")


# -- the networks ---------------------------------------------------------------------------
def mariana_net(model: str) -> Any:
    """The Mariana network of ``model``, seeded: every call returns the same initial weights."""
    import mariana as mar
    import mariana.activations as MA
    import mariana.costs as MC
    import mariana.layers as ML
    import mariana.scenari as MS

    mar.seed(0)
    if model == "mlp":
        scenario = MS.GradientDescent(lr=LR[model], momentum=MOMENTUM)
        return (ML.Input(784, name="inp") > ML.Hidden(500, activation=MA.ReLU(), name="hid")
                > ML.SoftmaxClassifier(10, learning_scenari=[scenario], name="out"))
    return (ML.Input(SHAPES[model], name="inp")
            > ML.Conv2D(20, 5, activation=MA.ReLU(), name="conv1") > ML.MaxPool2D(2, name="pool1")
            > ML.Conv2D(50, 5, activation=MA.ReLU(), name="conv2") > ML.MaxPool2D(2, name="pool2")
            > ML.Hidden(500, activation=MA.ReLU(), name="hid")
            > ML.SoftmaxClassifier(10, cost=MC.NegativeLogLikelihood(), learning_scenari=[MS.Adam(LR[model])], name="out"))


def torch_model(model: str, net: Any) -> tuple[nn.Sequential, dict[str, nn.Module]]:
    """The same network in plain PyTorch with ``net``'s weights; also its layers by Mariana name."""
    if model == "mlp":
        sequential = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))
        layers = {"hid": sequential[0], "out": sequential[2]}
    else:
        sequential = nn.Sequential(
            nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
        layers = {"conv1": sequential[0], "conv2": sequential[3], "hid": sequential[7], "out": sequential[9]}
    with torch.no_grad():
        for name, module in layers.items():
            module.weight.copy_(net[name].W)
            module.bias.copy_(net[name].b)
    return sequential, layers


def torch_optimizer(model: str, module: nn.Module) -> torch.optim.Optimizer:
    if model == "mlp":
        return torch.optim.SGD(module.parameters(), lr=LR[model], momentum=MOMENTUM)
    return torch.optim.Adam(module.parameters(), lr=LR[model])


# -- the contenders: each trains one epoch over (x, y) in order and returns its wall time -----
def run_mariana(net: Any, x: Any, y: Any, batch: int, precision: str, device: str,
                compile: str | None = None) -> tuple[float, float]:
    """The Trainer's epoch loop (first step to the epoch's metrics, read on the host) and its start-up before it.

    The start-up (building the Trainer, checking the data for NaN, preparing the
    streams, moving them to the device) happens once per run, not per epoch; it
    is timed apart so the ratio compares training loops.
    """
    from mariana.training import DatasetMapper, Trainer, recorders, stops

    class Clock(recorders.Recorder):
        def on_epoch_start(self, trainer: Any, epoch: int, steps: int) -> None:
            self.first_step = time.perf_counter()

        def on_epoch_end(self, trainer: Any, entry: dict) -> None:
            self.epoch_read = time.perf_counter()

    data, clock = DatasetMapper(inp=x, out=y, sampler="sequential"), Clock()
    start = time.perf_counter()
    Trainer(net, "out", batch_size=batch, stops=[stops.EpochWall(1)], recorders=[clock],
            precision=PRECISIONS[precision], device=device, compile=compile or False).start(data)
    return clock.epoch_read - clock.first_step, clock.first_step - start


def run_torch(module: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch: int,
              precision: str, device: str) -> float:
    """The hand-written loop: data moved to the device before the clock starts, autocast around forward and
    loss only, metrics summed on the device and read once at the end."""
    kind = torch.device(device).type
    cast = (lambda: torch.autocast(kind, dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
    module.train()
    xs, ys = x.to(device), y.to(device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    start = time.perf_counter()
    for low in range(0, len(xs), batch):
        xb, yb = xs[low:low + batch], ys[low:low + batch]
        with cast():
            logits = module(xb)
            loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum.add_(loss.detach(), alpha=len(xb))
        correct.add_((logits.detach().argmax(dim=-1) == yb).sum())
    float(loss_sum), int(correct)  # the once-per-epoch read, which waits for the device
    return time.perf_counter() - start


def keras_contender() -> Callable[..., float] | None:
    """Keras 3 on its torch backend, or None when it is not installed (or set to another backend)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        return None

    def run_keras(model: str, net: Any, x: np.ndarray, y: np.ndarray, batch: int, precision: str, device: str) -> float:
        keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
        with keras.device(device), contextlib.ExitStack() as restore:
            restore.callback(keras.config.set_dtype_policy, "float32")
            layers = keras.layers
            if model == "mlp":
                stack = [keras.Input((784,)), layers.Dense(500, activation="relu", name="hid"), layers.Dense(10, name="out")]
            else:  # channels_first like the data; Flatten then reorders to (height, width, channels)
                first = {"data_format": "channels_first"}
                stack = [keras.Input((1, 28, 28)), layers.Conv2D(20, 5, activation="relu", name="conv1", **first),
                         layers.MaxPooling2D(2, **first), layers.Conv2D(50, 5, activation="relu", name="conv2", **first),
                         layers.MaxPooling2D(2, **first), layers.Flatten(**first),
                         layers.Dense(500, activation="relu", name="hid"), layers.Dense(10, name="out")]
            network = keras.Sequential(stack)
            for layer in (layer for layer in network.layers if layer.weights):
                W, b = net[layer.name].W.detach().cpu(), net[layer.name].b.detach().cpu()
                if W.dim() == 4:
                    kernel = W.permute(2, 3, 1, 0)
                elif layer.name == "hid" and model == "cnn":
                    kernel = W.reshape(500, 50, 4, 4).permute(0, 2, 3, 1).reshape(500, 800).T
                else:
                    kernel = W.T
                layer.set_weights([kernel.numpy(), b.numpy()])
            optimizer = (keras.optimizers.SGD(LR[model], momentum=MOMENTUM) if model == "mlp"
                         else keras.optimizers.Adam(LR[model]))
            network.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            metrics=["accuracy"])
            start = time.perf_counter()
            network.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
            return time.perf_counter() - start

    return run_keras


def lightning_module(network: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> Any:
    """A LightningModule training ``network`` on cross-entropy, logging loss and accuracy per epoch as Mariana's
    Trainer does (``lightning`` must be installed). Used here and by ``benchmarks/trainer_overhead.py``."""
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def training_step(self, batch, index):
            xb, yb = batch
            logits = self.network(xb)
            loss = F.cross_entropy(logits, yb)
            self.log("loss", loss, on_epoch=True, on_step=False)
            self.log("accuracy", (logits.argmax(dim=-1) == yb).float().mean(), on_epoch=True, on_step=False)
            return loss

        def configure_optimizers(self):
            return make_optimizer(self.network)

    return Module()


def lightning_contender() -> Callable[..., float] | None:
    """PyTorch Lightning with its own precision plugin, or None when it is not installed."""
    try:
        import lightning as L
    except ImportError:
        return None
    import logging

    def run_lightning(model: str, net: Any, x: np.ndarray, y: np.ndarray, batch: int, precision: str, device: str) -> float:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no tips or banners in the table
        where = torch.device(device)
        accelerator = {"cuda": "gpu"}.get(where.type, where.type)
        devices = [where.index or 0] if where.type == "cuda" else 1
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                             batch_size=batch, shuffle=False)
        with warnings.catch_warnings():  # Lightning's advice (num_workers, ...) is not about the benchmark
            warnings.simplefilter("ignore")
            trainer = L.Trainer(max_epochs=1, accelerator=accelerator, devices=devices,
                                precision="bf16-mixed" if precision == "bf16" else "32-true", logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
            module = lightning_module(torch_model(model, net)[0], lambda network: torch_optimizer(model, network))
            start = time.perf_counter()
            trainer.fit(module, loader)
            return time.perf_counter() - start

    return run_lightning


# -- the table ------------------------------------------------------------------------------
def resolve_device(device: str) -> str:
    """``"auto"``: CUDA when present, else MPS, else the CPU (:func:`mariana.devices.resolve_device`); a CommandError
    for a device this machine lacks, so the command line says it in one line."""
    from mariana.devices import resolve_device as resolve

    try:
        return str(resolve(device))
    except ValueError as error:
        raise CommandError(f"--{error}") from None


def random_data(model: str, steps: int, batch: int, data: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``steps * batch`` rows shaped for ``model``: random, or ``data``'s (x, y) rows repeated as needed."""
    if data is None:
        rng = np.random.default_rng(0)
        return rng.random((steps * batch, *SHAPES[model]), dtype=np.float32), rng.integers(0, 10, steps * batch)
    x, y = data
    order = np.arange(steps * batch) % len(x)
    return np.ascontiguousarray(x[order].reshape(-1, *SHAPES[model]), dtype=np.float32), y[order].astype(np.int64)


def weight_difference(net: Any, layers: dict[str, nn.Module]) -> tuple[bool, float]:
    """Whether ``net``'s weights are allclose to the PyTorch layers', and the largest absolute difference."""
    agree, largest = True, 0.0
    for name, module in layers.items():
        for mine, theirs in ((net[name].W, module.weight), (net[name].b, module.bias)):
            mine, theirs = mine.detach().cpu(), theirs.detach().cpu()
            agree = agree and bool(torch.allclose(mine, theirs, rtol=1e-3, atol=1e-5))
            largest = max(largest, float((mine - theirs).abs().max()))
    return agree, largest


def bench_case(model: str, precision: str, steps: int, repeats: int, batch: int, device: str, numpy: bool,
               optional: dict[str, Callable[..., float]], compile: str | None = None,
               data: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Time every contender on one (model, precision); returns the table's row. ``data``: (x, y) to train on instead of random."""
    x, y = random_data(model, steps, batch, data)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    mariana_x, mariana_y = (x, y) if numpy else (tx, ty)
    warm = min(steps, 5) * batch

    def mariana(rows: int | None = None) -> float:
        net = mariana_net(model)
        seconds, start_up = run_mariana(net, mariana_x[:rows], mariana_y[:rows], batch, precision, device, compile)
        contenders["mariana_net"] = net
        start_ups.append(start_up)
        return seconds

    def plain(rows: int | None = None) -> float:
        module, layers = torch_model(model, mariana_net(model))
        module.to(device)
        seconds = run_torch(module, torch_optimizer(model, module), tx[:rows], ty[:rows], batch, precision, device)
        contenders["torch_layers"] = layers
        return seconds

    contenders: dict[str, Any] = {}
    start_ups: list[float] = []
    runs: dict[str, Callable[[int | None], float]] = {"mariana": mariana, "torch": plain}
    for name, contender in optional.items():
        runs[name] = lambda rows=None, contender=contender: contender(model, mariana_net(model), x[:rows], y[:rows], batch,
                                                                      precision, device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for timed in runs.values():  # warm up (allocator, autocast, plan caches, first optimizer step, compilation)
        timed(warm)
    for repeat in range(repeats):  # interleaved, so drifts in machine load hit every contender
        names = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
        for name in names:
            times[name].append(runs[name](None))
    agree, largest = weight_difference(contenders["mariana_net"], contenders["torch_layers"])
    images = steps * batch
    best = {name: min(values) for name, values in times.items()}
    ratios = [mine / theirs for mine, theirs in zip(times["mariana"], times["torch"])]
    return {"model": LABELS[model], "precision": precision, "seconds": best, "times": times, "ratios": ratios,
            "ratio": float(np.median(ratios)), "images_per_s": {name: images / seconds for name, seconds in best.items()},
            "start_up": min(start_ups[1:]), "weights_agree": agree, "max_difference": largest}


def print_table(rows: list[dict[str, Any]], optional_names: Sequence[str], missing: Sequence[str], header: str, file: TextIO) -> None:
    titles = {"mariana": "Mariana", "torch": "PyTorch loop", "keras": "Keras 3", "lightning": "Lightning"}
    columns = ["mariana", "torch", *optional_names]
    print(header, file=file)
    print(f"{'model':<6}{'precision':<10}" + "".join(f"{titles[name] + ' img/s':>20}" for name in columns)
          + f"{'ratio':>8}{'start ms':>10}  final weights (Mariana vs PyTorch loop)", file=file)
    for row in rows:
        cells = "".join(f"{row['images_per_s'][name]:>20,.0f}" for name in columns)
        difference = f"max |diff| {row['max_difference']:.1e}"
        if row["weights_agree"]:
            weights = f"agree (allclose, {difference})"
        elif row["precision"] == "fp32":
            weights = f"DIFFER ({difference})"
        else:
            weights = f"{difference} (bf16 rounds differently)"
        print(f"{row['model']:<6}{row['precision']:<10}{cells}{row['ratio']:>8.3f}{1e3 * row['start_up']:>10.1f}  {weights}",
              file=file)
    print("img/s: one epoch's training loop, first step to its metrics read on the host (best run); ratio = median over "
          "the repeats of Mariana's loop time / the hand-written loop's in the same repeat, at the same precision "
          "(goal <= 1.05); start ms: the Trainer's one-time start-up before the first step (checks the data for NaN, "
          "prepares the streams), not in img/s", file=file)
    if optional_names:
        print(f"{', '.join(titles[name] for name in optional_names)}: the whole fit call (their start-up included), "
              "from the same initial weights", file=file)
    if missing:
        print(f"(not installed: {', '.join(titles[name] for name in missing)}; pip install 'mariana[bench]' to compare them)",
              file=file)


def run(steps: int | None = None, repeats: int = REPEATS, numpy: bool = False, *, batch_size: int = 64, device: str = "auto",
        models: Sequence[str] = MODELS, precisions: Sequence[str] = tuple(PRECISIONS), compile: str | None = None,
        file: TextIO | None | str = "stdout") -> list[dict[str, Any]]:
    """Time every (model, precision); print the table to ``file`` (default: sys.stdout; None: print nothing), return its rows."""
    from mariana.checks import int_at_least

    if steps is not None:
        steps = int_at_least(steps, 1, "bench: steps")
    repeats = int_at_least(repeats, 1, "bench: repeats")
    batch_size = int_at_least(batch_size, 1, "bench: batch_size")
    for label, chosen, valid in (("models", models, MODELS), ("precisions", precisions, tuple(PRECISIONS))):
        unknown = [name for name in chosen if name not in valid]
        if unknown or not chosen:
            raise CommandError(f"--{label}: expected some of {', '.join(valid)}, but received {' '.join(map(str, chosen)) or 'none'}.")
    if compile is not None and compile not in COMPILE_MODES:
        raise CommandError(f"--compile: expected one of {', '.join(COMPILE_MODES)}, but received {compile!r}.")
    device = resolve_device(device)
    found = {"keras": keras_contender(), "lightning": lightning_contender()}
    optional = {name: contender for name, contender in found.items() if contender is not None}
    rows = [bench_case(model, precision, steps or STEPS[model], repeats, batch_size, device, numpy, optional, compile)
            for model in dict.fromkeys(models) for precision in dict.fromkeys(precisions)]
    if file is not None:
        counts = ", ".join(f"{LABELS[model]} {steps or STEPS[model]}" for model in dict.fromkeys(models))
        header = (f"mariana bench: batch {batch_size}, steps per run {counts}, {repeats} interleaved repeats, device {device}, "
                  f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), random MNIST-shaped data"
                  + (f"; Mariana compiled (mode {compile!r}), the PyTorch loop eager" if compile else ""))
        print_table(rows, list(optional), [name for name in found if name not in optional], header,
                    sys.stdout if file == "stdout" else file)
    return rows


def command(args: argparse.Namespace) -> int:
    """``mariana bench``'s handler: every option of :func:`add_arguments` passed to :func:`run`."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    run(args.steps, args.repeats, args.numpy, batch_size=args.batch_size, device=args.device, models=args.models,
        precisions=args.precisions, compile=args.compile)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """``python benchmarks/step_overhead.py [options of mariana bench]``: the same as ``mariana bench``."""
    parser = OneLineParser(prog="step_overhead.py", description=__doc__.splitlines()[0])
    add_arguments(parser, at_least(1))
    args = parser.parse_args(argv)
    try:
        command(args)
    except CommandError as error:
        parser.exit(2, f"{parser.prog}: {' '.join(str(error).splitlines())}\n")
