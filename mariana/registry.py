"""Names for classes, so configs and saved models can refer to them safely.

Every built-in layer and abstraction registers itself under its class name.
A custom class registers with ``@mariana.register``. Loading resolves class
names only through this registry: nothing named in a file is ever imported.

Example:
    >>> import mariana as mar
    >>> import mariana.layers as ML
    >>> @mar.register
    ... class Twice(ML.Layer):
    ...     def output_shape(self, input_shape):
    ...         return input_shape
    ...     def forward(self, x):
    ...         return 2 * x
    >>> mar.registry.lookup("Twice") is Twice
    True
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

_CLASSES: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register(cls: T | None = None, *, name: str | None = None) -> T | Callable[[T], T]:
    """Register a class so saved models and configs can name it.

    Use as ``@register`` or ``@register(name="MyLayer")``. Registering a
    different class under a name already taken raises ``ValueError``.
    """

    def decorate(klass: T) -> T:
        if not isinstance(klass, type) or not hasattr(klass, "get_config"):
            raise TypeError(
                f"register expects a class with get_config()/from_config(), "
                f"but received {klass!r}."
            )
        key = name or klass.__name__
        known = _CLASSES.get(key)
        if known is not None and known is not klass and not _same_definition(known, klass):
            raise ValueError(
                f"Cannot register {klass.__module__}.{klass.__qualname__} as {key!r}: "
                f"that name already belongs to {known.__module__}.{known.__qualname__}. "
                f"Pass another name, e.g. @mariana.register(name='My{key}')."
            )
        _CLASSES[key] = klass
        klass._registered_name = key
        return klass

    return decorate(cls) if cls is not None else decorate


def _same_definition(a: type, b: type) -> bool:
    # Re-running a notebook cell or re-importing a module redefines the same class.
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__


def lookup(name: str, expected: type | None = None) -> type:
    """The registered class called ``name``; ``ValueError`` if unknown."""
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(
            f"Unknown class name {name!r}: no class of that name is registered"
            + (f" (did you mean {', '.join(map(repr, close))}?)" if (close := difflib.get_close_matches(str(name), _CLASSES, 3)) else "")
            + ". Custom classes must be decorated with @mariana.register, and their module imported, before loading "
              "(mariana.registry.classes() lists the known ones)."
        )
    klass = _CLASSES[name]
    if expected is not None and not issubclass(klass, expected):
        raise ValueError(
            f"Class {name!r} is a {klass.__mro__[1].__name__}, but a {expected.__name__} was expected here."
        )
    return klass


def classes() -> dict[str, type]:
    """Every registered class by name (a copy)."""
    return dict(_CLASSES)


def unregister(name: str) -> None:
    """Forget the class registered as ``name`` (a notebook redefining a class elsewhere, a test cleaning up)."""
    _CLASSES.pop(name, None)


def registered_name(obj: Any) -> str:
    """The name under which ``obj``'s class is registered."""
    klass = type(obj)
    key = klass.__dict__.get("_registered_name")
    if key is None or _CLASSES.get(key) is not klass:
        raise ValueError(
            f"{klass.__qualname__} is not registered, so it cannot be saved or named in a config. "
            f"Decorate it with @mariana.register."
        )
    return key


def serialize(obj: Any) -> dict:
    """``{"class": name, "config": obj.get_config()}``, JSON-ready."""
    return {"class": registered_name(obj), "config": obj.get_config()}


def deserialize(data: Any, expected: type | None = None, **kwargs: Any) -> Any:
    """Rebuild an object written by :func:`serialize`."""
    if not isinstance(data, dict) or set(data) != {"class", "config"} or not isinstance(data["config"], dict):
        raise ValueError(f"Expected a {{'class': ..., 'config': {{...}}}} dict, but received {data!r}.")
    return lookup(data["class"], expected).from_config(data["config"], **kwargs)


class Configurable:
    """Base of everything that round-trips through ``get_config``/``from_config``.

    A subclass lists the constructor arguments it keeps as attributes of the
    same name in ``hyperparameters``. Classes defined inside the ``mariana``
    package register themselves; user classes use ``@mariana.register``.
    """

    hyperparameters: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("mariana.") and not cls.__name__.startswith("_"):
            register(cls)

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this object (JSON-serializable)."""
        return {key: _to_json(getattr(self, key)) for key in self.hyperparameters}

    @classmethod
    def from_config(cls, config: dict, **kwargs: Any) -> Any:
        """Rebuild an object from :meth:`get_config`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _to_json(value: Any) -> Any:
    if isinstance(value, Configurable):
        return serialize(value)
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and tensors
        return value.tolist()
    return value
