"""Data-parallel training under torchrun: 2 CPU processes (gloo, loopback) against 1, restarts, rank 0 alone writing.

Each test launches ``tests/training/ddp_child.py`` (the same script a user
would write) with ``python -m torch.distributed.run`` (torchrun), so the
Trainer finds torchrun's environment exactly as on a cluster.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import torch
import torch.distributed as dist
from torch.distributed.run import get_args_parser

from tests.training import ddp_child

CHILD = Path(ddp_child.__file__)
ROOT = CHILD.parents[2]

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")


def launch(data_file, run_dir, out, *options, processes=2, restarts=0):
    """Run the training script under torchrun (``processes`` > 0) or as a plain process (0)."""
    out.mkdir(exist_ok=True)
    script = [str(CHILD), str(data_file), str(run_dir), str(out), *options]
    if processes:
        script = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                  f"--max-restarts={restarts}", "--monitor-interval=0.1", *script]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MARIANA_DISTRIBUTED_TIMEOUT": "60", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *script], capture_output=True, text=True, timeout=240, env=env)


def weights(out, rank=0):
    return torch.load(out / f"weights-rank{rank}.pt")


def writes(out, rank, attempt=0):
    return json.loads((out / f"writes-rank{rank}-attempt{attempt}.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_file):
    """An uninterrupted 2-process run with dropout (each rank draws its own masks)."""
    folder = tmp_path_factory.mktemp("ddp-reference")
    done = launch(data_file, folder / "run", folder / "out", "--dropout")
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "out"


def test_two_processes_end_where_one_ends_and_only_rank_0_writes(tmp_path, data_file):
    # 609 rows, batch 32: the last batch has 1 row, so rank 1's share of it is empty; 199 valid rows split 100/99.
    one = launch(data_file, tmp_path / "one", tmp_path / "one-out", "--rows", "609", processes=0)
    two = launch(data_file, tmp_path / "two", tmp_path / "two-out", "--rows", "609")
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    single, rank0, rank1 = weights(tmp_path / "one-out"), weights(tmp_path / "two-out", 0), weights(tmp_path / "two-out", 1)
    assert all(torch.equal(rank0[key], rank1[key]) for key in rank0)  # DDP keeps the replicas identical
    for key in single:  # the same global batches: equal up to float summation order
        torch.testing.assert_close(rank0[key], single[key], rtol=0, atol=2e-5)
    histories = [json.loads((tmp_path / folder / "history-rank0.json").read_text()) for folder in ("one-out", "two-out")]
    for mine, theirs in zip(*histories, strict=True):
        for stream in ("train", "valid"):
            assert mine[stream]["out"]["accuracy"] == theirs[stream]["out"]["accuracy"]
            assert mine[stream]["out"]["loss"] == pytest.approx(theirs[stream]["out"]["loss"], abs=1e-5)
    assert json.loads((tmp_path / "two-out" / "history-rank1.json").read_text()) == histories[1]  # one entry for all
    assert writes(tmp_path / "two-out", 1) == []  # rank 1 touched nothing in the run directory
    written = {Path(path).name for _, path in writes(tmp_path / "two-out", 0)}
    assert {"run.json", "log.csv", "latest"} <= written
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))
    assert len((tmp_path / "two" / "log.csv").read_text().splitlines()) == 1 + ddp_child.EPOCHS


def test_two_processes_read_memory_mapped_files_in_shares_and_copy_nothing(tmp_path, data_file):
    folder = tmp_path / "files"
    folder.mkdir()
    with np.load(data_file) as stored:
        for name in ("x", "y", "vx", "vy"):
            np.save(folder / f"{name}.npy", stored[name])
    one = launch(data_file, tmp_path / "one", tmp_path / "one-out", "--rows", "609", processes=0)
    two = launch(data_file, tmp_path / "two", tmp_path / "two-out", "--rows", "609", "--mmap", str(folder))
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    single, mapped = weights(tmp_path / "one-out"), weights(tmp_path / "two-out", 1)
    for key in single:
        torch.testing.assert_close(mapped[key], single[key], rtol=0, atol=2e-5)
    assert safetensors.numpy.load_file(str(tmp_path / "two" / "data" / "train.safetensors")) == {}
    streams = json.loads((tmp_path / "two" / "run.json").read_text())["trainer"]["streams"]
    files = {stream: sorted(key for source in streams[stream]["sources"] if source["kind"] == "file" for key in source["keys"])
             for stream in ("train", "valid")}
    assert files == {"train": ["inp", "out"], "valid": ["inp", "out"]}


def test_a_worker_killed_mid_epoch_is_restarted_by_torchrun_bit_identically(tmp_path, data_file, uninterrupted):
    # 20 steps per epoch: rank 1 dies at step 30, mid-epoch 2; torchrun restarts both, which resume="auto" continues.
    done = launch(data_file, tmp_path / "run", tmp_path / "out", "--dropout", "--kill-at", "30", restarts=1)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exitcode: -9" in done.stderr  # the kill happened and torchrun restarted the group
    assert (tmp_path / "out" / "writes-rank0-attempt1.json").exists()
    resumed, reference = weights(tmp_path / "out"), weights(uninterrupted)
    assert all(torch.equal(resumed[key], reference[key]) for key in reference)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3"]
    assert writes(tmp_path / "out", 1, attempt=1) == []


def test_sigterm_on_one_rank_saves_once_for_all_and_the_same_command_continues(tmp_path, data_file, uninterrupted):
    stopped = launch(data_file, tmp_path / "run", tmp_path / "out", "--dropout", "--term-at", "30")
    assert stopped.returncode != 0 and "exitcode  : 143" in stopped.stderr  # SystemExit(143), as a SIGTERM asks
    # The signal came during step 10 of epoch 2; both ranks learnt of it one step later and stopped after step 11:
    # one emergency checkpoint, written by rank 0.
    assert (tmp_path / "run" / "checkpoints" / "ckpt-000003-e1-s11.safetensors").exists()
    assert "training stopped by SIGTERM at epoch 2, after step 11" in stopped.stderr
    # Said once (rank 0), pointing at the torchrun command rather than `mariana resume` (one process).
    assert stopped.stderr.count("training stopped by SIGTERM") == 1
    assert "Rerun the same torchrun command to carry on from it (resume='auto')." in stopped.stderr
    assert "mariana resume" not in stopped.stderr
    rerun = launch(data_file, tmp_path / "run", tmp_path / "out", "--dropout")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed, reference = weights(tmp_path / "out"), weights(uninterrupted)
    assert all(torch.equal(resumed[key], reference[key]) for key in reference)


def test_accumulated_steps_average_across_processes_once_per_optimizer_step(tmp_path, data_file):
    # accumulate=3 over 20 batches: groups of 3 (DDP's no_sync inside a group) and a last group of 2.
    one = launch(data_file, tmp_path / "one", tmp_path / "one-out", "--accumulate", "3", processes=0)
    two = launch(data_file, tmp_path / "two", tmp_path / "two-out", "--accumulate", "3")
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]
    single, rank0, rank1 = weights(tmp_path / "one-out"), weights(tmp_path / "two-out", 0), weights(tmp_path / "two-out", 1)
    assert all(torch.equal(rank0[key], rank1[key]) for key in rank0)
    for key in single:
        torch.testing.assert_close(rank0[key], single[key], rtol=0, atol=2e-5)


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = next(code for code in text.split("```") if "torchrun --standalone" in code)
    return [shlex.split(line.split("#")[0]) for line in block.strip().splitlines()]


def torchrun_arguments(command: list[str]) -> argparse.Namespace:
    """What torchrun understands of ``command`` (its own parser: an unknown option fails here)."""
    assert command[0] == "torchrun"
    return get_args_parser().parse_args(command[1:])


def test_the_readme_s_one_machine_command_runs_as_written(tmp_path):
    one_machine = next(command for command in readme_commands() if "--standalone" in command)
    arguments = torchrun_arguments(one_machine)
    assert arguments.training_script == "examples/distributed/train_digits.py" and arguments.nproc_per_node == "2"
    command = [sys.executable, "-m", "torch.distributed.run", *one_machine[1:-1], str(tmp_path / "run")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    accuracy = float(re.search(r"^2 process\(es\): test accuracy (\S+) after 10 epochs", done.stdout, re.MULTILINE).group(1))
    assert accuracy > 0.9
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 11


def test_the_readme_s_several_node_and_slurm_commands_are_ones_torchrun_accepts():
    several = next(command for command in readme_commands() if "--nnodes=2" in command)
    arguments = torchrun_arguments(several)
    assert (arguments.nnodes, arguments.max_restarts, arguments.rdzv_backend) == ("2", 3, "c10d")
    assert arguments.training_script == "examples/distributed/train_digits.py"
    slurm = ROOT / "examples" / "distributed" / "slurm.sbatch"
    assert subprocess.run(["bash", "-n", str(slurm)]).returncode == 0
    launch_line = " ".join(line.rstrip("\\").strip() for line in slurm.read_text().splitlines() if not line.startswith("#"))
    srun = shlex.split(launch_line[launch_line.index("srun "):])
    arguments = torchrun_arguments(srun[1:])
    assert arguments.training_script == "examples/distributed/train_digits.py" and arguments.max_restarts == 3
    assert "--requeue" in slurm.read_text()


def test_frozen_layers_and_class_weights_match_one_process_and_batch_norm_statistics_are_rank_0_s(tmp_path, data_file):
    # Each rank draws its own initial weights: DDP starts all from rank 0's, frozen ones included. With class weights
    # a share's loss is a weighted mean, reweighed by the share of the batch's weight (not of its rows).
    one = launch(data_file, tmp_path / "one", tmp_path / "one-out", "--variant", "weighted", "--rows", "609", processes=0)
    two = launch(data_file, tmp_path / "two", tmp_path / "two-out", "--variant", "weighted", "--rows", "609")
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-3000:]
    single, rank0, rank1 = weights(tmp_path / "one-out"), weights(tmp_path / "two-out", 0), weights(tmp_path / "two-out", 1)
    assert all(torch.equal(rank0[key], rank1[key]) for key in rank0) and torch.equal(rank0["frozen.W"], single["frozen.W"])
    for key in single:
        torch.testing.assert_close(rank0[key], single[key], rtol=0, atol=2e-5)
    norm = launch(data_file, tmp_path / "bn", tmp_path / "bn-out", "--variant", "batchnorm")
    assert norm.returncode == 0, norm.stderr[-3000:]
    rank0, rank1 = weights(tmp_path / "bn-out", 0), weights(tmp_path / "bn-out", 1)
    assert {key for key in rank0 if "running" in key} and all(torch.equal(rank0[key], rank1[key]) for key in rank0)


def test_an_error_on_rank_0_alone_ends_the_whole_run_at_once(tmp_path, data_file):
    # The other rank waits in its next collective; rank 0 leaves without the exit barrier, so its closed connections
    # end that wait (before: the 30 s exit barrier first).
    started = time.monotonic()
    done = launch(data_file, tmp_path / "run", tmp_path / "out", "--fail-on-rank-0")
    assert done.returncode != 0 and "recorder failure at the end of epoch 1" in done.stderr
    assert time.monotonic() - started < 25


def test_callbacks_run_on_every_rank_and_a_stop_on_one_rank_stops_all_at_the_same_epoch(tmp_path, data_file):
    done = launch(data_file, tmp_path / "run", tmp_path / "out", "--local-stop")
    assert done.returncode == 0, done.stderr[-3000:]
    histories = [json.loads((tmp_path / "out" / f"history-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [len(history) for history in histories] == [1, 1]  # rank 1's stop ended both after epoch 1
    hooks = [json.loads((tmp_path / "out" / f"hooks-rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, seen in enumerate(hooks):  # a user's recorder ran on its own rank; the CSV only on rank 0
        assert seen == [["epoch_end", rank, 1], ["end", rank, "StopsOnRank1: rank 1's local signal"]]
    assert writes(tmp_path / "out", 1) == []
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 2
    assert all(torch.equal(weights(tmp_path / "out", 0)[key], value) for key, value in weights(tmp_path / "out", 1).items())


def test_a_step_wall_ends_both_ranks_mid_epoch_where_one_process_ends(tmp_path, data_file):
    one = launch(data_file, tmp_path / "one", tmp_path / "one-out", "--step-wall", "27", processes=0)
    two = launch(data_file, tmp_path / "two", tmp_path / "two-out", "--step-wall", "27")
    assert one.returncode == 0 and two.returncode == 0, (one.stderr[-2000:], two.stderr[-2000:])
    single, rank0 = weights(tmp_path / "one-out"), weights(tmp_path / "two-out", 0)
    for key in single:
        torch.testing.assert_close(rank0[key], single[key], rtol=0, atol=2e-5)
    history = json.loads((tmp_path / "two-out" / "history-rank1.json").read_text())
    assert len(history) == 2  # 20 steps per epoch: the partial second epoch is the last
