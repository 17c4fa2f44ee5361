"""Run one small program on Trio and on scopeloop and compare what each task saw.

Trio is the oracle (DESIGN §3.1: Trio's semantics with AnyIO's names).  A program is
written once, against the few operations both libraries share, as

    async def program(lib: Lib, log: Log) -> None: ...

and ``observe(program, on)`` runs it on ``"trio"``, on ``"scopeloop"`` (with the
backend of the test) or on ``"anyio-trio"`` (AnyIO's API on Trio, the oracle for
AnyIO's own rules, e.g. fail_after), returning what was logged: a dict from a task's
label to the list of its observations, in order, plus ``"escaped"`` for what left
the program.  Observations are per task because Trio runs the tasks of one batch in
a random order: only each task's own sequence is guaranteed.  Trio is run under
several seeds of its scheduler, and a program whose Trio log differs between them
is a broken test (it depends on a race), not a pass.

Exceptions are logged through ``describe``, which puts both libraries' shapes in
one vocabulary: Trio's ``Cancelled`` and asyncio's ``CancelledError`` are both
``"Cancelled"``; exception groups are flattened to their leaves, and a group of
cancellations only is ``"Cancelled"`` (Trio wraps everything leaving a nursery in
a group; scopeloop does not report cancellations as errors, DESIGN §3.3).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import scopeloop

Program = Callable[["Lib", "Log"], Awaitable[None]]

TRIO_SEEDS = range(6)


class Boom(Exception):
    """The error programs raise; ``describe`` shows its arguments."""


class Log:
    """What each task observed, in order; ``log("host", "start returned", v)``."""

    def __init__(self) -> None:
        self.by_task: dict[str, list[Any]] = {}

    def __call__(self, task: str, *event: Any) -> None:
        self.by_task.setdefault(task, []).append(event[0] if len(event) == 1 else event)


class Lib:
    """The operations a program may use, for one library."""

    name: str
    Cancelled: type[BaseException]

    def CancelScope(self, *, deadline: float = math.inf, shield: bool = False) -> Any:
        raise NotImplementedError

    def move_on_after(self, delay: float) -> Any:
        raise NotImplementedError

    def fail_after(self, delay: float) -> Any:
        raise NotImplementedError

    def open_group(self) -> Any:
        """An ``async with`` task group: ``start_soon``, ``start``, ``cancel_scope``."""
        raise NotImplementedError

    def Event(self) -> Any:
        raise NotImplementedError

    async def checkpoint(self) -> None:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def sleep_forever(self) -> None:
        raise NotImplementedError

    def current_time(self) -> float:
        raise NotImplementedError

    def describe(self, exc: BaseException | None) -> Any:
        return describe(exc, self.Cancelled)


class _Trio(Lib):
    name = "trio"

    def __init__(self) -> None:
        import trio
        self._trio = trio
        self.Cancelled = trio.Cancelled

    def CancelScope(self, *, deadline: float = math.inf, shield: bool = False) -> Any:
        return self._trio.CancelScope(deadline=deadline, shield=shield)

    def move_on_after(self, delay: float) -> Any:
        return self._trio.move_on_after(delay)

    def fail_after(self, delay: float) -> Any:
        return self._trio.fail_after(delay)

    def open_group(self) -> Any:
        return self._trio.open_nursery()

    def Event(self) -> Any:
        return self._trio.Event()

    async def checkpoint(self) -> None:
        await self._trio.lowlevel.checkpoint()

    async def sleep(self, seconds: float) -> None:
        await self._trio.sleep(seconds)

    async def sleep_forever(self) -> None:
        await self._trio.sleep_forever()

    def current_time(self) -> float:
        return self._trio.current_time()  # type: ignore[no-any-return]


class _AnyioTrio(_Trio):
    """AnyIO's API on Trio: AnyIO's own rules where they differ from Trio's."""

    name = "anyio-trio"

    def __init__(self) -> None:
        super().__init__()
        import anyio
        self._anyio = anyio

    def CancelScope(self, *, deadline: float = math.inf, shield: bool = False) -> Any:
        return self._anyio.CancelScope(deadline=deadline, shield=shield)

    def move_on_after(self, delay: float) -> Any:
        return self._anyio.move_on_after(delay)

    def fail_after(self, delay: float) -> Any:
        return self._anyio.fail_after(delay)

    def open_group(self) -> Any:
        return self._anyio.create_task_group()


class _Scopeloop(Lib):
    name = "scopeloop"
    Cancelled = asyncio.CancelledError

    def CancelScope(self, *, deadline: float = math.inf, shield: bool = False) -> Any:
        return scopeloop.CancelScope(deadline=deadline, shield=shield)

    def move_on_after(self, delay: float) -> Any:
        return scopeloop.move_on_after(delay)

    def fail_after(self, delay: float) -> Any:
        return scopeloop.fail_after(delay)

    def open_group(self) -> Any:
        return scopeloop.create_task_group()

    def Event(self) -> Any:
        return scopeloop.Event()

    async def checkpoint(self) -> None:
        await scopeloop.checkpoint()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def sleep_forever(self) -> None:
        await asyncio.get_running_loop().create_future()

    def current_time(self) -> float:
        return asyncio.get_running_loop().time()


def describe(exc: BaseException | None, cancelled: type[BaseException]) -> Any:
    """One library-neutral description of an exception (see the module docstring)."""
    if exc is None:
        return None
    leaves: list[BaseException] = []

    def flatten(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                flatten(inner)
        else:
            leaves.append(e)

    flatten(exc)
    # A Boom carries what the program gave it; the libraries' own errors differ
    # in wording, so only their type is compared.
    errors = sorted(f"Boom{e.args!r}" if isinstance(e, Boom) else type(e).__name__
                    for e in leaves if not isinstance(e, cancelled))
    if not errors:
        return "Cancelled"
    if isinstance(exc, BaseExceptionGroup):
        return ("group", *errors)
    return errors[0]


def _run_once(lib: Lib, program: Program, runner: Callable[[Callable[[], Any]], None]
              ) -> dict[str, list[Any]]:
    log = Log()

    async def main() -> None:
        try:
            await program(lib, log)
        except BaseException as exc:
            log("escaped", lib.describe(exc))
            return
        log("escaped", None)

    runner(main)
    return log.by_task


def observe(program: Program, on: str, backend: str | None = None) -> dict[str, list[Any]]:
    """Run ``program`` on ``on`` ("trio", "anyio-trio" or "scopeloop") and return its log."""
    if on == "scopeloop":
        return _run_once(_Scopeloop(), program,
                         lambda main: scopeloop.run(main, backend=backend))
    import trio
    from trio._core import _run as trio_run_module
    lib: Lib = _Trio() if on == "trio" else _AnyioTrio()
    results = []
    for seed in TRIO_SEEDS:
        trio_run_module._r.seed(seed)
        results.append(_run_once(lib, program, trio.run))
    for other in results[1:]:
        assert other == results[0], (
            f"the program's observations on {on} depend on the schedule, so they "
            f"cannot be compared: {results[0]} vs {other}")
    return results[0]


def assert_like_trio(program: Program, backend: str, oracle: str = "trio") -> dict[str, list[Any]]:
    """Run ``program`` on the oracle and on scopeloop and assert the logs are equal."""
    expected = observe(program, oracle)
    got = observe(program, "scopeloop", backend)
    assert got == expected, f"\n{oracle}:      {expected}\nscopeloop: {got}"
    return got
