"""Event, Lock, Semaphore, Condition, CapacityLimiter: AnyIO's API, FIFO fairness,
checkpoints, and grants that meet a cancellation in the same loop iteration."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from scopeloop import (
    CancelScope,
    CapacityLimiter,
    CapacityLimiterStatistics,
    Condition,
    Event,
    EventStatistics,
    Lock,
    Semaphore,
    SemaphoreStatistics,
    TaskInfo,
    WouldBlock,
    checkpoint,
    fail_after,
    wait_all_tasks_blocked,
)


def spawn(coro):  # type: ignore[no-untyped-def]
    return asyncio.get_running_loop().create_task(coro)


# -- Event ---------------------------------------------------------------------------


def test_event_wakes_every_waiter(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        event = Event()
        assert not event.is_set()
        waiters = [spawn(event.wait()) for _ in range(3)]
        await wait_all_tasks_blocked()
        assert event.statistics() == EventStatistics(3)
        event.set()
        event.set()  # idempotent
        assert event.is_set()
        await asyncio.gather(*waiters)
        assert event.statistics() == EventStatistics(0)
        await event.wait()  # already set: returns
    run(main)


def test_event_wait_is_a_checkpoint(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        event = Event()
        event.set()
        with CancelScope() as scope:
            scope.cancel()
            await event.wait()  # set, but the task is cancelled: the checkpoint raises
            pytest.fail("not cancelled")
        assert scope.cancelled_caught
        with CancelScope() as scope:
            scope.cancel()
            await Event().wait()
        assert scope.cancelled_caught
    run(main)


def test_event_set_then_scope_cancel_still_wakes(run) -> None:  # type: ignore[no-untyped-def]
    """set() followed, in the same step, by a cancellation of the waiter: it was set,
    so the wait returns; the cancellation is raised at the next checkpoint."""
    async def main() -> None:
        event = Event()
        scope = CancelScope()
        woke = []

        async def waiter() -> None:
            with scope:
                await event.wait()
                woke.append(True)
                await checkpoint()
                woke.append(False)  # never reached

        task = spawn(waiter())
        await wait_all_tasks_blocked()
        event.set()
        scope.cancel()
        await task
        assert woke == [True]
        assert scope.cancelled_caught
    run(main)


def test_event_cancelled_waiter_is_not_counted(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        event = Event()
        task = spawn(event.wait())
        await wait_all_tasks_blocked()
        task.cancel()
        assert event.statistics().tasks_waiting == 0
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not event._waiters
    run(main)


# -- Lock ----------------------------------------------------------------------------


def test_lock_basics(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        lock = Lock()
        assert not lock.locked()
        async with lock:
            assert lock.locked()
            owner = lock.statistics().owner
            assert isinstance(owner, TaskInfo)
            assert owner.id == id(asyncio.current_task())
            with pytest.raises(RuntimeError, match="not reentrant"):
                await lock.acquire()
            with pytest.raises(RuntimeError, match="not reentrant"):
                lock.acquire_nowait()
            other = spawn(_release(lock))
            with pytest.raises(RuntimeError, match="not holding"):
                await other
        assert lock.statistics().owner is None
        with pytest.raises(RuntimeError, match="not holding"):
            lock.release()
        lock.acquire_nowait()
        blocked = spawn(_acquire_nowait(lock))
        with pytest.raises(WouldBlock):
            await blocked
        lock.release()
    run(main)


async def _release(primitive: Any) -> None:
    primitive.release()


async def _acquire_nowait(primitive: Any) -> None:
    primitive.acquire_nowait()


def test_lock_is_fifo(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        lock = Lock()
        order: list[int] = []

        async def worker(n: int) -> None:
            async with lock:
                order.append(n)

        await lock.acquire()
        for n in range(4):
            spawn(worker(n))
            await wait_all_tasks_blocked()
        assert lock.statistics().tasks_waiting == 4
        lock.release()
        # A newcomer cannot barge in: the lock went straight to worker 0.
        with pytest.raises(WouldBlock):
            lock.acquire_nowait()
        await wait_all_tasks_blocked()
        assert order == [0, 1, 2, 3]
        assert not lock.locked()
    run(main)


@pytest.mark.parametrize("fast", [False, True])
def test_uncontended_acquire_yields_unless_fast(run, fast: bool) -> None:  # type: ignore[no-untyped-def]
    """Like AnyIO: acquire() is a schedule point even when free, unless fast_acquire."""
    async def main() -> None:
        for primitive in (Lock(fast_acquire=fast), Semaphore(1, fast_acquire=fast)):
            ran = []

            async def other() -> None:
                ran.append(True)

            spawn(other())
            await primitive.acquire()
            assert ran == ([] if fast else [True])
            primitive.release()
            await wait_all_tasks_blocked()
    run(main)


def test_acquire_in_a_cancelled_scope_raises_without_acquiring(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        lock, semaphore, limiter = Lock(fast_acquire=True), Semaphore(1), CapacityLimiter(1)
        for acquire in (lock.acquire, semaphore.acquire, limiter.acquire):
            with CancelScope() as scope:
                scope.cancel()
                await acquire()
            assert scope.cancelled_caught
        assert not lock.locked()
        assert semaphore.value == 1
        assert limiter.borrowed_tokens == 0
        with CancelScope() as scope:
            scope.cancel()
            with CancelScope(shield=True):
                async with lock, semaphore, limiter:
                    pass
    run(main)


# -- Semaphore -------------------------------------------------------------------------


def test_semaphore_basics(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        semaphore = Semaphore(2, max_value=2)
        assert (semaphore.value, semaphore.max_value) == (2, 2)
        async with semaphore as entered:
            assert entered is semaphore
            semaphore.acquire_nowait()
            assert semaphore.value == 0
            with pytest.raises(WouldBlock):
                semaphore.acquire_nowait()
            semaphore.release()
        with pytest.raises(ValueError, match="too many"):
            semaphore.release()
        order: list[int] = []

        async def worker(n: int) -> None:
            async with semaphore:
                order.append(n)
                await asyncio.sleep(0)

        semaphore = Semaphore(0)
        for n in range(3):
            spawn(worker(n))
            await wait_all_tasks_blocked()
        assert semaphore.statistics() == SemaphoreStatistics(3)
        semaphore.release()
        await wait_all_tasks_blocked()
        assert order == [0, 1, 2]
        assert semaphore.value == 1
    run(main)


@pytest.mark.parametrize(("args", "error"), [
    ((-1,), ValueError), ((1.5,), TypeError), ((True,), TypeError),
    ((2, 1), ValueError), ((1, "3"), TypeError),
])
def test_semaphore_validation(args: tuple[Any, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        if len(args) == 1:
            Semaphore(args[0])
        else:
            Semaphore(args[0], max_value=args[1])


# -- Condition -------------------------------------------------------------------------


def test_condition_notify_is_fifo(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        condition = Condition()
        woke: list[int] = []

        async def waiter(n: int) -> None:
            async with condition:
                await condition.wait()
                assert condition.locked()
                woke.append(n)

        for n in range(4):
            spawn(waiter(n))
            await wait_all_tasks_blocked()
        assert condition.statistics().tasks_waiting == 4
        async with condition:
            condition.notify()
        await wait_all_tasks_blocked()
        assert woke == [0]
        async with condition:
            condition.notify(2)
        await wait_all_tasks_blocked()
        assert woke == [0, 1, 2]
        async with condition:
            condition.notify_all()
        await wait_all_tasks_blocked()
        assert woke == [0, 1, 2, 3]
        assert not condition.locked()
    run(main)


def test_condition_needs_the_lock(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        condition = Condition(Lock())
        with pytest.raises(RuntimeError, match="async with condition"):
            condition.notify()
        with pytest.raises(RuntimeError, match="async with condition"):
            condition.notify_all()
        with pytest.raises(RuntimeError, match="async with condition"):
            await condition.wait()
        condition.acquire_nowait()
        assert condition.locked()
        condition.release()
    run(main)


def test_condition_wait_for(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        condition = Condition()
        box: list[int] = []

        async def consumer() -> int:
            async with condition:
                return await condition.wait_for(lambda: len(box) == 2 and sum(box))

        task = spawn(consumer())
        for value in (3, 4):
            await wait_all_tasks_blocked()
            async with condition:
                box.append(value)
                condition.notify_all()
        assert await task == 7
    run(main)


def test_cancelled_condition_wait_holds_the_lock_again(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        condition = Condition()
        held = []

        async def waiter(scope: CancelScope) -> None:
            async with condition:
                try:
                    with scope:
                        await condition.wait()
                finally:
                    held.append(condition.statistics().lock_statistics.owner
                                == TaskInfo(asyncio.current_task()))  # type: ignore[arg-type]

        blocker_scope = CancelScope()
        task = spawn(waiter(blocker_scope))
        await wait_all_tasks_blocked()
        async with condition:
            blocker_scope.cancel()
            await wait_all_tasks_blocked()  # it waits for the lock, behind the shield
            assert not task.done()
        await task
        assert held == [True]
        assert blocker_scope.cancelled_caught
        assert not condition.locked()
    run(main)


# -- CapacityLimiter -------------------------------------------------------------------


def test_capacity_limiter_basics(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        limiter = CapacityLimiter(2)
        me = asyncio.current_task()
        async with limiter:
            assert (limiter.borrowed_tokens, limiter.available_tokens) == (1, 1)
            with pytest.raises(RuntimeError, match="already holds"):
                await limiter.acquire()
            await limiter.acquire_on_behalf_of("job")
            stats = limiter.statistics()
            assert set(stats.borrowers) == {me, "job"}
            assert stats == CapacityLimiterStatistics(2, 2, stats.borrowers, 0)
            with pytest.raises(WouldBlock):
                limiter.acquire_on_behalf_of_nowait("other")
            limiter.release_on_behalf_of("job")
            with pytest.raises(RuntimeError, match="not holding"):
                limiter.release_on_behalf_of("job")
        assert limiter.available_tokens == 2
        limiter.acquire_nowait()
        limiter.release()
    run(main)


def test_capacity_limiter_total_tokens_is_mutable(run) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        limiter = CapacityLimiter(1)
        limiter.acquire_on_behalf_of_nowait("holder")
        order: list[int] = []

        async def worker(n: int) -> None:
            await limiter.acquire_on_behalf_of(n)
            order.append(n)

        for n in range(3):
            spawn(worker(n))
            await wait_all_tasks_blocked()
        assert limiter.statistics().tasks_waiting == 3
        with pytest.raises(RuntimeError, match="already waiting"):
            await limiter.acquire_on_behalf_of(1)
        limiter.total_tokens = 3  # two new tokens: the two oldest waiters get them
        await wait_all_tasks_blocked()
        assert order == [0, 1]
        limiter.total_tokens = math.inf
        await wait_all_tasks_blocked()
        assert order == [0, 1, 2]
        limiter.total_tokens = 0
        assert limiter.available_tokens == -4
        with pytest.raises(WouldBlock):
            limiter.acquire_on_behalf_of_nowait("late")
    run(main)


@pytest.mark.parametrize(("value", "error"), [
    (-1, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError),
])
def test_capacity_limiter_validation(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="total_tokens"):
        CapacityLimiter(value)


# -- a grant that meets a cancellation in the same iteration ---------------------------


class Contended:
    """One primitive held by the main task with two tasks queued behind it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "lock":
            self.primitive: Any = Lock()
        elif kind == "semaphore":
            self.primitive = Semaphore(1)
        elif kind == "limiter":
            self.primitive = CapacityLimiter(1)
        else:
            self.primitive = Condition()

    async def hold(self) -> None:
        if self.kind != "condition":
            await self.primitive.acquire()

    async def wait(self) -> None:
        """The waiter's side: acquire (or wait for a notification), then release."""
        if self.kind == "condition":
            async with self.primitive:
                await self.primitive.wait()
        else:
            await self.primitive.acquire()
            self.primitive.release()

    async def grant(self) -> None:
        """Release to the oldest waiter (or notify one); no other task runs meanwhile."""
        if self.kind == "condition":
            self.primitive.acquire_nowait()
            self.primitive.notify(1)
            self.primitive.release()
        else:
            self.primitive.release()

    def idle(self) -> bool:
        if self.kind == "lock":
            return not self.primitive.locked()
        if self.kind == "semaphore":
            return self.primitive.value == 1  # type: ignore[no-any-return]
        if self.kind == "limiter":
            return self.primitive.borrowed_tokens == 0  # type: ignore[no-any-return]
        return not self.primitive.locked() and not self.primitive.statistics().tasks_waiting


@pytest.mark.parametrize("native", [False, True], ids=["scope", "native"])
@pytest.mark.parametrize("kind", ["lock", "semaphore", "limiter", "condition"])
def test_grant_to_a_waiter_cancelled_in_the_same_iteration_passes_on(
        run, kind: str, native: bool) -> None:  # type: ignore[no-untyped-def]
    """The oldest waiter is granted the lock/token/notification and cancelled before it
    runs again: the grant goes to the next waiter, the first raises CancelledError."""
    async def main() -> None:
        contended = Contended(kind)
        await contended.hold()
        done: list[str] = []
        scopes: dict[str, CancelScope] = {}

        async def waiter(name: str) -> None:
            with CancelScope() as scopes[name]:
                await contended.wait()
                done.append(name)

        first = spawn(waiter("first"))
        await wait_all_tasks_blocked()
        second = spawn(waiter("second"))
        await wait_all_tasks_blocked()

        await contended.grant()   # goes to "first"...
        if native:                # ...which is cancelled before it runs again
            first.cancel()
        else:
            scopes["first"].cancel()
        with fail_after(5):       # a lost grant fails instead of hanging
            await asyncio.gather(first, second, return_exceptions=True)

        assert done == ["second"]
        if native:
            assert first.cancelled()
        else:
            assert scopes["first"].cancelled_caught
        assert contended.idle()
    run(main)


@pytest.mark.parametrize("kind", ["lock", "semaphore", "limiter", "condition"])
def test_waiter_cancelled_before_the_grant_is_skipped(run, kind: str) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        contended = Contended(kind)
        await contended.hold()
        done: list[str] = []

        async def waiter(name: str) -> None:
            await contended.wait()
            done.append(name)

        first = spawn(waiter("first"))
        await wait_all_tasks_blocked()
        second = spawn(waiter("second"))
        await wait_all_tasks_blocked()
        first.cancel()            # its future is cancelled right here...
        await contended.grant()   # ...so the grant goes to the second waiter
        with fail_after(5):
            await asyncio.gather(first, second, return_exceptions=True)
        assert done == ["second"]
        assert contended.idle()
    run(main)


@pytest.mark.parametrize("native", [False, True], ids=["scope", "native"])
@pytest.mark.parametrize("kind", ["lock", "semaphore", "limiter"])
def test_cancelled_during_the_uncontended_yield(
        run, kind: str, native: bool) -> None:  # type: ignore[no-untyped-def]
    """acquire() took the free lock/token and yields once: a schedule point that is not
    a cancel point (Trio's cancel_shielded_checkpoint).  A scope cancellation arriving
    then leaves it acquired and is raised at the next checkpoint (as on Trio; this
    test used to expect acquire() to give it back and raise); a native cancel gives it
    back and raises (as on AnyIO)."""
    async def main() -> None:
        contended = Contended(kind)
        scope = CancelScope()
        log: list[str] = []

        async def taker() -> None:
            with scope:
                await contended.primitive.acquire()
                log.append("acquired")
                try:
                    await checkpoint()
                finally:
                    contended.primitive.release()
                    log.append("released")
                log.append("not cancelled")

        task = spawn(taker())
        await asyncio.sleep(0)  # the taker has acquired and is yielding
        if native:
            task.cancel()
        else:
            scope.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert log == ([] if native else ["acquired", "released"])
        assert contended.idle()
        if native:
            assert task.cancelled()
        else:
            assert scope.cancelled_caught and not task.cancelled()
    run(main)


def test_plain_asyncio_tasks_can_use_the_primitives() -> None:
    async def main() -> list[int]:
        lock, event, condition = Lock(), Event(), Condition()
        order: list[int] = []

        async def worker(n: int) -> None:
            await event.wait()
            async with lock:
                order.append(n)
            async with condition:
                condition.notify_all()

        tasks = [asyncio.get_running_loop().create_task(worker(n)) for n in range(3)]
        await asyncio.sleep(0)
        event.set()
        await asyncio.gather(*tasks)
        return order
    assert asyncio.run(main()) == [0, 1, 2]

