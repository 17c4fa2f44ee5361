"""scopeloop.Future (AnyIO 4.16's anyio.Future); reference: AnyIO on Trio."""

from __future__ import annotations

import anyio
import pytest

import scopeloop
from scopeloop import Future


async def _program(lib) -> list[object]:
    seen: list[object] = []
    fut = lib.Future(name="f")
    seen.append(fut.status.name)
    for read in (lambda: fut.return_value, lambda: fut.exception):
        try:
            read()
        except lib.FutureNotFinished:
            seen.append("not finished")

    async def resolve() -> None:
        fut.return_value = 42

    async with lib.create_task_group() as tg:
        tg.start_soon(resolve)
        seen.append(await fut)
    seen.append((fut.status.name, fut.exception))
    try:
        fut.return_value = 1
    except lib.FutureAlreadyFinished:
        seen.append("already finished")

    failing = lib.Future()
    failing.exception = KeyError("k")
    try:
        await failing
    except lib.FutureFailed as exc:
        seen.append(("failed", type(exc.__cause__).__name__, failing.status.name))
    try:
        failing.exception = KeyError("again")
    except lib.FutureAlreadyFinished:
        seen.append("already failed")

    cancelled = lib.Future()
    cancelled.cancel()
    cancelled.cancel()  # idempotent
    for action in (lambda: cancelled.return_value, lambda: cancelled.exception,
                   lambda: setattr(cancelled, "return_value", 1)):
        try:
            action()
        except lib.FutureCancelled:
            seen.append("cancelled")
    seen.append(issubclass(lib.FutureCancelled, lib.FutureFailed))

    # A cancelled wait is not a cancelled future.
    pending = lib.Future()
    with lib.move_on_after(0):
        await pending.wait()
    seen.append(pending.status.name)
    return seen


def test_future_matches_anyio_on_trio(run):
    expected = ["PENDING", "not finished", "not finished", 42, ("FINISHED", None),
                "already finished", ("failed", "KeyError", "FAILED"), "already failed",
                "cancelled", "cancelled", "cancelled", True, "PENDING"]
    assert anyio.run(_program, anyio, backend="trio") == expected
    assert run(_program, scopeloop) == expected


def test_future_repr_and_status_type():
    fut: Future[int] = Future(name="job")
    assert repr(fut) == "<Future pending name='job'>"
    assert fut.status is Future.Status.PENDING
    assert Future.Status.__qualname__ == "Future.Status"
    with pytest.raises(TypeError):
        fut.exception = "not an exception"  # type: ignore[assignment]
    assert fut.status is Future.Status.PENDING


def test_many_waiters_all_wake(run):
    async def main() -> list[int]:
        fut: Future[int] = Future()
        got: list[int] = []

        async def waiter() -> None:
            got.append(await fut)

        async with scopeloop.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(waiter)
            await scopeloop.wait_all_tasks_blocked()
            fut.return_value = 7
        return got

    assert run(main) == [7, 7, 7]
