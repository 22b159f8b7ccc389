"""One process against two under torchrun: what data-parallel training costs on a machine with few cores.

Each configuration trains an MLP 784-500-10 for ``--epochs`` epochs on the
first ``--rows`` MNIST training images, global batch 64, one torch thread per
process, and prints its training time (rank 0, from ``start`` to the end, so
process start-up and the rendezvous are not counted). Mariana's Trainer and a
hand-written loop (``DistributedDataParallel`` and ``DistributedSampler``-style
shares, the same global batch) run in turn, alternating, ``--repeats`` times;
the medians are printed. ``mariana+run_dir`` adds a run directory (data copy,
checkpoints, and the per-step interrupt agreement between processes). On a 2-core machine two processes share the two
cores: this measures overhead, not speed-up.

    $ python benchmarks/distributed_overhead.py --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def load(data_dir: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    from mariana.datasets import mnist

    train = mnist(data_dir)["train"]
    return train["x"][:rows], train["y"][:rows]


def mariana_worker(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    import mariana as mar
    import mariana.activations as MA
    import mariana.layers as ML
    import mariana.scenari as MS
    from mariana.training import DatasetMapper, Trainer, stops

    mar.seed(0)
    net = (ML.Input(784, name="inp") > ML.Hidden(500, activation=MA.ReLU(), name="hid")
           > ML.SoftmaxClassifier(10, learning_scenari=[MS.GradientDescent(lr=0.05, momentum=0.9)], name="out"))
    run_dir = os.environ.get("BENCH_RUN_DIR") or None  # with a run directory, processes agree on interrupts at every step
    trainer = Trainer(net, "out", batch_size=64, stops=[stops.EpochWall(epochs)], recorders=[], seed=0, run_dir=run_dir)
    start = time.perf_counter()
    trainer.start(DatasetMapper(inp=x, out=y))
    return time.perf_counter() - start


def plain_worker(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    import torch.distributed as dist

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10))
    step_model = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for low in range(0, len(order), 64):
            batch = order[low:low + 64]
            share = batch[rank * len(batch) // world:(rank + 1) * len(batch) // world]
            loss = torch.nn.functional.cross_entropy(step_model(inputs[share]), targets[share])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    if distributed:  # leaving with the group still open aborts a process now and then (gloo's threads at exit)
        dist.barrier()
        dist.destroy_process_group()
    return seconds


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # the first optimizer imports torch._dynamo (~1.5 s)
    x, y = load(args.data_dir, args.rows)
    seconds = (mariana_worker if args.worker == "mariana" else plain_worker)(x, y, args.epochs)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"seconds": seconds}))


def measure(kind: str, processes: int, args: argparse.Namespace) -> float:
    script = [str(Path(__file__).resolve()), "--worker", kind.split("+")[0], "--data-dir", args.data_dir, "--rows", str(args.rows),
              "--epochs", str(args.epochs)]
    if processes > 1:
        script = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *script]
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
               "BENCH_RUN_DIR": os.path.join(folder, "run") if kind == "mariana+run_dir" else ""}
        done = subprocess.run([sys.executable, *script], capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode != 0:
        raise SystemExit(f"distributed_overhead: the {kind} run on {processes} process(es) failed (exit status "
                         f"{done.returncode}); its last lines:\n" + "\n".join(done.stderr.strip().splitlines()[-5:]))
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MARIANA_DATA", str(ROOT.parent / "shared" / "data" / "mnist")))
    parser.add_argument("--rows", type=int, default=16000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["mariana", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    args.data_dir = str(Path(args.data_dir).resolve())  # the workers run in a temporary folder of their own
    kinds = ("mariana", "mariana+run_dir", "plain")
    configurations = [(kind, processes) for processes in (1, 2) for kind in kinds]
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configurations}
    for _ in range(args.repeats):
        for configuration in configurations:
            times[configuration].append(measure(*configuration, args))
    median = {c: statistics.median(t) for c, t in times.items()}
    images = args.rows * args.epochs
    print(f"MLP 784-500-10, {args.rows} MNIST images x {args.epochs} epochs, global batch 64, 1 thread per process, "
          f"median of {args.repeats}")
    print(f"{'':16}{'1 process':>12}{'2 processes':>14}{'2 / 1':>8}")
    for kind in kinds:
        one, two = median[(kind, 1)], median[(kind, 2)]
        print(f"{kind:16}{one:10.2f} s{two:12.2f} s{two / one:8.2f}   ({images / one:,.0f} and {images / two:,.0f} images/s)")
    for kind in kinds[:2]:
        print(f"{kind} / plain loop: {median[(kind, 1)] / median[('plain', 1)]:.3f} (1 process), "
              f"{median[(kind, 2)] / median[('plain', 2)]:.3f} (2 processes)")


if __name__ == "__main__":
    main()
