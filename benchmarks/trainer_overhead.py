"""Trainer overhead: Mariana's Trainer against a hand-tuned plain PyTorch loop on the same work.

The work: an MNIST MLP (784-500-10, ReLU, softmax), batch 64, SGD with
momentum 0.9, 5 epochs on 8000 training images, shuffled every epoch, with
the epoch's mean loss and accuracy computed on the device and read once per
epoch. The Trainer runs with a progress bar, a CSV recorder and
save_if_murdered on (run directory, a checkpoint every epoch), and again
without a run directory, to show what the run directory costs. The plain
loop gathers the epoch's shuffled tensors once and slices them per batch
(no DataLoader). Same process, alternating, best of 3. Keras 3 (torch
backend) and PyTorch Lightning run the same work when installed (``pip
install -e ".[bench]"``).

    $ python benchmarks/trainer_overhead.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS
from mariana.bench import lightning_module
from mariana.datasets import mnist
from mariana.training import DatasetMapper, Trainer, recorders, stops

EPOCHS, BATCH, TRAIN_SIZE, LR, MOMENTUM = 5, 64, 8000, 0.01, 0.9


def mariana_run(x: np.ndarray, y: np.ndarray, with_run_dir: bool = True) -> float:
    mar.seed(0)
    net = ML.Input(784, name="inp") > ML.Hidden(500, activation=MA.ReLU(), name="hid") > ML.SoftmaxClassifier(
        10, learning_scenari=[MS.GradientDescent(lr=LR, momentum=MOMENTUM)], name="out")
    run_dir = tempfile.mkdtemp(prefix="bench-")
    try:
        start = time.perf_counter()
        trainer = Trainer(net, "out", batch_size=BATCH, stops=[stops.EpochWall(EPOCHS)],
                          recorders=[recorders.ProgressBar(), recorders.CSV(os.path.join(run_dir, "log.csv"))],
                          run_dir=os.path.join(run_dir, "run") if with_run_dir else None, save_if_murdered=True, seed=0)
        trainer.start(DatasetMapper(inp=x, out=y))
        return time.perf_counter() - start
    finally:
        shutil.rmtree(run_dir)


def plain_run(x: np.ndarray, y: np.ndarray) -> float:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    start = time.perf_counter()
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(inputs), generator=generator)
        xs, ys = inputs[order], targets[order]
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)
        for low in range(0, len(xs), BATCH):
            xb, yb = xs[low:low + BATCH], ys[low:low + BATCH]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum.add_(loss.detach(), alpha=len(xb))
            correct.add_((logits.detach().argmax(dim=-1) == yb).sum())
        float(loss_sum), int(correct)  # noqa: B018 - the once-per-epoch read a real loop does
    return time.perf_counter() - start


def keras_run(x: np.ndarray, y: np.ndarray) -> float | None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    if keras.backend.backend() != "torch":
        return None
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(500, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(LR, momentum=MOMENTUM),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=0)
    return time.perf_counter() - start


def lightning_run(x: np.ndarray, y: np.ndarray) -> float | None:
    try:
        import lightning as L
    except ImportError:
        return None
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no tips or banners in the table
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=DeprecationWarning)  # Lightning's own, not ours

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True)
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    network = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
    module = lightning_module(network, lambda network: torch.optim.SGD(network.parameters(), lr=LR, momentum=MOMENTUM))
    trainer.fit(module, loader)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for every contender (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = mnist(args.data_dir)
    x, y = data["train"]["x"][:TRAIN_SIZE], data["train"]["y"][:TRAIN_SIZE]
    contenders = {"plain PyTorch loop": plain_run, "Mariana Trainer": mariana_run,
                  "Mariana, no run_dir": lambda x, y: mariana_run(x, y, with_run_dir=False)}
    optional = {"Keras 3 (torch backend)": keras_run, "PyTorch Lightning": lightning_run}
    plain_run(x[:640], y[:640])  # warm up torch (first optimizer step imports a lot)
    mariana_run(x[:640], y[:640])
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, run in contenders.items():  # alternating, so drifts in machine load hit both
            times[name].append(run(x, y))
    for name, run in optional.items():
        first = run(x, y)
        if first is not None:
            times[name] = [first] + [run(x, y) for _ in range(args.repeats - 1)]
    best = {name: min(values) for name, values in times.items()}
    reference = best["plain PyTorch loop"]
    print(f"{EPOCHS} epochs x {TRAIN_SIZE} MNIST images, MLP 784-500-10, batch {BATCH}, SGD momentum, "
          f"{args.threads} torch thread(s); best of {args.repeats}")
    print(f"{'contender':<26} {'best s':>8} {'ratio':>7}   all runs (s)")
    for name, value in best.items():
        print(f"{name:<26} {value:8.3f} {value / reference:7.3f}   {', '.join(f'{t:.3f}' for t in times[name])}")
    missing = [name for name in optional if name not in best]
    if missing:
        print(f"(not installed: {', '.join(missing)}; pip install -e '.[bench]' to compare them)")


if __name__ == "__main__":
    main()
