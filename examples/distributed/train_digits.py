"""The same training script for one process, torchrun on one machine, several nodes, or Slurm.

    $ python examples/distributed/train_digits.py runs/digits
    $ torchrun --standalone --nproc_per_node=2 examples/distributed/train_digits.py runs/digits-2

Nothing in it is about processes: under torchrun the Trainer joins the process
group, splits each global batch of 64 between the ranks, and only rank 0
writes. ``resume="auto"`` makes the command restartable: run it again after a
kill (or let ``torchrun --max-restarts=3`` do it) and it carries on from the
last checkpoint.
"""

from __future__ import annotations

import argparse

import mariana as mar
from mariana.datasets import digits
from mariana.models import build_mlp
from mariana.training import DatasetMapper, Trainer, recorders, stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="where the run keeps its checkpoints (shared by all nodes)")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    data = digits(seed=0)
    mar.seed(0)
    net = build_mlp((64,), 10, hidden=64)
    trainer = Trainer(net, "out", batch_size=64, stops=[stops.EpochWall(args.epochs)],
                      recorders=[recorders.ProgressBar(), recorders.CSV("log.csv")], run_dir=args.run_dir, seed=0,
                      checkpoint_every=1, resume="auto")
    history = trainer.start(DatasetMapper(inp=data["train"]["x"], out=data["train"]["y"]),
                            test=DatasetMapper(inp=data["test"]["x"], out=data["test"]["y"]))
    if trainer.distributed.is_writer:
        print(f"{trainer.distributed.world_size} process(es): test accuracy {history[-1]['test']['out']['accuracy']:.4f} "
              f"after {len(history)} epochs; run directory {args.run_dir}")


if __name__ == "__main__":
    main()
