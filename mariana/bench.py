"""``mariana bench``: the per-step overhead of ``net.train`` against a plain PyTorch loop.

The same MLP (784-500-10, ReLU, batch 64, SGD lr 0.01 momentum 0.9) is
trained for the same steps on the same random batches (the timing does not
depend on the values), once with Mariana and once with a hand-written
PyTorch loop, in one process, alternating, best of ``repeats``. Both start
from identical weights, and the result says whether they end equal. It lives
in the package so that an installed ``mariana`` can run it;
``benchmarks/step_overhead.py`` runs the same code from a source checkout.

Example:
    >>> from mariana.bench import run
    >>> result = run(steps=3, repeats=1, file=None)
    >>> sorted(result)
    ['mariana', 'ratio', 'same_weights', 'torch']
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mariana.arguments import at_least

BATCH, LR, MOMENTUM = 64, 0.01, 0.9


def add_arguments(parser: argparse.ArgumentParser, count: Any = int) -> None:
    """The benchmark's options; ``count`` is the argparse type of its positive ints."""
    parser.add_argument("--steps", type=count, default=300, help="training steps per timed run (default: 300)")
    parser.add_argument("--repeats", type=count, default=3, help="timed runs of each loop; the best counts (default: 3)")
    parser.add_argument("--numpy", action="store_true", help="feed Mariana numpy arrays (conversion included)")


def data(steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((steps * BATCH, 784), dtype=np.float32)
    y = rng.integers(0, 10, steps * BATCH)
    return x, y


def mariana_net() -> Any:
    import mariana as mar
    import mariana.activations as MA
    import mariana.layers as ML
    import mariana.scenari as MS

    mar.seed(0)
    i = ML.Input(784, name="inp")
    h = ML.Hidden(500, activation=MA.ReLU(), name="hid")
    o = ML.SoftmaxClassifier(10, learning_scenari=[MS.GradientDescent(lr=LR, momentum=MOMENTUM)], name="out")
    return i > h > o


def torch_model(net: Any) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))
    with torch.no_grad():
        model[0].weight.copy_(net["hid"].W)
        model[0].bias.copy_(net["hid"].b)
        model[2].weight.copy_(net["out"].W)
        model[2].bias.copy_(net["out"].b)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def run_mariana(net: Any, batches: list) -> float:
    start = time.perf_counter()
    for x, y in batches:
        net.train("out", inp=x, out=y)
    return time.perf_counter() - start


def run_torch(model: nn.Module, optimizer: torch.optim.Optimizer, batches: list) -> float:
    start = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def run(steps: int = 300, repeats: int = 3, numpy: bool = False, file: TextIO | None = sys.stdout) -> dict[str, Any]:
    """Time both loops; print the comparison to ``file`` (None: print nothing) and return it."""
    from mariana.checks import int_at_least

    steps, repeats = int_at_least(steps, 1, "bench: steps"), int_at_least(repeats, 1, "bench: repeats")
    x, y = data(steps)
    tensors = [(torch.from_numpy(x[i:i + BATCH]), torch.from_numpy(y[i:i + BATCH])) for i in range(0, len(x), BATCH)]
    arrays = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    mariana_batches = arrays if numpy else tensors

    net = mariana_net()
    model, optimizer = torch_model(net)
    run_mariana(net, mariana_batches[:20])  # warm up both (allocator, plan cache)
    run_torch(model, optimizer, tensors[:20])
    net, (model, optimizer) = mariana_net(), torch_model(mariana_net())

    mariana_times, torch_times = [], []
    for _ in range(repeats):
        torch_times.append(run_torch(model, optimizer, tensors))
        mariana_times.append(run_mariana(net, mariana_batches))
    same = bool(torch.allclose(net["hid"].W, model[0].weight, atol=1e-4))
    best_m, best_t = min(mariana_times), min(torch_times)
    if file is not None:
        print(f"MLP 784-500-10, batch {BATCH}, {steps} steps x {repeats} (best of), torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, Mariana fed {'numpy' if numpy else 'tensors'}", file=file)
        print(f"  plain PyTorch : {best_t:7.3f} s  ({1e3 * best_t / steps:.3f} ms/step)", file=file)
        print(f"  Mariana       : {best_m:7.3f} s  ({1e3 * best_m / steps:.3f} ms/step)", file=file)
        print(f"  ratio         : {best_m / best_t:.3f}   (goal <= 1.10)   same final weights: {same}", file=file)
    return {"torch": best_t, "mariana": best_m, "ratio": best_m / best_t, "same_weights": same}


def main(argv: Sequence[str] | None = None) -> None:
    """``python benchmarks/step_overhead.py [--steps 500] [--repeats 3] [--numpy]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, at_least(1))
    parser.set_defaults(steps=500)
    args = parser.parse_args(argv)
    run(args.steps, args.repeats, args.numpy)
