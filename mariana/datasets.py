"""Data sets: scikit-learn's embedded digits, and MNIST / Fashion-MNIST from their idx files.

Nothing is downloaded. ``mnist(path)`` and ``fashion_mnist(path)`` read the
four standard gzip idx files (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``) from ``path``; without ``path`` they look in
``$MARIANA_DATA``, which may point either at the folder that holds the
``mnist/`` and ``fashion-mnist/`` folders or directly at the folder with the
four files.

``mnist(path, mmap=True)`` (what ``mariana demo --dataset mnist`` uses) decodes
the idx files once into float32/int64 ``.npy`` files in a cache folder
(``$MARIANA_CACHE``, else ``$XDG_CACHE_HOME/mariana``, else ``~/.cache/mariana``),
named after the idx files' sha256, and returns them memory-mapped. A Trainer
reads memory-mapped arrays batch by batch and records them in its run
directory by path, size and sha256 instead of copying them, so every run
shares the one decoded copy, and ``mariana resume`` reopens it (checking its
sha256). Deleting the cache is safe between runs; a run that still needs it
asks for the file back, and the next ``mmap=True`` load writes it again.

Example:
    >>> from mariana.datasets import digits
    >>> data = digits()
    >>> data["train"]["x"].shape[1]
    64

    $ MARIANA_DATA=../shared/data python -c "import mariana.datasets as D; print(D.mnist()['train']['x'].shape)"
    (60000, 784)
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

from mariana.files import atomic_write, file_sha256

IDX_FILES = {
    ("train", "x"): "train-images-idx3-ubyte.gz",
    ("train", "y"): "train-labels-idx1-ubyte.gz",
    ("test", "x"): "t10k-images-idx3-ubyte.gz",
    ("test", "y"): "t10k-labels-idx1-ubyte.gz",
}
_MAGIC = {2051: 3, 2049: 1}  # images: 3 axes (count, rows, cols); labels: 1 axis


def digits(test_fraction: float = 0.2, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """The 8x8 digits (1797 images) as float32 in [0, 1], split into train/test.

    Returns ``{"train": {"x", "y"}, "test": {"x", "y"}}``; ``x`` is ``(n, 64)``.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round(len(x) * (1 - test_fraction)))
    train, test = order[:cut], order[cut:]
    return {"train": {"x": x[train], "y": y[train]}, "test": {"x": x[test], "y": y[test]}}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One idx file (gzip or not) as a numpy array; checks the magic number and the size.

    Images (magic 2051) come back raw, as uint8 ``(count, rows, cols)`` in
    [0, 255], labels (magic 2049) as uint8 ``(count,)``; :func:`mnist` scales
    and flattens them.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        data = file.read()
    if len(data) < 8:
        raise ValueError(f"{path}: expected an idx file (8-byte header at least), but received {len(data)} bytes.")
    magic = int.from_bytes(data[:4], "big")
    if magic not in _MAGIC:
        raise ValueError(f"{path}: expected idx magic number 2051 (images) or 2049 (labels), but read {magic}.")
    axes = _MAGIC[magic]
    header = 4 + 4 * axes
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(axes))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path}: the header announces shape {shape} ({expected} bytes in all), but the file has {len(data)} bytes.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _idx_folder(path: str | os.PathLike | None, name: str) -> Path:
    """The folder holding the four files: ``path``, else ``$MARIANA_DATA/<name>`` or ``$MARIANA_DATA`` itself."""
    if path is not None:
        return Path(path)
    root = os.environ.get("MARIANA_DATA") or None  # set but empty counts as unset
    if root is None:
        raise FileNotFoundError(
            f"{name}: no path given and $MARIANA_DATA is not set. Pass the folder holding {IDX_FILES[('train', 'x')]} etc., "
            f"or set MARIANA_DATA to the folder that holds {name}/ (or to that folder itself)."
        )
    root = Path(root)
    return root / name if (root / name / IDX_FILES[("train", "x")]).exists() else root


def cache_folder() -> Path:
    """Where ``mmap=True`` keeps decoded data sets: ``$MARIANA_CACHE``, ``$XDG_CACHE_HOME/mariana`` or ``~/.cache/mariana``."""
    if os.environ.get("MARIANA_CACHE"):
        return Path(os.environ["MARIANA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mariana"


def _memory_mapped(folder: Path, name: str) -> dict[str, dict[str, np.ndarray]]:
    """The decoded arrays as memory-mapped .npy files in the cache, written once per content of the idx files."""
    digest = hashlib.sha256("".join(file_sha256(folder / file) for file in IDX_FILES.values()).encode()).hexdigest()
    target = cache_folder() / f"{name}-{digest[:16]}"
    paths = {(part, key): target / f"{part}-{key}.npy" for part, key in IDX_FILES}
    if not all(path.is_file() for path in paths.values()):
        target.mkdir(parents=True, exist_ok=True)
        decoded = _decoded(folder, name)
        for (part, key), path in paths.items():  # atomic: a concurrent run reads the old file or the whole new one
            atomic_write(path, lambda file, array=decoded[part][key]: np.save(file, array))
    return {part: {key: np.load(paths[(part, key)], mmap_mode="r") for key in ("x", "y")} for part in ("train", "test")}


def _load_idx_set(path: str | os.PathLike | None, name: str, mmap: bool = False) -> dict[str, dict[str, np.ndarray]]:
    folder = _idx_folder(path, name)
    missing = [file for file in IDX_FILES.values() if not (folder / file).exists()]
    if missing:
        raise FileNotFoundError(f"{name}: looked in {str(folder.resolve())!r} for {missing}, but they are not there.")
    return _memory_mapped(folder, name) if mmap else _decoded(folder, name)


def _decoded(folder: Path, name: str) -> dict[str, dict[str, np.ndarray]]:
    split: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
    for (part, key), file in IDX_FILES.items():
        array = read_idx(folder / file)
        split[part][key] = (array.reshape(len(array), -1).astype(np.float32) / 255.0) if key == "x" else array.astype(np.int64)
    for part, arrays in split.items():
        if len(arrays["x"]) != len(arrays["y"]):
            raise ValueError(f"{name}: {part} has {len(arrays['x'])} images but {len(arrays['y'])} labels.")
    return split


def mnist(path: str | os.PathLike | None = None, mmap: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """MNIST, ready to train on: ``{"train": {"x", "y"}, "test": {"x", "y"}}``.

    ``x`` is float32 **already scaled to [0, 1]** (the bytes divided by 255; do
    not divide again) and **flattened**: ``(60000, 784)`` for train,
    ``(10000, 784)`` for test; reshape to ``(-1, 1, 28, 28)`` for a
    convolution. ``y`` holds the class ids 0-9 as int64, shape ``(n,)``.
    Reads the four idx files from ``path`` or ``$MARIANA_DATA`` (see the module
    docstring); nothing is downloaded. ``mmap=True``: the same arrays, memory-mapped
    from ``.npy`` files decoded once into :func:`cache_folder` (a Trainer then records
    them by path and sha256 instead of copying them into its run directory).
    """
    return _load_idx_set(path, "mnist", mmap)


def fashion_mnist(path: str | os.PathLike | None = None, mmap: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Fashion-MNIST, in the same layout as :func:`mnist`: ``x`` float32 in [0, 1] of shape ``(n, 784)``, ``y`` int64."""
    return _load_idx_set(path, "fashion-mnist", mmap)
