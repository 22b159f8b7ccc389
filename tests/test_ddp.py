"""net.module works under DistributedDataParallel (2 CPU processes, gloo over loopback)."""

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _in_process_group(rank: int, world: int, port: int, results, work) -> None:
    """A spawned process: join a gloo group over loopback, keep ``work(rank)``'s result, leave the group."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results[rank] = work(rank)
    finally:
        dist.destroy_process_group()


def two_processes(work) -> list:
    """``work(rank)``'s results of two spawned processes in one process group (``work`` must be a module function)."""
    context = mp.get_context("spawn")
    with context.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_in_process_group, args=(2, _free_port(), results, work), nprocs=2, join=True, start_method="spawn")
        return [results[0], results[1]]


def _ddp_gradient(rank: int) -> torch.Tensor:
    mar.seed(0)  # same weights on every rank
    net = ML.Input(4, name="inp") > ML.Hidden(3, activation=MA.Tanh(), name="hid") > ML.SoftmaxClassifier(2, name="out")
    model = torch.nn.parallel.DistributedDataParallel(net.module)
    x = torch.from_numpy(np.random.default_rng(rank).normal(size=(5, 4)).astype(np.float32))
    y = torch.tensor([0, 1, 0, 1, rank])
    logits = model(inp=x)["out"]
    F.nll_loss(torch.log(logits), y).backward()
    return net["hid"].W.grad.clone()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_ddp_averages_gradients_across_processes():
    grads = two_processes(_ddp_gradient)
    torch.testing.assert_close(grads[0], grads[1])

    def local_grad(rank):
        mar.seed(0)
        net = ML.Input(4, name="inp") > ML.Hidden(3, activation=MA.Tanh(), name="hid") > ML.SoftmaxClassifier(2, name="out")
        x = torch.from_numpy(np.random.default_rng(rank).normal(size=(5, 4)).astype(np.float32))
        F.nll_loss(torch.log(net.module(inp=x)["out"]), torch.tensor([0, 1, 0, 1, rank])).backward()
        return net["hid"].W.grad

    torch.testing.assert_close(grads[0], (local_grad(0) + local_grad(1)) / 2)


def _trainer_run(rank: int) -> tuple:
    """A user who initialised the process group: the Trainer uses it instead of making its own."""
    from mariana.training import DatasetMapper, Trainer, stops

    torch.set_num_threads(1)
    mar.seed(rank)  # different weights on each rank: DDP starts every rank from rank 0's
    out = ML.SoftmaxClassifier(2, learning_scenari=[MS.GradientDescent(lr=0.1)], name="out")
    net = ML.Input(4, name="inp") > ML.Hidden(3, activation=MA.Tanh(), name="hid") > out
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    trainer = Trainer(net, "out", batch_size=8, stops=[stops.EpochWall(2)], recorders=[], seed=3)
    trainer.start(DatasetMapper(inp=x, out=(x[:, 0] > 0).astype(np.int64)))
    return trainer.distributed.world_size, net["hid"].W.detach().clone(), trainer.history[-1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_the_trainer_joins_a_process_group_the_user_initialised():
    (world0, weights0, entry0), (world1, weights1, entry1) = two_processes(_trainer_run)
    assert world0 == world1 == 2
    assert torch.equal(weights0, weights1) and entry0 == entry1
