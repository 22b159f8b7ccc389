"""Peak memory of one MNIST epoch, with and without a run directory (issue 13, item 5).

Each configuration runs in a fresh process (``ru_maxrss`` is a high-water mark):
an MLP 784-500-10 trained for one epoch on the 60,000 MNIST training images,
batch 64, no progress bar. With a run directory the Trainer also writes the
data copy and checkpoints there.

    $ python benchmarks/run_memory.py --data-dir ../shared/data/mnist
    $ PYTHONPATH=path/to/other/checkout python benchmarks/run_memory.py ...   # the same measure on other code
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def one_epoch(data_dir: str, run_dir: str | None) -> None:
    import mariana as mar
    from mariana.datasets import mnist
    from mariana.models import build_mlp
    from mariana.training import DatasetMapper, Trainer, stops

    data = mnist(data_dir)
    mar.seed(0)
    net = build_mlp((784,), 10, hidden=500)
    start = time.perf_counter()
    Trainer(net, "out", batch_size=64, stops=[stops.EpochWall(1)], recorders=[], run_dir=run_dir).start(
        DatasetMapper(inp=data["train"]["x"], out=data["train"]["y"]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'with' if run_dir else 'without'} run directory: peak RSS {peak:,.0f} MB, {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MARIANA_DATA", "../shared/data/mnist"))
    parser.add_argument("--child", choices=["with", "without"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as folder:
            one_epoch(args.data_dir, os.path.join(folder, "run") if args.child == "with" else None)
        return
    for mode in ("without", "with"):
        subprocess.run([sys.executable, __file__, "--data-dir", args.data_dir, "--child", mode], check=True)


if __name__ == "__main__":
    main()
