"""The two implementations a program runs on, behind one small interface.

Each API makes the scopes, groups, events and streams of its library, runs a main
function, and *normalises* exceptions into comparable values:

* ``trio.Cancelled`` and ``asyncio.CancelledError`` are both ``"Cancelled"``;
  ``trio.TooSlowError`` and ``TimeoutError`` are ``"TimeoutError"``; Trio's
  ``EndOfChannel`` is ``"EndOfStream"``; other library errors by their AnyIO name.
* An exception group becomes ``("group", sorted members)`` without its
  cancellations, or ``"Cancelled"`` if it held nothing else.  This is a deliberate
  difference (DESIGN §3.3: "cancellations are not reported as errors"): a Trio
  nursery puts the ``Cancelled`` of its cancelled children into the group it
  raises, scopeloop re-raises one bare ``CancelledError``; AnyIO does the same on
  asyncio.  Members are sorted because neither library orders them by anything a
  program can control (the order children happened to finish).

Two documented differences are applied to the oracle itself.  A deadline moved
into the past cancels the scope at once (DESIGN §3.1), where Trio waits for its
next scheduler tick: the Trio side reads ``cancel_called`` right after setting it,
which makes Trio cancel then.  And ``fail_after``/
``fail_at`` raise TimeoutError when the scope caught a cancellation and its
deadline had passed by the time it exits (AnyIO's rule, issue 14 item 9), where
Trio's raise on any caught cancellation (an explicit ``cancel()`` too).  The Trio
side therefore builds fail scopes as plain scopes plus that rule.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.lowlevel
import trio.testing
from trio._core import _run as _trio_run

import scopeloop
from .model import FAIL_KINDS

_INF = math.inf


def normalise(exc: BaseException | None, cancelled: type[BaseException],
              names: list[tuple[type[BaseException], str]]) -> Any:
    if exc is None:
        return None
    if isinstance(exc, BaseExceptionGroup):
        parts = [normalise(e, cancelled, names) for e in exc.exceptions]
        real = sorted((p for p in parts if p != "Cancelled"), key=repr)
        return ("group", tuple(real)) if real else "Cancelled"
    if isinstance(exc, cancelled):
        return "Cancelled"
    if type(exc) is ValueError:
        return ("ValueError", str(exc))
    for cls, name in names:
        if isinstance(exc, cls):
            return name
    return ("other", type(exc).__name__, str(exc))


class TrioAPI:
    """Trio 0.35, with a seeded scheduler (every batch of runnable tasks shuffled)."""

    name = "trio"
    Cancelled: type[BaseException] = trio.Cancelled
    ignored = trio.TASK_STATUS_IGNORED

    _names: list[tuple[type[BaseException], str]] = [
        (trio.TooSlowError, "TimeoutError"),
        (trio.EndOfChannel, "EndOfStream"),
        (trio.WouldBlock, "WouldBlock"),
        (trio.ClosedResourceError, "ClosedResourceError"),
        (trio.BrokenResourceError, "BrokenResourceError"),
        (RuntimeError, "RuntimeError"),
    ]

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def run(self, main: Callable[[], Awaitable[None]]) -> None:
        # Trio shuffles each batch with this Random when deterministic scheduling is
        # allowed (Hypothesis' plugin allows it; say so here too, for plain runs).
        _trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
        _trio_run._r.seed(self.seed)
        trio.run(main)

    def norm(self, exc: BaseException | None) -> Any:
        return normalise(exc, trio.Cancelled, self._names)

    def scope(self, kind: str, shield: bool) -> Any:
        if kind in ("move_on_past", "fail_past"):
            return trio.CancelScope(deadline=-_INF, shield=shield)
        if kind in ("move_on_zero", "fail_zero"):
            return trio.CancelScope(relative_deadline=0, shield=shield)
        return trio.CancelScope(shield=shield)  # plain, and the "never" kinds

    def fail_check(self, kind: str, scope: Any) -> None:
        """The fail_after rule, after the scope exited normally."""
        if kind in FAIL_KINDS and scope.cancelled_caught and trio.current_time() >= scope.deadline:
            raise trio.TooSlowError

    def set_deadline(self, scope: Any, deadline: float) -> None:
        scope.deadline = deadline
        # Trio notices a deadline moved into the past at its next scheduler tick (or
        # when cancel_called is read); scopeloop cancels at once (DESIGN §3.1: changes
        # take effect immediately, from any task).  Reading the flag makes Trio do the
        # same, for an entered scope or one not entered yet, as scopeloop does.
        scope.cancel_called  # noqa: B018

    def open_group(self) -> Any:
        return trio.open_nursery()

    def group_scope(self, group: Any) -> Any:
        return group.cancel_scope

    def event(self) -> Any:
        return trio.Event()

    def stream(self, size: float) -> tuple[Any, Any]:
        return trio.open_memory_channel(size)

    async def checkpoint(self, how: str) -> None:
        if how == "sleep0":
            await trio.sleep(0)
        else:
            await trio.lowlevel.checkpoint()

    async def wait_all_tasks_blocked(self) -> None:
        await trio.testing.wait_all_tasks_blocked()

    def cancelling(self) -> int:
        return 0  # Trio has no counter; scopeloop's must read 0 at every exit

    def time(self) -> float:
        return trio.current_time()


class ScopeloopAPI:
    """scopeloop on one backend ("asyncio" or "uvloop")."""

    name = "scopeloop"
    Cancelled: type[BaseException] = asyncio.CancelledError
    ignored = scopeloop.TASK_STATUS_IGNORED

    _names: list[tuple[type[BaseException], str]] = [
        (TimeoutError, "TimeoutError"),
        (scopeloop.EndOfStream, "EndOfStream"),
        (scopeloop.WouldBlock, "WouldBlock"),
        (scopeloop.ClosedResourceError, "ClosedResourceError"),
        (scopeloop.BrokenResourceError, "BrokenResourceError"),
        (RuntimeError, "RuntimeError"),
    ]

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def run(self, main: Callable[[], Awaitable[None]]) -> None:
        scopeloop.run(main, backend=self.backend)

    def norm(self, exc: BaseException | None) -> Any:
        return normalise(exc, asyncio.CancelledError, self._names)

    def scope(self, kind: str, shield: bool) -> Any:
        return {
            "plain": lambda: scopeloop.CancelScope(shield=shield),
            "move_on_past": lambda: scopeloop.move_on_at(-_INF, shield=shield),
            "fail_past": lambda: scopeloop.fail_at(-_INF, shield=shield),
            "move_on_zero": lambda: scopeloop.move_on_after(0, shield=shield),
            "fail_zero": lambda: scopeloop.fail_after(0, shield=shield),
            "move_on_never": lambda: scopeloop.move_on_after(_INF, shield=shield),
            "fail_never": lambda: scopeloop.fail_after(_INF, shield=shield),
        }[kind]()

    def fail_check(self, kind: str, scope: Any) -> None:
        pass  # scopeloop's fail scopes raise by themselves

    def set_deadline(self, scope: Any, deadline: float) -> None:
        scope.deadline = deadline

    def open_group(self) -> Any:
        return scopeloop.create_task_group()

    def group_scope(self, group: Any) -> Any:
        return group.cancel_scope

    def event(self) -> Any:
        return scopeloop.Event()

    def stream(self, size: float) -> tuple[Any, Any]:
        return scopeloop.create_memory_object_stream(size)

    async def checkpoint(self, how: str) -> None:
        if how == "sleep0":
            await asyncio.sleep(0)
        else:
            await scopeloop.checkpoint()

    async def wait_all_tasks_blocked(self) -> None:
        await scopeloop.wait_all_tasks_blocked()

    def cancelling(self) -> int:
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    def time(self) -> float:
        return scopeloop.current_time()
