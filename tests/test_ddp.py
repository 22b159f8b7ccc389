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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        mar.seed(0)  # same weights on every rank
        net = ML.Input(4, name="inp") > ML.Hidden(3, activation=MA.Tanh(), name="hid") > ML.SoftmaxClassifier(2, name="out")
        model = torch.nn.parallel.DistributedDataParallel(net.module)
        x = torch.from_numpy(np.random.default_rng(rank).normal(size=(5, 4)).astype(np.float32))
        y = torch.tensor([0, 1, 0, 1, rank])
        logits = model(inp=x)["out"]
        F.nll_loss(torch.log(logits), y).backward()
        results[rank] = net["hid"].W.grad.clone()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_ddp_averages_gradients_across_processes():
    context = mp.get_context("spawn")
    with context.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_worker, args=(2, _free_port(), results), nprocs=2, join=True, start_method="spawn")
        grads = [results[0], results[1]]
    torch.testing.assert_close(grads[0], grads[1])

    def local_grad(rank):
        mar.seed(0)
        net = ML.Input(4, name="inp") > ML.Hidden(3, activation=MA.Tanh(), name="hid") > ML.SoftmaxClassifier(2, name="out")
        x = torch.from_numpy(np.random.default_rng(rank).normal(size=(5, 4)).astype(np.float32))
        F.nll_loss(torch.log(net.module(inp=x)["out"]), torch.tensor([0, 1, 0, 1, rank])).backward()
        return net["hid"].W.grad

    torch.testing.assert_close(grads[0], (local_grad(0) + local_grad(1)) / 2)
