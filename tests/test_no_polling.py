"""No polling (DESIGN §4.3): a task waiting in a shield inside a cancelled region costs nothing.

The work the loop does while the program waits is *counted* (callbacks scheduled,
and loop iterations on the asyncio backend), never timed: a poller would schedule
something every iteration, thousands in half a second.  CPU time is compared with
wall time of the same run, which holds on a loaded machine too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import scopeloop
from scopeloop import CancelScope

WAIT = 0.5
# A handful of callbacks at most: the timer of the sleep, its wake-up, the re-check
# after the step.  A poller would run one per loop iteration.
MAX_CALLBACKS = 20
MAX_ITERATIONS = 20


class LoopWork:
    """Counts the callbacks a loop schedules (and, on the asyncio backend, its iterations).

    The loop's methods are wrapped on the instance, which is where the C Task and
    Future look them up, so every wake-up and timer is seen.
    """

    _METHODS = ("call_soon", "call_later", "call_at", "call_soon_threadsafe")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.callbacks = 0
        self.iterations = 0
        self._counting = False
        for name in self._METHODS:
            setattr(loop, name, self._wrap(getattr(loop, name)))
        run_once = getattr(loop, "_run_once", None)
        if run_once is not None:  # the stdlib loop; uvloop's iteration is in C
            def counted_run_once() -> None:
                if self._counting:
                    self.iterations += 1
                run_once()
            loop._run_once = counted_run_once  # type: ignore[attr-defined]

    def _wrap(self, method: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if self._counting:
                self.callbacks += 1
            return method(*args, **kwargs)
        return counted

    def close(self) -> None:
        for name in (*self._METHODS, "_run_once"):
            self._loop.__dict__.pop(name, None)

    async def measure(self, awaitable: Any) -> tuple[float, float]:
        """Await ``awaitable`` while counting; return (wall seconds, CPU seconds)."""
        wall, cpu = time.monotonic(), time.process_time()
        self._counting = True
        try:
            await awaitable
        finally:
            self._counting = False
        return time.monotonic() - wall, time.process_time() - cpu


def assert_idle(work: LoopWork, wall: float, cpu: float) -> None:
    assert wall >= WAIT * 0.9
    assert work.callbacks <= MAX_CALLBACKS, f"{work.callbacks} callbacks while waiting"
    assert work.iterations <= MAX_ITERATIONS, f"{work.iterations} loop iterations while waiting"
    assert cpu < 0.2 * wall, f"{cpu:.3f}s CPU in {wall:.3f}s wall"


def test_shielded_wait_in_cancelled_scope(run):
    async def main():
        work = LoopWork(asyncio.get_running_loop())
        with CancelScope() as outer:
            outer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.sleep(0)      # the cancellation has been delivered once
            with CancelScope(shield=True):
                wall, cpu = await work.measure(asyncio.sleep(WAIT))
            await asyncio.sleep(0)
        work.close()
        assert outer.cancelled_caught
        assert_idle(work, wall, cpu)

    run(main)


def test_shielded_wait_when_cancelled_from_another_task(run):
    async def shielded(outer: CancelScope, entered: asyncio.Event, release: asyncio.Event):
        with outer:
            with CancelScope(shield=True):
                entered.set()
                await release.wait()
            await asyncio.sleep(0)

    async def main():
        work = LoopWork(asyncio.get_running_loop())
        outer, entered, release = CancelScope(), asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(shielded(outer, entered, release))
        await entered.wait()
        outer.cancel()                          # reaches a task blocked in a shield
        wall, cpu = await work.measure(asyncio.sleep(WAIT))
        release.set()
        await task
        work.close()
        assert outer.cancelled_caught
        assert_idle(work, wall, cpu)

    run(main)


def test_shielded_children_of_a_cancelled_group(run):
    """DESIGN §2.1: nested groups, inner children sleeping in shields, the outer group cancelled."""
    done: list[int] = []

    async def child(n: int, started: asyncio.Event) -> None:
        with CancelScope(shield=True):
            started.set()
            await asyncio.sleep(WAIT)
            done.append(n)

    async def inner_group(started: list[asyncio.Event]) -> None:
        async with scopeloop.create_task_group() as group:
            for n, event in enumerate(started):
                group.start_soon(child, n, event)

    async def main():
        work = LoopWork(asyncio.get_running_loop())
        started = [asyncio.Event() for _ in range(3)]
        async with scopeloop.create_task_group() as group:
            group.start_soon(inner_group, started)
            for event in started:
                await event.wait()
            group.cancel_scope.cancel()
            with CancelScope(shield=True):
                wall, cpu = await work.measure(asyncio.sleep(WAIT * 0.9))
        work.close()
        assert sorted(done) == [0, 1, 2]
        assert_idle(work, wall / 0.9, cpu)

    run(main)


def test_stock_taskgroup_waiting_in_cancelled_scope(run):
    """asyncio.TaskGroup catches the CancelledError of its wait and waits again.

    Inside a cancelled scope each such wait is a checkpoint, but it must not turn
    into a busy loop while a natively cancelled child takes time to clean up
    (DESIGN §4.3: a loop whose tasks are all blocked does no work).
    """
    async def slow_cleanup(cleaned: list[str]) -> None:
        try:
            await asyncio.sleep(1000)
        finally:
            await asyncio.sleep(WAIT)   # its own native cancel was consumed: this waits
            cleaned.append("cleaned")

    async def main():
        work = LoopWork(asyncio.get_running_loop())
        cleaned: list[str] = []

        async def body() -> None:
            with CancelScope() as scope:
                async with asyncio.TaskGroup() as group:
                    group.create_task(slow_cleanup(cleaned))
                    await asyncio.sleep(0)
                    scope.cancel()
                    await asyncio.sleep(1000)
            assert scope.cancelled_caught

        wall, cpu = await work.measure(body())
        work.close()
        assert cleaned == ["cleaned"]
        assert_idle(work, wall, cpu)

    run(main)
