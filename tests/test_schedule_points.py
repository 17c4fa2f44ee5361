"""Every stream and synchronisation operation is a schedule point (issue 14, item 7).

As in Trio: an operation that completes without waiting (``send()`` into a buffer
with room, ``receive()`` or ``async for`` of a ready item, an uncontended
``acquire()``, ``Event.wait()`` on a set event, and their ``async with`` forms) still
yields to the loop once, so a task looping on it lets the others run.  It is a cancel
point at its start (raises without effect in a cancelled scope); the yield after
an operation that has happened is not (Trio's ``cancel_shielded_checkpoint``), except
for ``Event.wait()``, which is a full checkpoint.  The ``*_nowait()`` forms never
yield.

Where it is meaningful, the same program runs on Trio and on scopeloop and what it
observed is compared, keeping to what Trio guarantees under its randomised batch
order.
"""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace
from typing import Any

import pytest
import trio

import scopeloop
from scopeloop import CancelScope, create_memory_object_stream, wait_all_tasks_blocked
from scopeloop._waitqueue import _owed

N = 20

TRIO = SimpleNamespace(
    stream=trio.open_memory_channel, CancelScope=trio.CancelScope,
    Cancelled=trio.Cancelled, checkpoint=trio.lowlevel.checkpoint,
    group=trio.open_nursery, Lock=trio.Lock, Semaphore=trio.Semaphore,
    CapacityLimiter=trio.CapacityLimiter, Condition=trio.Condition, Event=trio.Event)
SCOPELOOP = SimpleNamespace(
    stream=create_memory_object_stream, CancelScope=CancelScope,
    Cancelled=asyncio.CancelledError, checkpoint=scopeloop.checkpoint,
    group=scopeloop.create_task_group, Lock=scopeloop.Lock, Semaphore=scopeloop.Semaphore,
    CapacityLimiter=scopeloop.CapacityLimiter, Condition=scopeloop.Condition,
    Event=scopeloop.Event)


class Subject:
    """One operation, set up so that it completes without waiting, with its effect."""

    def __init__(self, lib: Any, kind: str) -> None:
        self.kind = kind
        if kind in ("send", "receive", "async for"):
            self.tx, self.rx = lib.stream(math.inf)
            if kind != "send":
                for i in range(2 * N + 1):  # for once() and nowait()
                    self.tx.send_nowait(i)
        elif kind == "lock":
            self.primitive = lib.Lock()
        elif kind == "semaphore":
            self.primitive = lib.Semaphore(1)
        elif kind == "limiter":
            self.primitive = lib.CapacityLimiter(1)
        elif kind == "condition":
            self.primitive = lib.Condition()
        else:
            self.primitive = lib.Event()
            self.primitive.set()

    async def once(self) -> Any:
        """The operation (for a primitive: acquire, then release at once)."""
        if self.kind == "send":
            await self.tx.send(0)
        elif self.kind == "receive":
            return await self.rx.receive()
        elif self.kind == "async for":
            async for item in self.rx:
                return item
        elif self.kind == "event":
            await self.primitive.wait()
        else:
            async with self.primitive:
                pass
        return None

    async def enter(self) -> Any:
        """The operation, keeping what it acquires (see ``effect``)."""
        if self.kind in ("send", "receive", "async for", "event"):
            return await self.once()
        return await self.primitive.acquire()

    def nowait(self) -> None:
        if self.kind == "send":
            self.tx.send_nowait(0)
        elif self.kind in ("receive", "async for"):
            self.rx.receive_nowait()
        elif self.kind in ("lock", "semaphore", "limiter", "condition"):
            self.primitive.acquire_nowait()
            self.primitive.release()
        else:
            self.primitive.is_set()

    def effect(self) -> Any:
        """What the operation changed: buffer use, or whether the primitive is held."""
        if self.kind in ("send", "receive", "async for"):
            return self.tx.statistics().current_buffer_used
        if self.kind in ("lock", "condition"):
            return self.primitive.locked()
        if self.kind == "semaphore":
            return self.primitive.value
        if self.kind == "limiter":
            return self.primitive.borrowed_tokens
        return self.primitive.is_set()

    def undo(self) -> None:
        if self.kind in ("lock", "semaphore", "limiter", "condition"):
            self.primitive.release()


KINDS = ["send", "receive", "async for", "lock", "semaphore", "limiter", "condition", "event"]


async def tight_loop(lib: Any, kind: str) -> tuple[int, int]:
    """How far a counting task advances while this task does N operations, and while
    it does N ``*_nowait()`` forms."""
    subject = Subject(lib, kind)
    count = 0

    async def counter() -> None:
        nonlocal count
        while True:
            count += 1
            await lib.checkpoint()

    async with lib.group() as group:
        group.start_soon(counter)
        await lib.checkpoint()
        await lib.checkpoint()
        start = count
        for _ in range(N):
            await subject.once()
        looped = count - start
        start = count
        for _ in range(N):
            subject.nowait()
        nowait = count - start
        group.cancel_scope.cancel()
    return looped, nowait


@pytest.mark.parametrize("kind", KINDS)
def test_a_tight_loop_lets_other_tasks_run(run, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Exactly one schedule point per operation on scopeloop (the loop is FIFO); on
    Trio, whose batches run in random order, one give or take one."""
    looped, nowait = run(tight_loop, SCOPELOOP, kind)
    assert (looped, nowait) == (N, 0)
    looped, nowait = trio.run(tight_loop, TRIO, kind)
    assert N - 1 <= looped <= N + 1 and nowait == 0


async def cancelled_first(lib: Any, kind: str) -> tuple[Any, ...]:
    """The operation in a scope already cancelled: does it raise, does it change
    anything?"""
    subject = Subject(lib, kind)
    before = subject.effect()
    raised = False
    with lib.CancelScope() as scope:
        scope.cancel()
        try:
            await subject.once()
        except lib.Cancelled:
            raised = True
            raise
    return raised, subject.effect() == before, scope.cancelled_caught


@pytest.mark.parametrize("kind", KINDS)
def test_in_a_cancelled_scope_raises_without_effect(run, kind: str) -> None:  # type: ignore[no-untyped-def]
    expected = trio.run(cancelled_first, TRIO, kind)
    assert expected == (True, True, True)
    assert run(cancelled_first, SCOPELOOP, kind) == expected


async def cancelled_meanwhile(lib: Any, kind: str) -> list[Any]:
    """Another task cancels the scope while the operation is in its schedule point:
    what did the operation do, and where was the cancellation raised?"""
    subject = Subject(lib, kind)
    go = lib.Event()
    log: list[Any] = []
    scopes: list[Any] = []
    before = subject.effect()

    async def operation() -> None:
        with lib.CancelScope() as scope:
            scopes.append(scope)
            go.set()  # wakes the canceller, which runs during our schedule point
            try:
                result = await subject.enter()
            except lib.Cancelled:
                log.append("operation raised")
                raise
            log.append(("returned", result, subject.effect() != before))
            try:
                await lib.checkpoint()
            except lib.Cancelled:
                log.append("next checkpoint raised")
                raise
            finally:
                subject.undo()
            log.append("not cancelled")
        log.append(("caught", scope.cancelled_caught))

    async def canceller() -> None:
        await go.wait()
        scopes[0].cancel()

    async with lib.group() as group:
        group.start_soon(canceller)
        group.start_soon(operation)
    log.append(("after", subject.effect() == before))
    return log


@pytest.mark.parametrize("kind", ["send", "receive", "async for", "lock", "semaphore",
                                  "limiter", "condition"])
def test_cancelled_during_the_schedule_point_takes_effect(run, kind: str) -> None:  # type: ignore[no-untyped-def]
    """The operation has happened: it returns, and the next checkpoint raises (on
    Trio in either batch order).  An item sent stays sent, one received is the
    caller's, a lock acquired is held until released."""
    expected = trio.run(cancelled_meanwhile, TRIO, kind)
    assert expected[0][0::2] == ("returned", True)
    assert expected[1:] == ["next checkpoint raised", ("caught", True),
                            ("after", kind in ("lock", "semaphore", "limiter", "condition"))]
    for _ in range(3):  # Trio's batch order is random: each run must agree
        assert trio.run(cancelled_meanwhile, TRIO, kind) == expected
    assert run(cancelled_meanwhile, SCOPELOOP, kind) == expected


def test_event_wait_is_a_full_checkpoint(run) -> None:  # type: ignore[no-untyped-def]
    """Event.wait() on a set event is Trio's checkpoint(): a cancellation arriving
    during its yield raises there (one of Trio's two batch orders; nothing is lost,
    since a set event stays set)."""
    log = run(cancelled_meanwhile, SCOPELOOP, "event")
    assert log == ["operation raised", ("caught", True), ("after", True)]


def test_native_cancel_during_the_send_schedule_point_is_raised_by_the_next_send(
        run) -> None:  # type: ignore[no-untyped-def]
    """A task looping on send() into an unbounded stream is cancelled natively while
    in a schedule point: that send completed (its item stays), the next send()
    raises, counted once.  Before Python 3.13 the re-delivery is deferred, and every
    later await of the loop is another completed send's schedule point: the next
    send's start raises it."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int](math.inf)
        sent: list[int] = []
        counts: list[int] = []

        async def sender() -> None:
            task = asyncio.current_task()
            assert task is not None
            for i in range(1000):
                try:
                    await send.send(i)
                except asyncio.CancelledError:
                    counts.append(task.cancelling())
                    raise
                sent.append(i)

        task = asyncio.get_running_loop().create_task(sender())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert sent  # the sender is in the schedule point of a completed send
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        assert task.done() and task.cancelled()
        assert counts == [1]
        assert [receive.receive_nowait() for _ in sent] == sent
        with pytest.raises(scopeloop.WouldBlock):
            receive.receive_nowait()
        assert not _owed  # raised: nothing left owed (before 3.13)
        send.close()
        receive.close()
    run(main)


@pytest.mark.parametrize("kind", ["receive", "async for"])
def test_native_cancel_during_the_receive_schedule_point(
        run, kind: str) -> None:  # type: ignore[no-untyped-def]
    """The item taken is returned (nothing is consumed twice or lost), the next
    receive raises."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int](math.inf)
        for i in range(10):
            send.send_nowait(i)
        got: list[int] = []

        async def receiver() -> None:
            if kind == "receive":
                while True:
                    got.append(await receive.receive())
            else:
                async for item in receive:
                    got.append(item)

        task = asyncio.get_running_loop().create_task(receiver())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        assert task.cancelled()
        rest = [receive.receive_nowait() for _ in range(10 - len(got))]
        assert got and got + rest == list(range(10))
        send.close()
        receive.close()
    run(main)


def test_native_cancel_owed_by_a_send_is_raised_by_a_lock(run) -> None:  # type: ignore[no-untyped-def]
    """The owed native cancellation is raised by whichever operation comes next, here
    a Lock's acquire() (before Python 3.13 it is owed, from 3.13 it is armed)."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int](math.inf)
        lock = scopeloop.Lock()
        log: list[str] = []

        async def worker() -> None:
            await send.send(1)
            log.append("sent")
            try:
                await lock.acquire()
            except asyncio.CancelledError:
                log.append("acquire raised")
                raise
            log.append("acquired")

        task = asyncio.get_running_loop().create_task(worker())
        await asyncio.sleep(0)  # the worker is in send()'s schedule point
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert log == ["sent", "acquire raised"]
        assert not lock.locked()
        assert receive.receive_nowait() == 1
        send.close()
        receive.close()
    run(main)


def test_withdrawn_native_cancel_is_not_raised_later(run) -> None:  # type: ignore[no-untyped-def]
    """asyncio.timeout() fires while its block is in a completed send()'s schedule
    point; the block ends before another checkpoint, the timeout withdraws its
    request, and nothing is raised later (the owed cancellation is dropped)."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int](math.inf)
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as timeout:
            loop.call_soon(timeout._on_timeout)  # the timer fires during the yield
            await send.send(1)
        assert task.cancelling() == 0
        await send.send(2)
        await asyncio.sleep(0)
        assert [receive.receive_nowait(), receive.receive_nowait()] == [1, 2]
        assert not _owed  # dropped (before 3.13)
        send.close()
        receive.close()
    run(main)


def test_rendezvous_hand_off_is_a_schedule_point(run) -> None:  # type: ignore[no-untyped-def]
    """A send that hands its item to a waiting receiver yields, so the receiver runs
    before the sender's next line (here: before it checks what the receiver got)."""
    async def main() -> None:
        send, receive = create_memory_object_stream[int]()
        got: list[int] = []

        async def receiver() -> None:
            got.append(await receive.receive())

        task = asyncio.get_running_loop().create_task(receiver())
        await wait_all_tasks_blocked()
        await send.send(1)
        assert got == [1]
        await task
        send.close()
        receive.close()
    run(main)



def test_condition_wait_takes_a_free_lock_back_without_another_yield(run) -> None:  # type: ignore[no-untyped-def]
    """The wake-up from a notification is the schedule point: one step after the
    notifier released the lock, the waiter holds it and wait() has returned (a Trio
    Condition hands the lock over with the wake-up)."""
    async def main() -> None:
        condition = scopeloop.Condition()
        log: list[Any] = []

        async def waiter() -> None:
            async with condition:
                await condition.wait()
                log.append(condition.locked())

        task = asyncio.get_running_loop().create_task(waiter())
        await wait_all_tasks_blocked()
        condition.acquire_nowait()
        condition.notify()
        condition.release()
        await asyncio.sleep(0)  # the waiter's one step
        assert log == [True]
        await task
        assert not condition.locked()
    run(main)
