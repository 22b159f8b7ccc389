"""The data-parallel logic that needs no second process: shares, checks, checkpoint parts, the environment."""

import os
import subprocess
import sys

import pytest
import torch

from mariana.training import ResumeWarning
from mariana.training.loop.metrics import EpochSums
from mariana.training.strategies import SingleProcess, strategy_for
from mariana.training.strategies.ddp import DataParallel
from mariana.training.strategies.process_group import rank_seed


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("rows", [0, 1, 5, 32, 33])
def test_the_ranks_shares_cover_a_batch_once_in_order(world, rows):
    shares = [DataParallel(rank, world).share(10, 10 + rows) for rank in range(world)]
    assert shares[0][0] == 10 and shares[-1][1] == 10 + rows
    assert all(high == low for (_, high), (low, _) in zip(shares, shares[1:]))  # contiguous, in rank order
    sizes = [high - low for low, high in shares]
    assert max(sizes) - min(sizes) <= 1


def test_a_global_batch_that_does_not_divide_by_the_world_size_is_refused_with_a_suggestion():
    DataParallel(0, 4).check_batch_size(64)
    with pytest.raises(ValueError, match=r"batch_size is the global batch, split between the 4 processes, so it must be "
                                         r"divisible by 4, but received 30\. Use e\.g\. batch_size=28"):
        DataParallel(1, 4).check_batch_size(30)


def test_one_process_is_not_distributed_and_does_everything_itself():
    single = strategy_for("auto")
    assert isinstance(single, SingleProcess) and strategy_for("ddp").name == "single"  # "ddp" in one process: nothing to share
    assert (single.world_size, single.rank, single.is_writer) == (1, 0, True)
    assert single.broadcast({"a": 1}) == {"a": 1} and single.gather(3) == [3] and single.any(False) is False
    sums = EpochSums(["out"], ["out"], torch.device("cpu"))
    assert single.summed(sums) is sums
    assert single.in_turn(lambda first: first) is True


def test_each_rank_takes_its_own_part_of_a_checkpoint_and_another_world_size_warns():
    sums = [{"loss_sums": {"out": torch.tensor(1.0 + r)}, "correct": {"out": torch.tensor(r)}, "counts": {"out": 3 + r},
             "weight_sums": {}} for r in range(2)]
    rng = [{"torch": torch.Generator().manual_seed(r).get_state()} for r in range(2)]
    state = {"rng": rng[0], "gradients": {}, **sums[0], "ranks": [
        {"rng": rng[0], "sums": sums[0], "gradients": {"w": torch.ones(1)}},
        {"rng": rng[1], "sums": sums[1], "gradients": {}},
    ]}
    mine = DataParallel(1, 2).own(state)
    assert torch.equal(mine["rng"]["torch"], rng[1]["torch"]) and mine["counts"] == {"out": 4} and mine["gradients"] == {}
    with pytest.warns(ResumeWarning, match=r"written by 2 process\(es\) and is resumed by 1"):
        alone = SingleProcess().own(state)
    assert alone["counts"] == {"out": 3} and list(alone["gradients"]) == ["w"]
    # A one-process checkpoint resumed by three: rank 0 keeps the running sums, the others start from zero with
    # their own torch state (own dropout masks), so no row is counted twice.
    single = {key: value for key, value in state.items() if key != "ranks"}
    with pytest.warns(ResumeWarning, match=r"written by 1 process\(es\) and is resumed by 3"):
        parts = [DataParallel(rank, 3).own(single) for rank in range(3)]
    assert [part["counts"]["out"] for part in parts] == [3, 0, 0] and float(parts[2]["loss_sums"]["out"]) == 0.0
    states = [part["rng"]["torch"] for part in parts]
    assert not torch.equal(states[0], states[1]) and not torch.equal(states[1], states[2])


@pytest.mark.parametrize("part", [{"rng": 3}, {"rng": {}, "sums": {"order": "bogus"}, "gradients": []},
                                  {"rng": {}, "sums": {}, "gradients": {"w": 1}}])
def test_a_forged_rank_part_is_refused(part):
    with pytest.raises(ValueError, match="'ranks' must be a non-empty list of each process's states"):
        DataParallel(0, 1).own({"rng": {}, "ranks": [part]})


def test_a_rank_part_cannot_replace_what_check_state_checked():
    state = {"rng": {}, "gradients": {}, "ranks": [{"rng": {}, "sums": {"step": -7, "phase": "bogus", "history": {}},
                                                    "gradients": {}}]}
    own = DataParallel(0, 1).own(state)
    assert "phase" not in own and "step" not in own and "history" not in own


def test_rank_seeds_differ_and_rank_0_keeps_the_run_seed():
    seeds = [rank_seed(7, rank) for rank in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4 and all(0 <= seed < 2**63 for seed in seeds)


def test_a_world_size_without_torchrun_s_other_variables_is_a_clear_error():
    code = ("from mariana.training.strategies import strategy_for\n"
            "try:\n    strategy_for('auto').setup('cpu')\nexcept ValueError as error:\n    print(error)\n")
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**env, "WORLD_SIZE": "2"})
    assert ("WORLD_SIZE=2 asks for a distributed run, but RANK, MASTER_ADDR, MASTER_PORT are not set. "
            "Launch the script with torchrun") in done.stdout, done.stderr
