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


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (argparse would print the usage too) and exit status 2."""

    def error(self, message: str) -> None:
        self.exit(2, self.format_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")

    def format_line(self, text: str) -> str:
        """The error line as printed (the CLI escapes control characters here)."""
        return text
