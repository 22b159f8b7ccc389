"""A 784-500-10 MLP on full MNIST (60k train / 10k test) with the Trainer: ReLU, dropout, L2, SGD with momentum.

Run from the repository root (the data folder sits beside the repository; never copied into it):

    $ python examples/mlp_mnist.py --data-dir ../shared/data/mnist

It reaches >= 98.0 % test accuracy; the README states the measured accuracy and time.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

import mariana as mar
import mariana.activations as MA
import mariana.costs as MC
import mariana.decorators as MD
import mariana.layers as ML
import mariana.regularizations as MR
import mariana.scenari as MS
from mariana.datasets import mnist
from mariana.training import DatasetMapper, Trainer, recorders, stops


def build() -> mar.network.Network:
    i = ML.Input(784, name="inp")
    h = ML.Hidden(500, activation=MA.ReLU(), decorators=[MD.BinomialDropout(0.2)], regularizations=[MR.L2(1e-5)], name="hid")
    o = ML.SoftmaxClassifier(10, learning_scenari=[MS.GradientDescent(lr=0.05, momentum=0.9, schedule=MS.StepDecay(938 * 8, 0.2))],
                             cost=MC.NegativeLogLikelihood(), regularizations=[MR.L2(1e-5)], name="out")
    return i > h > o


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--run-dir", default=None, help="default: a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = mnist(args.data_dir)
    mar.seed(args.seed)
    net = build()
    run_dir = args.run_dir or tempfile.mkdtemp(prefix="mlp_mnist-")
    trainer = Trainer(net, "out", batch_size=64, stops=[stops.EpochWall(args.epochs), stops.NaNGuard()],
                      recorders=[recorders.ProgressBar(), recorders.CSV("log.csv")], run_dir=run_dir, seed=args.seed)
    start = time.perf_counter()
    history = trainer.start(DatasetMapper(inp=data["train"]["x"], out=data["train"]["y"]),
                            test=DatasetMapper(inp=data["test"]["x"], out=data["test"]["y"]))
    seconds = time.perf_counter() - start
    for entry in history:
        print(f"epoch {entry['epoch']:2d}  {entry['time']:6.1f} s  train loss {entry['train']['out']['loss']:.4f}  "
              f"test accuracy {entry['test']['out']['accuracy']:.4f}")
    accuracy = net.accuracy("out", batch_size=2048, inp=data["test"]["x"], out=data["test"]["y"])
    print(f"MNIST test accuracy {accuracy:.4f} after {len(history)} epochs, {seconds:.0f} s "
          f"({torch.get_num_threads()} torch threads); run directory {run_dir}")


if __name__ == "__main__":
    main()
