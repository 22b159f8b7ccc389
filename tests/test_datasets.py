"""Data sets: the idx reader (magic numbers, sizes), where mnist() looks, and the real files."""

from pathlib import Path

import numpy as np
import pytest

from mariana import datasets
from tests.helpers import write_idx

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"




def test_read_idx_images_and_labels(tmp_path):
    write_idx(tmp_path / "i.gz", 2051, (2, 3, 4), bytes(range(24)))
    write_idx(tmp_path / "l.gz", 2049, (2,), bytes([7, 9]))
    images = datasets.read_idx(tmp_path / "i.gz")
    assert images.shape == (2, 3, 4) and images.dtype == np.uint8 and images[1, 2, 3] == 23
    assert datasets.read_idx(tmp_path / "l.gz").tolist() == [7, 9]


def test_read_idx_rejects_bad_magic_and_truncated_files(tmp_path):
    write_idx(tmp_path / "bad.gz", 1234, (2,))
    with pytest.raises(ValueError, match="expected idx magic number 2051 .* or 2049 .*, but read 1234"):
        datasets.read_idx(tmp_path / "bad.gz")
    write_idx(tmp_path / "short.gz", 2051, (2, 3, 4), bytes(10))
    with pytest.raises(ValueError, match=r"announces shape \(2, 3, 4\) \(40 bytes in all\), but the file has 26 bytes"):
        datasets.read_idx(tmp_path / "short.gz")


def test_missing_files_say_where_they_looked(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=f"looked in '{tmp_path}' for .*train-images-idx3-ubyte.gz"):
        datasets.mnist(tmp_path)
    monkeypatch.delenv("MARIANA_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="MARIANA_DATA is not set"):
        datasets.fashion_mnist()


def test_mariana_data_may_name_the_parent_folder_or_the_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for (part, key), name in datasets.IDX_FILES.items():
        count = 3 if part == "train" else 2
        if key == "x":
            write_idx(folder / name, 2051, (count, 28, 28))
        else:
            write_idx(folder / name, 2049, (count,), bytes(range(count)))
    monkeypatch.setenv("MARIANA_DATA", str(tmp_path))
    data = datasets.mnist()
    assert data["train"]["x"].shape == (3, 784) and data["train"]["x"].dtype == np.float32 and data["test"]["y"].tolist() == [0, 1]
    monkeypatch.setenv("MARIANA_DATA", str(folder))
    assert datasets.mnist()["train"]["y"].dtype == np.int64


@pytest.mark.skipif(not (SHARED / "mnist").exists(), reason="the shared data folder is not beside the repository")
def test_real_mnist_and_fashion_mnist():
    for loader, name in ((datasets.mnist, "mnist"), (datasets.fashion_mnist, "fashion-mnist")):
        data = loader(SHARED / name)
        assert data["train"]["x"].shape == (60000, 784) and data["test"]["x"].shape == (10000, 784)
        assert 0 <= data["train"]["x"].min() and data["train"]["x"].max() == 1.0
        assert sorted(np.unique(data["train"]["y"]).tolist()) == list(range(10))


def test_mnist_docstring_says_what_comes_back_scaled_and_flat(tmp_path, monkeypatch):
    """A user divided by 255 a second time: the docstring says x is already in [0, 1] and flattened."""
    for (_, key), name in datasets.IDX_FILES.items():
        if key == "x":
            write_idx(tmp_path / name, 2051, (2, 28, 28), bytes([255]) * (2 * 784))
        else:
            write_idx(tmp_path / name, 2049, (2,), bytes([3, 4]))
    data = datasets.mnist(tmp_path)
    assert data["train"]["x"].shape == (2, 784) and data["train"]["x"].dtype == np.float32 and data["train"]["x"].max() == 1.0
    for loader in (datasets.mnist, datasets.fashion_mnist):
        doc = " ".join(loader.__doc__.split())
        assert "float32" in doc and "[0, 1]" in doc and "784)" in doc and "int64" in doc
    assert "(60000, 784)" in " ".join(datasets.mnist.__doc__.split()) and "do not divide again" in " ".join(datasets.mnist.__doc__.split())
    monkeypatch.setenv("MARIANA_DATA", "")  # set but empty counts as unset, not as the current folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="MARIANA_DATA is not set"):
        datasets.mnist()
