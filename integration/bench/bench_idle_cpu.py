"""CPU spent while a cancelled task waits: scopeloop against the stock loop, in one run.

The program of issue 13: a cancel scope is cancelled while an ``asyncio.TaskGroup``
inside it waits for a child whose cleanup takes a while.  The group uses up the one
``cancel()`` it gives the child; the wait that follows must cost nothing.  On CPython
releases whose TaskGroup moved its exit body (3.12.8+, 3.13.1+, 3.14) scopeloop used to
re-interrupt that wait every iteration, one core at 100%.

Prints, per backend, CPU seconds over wall seconds of the wait, for scopeloop and for
a stock loop cancelling the same group natively (``task.cancel()``); the goal is < 0.2.

    python integration/bench/bench_idle_cpu.py [--wait 0.5] [--check]

``--check`` exits 1 when a scopeloop line is over the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time

import scopeloop

GOAL = 0.2


async def _slow_cleanup_child(wait: float, started: asyncio.Event) -> None:
    try:
        started.set()
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(wait)  # the group's one cancel() is used up
        raise


async def _scopeloop_wait(wait: float) -> float:
    started = asyncio.Event()
    with scopeloop.CancelScope() as scope:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_slow_cleanup_child(wait, started))
            await started.wait()
            scope.cancel()
            cpu, wall = time.process_time(), time.perf_counter()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


async def _stock_wait(wait: float) -> float:
    started = asyncio.Event()
    task = asyncio.current_task()
    assert task is not None
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_slow_cleanup_child(wait, started))
            await started.wait()
            task.cancel()
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.sleep(3600)
    except asyncio.CancelledError:
        task.uncancel()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=0.5, help="seconds the child cleans up")
    parser.add_argument("--check", action="store_true", help=f"exit 1 when a ratio is >= {GOAL}")
    args = parser.parse_args()
    print(f"CPU/wall while a cancelled asyncio.TaskGroup waits {args.wait}s "
          f"(Python {platform.python_version()}, goal < {GOAL})")
    worst = 0.0
    for backend in scopeloop.BACKENDS:
        if backend == "uvloop" and scopeloop.default_backend() != "uvloop":
            continue
        ours = scopeloop.run(_scopeloop_wait, args.wait, backend=backend)
        if backend == "uvloop":
            import uvloop
            stock = asyncio.Runner(loop_factory=uvloop.new_event_loop).run(_stock_wait(args.wait))
        else:
            stock = asyncio.Runner(loop_factory=asyncio.SelectorEventLoop).run(_stock_wait(args.wait))
        worst = max(worst, ours)
        print(f"  {backend:8} scopeloop {ours:5.2f}   stock {stock:5.2f}")
    return 1 if args.check and worst >= GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
