"""Run variables: like context variables, but one value per event loop (AnyIO's RunVar).

A ``RunVar`` holds a separate value for each event loop it is used on, shared by
every task of that loop (unlike a ``ContextVar``, which each task copies).  Libraries
use them for per-run singletons such as a default limiter or a connection cache.
The values live in a table keyed weakly by the loop, so they go away with it.
"""

from __future__ import annotations

import asyncio
import enum
import weakref
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, overload

from .token import running_loop

__all__ = ("RunVar", "RunvarToken")

T = TypeVar("T")
D = TypeVar("D")


class _NoValue(enum.Enum):
    NO_VALUE_SET = enum.auto()


_NO_VALUE: Literal[_NoValue.NO_VALUE_SET] = _NoValue.NO_VALUE_SET

_values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[RunVar[Any], Any]] = (
    weakref.WeakKeyDictionary())


def _loop_values(api: str) -> dict[RunVar[Any], Any]:
    loop = running_loop(api)
    values = _values.get(loop)
    if values is None:
        values = _values[loop] = {}
    return values


class RunvarToken(Generic[T]):
    """What ``RunVar.set()`` returns: ``reset(token)`` restores the value before that set.

    Also a context manager that resets the variable on exit.  A token can be used once.
    """

    __slots__ = ("_var", "_value", "_used")

    def __init__(self, var: RunVar[T], value: T | Literal[_NoValue.NO_VALUE_SET]) -> None:
        self._var = var
        self._value = value
        self._used = False

    def __enter__(self) -> RunvarToken[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self._var.reset(self)


class RunVar(Generic[T]):
    """A variable with one value per running event loop (AnyIO's ``lowlevel.RunVar``).

    ``get()`` returns this loop's value (or ``default``, or the variable's default,
    else LookupError); ``set(value)`` sets it for this loop and returns a
    ``RunvarToken``.  All three raise NoEventLoopError outside a running loop.
    """

    __slots__ = ("_name", "_default", "__weakref__")

    NO_VALUE_SET: Literal[_NoValue.NO_VALUE_SET] = _NO_VALUE

    def __init__(self, name: str,
                 default: T | Literal[_NoValue.NO_VALUE_SET] = _NO_VALUE) -> None:
        self._name = name
        self._default = default

    @property
    def name(self) -> str:
        """The name given at creation (for messages)."""
        return self._name

    @overload
    def get(self, default: D) -> T | D: ...

    @overload
    def get(self) -> T: ...

    def get(self, default: Any = _NO_VALUE) -> Any:
        """This loop's value; else ``default``; else the variable's default; else LookupError."""
        try:
            return _loop_values("RunVar.get()")[self]
        except KeyError:
            if default is not _NO_VALUE:
                return default
            if self._default is not _NO_VALUE:
                return self._default
        raise LookupError(f"run variable {self._name!r} has no value on this event loop "
                          f"and no default")

    def set(self, value: T) -> RunvarToken[T]:
        """Set this loop's value; the token restores the previous one."""
        values = _loop_values("RunVar.set()")
        token = RunvarToken(self, values.get(self, _NO_VALUE))
        values[self] = value
        return token

    def reset(self, token: RunvarToken[T]) -> None:
        """Restore the value this variable had before the ``set()`` that returned ``token``.

        Raises ValueError if the token belongs to another RunVar or was used already.
        """
        if token._var is not self:
            raise ValueError(f"this token belongs to {token._var!r}, not to {self!r}")
        if token._used:
            raise ValueError("this RunvarToken has already been used to reset its RunVar")
        values = _loop_values("RunVar.reset()")
        if token._value is _NO_VALUE:
            values.pop(self, None)
        else:
            values[self] = token._value
        token._used = True

    def __repr__(self) -> str:
        return f"<RunVar name={self._name!r}>"
