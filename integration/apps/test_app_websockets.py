"""A websockets echo server and client, unchanged, on scopeloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedOK

import scopeloop


def echo_server(handlers: list[str]) -> Callable[[ServerConnection], Any]:
    """The echo handler; it notes where it ran and how it ended."""
    async def echo(websocket: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        handlers.append(f"{getattr(loop, 'scopeloop_backend', None)} "
                        f"{type(asyncio.current_task()).__module__}")
        try:
            async for message in websocket:
                await websocket.send(message)
        finally:
            handlers.append("closed")
    return echo


def test_echo(run_app: Callable[..., Any], backend: str) -> None:
    async def main() -> None:
        handlers: list[str] = []
        async with serve(echo_server(handlers), "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as websocket:
                await websocket.send("hello")
                assert await websocket.recv() == "hello"
                await websocket.send(b"\x00\x01binary")
                assert await websocket.recv() == b"\x00\x01binary"
                for i in range(100):
                    await websocket.send(str(i))
                assert [await websocket.recv() for _ in range(100)] == [str(i) for i in range(100)]

            # Several clients at once, from a scopeloop task group.
            replies: dict[int, str] = {}

            async def client(i: int) -> None:
                async with connect(f"ws://127.0.0.1:{port}") as websocket:
                    await websocket.send(f"client {i}")
                    replies[i] = str(await websocket.recv())

            async with scopeloop.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(client, i)
            assert replies == {i: f"client {i}" for i in range(10)}
        # Every handler ran in a scopeloop task and ended when its client left.
        assert handlers.count(f"{backend} scopeloop.task") == 11
        assert handlers.count("closed") == 11

    run_app(main)


def test_receive_cancelled_then_connection_still_usable(run_app: Callable[..., Any]) -> None:
    """A recv() interrupted by a cancel scope deadline loses no message."""
    async def main() -> None:
        async with serve(echo_server([]), "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}") as websocket:
                with scopeloop.move_on_after(0.05) as scope:
                    await websocket.recv()  # nothing was sent: nothing comes back
                assert scope.cancelled_caught
                assert asyncio.current_task().cancelling() == 0
                await websocket.send("after the timeout")
                assert await websocket.recv() == "after the timeout"
                await websocket.close()
                try:
                    await websocket.recv()
                except ConnectionClosedOK:
                    pass
                else:
                    raise AssertionError("recv() after close() returned")

    run_app(main)
