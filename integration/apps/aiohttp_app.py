"""A small aiohttp application, written as for stock asyncio (nothing scopeloop here).

Routes: ``GET /hello``, ``POST /echo`` (JSON), ``GET /where`` (which loop and task
class served the request), and ``GET /stream`` (one chunk, then waits for more data
that never comes, so a client can cancel it mid-stream).  ``AppState`` records what
the handlers saw, for the tests to assert on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

FIRST_CHUNK = b"first chunk\n"


@dataclass
class AppState:
    """What the server's handlers observed."""

    stream_started: asyncio.Event = field(default_factory=asyncio.Event)
    stream_ended: asyncio.Event = field(default_factory=asyncio.Event)
    stream_outcomes: list[str] = field(default_factory=list)


STATE = web.AppKey("state", AppState)


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"echo": await request.json()})


async def where(request: web.Request) -> web.Response:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    return web.json_response({"loop": type(loop).__name__,
                              "backend": getattr(loop, "scopeloop_backend", None),
                              "task": f"{type(task).__module__}.{type(task).__qualname__}"})


async def stream(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    response = web.StreamResponse()
    response.content_type = "text/plain"
    await response.prepare(request)
    await response.write(FIRST_CHUNK)
    state.stream_started.set()
    try:
        await asyncio.Event().wait()  # the rest of the data never comes
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client goes away.
        state.stream_outcomes.append("cancelled")
        raise
    finally:
        state.stream_ended.set()
    return response


def make_app() -> web.Application:
    app = web.Application()
    app[STATE] = AppState()
    app.router.add_get("/hello", hello)
    app.router.add_post("/echo", echo)
    app.router.add_get("/where", where)
    app.router.add_get("/stream", stream)
    return app


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on an ephemeral loopback port; yields its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
