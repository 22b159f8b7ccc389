"""Peak memory of training, with and without a run directory, from arrays in memory or memory-mapped files.

Each configuration runs in a fresh process (``ru_maxrss`` is a high-water
mark): an MLP 784-500-10 trained for one epoch, batch 64, no progress bar.

* ``--source memory``: the 60,000 MNIST training images saved as ``.npy`` and read into in-memory float32 arrays;
* ``--source mmap``: the same arrays saved as ``.npy`` and opened with ``mmap_mode="r"``;
* ``--source big``: a generated ``--big-gb`` GiB float32 array of random "images" (not committed;
  written to a temporary folder and removed), memory-mapped.

``--baseline`` prints the peak RSS of a process that only imports torch and Mariana.

``--throughput N`` measures images/s instead: N rounds, each training one epoch from
memory and one from the memory-mapped files (no run directory), every epoch in a fresh
process, the two sources alternating so a busy machine slows both alike, once with
glibc's default malloc and once with ``STEADY_MALLOC`` (see there: the allocator's
page faults otherwise vary more than the data sources differ); it prints each
epoch, then the medians and their ratio. Wall time is what the goal is about; the
process's CPU time (all its threads) is printed beside it because it is far less
sensitive to other processes on a small shared machine.

    $ python benchmarks/run_memory.py --data-dir ../shared/data/mnist --source memory mmap
    $ python benchmarks/run_memory.py --data-dir ../shared/data/mnist --throughput 5
    $ PYTHONPATH=path/to/other/checkout python benchmarks/run_memory.py ...   # the same measure on other code
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROWS_PER_EPOCH = 60000


def write_files(source: str, data_dir: str, folder: str, big_gb: float) -> None:
    """x.npy and y.npy in ``folder``, written by the parent process so the measured child never holds them."""
    if source == "big":
        rows = int(big_gb * 2**30 / (784 * 4))
        x = np.lib.format.open_memmap(os.path.join(folder, "x.npy"), mode="w+", dtype=np.float32, shape=(rows, 784))
        for start in range(0, rows, 65536):  # written in slices: generating it must not need the memory either
            x[start:start + 65536] = np.random.default_rng(start).random((min(65536, rows - start), 784), dtype=np.float32)
        x.flush()
        del x
        np.save(os.path.join(folder, "y.npy"), np.random.default_rng(0).integers(0, 10, rows))
        return
    from mariana.datasets import mnist

    train = mnist(data_dir)["train"]
    np.save(os.path.join(folder, "x.npy"), train["x"])
    np.save(os.path.join(folder, "y.npy"), train["y"])


def arrays(source: str, folder: str) -> tuple[np.ndarray, np.ndarray]:
    """The same .npy files, read into memory or memory-mapped.

    Both sources come from the same files so the two processes differ in nothing
    else: decoding the idx files in the measured process (``mnist(...)``) leaves
    glibc's malloc with raised thresholds (from its large temporary buffers), and
    the training steps after it page-fault ~5x less (~95k vs ~470k minor faults
    per epoch), which once made in-memory look 30 % faster than it is.
    """
    mode = None if source == "memory" else "r"
    return np.load(os.path.join(folder, "x.npy"), mmap_mode=mode), np.load(os.path.join(folder, "y.npy"), mmap_mode=mode)


def resident_parts() -> str:
    """The process's resident memory now, split into private (anonymous) pages and file pages (Linux only)."""
    try:
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    except OSError:
        return ""
    anon, files = (int(status[key].split()[0]) / 1024 for key in ("RssAnon", "RssFile"))
    return f"; at the end {anon:,.0f} MB private + {files:,.0f} MB of mapped files"


def one_epoch(source: str, data_dir: str, folder: str, with_run_dir: bool) -> dict:
    import torch

    import mariana as mar
    from mariana.models import build_mlp
    from mariana.training import DatasetMapper, Trainer, stops

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as run_parent:
        x, y = arrays(source, folder)
        setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        mar.seed(0)
        net = build_mlp((784,), 10, hidden=500)
        start, cpu_start = time.perf_counter(), time.process_time()
        Trainer(net, "out", batch_size=64, stops=[stops.EpochWall(1)], recorders=[],
                run_dir=os.path.join(run_parent, "run") if with_run_dir else None).start(DatasetMapper(inp=x, out=y))
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024
    print(f"{source:6s} {'with' if with_run_dir else 'without':7s} run dir: peak RSS {peak:,.0f} MB (after loading the data: "
          f"{setup_peak:,.0f} MB{resident_parts()}), {len(x):,} rows in {seconds:.1f} s = {len(x) / seconds:,.0f} images/s "
          f"({cpu_seconds:.1f} s of CPU, {usage.ru_minflt:,} minor page faults)", flush=True)
    return {"source": source, "images_per_s": len(x) / seconds, "cpu_images_per_s": len(x) / cpu_seconds}


#: glibc's malloc, told to keep what training frees (no mmap below 32 MiB, no trimming below 256 MiB). With its defaults,
#: the steps' freed buffers are given back to the OS and faulted in again: 0.4-0.7 M minor page faults per epoch, varying
#: from one process to the next by 2x, which swamps the difference between the data sources; steady: ~66 k, every time.
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}


def throughput(rounds: int, data_dir: str) -> None:
    """Median images/s (wall and CPU) of ``rounds`` alternating fresh-process epochs from memory and from mmap,
    with glibc's default malloc and with a steady one (the same for both sources)."""
    allocators = {"default malloc": {}, "steady malloc": STEADY_MALLOC}
    results: dict[tuple[str, str], list[dict]] = {(a, s): [] for a in allocators for s in ("memory", "mmap")}
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, __file__, "--data-dir", data_dir, "--write", "mmap", folder], check=True)
        for _ in range(rounds):
            for allocator, source in results:
                child = subprocess.run([sys.executable, __file__, "--data-dir", data_dir, "--child", source, folder, "without"],
                                       check=True, capture_output=True, text=True, env={**os.environ, **allocators[allocator]})
                print(f"{allocator}: {child.stdout.splitlines()[0]}", flush=True)
                results[allocator, source].append(json.loads(child.stdout.splitlines()[-1]))
    for allocator in allocators:
        medians = {source: {key: float(np.median([r[key] for r in results[allocator, source]]))
                            for key in ("images_per_s", "cpu_images_per_s")} for source in ("memory", "mmap")}
        for key, label in (("images_per_s", "wall"), ("cpu_images_per_s", "CPU")):
            print(f"{allocator}, median of {rounds}, {label:4s} time: memory {medians['memory'][key]:,.0f} images/s, mmap "
                  f"{medians['mmap'][key]:,.0f} images/s, mmap / memory = {medians['mmap'][key] / medians['memory'][key]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MARIANA_DATA", "../shared/data/mnist"))
    parser.add_argument("--source", nargs="+", choices=["memory", "mmap", "big"], default=["memory"])
    parser.add_argument("--big-gb", type=float, default=4.0)
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--throughput", type=int, metavar="ROUNDS", help="median images/s of memory vs mmap over ROUNDS rounds")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--write", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_files(args.write[0], args.data_dir, args.write[1], args.big_gb)
        return
    if args.child:
        print(json.dumps(one_epoch(args.child[0], args.data_dir, args.child[1], args.child[2] == "with")))
        return
    if args.throughput:
        throughput(args.throughput, args.data_dir)
        return
    if args.baseline:
        code = "import resource, torch, mariana.training; print(f'baseline (import torch and Mariana): peak RSS ' \
f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB')"
        subprocess.run([sys.executable, "-c", code], check=True)
    for source in args.source:
        with tempfile.TemporaryDirectory() as folder:
            # in a process of its own: a child's peak RSS counts its parent's memory at fork
            subprocess.run([sys.executable, __file__, "--data-dir", args.data_dir, "--big-gb", str(args.big_gb),
                                "--write", source, folder], check=True)
            for mode in ("without", "with"):
                child = subprocess.run([sys.executable, __file__, "--data-dir", args.data_dir, "--child", source, folder, mode],
                                       check=True, capture_output=True, text=True)
                print(child.stdout.splitlines()[0], flush=True)  # the last line is the JSON that --throughput reads


if __name__ == "__main__":
    main()
