"""ResourceGuard: make concurrent use of a one-task-at-a-time resource an error.

A stream that only one task may receive from at a time enters a guard around the
receive; a second task entering it meanwhile gets BusyResourceError at once,
rather than the two silently interleaving.  (AnyIO's ``ResourceGuard``.)
"""

from __future__ import annotations

from types import TracebackType

__all__ = ("BusyResourceError", "ResourceGuard")


class BusyResourceError(Exception):
    """Two tasks tried to use (receive from, send on, accept on...) one resource at once."""

    def __init__(self, action: str = "using") -> None:
        super().__init__(f"Another task is already {action} this resource")


class ResourceGuard:
    """A sync context manager that only one task can be inside at a time.

    Entering it while it is entered raises ``BusyResourceError(action)``, whose
    message reads "Another task is already {action} this resource".
    """

    __slots__ = ("action", "_guarded", "__weakref__")

    def __init__(self, action: str = "using") -> None:
        self.action: str = action
        self._guarded = False

    def __enter__(self) -> None:
        if self._guarded:
            raise BusyResourceError(self.action)
        self._guarded = True

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self._guarded = False
