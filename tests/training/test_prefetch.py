"""The read-ahead of streams read batch by batch: adjacent batches (one process) and strided shards (one rank of several)."""

import concurrent.futures
import threading

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from mariana.models import build_mlp
from mariana.training import DatasetMapper
from mariana.training.data.prefetch import Prefetch
from mariana.training.data.streams import FileStream


@pytest.fixture
def pool():
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown()


def recording(reads):
    def read(low, high):
        reads.append((low, high))
        return list(range(low, high))
    return read


@pytest.mark.parametrize("calls", [
    [(0, 32), (32, 64), (64, 96), (96, 100)],                     # one process: adjacent batches, a short last one
    [(0, 32), (64, 96), (128, 160), (192, 200)],                  # rank 0 of 2: strided shards
    [(32, 64), (96, 128), (160, 192)],                            # rank 1 of 2
    [(0, 10), (30, 40), (60, 70), (90, 100)],                     # rank 0 of 3
])
def test_the_prediction_follows_adjacent_and_strided_calls(pool, calls):
    reads = []
    rows = Prefetch(recording(reads), calls[-1][1], lambda: pool)
    for low, high in calls:
        assert rows(low, high) == list(range(low, high))
    assert rows.pending_rows() is None  # nothing read past the end
    pool.submit(lambda: None).result()
    # Every call but the first was read ahead, each row once; the second call of a strided pattern is a guess that misses.
    strided = calls[1][0] != calls[0][1]
    assert len(reads) == len(calls) + (1 if strided else 0)
    assert set(calls) <= set(reads)


def test_a_mismatched_read_ahead_is_dropped_and_at_most_one_is_pending(pool):
    gate = threading.Event()
    reads = []

    def read(low, high):
        if (low, high) == (10, 20):
            gate.wait(5)
        reads.append((low, high))
        return (low, high)

    rows = Prefetch(read, 100, lambda: pool)
    assert rows(0, 10) == (0, 10) and rows.pending_rows() == (10, 20)
    assert rows(50, 60) == (50, 60)           # not the guess: read now; the guess is dropped...
    assert rows.pending_rows() is None        # ...and nothing is read past the end (100, 110)
    gate.set()
    assert rows(5, 7) == (5, 7) and rows.pending_rows() is None  # a step back: no pattern to follow
    pool.submit(lambda: None).result()
    assert reads.count((50, 60)) == 1


def file_stream(tmp_path, kind):
    x = np.arange(200 * 6, dtype=np.float32).reshape(200, 6)
    y = np.arange(200) % 3
    if kind == "mmap":
        np.save(tmp_path / "x.npy", x)
        mapper = DatasetMapper(inp=np.load(tmp_path / "x.npy", mmap_mode="r"), out=y)
    else:
        mapper = DatasetMapper.from_dataset(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), inp=0, out=1)
    net = build_mlp((6,), 3, hidden=4)
    return FileStream(net.cost_plan("out"), mapper, ["out"]), x, y


@pytest.mark.parametrize("kind", ["mmap", "dataset"])
@pytest.mark.parametrize("shards", [1, 2, 3])
def test_streams_read_from_files_or_datasets_give_the_rows_of_each_shard(tmp_path, kind, shards):
    stream, x, y = file_stream(tmp_path, kind)
    order = np.random.default_rng(0).permutation(200)
    try:
        for rank in range(shards):
            rows = stream.in_order(torch.from_numpy(order))
            per_rank = 24 // shards
            for batch in range(0, 200, 24):  # one epoch of global batches of 24; this rank's part of each
                low, high = min(batch + rank * per_rank, 200), min(batch + (rank + 1) * per_rank, 200)
                if low == high:
                    continue
                part = rows(low, high)
                assert torch.equal(part.feeds["inp"], torch.from_numpy(x[order[low:high]]))
                assert part.class_ids["out"].tolist() == y[order[low:high]].tolist()
        for low in range(0, 200, 64):  # an evaluation: stored order
            assert torch.equal(stream.rows(low, min(low + 64, 200)).feeds["inp"], torch.from_numpy(x[low:low + 64]))
    finally:
        stream.close()


def test_a_read_ahead_starts_only_when_reading_is_a_real_share_of_the_callers_time(pool):
    import time

    def slow(low, high):
        time.sleep(0.02)
        return (low, high)

    fast_reads = Prefetch(lambda low, high: (low, high), 100, lambda: pool, min_share=0.2)
    slow_reads = Prefetch(slow, 100, lambda: pool, min_share=0.2)
    for rows in (fast_reads, slow_reads):
        for low in range(0, 40, 10):
            assert rows(low, low + 10) == (low, low + 10)
            time.sleep(0.005)  # the caller's work on the batch
    assert fast_reads.pending_rows() is None and slow_reads.pending_rows() == (40, 50)
    assert slow_reads(40, 50) == (40, 50)
