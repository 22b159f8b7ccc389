"""One seed for every random number generator Mariana draws from.

Example:
    >>> import torch, mariana as mar
    >>> mar.seed(3); a = torch.rand(1)
    >>> mar.seed(3); bool(torch.equal(a, torch.rand(1)))
    True
"""

from __future__ import annotations

import random

from mariana.checks import is_int


def seed(n: int) -> None:
    """Seed Python, NumPy and PyTorch (and Mariana's samplers, which draw from them)."""
    import numpy as np  # imported here so that `import mariana` stays light
    import torch

    if not is_int(n) or n < 0:
        raise ValueError(f"seed expects a non-negative int, but received {n!r}.")
    random.seed(int(n))
    np.random.seed(int(n) % 2**32)
    torch.manual_seed(int(n))
