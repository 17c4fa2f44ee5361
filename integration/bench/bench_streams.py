"""Memory object streams against asyncio.Queue (and AnyIO's streams), in one run.

Two workloads, each on the same scopeloop loop, interleaved round by round so every
contender sees the same machine state:

* ping-pong: two tasks bounce an item back and forth through two rendezvous
  channels (0-buffer streams; ``asyncio.Queue(1)``, which never blocks the sender in
  this pattern, so it is the cheapest Queue setup);
* buffered: one producer sends N items through a 1000-item buffer to one consumer.

Times are process CPU seconds (the machine is shared; CPU time is what the loop
spends, and this benchmark never waits on I/O).  Prints the best and the median time
per contender and the ratio of each to asyncio.Queue's.  A benchmark, not a test: the
numbers are for reading, nothing asserts on them.

    python integration/bench/bench_streams.py [--backend uvloop|asyncio] [--rounds 7]
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
    from anyio import create_memory_object_stream as anyio_stream
except ImportError:  # optional contender
    anyio = None

Bench = Callable[[int], Awaitable[None]]


async def _both(a: Awaitable[None], b: Awaitable[None]) -> None:
    loop = asyncio.get_running_loop()
    ta, tb = loop.create_task(a), loop.create_task(b)
    await ta
    await tb


# -- ping-pong ---------------------------------------------------------------------

async def pingpong_queue(n: int) -> None:
    there, back = asyncio.Queue[int](1), asyncio.Queue[int](1)

    async def ping() -> None:
        for i in range(n):
            await there.put(i)
            await back.get()

    async def pong() -> None:
        for _ in range(n):
            await back.put(await there.get())

    await _both(ping(), pong())


def _pingpong_streams(create: Callable[[int], tuple[object, object]]) -> Bench:
    async def bench(n: int) -> None:
        send_there, receive_there = create(0)  # type: ignore[misc]
        send_back, receive_back = create(0)  # type: ignore[misc]

        async def ping() -> None:
            send, receive = send_there.send, receive_back.receive  # type: ignore[attr-defined]
            for i in range(n):
                await send(i)
                await receive()

        async def pong() -> None:
            send, receive = send_back.send, receive_there.receive  # type: ignore[attr-defined]
            for _ in range(n):
                await send(await receive())

        await _both(ping(), pong())
        for stream in (send_there, receive_there, send_back, receive_back):
            stream.close()  # type: ignore[attr-defined]
    return bench


# -- buffered ------------------------------------------------------------------------

async def buffered_queue(n: int) -> None:
    queue = asyncio.Queue[int](1000)

    async def produce() -> None:
        for i in range(n):
            await queue.put(i)

    async def consume() -> None:
        for _ in range(n):
            await queue.get()

    await _both(produce(), consume())


def _buffered_streams(create: Callable[[int], tuple[object, object]]) -> Bench:
    async def bench(n: int) -> None:
        send_stream, receive_stream = create(1000)  # type: ignore[misc]

        async def produce() -> None:
            send = send_stream.send  # type: ignore[attr-defined]
            for i in range(n):
                await send(i)
            send_stream.close()  # type: ignore[attr-defined]

        async def consume() -> None:
            receive = receive_stream.receive  # type: ignore[attr-defined]
            for _ in range(n):
                await receive()

        await _both(produce(), consume())
        receive_stream.close()  # type: ignore[attr-defined]
    return bench


def _buffered_async_for(create: Callable[[int], tuple[object, object]]) -> Bench:
    async def bench(n: int) -> None:
        send_stream, receive_stream = create(1000)  # type: ignore[misc]

        async def produce() -> None:
            async with send_stream:  # type: ignore[attr-defined]
                send = send_stream.send  # type: ignore[attr-defined]
                for i in range(n):
                    await send(i)

        async def consume() -> None:
            async with receive_stream:  # type: ignore[attr-defined]
                async for _ in receive_stream:  # type: ignore[attr-defined]
                    pass

        await _both(produce(), consume())
    return bench


def contenders() -> dict[str, dict[str, Bench]]:
    found: dict[str, dict[str, Bench]] = {
        "ping-pong (0-buffer)": {
            "asyncio.Queue": pingpong_queue,
            "scopeloop": _pingpong_streams(scopeloop.create_memory_object_stream),
        },
        "buffered (1000)": {
            "asyncio.Queue": buffered_queue,
            "scopeloop": _buffered_streams(scopeloop.create_memory_object_stream),
            "scopeloop async for": _buffered_async_for(scopeloop.create_memory_object_stream),
        },
    }
    if anyio is not None:
        found["ping-pong (0-buffer)"]["anyio"] = _pingpong_streams(anyio_stream)
        found["buffered (1000)"]["anyio"] = _buffered_streams(anyio_stream)
    return found


async def main(rounds: int, pingpongs: int, items: int) -> None:
    sizes = {"ping-pong (0-buffer)": pingpongs, "buffered (1000)": items}
    table = contenders()
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for workload, benches in table.items():
            names = list(benches)
            names = names[r % len(names):] + names[:r % len(names)]  # rotate the order
            for name in names:
                start = time.process_time()
                await benches[name](sizes[workload])
                times.setdefault((workload, name), []).append(time.process_time() - start)
    loop = asyncio.get_running_loop()
    print(f"Python {sys.version.split()[0]}, loop: {type(loop).__name__}, rounds: {rounds}")
    for workload, benches in table.items():
        base = times[(workload, "asyncio.Queue")]
        best_base, median_base = min(base), statistics.median(base)
        print(f"{workload}, n={sizes[workload]}:            best           median")
        for name in benches:
            best, median = min(times[(workload, name)]), statistics.median(times[(workload, name)])
            print(f"  {name:20s} {best / sizes[workload] * 1e6:6.2f} us {best / best_base:5.2f}x"
                  f"   {median / sizes[workload] * 1e6:6.2f} us {median / median_base:5.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="uvloop or asyncio")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pingpongs", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    scopeloop.run(main, args.rounds, args.pingpongs, args.items, backend=args.backend)
