"""Argument types shared by the command line, the demo and the benchmarks (kept free of heavy imports).

Example:
    >>> at_least(1)("3")
    3
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


class CommandError(Exception):
    """A problem with what the user asked for: printed as one line, exit status 2."""


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int ``>= minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, but received {text!r}")
        return value

    convert.__name__ = f"int >= {minimum}"
    return convert
