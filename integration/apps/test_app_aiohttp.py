"""aiohttp server and client, unchanged, on scopeloop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp_app import FIRST_CHUNK, STATE, make_app, serve

import scopeloop


def test_requests(run_app: Callable[..., Any], backend: str) -> None:
    async def main() -> None:
        async with serve(make_app()) as url, aiohttp.ClientSession() as session:
            async with session.get(f"{url}/hello") as response:
                assert response.status == 200
                assert await response.text() == "Hello, world"
            async with session.post(f"{url}/echo", json={"n": [1, 2, 3]}) as response:
                assert await response.json() == {"echo": {"n": [1, 2, 3]}}
            async with session.get(f"{url}/where") as response:
                where = await response.json()
            assert where["loop"] == type(asyncio.get_running_loop()).__name__
            assert where["backend"] == backend
            # From Python 3.12 aiohttp builds its handler tasks with asyncio.Task(...,
            # eager_start=True) instead of loop.create_task(), so they are stock tasks
            # (stock behaviour; scopeloop's scope APIs are not available in them).
            assert where["task"] in (("scopeloop.task.Task", "_asyncio.Task")
                                     if sys.version_info >= (3, 12) else ("scopeloop.task.Task",))
            async with session.get(f"{url}/missing") as response:
                assert response.status == 404

            async def fetch(i: int) -> Any:
                async with session.post(f"{url}/echo", json=i) as response:
                    return (await response.json())["echo"]

            assert await asyncio.gather(*(fetch(i) for i in range(50))) == list(range(50))

    run_app(main)


def test_request_cancelled_mid_stream(run_app: Callable[..., Any]) -> None:
    """A client task cancelled while reading a response: both ends clean up."""
    async def main() -> None:
        app = make_app()
        state = app[STATE]
        async with serve(app) as url, aiohttp.ClientSession() as session:
            got_first = asyncio.Event()

            async def read_stream() -> None:
                async with session.get(f"{url}/stream") as response:
                    assert await response.content.readline() == FIRST_CHUNK
                    got_first.set()
                    await response.content.read()  # blocks: the server sends no more

            reader = asyncio.create_task(read_stream())
            await got_first.wait()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            assert reader.cancelled()
            # The server notices the client went away and cancels its handler.
            async with asyncio.timeout(10):
                await state.stream_ended.wait()
            assert state.stream_outcomes == ["cancelled"]
            # The session is still usable.
            async with session.get(f"{url}/hello") as response:
                assert await response.text() == "Hello, world"

    run_app(main)


def test_cancel_scope_around_client_code(run_app: Callable[..., Any]) -> None:
    """scopeloop's scopes cancel aiohttp's own waits and leave the task's count balanced."""
    async def main() -> None:
        app = make_app()
        async with serve(app) as url, aiohttp.ClientSession() as session:
            with scopeloop.CancelScope() as scope:
                async with session.get(f"{url}/stream") as response:
                    assert await response.content.readline() == FIRST_CHUNK
                    scope.cancel()
                    await response.content.read()
            assert scope.cancelled_caught
            assert asyncio.current_task().cancelling() == 0
            async with asyncio.timeout(10):
                await app[STATE].stream_ended.wait()
            # A deadline on a stalled read, inside a task group.
            async with scopeloop.create_task_group() as tg:
                async def stalled() -> None:
                    with scopeloop.move_on_after(0.05) as deadline:
                        async with session.get(f"{url}/stream") as response:
                            await response.content.read()
                    assert deadline.cancelled_caught
                tg.start_soon(stalled)
                tg.start_soon(stalled)
            async with session.get(f"{url}/hello") as response:
                assert await response.text() == "Hello, world"

    run_app(main)
