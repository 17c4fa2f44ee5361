"""Future: a one-shot result that tasks can await (AnyIO 4.16's ``anyio.Future``).

Unlike ``asyncio.Future`` it is bound to no loop until awaited, is resolved by
assigning ``return_value`` or ``exception`` (or by ``cancel()``), and reports a
failure as ``FutureFailed`` chained to the original exception, as a TaskHandle
does.  Awaiting it is a checkpoint: the waiter can be cancelled without affecting
the future (a cancelled *wait* is not a cancelled *future*).
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from typing import Any, Generic, TypeVar

from .sync import Event

__all__ = ("Future", "FutureAlreadyFinished", "FutureCancelled", "FutureFailed",
           "FutureNotFinished")

T = TypeVar("T")


class FutureFailed(Exception):
    """The future was resolved with an exception; it is this error's ``__cause__``."""


class FutureCancelled(FutureFailed):
    """The future was cancelled."""


class FutureNotFinished(Exception):
    """The future's outcome was read before it was resolved."""


class FutureAlreadyFinished(Exception):
    """The future was resolved a second time."""


class _Status(enum.Enum):
    """The state of a Future: PENDING, then one of FINISHED, CANCELLED, FAILED for good."""

    PENDING = enum.auto()
    FINISHED = enum.auto()
    CANCELLED = enum.auto()
    FAILED = enum.auto()


_Status.__name__ = "Status"
_Status.__qualname__ = "Future.Status"  # it is reached as Future.Status


class Future(Generic[T]):
    """An awaitable that is resolved once: ``await future`` returns its value.

    Resolve it with ``future.return_value = value``, ``future.exception = error`` or
    ``future.cancel()``; a second resolution raises FutureAlreadyFinished (or
    FutureCancelled after ``cancel()``).  ``await future`` waits, then returns the
    value or raises FutureFailed (from the exception) or FutureCancelled.
    """

    Status = _Status

    __slots__ = ("_done", "_status", "_value", "_exception", "_name")

    def __init__(self, *, name: str | None = None) -> None:
        self._done = Event()
        self._status = _Status.PENDING
        self._value: Any = None
        self._exception: BaseException | None = None
        self._name = name

    @property
    def status(self) -> _Status:
        """``Future.Status.PENDING`` until resolved, then FINISHED, FAILED or CANCELLED."""
        return self._status

    def _resolve(self, status: _Status) -> None:
        if self._status is _Status.PENDING:
            self._status = status
            self._done.set()
            return
        if self._status is _Status.CANCELLED:
            raise FutureCancelled("the future was cancelled")
        raise FutureAlreadyFinished(
            "the future has already " + ("failed" if self._status is _Status.FAILED
                                         else "finished"))

    async def wait(self) -> None:
        """Wait until the future is resolved (a checkpoint even if it is)."""
        await self._done.wait()

    def cancel(self) -> None:
        """Cancel the future if it is pending (a resolved future is left as it is)."""
        if self._status is _Status.PENDING:
            self._resolve(_Status.CANCELLED)

    @property
    def return_value(self) -> T:
        """The value; FutureNotFinished, FutureCancelled or FutureFailed otherwise."""
        status = self._status
        if status is _Status.FINISHED:
            return self._value  # type: ignore[no-any-return]
        if status is _Status.PENDING:
            raise FutureNotFinished("the future has not finished yet")
        if status is _Status.CANCELLED:
            raise FutureCancelled("the future was cancelled")
        raise FutureFailed("the future raised an exception") from self._exception

    @return_value.setter
    def return_value(self, value: T) -> None:
        if self._status is _Status.PENDING:
            self._value = value
        self._resolve(_Status.FINISHED)

    @property
    def exception(self) -> BaseException | None:
        """The exception it failed with; None if it finished with a value.

        FutureNotFinished while pending, FutureCancelled if cancelled.
        """
        status = self._status
        if status is _Status.PENDING:
            raise FutureNotFinished("the future has not finished yet")
        if status is _Status.CANCELLED:
            raise FutureCancelled("the future was cancelled")
        return self._exception

    @exception.setter
    def exception(self, exception: BaseException) -> None:
        if not isinstance(exception, BaseException):
            raise TypeError(f"a Future's exception must be an exception, "
                            f"not {type(exception).__name__}")
        if self._status is _Status.PENDING:
            self._exception = exception
        self._resolve(_Status.FAILED)

    def __await__(self) -> Generator[Any, Any, T]:
        yield from self._done.wait().__await__()
        return self.return_value

    def __repr__(self) -> str:
        return f"<Future {self._status.name.lower()} name={self._name!r}>"
