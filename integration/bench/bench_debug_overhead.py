"""What scopeloop's diagnostics cost: nothing with debug off, and how much with it on.

Debug mode lives in separate loop classes (``scopeloop.diagnostics``), chosen by
``new_event_loop(debug=True)`` only; a loop with debug off is the plain scopeloop
class, whose ``call_soon``/``call_later``/``call_at`` are the backend's own methods.
This benchmark checks that by identity, then measures it: the same workloads, on the
same backend, on four loops, interleaved round by round in one run:

* ``stock``: the backend's own loop (``asyncio.SelectorEventLoop`` or ``uvloop.Loop``);
* ``off``: ``scopeloop.new_event_loop(backend)``, debug off (the diagnostics module
  is imported, as it always is with scopeloop);
* ``diag``: scopeloop's debug loop class with asyncio's own debug mode left off, so
  the column shows what recording and leftover checks alone cost;
* ``debug``: ``new_event_loop(backend, debug=True)``: the above plus asyncio's debug
  mode (creation tracebacks for every handle and future, slow-callback checks).

The workloads use stock asyncio APIs only, so that every loop runs the same code:
``call_soon`` callbacks, ``call_later``/``call_at`` timers (half of them cancelled),
tasks created and awaited, and future wake-ups between two tasks (every wake-up goes
through ``call_soon``).  Times are process CPU seconds per operation, median of the
rounds; the ratios are medians of per-round ratios.  ``off/stock`` near 1.00 on the
callback and timer rows is the claim (the task rows also carry scopeloop's Task
subclass, which is not diagnostics).  A benchmark, not a test: nothing asserts.

    python integration/bench/bench_debug_overhead.py [--backend uvloop|asyncio] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import scopeloop
from scopeloop import diagnostics

Workload = Callable[[int], Awaitable[None]]


async def callbacks(n: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    for _ in range(n):
        loop.call_soon(tick)
    await done


async def timers(n: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count == n // 2:
            done.set_result(None)

    now = loop.time()
    handles = [loop.call_later(0, tick) if i % 2 else loop.call_at(now, tick) for i in range(n)]
    for handle in handles[::2]:
        handle.cancel()  # the other half runs
    await done


async def _noop() -> None:
    pass


async def tasks(n: int) -> None:
    for _ in range(n // 100):
        batch = [asyncio.create_task(_noop()) for _ in range(100)]
        for task in batch:
            await task


async def wakeups(n: int) -> None:
    loop = asyncio.get_running_loop()
    ping: asyncio.Future[None] | None = None
    pong: asyncio.Future[None] | None = None

    async def partner() -> None:
        nonlocal ping, pong
        for _ in range(n):
            ping = loop.create_future()
            await ping
            assert pong is not None
            pong.set_result(None)

    other = asyncio.create_task(partner())
    for _ in range(n):
        while ping is None or ping.done():
            await asyncio.sleep(0)
        pong = loop.create_future()
        ping.set_result(None)
        await pong
    await other


WORKLOADS: dict[str, tuple[Workload, int]] = {
    "call_soon callbacks": (callbacks, 40_000),
    "timers (half cancelled)": (timers, 40_000),
    "tasks created, awaited": (tasks, 10_000),
    "future wake-ups": (wakeups, 10_000),
}


def make_loop(column: str, backend: str) -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop
    if column == "stock":
        if backend == "uvloop":
            import uvloop
            loop = uvloop.Loop()
        else:
            loop = asyncio.SelectorEventLoop()
    elif column == "off":
        loop = scopeloop.new_event_loop(backend)
    elif column == "diag":
        loop = diagnostics.debug_loop_class(backend)()
    else:
        loop = scopeloop.new_event_loop(backend, debug=True)
        loop.slow_callback_duration = 1e9  # a benchmark step is long on purpose
    return loop


def measure(column: str, backend: str, workload: Workload, n: int) -> float:
    loop = make_loop(column, backend)
    # Collect first and not during the run, as timeit does: the debug columns make
    # much garbage that would otherwise be collected in whichever run comes next.
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        loop.run_until_complete(workload(n))
        return (time.process_time() - start) / n
    finally:
        gc.enable()
        loop.close()


COLUMNS = ("stock", "off", "diag", "debug")
RATIOS = (("off", "stock"), ("diag", "off"), ("debug", "off"))


def check_identity(backend: str) -> list[str]:
    """The methods diagnostics override are the backend's own on a loop with debug off."""
    plain = type(make_loop("off", backend))
    base = type(make_loop("stock", backend))
    lines = []
    for name in ("call_soon", "call_later", "call_at", "close"):
        same = getattr(plain, name) is getattr(base, name)
        lines.append(f"  {plain.__name__}.{name} is {base.__name__}.{name}: {same}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default=scopeloop.default_backend(),
                        choices=scopeloop.BACKENDS)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    print(f"Python {sys.version.split()[0]}, backend {args.backend}, {args.rounds} rounds")
    print("with debug off, the loop runs the backend's own methods:")
    print("\n".join(check_identity(args.backend)))

    times: dict[tuple[str, str], list[float]] = {}
    for workload, n in WORKLOADS.values():  # warm up every path once
        for column in COLUMNS:
            measure(column, args.backend, workload, n // 10)
    for round_ in range(args.rounds):
        for name, (workload, n) in WORKLOADS.items():
            # Rotate the order so no column always runs first or last in a round.
            order = COLUMNS[round_ % len(COLUMNS):] + COLUMNS[:round_ % len(COLUMNS)]
            for column in order:
                times.setdefault((name, column), []).append(
                    measure(column, args.backend, workload, n))

    header = f"{'workload':26s}" + "".join(f"{c:>10s}" for c in COLUMNS) + "".join(
        f"{a + '/' + b:>12s}" for a, b in RATIOS)
    print()
    print("median CPU microseconds per operation, and median per-round ratios:")
    print(header)
    for name in WORKLOADS:
        row = f"{name:26s}" + "".join(
            f"{statistics.median(times[name, c]) * 1e6:10.3f}" for c in COLUMNS)
        for a, b in RATIOS:
            ratios = [x / y for x, y in zip(times[name, a], times[name, b])]
            row += f"{statistics.median(ratios):12.2f}"
        print(row)


if __name__ == "__main__":
    main()
