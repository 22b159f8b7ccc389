"""Per-step overhead of ``net.train`` against a plain PyTorch loop.

The same MLP (784-500-10, ReLU, batch 64, SGD lr 0.01 momentum 0.9) is
trained for the same steps on the same batches, once with Mariana and once
with a hand-written PyTorch loop, in one process, alternating, best of 3.
Both start from identical weights; the script also checks they end equal.

Run: ``.venv/bin/python benchmarks/step_overhead.py [--steps 500] [--numpy]``
(MNIST from ``../shared/data/mnist`` or ``$MARIANA_DATA`` when present,
random data otherwise: the timing does not depend on the values).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS

BATCH, LR, MOMENTUM = 64, 0.01, 0.9


def data(steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((steps * BATCH, 784), dtype=np.float32)
    y = rng.integers(0, 10, steps * BATCH)
    return x, y


def mariana_net():
    mar.seed(0)
    i = ML.Input(784, name="inp")
    h = ML.Hidden(500, activation=MA.ReLU(), name="hid")
    o = ML.SoftmaxClassifier(10, learning_scenari=[MS.GradientDescent(lr=LR, momentum=MOMENTUM)], name="out")
    return i > h > o


def torch_model(net) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10))
    with torch.no_grad():
        model[0].weight.copy_(net["hid"].W)
        model[0].bias.copy_(net["hid"].b)
        model[2].weight.copy_(net["out"].W)
        model[2].bias.copy_(net["out"].b)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def run_mariana(net, batches) -> float:
    start = time.perf_counter()
    for x, y in batches:
        net.train("out", inp=x, out=y)
    return time.perf_counter() - start


def run_torch(model, optimizer, batches) -> float:
    start = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--numpy", action="store_true", help="feed Mariana numpy arrays (conversion included)")
    args = parser.parse_args()
    x, y = data(args.steps)
    tensors = [(torch.from_numpy(x[i:i + BATCH]), torch.from_numpy(y[i:i + BATCH])) for i in range(0, len(x), BATCH)]
    arrays = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    mariana_batches = arrays if args.numpy else tensors

    net = mariana_net()
    model, optimizer = torch_model(net)
    run_mariana(net, mariana_batches[:20])  # warm up both (allocator, plan cache)
    run_torch(model, optimizer, tensors[:20])
    net, (model, optimizer) = mariana_net(), torch_model(mariana_net())

    mariana_times, torch_times = [], []
    for _ in range(args.repeats):
        torch_times.append(run_torch(model, optimizer, tensors))
        mariana_times.append(run_mariana(net, mariana_batches))
    same = torch.allclose(net["hid"].W, model[0].weight, atol=1e-4)
    best_m, best_t = min(mariana_times), min(torch_times)
    print(f"MLP 784-500-10, batch {BATCH}, {args.steps} steps x {args.repeats} (best of), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, Mariana fed {'numpy' if args.numpy else 'tensors'}")
    print(f"  plain PyTorch : {best_t:7.3f} s  ({1e3 * best_t / args.steps:.3f} ms/step)")
    print(f"  Mariana       : {best_m:7.3f} s  ({1e3 * best_m / args.steps:.3f} ms/step)")
    print(f"  ratio         : {best_m / best_t:.3f}   (goal <= 1.10)   same final weights: {same}")


if __name__ == "__main__":
    main()
