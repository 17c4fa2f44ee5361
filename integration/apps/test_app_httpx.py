"""httpx's AsyncClient (over AnyIO and httpcore), unchanged, against the aiohttp server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import sniffio
from aiohttp_app import FIRST_CHUNK, STATE, make_app, serve

import scopeloop


def test_requests(run_app: Callable[..., Any]) -> None:
    async def main() -> None:
        assert sniffio.current_async_library() == "asyncio"
        async with serve(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/hello")
            assert (response.status_code, response.text) == (200, "Hello, world")
            response = await client.post("/echo", json={"a": "b"})
            assert response.json() == {"echo": {"a": "b"}}
            assert (await client.get("/missing")).status_code == 404
            responses = await asyncio.gather(*(client.post("/echo", json=i) for i in range(30)))
            assert [r.json()["echo"] for r in responses] == list(range(30))

    run_app(main)


def test_requests_from_a_task_group(run_app: Callable[..., Any]) -> None:
    async def main() -> None:
        results: dict[int, Any] = {}
        async with serve(make_app()) as url, httpx.AsyncClient(base_url=url) as client:
            async def fetch(i: int) -> None:
                results[i] = (await client.post("/echo", json=i)).json()["echo"]

            async with scopeloop.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(fetch, i)
        assert results == {i: i for i in range(20)}

    run_app(main)


def test_stream_cancelled_mid_response(run_app: Callable[..., Any]) -> None:
    """A streamed response abandoned by a task.cancel(), then by asyncio.timeout."""
    async def main() -> None:
        app = make_app()
        state = app[STATE]
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
            got_first = asyncio.Event()

            async def read_stream() -> None:
                async with client.stream("GET", "/stream") as response:
                    chunks = response.aiter_raw()
                    assert await anext(chunks) == FIRST_CHUNK
                    got_first.set()
                    await anext(chunks)

            reader = asyncio.create_task(read_stream())
            await got_first.wait()
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            assert reader.cancelled()
            # httpcore closed the half-read connection, so the server saw the client go.
            async with asyncio.timeout(10):
                await state.stream_ended.wait()
            assert state.stream_outcomes == ["cancelled"]

            try:
                async with asyncio.timeout(0.05):
                    async with client.stream("GET", "/stream") as response:
                        await response.aread()
            except TimeoutError:
                pass
            else:
                raise AssertionError("the stalled stream did not time out")
            assert asyncio.current_task().cancelling() == 0
            assert (await client.get("/hello")).text == "Hello, world"

    run_app(main)


def test_stream_cancelled_by_scope_releases_connection(run_app: Callable[..., Any]) -> None:
    """httpcore closes a half-read connection inside anyio.CancelScope(shield=True);
    with the AnyIO bridge that shield holds against scopeloop's scope, so the close
    completes and the server sees the client go."""
    async def main() -> None:
        app = make_app()
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
            with scopeloop.CancelScope() as scope:
                async with client.stream("GET", "/stream") as response:
                    chunks = response.aiter_raw()
                    assert await anext(chunks) == FIRST_CHUNK
                    scope.cancel()
                    await anext(chunks)
            assert scope.cancelled_caught
            assert asyncio.current_task().cancelling() == 0
            async with asyncio.timeout(2):
                await app[STATE].stream_ended.wait()

    run_app(main)
