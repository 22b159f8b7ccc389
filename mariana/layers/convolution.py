"""Convolutions over 1, 2 or 3 spatial axes, channels first: ``(batch, channels, *spatial)``.

Example:
    >>> import mariana.layers as ML, mariana.activations as MA
    >>> net = ML.Input((1, 28, 28), name="img") > ML.Conv2D(20, 5, activation=MA.ReLU(), name="conv")
    >>> net["conv"].shape, tuple(net["conv"].W.shape)
    ((20, 24, 24), (20, 1, 5, 5))
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mariana.checks import is_int, positive_int
from mariana.layers.base import Layer, Shape


def int_tuple(value: Any, rank: int, owner: str, what: str, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (an int or ``rank`` ints) as a tuple of ``rank`` ints >= ``minimum``."""
    values = (value,) * rank if is_int(value) else value
    try:
        values = tuple(values)
    except TypeError:
        values = ()
    if len(values) != rank or not all(is_int(v) and v >= minimum for v in values):
        raise ValueError(f"{owner}: {what} must be an int >= {minimum} or {rank} such ints, but received {value!r}.")
    return tuple(int(v) for v in values)


def spatial_input(owner: Layer, input_shape: Shape, rank: int) -> None:
    """Raise ValueError unless ``input_shape`` is ``(channels, *rank spatial axes)``."""
    if len(input_shape) != rank + 1:
        axes = ("length",) if rank == 1 else ("height", "width") if rank == 2 else ("depth", "height", "width")
        raise ValueError(
            f"{owner.describe()} expects inputs of shape (channels, {', '.join(axes)}) (batch axis excluded), "
            f"but received {len(input_shape)}-d shape {input_shape}. Reshape flat data first, "
            f"e.g. ML.Reshape((1, {', '.join(axes)}))."
        )


def sliding_length(size: int, window: int, stride: int, padding: int, dilation: int = 1) -> int:
    """How many windows fit along an axis, as torch counts them."""
    return (size + 2 * padding - dilation * (window - 1) - 1) // stride + 1


class _Conv(Layer):
    """Shared body of Conv1D/2D/3D; ``rank`` is the number of spatial axes."""

    rank = 2
    hyperparameters = ("filters", "kernel", "stride", "padding", "dilation", "groups")

    def __init__(self, filters: int, kernel: int | tuple[int, ...], stride: int | tuple[int, ...] = 1,
                 padding: str | int | tuple[int, ...] = "valid", dilation: int | tuple[int, ...] = 1,
                 groups: int = 1, **kwargs: Any) -> None:
        owner = type(self).__name__
        self.filters = positive_int(filters, owner, "filters")
        self.kernel = int_tuple(kernel, self.rank, owner, "kernel")
        self.stride = int_tuple(stride, self.rank, owner, "stride")
        self.dilation = int_tuple(dilation, self.rank, owner, "dilation")
        self.groups = positive_int(groups, owner, "groups")
        if padding not in ("valid", "same"):
            padding = int_tuple(padding, self.rank, owner, 'padding ("valid", "same" or ints)', minimum=0)
        elif padding == "same" and self.stride != (1,) * self.rank:
            raise ValueError(f'{owner}: padding="same" needs stride 1, but received stride {stride!r}; pad with ints instead.')
        self.padding = padding
        self._pads, self._extra_pad = self._padding_plan()
        if self.filters % self.groups:
            raise ValueError(f"{owner}: filters ({self.filters}) must be divisible by groups ({self.groups}).")
        super().__init__(**kwargs)

    def _padding_plan(self) -> tuple[tuple[int, ...], list[int] | None]:
        """(symmetric padding for the kernel, extra F.pad amounts or None), decided once here, not per step."""
        if self.padding == "valid":
            return (0,) * self.rank, None
        if self.padding != "same":
            return self.padding, None
        totals = [d * (k - 1) for k, d in zip(self.kernel, self.dilation)]
        if all(total % 2 == 0 for total in totals):
            return tuple(total // 2 for total in totals), None
        # An odd total (even kernel): pad the extra pixel on the right, as torch's padding="same" does.
        extra = [amount for total in reversed(totals) for amount in (total // 2, total - total // 2)]
        return (0,) * self.rank, extra

    def output_shape(self, input_shape: Shape) -> Shape:
        spatial_input(self, input_shape, self.rank)
        channels, *sizes = input_shape
        if channels % self.groups:
            raise ValueError(f"{self.describe()} has groups={self.groups}, which must divide the {channels} input channels.")
        if self.padding == "same":
            return (self.filters, *sizes)
        out = [sliding_length(*args) for args in zip(sizes, self.kernel, self.stride, self._pads, self.dilation)]
        if min(out) < 1:
            raise ValueError(
                f"{self.describe()}: kernel {self.kernel} (dilation {self.dilation}, padding {self.padding}) "
                f"is larger than its input's spatial size {tuple(sizes)}. Use a smaller kernel, padding, or a larger input."
            )
        return (self.filters, *out)

    def build(self, input_shape: Shape) -> None:
        self.add_param("W", (self.filters, input_shape[0] // self.groups, *self.kernel))
        self.add_param("b", (self.filters,), regularizable=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._extra_pad is not None:
            x = F.pad(x, self._extra_pad)
        return self._conv(x, self.W, self.b, self.stride, self._pads, self.dilation, self.groups)


class Conv1D(_Conv):
    """1-d convolution on ``(channels, length)``: params ``W`` ``(filters, channels/groups, k)`` and ``b``.

    ``padding`` is ``"valid"`` (none), ``"same"`` (output as long as the input; stride 1) or ints.
    """

    rank = 1
    _conv = staticmethod(F.conv1d)


class Conv2D(_Conv):
    """2-d convolution on ``(channels, height, width)``; ``W`` is ``(filters, channels/groups, kh, kw)``.

    See :class:`Conv1D` for the arguments; each of ``kernel``, ``stride``,
    ``dilation`` and an int ``padding`` is one int or one per spatial axis.
    """

    rank = 2
    _conv = staticmethod(F.conv2d)


class Conv3D(_Conv):
    """3-d convolution on ``(channels, depth, height, width)``; ``W`` is ``(filters, channels/groups, kd, kh, kw)``."""

    rank = 3
    _conv = staticmethod(F.conv3d)
