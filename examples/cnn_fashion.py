"""The classic CNN of cnn_mnist.py on Fashion-MNIST.

Run from the repository root: ``python examples/cnn_fashion.py [--epochs 5]``.
Reads ../shared/data/fashion-mnist; prints the test accuracy after each epoch.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _data  # noqa: E402
from cnn_mnist import main  # noqa: E402

if __name__ == "__main__":
    main(_data.FASHION, default_epochs=5)
