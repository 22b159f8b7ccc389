"""Checks shared by layers, run calls and the Trainer: ints, data as tensors, value ranges.

Each raises ``ValueError`` (or ``TypeError``) with a message that names the
owner, what was expected and what was received. Numpy integers are ints.

Example:
    >>> import numpy as np
    >>> int_at_least(np.int64(4), 1, "Trainer: batch_size")
    4
    >>> int_at_least(True, 1, "Trainer: batch_size")
    Traceback (most recent call last):
    ...
    ValueError: Trainer: batch_size must be an int >= 1, but received True.
"""

from __future__ import annotations

import numbers
from typing import Any, Protocol

import numpy as np
import torch


class Described(Protocol):
    """Anything that can name itself in an error message (a layer: "Hidden 'hid'")."""

    def describe(self) -> str: ...


def is_int(value: Any) -> bool:
    """True for Python and numpy integers, False for bools (``True`` is no layer size)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def int_at_least(value: Any, minimum: int, what: str) -> int:
    """``value`` as an int if it is an int ``>= minimum``; else "<what> must be an int >= <minimum>, ..."."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, but received {value!r}.")
    return int(value)


def real_number(value: Any, what: str) -> float:
    """``value`` as a float if it is a real number (numpy floats included, bools not); else a TypeError naming ``what``."""
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be a number, but received {type(value).__name__} {value!r}.")
    return float(value)


def one_of(value: Any, choices: tuple, what: str) -> Any:
    """``value`` if it is one of ``choices``; else "<what> must be one of <choices>, but received ..."."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, but received {value!r}.")
    return value


def seed_or_none(value: Any, what: str) -> int | None:
    """None, or ``value`` as an int if it is a non-negative int (a seed)."""
    if value is not None and (not is_int(value) or value < 0):
        raise ValueError(f"{what} must be a non-negative int or None, but received {value!r}.")
    return None if value is None else int(value)


def positive_int(value: Any, owner: str, what: str) -> int:
    """``value`` as an int if it is an int ``>= 1``; else "<owner>: <what> must be a positive int, ..."."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{owner}: {what} must be a positive int, but received {value!r}.")
    return int(value)


def refuse_masked(value: Any, what: str) -> None:
    """``ValueError`` if ``value`` is a numpy masked array: every consumer would read the masked values as data.

    Example:
        >>> refuse_masked(np.ma.masked_array([1.0, 2.0], mask=[False, True]), "Input 'inp': input data")
        Traceback (most recent call last):
        ...
        ValueError: Input 'inp': input data is a numpy masked array (1 of 2 values masked), whose mask would be ignored: ...
    """
    if isinstance(value, np.ma.MaskedArray):
        masked = int(np.ma.count_masked(value))
        raise ValueError(f"{what} is a numpy masked array ({masked} of {value.size} values masked), whose mask would be ignored: "
                         f"the masked values would be used as data. Pass value.filled(fill) with the value you mean, or drop the masked rows.")


def as_tensor(value: Any, owner: Described, role: str) -> torch.Tensor:
    """``value`` (tensor, numpy array or nested lists) as a tensor, without copying when possible; masked arrays are refused."""
    if isinstance(value, torch.Tensor):
        return value
    name = owner.describe()
    refuse_masked(value, f"{name}: {role}")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{name}: expected numeric {role}, but received an array of dtype {value.dtype}.")
        if not value.flags.writeable or not value.flags.c_contiguous and not value.flags.f_contiguous:
            value = np.array(value)
        return torch.from_numpy(value)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected an array or tensor as {role}, but received {type(value).__name__} ({error}).") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected numeric {role}, but received {type(value).__name__} of dtype {array.dtype}.")
    return torch.from_numpy(array)


def check_in_range(values: torch.Tensor, low: int, high: int, owner: Described, reason: str, what: str) -> None:
    """``ValueError`` unless every value is in ``[low, high]``: "<owner> <reason>, so <what> must be in [low, high], ..."."""
    # The check reads the data, which graph export (ONNX) cannot trace: exported graphs skip it.
    if values.numel() and not torch.compiler.is_exporting():
        extremes = torch.aminmax(values)
        found_low, found_high = extremes.min.item(), extremes.max.item()
        if found_low < low or found_high > high:
            raise ValueError(
                f"{owner.describe()} {reason}, so {what} must be in [{low}, {high}], "
                f"but received {what} from {found_low} to {found_high}."
            )


def check_ids_in_range(ids: torch.Tensor, count: int, owner: Described, noun: str) -> None:
    """``ValueError`` unless every id is in ``[0, count)``, e.g. "has 5 entries, so ids must be in [0, 4]"."""
    check_in_range(ids, 0, count - 1, owner, f"has {count} {noun}", "ids")
