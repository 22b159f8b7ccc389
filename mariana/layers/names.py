"""Layer names: what a name may be, the reserved ones, and readable automatic names.

Example:
    >>> check_name("hidden_1", "Hidden")
    'hidden_1'
    >>> snake_case("SoftmaxClassifier"), snake_case("MaxPool2D"), snake_case("LSTM")
    ('softmax_classifier', 'max_pool2d', 'lstm')
"""

from __future__ import annotations

import itertools
import keyword
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
#: Names no layer may take, and why.
RESERVED_NAMES = {
    "batch_size": "run calls take batch_size= as an option, so data could not be fed to it",
    "training": "net.forward takes training= as an option, and torch keeps each module's train/eval flag under that name",
    "sampler": "DatasetMapper takes sampler= as an option, so data could not be mapped to it",
    "weights": "DatasetMapper takes weights= as an option, so data could not be mapped to it",
    "copy_data": "DatasetMapper takes copy_data= as an option, so data could not be mapped to it",
}
_AUTO_NAME_COUNTERS: dict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1))


def automatic_name(class_name: str) -> str:
    """``hidden_1``, ``hidden_2``, ...: one counter per class for the whole process, so merged networks never clash."""
    return f"{snake_case(class_name)}_{next(_AUTO_NAME_COUNTERS[class_name])}"


def snake_case(class_name: str) -> str:
    # SoftmaxClassifier -> softmax_classifier, Conv2D -> conv2d, MaxPool2D -> max_pool2d, LSTM -> lstm
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()


def check_name(name: Any, owner: str) -> str:
    """``name`` if it is a valid layer name, else ``ValueError``/``TypeError``."""
    if not isinstance(name, str):
        raise TypeError(f"{owner}: name must be a str, but received {name!r}.")
    if not _NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"{owner}: invalid name {name!r}. Names start with a letter, contain only letters, "
            f"digits and '_', and are not Python keywords (e.g. 'hidden_1')."
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"{owner}: the name {name!r} is reserved: {RESERVED_NAMES[name]}.")
    return name
