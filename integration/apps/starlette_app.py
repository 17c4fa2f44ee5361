"""A small Starlette application, written as for stock asyncio (nothing scopeloop here).

``GET /`` text, ``POST /echo`` JSON, ``GET /where`` which loop, task and AnyIO cancel
scope class served the request, ``GET /thread`` a sync endpoint (Starlette runs it
with ``anyio.to_thread.run_sync``) saying which thread ran it, ``GET /numbers`` a
streamed response; the lifespan records startup and shutdown.  Run it with uvicorn: ``uvicorn starlette_app:app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncIterator

import anyio
import sniffio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

LIFESPAN_EVENTS: list[str] = []


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello from Starlette")


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"echo": await request.json()})


async def where(request: Request) -> JSONResponse:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    scope = anyio.CancelScope()
    return JSONResponse({"loop": type(loop).__name__,
                         "backend": getattr(loop, "scopeloop_backend", None),
                         "task": f"{type(task).__module__}.{type(task).__qualname__}",
                         "anyio scope": type(scope).__module__})


def thread(request: Request) -> JSONResponse:
    return JSONResponse({"thread": threading.current_thread().name,
                         "async library": sniffio_library()})


def sniffio_library() -> str | None:
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


async def numbers(request: Request) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"{i}\n".encode()
            await asyncio.sleep(0)
    return StreamingResponse(generate(), media_type="text/plain")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    LIFESPAN_EVENTS.append("startup")
    print("lifespan: startup", flush=True)
    yield
    LIFESPAN_EVENTS.append("shutdown")
    print("lifespan: shutdown", flush=True, file=sys.stderr)


app = Starlette(routes=[Route("/", home), Route("/echo", echo, methods=["POST"]),
                        Route("/where", where), Route("/thread", thread),
                        Route("/numbers", numbers)],
                lifespan=lifespan)
