"""TCP echo over loopback: scopeloop's SocketStream against asyncio streams (and AnyIO).

Each contender runs a client and an echo server in the same scopeloop loop and
process, over 127.0.0.1.  Workloads:

* small echo: the client sends a 100-byte message and waits for it to come back;
* large echo: the same with 64 KiB messages (the echo arrives in pieces);
* connect: open a connection, exchange one byte, close it.

Contenders are interleaved round by round (rotating the order) so each sees the
same machine state, on each backend in turn.  CPU time of the process (both sides)
per operation is reported as the best and the median round, with its ratio to
asyncio streams on the same backend.  A benchmark, not a test: nothing asserts on
the numbers.

    python integration/bench/bench_tcp.py [--backend uvloop|asyncio] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import scopeloop

try:
    import anyio
except ImportError:  # optional contender
    anyio = None

Bench = Callable[[int, int], Awaitable[None]]  # (message size, repetitions)

HOST = "127.0.0.1"


# -- asyncio streams ---------------------------------------------------------------

class _Handlers:
    """Keeps the server's handler tasks, so a run ends only when they are done."""

    def __init__(self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                         Awaitable[None]]) -> None:
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._handler(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks)


async def asyncio_echo(size: int, n: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    handlers = _Handlers(handle)
    server = await asyncio.start_server(handlers, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(HOST, port)
    message = b"x" * size
    for _ in range(n):
        writer.write(message)
        await writer.drain()
        got = 0
        while got < size:
            got += len(await reader.read(65536))
    writer.close()
    await writer.wait_closed()
    await handlers.wait()
    server.close()
    await server.wait_closed()


async def asyncio_connect(size: int, n: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(1))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    handlers = _Handlers(handle)
    server = await asyncio.start_server(handlers, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    for _ in range(n):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"x")
        await reader.read(1)
        writer.close()
        await writer.wait_closed()
    await handlers.wait()
    server.close()
    await server.wait_closed()


# -- scopeloop and AnyIO (the same API) ---------------------------------------------

def _echo(lib: object) -> Bench:
    async def bench(size: int, n: int) -> None:
        async def handle(stream: scopeloop.SocketStream) -> None:
            async with stream:
                try:
                    while True:
                        await stream.send(await stream.receive())
                except lib.EndOfStream:  # type: ignore[attr-defined]
                    pass

        listener = await lib.create_tcp_listener(local_host=HOST)  # type: ignore[attr-defined]
        port = listener.extra(lib.abc.SocketAttribute.local_port  # type: ignore[attr-defined]
                              if lib is anyio else scopeloop.SocketAttribute.local_port)
        async with listener, lib.create_task_group() as tg:  # type: ignore[attr-defined]
            tg.start_soon(listener.serve, handle)
            stream = await lib.connect_tcp(HOST, port)  # type: ignore[attr-defined]
            message = b"x" * size
            send, receive = stream.send, stream.receive
            for _ in range(n):
                await send(message)
                got = 0
                while got < size:
                    got += len(await receive())
            await stream.aclose()
            tg.cancel_scope.cancel()
    return bench


def _connect(lib: object) -> Bench:
    async def bench(size: int, n: int) -> None:
        async def handle(stream: scopeloop.SocketStream) -> None:
            async with stream:
                await stream.send(await stream.receive(1))

        listener = await lib.create_tcp_listener(local_host=HOST)  # type: ignore[attr-defined]
        port = listener.extra(lib.abc.SocketAttribute.local_port  # type: ignore[attr-defined]
                              if lib is anyio else scopeloop.SocketAttribute.local_port)
        async with listener, lib.create_task_group() as tg:  # type: ignore[attr-defined]
            tg.start_soon(listener.serve, handle)
            for _ in range(n):
                stream = await lib.connect_tcp(HOST, port)  # type: ignore[attr-defined]
                await stream.send(b"x")
                await stream.receive(1)
                await stream.aclose()
            tg.cancel_scope.cancel()
    return bench


def contenders() -> dict[str, dict[str, Bench]]:
    found: dict[str, dict[str, Bench]] = {
        "small echo (100 B)": {"asyncio streams": asyncio_echo, "scopeloop": _echo(scopeloop)},
        "large echo (64 KiB)": {"asyncio streams": asyncio_echo, "scopeloop": _echo(scopeloop)},
        "connect+close": {"asyncio streams": asyncio_connect, "scopeloop": _connect(scopeloop)},
    }
    if anyio is not None:
        found["small echo (100 B)"]["anyio"] = _echo(anyio)
        found["large echo (64 KiB)"]["anyio"] = _echo(anyio)
        found["connect+close"]["anyio"] = _connect(anyio)
    return found


WORKLOADS = {  # message size, repetitions
    "small echo (100 B)": (100, 10_000),
    "large echo (64 KiB)": (65536, 2_000),
    "connect+close": (1, 1_000),
}


async def measure(rounds: int, scale: float, only: str | None) -> None:
    table = {workload: benches for workload, benches in contenders().items()
             if only is None or workload.startswith(only)}
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for workload, benches in table.items():
            size, n = WORKLOADS[workload]
            names = list(benches)
            names = names[r % len(names):] + names[:r % len(names)]  # rotate the order
            for name in names:
                start = time.process_time()
                await benches[name](size, max(1, int(n * scale)))
                times.setdefault((workload, name), []).append(time.process_time() - start)
    loop = asyncio.get_running_loop()
    print(f"Python {sys.version.split()[0]}, loop: {type(loop).__name__}, rounds: {rounds}")
    for workload, benches in table.items():
        n = max(1, int(WORKLOADS[workload][1] * scale))
        base = times[(workload, "asyncio streams")]
        best_base, median_base = min(base), statistics.median(base)
        print(f"{workload}, n={n}:            best           median")
        for name in benches:
            best, median = min(times[(workload, name)]), statistics.median(times[(workload, name)])
            print(f"  {name:16s} {best / n * 1e6:7.2f} us {best / best_base:5.2f}x"
                  f"   {median / n * 1e6:7.2f} us {median / median_base:5.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None,
                        help="uvloop or asyncio (default: each available one in turn)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply repetitions")
    parser.add_argument("--only", default=None, help="run the workloads whose name starts so")
    args = parser.parse_args()
    backends = [args.backend] if args.backend else [
        b for b in scopeloop.BACKENDS if b != "uvloop" or scopeloop.default_backend() == "uvloop"]
    for backend in backends:
        scopeloop.run(measure, args.rounds, args.scale, args.only, backend=backend)
