"""wait_readable/wait_writable/notify_closing; reference: AnyIO on Trio."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import anyio
import pytest

import scopeloop


async def _program(lib: Any) -> list[Any]:
    seen: list[Any] = []
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)
        await lib.wait_writable(a)
        seen.append("writable")

        async def reader() -> None:
            await lib.wait_readable(b)
            seen.append(b.recv(10))

        async with lib.create_task_group() as tg:
            tg.start_soon(reader)
            await lib.wait_all_tasks_blocked()
            try:
                await lib.wait_readable(b.fileno())
            except lib.BusyResourceError as exc:
                seen.append(str(exc))
            seen.append("before send")
            a.send(b"hi")
        with lib.move_on_after(0) as scope:
            await lib.wait_readable(b)  # nothing to read: cancelled
        seen.append(scope.cancelled_caught)

        async def closed_waiter() -> None:
            try:
                await lib.wait_readable(b)
            except lib.ClosedResourceError:
                seen.append("ClosedResourceError")

        async with lib.create_task_group() as tg:
            tg.start_soon(closed_waiter)
            await lib.wait_all_tasks_blocked()
            lib.notify_closing(b)
        a.send(b"x")
        await lib.wait_readable(b)  # a cancelled or closed wait left nothing behind
        seen.append(b.recv(10))
    return seen


def test_matches_anyio_on_trio(run: Any) -> None:
    expected = ["writable", "Another task is already reading from this resource",
                "before send", b"hi", True, "ClosedResourceError", b"x"]
    assert anyio.run(_program, anyio, backend="trio") == expected
    assert run(_program, scopeloop) == expected


def test_cancelled_wait_removes_the_reader(run: Any) -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b:
            loop = asyncio.get_running_loop()
            with scopeloop.move_on_after(0):
                await scopeloop.wait_readable(b)
            if isinstance(loop, asyncio.SelectorEventLoop):  # (uvloop does not tell)
                assert loop.remove_reader(b.fileno()) is False  # nothing left registered
            with pytest.raises(ValueError, match="file descriptor"):
                await scopeloop.wait_readable(-1)
            with pytest.deprecated_call():
                await scopeloop.wait_socket_writable(a)

    run(main)
