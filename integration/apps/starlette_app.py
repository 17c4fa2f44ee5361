"""A small Starlette application, written as for stock asyncio (nothing scopeloop here).

``GET /`` text, ``POST /echo`` JSON, ``GET /where`` which loop and task served the
request, ``GET /numbers`` a streamed response; the lifespan records startup and
shutdown.  Run it with uvicorn: ``uvicorn starlette_app:app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

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
    return JSONResponse({"loop": type(loop).__name__,
                         "backend": getattr(loop, "scopeloop_backend", None),
                         "task": f"{type(task).__module__}.{type(task).__qualname__}"})


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
                        Route("/where", where), Route("/numbers", numbers)],
                lifespan=lifespan)
