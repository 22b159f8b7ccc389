"""Precision: what a mode does to the network and to each step, and the names ``precision=`` accepts.

A mode is one subclass of :class:`Precision`. Defining it registers it (in
:mod:`mariana.registry`, by class name) and makes its ``names`` valid for
``Trainer(..., precision=...)``; the first name is the one run.json records.
What a mode may change, each with a default that does nothing special:

* ``param_dtype``: the dtype :meth:`Precision.convert` gives the network's
  float params, buffers, Inputs and optimizer state when training starts;
* ``autocast_dtype``: the dtype autocast computes the forward pass and the
  costs in (None: no autocast);
* :meth:`Precision.backward` and :meth:`Precision.apply`: the step's
  backward pass and optimizer steps (a gradient scaler's hooks);
* :meth:`Precision.state_dict` / :meth:`Precision.load_state_dict`: what a
  checkpoint keeps of the mode (a gradient scaler's state).

The built-in modes are in :mod:`mariana.training.precision`.

Example:
    >>> import torch
    >>> class Float64Demo(Precision):  # what "64" is, under another name
    ...     names = ("64-demo",)
    ...     param_dtype = torch.float64
    >>> mode = Precision.named("64-demo")
    >>> mode.name, mode.param_dtype, mode.autocast() is None
    ('64-demo', torch.float64, True)
    >>> from mariana import registry
    >>> registry.unregister("Float64Demo")  # forgotten again
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from mariana import registry
from mariana.graph import FLOAT_DTYPES
from mariana.registry import Configurable

if TYPE_CHECKING:
    from mariana.execution import CostResult, TrainingPlan
    from mariana.network import Network


class Precision(Configurable):
    """A precision mode: the network's weight dtype, the step's autocast, and hooks around backward and apply.

    Subclasses set ``names`` (the first is recorded in run.json) and what they change; see the module docstring.
    """

    #: The names ``precision=`` accepts for this mode; the first is its own, the others aliases (Lightning's).
    #: A subclass that declares none is a base for other modes, not a mode.
    names: ClassVar[tuple[str, ...]] = ()
    #: The dtype of the float params, buffers, Inputs and optimizer state during training.
    param_dtype: ClassVar[torch.dtype] = torch.float32
    #: The dtype autocast runs the forward pass and the costs in; None: no autocast.
    autocast_dtype: ClassVar[torch.dtype | None] = None
    #: A gradient scaler, for modes that keep one (its state is checkpointed by :meth:`state_dict`).
    scaler: torch.amp.GradScaler | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if not cls.__dict__.get("names"):  # a base for other modes (names are never inherited)
            super().__init_subclass__(**kwargs)
            return
        if not isinstance(cls.names, tuple) or not all(isinstance(name, str) and name for name in cls.names):
            raise TypeError(f"{cls.__qualname__}: names must be a tuple of non-empty str, but is {cls.names!r}.")
        if cls.param_dtype not in FLOAT_DTYPES:
            raise ValueError(f"{cls.__qualname__}: param_dtype must be one of {list(FLOAT_DTYPES)}, but is {cls.param_dtype!r}.")
        for name in cls.names:
            owner = modes().get(name)
            if owner is not None and owner.__module__ + owner.__qualname__ != cls.__module__ + cls.__qualname__:
                raise ValueError(f"{cls.__qualname__}: precision name {name!r} already belongs to {owner.__module__}.{owner.__qualname__}; "
                                 f"pick another name.")
        super().__init_subclass__(**kwargs)  # registers mariana's own classes
        registry.register(cls)  # and the others (a mode defined in a user's script)

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    @property
    def name(self) -> str:
        """The mode's own name (what run.json records)."""
        return type(self).names[0]

    @classmethod
    def named(cls, name: Any, device: torch.device | str = "cpu") -> Precision:
        """The mode called ``name`` (an int is read as its string: ``32`` is ``"32"``), for ``device``.

        Example:
            >>> Precision.named("bf16").name, Precision.named(64).param_dtype
            ('bf16-mixed', torch.float64)
        """
        key = str(name) if isinstance(name, int) and not isinstance(name, bool) else name
        known = modes()
        if not isinstance(key, str) or key not in known:
            own = [klass.names[0] for klass in dict.fromkeys(known.values())]
            aliases = ", ".join(repr(alias) for alias in known if alias not in own)
            raise ValueError(f"precision must be one of {', '.join(map(repr, own))} ({f'or the aliases {aliases}; ' if aliases else ''}"
                             f"an int means its str), but received {name!r}.")
        return known[key](device)

    # -- what the Trainer calls ---------------------------------------------------------
    def convert(self, net: Network) -> None:
        """Move ``net`` to the device in this mode's weight dtype (float params, buffers, Inputs, optimizer state)."""
        net.to(device=self.device, dtype=self.param_dtype)

    def autocast(self) -> contextlib.AbstractContextManager | None:
        """The context around each forward pass and its costs, built once; None when the mode needs none."""
        return None if self.autocast_dtype is None else torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def backward(self, plan: TrainingPlan, result: CostResult, scale: float = 1.0) -> None:
        """Add ``scale`` times the gradient of the step's objective to the params' gradients."""
        plan.backward(result, scale)

    def apply(self, plan: TrainingPlan) -> None:
        """One step of every optimizer of ``plan`` on the gradients accumulated so far."""
        plan.apply()

    def state_dict(self) -> dict:
        """What a checkpoint keeps of this mode (nothing by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output."""


def modes() -> dict[str, type[Precision]]:
    """Every name ``precision=`` accepts, with its mode's class, in the order the modes were defined."""
    return {name: klass for klass in registry.classes().values()
            if isinstance(klass, type) and issubclass(klass, Precision) for name in klass.__dict__.get("names", ())}
