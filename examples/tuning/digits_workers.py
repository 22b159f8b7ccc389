"""Several processes share one hyperparameter search on digits through one SQLite storage.

Each worker runs the same ``mariana.tuning.search`` against the same study
(``--storage``, ``--study``); the study's ``--trials`` is their total. The
learning rate is drawn over 1e-6..1, so the median pruner has poor trials to
stop. Without ``--worker`` the script starts ``--workers`` copies of itself,
waits for them and prints what the study holds: finished, completed and
pruned trials, the trials each worker ran, whether trials overlapped in time.

    $ python examples/tuning/digits_workers.py --workers 2 --trials 10 --epochs 4
    $ python examples/tuning/digits_workers.py --worker 0 --storage sqlite:///runs/study.db   # one worker, by hand

A worker waits until all ``--workers`` have started (a file each in the run
root) before it searches, so they really run side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS
import mariana.tuning as MT
from mariana.datasets import digits


def build(hp):
    return (ML.Input(64, name="inp")
            > ML.Hidden(hp.int("size", 16, 128, log=True), activation=hp.choice("act", [MA.ReLU(), MA.Tanh()]), name="hid")
            > ML.SoftmaxClassifier(10, learning_scenari=[MS.Adam(lr=hp.float("lr", 1e-6, 1.0, log=True))], name="out"))


def run_worker(args: argparse.Namespace) -> None:
    import optuna

    torch.set_num_threads(1)
    root = Path(args.run_root)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"worker-{args.worker}.ready").touch()
    while len(list(root.glob("worker-*.ready"))) < args.workers:  # start together
        time.sleep(0.05)
    data = digits()
    x, y = data["train"]["x"], data["train"]["y"]
    cut = len(x) - len(x) // 10  # the demo's split: the last tenth of the training set validates
    MT.search(build, {"inp": x[:cut], "out": y[:cut]}, {"inp": x[cut:], "out": y[cut:]}, trials=args.trials, epochs=args.epochs,
              batch_size=64, objective=("valid", "out", "accuracy"), storage=args.storage, study_name=args.study,
              run_root=args.run_root, sampler=optuna.samplers.RandomSampler(seed=args.worker), seed=args.worker * 1000,
              verbose=False, heartbeat=args.heartbeat)


def summary(storage: str, study_name: str) -> dict:
    """What the study holds: counts by state, each worker's trials, and whether two trials ran at the same time."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    spans = sorted((t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in finished)
    overlaps = sum(1 for (_, end), (start, _) in zip(spans, spans[1:]) if start < end)
    return {"finished": len(finished), "complete": sum(t.state.name == "COMPLETE" for t in trials),
            "pruned": sum(t.state.name == "PRUNED" for t in trials), "failed": sum(t.state.name == "FAIL" for t in trials),
            "overlapping_pairs": overlaps, "best_value": study.best_value, "best_params": study.best_params,
            "stop_reasons": sorted({t.user_attrs.get("mariana", {}).get("stop_reason", "") for t in finished})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--run-root", default="runs/tune-digits-workers")
    parser.add_argument("--storage", default=None, help="default: sqlite:///<run root>/study.db")
    parser.add_argument("--study", default="digits")
    parser.add_argument("--heartbeat", type=int, default=60)
    parser.add_argument("--worker", type=int, default=None, help="run as worker N (else start --workers of them)")
    args = parser.parse_args()
    args.storage = args.storage or f"sqlite:///{os.path.abspath(args.run_root)}/study.db"
    if args.worker is not None:
        run_worker(args)
        return
    Path(args.run_root).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    command = [sys.executable, *sys.argv, "--storage", args.storage]
    workers = [subprocess.Popen([*command, "--worker", str(n)]) for n in range(args.workers)]
    codes = [worker.wait() for worker in workers]
    print(f"{args.workers} workers ended with {codes} after {time.perf_counter() - start:.1f} s")
    for key, value in summary(args.storage, args.study).items():
        print(f"{key}: {value}")
    sys.exit(max(codes))


if __name__ == "__main__":
    main()
