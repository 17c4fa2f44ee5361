"""Typed extra attributes: ``stream.extra(SocketAttribute.remote_port)`` (AnyIO's API).

A ``TypedAttributeSet`` subclass declares keys with ``typed_attribute()``, each with
a type annotation (which is what ``extra()`` returns for it, for type checkers).  A
``TypedAttributeProvider`` (streams, listeners) maps the keys it supports to
functions that compute the value, in ``extra_attributes``; ``extra(key)`` looks one
up and raises TypedAttributeLookupError, naming the key, if it is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, final, overload

__all__ = ("TypedAttributeLookupError", "TypedAttributeProvider", "TypedAttributeSet",
           "typed_attribute")

T_Attr = TypeVar("T_Attr")
T_Default = TypeVar("T_Default")


class TypedAttributeLookupError(LookupError):
    """``extra()`` was asked for an attribute the object does not provide (and no default)."""


class _TypedAttribute:
    """A unique key; it learns its name from the class it is assigned in (for messages)."""

    __slots__ = ("_name",)

    def __init__(self) -> None:
        self._name: str | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        if self._name is None:
            self._name = f"{owner.__qualname__}.{name}"

    def __repr__(self) -> str:
        return f"<typed attribute {self._name or hex(id(self))}>"


def typed_attribute() -> Any:
    """A new unique key for a typed attribute; assign it in a ``TypedAttributeSet``."""
    return _TypedAttribute()


class TypedAttributeSet:
    """Base class for a collection of typed attribute keys (like ``SocketAttribute``).

    Every public attribute of a subclass must have a type annotation: the type of the
    attribute's value.  A missing annotation raises TypeError when the class is made.
    """

    __slots__ = ()

    def __init_subclass__(cls) -> None:
        annotated: set[str] = set()
        for klass in cls.__mro__:
            annotated.update(klass.__dict__.get("__annotations__", {}))
        for name in dir(cls):
            if not name.startswith("_") and name not in annotated:
                raise TypeError(f"{cls.__qualname__}.{name} has no type annotation; every "
                                f"attribute of a TypedAttributeSet needs one")
        super().__init_subclass__()


_MISSING: Any = object()


class TypedAttributeProvider:
    """Base class for objects that offer typed extra attributes through ``extra()``."""

    __slots__ = ()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The keys ``extra()`` knows, each mapped to a function returning its value.

        A wrapper includes the attributes of what it wraps (and may override them).
        """
        return {}

    @overload
    def extra(self, attribute: T_Attr) -> T_Attr: ...

    @overload
    def extra(self, attribute: T_Attr, default: T_Default) -> T_Attr | T_Default: ...

    @final
    def extra(self, attribute: Any, default: Any = _MISSING) -> Any:
        """The value of ``attribute``; ``default`` if it is not provided, else
        TypedAttributeLookupError."""
        getter = self.extra_attributes.get(attribute)
        if getter is None:
            if default is _MISSING:
                raise TypedAttributeLookupError(
                    f"{type(self).__name__} does not provide the attribute {attribute!r}")
            return default
        return getter()
